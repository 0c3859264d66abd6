"""The images stage's cost per image, today's way and the new way, side by side in one run.

    python bench/images_cost.py [--images DIR --labels CSV] [--n 2000] [--shards 2] [--rounds 2]

Every step is the workflow's own code, run in this process on the same JPEGs (by
default the first ``--n`` galaxies of ``../shared/data/sdss_gz1_sample``):

* fetch: :func:`galmorph.images.acquire.fetch_shard` from the local folder (read, verify,
  store), the ``images.source: directory`` route of the SDSS benchmark;
* convert: :func:`galmorph.images.hdf5.convert_shard` (uncompressed shards, as configured);
* pack_jpg and pack_hdf5: :func:`galmorph.images.packing.pack`, today with zlib level 6,
  the new way with ISA-L level 1 (``images.archive_compressor``/``archive_gzip_level``).

The two ways alternate for ``--rounds`` rounds (so load from other processes hits both
alike); the table gives the median CPU (user + system, all threads) per image, the wall
time, and bytes on disk per image of the shards and of the archives, and the ratio of
the whole stage's CPU per image. Job start-up (Python and imports, about 1-2 s per job)
is outside these figures; ``bench/stage_benchmarks.py`` has the per-job totals of a run.
Last, the same images are converted once per shard storage choice (``images.compression``
none, lzf, gzip level 4) and the bytes per image printed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from galmorph.images.acquire import fetch_shard, make_source  # noqa: E402
from galmorph.images.hdf5 import convert_shard  # noqa: E402
from galmorph.images.packing import members_under, pack  # noqa: E402

WAYS = {"today": ("zlib", 6), "new": ("isal", 1)}
STEPS = ("fetch", "convert", "pack_jpg", "pack_hdf5")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(step):
    cpu, wall = cpu_seconds(), time.perf_counter()
    step()
    return cpu_seconds() - cpu, time.perf_counter() - wall


def one_way(rows, shards, source, classes, folder: Path, compressor: str, level: int) -> dict:
    """Run the four steps of the images stage into ``folder``; CPU, wall and bytes per step."""
    jpg, hdf5 = folder / "jpg", folder / "hdf5"
    parts = [rows.iloc[i::shards] for i in range(shards)]
    out = {}

    def fetch():
        for i, part in enumerate(parts):
            fetch_shard(part, source, jpg / f"shard_{i:04d}", jpg / f"shard_{i:04d}.failures.csv",
                        connections=1, progress=False)  # fmt: skip

    def convert():
        hdf5.mkdir(parents=True, exist_ok=True)
        for i, part in enumerate(parts):
            convert_shard(jpg / f"shard_{i:04d}", part, hdf5 / f"shard_{i:04d}.h5",
                          class_names=classes, compression="none", progress=False)  # fmt: skip

    def pack_jpg():
        pack(members_under(jpg, jpg), folder / "jpg.tar.gz", compresslevel=level,
             compressor=compressor, progress=False)  # fmt: skip

    def pack_hdf5():
        pack(members_under(hdf5, hdf5), folder / "hdf5.tar.gz", compresslevel=level,
             compressor=compressor, progress=False)  # fmt: skip

    for name, step in zip(STEPS, (fetch, convert, pack_jpg, pack_hdf5), strict=True):
        out[name] = measure(step)
    out["bytes"] = {
        "jpg": sum(p.stat().st_size for p in jpg.rglob("*.jpg")),
        "shards": sum(p.stat().st_size for p in hdf5.glob("*.h5")),
        "jpg archive": (folder / "jpg.tar.gz").stat().st_size,
        "hdf5 archive": (folder / "hdf5.tar.gz").stat().st_size,
    }
    return out


def main(argv=None) -> pd.DataFrame:
    data = REPO.parent / "shared/data/sdss_gz1_sample"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=data / "images")
    parser.add_argument("--labels", type=Path, default=data / "labels.csv")
    parser.add_argument("--id-column", default="dr7objid")
    parser.add_argument("--label-column", default="gz1_class")
    parser.add_argument("--pattern", default="{id}.jpeg")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if not args.images.is_dir():
        raise SystemExit(f"{args.images}: no such folder (pass --images and --labels)")
    labels = pd.read_csv(args.labels, dtype={args.id_column: str}).head(args.n)
    rows = pd.DataFrame({
        "asset_id": labels[args.id_column].astype("int64"),
        "dr7objid": labels[args.id_column].astype("int64"),
        "class": labels[args.label_column],
    })  # fmt: skip
    classes = sorted(rows["class"].unique())
    source = make_source("directory", directory=str(args.images), filename_pattern=args.pattern)
    n = len(rows)
    results = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="images_cost_") as tmp:
        for round_ in range(args.rounds):
            for way, (compressor, level) in WAYS.items():
                folder = Path(tmp) / f"{way}_{round_}"
                results[way].append(
                    one_way(rows, args.shards, source, classes, folder, compressor, level)
                )
                print(f"round {round_ + 1} {way}: done", file=sys.stderr, flush=True)
    table = []
    for step in STEPS:
        row = {"step": step}
        for way in WAYS:
            cpu = statistics.median(r[step][0] for r in results[way])
            wall = statistics.median(r[step][1] for r in results[way])
            row[f"{way} CPU ms/img"] = 1000 * cpu / n
            row[f"{way} wall s"] = wall
        table.append(row)
    frame = pd.DataFrame(table).set_index("step")
    frame.loc["whole stage"] = frame.sum()
    frame["CPU ratio"] = frame["today CPU ms/img"] / frame["new CPU ms/img"]
    print(f"{n} images ({args.images}), {args.shards} shards, median of {args.rounds} rounds; "
          f"today: zlib 6, new: isal 1")  # fmt: skip
    print(frame.to_string(float_format=lambda v: f"{v:.2f}"))
    print("\nbytes on disk per image:")
    for way in WAYS:
        sizes = results[way][-1]["bytes"]
        print(f"  {way:5s}: " + ", ".join(f"{k} {v / n / 1000:.1f} kB" for k, v in sizes.items()))
    ratio = (
        results["new"][-1]["bytes"]["hdf5 archive"] / results["today"][-1]["bytes"]["hdf5 archive"]
    )
    print(f"HDF5 archive size, new / today: {ratio:.3f}")
    print("\nshard storage choices (images.compression), conversion of the same images:")
    with tempfile.TemporaryDirectory(prefix="images_cost_") as tmp:
        jpg = Path(tmp) / "jpg"
        fetch_shard(rows, source, jpg, Path(tmp) / "failures.csv", connections=1, progress=False)
        for compression in ("none", "lzf", "gzip"):
            out = Path(tmp) / f"{compression}.h5"
            cpu, _ = measure(lambda c=compression, o=out: convert_shard(
                jpg, rows, o, class_names=classes, compression=c, progress=False))  # fmt: skip
            print(f"  {compression:5s}: {out.stat().st_size / n / 1000:6.1f} kB per image, "
                  f"conversion {1000 * cpu / n:.2f} ms CPU per image")  # fmt: skip
    return frame


if __name__ == "__main__":
    main()
