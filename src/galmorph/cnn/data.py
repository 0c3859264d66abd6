"""tf.data pipelines over HDF5 shards: crop, resize, scale to [0, 1], seeded shuffle, prefetch.

A Python generator (h5py) yields the central crop of one row at a time, so a
split is never loaded whole; batching, resizing and scaling run as parallel
TensorFlow ops and the next batches are prefetched while the model trains.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from galmorph.cnn.shards import CropCache, ShardIndex, central_crop_bounds
from galmorph.errors import GalmorphError, defer

log = logging.getLogger(__name__)


def to_model_input(images: tf.Tensor, input_size: int) -> tf.Tensor:
    """uint8 images (..., H, W, 3) -> float32 in [0, 1], resized to ``input_size`` square.

    Antialiased resizing averages the pixels a downscale drops (a plain
    bilinear resize would alias the fine structure of spiral arms).
    """
    images = tf.cast(images, tf.float32) / 255.0
    if images.shape[-2] == input_size and images.shape[-3] == input_size:
        return images
    return tf.image.resize(images, (input_size, input_size), antialias=True)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Row order of one pass: a seeded permutation per epoch, or index order."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


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
) -> tf.data.Dataset:
    """A dataset of ``(images, labels)`` batches over the rows of ``index``.

    Parameters
    ----------
    index : ShardIndex
        The rows to stream (a split, or a subset of one).
    crop : int or None
        Central crop in pixels of the stored images before resizing.
    input_size : int
        Side of the network input.
    batch_size : int
    shuffle : bool
        Visit the rows in a new seeded order at every pass (a full
        permutation of the rows, better mixed than a shuffle buffer).
    seed : int
    cache_dir : path, optional
        Keep the crops read in the first pass in an uncompressed memory-mapped
        file in this folder (:class:`CropCache`), so that later passes skip the
        decompression; nothing is cached if the disk lacks room.
    first_epoch : int
        Number of the first pass (0-based): a training resumed at epoch ``e``
        visits the rows in the order the uninterrupted run used at ``e``.

    Returns
    -------
    tf.data.Dataset
        ``float32 (b, input_size, input_size, 3)`` in [0, 1] and ``int32 (b,)``.
    """
    start, stop = central_crop_bounds(index.image_size, crop)
    side = stop - start
    passes = itertools.count(first_epoch)
    cache = None
    if cache_dir is not None:
        if CropCache.fits(index, crop, cache_dir):
            cache = CropCache(index, crop, cache_dir)
        else:
            log.warning("%s: too little free disk for a crop cache; reading shards", cache_dir)

    def rows():
        order = epoch_order(len(index), seed, next(passes), shuffle)
        try:
            if cache is None:
                yield from index.iter_images(order, crop)
            else:
                yield from cache.iter_images(order)
        except GalmorphError as error:  # TensorFlow re-raises it as its own error type
            defer(error)
            raise

    dataset = tf.data.Dataset.from_generator(
        rows,
        output_signature=(
            tf.TensorSpec((side, side, 3), tf.uint8),
            tf.TensorSpec((), tf.int32),
        ),
    )
    # A generator's length is unknown to tf.data; stating it lets Keras count steps per epoch.
    return (
        dataset.apply(tf.data.experimental.assert_cardinality(len(index)))
        .batch(batch_size)
        .map(
            lambda images, labels: (to_model_input(images, input_size), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
