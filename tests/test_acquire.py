"""galmorph.images.acquire.fetch_shard from zip, cutout and directory sources, with real faults."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from httpserver import FileServer
from PIL import Image

from galmorph.errors import DownloadError, InputDataError
from galmorph.images.acquire import (
    CutoutSource,
    DirectorySource,
    Transfer,
    ZipSource,
    fetch_shard,
    make_source,
    resumable_dir,
    verify_jpeg,
)

SRC = Path(__file__).resolve().parents[1] / "src"
SIZE = 32
FAST = {
    "transfer": Transfer(timeout_s=5.0, retries=3, backoff_s=0.01),
    "progress": False,
    "size": SIZE,
}


def jpeg(seed: int, size: int = SIZE, mode: str = "RGB") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def make_rows(n: int, first_id: int = 1000) -> pd.DataFrame:
    ids = np.arange(first_id, first_id + n)
    return pd.DataFrame(
        {
            "dr7objid": 587720000000000000 + ids,
            "asset_id": ids,
            "gz2_class": "Ei",
            "class": "Ei",
            "ra": 150.0 + ids / 1000,
            "dec": -1.5 + ids / 1000,
        }
    )


def cutout_name(row) -> str:
    return f"cutouts/{row['ra']:.5f}_{row['dec']:.5f}.jpg"


CUTOUT_TEMPLATE = "cutouts/{ra:.5f}_{dec:.5f}.jpg"


def images_of(rows) -> dict[int, bytes]:
    return {int(a): jpeg(int(a)) for a in rows["asset_id"]}


def build_zip(path: Path, images: dict[int, bytes], padding: int = 300_000) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for asset_id, data in images.items():
            archive.writestr(f"images/{asset_id}.jpg", data)
        archive.writestr("images/padding.bin", os.urandom(padding))


def stored(out_dir: Path) -> dict[int, bytes]:
    return {int(p.stem): p.read_bytes() for p in out_dir.glob("*.jpg")}


@pytest.fixture
def sky(tmp_path):
    """Rows and their images, served as a zip and as cutouts by one server."""
    rows = make_rows(40)
    images = images_of(rows)
    root = tmp_path / "www"
    (root / "cutouts").mkdir(parents=True)
    build_zip(root / "images_gz2.zip", images)
    for _, row in rows.iterrows():
        (root / cutout_name(row)).write_bytes(images[int(row["asset_id"])])
    with FileServer(root) as server:
        yield rows, images, server


def read_failures(path) -> pd.DataFrame:
    return pd.read_csv(path)


def test_zip_over_http_fetches_only_sampled_members(sky, tmp_path):
    rows, images, server = sky
    shard = rows.iloc[5:15]
    out = tmp_path / "jpg" / "shard_0000"
    report = fetch_shard(
        shard, ZipSource(server.url("images_gz2.zip")), out, tmp_path / "f.csv", **FAST
    )
    assert (report.n_requested, report.n_ok, report.n_skipped_existing, report.n_failed) == (
        10,
        10,
        0,
        0,
    )
    assert stored(out) == {a: images[a] for a in shard["asset_id"]}
    archive = (server.root / "images_gz2.zip").stat().st_size
    # One tail read (it covers this small central directory) + one per sampled member.
    assert len(server.requests) == 1 + 10
    assert all(r.status == 206 for r in server.requests)
    assert server.bytes_sent() < 70_000 + 10 * 1_500 < archive / 3
    assert list(read_failures(tmp_path / "f.csv").columns) == ["asset_id", "dr7objid", "reason"]
    assert len(read_failures(tmp_path / "f.csv")) == 0
    assert not (tmp_path / "jpg" / "shard_0000.quarantine").exists()


def test_local_zip_directory_and_cutout_sources_agree(sky, tmp_path):
    rows, images, server = sky
    shard = rows.iloc[:6]
    folder = tmp_path / "folder"
    folder.mkdir()
    for asset_id, data in images.items():
        (folder / f"{asset_id}.jpg").write_bytes(data)
    sources = {
        "zip_path": make_source("zip", zip_url=str(server.root / "images_gz2.zip")),
        "zip_file_url": make_source("zip", zip_url=(server.root / "images_gz2.zip").as_uri()),
        "directory": make_source("directory", directory=str(folder)),
        "cutout": make_source("cutout", cutout_url=server.url(CUTOUT_TEMPLATE)),
    }
    for name, source in sources.items():
        out = tmp_path / name / "shard_0001"
        report = fetch_shard(shard, source, out, tmp_path / f"{name}.csv", **FAST)
        assert report.n_ok == 6, name
        assert stored(out) == {a: images[a] for a in shard["asset_id"]}, name
    assert server.count(cutout_name(shard.iloc[0])) == 1


def test_rerun_fetches_nothing_when_complete(sky, tmp_path):
    rows, _, server = sky
    source = ZipSource(server.url("images_gz2.zip"))
    out = tmp_path / "shard_0000"
    fetch_shard(rows.iloc[:8], source, out, tmp_path / "f.csv", **FAST)
    server.clear_log()
    (out / f"{rows.asset_id[2]}.jpg").write_bytes(b"\xff\xd8 garbage")  # damaged since
    report = fetch_shard(rows.iloc[:8], source, out, tmp_path / "f.csv", **FAST)
    assert (report.n_ok, report.n_skipped_existing) == (1, 7)
    assert len(server.requests) == 1 + 1  # directory, then the one damaged image
    server.clear_log()
    report = fetch_shard(rows.iloc[:8], source, out, tmp_path / "f.csv", **FAST)
    assert report.n_skipped_existing == 8 and server.requests == []


def test_injected_faults(sky, tmp_path):
    rows, images, server = sky
    shard = rows.iloc[:10]
    names = [cutout_name(row) for _, row in shard.iterrows()]
    server.fail(names[0], times=2, status=503)
    server.fail(names[1], times=1, status=500)
    server.drop(names[2], after_bytes=200)
    server.truncate(names[3], after_bytes=300)
    server.corrupt(names[4])  # every time: a bad image, not a bad transfer
    server.delay(names[5], 3.0)  # always past the timeout
    server.fail(names[6], times=None, status=404)
    out = tmp_path / "shard_0000"
    settings = {**FAST, "transfer": Transfer(timeout_s=0.8, retries=3, backoff_s=0.01)}
    report = fetch_shard(
        shard,
        CutoutSource(server.url(CUTOUT_TEMPLATE)),
        out,
        tmp_path / "failures.csv",
        max_failure_fraction=0.5,
        connections=4,
        **settings,
    )
    failed = [int(a) for a in shard.asset_id.iloc[4:7]]
    assert (report.n_ok, report.n_failed) == (7, 3)
    assert [f.asset_id for f in report.failures] == failed
    reasons = [f.reason for f in report.failures]
    assert "not a valid JPEG" in reasons[0]
    assert "timed out" in reasons[1] and "3 attempt" in reasons[1]
    assert "HTTP 404" in reasons[2]
    assert server.count(names[6]) == 1  # a 404 is final
    assert server.count(names[0]) == 3 and server.count(names[3]) == 2
    ok = [int(a) for a in shard.asset_id if int(a) not in failed]
    assert stored(out) == {a: images[a] for a in ok}
    table = read_failures(tmp_path / "failures.csv")
    assert table.asset_id.tolist() == failed
    assert table.dr7objid.tolist() == shard.dr7objid.iloc[4:7].tolist()
    quarantined = tmp_path / "shard_0000.quarantine" / f"{failed[0]}.jpg"
    assert quarantined.read_bytes() == images[failed[0]][: len(images[failed[0]]) // 3]
    assert not list(out.glob(".*"))  # no temporary file left behind


def test_failure_fraction_threshold(sky, tmp_path):
    rows, _, server = sky
    shard = rows.iloc[:20]
    source = ZipSource(server.url("images_gz2.zip"))
    shard = pd.concat([shard, make_rows(1, first_id=99_999)])  # not in the archive
    report = fetch_shard(
        shard, source, tmp_path / "a", tmp_path / "a.csv", max_failure_fraction=0.05, **FAST
    )
    assert report.n_failed == 1 and "not in the archive" in report.failures[0].reason
    with pytest.raises(DownloadError) as caught:
        fetch_shard(
            shard, source, tmp_path / "b", tmp_path / "b.csv", max_failure_fraction=0.02, **FAST
        )
    message = str(caught.value)
    assert "1 of 21 images" in message and "images.max_failure_fraction" in message
    assert "99999" in message and str(tmp_path / "b.csv") in message
    assert read_failures(tmp_path / "b.csv").asset_id.tolist() == [99_999]
    assert len(stored(tmp_path / "b")) == 20  # the good images are kept for the rerun


def test_size_policy(tmp_path):
    rows = make_rows(3)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "1000.jpg").write_bytes(jpeg(1))
    (folder / "1001.jpg").write_bytes(jpeg(2, size=SIZE + 8))
    (folder / "1002.jpg").write_bytes(jpeg(3, mode="L"))
    source = DirectorySource(str(folder))
    lax = fetch_shard(rows, source, tmp_path / "lax", tmp_path / "lax.csv", **FAST)
    assert lax.n_ok == 3
    strict = fetch_shard(
        rows,
        source,
        tmp_path / "strict",
        tmp_path / "strict.csv",
        size_policy="reject",
        max_failure_fraction=1.0,
        **FAST,
    )
    assert strict.n_ok == 1
    assert [f.reason for f in strict.failures] == [
        f"{SIZE + 8}x{SIZE + 8} RGB, expected {SIZE}x{SIZE} RGB (size_policy reject)",
        f"{SIZE}x{SIZE} L, expected {SIZE}x{SIZE} RGB (size_policy reject)",
    ]


def test_verify_jpeg_rejects_non_jpeg():
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    assert "not a JPEG (PNG" in verify_jpeg(png.getvalue(), 8)
    assert "not a valid JPEG" in verify_jpeg(b"<html>rate limited</html>", 8)
    assert verify_jpeg(b"", 8) == "empty file"
    assert verify_jpeg(jpeg(0), SIZE, "reject") is None


def test_unreachable_source_and_bad_configuration(tmp_path):
    rows = make_rows(2)
    with pytest.raises(DownloadError, match="nonexistent.invalid"):
        fetch_shard(
            rows, ZipSource("http://nonexistent.invalid/images_gz2.zip"), tmp_path / "s",
            tmp_path / "f.csv", transfer=Transfer(retries=1), progress=False,
        )  # fmt: skip
    with pytest.raises(InputDataError, match="images.zip_url is empty"):
        make_source("zip", zip_url="")
    with pytest.raises(InputDataError, match="images.source"):
        make_source("ftp")
    with pytest.raises(InputDataError, match=r"must contain \{ra\} and \{dec\}"):
        make_source("cutout", cutout_url="http://x/cut?ra={ra}&scale={scale}")
    with pytest.raises(InputDataError, match="unknown placeholders"):
        CutoutSource("http://x/{ra}/{dec}/{size}")
    with pytest.raises(InputDataError, match="images.directory"):
        fetch_shard(rows, DirectorySource(str(tmp_path / "nope")), tmp_path / "s",
                    tmp_path / "f.csv", progress=False)  # fmt: skip
    with pytest.raises(InputDataError, match=r"lack column\(s\) \['ra', 'dec'\]"):
        fetch_shard(rows.drop(columns=["ra", "dec"]), CutoutSource("http://x/{ra}/{dec}"),
                    tmp_path / "s", tmp_path / "f.csv", progress=False)  # fmt: skip
    with pytest.raises(InputDataError, match="more than once"):
        fetch_shard(pd.concat([rows, rows]), DirectorySource(str(tmp_path)), tmp_path / "s",
                    tmp_path / "f.csv", progress=False)  # fmt: skip


def test_cutout_scale_from_petrosian_radius():
    source = CutoutSource("http://sky/x?ra={ra}&dec={dec}&scale={scale:.4f}", 0.396)
    row = {"asset_id": 1, "dr7objid": 2, "ra": 10.5, "dec": -3.25}
    assert source.url(row) == "http://sky/x?ra=10.5&dec=-3.25&scale=0.3960"
    assert source.url({**row, "petroR90_r": 12.0}).endswith("scale=0.2400")
    assert source.url({**row, "petroR90_r": float("nan")}).endswith("scale=0.3960")


KILLED_RUN = """
import sys
sys.path.insert(0, {src!r})
import pandas as pd
from galmorph.images.acquire import CutoutSource, Transfer, fetch_shard
rows = pd.read_csv({rows!r})
fetch_shard(rows, CutoutSource({template!r}), {out!r}, {failures!r},
            connections=2, transfer=Transfer(10.0, 2, 0.01), size={size})
