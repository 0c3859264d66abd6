"""The reduction stage: crop, preprocess, represent and standardise the image shards.

:func:`fit_reduction` fits, on the training shards, a scikit-learn ``Pipeline``
from uint8 crops to the features the clusters are found in (``reducer.pkl``):
the preprocessing (:class:`galmorph.reduction.alignment.GalaxyAligner`: recentre, align,
mask, normalise, stretch) is its first step, so it travels with the model and
every split and new image gets the same; then either the incremental PCA of the
preprocessed pixels (``representation: pca``; the study's chain is this with
the preprocessing off, :data:`STUDY_PREPROCESS`) or rotation-invariant
descriptors (``descriptors``, :mod:`galmorph.reduction.descriptors`). A ``StandardScaler``
of its output is saved beside it (``scaler.pkl``).


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
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from tqdm import tqdm

from galmorph.errors import InputDataError
from galmorph.io import atomic_path
from galmorph.reduction.alignment import GalaxyAligner
from galmorph.reduction.descriptors import MorphologyDescriptors
from galmorph.reduction.pca import FastIncrementalPCA

log = logging.getLogger(__name__)


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
    from galmorph.images import hdf5

    return _prefetch(hdf5.iter_batches([str(p) for p in shard_paths], batch_size, crop=crop))


def _count(shard_paths: Sequence[str | Path]) -> int:
    from galmorph.images import hdf5

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
    ``"descriptors"``: aligner, :class:`~galmorph.reduction.descriptors.MorphologyDescriptors`
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
    from galmorph.images import hdf5

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
    from galmorph.images import hdf5

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
