"""galmorph.remote_zip: central directory and member reads, locally and over HTTP ranges."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest
from httpserver import FileServer
from PIL import Image

from galmorph.errors import DownloadError, InputDataError
from galmorph.remote_zip import ZipIndex, asset_ids

FAST = {"timeout_s": 5.0, "retries": 3, "backoff_s": 0.01}


def jpeg(seed: int, size: int = 64) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def build_zip(path, members: dict[str, bytes], *, force_zip64=False, comment=b"") -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.comment = comment
        for number, (name, data) in enumerate(members.items()):
            # Mix stored and deflated members, as real archives do.
            method = zipfile.ZIP_DEFLATED if number % 2 else zipfile.ZIP_STORED
            info = zipfile.ZipInfo(name, date_time=(2019, 12, 1, 0, 0, 0))
            info.compress_type = method
            with archive.open(info, "w", force_zip64=force_zip64) as handle:
                handle.write(data)


@pytest.fixture
def members():
    images = {f"images/{100 + i}.jpg": jpeg(i) for i in range(12)}
    # Padding makes the archive much larger than what a member read should cost.
    return {"README.txt": b"gz2 images\n", **images, "images/padding.bin": os.urandom(400_000)}


@pytest.fixture
def server(tmp_path, members):
    root = tmp_path / "www"
    root.mkdir()
    build_zip(root / "images_gz2.zip", members, comment=b"x" * 300)
    with FileServer(root) as running:
        yield running


def test_http_listing_and_reads_fetch_only_what_is_needed(server, members):
    archive_size = (server.root / "images_gz2.zip").stat().st_size
    index = ZipIndex.open(server.url("images_gz2.zip"), **FAST)
    assert index.names() == list(members)
    assert asset_ids(index) == list(range(100, 112))
    listing_bytes = server.bytes_sent()
    assert listing_bytes < 80_000 < archive_size  # the tail (<= 64 KiB + 22) and the directory
    for name in ("images/100.jpg", "images/105.jpg", "README.txt"):
        assert index.read(name) == members[name]
    member_requests = server.requests[-3:]
    assert all(r.status == 206 for r in server.requests)
    assert all(r.bytes_sent < len(members["images/100.jpg"]) + 300 for r in member_requests)
    assert server.bytes_sent() < 0.3 * archive_size
    assert index.requests == len(server.requests)


def test_local_path_and_file_url(tmp_path, members):
    path = tmp_path / "a dir" / "images.zip"
    path.parent.mkdir()
    build_zip(path, members)
    for source in (str(path), path, path.as_uri()):
        with ZipIndex.open(source) as index:
            assert asset_ids(index) == list(range(100, 112))
            assert index.read("images/111.jpg") == members["images/111.jpg"]
            assert index.requests == 0


def test_zip64(tmp_path, members):
    path = tmp_path / "zip64.zip"
    build_zip(path, members, force_zip64=True)
    root = tmp_path / "www"
    root.mkdir()
    os.replace(path, root / "zip64.zip")
    with FileServer(root) as server:
        index = ZipIndex.open(server.url("zip64.zip"), **FAST)
        assert asset_ids(index) == list(range(100, 112))
        assert index.read("images/104.jpg") == members["images/104.jpg"]
        assert index.read("images/padding.bin") == members["images/padding.bin"]


def test_zip64_end_of_central_directory(tmp_path, monkeypatch):
    """More members than the classic record counts: only ZIP64 records hold the count."""
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 5)
    path = tmp_path / "many.zip"
    members = {f"images/{i}.jpg": bytes([i]) * 10 for i in range(8)}
    build_zip(path, members)
    with open(path, "rb") as handle:
        assert b"PK\x06\x06" in handle.read()  # written with a ZIP64 end record
    index = ZipIndex.open(path)
    assert asset_ids(index) == list(range(8))
    assert index.read("images/7.jpg") == members["images/7.jpg"]


def test_server_ignoring_range_is_a_clear_error(server):
    server.ignore_range = True
    with pytest.raises(DownloadError, match="ignores Range") as caught:
        ZipIndex.open(server.url("images_gz2.zip"), **FAST)
    message = str(caught.value)
    assert "images.zip_url" in message and "failed after 3 attempt(s)" in message
    # Retried like any bad answer; each connection dropped without reading the body.
    assert server.count("images_gz2.zip") == FAST["retries"]


@pytest.mark.parametrize(
    "fault",
    [
        lambda server: server.ignore_range_once("images_gz2.zip"),
        lambda server: server.shift_range("images_gz2.zip", by=7),
        lambda server: server.short_range("images_gz2.zip", by=40),
    ],
    ids=["200 to a range", "shifted start", "short answer"],
)
def test_one_bad_answer_on_a_directory_read_is_retried(server, members, fault):
    fault(server)
    index = ZipIndex.open(server.url("images_gz2.zip"), **FAST)
    assert sorted(index.names()) == sorted(members)
    assert index.read("images/103.jpg") == members["images/103.jpg"]
    assert server.count("images_gz2.zip") >= 2  # the bad answer, then the good one


@pytest.mark.parametrize("shift", [3, -1])
def test_one_bad_answer_on_a_member_read_is_retried(server, members, shift):
    index = ZipIndex.open(server.url("images_gz2.zip"), **FAST)
    if shift > 0:
        server.shift_range("images_gz2.zip", by=shift)
    else:
        server.short_range("images_gz2.zip", by=5)
    assert index.read("images/104.jpg") == members["images/104.jpg"]


def test_a_directory_cut_short_is_one_clear_error(tmp_path):
    """A local archive whose central directory is cut: a message, never struct.error."""
    path = tmp_path / "cut.zip"
    build_zip(path, {f"images/{i}.jpg": bytes([i]) * 10 for i in range(5)})
    data = path.read_bytes()
    eocd = data.rfind(b"PK\x05\x06")
    # keep the end record but drop most of the directory before it
    path.write_bytes(data[: eocd - 60] + data[eocd:])
    with pytest.raises(InputDataError, match="cut.zip"):
        ZipIndex.open(path)


def test_member_read_retries_transient_faults(server, members):
    index = ZipIndex.open(server.url("images_gz2.zip"), **FAST)
    server.fail("images_gz2.zip", times=1, status=503)
    server.truncate("images_gz2.zip", after_bytes=50, times=1)
    assert index.read("images/103.jpg") == members["images/103.jpg"]
    statuses = [r.status for r in server.requests[-3:]]
    assert statuses == [503, 206, 206]


def test_corrupt_member_fails_crc(tmp_path, members):
    path = tmp_path / "bad.zip"
    build_zip(path, members)
    index = ZipIndex.open(path)
    entry = index.entry("images/100.jpg")  # stored: flip a byte of the data itself
    data = bytearray(path.read_bytes())
    data[entry.header_offset + 30 + entry.name_bytes + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputDataError, match="CRC32"):
        ZipIndex.open(path).read("images/100.jpg")
    with pytest.raises(KeyError, match="images/999.jpg"):
        index.read("images/999.jpg")


def test_not_a_zip(tmp_path):
    path = tmp_path / "fake.zip"
    path.write_bytes(b"<html>Not Found</html>" * 10)
    with pytest.raises(InputDataError, match="not a zip archive"):
        ZipIndex.open(path)
    with pytest.raises(DownloadError, match="does not exist"):
        ZipIndex.open(tmp_path / "absent.zip")


def test_unreachable_server(tmp_path):
    with pytest.raises(DownloadError, match="nonexistent.invalid"):
        ZipIndex.open("http://nonexistent.invalid/images_gz2.zip", retries=1)


def test_directory_larger_than_the_tail_read(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    members = {f"images/{587720000000 + i}.jpg": i.to_bytes(4, "little") for i in range(1500)}
    build_zip(root / "big.zip", members)
    with FileServer(root) as server:
        index = ZipIndex.open(server.url("big.zip"), **FAST)
        assert len(index) == 1500 and asset_ids(index)[-1] == 587720001499
        tail, directory = server.requests
        assert tail.range == "bytes=-65577" and directory.bytes_sent > 65_577
        assert index.read("images/587720000777.jpg") == members["images/587720000777.jpg"]
