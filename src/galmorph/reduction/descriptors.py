"""Rotation-invariant descriptors of an aligned galaxy: a representation for clustering.

PCA of pixels, even of aligned ones (:mod:`galmorph.reduction.alignment`), still spends
components on details that do not separate galaxy types. These few numbers
describe what an astronomer looks at, and none of them changes when the galaxy
is turned about its centre:

* ``profile_*``: the radial light profile, the mean stretched light in
  :data:`PROFILE_RINGS` rings from the centre to the crop's edge (concentrated
  ellipticals against extended disks);
* ``fourier_m{m}_*``: the amplitude of the ``m``-fold azimuthal Fourier mode
  of the light in three rings, divided by the ring's mean (``m = 1``
  lopsidedness, ``m = 2`` bars and elongation, ``m = 3, 4`` arms and clumps);
* ``colour_*``: red minus blue light in the core, the disk and the outskirts;
* ``axis_ratio`` and ``extent``: the spread across and along the major axis;
* ``winding``: the sense of the arms (:func:`galmorph.reduction.morphometry.winding_features`,
  summed over its rings). It is the one descriptor a mirror changes (its sign):
  a rotation keeps a clockwise spiral clockwise, and so do the descriptors.

:class:`MorphologyDescriptors` is a stateless scikit-learn transformer from
aligned images (N, S, S, 3) to a float64 table (N, :data:`N_DESCRIPTORS`).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from galmorph.reduction.morphometry import ANNULI, winding_features

#: Number of equal-width rings of the radial profile, centre to the crop's edge.
PROFILE_RINGS = 8
#: Rings of the azimuthal Fourier modes, in units of the crop's half side.
FOURIER_RINGS = ((0.05, 0.25), (0.25, 0.5), (0.5, 0.9))
FOURIER_MODES = (1, 2, 3, 4)
#: Rings of the colour profile, in units of the crop's half side.
COLOUR_RINGS = ((0.0, 0.2), (0.2, 0.5), (0.5, 0.9))

FEATURE_NAMES = (
    *(f"profile_{i}" for i in range(PROFILE_RINGS)),
    *(f"fourier_m{m}_{a:.2f}_{b:.2f}" for a, b in FOURIER_RINGS for m in FOURIER_MODES),
    *(f"colour_{a:.1f}_{b:.1f}" for a, b in COLOUR_RINGS),
    "axis_ratio",
    "extent",
    "winding",
)
N_DESCRIPTORS = len(FEATURE_NAMES)
#: +1 for a descriptor a mirror keeps, -1 for one it negates.
MIRROR_PARITY = np.array([-1.0 if n == "winding" else 1.0 for n in FEATURE_NAMES])

assert len(ANNULI) == 3  # the winding sums the rings of morphometry


def _polar(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Radius (in half sides) and position angle of every pixel about the centre."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float64) - (side - 1) / 2.0
    return np.hypot(x, y) / (side / 2.0), np.arctan2(y, x)


def describe(image: np.ndarray) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of one aligned, sky-subtracted RGB image (S, S, 3)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[2] != 3:
        raise ValueError(f"a square RGB image is needed, got shape {image.shape}")
    side = image.shape[0]
    grey = image.mean(axis=2)
    radius, angle = _polar(side)
    edges = np.linspace(0.0, 1.0, PROFILE_RINGS + 1)
    out = [_ring_mean(grey, radius, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    modes = np.exp(-1j * np.multiply.outer(FOURIER_MODES, angle))
    for a, b in FOURIER_RINGS:
        ring = (radius >= a) & (radius < b)
        light = grey[ring]
        total = abs(light.sum()) + 1.0e-9
        out.extend(np.abs((modes[:, ring] * light).sum(axis=1)) / total)
    red_minus_blue = image[..., 0] - image[..., 2]
    out.extend(_ring_mean(red_minus_blue, radius, a, b) for a, b in COLOUR_RINGS)
    light = np.clip(grey, 0, None)
    total = light.sum() + 1.0e-9
    y, x = np.mgrid[0:side, 0:side].astype(np.float64) - (side - 1) / 2.0
    along = np.sqrt((light * x * x).sum() / total)
    across = np.sqrt((light * y * y).sum() / total)
    out.append(across / (along + 1.0e-9))
    out.append(along / side)
    out.append(float(winding_features(grey)[1::2].sum()))
    return np.asarray(out, dtype=np.float64)


def _ring_mean(values: np.ndarray, radius: np.ndarray, inner: float, outer: float) -> float:
    ring = (radius >= inner) & (radius < outer)
    return float(values[ring].mean()) if ring.any() else 0.0


class MorphologyDescriptors(TransformerMixin, BaseEstimator):
    """Aligned images (N, S, S, 3) -> :data:`FEATURE_NAMES` (N, N_DESCRIPTORS), float64.

    Stateless: ``fit`` learns nothing; the scaler that follows in the reduction
    standardises the descriptors.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: a pipeline may use it unfitted
        return tags

    def fit(self, X=None, y=None):
        return self

    def transform(self, X) -> np.ndarray:
        images = np.asarray(X)
        if images.ndim != 4:
            raise ValueError(f"expected images (N, S, S, 3), got shape {images.shape}")
        if not len(images):
            return np.zeros((0, N_DESCRIPTORS))
        return np.stack([describe(image) for image in images])

    def get_feature_names_out(self, input_features=None):
        return np.asarray(FEATURE_NAMES, dtype=object)