"""


def test_sigkill_then_rerun_fetches_only_the_missing(sky, tmp_path):
    rows, images, server = sky
    shard = rows.iloc[:24]
    shard.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "jpg" / "shard_0003"
    server.delay("*", 0.15)
    code = KILLED_RUN.format(
        src=str(SRC),
        rows=str(tmp_path / "rows.csv"),
        template=server.url(CUTOUT_TEMPLATE),
        out=str(out),
        failures=str(tmp_path / "failures.csv"),
        size=SIZE,
    )
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)])
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("*.jpg"))) < 6:
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    present = stored(out)
    assert 6 <= len(present) < len(shard)
    for asset_id, data in present.items():  # nothing partial under a final name
        assert data == images[asset_id]
    assert not (tmp_path / "failures.csv").exists()  # the killed run never finished

    server.clear_faults()
    server.clear_log()
    report = fetch_shard(
        shard,
        CutoutSource(server.url(CUTOUT_TEMPLATE)),
        out,
        tmp_path / "failures.csv",
        **FAST,
    )
    missing = {cutout_name(row) for _, row in shard.iterrows() if row.asset_id not in present}
    assert {r.path.lstrip("/") for r in server.requests} == missing
    assert len(server.requests) == len(missing)
    assert (report.n_skipped_existing, report.n_ok) == (len(present), len(missing))
    assert stored(out) == {a: images[a] for a in shard.asset_id}
    assert not list(out.glob(".*"))


def test_resumable_dir_keeps_progress_across_a_failed_run(sky, tmp_path):
    rows, images, server = sky
    shard = pd.concat([rows.iloc[:10], make_rows(1, first_id=99_999)])
    source = ZipSource(server.url("images_gz2.zip"))
    final = tmp_path / "jpg" / "shard_0000"
    quarantine = tmp_path / "jpg" / "shard_0000.quarantine"
    with pytest.raises(DownloadError), resumable_dir(final) as staging:
        fetch_shard(shard, source, staging, tmp_path / "f.csv", quarantine_dir=quarantine,
                    max_failure_fraction=0.0, **FAST)  # fmt: skip
    assert not final.exists() and len(stored(staging)) == 10
    server.clear_log()
    final.mkdir()  # the scheduler may create the output folder before the job
    with resumable_dir(final) as staging:
        report = fetch_shard(shard.iloc[:10], source, staging, tmp_path / "f.csv", **FAST)
    assert report.n_skipped_existing == 10 and server.requests == []
    assert stored(final) == {a: images[a] for a in shard.asset_id.iloc[:10]}
    assert not staging.exists()
