"""Real SDSS galaxies written as HDF5 shards in the project's format, for benchmarks.

The 423-pixel JPEGs of ../shared/data/sdss_gz1_sample are resized to the
stored 424 pixels, as the images stage does with ``size_policy: resize``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
GZ1 = REPO.parent / "shared" / "data" / "sdss_gz1_sample"
STORED = 424


def read_labels() -> pd.DataFrame:
    """``dr7objid, gz1_class`` of the 5,011 labelled galaxies."""
    return pd.read_csv(GZ1 / "labels.csv")


def write_shard(path: Path, rows: pd.DataFrame, names: list[str], split: str) -> Path:
    """Write ``rows`` (``dr7objid, gz1_class``) as one shard with label order ``names``."""
    with h5py.File(path, "w") as handle:
        images = handle.create_dataset(
            "images", (len(rows), STORED, STORED, 3), "uint8",
            chunks=(1, STORED, STORED, 3), compression="lzf",
        )  # fmt: skip
        for i, objid in enumerate(rows["dr7objid"]):
            with Image.open(GZ1 / "images" / f"{objid}.jpeg") as image:
                images[i] = np.asarray(image.convert("RGB").resize((STORED, STORED)))
        handle["asset_id"] = rows["dr7objid"].to_numpy(np.int64)
        handle["dr7objid"] = rows["dr7objid"].to_numpy(np.int64)
        handle["class"] = rows["gz1_class"].map(names.index).to_numpy(np.int16)
        handle.attrs["class_names"] = names
        handle.attrs["split"] = split
    return path
