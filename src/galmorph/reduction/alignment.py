"""Galaxy crops made comparable before the reduction: centred, turned, normalised, stretched.

PCA of raw pixels spends its components on where the galaxy sits, which way it
points and how bright it is, none of which is its morphology. :class:`GalaxyAligner`
removes those nuisances, one config key each (``reduction.preprocess``), in a single
resampling of every crop:

1. **segment**: the galaxy is the connected region of light above the sky noise
   that holds the brightest pixel near the centre; the sky level is the median of
   each band;
2. **recentre** on the galaxy's light-weighted centre;
3. **align**: turn it so its flux-weighted major axis (second moments) is
   horizontal, brighter half to the right. Only rotations: a mirror would turn a
   clockwise spiral into an anticlockwise one (the determinant of every map is
   positive, see :func:`_resample`);
4. **mask_neighbours**: light outside the galaxy's region (neighbours, stars) is
   set to the sky;
5. **flux**: divide by the galaxy's total flux (``total``) or its peak (``peak``),
   so a bright and a faint galaxy of one shape look alike;
6. **stretch**: ``asinh`` or ``log`` of the normalised light, so the faint disk
   and arms weigh beside the bright core (galaxies span orders of magnitude in
   surface brightness); ``linear`` keeps it;
7. the result is resampled to ``size`` x ``size`` pixels (antialiased); with
   ``extent`` set, every galaxy is also scaled to a common size (off by default:
   it lowered the scores on the SDSS training split, docs/clustering.md).

The transform is stateless (``fit`` learns nothing), so the training split, the
test split and any new image get exactly the same treatment; it is the first step
of the pipeline :func:`galmorph.reduction.pipeline.fit_reduction` fits and saves, so the
settings travel with the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin

#: ``reduction.preprocess.flux`` choices
FLUX_NORMS = ("none", "total", "peak")
#: ``reduction.preprocess.stretch`` choices
STRETCHES = ("linear", "asinh", "log")

#: Light above this many sky-noise sigmas belongs to a source.
DETECTION_SIGMA = 1.5
#: Gaussian smoothing (pixels) of the image the sources are detected on.
DETECTION_SMOOTHING = 2.0
#: The galaxy is the source holding the brightest pixel within this fraction of
#: the crop's half side from the centre (a brighter star at the edge is not it).
CENTRAL_FRACTION = 0.25
#: Sky noise is never taken below one grey level of an 8-bit image: JPEG skies are
#: often flat, with a median absolute deviation of zero.
NOISE_FLOOR = 1.0 / 255.0
#: Softening of the stretch, in units of the normalised flux per pixel: the mean
#: light per pixel of a galaxy spread over about 1/SOFTENING pixels.
SOFTENING = 1.0e-3


@dataclass(frozen=True)
class Geometry:
    """Where the galaxy is in a crop: centre (row, column), major-axis angle, region."""

    centre: tuple[float, float]
    angle: float  # radians, of the major axis from the +column axis, towards +row
    region: np.ndarray  # bool (S, S): the galaxy's pixels
    flux: float
    peak: float
    radius: float = 0.0  # pixels: the square root of the major second moment


class GalaxyAligner(TransformerMixin, BaseEstimator):
    """Recentre, align, mask, normalise and stretch square RGB crops of galaxies.

    Parameters
    ----------
    size : int, optional
        Output side in pixels; None keeps the input side.
    recentre, align, mask_neighbours : bool
        Steps 2-4 of the module docstring.
    flux : {"none", "total", "peak"}
    stretch : {"linear", "asinh", "log"}
    extent : float, optional
        Scale every galaxy to the same size: the output's half side spans
        ``extent`` times the galaxy's radius (square root of its major second
        moment). None keeps the crop's pixel scale.

    ``transform(images)`` takes uint8 or float images (N, S, S, 3) and returns
    float32 (N, size, size, 3); with every step off it only rescales to [0, 1]
    (and resamples to ``size``).
    """

    def __init__(
        self,
        size: int | None = None,
        *,
        recentre: bool = True,
        align: bool = True,
        mask_neighbours: bool = True,
        flux: str = "total",
        stretch: str = "asinh",
        extent: float | None = None,
    ):
        self.size = size
        self.recentre = recentre
        self.align = align
        self.mask_neighbours = mask_neighbours
        self.flux = flux
        self.stretch = stretch
        self.extent = extent

    # scikit-learn habits: nothing to learn, but fit checks the settings.
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: a pipeline may use it unfitted
        return tags

    def fit(self, X=None, y=None):
        self._check()
        return self

    def _check(self) -> None:
        if self.flux not in FLUX_NORMS:
            raise ValueError(f"flux must be one of {FLUX_NORMS}, not {self.flux!r}")
        if self.stretch not in STRETCHES:
            raise ValueError(f"stretch must be one of {STRETCHES}, not {self.stretch!r}")
        if self.size is not None and int(self.size) < 8:
            raise ValueError(f"size must be at least 8 pixels, not {self.size}")

    @property
    def identity(self) -> bool:
        """True when the transform is the study's: pixels / 255, nothing else."""
        return not (self.recentre or self.align or self.mask_neighbours) and (
            self.flux,
            self.stretch,
        ) == ("none", "linear")

    def output_side(self, input_side: int) -> int:
        return int(self.size) if self.size is not None else int(input_side)

    def transform(self, X) -> np.ndarray:
        self._check()
        images = np.asarray(X)
        if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] != 3:
            raise ValueError(f"expected square RGB images (N, S, S, 3), got {images.shape}")
        scale = np.float32(1 / 255) if images.dtype == np.uint8 else np.float32(1)
        side = self.output_side(images.shape[1])
        if self.identity and side == images.shape[1]:  # the study's chain: one vector op
            return np.multiply(images, scale, dtype=np.float32)
        out = np.empty((len(images), side, side, 3), dtype=np.float32)
        for i, image in enumerate(images):
            out[i] = self._one(image.astype(np.float32) * scale, side)
        return out

    # -- one image ----------------------------------------------------------
    def geometry(self, image: np.ndarray) -> Geometry:
        """The galaxy's centre, major axis and region in a sky-subtracted RGB crop."""
        grey = image.mean(axis=2)
        side = grey.shape[0]
        smooth = ndimage.gaussian_filter(grey, DETECTION_SMOOTHING)
        sources, n = ndimage.label(smooth > _threshold(grey))
        y, x = np.mgrid[0:side, 0:side].astype(np.float64) - (side - 1) / 2.0
        central = np.hypot(x, y) <= CENTRAL_FRACTION * side / 2.0
        if n == 0:
            region = np.ones_like(grey, dtype=bool)
        else:
            brightest = np.argmax(np.where(central, smooth, -np.inf))
            label = sources.flat[brightest]
            region = sources == label if label else np.ones_like(grey, dtype=bool)
        light = np.where(region, np.clip(grey, 0, None), 0.0).astype(np.float64)
        flux = float(light.sum())
        if flux <= 0:
            return Geometry(((side - 1) / 2.0,) * 2, 0.0, region, 1.0, 1.0)
        cy, cx = (light * y).sum() / flux, (light * x).sum() / flux
        dy, dx = y - cy, x - cx
        cxx = (light * dx * dx).sum() / flux
        cyy = (light * dy * dy).sum() / flux
        cxy = (light * dx * dy).sum() / flux
        angle = 0.5 * np.arctan2(2.0 * cxy, cxx - cyy)
        # The axis has two ends: turn the brighter half to the right (still a rotation).
        along = dx * np.cos(angle) + dy * np.sin(angle)
        if (light * along**3).sum() < 0:
            angle += np.pi
        centre = (cy + (side - 1) / 2.0, cx + (side - 1) / 2.0)
        half_trace = (cxx + cyy) / 2.0
        major = half_trace + np.sqrt(max(half_trace**2 - (cxx * cyy - cxy**2), 0.0))
        return Geometry(
            centre, float(angle), region, flux, float(light.max()), float(np.sqrt(major))
        )

    def _one(self, image: np.ndarray, side: int) -> np.ndarray:
        if self.identity:
            return _resample(image, side, None, 0.0)
        image = image - np.median(image, axis=(0, 1))  # sky to zero, per band
        geometry = self.geometry(image)
        if self.mask_neighbours:
            # Everything that is a source but not the galaxy (and its halo) becomes sky.
            grown = ndimage.binary_dilation(geometry.region, iterations=3)
            grey = image.mean(axis=2)
            smooth = ndimage.gaussian_filter(grey, DETECTION_SMOOTHING)
            other = (smooth > _threshold(grey)) & ~grown
            other = ndimage.binary_dilation(other, iterations=2) & ~grown
            image = np.where(other[..., None], 0.0, image)
        centre = geometry.centre if self.recentre else None
        angle = geometry.angle if self.align else 0.0
        zoom = None
        if self.extent is not None:
            # The output's half side spans ``extent`` galaxy radii, whatever the galaxy's size.
            zoom = 2.0 * self.extent * max(geometry.radius, 1.0) / side
        image = _resample(image, side, centre, angle, zoom)
        if self.flux == "total":
            # Resampling keeps intensities per input pixel: the same galaxy at any
            # ``size`` gets the same values.
            image = image / (geometry.flux + 1.0e-9)
        elif self.flux == "peak":
            image = image / (geometry.peak + 1.0e-9)
        # Un-normalised pixels are in [0, 1]: a softening of 0.02 is a few grey levels.
        softening = SOFTENING if self.flux != "none" else 0.02
        # / 10 keeps stretched values of order one (a core at 1e4 softenings gives 1).
        if self.stretch == "asinh":
            image = np.arcsinh(image / softening) / 10.0
        elif self.stretch == "log":
            image = np.log1p(np.clip(image, 0, None) / softening) / 10.0
        return image.astype(np.float32)


