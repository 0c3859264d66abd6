"""Image acquisition: parallel connections and bytes moved, from a zip over HTTP ranges.

Real SDSS JPEGs (../shared/data/sdss_gz1_sample) are packed into an
images_gz2.zip-style archive with many more members than the shard needs,
served by the tests' HTTP server on 127.0.0.1 with a fixed delay per
request standing in for a remote server's latency. One shard is fetched
with 1, 4 and 8 connections, side by side in one run; printed: wall time,
images per second, speed-up over one connection, requests and bytes sent
versus the archive's size.

    python bench/acquire_throughput.py [--shard 200] [--archive 1500] [--latency-ms 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from httpserver import FileServer  # noqa: E402

from galmorph.images.acquire import ZipSource, fetch_shard  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "sdss_gz1_sample" / "images"


def build_archive(path: Path, n_members: int) -> list[int]:
    files = sorted(DATA.glob("*.jpeg"))[:n_members]
    if len(files) < n_members:
        raise SystemExit(f"only {len(files)} images in {DATA}")
    ids = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for asset_id, file in enumerate(files, start=200_000):
            archive.write(file, f"images/{asset_id}.jpg")
            ids.append(asset_id)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shard", type=int, default=200, help="images fetched per run")
    parser.add_argument("--archive", type=int, default=1500, help="members in the archive")
    parser.add_argument("--latency-ms", type=float, default=40.0, help="delay per request")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        root = scratch / "www"
        root.mkdir()
        ids = build_archive(root / "images_gz2.zip", args.archive)
        archive_bytes = (root / "images_gz2.zip").stat().st_size
        step = len(ids) // args.shard
        rows = pd.DataFrame({"asset_id": ids[::step][: args.shard]})
        rows["dr7objid"] = rows.asset_id + 587_000_000_000_000_000
        print(
            f"archive: {len(ids)} real SDSS JPEGs, {archive_bytes / 1e6:.1f} MB; shard: "
            f"{len(rows)} images; server delay {args.latency_ms:.0f} ms per request"
        )
        print(f"{'connections':>11} {'wall s':>7} {'img/s':>7} {'speed-up':>8} "
              f"{'requests':>8} {'MB sent':>8} {'% of archive':>12}")  # fmt: skip
        with FileServer(root) as server:
            server.delay("*", args.latency_ms / 1000)
            baseline = None
            for connections in (1, 4, 8):
                server.clear_log()
                start = time.perf_counter()
                report = fetch_shard(
                    rows,
                    ZipSource(server.url("images_gz2.zip")),
                    scratch / f"c{connections}" / "shard_0000",
                    scratch / f"c{connections}.failures.csv",
                    connections=connections,
                    size=423,
                    progress=False,
                )
                wall = time.perf_counter() - start
                assert report.n_ok == len(rows), report
                baseline = baseline or wall
                sent = server.bytes_sent()
                print(
                    f"{connections:>11} {wall:>7.2f} {len(rows) / wall:>7.1f} "
                    f"{baseline / wall:>7.2f}x {len(server.requests):>8} "
                    f"{sent / 1e6:>8.2f} {100 * sent / archive_bytes:>11.1f}%"
                )


if __name__ == "__main__":
    main()
