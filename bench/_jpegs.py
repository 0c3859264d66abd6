"""A folder of GZ2-like JPEGs for the conversion benchmarks.

Real SDSS galaxies from ``../shared/data/sdss_gz1_sample`` (423x423), resized to
424x424 and saved at JPEG quality 90 as ``<asset_id>.jpg`` (about 13-20 KB each,
like the GZ2 release). Where that folder is absent, synthetic galaxies stand in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SHARED_IMAGES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sdss_gz1_sample" / "images"
)
SIZE = 424
FIRST_ASSET = 100_000


def write_jpegs(folder: Path, n: int) -> pd.DataFrame:
    """Write ``n`` JPEGs into ``folder``; return their sample rows."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(SHARED_IMAGES.glob("*.jpeg")) if SHARED_IMAGES.is_dir() else []
    if sources:
        for i in range(n):
            with Image.open(sources[i % len(sources)]) as image:
                rgb = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
            if i >= len(sources):  # more images than the real set: mirror for new pixels
                rgb = rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            rgb.save(folder / f"{FIRST_ASSET + i}.jpg", quality=90)
    else:
        from _galaxies import galaxy_images

        for i in range(n):
            pixels = galaxy_images(1, SIZE, seed=i)[0]
            Image.fromarray(pixels).save(folder / f"{FIRST_ASSET + i}.jpg", quality=90)
    rng = np.random.default_rng(0)
    assets = np.arange(FIRST_ASSET, FIRST_ASSET + n)
    return pd.DataFrame(
        {
            "dr7objid": 587_000_000_000_000_000 + assets,
            "asset_id": assets,
            "class": rng.choice(["Er", "Ei", "Sc"], n),
        }
    )
