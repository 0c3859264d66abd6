"""Conversion throughput: HDF5 shards against the study's way and the decoding floor.

All methods convert the same JPEGs in the same run, one process, one thread,
round-robin over several rounds (the median is reported) so that load from other
processes hits them alike. Rates are images per second of wall time and per
CPU-second ("per core"); the targets compare the per-core rates:

* (a) study: one HDF5 file per image, dataset ``galaxy`` with gzip level 9;
* (b) floor: decode the JPEG and crop it, write nothing;
* ours: :func:`galmorph.images.hdf5.convert_shard`, one file, one image per chunk.

Target: ours (default lzf) >= 5x (a) and >= 70% of (b).

    python bench/convert_speed.py [--n 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _jpegs import write_jpegs  # noqa: E402

from galmorph.catalogue.classes import CLASS_NAMES  # noqa: E402
from galmorph.images.hdf5 import convert_shard  # noqa: E402


def floor(files, out_dir):
    for path in files:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        pixels[125:-125, 125:-125]  # noqa: B018  (the study's crop: a view, no copy)


def study(files, out_dir):
    for path in files:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        with h5py.File(out_dir / f"{path.stem}.h5", "w") as handle:
            handle.create_dataset("number", data=int(path.stem))
            handle.create_dataset("galaxy", data=pixels, compression="gzip", compression_opts=9)


def ours(compression, gzip_level=4):
    def convert(files, out_dir, rows, jpg_dir):
        convert_shard(
            jpg_dir,
            rows,
            out_dir / "shard_0000.h5",
            class_names=CLASS_NAMES,
            compression=compression,
            gzip_level=gzip_level,
            progress=False,
        )

    return convert


def timed(method, files, out_dir, *extra):
    """Wall and CPU seconds of one method, and the bytes it wrote per image."""
    out_dir.mkdir()
    os.sync()  # write back the previous method's files before the clock starts
    wall, cpu = time.perf_counter(), time.process_time()
    method(files, out_dir, *extra)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    written = sum(path.stat().st_size for path in out_dir.iterdir())
    shutil.rmtree(out_dir)  # keep the disk and page cache alike for every method
    return wall, cpu, written / len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images (default 2000)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    methods = {
        "(b) floor: decode + crop": (floor, False),
        "(a) study: 1 file/image, gzip 9": (study, False),
        "ours: shard, lzf (default)": (ours("lzf"), True),
        "ours: shard, gzip 4": (ours("gzip", 4), True),
        "ours: shard, none": (ours("none"), True),
    }
    with tempfile.TemporaryDirectory(prefix="convert_speed-") as tmp:
        tmp = Path(tmp)
        jpg_dir = tmp / "jpg"
        rows = write_jpegs(jpg_dir, args.n)
        files = [jpg_dir / f"{asset}.jpg" for asset in rows["asset_id"]]
        kb = np.mean([path.stat().st_size for path in files]) / 1024
        print(f"{args.n} JPEGs, 424x424, mean {kb:.1f} KB; {args.rounds} rounds, median shown")
        floor(files, None)  # warm the page cache for every method alike
        times = {name: [] for name in methods}
        sizes = {}
        for round_ in range(args.rounds):
            for i, (name, (method, shard)) in enumerate(methods.items()):
                out_dir = tmp / f"out-{round_}-{i}"
                extra = (rows, jpg_dir) if shard else ()
                wall, cpu, written = timed(method, files, out_dir, *extra)
                times[name].append((wall, cpu))
                sizes[name] = written / 1024
    rates = {}
    for name, runs in times.items():
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        rates[name] = (args.n / wall, args.n / cpu)
    floor_rate, study_rate = (
        rates["(b) floor: decode + crop"][1],
        rates["(a) study: 1 file/image, gzip 9"][1],
    )
    print(
        f"{'method':34s} {'img/s':>8s} {'img/s/core':>11s} {'x study':>8s} {'% floor':>8s}"
        f" {'KB/img':>7s}"
    )
    for name, (wall_rate, cpu_rate) in rates.items():
        print(
            f"{name:34s} {wall_rate:8.0f} {cpu_rate:11.0f} {cpu_rate / study_rate:8.1f}"
            f" {100 * cpu_rate / floor_rate:7.0f}% {sizes[name]:7.0f}"
        )
    for name in (n for n in rates if n.startswith("ours")):
        speedup = rates[name][1] / study_rate
        share = rates[name][1] / floor_rate
        verdict = "met" if speedup >= 5 and share >= 0.7 else "NOT met"
        print(f"target (>= 5x study, >= 70% floor) {verdict} by {name}")


if __name__ == "__main__":
    main()
