"""The report of one clustering method and the summary comparing all of them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

from galmorph import plots
from galmorph.clustering import make_clusterer, run_clustering
from galmorph.errors import InputDataError
from galmorph.images import hdf5
from galmorph.io import atomic_path
from galmorph.metrics import NOISE, clustering_scores, majority_accuracy, majority_mapping
from galmorph.reduction.pipeline import display_scale

#: scores compared in the summary figure
SUMMARY_SCORES = (
    "adjusted_rand_index",
    "normalized_mutual_info",
    "purity",
    "majority_accuracy",
    "silhouette",
    "noise_fraction",
)

#: outputs of :func:`cluster_report`
REPORT_FILES = (
    "labels_train",
    "labels_test",
    "metrics",
    "majority",
    "class_histogram",
    "cluster_sizes",
    "centroids",
    "method_figure",
    "map",
    "unusual",
    "unusual_table",
)

#: test galaxies shown in the unusual-galaxies gallery
N_UNUSUAL = 16
#: thumbnails placed on the 2-D map
N_MAP_THUMBNAILS = 12


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


def majority_table(
    train_labels: np.ndarray,
    train_classes: np.ndarray,
    test_labels: np.ndarray,
    test_classes: np.ndarray,
    class_names: Sequence[str],
) -> pd.DataFrame:
    """One row per training cluster: its majority class and share, and how the test split fares.

    ``test_accuracy`` is the share of the cluster's test galaxies whose class is
    the cluster's (training) majority class; noise (-1) is a row of its own.
    """
    mapping, _ = majority_mapping(train_labels, train_classes)
    rows = []
    for cluster, majority in sorted(mapping.items()):
        members = train_classes[train_labels == cluster]
        tested = test_classes[test_labels == cluster]
        rows.append(
            {
                "cluster": "noise" if cluster == NOISE else cluster,
                "n_train": len(members),
                "majority_class": class_names[majority],
                "majority_share": round(float(np.mean(members == majority)), 4),
                "n_test": len(tested),
                "test_accuracy": round(float(np.mean(tested == majority)), 4)
                if len(tested)
                else None,
            }
        )
    return pd.DataFrame(rows)


def mean_images(shards: Sequence[str], crop: int | None, aligner, labels: np.ndarray, ids,
                batch_size: int = 250) -> np.ndarray:  # fmt: skip
    """The mean preprocessed galaxy of each cluster in ``ids``: what its members look like.

    Streams the shards (rows in the order of ``labels``) through the reduction's
    aligner, so the mean of aligned galaxies is sharp where raw crops would blur.
    """
    sums, counts = None, np.zeros(len(ids))
    position = {int(cluster): i for i, cluster in enumerate(ids)}
    start = 0
    for batch in hdf5.iter_batches(list(shards), batch_size, crop=crop):
        aligned = aligner.transform(batch.images).astype(np.float64)
        if sums is None:
            sums = np.zeros((len(ids), *aligned.shape[1:]))
        for row, cluster in enumerate(labels[start : start + len(aligned)]):
            if int(cluster) in position:
                sums[position[int(cluster)]] += aligned[row]
                counts[position[int(cluster)]] += 1
        start += len(aligned)
    if start != len(labels):
        raise InputDataError(
            f"the shards hold {start} images, the reduced split {len(labels)}: rerun the reduction"
        )
    if sums is None:
        return np.zeros((0, 1, 1, 3))
    means = sums / np.maximum(counts, 1)[:, None, None, None]
    return means if aligner.identity else display_scale(means)


def map_thumbnail_rows(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Rows of ``points`` (2-D map) spread over it: one per each of ``n`` k-means centres."""
    from sklearn.cluster import KMeans

    n = min(n, len(points))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    centres = KMeans(n, n_init=1, random_state=seed).fit(points).cluster_centers_
    return np.unique(np.argmin(cdist(centres, points), axis=1))


