"""Render a galaxy of a given ``gz2_class`` as an SDSS-like gri composite.

Galaxy Zoo 2 cutouts are 424 x 424 JPEGs at 0.02 x petroR90_r arcsec per
pixel, so every galaxy has the same apparent size: its 90 % light radius is
about 50 pixels. Seeing spreads a point source over several such pixels,
which lets us render on a half-resolution grid and upsample without visible
loss. Light is built in linear units (1 unit ~ 1 JPEG level near the sky),
blurred by the PSF, given sky noise, then compressed with an asinh stretch
(Lupton et al. 2004) as the SDSS composites are.

Every random choice comes from the one Generator passed in, so an image is
a pure function of ``(gz2_class, rng state)``.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image
from scipy import ndimage

from galmorph.catalogue.classes import GZ2Class, parse

IMAGE_SIZE = 424
#: 90 % light radius of the main galaxy, in full-resolution pixels.
R90_PIXELS = 50.0

# Linear colours (i, r, g -> R, G, B) of stellar populations.
OLD = np.array([1.28, 1.0, 0.66], dtype=np.float32)
BULGE = np.array([1.2, 1.0, 0.74], dtype=np.float32)
DISK = np.array([1.0, 1.0, 0.98], dtype=np.float32)
YOUNG = np.array([0.8, 0.95, 1.32], dtype=np.float32)
# How strongly dust dims each channel relative to g (redder light passes more easily).
DUST_REDDENING = np.array([0.55, 0.75, 1.0], dtype=np.float32)

PITCH_DEG = {"t": (8.0, 13.0), "m": (15.0, 21.0), "l": (25.0, 34.0)}
BULGE_TO_TOTAL = {"a": (0.45, 0.6), "b": (0.3, 0.45), "c": (0.1, 0.2), "d": (0.0, 0.03)}
ELLIPTICAL_AXIS_RATIO = {"r": (0.86, 1.0), "i": (0.52, 0.78), "c": (0.24, 0.42)}


def _sersic_b(n: float) -> float:
    return 2.0 * n - 1.0 / 3.0 + 0.009876 / n


def _sersic_total(n: float, r_e: float, q: float) -> float:
    """Total flux of a Sersic profile with unit surface brightness at r_e."""
    b = _sersic_b(n)
    return 2.0 * math.pi * n * r_e**2 * q * math.exp(b) * b ** (-2.0 * n) * math.gamma(2.0 * n)


class Canvas:
    """Linear RGB light on a square grid, coordinates in full-resolution pixels.

    Parameters
    ----------
    size : int
        Side of the final image.
    oversample : int
        Full-resolution pixels per rendered pixel (2: render at half size).
    """

    def __init__(self, size: int = IMAGE_SIZE, oversample: int = 2):
        self.size = size
        self.n = size // oversample
        self.step = size / self.n
        axis = (np.arange(self.n, dtype=np.float32) + 0.5) * self.step - size / 2.0
        self.x = axis[None, :]
        self.y = axis[:, None]
        # Channel-first: adding one component is three contiguous multiply-adds.
        self.light = np.zeros((3, self.n, self.n), dtype=np.float32)

    def stamp(self, x0: float, y0: float, radius: float) -> Canvas:
        """A view of the square around ``(x0, y0)``: small objects cost only their area."""
        view = object.__new__(Canvas)
        view.size, view.n, view.step = self.size, self.n, self.step
        lo = np.searchsorted(self.x[0], [x0 - radius, x0 + radius])
        rows = np.searchsorted(self.y[:, 0], [y0 - radius, y0 + radius])
        view.x = self.x[:, lo[0] : lo[1]]
        view.y = self.y[rows[0] : rows[1]]
        view.light = self.light[:, rows[0] : rows[1], lo[0] : lo[1]]
        return view

    def frame(self, x0: float, y0: float, angle: float, q: float = 1.0):
        """Coordinates along the major axis and along the minor axis divided by ``q``."""
        c, s = math.cos(angle), math.sin(angle)
        dx, dy = self.x - x0, self.y - y0
        return dx * c + dy * s, (dy * c - dx * s) / q

    def add(self, intensity: np.ndarray, color: np.ndarray) -> None:
        for channel in range(3):
            self.light[channel] += float(color[channel]) * intensity

    def add_point(self, x: float, y: float, flux: float, color: np.ndarray) -> None:
        """A point source: all its flux in one rendered pixel; the PSF blur spreads it."""
        col = int((x + self.size / 2.0) / self.step)
        row = int((y + self.size / 2.0) / self.step)
        if 0 <= row < self.n and 0 <= col < self.n:
            self.light[:, row, col] += flux / self.step**2 * color

    def attenuate(self, optical_depth: np.ndarray) -> None:
        """Dust: dim each channel by exp(-tau * reddening)."""
        for channel in range(3):
            self.light[channel] *= np.exp(-float(DUST_REDDENING[channel]) * optical_depth)


def _jitter(rng: np.random.Generator, color: np.ndarray, amount: float = 0.06) -> np.ndarray:
    return (color * np.exp(rng.normal(0.0, amount, 3))).astype(np.float32)


def _sersic(canvas, x0, y0, angle, q, r_e, n, amplitude, box=2.0):
    """Sersic profile; ``box`` > 2 gives boxy isophotes (generalised ellipse)."""
    u, v = canvas.frame(x0, y0, angle, q)
    if box == 2.0:
        r = np.sqrt(u * u + v * v + 0.25)
    else:
        r = (np.abs(u) ** box + np.abs(v) ** box) ** (1.0 / box) + 0.5
    b = _sersic_b(n)
    return amplitude * np.exp(-b * ((r / r_e) ** (1.0 / n) - 1.0))


def _arc(canvas, x0, y0, radius, width, direction, concentration, amplitude, angle=0.0, q=1.0):
    """Part of a ring: a thin circle (ellipse for q < 1) weighted by a von Mises window."""
    u, v = canvas.frame(x0, y0, angle, q)
    r = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    ring = np.exp(-(((r - radius) / width) ** 2))
    return amplitude * ring * np.exp(concentration * (np.cos(theta - direction) - 1.0))


def _clumps(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A positive random field with knots of about ``scale`` rendered pixels."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), scale)
    field /= field.std() + 1e-6
    return np.exp(1.1 * field - 0.6)


# ---------------------------------------------------------------------------
# Galaxy families


def _elliptical(canvas: Canvas, rng: np.random.Generator, c: GZ2Class, flux: float, angle: float):
    q = rng.uniform(*ELLIPTICAL_AXIS_RATIO[c.roundness])
    n = rng.uniform(3.0, 5.0)
    r_e = R90_PIXELS * rng.uniform(0.26, 0.36)
    amplitude = flux / _sersic_total(n, r_e, q)
    canvas.add(_sersic(canvas, 0.0, 0.0, angle, q, r_e, n, amplitude), _jitter(rng, OLD))
    return r_e, q


def _edge_on(canvas: Canvas, rng: np.random.Generator, c: GZ2Class, flux: float, angle: float):
    h = R90_PIXELS * rng.uniform(0.22, 0.28)
    thickness = rng.uniform(0.09, 0.13) if c.edge_bulge == "n" else rng.uniform(0.14, 0.2)
    if c.odd == "u":  # a lane is seen where the disk is thick enough to show it
        thickness *= 1.4
    z0 = h * thickness * 2.0
    bulge_fraction = {"r": (0.3, 0.45), "b": (0.3, 0.42), "n": (0.0, 0.0)}[c.edge_bulge]
    bt = rng.uniform(*bulge_fraction)
    u, v = canvas.frame(0.0, 0.0, angle)
    radial = np.abs(u) / h
    disk_shape = (1.0 + radial) * np.exp(-radial) / np.cosh(np.minimum(np.abs(v / z0), 40.0)) ** 2
    disk_total = 4.0 * h * z0  # integral of the shape above
    disk_color = _jitter(rng, DISK if c.edge_bulge != "n" else (DISK + YOUNG) / 2)
    canvas.add(disk_shape * ((1.0 - bt) * flux / disk_total), disk_color)
    if c.edge_bulge == "r":
        q, n, r_e = rng.uniform(0.85, 1.0), rng.uniform(1.5, 2.5), h * rng.uniform(0.55, 0.7)
        amplitude = bt * flux / _sersic_total(n, r_e, q)
        canvas.add(_sersic(canvas, 0.0, 0.0, angle, q, r_e, n, amplitude), _jitter(rng, BULGE))
    elif c.edge_bulge == "b":
        q, r_e = rng.uniform(0.6, 0.75), h * rng.uniform(0.6, 0.75)
        amplitude = bt * flux / (_sersic_total(1.0, r_e, q) * 1.2)
        box = rng.uniform(4.0, 6.0)
        canvas.add(
            _sersic(canvas, 0.0, 0.0, angle, q, r_e, 1.0, amplitude, box=box), _jitter(rng, BULGE)
        )
    if c.odd == "u":
        offset = rng.uniform(-0.2, 0.2) * z0
        width = max(z0 * rng.uniform(0.35, 0.5), 3.0)
        tau = rng.uniform(3.5, 5.0) * np.exp(-(((v - offset) / width) ** 2))
        canvas.attenuate(tau * np.exp(-((radial / 3.0) ** 2)))
    return h, 0.15


def _spiral_pattern(rng, r, theta, arms: str, winding: str, r_in: float, phase0: float):
    """Brightness modulation of logarithmic arms, 0 between arms, about 1 on them."""
    pitch = math.radians(rng.uniform(*PITCH_DEG[winding]))
    sense = rng.choice([-1.0, 1.0])
    log_r = np.log(np.maximum(r, 1e-3) / r_in) / math.tan(pitch)
    if arms == "?":
        # Flocculent: many short, irregular arm segments.
        m = int(rng.integers(2, 4))
        wave = np.cos(m * (theta - sense * log_r) + phase0)
        wave += 0.8 * np.cos((m + 1) * (theta - sense * 1.2 * log_r) + rng.uniform(0, 6.3))
        return np.clip(wave / 1.8, 0.0, 1.0) ** 2 * 1.2
    m = {"+": int(rng.integers(5, 7))}.get(arms) or int(arms)
    sharpness = 3.0 if m <= 2 else 4.0
    wave = 0.5 * (1.0 + np.cos(m * (theta - sense * log_r - phase0)))
    return wave**sharpness


def _face_on_disk(canvas: Canvas, rng: np.random.Generator, c: GZ2Class, flux: float, angle: float):
    h = R90_PIXELS * rng.uniform(0.26, 0.34)
    q = rng.uniform(0.5, 1.0)
    bt = rng.uniform(*BULGE_TO_TOTAL[c.bulge])
    u, v = canvas.frame(0.0, 0.0, angle, q)
    r = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    bar_angle = rng.uniform(0.0, math.pi)
    bar_length = h * rng.uniform(1.1, 1.6)
    bar_fraction = rng.uniform(0.1, 0.18) if c.barred else 0.0
    r_in = bar_length if c.barred else h * rng.uniform(0.4, 0.8)
    disk_flux = (1.0 - bt - bar_fraction) * flux
    smooth = np.exp(-r / h)
    if c.spiral:
        pattern = _spiral_pattern(rng, r, theta, c.arms, c.winding, r_in, bar_angle)
        onset = 1.0 - np.exp(-((r / r_in) ** 4))
        knots = _clumps(rng, r.shape, 0.8)
        arm_light = np.exp(-r / (1.15 * h)) * pattern * onset * knots
        arm_share = rng.uniform(0.4, 0.55)
        canvas.add(
            smooth * ((1 - arm_share) * disk_flux / (2 * math.pi * h * h * q)), _jitter(rng, DISK)
        )
        arm_norm = float(arm_light.sum()) * canvas.step**2 + 1e-6
        canvas.add(arm_light * (arm_share * disk_flux / arm_norm), _jitter(rng, YOUNG, 0.08))
    else:
        canvas.add(smooth * (disk_flux / (2 * math.pi * h * h * q)), _jitter(rng, DISK))
    if c.barred:
        bc, bs = math.cos(bar_angle), math.sin(bar_angle)
        along, across = (u * bc + v * bs) / bar_length, (v * bc - u * bs) / (bar_length * 0.26)
        bar = np.clip(1.0 - along * along - across * across, 0.0, None) ** 1.5
        bar_norm = 0.48 * math.pi * bar_length**2 * 0.26 * q * 0.4
        canvas.add(bar * (bar_fraction * flux / bar_norm), _jitter(rng, BULGE))
    if bt > 0:
        n, r_e = rng.uniform(1.5, 3.5), h * rng.uniform(0.25, 0.35) * (1.0 + bt)
        q_bulge = min(1.0, q + 0.2)
        amplitude = bt * flux / _sersic_total(n, r_e, q_bulge)
        canvas.add(_sersic(canvas, 0, 0, angle, q_bulge, r_e, n, amplitude), _jitter(rng, BULGE))
    if c.odd == "u":
        offset = rng.uniform(0.1, 0.35) * h
        tau = rng.uniform(1.0, 1.8) * np.exp(-(((v * q - offset) / (0.12 * h)) ** 2))
        canvas.attenuate(tau * np.exp(-((u / (2.0 * h)) ** 2)))
    return h, q


def _artifact(canvas: Canvas, rng: np.random.Generator) -> None:
    """A bright star with diffraction spikes, satellite trails, or both."""
    kind = rng.choice(["star", "trail", "both"], p=[0.55, 0.25, 0.2])
    if kind in ("star", "both"):
        x0, y0 = rng.normal(0.0, 6.0, 2)
        flux = 10 ** rng.uniform(5.3, 5.9)
        color = _jitter(rng, np.array([1.0, 1.0, 1.1], dtype=np.float32), 0.15)
        canvas.add_point(x0, y0, flux, color)
        u, v = canvas.frame(x0, y0, 0.0)
        r = np.sqrt(u * u + v * v) + 1.0
        halo = np.exp(-r / rng.uniform(8.0, 16.0)) * flux * 3e-4
        canvas.add(halo, _jitter(rng, np.array([1.3, 0.9, 1.0], dtype=np.float32), 0.2))
        spike_angle = rng.uniform(0.0, math.pi / 2)
        length = rng.uniform(25.0, 50.0)
        for k in range(2):
            a, b = canvas.frame(x0, y0, spike_angle + k * math.pi / 2)
            spike = np.exp(-np.abs(a) / length - (b / 1.4) ** 2) * flux * 4e-4
            canvas.add(spike, color)
    if kind in ("trail", "both"):
        angle = rng.uniform(0.0, math.pi)
        offset = rng.normal(0.0, 40.0)
        channels = rng.permutation(3)[: int(rng.integers(1, 4))]
        for k, channel in enumerate(channels):
            _, across = canvas.frame(0.0, offset + 9.0 * k, angle)
            color = np.zeros(3, dtype=np.float32)
            color[channel] = 1.0
            canvas.add(np.exp(-((across / 1.3) ** 2)) * rng.uniform(80.0, 250.0), color)
        if kind == "trail":
            # The object under the trail: a faint, unremarkable smudge.
            canvas.add(_sersic(canvas, 0, 0, 0.0, 1.0, 10.0, 1.0, rng.uniform(5, 15)), OLD)


def _odd_feature(canvas: Canvas, rng: np.random.Generator, c: GZ2Class, scale, q, angle, flux):
    """Add the odd feature coded in the class (dust lanes are drawn with their disk)."""
    odd = c.odd
    if odd is None or odd == "u" and c.family in ("Se", "S"):
        return
    if odd == "u":  # a dust lane across an elliptical
        u, v = canvas.frame(0.0, 0.0, angle + rng.normal(0, 0.2))
        canvas.attenuate(rng.uniform(0.8, 1.4) * np.exp(-((v / 2.5) ** 2) - (u / 30.0) ** 2))
    elif odd == "r":
        radius = R90_PIXELS * rng.uniform(0.75, 1.05)
        ring = _arc(canvas, 0, 0, radius, radius * 0.12, 0.0, 0.0, 1.0, angle, q)
        ring *= np.sqrt(_clumps(rng, ring.shape, 2.0))  # a few knots, not arms
        canvas.add(ring * (0.12 * flux / (2 * math.pi * radius * radius * 0.2 * q)), YOUNG)
    elif odd == "l":
        radius = R90_PIXELS * rng.uniform(1.0, 1.4)
        arc = _arc(canvas, 0, 0, radius, 2.5, rng.uniform(0, 6.3), rng.uniform(3.0, 6.0), 1.0)
        canvas.add(arc * rng.uniform(70.0, 130.0), _jitter(rng, YOUNG))
    elif odd in ("d", "m"):
        direction = rng.uniform(0.0, 2 * math.pi)
        if odd == "m":
            distance = R90_PIXELS * rng.uniform(0.8, 1.4)
            x1, y1 = distance * math.cos(direction), distance * math.sin(direction)
            r_e, n = R90_PIXELS * rng.uniform(0.15, 0.3), rng.uniform(1.0, 4.0)
            q1, share = rng.uniform(0.5, 1.0), rng.uniform(0.25, 0.7)
            amplitude = share * flux / _sersic_total(n, r_e, q1)
            companion = _sersic(canvas, x1, y1, rng.uniform(0, 3.2), q1, r_e, n, amplitude)
            canvas.add(companion, _jitter(rng, OLD if n > 2.5 else BULGE))
        # Tidal tails: broad, faint arcs leaving the galaxy on opposite sides.
        for sign in (1.0, -1.0):
            radius = R90_PIXELS * rng.uniform(0.7, 1.2)
            centre = direction + (0 if sign > 0 else math.pi) + rng.normal(0, 0.3)
            cx, cy = 0.5 * radius * math.cos(centre), 0.5 * radius * math.sin(centre)
            tail = _arc(canvas, cx, cy, radius, radius * 0.18, centre + 1.2 * sign, 2.5, 1.0)
            canvas.add(tail * rng.uniform(8.0, 22.0), _jitter(rng, DISK))
    elif odd == "i":
        for _ in range(int(rng.integers(4, 9))):
            x, y = rng.normal(0.0, scale * 1.6, 2)
            r_e = rng.uniform(3.0, 6.0)
            stamp = canvas.stamp(x, y, 8.0 * r_e)
            blob = _sersic(stamp, x, y, 0.0, 1.0, r_e, 1.0, 1.0)
            stamp.add(blob * rng.uniform(60.0, 160.0), _jitter(rng, YOUNG, 0.1))
    elif odd == "o":
        # Something else catches the eye: a bright foreground star on the galaxy.
        x, y = rng.normal(0.0, scale * 0.8, 2)
        canvas.add_point(x, y, flux * rng.uniform(0.2, 0.5), _jitter(rng, DISK, 0.15))


def _neighbours(canvas: Canvas, rng: np.random.Generator) -> None:
    """Field stars and small background galaxies scattered over the cutout."""
    half = canvas.size / 2.0
    for _ in range(int(rng.poisson(7))):
        x, y = rng.uniform(-half, half, 2)
        if math.hypot(x, y) < 35.0:
            continue
        color = _jitter(rng, np.array([1.0, 0.95, 0.9], dtype=np.float32), 0.15)
        canvas.add_point(x, y, 10 ** rng.uniform(2.6, 4.6), color)
    for _ in range(int(rng.poisson(4))):
        x, y = rng.uniform(-half, half, 2)
        if math.hypot(x, y) < 60.0:
            continue
        r_e = rng.uniform(2.5, 7.0)
        stamp = canvas.stamp(x, y, 8.0 * r_e)
        blob = _sersic(stamp, x, y, rng.uniform(0, 3.2), rng.uniform(0.3, 1.0), r_e, 1.5, 1.0)
        color = _jitter(rng, OLD if rng.random() < 0.6 else DISK, 0.12)
        stamp.add(blob * rng.uniform(8.0, 45.0), color)


def _stretch(light: np.ndarray, softening: float) -> np.ndarray:
    """Asinh stretch of the summed light, colour preserving (Lupton et al. 2004)."""
    level = np.maximum(light.mean(axis=0), 1e-3)
    return light * (softening * np.arcsinh(level / softening) / level)


def render(
    gz2_class: str | GZ2Class, rng: np.random.Generator, size: int = IMAGE_SIZE
) -> np.ndarray:
    """Render one galaxy of ``gz2_class``.

    Parameters
    ----------
    gz2_class : str or GZ2Class
        A string of the grammar of :mod:`galmorph.catalogue.classes`.
    rng : numpy.random.Generator
        The only source of randomness.
    size : int
        Side of the square image (even).

    Returns
    -------
    ndarray
        uint8 array of shape (size, size, 3).
    """
    c = parse(gz2_class) if isinstance(gz2_class, str) else gz2_class
    canvas = Canvas(size)
    angle = rng.uniform(0.0, math.pi)
    flux = 10 ** rng.uniform(5.6, 6.1) * (size / IMAGE_SIZE) ** 2
    if c.family == "A":
        _artifact(canvas, rng)
        scale, q = 10.0, 1.0
    elif c.family == "E":
        scale, q = _elliptical(canvas, rng, c, flux, angle)
    elif c.family == "Se":
        scale, q = _edge_on(canvas, rng, c, flux, angle)
    else:
        scale, q = _face_on_disk(canvas, rng, c, flux, angle)
    _odd_feature(canvas, rng, c, scale, q, angle, flux)
    _neighbours(canvas, rng)

    psf_sigma = rng.uniform(2.0, 4.0) / canvas.step
    light = ndimage.gaussian_filter(canvas.light, (0.0, psf_sigma, psf_sigma), truncate=3.0)
    light += 3.6 * rng.standard_normal(light.shape, dtype=np.float32)
    display = _stretch(light, softening=rng.uniform(16.0, 24.0))
    display += np.array([3.0, 2.8, 2.2], dtype=np.float32)[:, None, None]
    pixels = np.clip(display, 0.0, 255.0).astype(np.uint8).transpose(1, 2, 0)
    low = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    if low.size != (size, size):
        low = low.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(low)


def render_jpeg(gz2_class: str, rng: np.random.Generator, quality: int = 82) -> bytes:
    """Render one galaxy and encode it as a 424 x 424 baseline JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(render(gz2_class, rng)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
