"""Catalogue downloads against a loopback server that answers wrongly: every HTTP answer
is checked for being exactly what was asked, a resume is conditional, and the content is
validated before the file takes its final name. Each case ends with the byte-identical
file or a clear error, never a wrong file under a final name."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
from httpserver import FileServer

from galmorph.catalogue.sample import CATALOGUE_COLUMNS, MAPPING_COLUMNS
from galmorph.download import fetch, table_check
from galmorph.errors import DownloadError

FAST = {"backoff_s": 0.01, "timeout_s": 5.0, "progress": False, "retries": 4}
NAME = "gz2_hart16.csv.gz"


def catalogue_bytes(seed: int = 0, rows: int = 6000) -> bytes:
    """A gzipped catalogue with the real header's required columns (and others)."""
    rng = np.random.default_rng(seed)
    lines = ["dr7objid,ra,dec,gz2_class,total_votes"]
    for i in range(rows):
        ra, dec = rng.uniform(0, 360), rng.uniform(-10, 70)
        votes = rng.integers(20, 80)
        lines.append(f"{587722981736000000 + i},{ra:.6f},{dec:.6f},Sc{votes % 3 + 1}t,{votes}")
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    payload = catalogue_bytes()
    (root / NAME).write_bytes(payload)
    (root / "mapping.csv").write_bytes(
        b"objid,sample,asset_id\n" + b"".join(b"%d,original,%d\n" % (i, i) for i in range(9000))
    )
    with FileServer(root) as server:
        yield server, payload, root


def get(server, tmp_path, name=NAME, columns=CATALOGUE_COLUMNS, **options):
    return fetch(server.url(name), tmp_path / "out" / name, check=table_check(columns),
                 **{**FAST, **options})  # fmt: skip


def nothing_wrong_left(tmp_path, name=NAME):
    out = tmp_path / "out"
    return not out.exists() or not any(p.name != name for p in out.iterdir())


def test_a_206_to_a_plain_get_is_not_the_file(served, tmp_path):
    server, payload, _ = served
    server.partial_to_plain_get(NAME, len(payload) // 3, 2 * len(payload) // 3)
    assert get(server, tmp_path).read_bytes() == payload
    assert [r.status for r in server.requests_for(NAME)] == [206, 200]


@pytest.mark.parametrize("fault", ["shift", "short", "ignore"])
def test_a_resume_answered_with_other_bytes_restarts(served, tmp_path, fault):
    server, payload, _ = served
    server.truncate(NAME, after_bytes=len(payload) // 2)
    {"shift": lambda: server.shift_range(NAME, by=1000),
     "short": lambda: server.short_range(NAME, by=5000),
     "ignore": lambda: server.ignore_range_once(NAME)}[fault]()  # fmt: skip
    assert get(server, tmp_path).read_bytes() == payload
    assert nothing_wrong_left(tmp_path)


def test_a_resume_onto_a_file_that_changed_fetches_the_new_file_whole(served, tmp_path):
    server, old, root = served
    out = tmp_path / "out"
    out.mkdir()
    # a run killed mid-download of the old file left its first half and its validator
    (out / f"{NAME}.part").write_bytes(old[: len(old) // 2])
    state = {"etag": server.etag(NAME), "last_modified": None, "total": len(old)}
    (out / f"{NAME}.part.json").write_text(json.dumps(state))
    new = catalogue_bytes(seed=1)
    (root / NAME).write_bytes(new)
    assert get(server, tmp_path).read_bytes() == new
    (request,) = server.requests_for(NAME)
    assert request.range is not None and request.status == 200  # If-Range did not match
    assert nothing_wrong_left(tmp_path)


def test_an_html_page_is_refused_then_the_file_fetched(served, tmp_path):
    server, payload, _ = served
    server.html_page(NAME)
    assert get(server, tmp_path).read_bytes() == payload


def test_an_html_page_every_time_is_a_clear_error_and_no_file(served, tmp_path):
    server, _, _ = served
    server.html_page(NAME, times=None)
    with pytest.raises(DownloadError, match="not a gzip file; it starts with '<!DOCTYPE html>"):
        get(server, tmp_path)
    assert not (tmp_path / "out" / NAME).exists() and nothing_wrong_left(tmp_path)
    server.clear_faults()
    server.html_page("mapping.csv", times=None)
    with pytest.raises(DownloadError, match=r"mapping.csv: the downloaded body is an HTML"):
        get(server, tmp_path, name="mapping.csv", columns=MAPPING_COLUMNS)


def test_an_html_page_cut_short_and_resumed_to_the_right_size_is_refused(served, tmp_path):
    """A cache labels its error page with the file's ETag and pads it to the file's size:
    the resumed file has exactly the right length and starts with <!DOCTYPE html>."""
    server, payload, _ = served
    server.html_page(NAME, pad=True, same_etag=True)
    server.truncate(NAME, after_bytes=500)
    assert get(server, tmp_path).read_bytes() == payload
    statuses = [r.status for r in server.requests_for(NAME)]
    assert statuses[:2] == [200, 206] and len(statuses) == 3  # refused, then fetched whole


def test_a_content_length_smaller_than_the_file_is_caught(served, tmp_path):
    server, payload, _ = served
    server.corrupt(NAME, times=1)  # announces and sends only the first third
    assert get(server, tmp_path).read_bytes() == payload


def test_a_truncated_body_without_content_length_is_caught(served, tmp_path):
    server, payload, _ = served
    server.unannounced_cut(NAME, after_bytes=len(payload) // 2)
    assert get(server, tmp_path).read_bytes() == payload
    server.unannounced_cut("mapping.csv", after_bytes=20_001)  # mid-row of a plain CSV
    mapping = get(server, tmp_path, name="mapping.csv", columns=MAPPING_COLUMNS)
    assert mapping.read_bytes().endswith(b"8999,original,8999\n")


def test_a_header_without_the_required_columns_names_them(served, tmp_path):
    server, _, root = served
    (root / "other.csv").write_bytes(b"id,label\n1,a\n")
    with pytest.raises(DownloadError, match="without the column.s. objid, asset_id"):
        get(server, tmp_path, name="other.csv", columns=MAPPING_COLUMNS, retries=1)


def test_a_local_copy_is_checked_too(tmp_path):
    bad = tmp_path / "gz2_hart16.csv.gz"
    bad.write_bytes(catalogue_bytes()[:-20])  # cut: the gzip trailer is gone
    with pytest.raises(DownloadError, match="not a complete gzip file"):
        fetch(str(bad), tmp_path / "copy" / NAME, check=table_check(CATALOGUE_COLUMNS),
              progress=False)  # fmt: skip
    assert not os.path.exists(tmp_path / "copy" / NAME)
