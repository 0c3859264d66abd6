"""The reduction stage: crop, preprocess, represent and standardise the image shards.

:func:`fit_reduction` fits, on the training shards, a scikit-learn ``Pipeline``
from uint8 crops to the features the clusters are found in (``reducer.pkl``):
the preprocessing (:class:`galmorph.alignment.GalaxyAligner`: recentre, align,
mask, normalise, stretch) is its first step, so it travels with the model and
every split and new image gets the same; then either the incremental PCA of the
preprocessed pixels (``representation: pca``; the study's chain is this with
the preprocessing off, :data:`STUDY_PREPROCESS`) or rotation-invariant
descriptors (``descriptors``, :mod:`galmorph.descriptors`). A ``StandardScaler``
of its output is saved beside it (``scaler.pkl``).

:class:`FastIncrementalPCA` fits the same model as scikit-learn's
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

:func:`fit_reduction` and :func:`reduce_split` stream HDF5 shards in batches, so
peak memory is bounded by the batch, never by the number of images; a reader
thread decodes the next batch while BLAS works on the current one.

Saved reduced split (``results/reduction/{train,test}.pkl``): a dict with
``asset_id``, ``dr7objid`` (int64), ``class`` (int16 index into
``class_names``), ``class_names`` (list of str), ``features`` (float64,
(N, n_features), representation then StandardScaler), ``crop`` (int),
``representation`` (str).
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import IncrementalPCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from tqdm import tqdm

from galmorph.alignment import GalaxyAligner
from galmorph.descriptors import MorphologyDescriptors
from galmorph.errors import InputDataError
from galmorph.io import atomic_path

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


# -- streaming over HDF5 shards --------------------------------------------
def pixels(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, S, S, 3) -> float32 rows scaled to [0, 1], (N, S*S*3)."""
    flat = images.reshape(len(images), -1)
    return np.multiply(flat, np.float32(1 / 255), dtype=np.float32)


