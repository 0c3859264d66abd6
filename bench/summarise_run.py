"""One table of a finished run's test scores, next to the majority-class baseline.

    python bench/summarise_run.py RUN_DIR [--markdown] [--targets KEY=VALUE ...]

RUN_DIR is a working directory the workflow ran in (it holds ``results/``).
Reads ``results/clustering/*/metrics.json`` (ARI, NMI, purity and, as accuracy,
"cluster -> its training majority class" on the test split),
``results/cnn/*/metrics.json`` (accuracy, macro F1, weighted F1 and macro AUC on
the test split) and ``results/sample/test.csv``, from which the
baseline that always answers the most frequent class is scored with the same
definitions: ARI and NMI 0 (one cluster), purity and accuracy the majority
share, macro AUC 0.5 (constant scores).

``--targets`` adds a second table: each CNN variant's score for every target
(``accuracy``, ``macro_f1``, ``balanced_accuracy``, ``chirality`` or ``f1:<class>``,
one class's F1 from ``per_class``) beside the baseline's, and whether it is met.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

COLUMNS = (
    "ARI", "NMI", "purity", "accuracy", "balanced acc.", "macro F1", "weighted F1", "macro AUC",
    "chirality",
)  # fmt: skip


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        sys.exit(f"{path}: cannot read the metrics ({error}); rerun the workflow")


def clustering_rows(results: Path) -> list[dict]:
    """One row per clustering method: its test-split scores."""
    rows = []
    for path in sorted(results.glob("clustering/*/metrics.json")):
        metrics = _read_json(path)
        test = metrics["test"]
        rows.append(
            {
                "model": f"clustering: {metrics['method']}",
                "ARI": test["adjusted_rand_index"],
                "NMI": test["normalized_mutual_info"],
                "purity": test["purity"],
                "accuracy": test.get("majority_accuracy", np.nan),
                "clusters": test["n_clusters"],
            }
        )
    return rows


def cnn_rows(results: Path) -> list[dict]:
    """One row per CNN variant: its test-split scores."""
    rows = []
    for path in sorted(results.glob("cnn/*/metrics.json")):
        metrics = _read_json(path)
        if "accuracy" not in metrics:  # the vote-fraction network: see vote_lines
            continue
        rows.append(
            {
                "model": f"CNN: {metrics.get('variant') or path.parent.name}",
                "accuracy": metrics["accuracy"],
                "balanced acc.": metrics.get("balanced_accuracy"),
                "macro F1": metrics["f1_macro"],
                "weighted F1": metrics["f1_weighted"],
                "macro AUC": metrics["roc_auc_macro"],
                "chirality": metrics.get("chirality_accuracy"),
            }
        )
    return rows


def vote_lines(results: Path) -> list[str]:
    """The vote-fraction network's test RMSE next to predicting the training mean."""
    path = results / "cnn" / "votes" / "metrics.json"
    if not path.exists():
        return []
    metrics = _read_json(path)
    return [
        f"Vote fractions ({metrics['n_galaxies']} test galaxies, {metrics['vote_column']}): "
        f"RMSE {metrics['rmse']:.3f} (training mean: {metrics['rmse_baseline']:.3f}); "
        f"per question {metrics['rmse_conditional']:.3f} "
        f"(training mean: {metrics['rmse_conditional_baseline']:.3f})"
    ]


def majority_row(test_csv: Path) -> dict:
    """Scores of always answering the most frequent class of the test split."""
    try:
        classes = pd.read_csv(test_csv, usecols=["class"])["class"].astype(str).to_numpy()
    except (OSError, ValueError) as error:
        sys.exit(f"{test_csv}: cannot read the 'class' column ({error})")
    if classes.size == 0:
        sys.exit(f"{test_csv}: the test split is empty")
    names, counts = np.unique(classes, return_counts=True)
    majority = names[counts.argmax()]
    predicted = np.full(classes.shape, majority)
    return {
        "model": f"baseline: always {majority}",
        "ARI": skm.adjusted_rand_score(classes, predicted),
        "NMI": skm.normalized_mutual_info_score(classes, predicted),
        "purity": counts.max() / classes.size,
        "accuracy": float(np.mean(predicted == classes)),
        "balanced acc.": skm.balanced_accuracy_score(classes, predicted),
        "macro F1": skm.f1_score(classes, predicted, average="macro", zero_division=0),
        "weighted F1": skm.f1_score(classes, predicted, average="weighted", zero_division=0),
        "macro AUC": 0.5,
        "clusters": 1,
    }


