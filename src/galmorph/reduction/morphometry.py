"""Morphology measured from the pixels, without training: the winding of the arms and the
classic shape measures. Every measure is unchanged by a rotation of the image; the
winding changes sign under a mirror, the shape measures do not.

A CNN trained from scratch on a few hundred spirals does not discover on its
own whether the arms wind clockwise or anticlockwise, although the answer is
plainly in the pixels; nor does it learn quickly from a few thousand images
what the concentration, asymmetry or colour gradient of a galaxy are. This
module measures them directly, and the classifiers receive the measures as a
second input beside the image (:func:`measure`).

Winding
-------
Method (structure tensor in a polar frame). At each pixel the smoothed
structure tensor ``J`` gives the dominant gradient orientation ``theta`` as
the double angle of ``z = (Jxx - Jyy) + 2i Jxy = |z| exp(2i theta)``. Rotating
``z`` into the local polar frame, ``z' = z exp(-2i phi)`` with ``phi`` the
position angle of the pixel about the image centre, removes the image's
orientation: a ring or a smooth disk (gradient along the radius) gives
``z'`` real and positive, a radial spoke real and negative, and an arm at
pitch angle ``p`` gives ``arg z' = +-2p`` with the sign of its winding.
Averaged over an annulus and divided by the summed ``|z|``:

* ``Re`` is unchanged by a rotation *and* by a mirror (ring- or spoke-like
  structure);
* ``Im`` is unchanged by a rotation and changes sign under a mirror: it is the
  winding, positive for one sense, negative for the other.

The measurement is made on an asinh-stretched grey image (faint outer arms
count, not only the bright centre) in :data:`ANNULI` rings, in units of the
crop's half side: the crop (``cnn.measure_crop``) is chosen to fit the
galaxies of a survey.

Shape (:func:`shape_features`)
------------------------------
About the image centre, from the sky-subtracted light: concentration
``5 log10(r80 / r20)``; axis ratio from the second moments; asymmetry under a
half turn and smoothness (residual of a smoothed copy), both inside twice the
half-light radius; the Gini coefficient of the pixel fluxes there; the
red-minus-blue colour of the core and of the disk around it; the half-light
radius as a fraction of the crop; and the log signal-to-noise.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

#: Inner and outer radius of each ring, as fractions of the crop's half side.
ANNULI = ((0.06, 0.25), (0.25, 0.5), (0.5, 0.85))

#: Names of the features of :func:`winding_features`, in order.
WINDING_NAMES = tuple(
    f"{part}_{inner:.2f}_{outer:.2f}" for inner, outer in ANNULI for part in ("ring", "winding")
)
#: Names of the features of :func:`shape_features`, in order.
SHAPE_NAMES = (
    "concentration", "axis_ratio", "asymmetry", "smoothness", "gini",
    "colour_core", "colour_disk", "half_light_radius", "log_snr",
)  # fmt: skip
#: Names of the measures of :func:`measure`, in order.
FEATURE_NAMES = WINDING_NAMES + SHAPE_NAMES

#: +1 for a measure a mirror keeps, -1 for one it negates (the ``winding`` parts).
MIRROR_PARITY = np.array(
    [-1.0 if name.startswith("winding") else 1.0 for name in FEATURE_NAMES], dtype=np.float32
)

N_FEATURES = len(FEATURE_NAMES)

#: Gaussian scales in pixels of the native image: derivative, and smoothing of the tensor.
#: Chosen on the SDSS training split's 440 spirals (docs/cnn.md): a high pass before the
#: tensor, or rings scaled to the light-weighted radius, separated the two windings less.
GRADIENT_SIGMA = 1.0
TENSOR_SIGMA = 3.0


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``y`` and the radius about a ``size`` square's centre, and the radii's order.

    The same for every image of a size: made once (read-only), not per galaxy.
    """
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) - (size - 1) / 2.0
    radius = np.hypot(x, y)
    grid = (x, y, radius, np.argsort(radius, axis=None))
    for array in grid:
        array.flags.writeable = False
    return grid


