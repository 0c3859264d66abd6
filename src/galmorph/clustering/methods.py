"""One estimator per clustering method: ``fit(train)`` sets ``labels_``; ``predict``
assigns new points with the fitted model, never refitting."""

from __future__ import annotations

import logging

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.mixture import GaussianMixture

log = logging.getLogger(__name__)


class _Clusterer(ClusterMixin, BaseEstimator):
    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The config keys the method takes (its section of ``config["clustering"]``):
        its scikit-learn parameters but ``random_state``, which is the workflow's seed."""
        return tuple(sorted(set(cls().get_params()) - {"random_state"}))

    #: what :meth:`outlier_score` measures, for the reports
    OUTLIER_SCORE = "distance to the nearest cluster centre"

    def outlier_score(self, X) -> np.ndarray:
        """How badly each point fits the fitted clusters: larger is more unusual."""
        distances = cdist(X, self.cluster_centers_, metric=self.distance_metric)
        return np.nan_to_num(distances, nan=np.inf).min(axis=1)

    #: the distance the method clusters with (scipy ``cdist`` name)
    distance_metric = "euclidean"


class KMeansClusterer(_Clusterer):
    """k-means, full (Lloyd) or mini-batch, k-means++ initialisation.

    ``batch_size`` is used by the mini-batch algorithm only.
    """

    def __init__(
        self,
        n_clusters=12,
        algorithm="minibatch",
        batch_size=250,
        max_iter=500,
        n_init=3,
        random_state=0,
    ):
        self.n_clusters = n_clusters
        self.algorithm = algorithm
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X, y=None):
        common = dict(
            n_clusters=self.n_clusters,
            init="k-means++",
            max_iter=self.max_iter,
            n_init=self.n_init,
            random_state=self.random_state,
        )
        if self.algorithm == "minibatch":
            self.model_ = MiniBatchKMeans(batch_size=self.batch_size, **common)
        elif self.algorithm == "full":
            self.model_ = KMeans(**common)
        else:
            raise ValueError(f"kmeans algorithm must be minibatch or full, not {self.algorithm!r}")
        self.model_.fit(X)
        self.labels_ = self.model_.labels_
        self.cluster_centers_ = self.model_.cluster_centers_
        return self

    def predict(self, X):
        return self.model_.predict(X)


class HierarchicalClusterer(_Clusterer):
    """Agglomerative clustering (SciPy ``linkage``), cut into ``n_clusters`` (``maxclust``).

    Linkage needs all pairwise distances: O(n^2) memory (8 bytes x n^2 / 2,
    e.g. 400 MB for 10,000 points, 1.6 GB for 20,000) and at least O(n^2)
    time. Above ``max_fit_samples`` training points the tree is built on a
    seeded random subsample (bounded mode).

    The tree's cut defines the clusters and their centroids; every point, of the
    training split as of the test split, is then labelled by the same rule, its
    nearest centroid under ``metric``, so the two splits' scores are comparable
    (``tree_labels_`` keeps the cut's own labels of the fitted points).
    """

    _EUCLIDEAN_ONLY = ("ward", "centroid", "median")

    def __init__(
        self,
        n_clusters=12,
        method="complete",
        metric="correlation",
        max_fit_samples=5000,
        random_state=0,
    ):
        self.n_clusters = n_clusters
        self.method = method
        self.metric = metric
        self.max_fit_samples = max_fit_samples
        self.random_state = random_state

    def fit(self, X, y=None):
        if self.method in self._EUCLIDEAN_ONLY and self.metric != "euclidean":
            raise ValueError(
                f"hierarchical method {self.method!r} needs metric 'euclidean', not {self.metric!r}"
            )
        n = len(X)
        if n > self.max_fit_samples:
            rng = np.random.default_rng(self.random_state)
            fit_index = np.sort(rng.choice(n, self.max_fit_samples, replace=False))
            log.info("hierarchical: linkage on %d of %d points (bounded mode)", len(fit_index), n)
        else:
            fit_index = np.arange(n)
        self.fit_index_ = fit_index
        self.linkage_ = hierarchy.linkage(X[fit_index], method=self.method, metric=self.metric)
        tree_labels = hierarchy.fcluster(self.linkage_, self.n_clusters, criterion="maxclust") - 1
        ids = np.unique(tree_labels)
        # fcluster numbers clusters 1..k without gaps: index i is cluster i.
        self.cluster_centers_ = np.stack([X[fit_index][tree_labels == i].mean(axis=0) for i in ids])
        self.tree_labels_ = tree_labels
        self.labels_ = self.predict(X)
        return self

    @property
    def distance_metric(self) -> str:
        return self.metric

    def predict(self, X):
        distances = cdist(X, self.cluster_centers_, metric=self.metric)
        return np.argmin(np.nan_to_num(distances, nan=np.inf), axis=1)


