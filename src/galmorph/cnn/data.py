"""tf.data pipelines over HDF5 shards: crop, online augmentation, measured morphology, prefetch.

A Python generator (h5py) yields one row at a time, so a split is never loaded
whole: the central region of the stored image, the row's measures
(:mod:`galmorph.cnn.measures`: winding and shape), its label and the
parameters of the row's random view. Batching, resizing, the geometric
transform and the photometric jitter then run as parallel TensorFlow ops while the model trains.

Every view is one affine resampling of the stored pixels (rotation by any
angle, zoom, shift and, where allowed, a mirror), drawn anew at every epoch
from ``(seed, epoch)``, so training never sees the same pixels twice and a
resumed run sees the same views as an uninterrupted one. A mirror reverses a
spiral's winding: a mirrored row takes the label its class is paired with
(``cnn.mirror_pairs``) and its winding measures change sign.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from galmorph.cnn import measures
from galmorph.cnn.shards import ShardIndex
from galmorph.cnn.views import (  # noqa: F401  (re-exported: the pipeline's vocabulary)
    IDENTITY_VIEW,
    VIEW_COLUMNS,
    Augmentation,
    epoch_order,
    mirror_map,
    view_matrices,
)
from galmorph.errors import GalmorphError, InputDataError, defer

log = logging.getLogger(__name__)


def region_images(index: ShardIndex, order: np.ndarray, side: int):
    """Yield the central ``side`` pixels of the rows in ``order``, zero-padded past the edge."""
    stored = min(side, index.image_size)
    pad = (side - stored) // 2
    for image, label in index.iter_images(order, stored):
        if pad or stored != side:
            image = np.pad(image, ((pad, side - stored - pad), (pad, side - stored - pad), (0, 0)))
        yield image, label


def index_measures(
    index: ShardIndex, crops, kind: str = "morphometry", desc: str = "measures"
) -> np.ndarray:
    """:func:`galmorph.cnn.measures.measure_regions` of every row: set ``kind``, central ``crops``.

    ``crops``: sides in native pixels (:func:`galmorph.cnn.measures.measure_crops`).
    """
    crops = tuple(int(crop) for crop in crops)
    width = len(measures.feature_names(kind)) * len(crops)
    out = np.empty((len(index), width), dtype=np.float32)
    rows = region_images(index, np.arange(len(index)), max(crops))
    for position, (image, _) in enumerate(
        tqdm(rows, total=len(index), desc=desc, unit="image", mininterval=5)
    ):
        out[position] = measures.measure_regions(image, kind, crops)
    return out


def presized_side(side: int, crop: int, input_size: int) -> int:
    """Side of a ``side``-pixel region once ``crop`` native pixels span ``input_size``."""
    return max(input_size, int(round(side * input_size / crop)))


def presize(images: tf.Tensor, crop: int, input_size: int) -> tf.Tensor:
    """uint8 regions (b, S, S, 3) -> float32 in [0, 1], ``crop`` pixels resized to ``input_size``.

    Antialiased: a plain bilinear downscale would alias the fine structure of
    spiral arms. The same for every view of a region, so :class:`PresizedCache`
    keeps its result for later epochs.
    """
    side = int(images.shape[1])
    images = tf.cast(images, tf.float32) / 255.0
    resized = presized_side(side, crop, input_size)
    if resized != side:
        images = tf.image.resize(images, (resized, resized), antialias=True)
    return images


def render_views(
    images: tf.Tensor,
    views: tf.Tensor,
    crop: int,
    input_size: int,
    photometric: bool,
    native_side: int | None = None,
) -> tf.Tensor:
    """uint8 regions (b, S, S, 3) and their views -> float32 model input (b, n, n, 3) in [0, 1].

    The region is first resized (:func:`presize`) so that ``crop`` native
    pixels span ``input_size``, then turned, zoomed, shifted and mirrored in
    one bilinear resampling; pixels from outside are black, like the sky.
    With ``native_side``, ``images`` are regions of that many native pixels
    already presized (float32, :class:`PresizedCache`).
    """
    if native_side is None:
        native_side = int(images.shape[1])
        images = presize(images, crop, input_size)
    resized = int(images.shape[1])
    scale = resized * crop / (native_side * input_size)
    matrices = tf.numpy_function(
        lambda v: view_matrices(v, input_size, resized, scale), [views], tf.float32
    )
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.reshape(matrices, (-1, 8)),
        output_shape=tf.constant([input_size, input_size], tf.int32),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    out = tf.ensure_shape(out, (None, input_size, input_size, 3))
    if photometric:
        mean = tf.reduce_mean(out, axis=(1, 2, 3), keepdims=True)
        brightness = tf.reshape(views[:, 5], (-1, 1, 1, 1))
        contrast = tf.reshape(views[:, 6], (-1, 1, 1, 1))
        sigma = tf.reshape(views[:, 7], (-1, 1, 1, 1))
        seed = tf.cast(tf.stack([views[0, 8], views[-1, 8]]), tf.int64)
        noise = tf.random.stateless_normal(tf.shape(out), seed=seed) * sigma
        out = tf.clip_by_value((out - mean) * contrast + mean + brightness + noise, 0.0, 1.0)
    return out


class PresizedCache:
    """The rows' regions :func:`presize`\\ d once, in a memory-mapped float32 ``.npy`` file.

    Every epoch draws new views of the same regions, but the antialiased resize
    that comes before the view is the same each time, and on one core it cost
    more than the rest of the pipeline (two thirds of it). The cache reads
    every row's region from the shards once, when it is made, resizes it in
    batches and keeps the result in ``folder``; a pass then reads the memory
    map (the page cache keeps it close without the process holding the split
    in its own memory). The model sees the same pixels, to the bit, as without
    the cache.
    """

    def __init__(
        self,
        index: ShardIndex,
        side: int,
        crop: int,
        input_size: int,
        folder: str | Path,
        batch_size: int = 64,
    ):
        self.native_side = side
        self.side = presized_side(side, crop, input_size)
        self.labels = index.labels
        handle, path = tempfile.mkstemp(prefix="regions-", suffix=".npy", dir=folder)
        os.close(handle)
        self.path = Path(path)
        self.images = np.lib.format.open_memmap(
            self.path, mode="w+", dtype=np.float32, shape=(len(index), self.side, self.side, 3)
        )
        rows = region_images(index, np.arange(len(index)), side)
        with tqdm(total=len(index), desc="regions", unit="image", mininterval=5) as progress:
            for start in range(0, len(index), batch_size):
                batch = np.stack([image for image, _ in itertools.islice(rows, batch_size)])
                resized = presize(tf.constant(batch), crop, input_size)
                self.images[start : start + len(batch)] = resized.numpy()
                progress.update(len(batch))

    @staticmethod
    def fits(n_rows: int, side: int, crop: int, input_size: int, folder: str | Path) -> bool:
        """Whether ``folder``'s disk has room for the cache (with 10% to spare)."""
        needed = n_rows * presized_side(side, crop, input_size) ** 2 * 3 * 4
        return shutil.disk_usage(folder).free > 1.1 * needed

    def iter_images(self, order: np.ndarray):
        """Yield ``(presized region, label)`` of the rows in ``order``."""
        for position in order:
            yield np.array(self.images[position]), int(self.labels[position])