def _threshold(grey: np.ndarray) -> float:
    """Detection level of a sky-subtracted grey image: DETECTION_SIGMA sky sigmas."""
    noise = 1.4826 * np.median(np.abs(grey - np.median(grey)))
    return DETECTION_SIGMA * max(float(noise), NOISE_FLOOR)


def _resample(image: np.ndarray, side: int, centre, angle: float, zoom=None) -> np.ndarray:
    """``image`` (S, S, C) sampled on a ``side`` grid about ``centre``, turned by ``angle``.

    Output pixel (r, c), relative to the output centre and in input pixels
    (``S / side`` per output pixel), reads the input at
    ``centre + R(angle) (c, r)``: a rotation, never a reflection.
    """
    size = image.shape[0]
    zoom = size / side if zoom is None else zoom
    if centre is None and angle == 0.0 and zoom == 1.0 and side == size:
        return image.copy()
    if zoom > 1.0:  # antialias before sampling fewer pixels
        image = ndimage.gaussian_filter(image, (0.5 * zoom, 0.5 * zoom, 0))
    cy, cx = centre if centre is not None else ((size - 1) / 2.0,) * 2
    cos, sin = np.cos(angle), np.sin(angle)
    # input (row, col) = M @ (out_row, out_col) + offset
    matrix = zoom * np.array([[cos, sin], [-sin, cos]])
    out_centre = (side - 1) / 2.0
    offset = np.array([cy, cx]) - matrix @ np.array([out_centre, out_centre])
    return np.stack(
        [
            ndimage.affine_transform(
                image[..., band], matrix, offset, output_shape=(side, side), order=1, cval=0.0
            )
            for band in range(image.shape[2])
        ],
        axis=-1,
    )
