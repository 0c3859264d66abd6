"""The measured morphology a CNN takes beside the pixels: one function per measure set.

``cnn.measures`` names the set; the trained model's metadata keeps it, so
evaluation and prediction measure new images the same way:

* ``morphometry``: :func:`galmorph.reduction.morphometry.measure` (winding of the arms in
  three rings, concentration, axis ratio, asymmetry, smoothness, Gini, colours,
  size, signal-to-noise);
* ``morphometry+descriptors``: those, plus the clustering's rotation-invariant
  descriptors (:mod:`galmorph.reduction.descriptors`: radial profile, azimuthal Fourier
  modes, colour profile, shape, winding) of the galaxy recentred and turned to its
  major axis (:class:`galmorph.reduction.alignment.GalaxyAligner` with the clustering's
  default preprocessing).

Every measure is unchanged by a rotation; :func:`mirror` gives the measures of
the mirrored image (the winding measures change sign).

A set can be measured in several central crops at once (``cnn.measure_scales``,
:func:`measure_crops`): the measures of each crop, concatenated from the smallest
crop to the largest. A galaxy's bulge, disk and outskirts then each fill one of
the crops, whatever its size (held-out macro-F1 and chirality went up; docs/cnn.md).
"""

from __future__ import annotations

import numpy as np

from galmorph.reduction import descriptors, morphometry
from galmorph.reduction.alignment import GalaxyAligner

MEASURE_SETS = ("morphometry", "morphometry+descriptors")

#: The preprocessing of the descriptors: the clustering's default (config/config.yaml).
ALIGNER = GalaxyAligner(48, recentre=True, align=True, mask_neighbours=True, flux="total",
                        stretch="log")  # fmt: skip


def _check(kind: str) -> None:
    if kind not in MEASURE_SETS:
        raise ValueError(f"cnn.measures must be one of {MEASURE_SETS}, not {kind!r}")


def feature_names(kind: str) -> tuple[str, ...]:
    _check(kind)
    names = morphometry.FEATURE_NAMES
    if kind == "morphometry+descriptors":
        names = names + tuple(f"descriptor_{name}" for name in descriptors.FEATURE_NAMES)
    return names


def mirror_parity(kind: str, n_crops: int = 1) -> np.ndarray:
    """+1 for a measure a mirror keeps, -1 for one it negates, in :func:`feature_names` order.

    With ``n_crops``, the parity of the measures of that many crops, concatenated.
    """
    _check(kind)
    parity = morphometry.MIRROR_PARITY
    if kind == "morphometry+descriptors":
        parity = np.concatenate([parity, descriptors.MIRROR_PARITY.astype(np.float32)])
    return np.tile(parity.astype(np.float32), n_crops)


def measure_crops(measure_crop: int, scales=(1.0,)) -> tuple[int, ...]:
    """The central crops measured: ``measure_crop`` times each scale, smallest first; () if 0."""
    if not measure_crop:
        return ()
    crops = sorted({max(8, int(round(measure_crop * float(scale)))) for scale in scales})
    return tuple(crops)


def measure_regions(region: np.ndarray, kind: str, crops) -> np.ndarray:
    """The measures of each central crop in ``crops`` of ``region`` (S, S, 3), concatenated."""
    side = region.shape[0]
    parts = []
    for crop in crops:
        start = (side - crop) // 2
        parts.append(measure(region[start : start + crop, start : start + crop], kind))
    return np.concatenate(parts)


def measure(image: np.ndarray, kind: str) -> np.ndarray:
    """The measures of one centred galaxy crop (S, S, 3), float32."""
    _check(kind)
    values = morphometry.measure(image)
    if kind == "morphometry+descriptors":
        aligned = ALIGNER.transform(np.asarray(image)[None])[0]
        values = np.concatenate([values, descriptors.describe(aligned).astype(np.float32)])
    return values.astype(np.float32)


def mirror(features: np.ndarray, kind: str) -> np.ndarray:
    """The measures of the mirrored image, from the measures of the image (of one or more crops)."""
    features = np.asarray(features, dtype=np.float32)
    n_crops = features.shape[-1] // len(feature_names(kind))
    return features * mirror_parity(kind, n_crops)
