"""Galaxy-like test images for the benchmarks: smooth elliptical blobs with noise.

Each image is one or two Sersic-like light profiles (random centre offset,
axis ratio, angle, size and colour) plus a few faint field stars and sky noise,
stored as uint8 like the HDF5 shards.
"""

from __future__ import annotations

import numpy as np


def galaxy_images(n: int, size: int = 174, seed: int = 0) -> np.ndarray:
    """``n`` uint8 images (n, size, size, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        image = np.zeros((size, size, 3), np.float32)
        for _ in range(rng.integers(1, 3)):
            cx, cy = rng.normal(0, size * 0.03, 2)
            angle = rng.uniform(0, np.pi)
            axis = rng.uniform(0.2, 1.0)
            radius = rng.uniform(0.05, 0.2) * size
            index = rng.uniform(0.5, 4.0)
            x = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
            y = (-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)) / axis
            profile = np.exp(-((np.hypot(x, y) / radius) ** (1 / index)))
            colour = rng.uniform(0.5, 1.0, 3)
            image += profile[..., None] * colour * rng.uniform(0.5, 1.0)
        for _ in range(rng.integers(0, 4)):
            sx, sy = rng.uniform(-size / 2, size / 2, 2)
            image += (np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / 4.0) * rng.uniform(0.2, 1))[
                ..., None
            ]
        image += rng.normal(0.02, 0.015, image.shape).astype(np.float32)
        out[i] = np.clip(image * 255, 0, 255).astype(np.uint8)
    return out