def cluster_report(
    method: str,
    params: Mapping,
    seed: int,
    train: Mapping,
    test: Mapping,
    reducer,
    shards: Mapping[str, Sequence[str]],
    train_map: pd.DataFrame,
    outputs: Mapping[str, str | Path],
) -> dict:
    """Fit ``method`` on the train features, assign test, write every output.

    ``train`` / ``test`` are reduced splits (:func:`galmorph.reduction.pipeline.load_reduced`);
    ``reducer`` the fitted reduction (its aligner makes the mean galaxies);
    ``shards`` the ``train`` and ``test`` HDF5 shards (thumbnails); ``train_map``
    the 2-D map of the training split (:func:`galmorph.clustering.embedding.read_map`);
    ``outputs`` maps each name of :data:`REPORT_FILES` to a path. Returns the
    metrics written to ``outputs["metrics"]``.
    """
    missing = set(REPORT_FILES) - set(outputs)
    if missing:
        raise ValueError(f"cluster_report needs output paths for {sorted(missing)}")
    if list(train["class_names"]) != list(test["class_names"]):
        raise InputDataError("train and test reduced splits have different class_names")
    names = list(train["class_names"])
    clusterer = make_clusterer(method, dict(params), seed)
    result = run_clustering(clusterer, train["features"], test["features"])
    metric = clusterer.distance_metric
    train_classes = np.asarray(train["class"], dtype=np.int64)
    test_classes = np.asarray(test["class"], dtype=np.int64)
    mapping, fallback = majority_mapping(result.train_labels, train_classes)
    metrics = {
        "method": method,
        "params": dict(params),
        "seed": seed,
        "representation": train.get("representation", "pca"),
        "silhouette_metric": metric,
        "majority_baseline": {
            "class": names[fallback],
            "test_accuracy": float(np.mean(test_classes == fallback)),
        },
    }
    for split, data, labels, classes in (
        ("train", train, result.train_labels, train_classes),
        ("test", test, result.test_labels, test_classes),
    ):
        scores = clustering_scores(labels, classes, data["features"], metric, seed)
        scores["majority_accuracy"] = majority_accuracy(labels, classes, mapping, fallback)
        metrics[split] = scores
    _write_csv(_labels_frame(train, result.train_labels), outputs["labels_train"])
    _write_csv(_labels_frame(test, result.test_labels), outputs["labels_test"])
    _write_csv(
        majority_table(result.train_labels, train_classes, result.test_labels, test_classes, names),
        outputs["majority"],
    )
    with atomic_path(outputs["metrics"], suffix=".json") as temporary:
        temporary.write_text(json.dumps(metrics, indent=2) + "\n")

    plots.class_histograms(result.train_labels, train["class"], names, outputs["class_histogram"])
    plots.cluster_sizes(
        {"train": result.train_labels, "test": result.test_labels}, outputs["cluster_sizes"]
    )
    crop = train.get("crop")
    aligner = reducer.named_steps["align"]
    ids = np.unique(result.train_labels[result.train_labels != NOISE])
    means = mean_images(shards["train"], crop, aligner, result.train_labels, ids)
    plots.centroid_images(means, ids, outputs["centroids"])
    _method_figure(method, clusterer, train["features"], outputs["method_figure"])

    # The 2-D map of the training split, by class and by this method's clusters.
    rows = train_map["row"].to_numpy()
    points = train_map[["x", "y"]].to_numpy()
    chosen = map_thumbnail_rows(points, N_MAP_THUMBNAILS, seed)
    thumbnails = hdf5.read_images(shards["train"], rows[chosen], crop=crop).images
    plots.cluster_map(
        points,
        train_classes[rows],
        names,
        result.train_labels[rows],
        chosen,
        thumbnails,
        f"{method}: training split",
        outputs["map"],
    )

    # Unusual galaxies: the test galaxies that fit no cluster.
    scores = np.asarray(clusterer.outlier_score(np.asarray(test["features"], dtype=np.float64)))
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:N_UNUSUAL]
    unusual = pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "asset_id": np.asarray(test["asset_id"])[order],
            "dr7objid": np.asarray(test["dr7objid"])[order],
            "class": [names[c] for c in test_classes[order]],
            "cluster": result.test_labels[order],
            "outlier_score": scores[order],
        }
    )
    _write_csv(unusual, outputs["unusual_table"])
    images = hdf5.read_images(shards["test"], order, crop=crop).images
    plots.unusual_gallery(images, unusual, clusterer.OUTLIER_SCORE, outputs["unusual"])
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
