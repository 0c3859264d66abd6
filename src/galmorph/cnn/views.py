"""Views of a training image: the random rotation, zoom, shift, mirror and jitter of each row.

TensorFlow-free (the workflow's DAG reads :meth:`Augmentation.region` to size
the balanced set), seeded by ``(seed, epoch)`` so that a resumed training
sees the same views as an uninterrupted one. The pixels are resampled in
:func:`galmorph.cnn.data.render_views`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from galmorph.errors import InputDataError

#: Columns of the per-row view parameters fed from the generator to the transform.
#: ``noise_seed`` is an integer below 2**24 (exact in float32) seeding the batch's pixel noise.
VIEW_COLUMNS = (
    "angle", "mirror", "zoom", "shift_x", "shift_y", "brightness", "contrast", "noise", "noise_seed"
)  # fmt: skip
IDENTITY_VIEW = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], dtype=np.float32)


@dataclass(frozen=True)
class Augmentation:
    """Random views of the training images, drawn per row and epoch (``cnn.augment.*``).

    Attributes
    ----------
    rotate : bool
        Any angle: half of the views turn by an exact multiple of 90 degrees
        (no resampling blur), the other half by an angle drawn uniformly.
    max_zoom : float
        Zoom factor drawn in ``[1 - max_zoom, 1 + max_zoom]``.
    max_shift : float
        Shift of the centre, a fraction of the crop, in each axis.
    brightness, contrast : float
        Additive brightness in ``[-b, b]`` (images are in [0, 1]); contrast
        factor about the image mean in ``[1 - c, 1 + c]``.
    noise : float
        Gaussian pixel noise with a standard deviation drawn in ``[0, noise]``.
    mirror : bool
        Mirror half of the views, swapping the labels of mirror pairs.
    """

    rotate: bool = True
    max_zoom: float = 0.1
    max_shift: float = 0.04
    brightness: float = 0.05
    contrast: float = 0.15
    noise: float = 0.02
    mirror: bool = True

    def region(self, crop: int) -> int:
        """Side of the stored region a view of ``crop`` pixels may reach (turned, zoomed out)."""
        reach = (math.sqrt(2.0) if self.rotate else 1.0) / (1.0 - self.max_zoom)
        return int(math.ceil(crop * (reach + 2.0 * self.max_shift))) + 2

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of :data:`VIEW_COLUMNS`."""
        views = np.tile(IDENTITY_VIEW, (n, 1))
        if self.rotate:
            exact = rng.random(n) < 0.5
            views[:, 0] = np.where(exact, 90.0 * rng.integers(0, 4, n), rng.uniform(0, 360, n))
        if self.mirror:
            views[:, 1] = rng.random(n) < 0.5
        views[:, 2] = 1.0 + rng.uniform(-self.max_zoom, self.max_zoom, n)
        views[:, 3:5] = rng.uniform(-self.max_shift, self.max_shift, (n, 2))
        views[:, 5] = rng.uniform(-self.brightness, self.brightness, n)
        views[:, 6] = 1.0 + rng.uniform(-self.contrast, self.contrast, n)
        views[:, 7] = rng.uniform(0.0, self.noise, n)
        views[:, 8] = rng.integers(0, 2**24, n)
        return views


def mirror_map(class_names, pairs) -> np.ndarray:
    """``map[label]``: the label of a mirrored image of class ``label`` (itself if unpaired).

    Raises
    ------
    InputDataError
        A pair names a class that is not in ``class_names``, or a class twice.
    """
    names = list(class_names)
    mapping = np.arange(len(names))
    seen = set()
    for pair in pairs or ():
        if len(pair) != 2 or pair[0] == pair[1]:
            raise InputDataError(f"cnn.mirror_pairs entry {list(pair)}: two different classes")
        for name in pair:
            if name not in names:
                raise InputDataError(
                    f"cnn.mirror_pairs names {name!r}, which is not a class ({', '.join(names)})"
                )
            if name in seen:
                raise InputDataError(f"cnn.mirror_pairs names {name!r} twice")
            seen.add(name)
        a, b = names.index(pair[0]), names.index(pair[1])
        mapping[a], mapping[b] = b, a
    return mapping


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Row order of one pass: a seeded permutation per epoch, or index order."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def view_matrices(views: np.ndarray, out_size: int, in_size: int, scale: float) -> np.ndarray:
    """The 8-parameter projective transforms (output pixel -> input pixel) of ``views``.

    ``scale`` is input pixels per output pixel at zoom 1; shifts are fractions
    of the output side. A positive angle turns the image clockwise as displayed
    (rows run down), like ``numpy.rot90(image, -1)`` at 90 degrees.
    """
    angle = np.radians(views[:, 0])
    flip = np.where(views[:, 1] > 0.5, -1.0, 1.0)
    factor = scale / views[:, 2]
    cos, sin = np.cos(angle) * factor, np.sin(angle) * factor
    # input = c_in + R(angle) diag(flip, 1) (output - c_out) * factor + shift; y points down
    a0, a1 = cos * flip, sin
    b0, b1 = -sin * flip, cos
    c_in, c_out = (in_size - 1) / 2.0, (out_size - 1) / 2.0
    shift_x = views[:, 3] * out_size * scale
    shift_y = views[:, 4] * out_size * scale
    a2 = c_in + shift_x - (a0 + a1) * c_out
    b2 = c_in + shift_y - (b0 + b1) * c_out
    zeros = np.zeros_like(a0)
    return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1).astype(np.float32)