def make_dataset(
    index: ShardIndex,
    *,
    crop: int | None,
    input_size: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    first_epoch: int = 0,
    augment: Augmentation | None = None,
    features: np.ndarray | None = None,
    measure_set: str = "morphometry",
    mirror: np.ndarray | None = None,
    view: tuple[float, bool] = (0.0, False),
    targets: np.ndarray | None = None,
) -> tf.data.Dataset:
    """A dataset of ``(inputs, labels)`` batches over the rows of ``index``.

    Parameters
    ----------
    index : ShardIndex
        The rows to stream (a split, or a subset of one).
    crop : int or None
        Side in stored pixels of the central region the network sees (None:
        the whole image), resized to ``input_size``.
    input_size : int
        Side of the network input.
    batch_size : int
    shuffle : bool
        Visit the rows in a new seeded order at every pass.
    seed : int
        Seeds the order and the views of every pass, with the pass number.
    cache_dir : path, optional
        Read and resize every row's region once, now, and keep it in a
        memory-mapped file in this folder for every pass (:class:`PresizedCache`).
    first_epoch : int
        Number of the first pass (0-based), for a resumed training.
    augment : Augmentation, optional
        Random views (training); None: every row is seen as ``view``.
    features : ndarray (n, k), optional
        Measured morphology of the rows (:func:`index_measures`); the
        inputs are then a dict ``{"image", "measures"}``, else the image alone.
    measure_set : str
        The set ``features`` come from (:data:`galmorph.cnn.measures.MEASURE_SETS`):
        says which measures a mirrored view negates.
    mirror : ndarray of int, optional
        :func:`mirror_map` of the classes; needed when a view mirrors.
    view : (angle, mirrored)
        The one fixed view of every row without ``augment`` (test-time
        augmentation: each pass one view). The labels stay the true ones; a
        mirrored pass's probabilities are mapped back by the caller.
    targets : ndarray (n, k) of float, optional
        What the rows are to predict instead of their class (the vote
        fractions of :mod:`galmorph.cnn.votes`); a mirror leaves them as they are.

    Returns
    -------
    tf.data.Dataset
        Images ``float32 (b, input_size, input_size, 3)`` in [0, 1] (with
        ``measures`` ``float32 (b, k)``) and labels ``int32 (b,)`` (or the
        ``targets`` rows, ``float32 (b, k)``).
    """
    crop = index.image_size if crop is None else crop
    if crop > index.image_size:
        raise InputDataError(
            f"crop of {crop} pixels is larger than the stored images ({index.image_size} "
            "pixels): lower cnn.crop or raise images.size"
        )
    side = augment.region(crop) if augment is not None else crop
    if augment is not None and augment.mirror and mirror is None:
        raise InputDataError("mirrored views need the mirror map of the classes")
    passes = itertools.count(first_epoch)
    cache = None
    if cache_dir is not None:
        if PresizedCache.fits(len(index), side, crop, input_size, cache_dir):
            cache = PresizedCache(index, side, crop, input_size, cache_dir, batch_size)
        else:
            log.warning("%s: too little free disk for a region cache; reading shards", cache_dir)
    n_features = 0 if features is None else features.shape[1]
    fixed = IDENTITY_VIEW.copy()
    fixed[0], fixed[1] = view[0], float(view[1])

    def rows():
        epoch = next(passes)
        order = epoch_order(len(index), seed, epoch, shuffle)
        if augment is not None:
            views = augment.draw(len(order), np.random.default_rng([seed, epoch, 1]))
        else:
            views = np.tile(fixed, (len(order), 1))
        try:
            if cache is not None:
                images = cache.iter_images(order)
            else:
                images = region_images(index, order, side)
            for position, view_row, (image, label) in zip(order, views, images, strict=True):
                row_features = (
                    features[position] if features is not None else np.zeros(0, np.float32)
                )
                if view_row[1] > 0.5:  # a mirrored view: the winding reverses
                    if features is not None:
                        row_features = measures.mirror(row_features, measure_set)
                    if augment is not None and targets is None:  # the label follows the pixels
                        label = int(mirror[label])
                target = label if targets is None else targets[position]
                yield image, row_features, view_row, target
        except GalmorphError as error:  # TensorFlow re-raises it as its own error type
            defer(error)
            raise

    dataset = tf.data.Dataset.from_generator(
        rows,
        output_signature=(
            tf.TensorSpec((side, side, 3), tf.uint8)
            if cache is None
            else tf.TensorSpec((cache.side, cache.side, 3), tf.float32),
            tf.TensorSpec((n_features,), tf.float32),
            tf.TensorSpec((len(VIEW_COLUMNS),), tf.float32),
            tf.TensorSpec((), tf.int32)
            if targets is None
            else tf.TensorSpec((targets.shape[1],), tf.float32),
        ),
    )
    photometric = augment is not None

    def to_inputs(images, row_features, views, labels):
        native_side = None if cache is None else cache.native_side
        pixels = render_views(images, views, crop, input_size, photometric, native_side)
        if features is None:
            return pixels, labels
        return {"image": pixels, "measures": row_features}, labels

    # A generator's length is unknown to tf.data; stating it lets Keras count steps per epoch.
    return (
        dataset.apply(tf.data.experimental.assert_cardinality(len(index)))
        .batch(batch_size)
        .map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def to_model_input(
    images, input_size: int, crop: int | None = None, view: tuple[float, bool] = (0.0, False)
) -> tf.Tensor:
    """uint8 central regions (b, S, S, 3) -> model input of one fixed view, as in evaluation."""
    images = tf.convert_to_tensor(images)
    crop = int(images.shape[1]) if crop is None else crop
    fixed = IDENTITY_VIEW.copy()
    fixed[0], fixed[1] = view[0], float(view[1])
    views = tf.constant(np.tile(fixed, (int(images.shape[0]), 1)))
    return render_views(images, views, crop, input_size, photometric=False)