def _prefetch(iterable: Iterable, depth: int = 1) -> Iterator:
    """Iterate in a reader thread, ``depth`` items ahead (h5py decoding overlaps BLAS)."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def reader():
        try:
            for item in iterable:
                if stop.is_set():
                    return
                items.put(item)
        except BaseException as error:  # handed to the consumer
            items.put(error)
        finally:
            items.put(done)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def _iter_batches(shard_paths: Sequence[str | Path], batch_size: int, crop: int | None):
    from galmorph import hdf5

    return _prefetch(hdf5.iter_batches([str(p) for p in shard_paths], batch_size, crop=crop))


def _count(shard_paths: Sequence[str | Path]) -> int:
    from galmorph import hdf5

    return hdf5.count([str(p) for p in shard_paths])


#: ``reduction.representation`` choices: what the clusters are found in.
REPRESENTATIONS = ("pca", "descriptors")

#: ``reduction.preprocess`` that reproduces the study's chain: pixels / 255, nothing else.
STUDY_PREPROCESS = {
    "size": None,
    "recentre": False,
    "align": False,
    "mask_neighbours": False,
    "flux": "none",
    "stretch": "linear",
}


def flatten(images: np.ndarray) -> np.ndarray:
    """Images (N, ...) -> rows (N, features), the step between the aligner and the PCA."""
    return np.asarray(images).reshape(len(images), -1)


def make_aligner(preprocess: Mapping | None) -> GalaxyAligner:
    """The aligner of a ``reduction.preprocess`` section (None: the study's identity)."""
    settings = dict(STUDY_PREPROCESS)
    settings.update(preprocess or {})
    unknown = set(settings) - set(STUDY_PREPROCESS) - {"extent"}
    if unknown:
        raise ValueError(f"reduction.preprocess has unknown keys {sorted(unknown)}")
    return GalaxyAligner(**settings).fit()


def fit_reduction(
    shard_paths: Sequence[str | Path],
    crop: int | None,
    n_components: int,
    batch_size: int,
    *,
    preprocess: Mapping | None = None,
    representation: str = "pca",
) -> tuple[Pipeline, StandardScaler]:
    """Fit the representation and the scaler of its output on the (training) shards.

    Returns ``(reducer, scaler)``: ``reducer`` is a scikit-learn ``Pipeline`` from
    the uint8 crops to the representation, its first step the aligner
    (``"align"``), so the preprocessing travels with the fitted model;
    ``scaler`` standardises the reducer's output.

    ``representation="pca"``: aligner, flatten, incremental PCA of
    ``n_components`` (two streamed passes: PCA, then the scaler).
    ``"descriptors"``: aligner, :class:`~galmorph.descriptors.MorphologyDescriptors`
    (one pass). Memory is bounded by ``batch_size`` images either way.

    Raises
    ------
    InputDataError
        If the shards hold fewer images than ``n_components`` (the first batch
        must have at least that many rows).
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, not {representation!r}")
    aligner = make_aligner(preprocess)
    n_images = _count(shard_paths)
    log.info("fitting the reduction (%s) on %d training images", representation, n_images)
    if representation == "descriptors":
        describer = MorphologyDescriptors()
        scaler = StandardScaler()
        with tqdm(total=n_images, desc="descriptors", unit="img") as bar:
            for batch in _iter_batches(shard_paths, batch_size, crop):
                scaler.partial_fit(describer.transform(aligner.transform(batch.images)))
                bar.update(len(batch.images))
        if not n_images:
            raise InputDataError(f"no images in the training shards {list(shard_paths)}")
        log.info("descriptors of %d images", n_images)
        return Pipeline([("align", aligner), ("describe", describer)]), scaler

    if n_images < n_components or batch_size < n_components:
        raise InputDataError(
            f"reduction.n_components is {n_components}, but the training shards hold "
            f"{n_images} images and reduction.batch_size is {batch_size}: both must be at "
            "least n_components; lower reduction.n_components"
        )
    reducer = FastIncrementalPCA(n_components, batch_size=batch_size)
    pending = None  # a short last batch joins the previous one, as in scikit-learn's fit
    with tqdm(total=n_images, desc="incremental PCA", unit="img") as bar:
        for batch in _iter_batches(shard_paths, batch_size, crop):
            rows = flatten(aligner.transform(batch.images))
            if pending is not None and len(rows) < n_components:
                pending = np.concatenate([pending, rows])
                continue
            if pending is not None:
                reducer.partial_fit(pending)
                bar.update(len(pending))
            pending = rows
        if pending is not None:
            reducer.partial_fit(pending)
            bar.update(len(pending))
    reducer.release_buffer()
    log.info(
        "fitted %d components on %d images: %.1f%% of the variance",
        n_components,
        reducer.n_samples_seen_,
        100 * reducer.explained_variance_ratio_.sum(),
    )
    scaler = StandardScaler()
    for batch in tqdm(
        _iter_batches(shard_paths, batch_size, crop), desc="scaler", unit="batch", leave=True
    ):
        rows = flatten(aligner.transform(batch.images))
        scaler.partial_fit(reducer.transform(rows).astype(np.float64))
    # The saved PCA is a plain scikit-learn IncrementalPCA.
    pipeline = Pipeline(
        [
            ("align", aligner),
            ("flatten", FunctionTransformer(flatten)),
            ("pca", reducer.to_sklearn()),
        ]
    )
    return pipeline, scaler


def representation_of(reducer) -> str:
    """``"pca"`` or ``"descriptors"``: what a fitted reducer (:func:`fit_reduction`) makes."""
    return "descriptors" if "describe" in reducer.named_steps else "pca"


def reduce_split(
    shard_paths: Sequence[str | Path],
    crop: int | None,
    reducer,
    scaler: StandardScaler,
    batch_size: int,
) -> dict:
    """Reduced, standardised features of every image of the shards, with ids and labels.

    ``reducer`` is a fitted pipeline of :func:`fit_reduction` (uint8 crops in):
    the training split, the test split and new images all go through its
    aligner. The result is the dict described in the module docstring.
    """
    from galmorph import hdf5

    paths = [str(p) for p in shard_paths]
    parts: dict[str, list[np.ndarray]] = {"asset_id": [], "dr7objid": [], "class": [], "f": []}
    for batch in tqdm(_iter_batches(paths, batch_size, crop), desc="reduce", unit="batch"):
        parts["asset_id"].append(np.asarray(batch.asset_id, dtype=np.int64))
        parts["dr7objid"].append(np.asarray(batch.dr7objid, dtype=np.int64))
        parts["class"].append(np.asarray(batch.labels, dtype=np.int16))
        reduced = np.asarray(reducer.transform(batch.images), dtype=np.float64)
        parts["f"].append(scaler.transform(reduced))
    if not parts["f"]:
        raise InputDataError(f"no images in the shards {paths}: the split is empty")
    return {
        "asset_id": np.concatenate(parts["asset_id"]),
        "dr7objid": np.concatenate(parts["dr7objid"]),
        "class": np.concatenate(parts["class"]),
        "class_names": list(hdf5.read_class_names(paths)),
        "features": np.concatenate(parts["f"]),
        "crop": crop,
        "representation": representation_of(reducer),
    }


def save_pickle(obj, path: str | Path) -> None:
    """Pickle ``obj`` to ``path`` atomically."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)


def load_pickle(path: str | Path):
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError) as error:
        raise InputDataError(
            f"cannot read pickle {path}: {error}; rerun the rule that makes it"
        ) from error


