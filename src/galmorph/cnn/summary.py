"""One table and one figure comparing the CNN variants (and the clustering methods, if run)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from galmorph.cnn.evaluate import SCALAR_METRICS  # noqa: E402
from galmorph.errors import InputDataError  # noqa: E402

#: Scores drawn in the summary figure (all between 0 and 1); a clustering's purity is the
#: accuracy of labelling each cluster with its majority class.
PLOTTED = ("accuracy", "f1_macro", "f1_weighted", "roc_auc_macro", "purity")


def summarize(
    metrics_paths: Mapping[str, str | Path], clustering_csv: str | Path | None = None
) -> pd.DataFrame:
    """One row per CNN variant with its test metrics; clustering rows appended if given.

    The clustering summary is copied as it is (its first column names the
    method); columns the two tables share line up, the others stay empty.
    """
    rows = []
    for variant, path in metrics_paths.items():
        try:
            metrics = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputDataError(
                f"{path}: unreadable metrics of variant {variant} ({error})"
            ) from error
        missing = [name for name in SCALAR_METRICS if name not in metrics]
        if missing:
            raise InputDataError(f"{path}: missing metric(s) {', '.join(missing)}")
        rows.append(
            {"stage": "cnn", "name": variant, "n_test": metrics["n"]}
            | {name: metrics[name] for name in SCALAR_METRICS}
        )
    table = pd.DataFrame(rows)
    if clustering_csv is not None and Path(clustering_csv).is_file():
        clustering = pd.read_csv(clustering_csv)
        clustering = clustering.rename(columns={clustering.columns[0]: "name"})
        if "split" in clustering:  # the CNNs are scored on the test split only
            clustering = clustering[clustering["split"] == "test"]
        clustering.insert(0, "stage", "clustering")
        table = pd.concat([table, clustering], ignore_index=True)
    table["n_test"] = table["n_test"].astype("Int64")
    return table


def plot_summary(table: pd.DataFrame, path: str | Path) -> None:
    """Grouped bars of :data:`PLOTTED` for every row that has them."""
    metrics = [name for name in PLOTTED if name in table]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(table) + 2), 4))
    width = 0.8 / max(1, len(metrics))
    positions = np.arange(len(table))
    for offset, metric in enumerate(metrics):
        values = pd.to_numeric(table[metric], errors="coerce").to_numpy()
        ax.bar(positions + offset * width, np.nan_to_num(values), width, label=metric)
    labels = [f"{stage}: {name}" for stage, name in zip(table["stage"], table["name"], strict=True)]
    ax.set_xticks(positions + width * (len(metrics) - 1) / 2, labels, rotation=20, ha="right")
    ax.set(ylim=(0, 1), ylabel="score on the test split", title="Models compared on the test split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
