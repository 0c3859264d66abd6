"""The report of one clustering method and the summary comparing all of them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from galmorph import plots
from galmorph.clustering import cluster_means, make_clusterer, run_clustering
from galmorph.errors import InputDataError
from galmorph.io import atomic_path
from galmorph.metrics import clustering_scores
from galmorph.reduction import reconstruct_images

#: scores compared in the summary figure
SUMMARY_SCORES = (
    "adjusted_rand_index",
    "normalized_mutual_info",
    "v_measure",
    "purity",
    "silhouette",
    "noise_fraction",
)

#: outputs of :func:`cluster_report`
REPORT_FILES = (
    "labels_train",
    "labels_test",
    "metrics",
    "class_histogram",
    "cluster_sizes",
    "centroids",
    "method_figure",
)


def silhouette_metric(clusterer) -> str:
    """The distance the method itself clusters with."""
    name = type(clusterer).__name__
    if name == "HierarchicalClusterer":
        return clusterer.metric
    if name == "HDBSCANClusterer":
        return clusterer.metric
    if name == "SOMClusterer":
        return clusterer._CDIST[clusterer.activation_distance]
    return "euclidean"


def _labels_frame(data: Mapping, clusters: np.ndarray) -> pd.DataFrame:
    names = np.asarray(data["class_names"], dtype=object)
    return pd.DataFrame(
        {
            "asset_id": data["asset_id"],
            "dr7objid": data["dr7objid"],
            "class": names[np.asarray(data["class"], dtype=np.int64)],
            "cluster": clusters,
        }
    )


def _write_csv(frame: pd.DataFrame, path) -> None:
    with atomic_path(path, suffix=".csv") as temporary:
        frame.to_csv(temporary, index=False)


def _method_figure(method: str, clusterer, features: np.ndarray, path) -> None:
    if method == "hierarchical":
        plots.dendrogram(clusterer.linkage_, clusterer.n_clusters, path)
    elif method == "hdbscan":
        plots.hdbscan_trees(clusterer.model_, features[:, :2], path)
    elif method == "som":
        hits = clusterer.som_.activation_response(features)
        plots.som_maps(clusterer.som_.distance_map(), hits, path)
    else:
        title = {"kmeans": "k-means", "gmm": "Gaussian mixture"}.get(method, method)
        plots.cluster_scatter(features, clusterer.labels_, clusterer.cluster_centers_, title, path)


def cluster_report(
    method: str,
    params: Mapping,
    seed: int,
    train: Mapping,
    test: Mapping,
    reducer,
    scaler,
    outputs: Mapping[str, str | Path],
) -> dict:
    """Fit ``method`` on the train features, assign test, write every output.

    ``train`` / ``test`` are reduced splits (:func:`galmorph.reduction.load_reduced`);
    ``outputs`` maps each name of :data:`REPORT_FILES` to a path. Returns the
    metrics written to ``outputs["metrics"]``.
    """
    missing = set(REPORT_FILES) - set(outputs)
    if missing:
        raise ValueError(f"cluster_report needs output paths for {sorted(missing)}")
    if list(train["class_names"]) != list(test["class_names"]):
        raise InputDataError("train and test reduced splits have different class_names")
    clusterer = make_clusterer(method, dict(params), seed)
    result = run_clustering(clusterer, train["features"], test["features"])
    metric = silhouette_metric(clusterer)
    metrics = {
        "method": method,
        "params": dict(params),
        "seed": seed,
        "silhouette_metric": metric,
    }
    for split, data, labels in (
        ("train", train, result.train_labels),
        ("test", test, result.test_labels),
    ):
        metrics[split] = clustering_scores(labels, data["class"], data["features"], metric, seed)
    _write_csv(_labels_frame(train, result.train_labels), outputs["labels_train"])
    _write_csv(_labels_frame(test, result.test_labels), outputs["labels_test"])
    with atomic_path(outputs["metrics"], suffix=".json") as temporary:
        temporary.write_text(json.dumps(metrics, indent=2) + "\n")

    plots.class_histograms(
        result.train_labels, train["class"], train["class_names"], outputs["class_histogram"]
    )
    plots.cluster_sizes(
        {"train": result.train_labels, "test": result.test_labels}, outputs["cluster_sizes"]
    )
    # Mean galaxy of a cluster: mean in reduced space -> inverse scaler -> inverse PCA.
    ids, means = cluster_means(train["features"], result.train_labels)
    crop = int(train["crop"])
    images = reconstruct_images(means, reducer, scaler, crop) if len(ids) else np.zeros((0,))
    plots.centroid_images(images, ids, outputs["centroids"])
    _method_figure(method, clusterer, train["features"], outputs["method_figure"])
    return metrics


def summary_table(metrics_paths: Sequence[str | Path]) -> pd.DataFrame:
    """One row per method and split with every score of the methods' ``metrics.json``."""
    rows = []
    for path in metrics_paths:
        try:
            metrics = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputDataError(
                f"cannot read {path}: {error}; rerun its clustering job"
            ) from error
        for split in ("train", "test"):
            rows.append({"method": metrics["method"], "split": split, **metrics[split]})
    return pd.DataFrame(rows)


def write_summary(metrics_paths: Sequence[str | Path], table_path, figure_path) -> pd.DataFrame:
    table = summary_table(metrics_paths)
    _write_csv(table, table_path)
    plots.summary(table, SUMMARY_SCORES, figure_path)
    return table
