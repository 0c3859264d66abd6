"""galmorph.download.fetch against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import socket

import pytest
from httpserver import FileServer

from galmorph.download import fetch
from galmorph.errors import DownloadError

PAYLOAD = os.urandom(300_000)  # several read chunks, so resume and truncation show
FAST = {"backoff_s": 0.01, "timeout_s": 5.0, "progress": False}


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "cat.csv.gz").write_bytes(PAYLOAD)
    with FileServer(root) as running:
        yield running


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_fetch_ok(server, tmp_path):
    dest = fetch(server.url("cat.csv.gz"), tmp_path / "out" / "cat.csv.gz", **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "out" / "cat.csv.gz.part").exists()
    assert server.count("cat.csv.gz") == 1


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_errors_are_retried(server, tmp_path, status):
    server.fail("cat.csv.gz", times=2, status=status)
    dest = fetch(server.url("cat.csv.gz"), tmp_path / "cat.csv.gz", retries=3, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [r.status for r in server.requests_for("cat.csv.gz")] == [status, status, 200]


def test_client_errors_are_not_retried(server, tmp_path):
    server.fail("cat.csv.gz", times=None, status=403)
    with pytest.raises(DownloadError, match=r"HTTP 403") as caught:
        fetch(server.url("cat.csv.gz"), tmp_path / "cat.csv.gz", retries=5, **FAST)
    assert server.url("cat.csv.gz") in str(caught.value)
    assert server.count("cat.csv.gz") == 1
    assert not (tmp_path / "cat.csv.gz").exists()


def test_missing_file_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server.url("nope.csv"), tmp_path / "nope.csv", retries=5, **FAST)
    assert server.count("nope.csv") == 1


@pytest.mark.parametrize("fault", ["truncate", "drop"])
def test_short_body_is_resumed_to_a_complete_file(server, tmp_path, fault):
    getattr(server, fault)("cat.csv.gz", after_bytes=100_000)
    dest = fetch(server.url("cat.csv.gz"), tmp_path / "cat.csv.gz", retries=3, **FAST)
    assert dest.read_bytes() == PAYLOAD
    first, second = server.requests_for("cat.csv.gz")
    assert first.range is None and first.bytes_sent == 100_000
    # The second attempt continues from what reached the disk (a reset may discard
    # bytes still in the socket buffer; with nothing on disk it starts over).
    if fault == "truncate" or second.range is not None:
        assert second.status == 206
        assert 0 < int(second.range.removeprefix("bytes=").removesuffix("-")) <= 100_000
        assert second.bytes_sent < len(PAYLOAD)
    else:
        assert second.status == 200 and second.bytes_sent == len(PAYLOAD)


def killed_run_state(server, tmp_path, name="cat.csv.gz"):
    """What a run killed mid-download leaves beside its .part: the first answer's validator."""
    state = {"etag": server.etag(name), "last_modified": None, "total": len(PAYLOAD)}
    (tmp_path / f"{name}.part.json").write_text(json.dumps(state))


def test_resume_from_existing_part_file(server, tmp_path):
    dest = tmp_path / "cat.csv.gz"
    (tmp_path / "cat.csv.gz.part").write_bytes(PAYLOAD[:123_456])  # left by a killed run
    killed_run_state(server, tmp_path)
    fetch(server.url("cat.csv.gz"), dest, **FAST)
    assert dest.read_bytes() == PAYLOAD
    (request,) = server.requests_for("cat.csv.gz")
    assert request.range == "bytes=123456-" and request.status == 206
    assert request.bytes_sent == len(PAYLOAD) - 123_456


def test_resume_restarts_when_server_ignores_range(server, tmp_path):
    server.ignore_range = True
    dest = tmp_path / "cat.csv.gz"
    (tmp_path / "cat.csv.gz.part").write_bytes(b"stale bytes that must not be kept")
    fetch(server.url("cat.csv.gz"), dest, **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_without_body(server, tmp_path):
    dest = tmp_path / "cat.csv.gz"
    (tmp_path / "cat.csv.gz.part").write_bytes(PAYLOAD)  # killed between last byte and rename
    killed_run_state(server, tmp_path)
    fetch(server.url("cat.csv.gz"), dest, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [r.status for r in server.requests_for("cat.csv.gz")] == [416]


def test_checksum_ok_and_mismatch(server, tmp_path):
    good = hashlib.sha256(PAYLOAD).hexdigest()
    dest = fetch(server.url("cat.csv.gz"), tmp_path / "a.gz", sha256=good.upper(), **FAST)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="checksum mismatch") as caught:
        fetch(
            server.url("cat.csv.gz"),
            tmp_path / "b.gz",
            sha256="0" * 64,
            config_key="catalogue.hart16_url",
            **FAST,
        )
    assert good in str(caught.value) and "catalogue.hart16_sha256" in str(caught.value)
    assert not (tmp_path / "b.gz").exists() and not (tmp_path / "b.gz.part").exists()


def test_connection_refused_names_url_and_local_copy_hint(tmp_path):
    url = f"http://127.0.0.1:{unused_port()}/gz2_hart16.csv.gz"
    with pytest.raises(DownloadError) as caught:
        fetch(url, tmp_path / "x.gz", retries=2, config_key="catalogue.hart16_url", **FAST)
    message = str(caught.value)
    assert url in message and "connection refused" in message and "2 attempt" in message
    assert "catalogue.hart16_url" in message
    assert "file:///path/to/gz2_hart16.csv.gz" in message
    assert not list(tmp_path.iterdir()) or not (tmp_path / "x.gz").exists()


def test_unresolvable_host(tmp_path):
    url = "http://nonexistent.invalid/gz2_filename_mapping.csv"
    with pytest.raises(DownloadError) as caught:
        fetch(url, tmp_path / "m.csv", retries=1, **FAST)
    message = str(caught.value)
    assert url in message and "could not be resolved" in message
    assert "file:///path/to/gz2_filename_mapping.csv" in message


def test_timeout_is_retried_then_reported(server, tmp_path):
    server.delay("cat.csv.gz", 2.0, times=1)
    dest = fetch(
        server.url("cat.csv.gz"),
        tmp_path / "c.gz",
        retries=2,
        backoff_s=0.01,
        timeout_s=0.3,
        progress=False,
    )
    assert dest.read_bytes() == PAYLOAD
    assert server.count("cat.csv.gz") == 2
    server.delay("cat.csv.gz", 2.0, times=None)
    with pytest.raises(DownloadError, match="timed out"):
        fetch(
            server.url("cat.csv.gz"),
            tmp_path / "d.gz",
            retries=1,
            timeout_s=0.3,
            progress=False,
        )


def test_file_url_and_plain_path(tmp_path):
    source = tmp_path / "dir with space" / "map.csv"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    by_url = fetch(source.as_uri(), tmp_path / "a.csv", progress=False)
    by_path = fetch(str(source), tmp_path / "b.csv", progress=False)
    assert by_url.read_bytes() == PAYLOAD == by_path.read_bytes()
    with pytest.raises(DownloadError, match="no such file"):
        fetch((tmp_path / "missing.csv").as_uri(), tmp_path / "c.csv", progress=False)
    with pytest.raises(DownloadError, match="unsupported URL scheme"):
        fetch("ftp://example.org/x.csv", tmp_path / "d.csv", progress=False)