class HDBSCANClusterer(_Clusterer):
    """HDBSCAN with prediction data; test points get ``approximate_predict``.

    The cosine metric is run as euclidean on L2-normalised vectors (HDBSCAN
    has no prediction data for precomputed or cosine distances). For unit
    vectors ``|a - b|^2 = 2 (1 - cos) = 2 d_cos``, so the cosine epsilon is
    converted to ``sqrt(2 * epsilon)``. ``min_samples`` 0 means ``min_cluster_size``.
    Noise points are labelled -1.

    ``n_dimensions`` > 0 runs HDBSCAN on the first principal components of the
    training features (fitted on the training split, applied to every point):
    density estimates need few dimensions, and in a few dozen HDBSCAN calls most
    galaxies noise (docs/clustering.md). 0 keeps every feature.
    """

    def __init__(
        self,
        min_cluster_size=6,
        min_samples=0,
        cluster_selection_epsilon=0.3,
        cluster_selection_method="leaf",
        metric="cosine",
        n_dimensions=0,
        random_state=0,
    ):
        self.n_dimensions = n_dimensions
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.cluster_selection_method = cluster_selection_method
        self.metric = metric
        self.random_state = random_state  # HDBSCAN is deterministic; used by the projection

    def _prepare(self, X):
        if getattr(self, "projection_", None) is not None:
            X = self.projection_.transform(X)
        if self.metric == "cosine":
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            return X / np.where(norms > 0, norms, 1.0)
        if self.metric == "euclidean":
            return X
        raise ValueError(f"hdbscan metric must be cosine or euclidean, not {self.metric!r}")

    @property
    def distance_metric(self) -> str:
        return self.metric

    @property
    def euclidean_epsilon_(self) -> float:
        if self.metric == "cosine":
            return float(np.sqrt(2.0 * self.cluster_selection_epsilon))
        return float(self.cluster_selection_epsilon)

    def fit(self, X, y=None):
        import hdbscan
        from sklearn.decomposition import PCA

        self.projection_ = None
        if 0 < self.n_dimensions < X.shape[1]:
            self.projection_ = PCA(self.n_dimensions, random_state=self.random_state).fit(X)
        self.model_ = hdbscan.HDBSCAN(
            min_cluster_size=self.min_cluster_size,
            min_samples=self.min_samples or None,
            cluster_selection_epsilon=self.euclidean_epsilon_,
            cluster_selection_method=self.cluster_selection_method,
            metric="euclidean",
            gen_min_span_tree=True,
            prediction_data=True,
            core_dist_n_jobs=1,
        ).fit(self._prepare(X))
        self.labels_ = self.model_.labels_
        return self

    def predict(self, X):
        import hdbscan

        labels, _strength = hdbscan.approximate_predict(self.model_, self._prepare(X))
        return labels

    OUTLIER_SCORE = "HDBSCAN's GLOSH outlier score"

    def outlier_score(self, X) -> np.ndarray:
        import hdbscan

        return np.asarray(hdbscan.approximate_predict_scores(self.model_, self._prepare(X)))


class SOMClusterer(_Clusterer):
    """Self-organising map (MiniSom); each node of the ``rows x cols`` grid is a cluster.

    The cluster of a point is its winning node ``row * cols + col`` under the
    activation distance; weights start from seeded random training samples.
    """

    _CDIST = {
        "cosine": "cosine",
        "euclidean": "euclidean",
        "manhattan": "cityblock",
        "chebyshev": "chebyshev",
    }

    def __init__(
        self,
        rows=4,
        cols=3,
        sigma=1.0,
        learning_rate=0.05,
        neighborhood_function="triangle",
        activation_distance="cosine",
        iterations=10000,
        random_state=0,
    ):
        self.rows = rows
        self.cols = cols
        self.sigma = sigma
        self.learning_rate = learning_rate
        self.neighborhood_function = neighborhood_function
        self.activation_distance = activation_distance
        self.iterations = iterations
        self.random_state = random_state

    def fit(self, X, y=None):
        from minisom import MiniSom

        self.som_ = MiniSom(
            self.rows,
            self.cols,
            X.shape[1],
            sigma=self.sigma,
            learning_rate=self.learning_rate,
            neighborhood_function=self.neighborhood_function,
            activation_distance=self.activation_distance,
            random_seed=self.random_state,
        )
        self.som_.random_weights_init(X)
        self.som_.train_batch(X, self.iterations)
        self.labels_ = self.predict(X)
        return self

    @property
    def cluster_centers_(self) -> np.ndarray:
        return self.som_.get_weights().reshape(self.rows * self.cols, -1)

    OUTLIER_SCORE = "distance to the winning node (quantisation error)"

    @property
    def distance_metric(self) -> str:
        return self._CDIST[self.activation_distance]

    def predict(self, X):
        distances = cdist(X, self.cluster_centers_, metric=self._CDIST[self.activation_distance])
        return np.argmin(distances, axis=1)


class GMMClusterer(_Clusterer):
    """Gaussian mixture; ``init_params`` k-means++ places the initial means as the study."""

    OUTLIER_SCORE = "negative log-likelihood under the mixture"

    def __init__(
        self,
        n_components=12,
        covariance_type="full",
        tol=1.0e-7,
        max_iter=1000,
        init_params="k-means++",
        reg_covar=1.0e-6,
        random_state=0,
    ):
        self.n_components = n_components
        self.reg_covar = reg_covar
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.init_params = init_params
        self.random_state = random_state

    def fit(self, X, y=None):
        self.model_ = GaussianMixture(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            tol=self.tol,
            max_iter=self.max_iter,
            init_params=self.init_params,
            reg_covar=self.reg_covar,
            random_state=self.random_state,
        ).fit(X)
        if not self.model_.converged_:
            log.warning("Gaussian mixture did not converge in %d iterations", self.max_iter)
        self.labels_ = self.model_.predict(X)
        return self

    @property
    def cluster_centers_(self) -> np.ndarray:
        return self.model_.means_

    def predict(self, X):
        return self.model_.predict(X)

    def outlier_score(self, X) -> np.ndarray:
        return -self.model_.score_samples(X)
