"""Small HDF5 image shards written by hand for the reduction and clustering tests."""

import h5py
import numpy as np

CLASS_NAMES = ["Er", "Ei", "SB"]


def blob_images(n, size, seed):
    """uint8 galaxy-like blobs (n, size, size, 3) with a random centre and width."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    images = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        cx, cy = rng.normal(0, size / 12, 2)
        width = rng.uniform(size / 16, size / 5)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2 * rng.uniform(1, 3)) / (2 * width**2))
        colour = rng.uniform(0.4, 1.0, 3)
        noise = rng.normal(0, 0.02, (size, size, 3))
        images[i] = np.clip((blob[..., None] * colour + noise) * 255, 0, 255)
    return images


def write_shard(path, images, first_id, classes):
    n = len(images)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("images", data=images, chunks=(1, *images.shape[1:]))
        handle.create_dataset("asset_id", data=np.arange(first_id, first_id + n, dtype=np.int64))
        handle.create_dataset("dr7objid", data=np.arange(n, dtype=np.int64) + 10**15 + first_id)
        handle.create_dataset("class", data=np.asarray(classes, dtype=np.int16))
        handle.attrs["class_names"] = CLASS_NAMES
    return path
