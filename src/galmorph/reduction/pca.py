"""``FastIncrementalPCA`` fits the same model as scikit-learn's
:class:`~sklearn.decomposition.IncrementalPCA` (the incremental SVD of Ross et
al. 2008: each batch is merged with the previous components scaled by their
singular values and a mean-correction row), but spends its time only on the
arithmetic that matters:

- the stacked matrix ``Y`` ((k + batch + 1) x n_features, with n_features =
  90,828 for 174x174x3 crops) is wide and short, so its SVD comes from the
  eigendecomposition of the small Gram matrix ``Y Y^T`` (one BLAS ``syrk``)
  instead of a full LAPACK ``gesdd``; only the k kept right singular vectors
  are formed (``U_k^T Y``);
- the data stay in float32 (images are 8-bit: float32 holds them exactly), the
  small Gram matrix and all statistics are float64;
- ``Y`` is one preallocated buffer the batch is centred into, so no input
  validation copies, ``vstack`` or float64 upcasts happen per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import IncrementalPCA

log = logging.getLogger(__name__)


class FastIncrementalPCA(TransformerMixin, BaseEstimator):
    """Incremental PCA, the model of scikit-learn's ``IncrementalPCA``, faster.

    Parameters
    ----------
    n_components : int
        Number of components kept after every batch.
    whiten : bool
        Not supported (scikit-learn's option); True is refused with a message.
    batch_size : int, optional
        Rows per batch in :meth:`fit`; default ``5 * n_features`` as scikit-learn.
    dtype : {numpy.float32, numpy.float64}
        Precision of the per-batch arithmetic on the wide matrices. float32 is
        exact for 8-bit pixels and agrees with float64 to ~1e-5 on the
        explained variance; statistics and the small Gram matrix are float64.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
    explained_variance_, explained_variance_ratio_, singular_values_ : ndarray (n_components,)
    mean_, var_ : ndarray (n_features,)
        Per-feature mean and (population) variance of all samples seen.
    noise_variance_ : float
    n_samples_seen_ : int
    """

    def __init__(
        self,
        n_components: int,
        *,
        batch_size: int | None = None,
        dtype=np.float32,
        whiten: bool = False,
    ):
        self.n_components = n_components
        self.batch_size = batch_size
        self.dtype = dtype
        self.whiten = whiten

    # -- fitting -----------------------------------------------------------
    def _reset(self) -> None:
        for name in ("n_samples_seen_", "_m2", "_buffer", "_components", "_directions"):
            self.__dict__.pop(name, None)

    def partial_fit(self, X, y=None):
        """Merge one batch ``X`` (n_samples, n_features) into the model."""
        _refuse_unsupported(self, X)
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D batch, got shape {X.shape}")
        dtype = np.dtype(self.dtype)
        k = int(self.n_components)
        n_batch, n_features = X.shape
        first = not hasattr(self, "n_samples_seen_")
        if first:
            if not 1 <= k <= min(n_batch, n_features):
                raise ValueError(
                    f"n_components={k} must be between 1 and min(first batch rows, features) "
                    f"= {min(n_batch, n_features)}"
                )
            self.n_features_in_ = n_features
        elif n_features != self.n_features_in_:
            raise ValueError(f"batch has {n_features} features, the model {self.n_features_in_}")
        if n_batch == 0:
            return self
        # One float64 pass both checks finiteness and gives the batch mean.
        batch_mean = X.mean(axis=0, dtype=np.float64)
        if not np.isfinite(batch_mean).all():
            raise ValueError("batch contains NaN or infinite values")

        rows = (0 if first else k) + n_batch + (0 if first else 1)
        buffer = getattr(self, "_buffer", None)
        if buffer is None or buffer.shape[0] < rows or buffer.dtype != dtype:
            buffer = self._buffer = np.empty((max(rows, k + n_batch + 1), n_features), dtype)
        Y = buffer[:rows]
        top = 0 if first else k
        centred = Y[top : top + n_batch]
        np.subtract(X, batch_mean.astype(dtype), out=centred, casting="unsafe")
        batch_m2 = np.einsum("ij,ij->j", centred, centred, dtype=np.float64)

        if first:
            n_total, mean, m2 = n_batch, batch_mean, batch_m2
        else:
            n_old = self.n_samples_seen_
            n_total = n_old + n_batch
            delta = batch_mean - self.mean_
            mean = self.mean_ + delta * (n_batch / n_total)
            m2 = self._m2 + batch_m2 + delta**2 * (n_old * n_batch / n_total)
            # Rows s_i * v_i of the previous model: the block stacked with the new batch.
            Y[:k] = self.singular_values_[:, None] * self._directions
            # The mean-correction row keeps the stacked matrix centred on the new mean.
            Y[-1] = np.sqrt(n_old * n_batch / n_total) * (self.mean_ - batch_mean)

        singular_values, directions = _top_singular(Y, k)
        self._directions = directions.astype(dtype, copy=False)
        self.__dict__.pop("_components", None)
        eigenvalues = singular_values**2

        self.n_samples_seen_ = n_total
        self.mean_ = mean
        self._m2 = m2
        self.var_ = m2 / n_total
        self.singular_values_ = singular_values[:k]
        explained = eigenvalues / (n_total - 1)
        self.explained_variance_ = explained[:k]
        total = m2.sum()
        self.explained_variance_ratio_ = eigenvalues[:k] / total if total > 0 else 0 * explained[:k]
        # scikit-learn averages the variance left in the stacked matrix's other singular
        # values (min(rows, features) of them), unless k equals the batch rows or features
        if k in (n_batch, n_features):
            self.noise_variance_ = 0.0
        else:
            self.noise_variance_ = float(explained[k:].mean()) if explained.size > k else 0.0
        self.n_components_ = k
        return self

    def fit(self, X, y=None):
        """Fit on ``X`` in batches of ``batch_size`` rows (as scikit-learn's ``fit``)."""
        self._reset()
        _refuse_unsupported(self, X)
        X = np.asarray(X)
        batch_size = self.batch_size or 5 * X.shape[1]
        for batch in _batch_slices(X.shape[0], batch_size, min_last=self.n_components):
            self.partial_fit(X[batch])
        self.release_buffer()
        return self

    def release_buffer(self) -> None:
        """Free the per-batch work buffer (kept between ``partial_fit`` calls)."""
        self.__dict__.pop("_buffer", None)

    # -- fitted model ------------------------------------------------------
    @property
    def components_(self) -> np.ndarray:
        """Unit principal axes, signs fixed as scikit-learn's ``svd_flip``."""
        if "_components" not in self.__dict__:
            if not hasattr(self, "_directions"):
                raise AttributeError("components_ (the model is not fitted)")
            components = np.asarray(self._directions, dtype=np.float64)
            peak = np.argmax(np.abs(components), axis=1)
            signs = np.sign(components[np.arange(len(components)), peak])
            signs[signs == 0] = 1.0
            self._components = components * signs[:, None]
        return self._components

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X)
        components = self.components_.astype(X.dtype if X.dtype == np.float32 else np.float64)
        return X @ components.T - (self.mean_ @ self.components_.T).astype(components.dtype)

    def inverse_transform(self, X) -> np.ndarray:
        return np.asarray(X) @ self.components_ + self.mean_

    def to_sklearn(self) -> IncrementalPCA:
        """A genuine, fitted :class:`sklearn.decomposition.IncrementalPCA` of this model.

        The pickle of the result needs only scikit-learn to load and use.
        """
        model = IncrementalPCA(n_components=self.n_components_, batch_size=self.batch_size)
        model.components_ = self.components_.copy()
        model.n_components_ = self.n_components_
        model.explained_variance_ = self.explained_variance_.copy()
        model.explained_variance_ratio_ = self.explained_variance_ratio_.copy()
        model.singular_values_ = self.singular_values_.copy()
        model.mean_ = self.mean_.copy()
        model.var_ = self.var_.copy()
        model.noise_variance_ = self.noise_variance_
        model.n_samples_seen_ = self.n_samples_seen_
        model.n_features_in_ = self.n_features_in_
        model.batch_size_ = self.batch_size or 5 * self.n_features_in_
        return model

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_buffer", None)
        return state


def _refuse_unsupported(model, X) -> None:
    """Whitening and sparse input are scikit-learn's, not this reducer's: say so."""
    if model.whiten:
        raise ValueError(
            "FastIncrementalPCA does not whiten; use sklearn.decomposition.IncrementalPCA"
            "(whiten=True), or a StandardScaler after it as the workflow does"
        )
    if sparse.issparse(X):
        raise TypeError(
            "FastIncrementalPCA takes dense arrays; densify the batch (X.toarray()) or use "
            "sklearn.decomposition.IncrementalPCA, which takes sparse batches"
        )


def _top_singular(Y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """All singular values of ``Y`` (min(rows, cols) of them, descending) and its top ``k``
    unit right singular vectors (rows), by the cheaper route for its shape.

    A wide ``Y`` (images: far more features than rows) goes through the small Gram
    matrix ``Y Y^T`` (one BLAS ``syrk``); a tall one through ``Y^T Y``, so no shape
    builds a matrix larger than ``min(rows, cols)`` squared. Where a kept singular value
    is only rounding noise (rank-deficient, constant or tiny batches), dividing by it
    would give rows that are not unit vectors: those cases take LAPACK's SVD of ``Y``,
    whose vectors are orthonormal whatever the rank, as scikit-learn's do.
    """
    rows, cols = Y.shape
    small = min(rows, cols)
    if rows <= cols:
        gram = (Y @ Y.T).astype(np.float64)
    else:  # few columns: float64 costs little and keeps the long sums exact
        wide = Y.astype(np.float64, copy=False)
        gram = wide.T @ wide
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1][:small]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    singular = np.sqrt(eigenvalues)
    if eigenvalues[k - 1] > 0:
        vectors = eigenvectors[:, order[:k]]
        if rows <= cols:
            # in the data's precision: the wide matrix is never copied to float64
            directions = (vectors.T.astype(Y.dtype) @ Y) / singular[:k, None].astype(Y.dtype)
        else:
            directions = vectors.T
        # In exact arithmetic every row is a unit vector; a row that is not comes from a
        # singular value that is only rounding noise of the Gram matrix.
        norms = np.linalg.norm(directions.astype(np.float64), axis=1)
        tolerance = 1.0e-3 if Y.dtype == np.float32 else 1.0e-8
        if np.all(np.abs(norms - 1.0) < tolerance):
            return singular, directions
    _, singular, vt = np.linalg.svd(Y.astype(np.float64), full_matrices=False)
    return singular, vt[:k]


def _batch_slices(n_samples: int, batch_size: int, min_last: int) -> Iterator[slice]:
    """Slices of ``batch_size`` rows; a last batch under ``min_last`` rows joins the previous."""
    starts = list(range(0, n_samples, batch_size))
    if len(starts) > 1 and n_samples - starts[-1] < min_last:
        starts.pop()
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else n_samples
        yield slice(start, stop)


def subspace_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Agreement of the row spaces of two component matrices, in [0, 1].

    ``||A_o B_o^T||_F^2 / k`` with orthonormalised rows: 1 when both span the
    same subspace, whatever the order and signs of the components.
    """
    qa = np.linalg.qr(np.asarray(a, dtype=np.float64).T)[0]
    qb = np.linalg.qr(np.asarray(b, dtype=np.float64).T)[0]
    return float(np.sum((qa.T @ qb) ** 2) / min(qa.shape[1], qb.shape[1]))
