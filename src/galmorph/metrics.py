"""Agreement of a clustering with the morphological classes.

Noise (label ``-1``, HDBSCAN) is kept as its own group for the scikit-learn
scores (they compare partitions), counts as misassigned for purity, and is left
out of the silhouette (it has no cluster to be similar to).
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

NOISE = -1


def contingency(clusters: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of each class in each cluster: ``(cluster_ids, table[cluster, class])``.

    ``classes`` are integer indices ``0..n_classes-1``; the table has one
    column per index up to the largest present.
    """
    clusters = np.asarray(clusters)
    classes = np.asarray(classes, dtype=np.int64)
    ids, inverse = np.unique(clusters, return_inverse=True)
    table = np.zeros((len(ids), int(classes.max(initial=-1)) + 1), dtype=np.int64)
    np.add.at(table, (inverse, classes), 1)
    return ids, table


def purity(clusters: np.ndarray, classes: np.ndarray, noise: int | None = NOISE) -> float:
    """Fraction of points whose cluster's majority class is their own class.

    Points labelled ``noise`` belong to no cluster and count as misassigned.
    """
    clusters = np.asarray(clusters)
    if len(clusters) == 0:
        raise ValueError("purity of an empty labelling")
    ids, table = contingency(clusters, classes)
    keep = ids != noise if noise is not None else np.ones(len(ids), bool)
    return float(table[keep].max(axis=1).sum() / len(clusters))


def silhouette(
    features: np.ndarray,
    clusters: np.ndarray,
    metric: str = "euclidean",
    max_samples: int = 5000,
    seed: int = 0,
) -> float | None:
    """Mean silhouette of the clustered (non-noise) points; ``None`` if undefined.

    The silhouette needs all pairwise distances (quadratic), so above
    ``max_samples`` points it is estimated on a seeded random subsample.
    """
    features = np.asarray(features)
    clusters = np.asarray(clusters)
    keep = clusters != NOISE
    features, clusters = features[keep], clusters[keep]
    n_labels = len(np.unique(clusters))
    if not 2 <= n_labels <= len(clusters) - 1:
        return None
    sample_size = max_samples if len(clusters) > max_samples else None
    return float(
        skm.silhouette_score(
            features, clusters, metric=metric, sample_size=sample_size, random_state=seed
        )
    )


def clustering_scores(
    clusters: np.ndarray,
    classes: np.ndarray,
    features: np.ndarray,
    metric: str = "euclidean",
    seed: int = 0,
) -> dict[str, float | int | None]:
    """Every score of one split: ARI, NMI, homogeneity, completeness, V-measure,
    purity, silhouette, noise fraction and the number of clusters used."""
    clusters = np.asarray(clusters)
    classes = np.asarray(classes)
    homogeneity, completeness, v_measure = skm.homogeneity_completeness_v_measure(classes, clusters)
    return {
        "n_samples": int(len(clusters)),
        "n_clusters": int(len(np.unique(clusters[clusters != NOISE]))),
        "adjusted_rand_index": float(skm.adjusted_rand_score(classes, clusters)),
        "normalized_mutual_info": float(skm.normalized_mutual_info_score(classes, clusters)),
        "homogeneity": float(homogeneity),
        "completeness": float(completeness),
        "v_measure": float(v_measure),
        "purity": purity(clusters, classes),
        "silhouette": silhouette(features, clusters, metric=metric, seed=seed),
        "noise_fraction": float(np.mean(clusters == NOISE)),
    }


def majority_mapping(clusters: np.ndarray, classes: np.ndarray) -> tuple[dict[int, int], int]:
    """Each cluster's majority class on the split it was fitted on, and the overall majority.

    Returns ``(mapping, fallback)``: ``mapping[cluster] = class`` for every cluster
    (noise included, as its own cluster), ``fallback`` the most common class, which
    a cluster the mapping has never seen is given.
    """
    clusters = np.asarray(clusters)
    classes = np.asarray(classes)
    fallback = int(np.bincount(classes).argmax()) if len(classes) else 0
    mapping = {}
    for cluster in np.unique(clusters):
        members = classes[clusters == cluster]
        mapping[int(cluster)] = int(np.bincount(members).argmax())
    return mapping, fallback


def majority_accuracy(
    clusters: np.ndarray, classes: np.ndarray, mapping: dict[int, int], fallback: int
) -> float:
    """Accuracy of "cluster -> its majority class" (:func:`majority_mapping`) on a split."""
    clusters = np.asarray(clusters)
    if not len(clusters):
        return float("nan")
    predicted = np.array([mapping.get(int(c), fallback) for c in clusters])
    return float(np.mean(predicted == np.asarray(classes)))
