"""Peak memory of a conversion job and of a reader, at two shard sizes.

Each measurement runs in a fresh Python process (the same imports as the rule
script) and reports its peak resident memory (``ru_maxrss``) before and after
the work, so the shard-size dependence is visible directly. Memory should not
grow with the shard: images are decoded and written one at a time, and read
in batches.

    python bench/convert_memory.py [--sizes 500 2000] [--batch-size 250]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"

CHILD = r"""
import json, resource, sys
sys.path.insert(0, {src!r})
import pandas as pd
from galmorph.catalogue.classes import CLASS_NAMES
from galmorph.images import hdf5

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

mode, jpg_dir, rows_csv, n, out, batch_size = sys.argv[1:7]
rows = pd.read_csv(rows_csv).head(int(n))
before = peak_mb()
if mode == "convert":
    hdf5.convert_shard(jpg_dir, rows, out, class_names=CLASS_NAMES, compression="lzf",
                       progress=False)
else:
    seen = 0
    for batch in hdf5.iter_batches([out], int(batch_size), crop=174, shuffle=True, seed=0):
        seen += len(batch)
    assert seen == int(n)
print(json.dumps({{"before_mb": before, "peak_mb": peak_mb()}}))
"""


def measure(mode, jpg_dir, rows_csv, n, out, batch_size):
    code = CHILD.format(src=str(SRC))
    args = [sys.executable, "-c", code, mode, str(jpg_dir), str(rows_csv), str(n), str(out)]
    result = subprocess.run([*args, str(batch_size)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[500, 2000])
    parser.add_argument("--batch-size", type=int, default=250)
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    from _jpegs import write_jpegs

    with tempfile.TemporaryDirectory(prefix="convert_memory-") as tmp:
        tmp = Path(tmp)
        rows = write_jpegs(tmp / "jpg", max(args.sizes))
        rows_csv = tmp / "rows.csv"
        rows.to_csv(rows_csv, index=False)
        print(
            f"{'job':34s} {'images':>7s} {'after imports':>14s} {'peak':>8s}"
            f" {'all pixels in RAM':>18s}"
        )
        for mode in ("convert", "read"):
            for n in args.sizes:
                out = tmp / f"shard_{n}.h5"
                figures = measure(mode, tmp / "jpg", rows_csv, n, out, args.batch_size)
                label = (
                    "convert_shard (lzf)"
                    if mode == "convert"
                    else f"iter_batches({args.batch_size}, crop=174)"
                )
                print(
                    f"{label:34s} {n:7d} {figures['before_mb']:11.0f} MB"
                    f" {figures['peak_mb']:5.0f} MB {n * 424 * 424 * 3 / 2**20:15.0f} MB"
                )


if __name__ == "__main__":
    main()
