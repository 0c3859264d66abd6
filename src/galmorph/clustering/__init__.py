"""The five clustering methods of the study, fitted on train, assigning test.

Every method is a small estimator with ``fit(train)`` (setting ``labels_``)
and ``predict(X)`` that assigns new points with the fitted model only, so the
test split never reaches a fit::

    clusterer = make_clusterer("kmeans", params, seed=31)
    result = run_clustering(clusterer, train_features, test_features)

``params`` are the method's section of ``config["clustering"]`` as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galmorph.clustering.methods import (
    GMMClusterer,
    HDBSCANClusterer,
    HierarchicalClusterer,
    KMeansClusterer,
    SOMClusterer,
)

#: method name (config key and wildcard) -> estimator class
METHODS = {
    "kmeans": KMeansClusterer,
    "hierarchical": HierarchicalClusterer,
    "hdbscan": HDBSCANClusterer,
    "som": SOMClusterer,
    "gmm": GMMClusterer,
}

__all__ = [
    "METHODS",
    "ClusteringResult",
    "make_clusterer",
    "run_clustering",
    *(cls.__name__ for cls in METHODS.values()),
]


def make_clusterer(method: str, params: dict, seed: int):
    """The estimator of ``method`` built from its config section.

    Raises
    ------
    ValueError
        For an unknown method or a key the method does not take.
    """
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose one of {sorted(METHODS)}")
    cls = METHODS[method]
    accepted = set(cls.config_keys())
    unknown = set(params) - accepted
    if unknown:
        raise ValueError(
            f"clustering.{method} has unknown keys {sorted(unknown)}; it takes {sorted(accepted)}"
        )
    return cls(**params, random_state=seed)


@dataclass
class ClusteringResult:
    """A fitted clusterer and the cluster of every train and test point."""

    clusterer: object
    train_labels: np.ndarray
    test_labels: np.ndarray


def run_clustering(clusterer, train_features: np.ndarray, test_features: np.ndarray):
    """Fit ``clusterer`` on the training features only, then assign the test features."""
    clusterer.fit(np.asarray(train_features, dtype=np.float64))
    train_labels = np.asarray(clusterer.labels_, dtype=np.int64)
    test_labels = np.asarray(
        clusterer.predict(np.asarray(test_features, dtype=np.float64)), dtype=np.int64
    )
    return ClusteringResult(clusterer, train_labels, test_labels)