def summary_table(run_dir: str | Path) -> pd.DataFrame:
    """Baseline, clustering methods and CNN variants, one row each (NaN: not applicable)."""
    results = Path(run_dir) / "results"
    rows = [majority_row(results / "sample" / "test.csv")]
    rows += clustering_rows(results) + cnn_rows(results)
    table = pd.DataFrame(rows).set_index("model")
    return table.reindex(columns=[*COLUMNS, "clusters"])


#: --targets keys -> the metrics.json entry they read
TARGET_KEYS = {
    "accuracy": "accuracy",
    "macro_f1": "f1_macro",
    "balanced_accuracy": "balanced_accuracy",
    "chirality": "chirality_accuracy",
}


def _target_value(metrics: dict, key: str) -> float:
    if key.startswith("f1:"):
        name = key[3:]
        per_class = metrics.get("per_class", {})
        return float(per_class[name]["f1"]) if name in per_class else np.nan
    value = metrics.get(TARGET_KEYS[key])
    return np.nan if value is None else float(value)


def parse_targets(items: list[str]) -> dict[str, float]:
    """``KEY=VALUE`` strings -> {key: threshold}; a clear error for an unknown key."""
    targets = {}
    for item in items:
        key, _, value = item.partition("=")
        if not (key in TARGET_KEYS or key.startswith("f1:")) or not value:
            known = ", ".join([*TARGET_KEYS, "f1:<class>"])
            sys.exit(f"--targets {item!r}: give KEY=VALUE with KEY one of {known}")
        targets[key] = float(value)
    return targets


def target_table(run_dir: str | Path, targets: dict[str, float]) -> pd.DataFrame:
    """Per CNN variant (and the majority baseline), each target's score and the count met."""
    results = Path(run_dir) / "results"
    classes = pd.read_csv(results / "sample" / "test.csv", usecols=["class"])["class"]
    classes = classes.astype(str).to_numpy()
    names, counts = np.unique(classes, return_counts=True)
    predicted = np.full(classes.shape, names[counts.argmax()])
    f1 = skm.f1_score(classes, predicted, labels=names, average=None, zero_division=0)
    baseline = {
        "accuracy": float(np.mean(predicted == classes)),
        "f1_macro": skm.f1_score(classes, predicted, average="macro", zero_division=0),
        "balanced_accuracy": skm.balanced_accuracy_score(classes, predicted),
        "chirality_accuracy": 0.5,  # a constant answer tells no sense of winding
        "per_class": {name: {"f1": value} for name, value in zip(names, f1, strict=True)},
    }
    rows = [("baseline: always " + names[counts.argmax()], baseline)]
    for path in sorted(results.glob("cnn/*/metrics.json")):
        metrics = _read_json(path)
        if "accuracy" in metrics:  # not the vote-fraction network
            rows.append((f"CNN: {metrics.get('variant') or path.parent.name}", metrics))
    table = pd.DataFrame(
        {key: [_target_value(metrics, key) for _, metrics in rows] for key in targets},
        index=pd.Index([name for name, _ in rows], name="model"),
    )
    met = np.column_stack([table[key] >= value for key, value in targets.items()])
    table["met"] = [f"{int(row.sum())} of {len(targets)}" for row in met]
    target_row = pd.DataFrame(
        {**{key: [value] for key, value in targets.items()}, "met": [""]},
        index=pd.Index(["target"], name="model"),
    )
    return pd.concat([table, target_row])


def format_table(table: pd.DataFrame, markdown: bool = False) -> str:
    shown = table.copy()
    for column in COLUMNS:
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    shown["clusters"] = shown["clusters"].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
    if not markdown:
        return shown.to_string()
    header = ["model", *shown.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, row in shown.iterrows():
        lines.append("| " + " | ".join([model, *row.tolist()]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="working directory of the run (holds results/)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--targets", nargs="+", default=[], metavar="KEY=VALUE",
                        help="also print each CNN variant against these targets, e.g. "
                        "accuracy=0.88 macro_f1=0.68 chirality=0.95 f1:merger=0.5")  # fmt: skip
    args = parser.parse_args()
    targets = parse_targets(args.targets)
    test_csv = Path(args.run_dir) / "results" / "sample" / "test.csv"
    n_test = sum(1 for _ in test_csv.open()) - 1 if test_csv.exists() else 0
    print(f"Test split: {n_test} galaxies ({test_csv})")
    print(format_table(summary_table(args.run_dir), markdown=args.markdown))
    for line in vote_lines(Path(args.run_dir) / "results"):
        print(line)
    if targets:
        table = target_table(args.run_dir, targets)
        print()
        if args.markdown:
            print(table.to_markdown(floatfmt=".3f"))
        else:
            print(table.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