@functools.lru_cache(maxsize=8)
def _polar_phase(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``exp(-2i phi)`` and the radius in half sides, for a ``size`` square about its centre."""
    x, y, radius, _ = _grid(size)
    phase, scaled = np.exp(-2j * np.arctan2(y, x)), radius / (size / 2.0)
    phase.flags.writeable = scaled.flags.writeable = False
    return phase, scaled


def winding_features(image: np.ndarray) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of one centred galaxy image.

    Parameters
    ----------
    image : ndarray, shape (S, S) or (S, S, C)
        A square crop centred on the galaxy at native resolution, any dtype.

    Returns
    -------
    ndarray of float32, shape (6,)
        Per ring, ``ring`` (in [-1, 1]) and ``winding`` (in [-1, 1]).
        Rotating the image about its centre leaves every feature unchanged;
        mirroring it negates the ``winding`` features (:data:`MIRROR_PARITY`).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image.mean(axis=2)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"a square image is needed, got shape {image.shape}")
    size = image.shape[0]
    sky = np.median(image)
    scale = max(float(np.percentile(image, 99.5) - sky), 1.0e-6)
    # asinh: the faint outer arms count, not only the bright centre
    stretched = np.arcsinh(np.clip(image - sky, 0, None) / (0.05 * scale))
    gx = ndimage.gaussian_filter(stretched, GRADIENT_SIGMA, order=(0, 1))
    gy = ndimage.gaussian_filter(stretched, GRADIENT_SIGMA, order=(1, 0))
    jxx = ndimage.gaussian_filter(gx * gx, TENSOR_SIGMA)
    jyy = ndimage.gaussian_filter(gy * gy, TENSOR_SIGMA)
    jxy = ndimage.gaussian_filter(gx * gy, TENSOR_SIGMA)
    z = (jxx - jyy) + 2j * jxy
    phase, radius = _polar_phase(size)
    rotated = z * phase
    magnitude = np.abs(z)
    out = np.empty(len(WINDING_NAMES), dtype=np.float32)
    for ring, (inner, outer) in enumerate(ANNULI):
        inside = (radius >= inner) & (radius < outer)
        total = magnitude[inside].sum()
        value = rotated[inside].sum() / total if total > 0 else 0.0
        out[2 * ring] = np.real(value)
        out[2 * ring + 1] = np.imag(value)
    return out


def _radius_enclosing(radius: np.ndarray, light: np.ndarray, fractions, order=None) -> list[float]:
    """Radii about the centre enclosing each fraction of the light (curve of growth).

    ``order``: ``np.argsort(radius, axis=None)``, if known.
    """
    order = np.argsort(radius, axis=None) if order is None else order
    growth = np.cumsum(light.ravel()[order])
    growth /= max(growth[-1], 1.0e-9)
    radii = radius.ravel()[order]
    return [float(radii[min(np.searchsorted(growth, f), radii.size - 1)]) for f in fractions]


def _colour(red: np.ndarray, blue: np.ndarray, where: np.ndarray) -> float:
    r, b = red[where].sum(), blue[where].sum()
    return float((r - b) / (r + b)) if r + b > 0 else 0.0


def shape_features(image: np.ndarray) -> np.ndarray:
    """The :data:`SHAPE_NAMES` of one centred RGB galaxy image (float32)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[2] != 3:
        raise ValueError(f"a square RGB image is needed, got shape {image.shape}")
    size = image.shape[0]
    bands = image - np.median(image, axis=(0, 1))
    grey = bands.mean(axis=2)
    noise = 1.4826 * np.median(np.abs(grey - np.median(grey))) + 1.0e-3
    light = np.clip(grey, 0, None)
    x, y, radius, order = _grid(size)
    total = max(light.sum(), 1.0e-9)
    r20, r50, r80 = _radius_enclosing(radius, light, (0.2, 0.5, 0.8), order)
    concentration = 5.0 * np.log10(max(r80, 0.5) / max(r20, 0.5))
    cxx, cyy = (light * x * x).sum() / total, (light * y * y).sum() / total
    cxy = (light * x * y).sum() / total
    half_trace, det = (cxx + cyy) / 2.0, cxx * cyy - cxy**2
    spread = np.sqrt(max(half_trace**2 - det, 0.0))
    major, minor = half_trace + spread, max(half_trace - spread, 0.0)
    axis_ratio = float(np.sqrt(minor / major)) if major > 0 else 1.0
    inner = radius < 2.0 * max(r50, 1.0)
    inner_light = max(light[inner].sum(), 1.0e-9)
    asymmetry = np.abs(light - light[::-1, ::-1])[inner].sum() / (2.0 * inner_light)
    smooth = ndimage.gaussian_filter(light, 2.0)
    smoothness = np.abs(light - smooth)[inner].sum() / inner_light
    values = np.sort(light[inner])
    n = values.size
    gini = ((2 * np.arange(1, n + 1) - n - 1) * values).sum() / max((n - 1) * values.sum(), 1e-9)
    red, blue = np.clip(bands[..., 0], 0, None), np.clip(bands[..., 2], 0, None)
    core = radius < max(r50, 1.0)
    disk = ~core & (radius < 2.5 * max(r50, 1.0))
    snr = inner_light / (noise * np.sqrt(inner.sum()))
    return np.array(
        [concentration, axis_ratio, asymmetry, smoothness, gini, _colour(red, blue, core),
         _colour(red, blue, disk), r50 / size, np.log10(snr + 1.0)],
        dtype=np.float32,
    )  # fmt: skip


def measure(image: np.ndarray) -> np.ndarray:
    """Every measure of one centred galaxy image: :data:`FEATURE_NAMES`, float32."""
    return np.concatenate([winding_features(image), shape_features(image)])


def mirror(features: np.ndarray) -> np.ndarray:
    """The measures of the mirrored image, from the measures of the image."""
    return np.asarray(features, dtype=np.float32) * MIRROR_PARITY
