"""The workflow's clustering next to the study's chain, on the same run's test split.

    python bench/clustering_vs_study.py RUN_DIR [OVERLAY.yaml ...]

RUN_DIR is a finished workflow run (``bench/real_sdss.sh`` calls this); the
OVERLAYs are the config files of that run after ``config/config.yaml`` (for the
SDSS run: ``config/sdss_gz1.yaml``). The workflow's scores are read from
``results/clustering/*/metrics.json``. The study's chain (``config/study_chain.yaml``
on top of the same overlays: raw 174-px crops, IncrementalPCA 75 + scaler, the
study's method settings, one cluster per class) is fitted here, in-process, on the
run's training shards and scores the test shards once. Both are test-split scores of
settings that were not chosen on the test split: the table compares, it selects nothing.

Per method: ARI, NMI, purity and the accuracy of "cluster -> its training majority
class", for both chains, and the majority-class baseline.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from galmorph.clustering import make_clusterer, run_clustering  # noqa: E402
from galmorph.metrics import clustering_scores, majority_accuracy, majority_mapping  # noqa: E402
from galmorph.reduction.pipeline import fit_reduction, reduce_split  # noqa: E402

SCORES = {
    "adjusted_rand_index": "ARI",
    "normalized_mutual_info": "NMI",
    "purity": "purity",
    "majority_accuracy": "maj. acc.",
}


def merged(paths) -> dict:
    """Config files merged the way Snakemake merges --configfile (nested keys update)."""

    def update(base, new):
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                update(base[key], value)
            else:
                base[key] = value
        return base

    config: dict = {}
    for path in paths:
        update(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def study_counts(config: dict, n_classes: int) -> dict:
    """The study's rule for the number of clusters: one per class (12 for GZ2, 6 for SDSS),
    the SOM grid the most square one with that many nodes."""
    clustering = config["clustering"]
    clustering["kmeans"]["n_clusters"] = n_classes
    clustering["hierarchical"]["n_clusters"] = n_classes
    clustering["gmm"]["n_components"] = n_classes
    rows = next(r for r in range(math.isqrt(n_classes), n_classes + 1) if n_classes % r == 0)
    rows = max(rows, n_classes // rows)
    clustering["som"]["rows"], clustering["som"]["cols"] = rows, n_classes // rows
    return config


def study_scores(run_dir: Path, config: dict) -> dict[str, dict]:
    shards = {
        split: sorted(glob.glob(str(run_dir / f"results/images/hdf5/{split}/shard_*.h5")))
        for split in ("train", "test")
    }
    if not shards["train"] or not shards["test"]:
        sys.exit(f"{run_dir}: no HDF5 shards; run the workflow first")
    reduction = config["reduction"]
    reducer, scaler = fit_reduction(
        shards["train"], reduction["crop"], reduction["n_components"], reduction["batch_size"],
        preprocess=reduction["preprocess"], representation=reduction["representation"],
    )  # fmt: skip
    train, test = (
        reduce_split(shards[s], reduction["crop"], reducer, scaler, reduction["batch_size"])
        for s in ("train", "test")
    )
    config = study_counts(config, len(train["class_names"]))
    out = {}
    for method in config["clustering"]["methods"]:
        clusterer = make_clusterer(method, config["clustering"][method], config["seed"])
        result = run_clustering(clusterer, train["features"], test["features"])
        train_y, test_y = train["class"].astype(int), test["class"].astype(int)
        scores = clustering_scores(result.test_labels, test_y, test["features"],
                                   clusterer.distance_metric, config["seed"])  # fmt: skip
        mapping, fallback = majority_mapping(result.train_labels, train_y)
        scores["majority_accuracy"] = majority_accuracy(
            result.test_labels, test_y, mapping, fallback
        )
        out[method] = scores
    return out


def workflow_scores(run_dir: Path) -> tuple[dict[str, dict], dict]:
    out, baseline = {}, {}
    for path in sorted((run_dir / "results/clustering").glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        out[metrics["method"]] = metrics["test"]
        baseline = metrics.get("majority_baseline", baseline)
    if not out:
        sys.exit(f"{run_dir}: no results/clustering/*/metrics.json; run the workflow first")
    return out, baseline


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("overlays", nargs="*", type=Path)
    args = parser.parse_args(argv)
    ours, baseline = workflow_scores(args.run_dir)
    base = [REPO / "config/config.yaml", *args.overlays]
    representation = merged(base)["reduction"]["representation"]
    study = study_scores(args.run_dir, merged([*base, REPO / "config/study_chain.yaml"]))
    rows = []
    for method in ours:
        row = {"method": method}
        for key, name in SCORES.items():
            row[f"{name} (ours)"] = ours[method].get(key, np.nan)
            row[f"{name} (study)"] = study.get(method, {}).get(key, np.nan)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("method")
    print(
        f"Clustering, test split: this workflow ({representation}) next to the study's chain "
        "(raw 174-px crops, IncrementalPCA 75 + scaler, the study's method settings)"
    )
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if baseline:
        print(f"majority baseline (always {baseline['class']}): accuracy "
              f"{baseline['test_accuracy']:.3f}, ARI 0, NMI 0")  # fmt: skip
    return table


if __name__ == "__main__":
    main()
