"""Peak memory of the streamed reduction: bounded by the batch, not the dataset.

Runs galmorph.reduction.pipeline.fit_reduction (the configured preprocessing and
representation, or with ``--chain study`` the study's incremental PCA and scaler
passes, over HDF5 shards of 424x424x3 images, central 174x174 crop) in a fresh process per
dataset size and prints each process's peak resident memory. The shards are
written once in the HDF5 shard format with ``--unique`` galaxy-like images; the
larger datasets list the same shard file under several names (links), so the
reader streams every image again exactly as from distinct shards, without
filling the disk.

    python bench/ipca_memory.py                      # 5,000 vs 20,000 images
    python bench/ipca_memory.py --sizes 1000 4000 --unique 500
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path[:0] = [str(SRC), str(HERE)]


def write_shard(path: Path, n: int, size: int) -> None:
    import h5py
    import numpy as np
    from _galaxies import galaxy_images

    with h5py.File(path, "w") as handle:
        images = handle.create_dataset(
            "images", (n, size, size, 3), np.uint8, chunks=(1, size, size, 3), compression="lzf"
        )
        for start in range(0, n, 100):
            stop = min(start + 100, n)
            images[start:stop] = galaxy_images(stop - start, size, seed=start)
        handle.create_dataset("asset_id", data=np.arange(n, dtype=np.int64))
        handle.create_dataset("dr7objid", data=np.arange(n, dtype=np.int64))
        handle.create_dataset("class", data=(np.arange(n) % 12).astype(np.int16))
        handle.attrs["class_names"] = [f"c{i}" for i in range(12)]


def child(paths: list[str], crop: int, n_components: int, batch_size: int, chain: str) -> None:
    """Run in a fresh process: fit, then report the peak RSS as JSON on stdout."""
    import yaml

    from galmorph.images import hdf5
    from galmorph.reduction.pipeline import fit_reduction

    preprocess, representation = None, "pca"  # the study's chain
    if chain == "config":
        reduction = yaml.safe_load((HERE.parent / "config/config.yaml").read_text())["reduction"]
        preprocess, representation = reduction["preprocess"], reduction["representation"]
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    fit_reduction(paths, crop, n_components, batch_size, preprocess=preprocess,
                  representation=representation)  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "images": hdf5.count(paths),
        "seconds": time.perf_counter() - start,
        "baseline_mib": baseline / 1024,
        "peak_mib": peak / 1024,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--unique", type=int, default=1000, help="distinct images per shard")
    parser.add_argument("--size", type=int, default=424)
    parser.add_argument("--crop", type=int, default=174)
    parser.add_argument("--n-components", type=int, default=75)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument(
        "--chain",
        choices=("study", "config"),
        default="config",
        help="study: raw pixels + PCA; config: config/config.yaml's preprocessing and "
        "representation (default)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.crop, args.n_components, args.batch_size, args.chain)
        return

    with tempfile.TemporaryDirectory(prefix="ipca_memory_") as folder:
        shard = Path(folder) / "shard_unique.h5"
        start = time.perf_counter()
        write_shard(shard, args.unique, args.size)
        print(f"shard: {args.unique} images {args.size}x{args.size}x3, lzf, "
              f"{shard.stat().st_size / 2**20:.0f} MiB (written in "
              f"{time.perf_counter() - start:.0f} s)")  # fmt: skip
        print(f"chain {args.chain}, crop {args.crop}, n_components {args.n_components}, "
              f"batch {args.batch_size}")  # fmt: skip
        for n in args.sizes:
            if n % args.unique:
                raise SystemExit(f"--sizes must be multiples of --unique ({args.unique})")
            paths = []
            for i in range(n // args.unique):
                link = Path(folder) / f"shard_{n}_{i:04d}.h5"
                os.link(shard, link)
                paths.append(str(link))
            command = [sys.executable, __file__, "--crop", str(args.crop), "--n-components",
                       str(args.n_components), "--batch-size", str(args.batch_size),
                       "--chain", args.chain, "--child", *paths]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode:
                raise SystemExit(result.stderr[-3000:])
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"{figures['images']:6d} images: peak RSS {figures['peak_mib']:7.0f} MiB "
                  f"(after imports {figures['baseline_mib']:.0f} MiB), "
                  f"fit + scaler pass {figures['seconds']:.0f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
