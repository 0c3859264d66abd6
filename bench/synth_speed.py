"""Speed of the synthetic sky: galaxies per second and total time for 2,000 galaxies.

    python bench/synth_speed.py [--n 2000] [--jobs 1]

Target: 2,000 galaxies (catalogue, mapping and zip of 424 x 424 JPEGs) in
under 30 s on one core. Also prints the split between the catalogue and the
image rendering, measured in the same run.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

from galmorph.synth import build_catalogue, render_jpeg, write_sky  # noqa: E402
from galmorph.synth.writer import image_rng  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="galaxies to generate")
    parser.add_argument("--jobs", type=int, default=1, help="rendering processes")
    args = parser.parse_args()

    start = time.perf_counter()
    sky = build_catalogue(np.random.SeedSequence(1, spawn_key=(0,)), args.n, args.n // 20, 3)
    catalogue_s = time.perf_counter() - start

    sample = sky.classes[:200]
    start = time.perf_counter()
    sizes = [len(render_jpeg(c, image_rng(1, i))) for i, c in enumerate(sample)]
    per_image_ms = 1000 * (time.perf_counter() - start) / len(sample)

    with tempfile.TemporaryDirectory() as out:
        start, cpu_start = time.perf_counter(), time.process_time()
        paths = write_sky(
            out,
            args.n,
            seed=1,
            n_unlabelled=args.n // 20,
            n_malformed=3,
            progress=False,
            n_jobs=args.jobs,
        )
        total_s = time.perf_counter() - start
        cpu_s = time.process_time() - cpu_start
        zip_mb = Path(paths["zip"]).stat().st_size / 1e6

    print(f"galaxies:            {args.n} (jobs={args.jobs})")
    print(f"total time:          {total_s:.1f} s  (target < 30 s for 2,000 on one core)")
    print(f"CPU time:            {cpu_s:.1f} s  (wall time counts other users of a shared machine)")
    print(f"galaxies per second: {args.n / total_s:.1f} wall, {args.n / cpu_s:.1f} per CPU second")
    print(f"catalogue only:      {catalogue_s:.2f} s")
    print(f"render + JPEG:       {per_image_ms:.1f} ms per image (mean of {len(sample)})")
    print(f"JPEG size:           {np.mean(sizes) / 1e3:.1f} kB mean; zip {zip_mb:.1f} MB")


if __name__ == "__main__":
    main()