def load_reduced(path: str | Path) -> dict:
    """A reduced split written by :func:`reduce_split`, checked."""
    data = load_pickle(path)
    missing = {"asset_id", "dr7objid", "class", "class_names", "features"} - set(data)
    if missing:
        raise InputDataError(f"{path} lacks {sorted(missing)}: rerun the reduction")
    return data


def example_reconstructions(shard_paths: Sequence[str | Path], crop: int | None, reducer, n: int):
    """The first ``n`` crops of the shards, as preprocessed, and their PCA reconstructions.

    Returns ``(rows, titles)``: ``rows`` maps a row name to images (n, S, S, 3)
    in [0, 1] for display: ``"original"``, ``"preprocessed"`` (when the
    preprocessing changes the crop) and ``"reconstructed"`` (PCA only).
    """
    from galmorph import hdf5

    names = hdf5.read_class_names([str(p) for p in shard_paths])
    batch = next(iter(hdf5.iter_batches([str(p) for p in shard_paths], n, crop=crop)))
    aligner = reducer.named_steps["align"]
    aligned = aligner.transform(batch.images)
    rows = {"original": pixels(batch.images).reshape(batch.images.shape)}
    if not aligner.identity:
        rows["preprocessed"] = display_scale(aligned)
    if representation_of(reducer) == "pca":
        pca = reducer.named_steps["pca"]
        rebuilt = pca.inverse_transform(pca.transform(flatten(aligned))).reshape(aligned.shape)
        rows["reconstructed"] = display_scale(rebuilt) if not aligner.identity else rebuilt
    titles = [
        f"{asset} ({names[label]})"
        for asset, label in zip(batch.asset_id, batch.labels, strict=True)
    ]
    return {name: np.clip(images, 0.0, 1.0) for name, images in rows.items()}, titles


def display_scale(images: np.ndarray) -> np.ndarray:
    """Preprocessed images (sky 0, stretched) scaled to [0, 1] for display, one scale for all."""
    images = np.asarray(images, dtype=np.float32)
    top = float(np.percentile(images, 99.5)) if images.size else 1.0
    return np.clip(images / (top if top > 0 else 1.0), 0.0, 1.0)
