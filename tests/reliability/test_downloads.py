"""A flaky, slow or dead server on 127.0.0.1 never yields a wrong image.

The demo sky's files (catalogue, mapping, image zip in the real release's
formats) are served over HTTP by a real server with injected faults, and the
workflow runs as for the real Galaxy Zoo 2 release (``dataset: gz2``, images
read from the zip with range requests). With transient faults (errors, resets,
truncated bodies, stalls, members cut short) the run completes and every
stored JPEG is byte-identical to its zip member; with a server that dies
midway, the run stops with the list of what is missing.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
import zipfile

import pytest
from conftest import copy_workflow, explain, run_snakemake, write_config
from httpserver import FileServer

pytestmark = pytest.mark.slow

SHARDS = [f"results/images/jpg/{split}/shard_0000" for split in ("train", "test")]
REMOTE = "resources/demo/remote"


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """The demo sky's remote files, generated once by the workflow's demo_sky rule."""
    workdir = copy_workflow(tmp_path_factory.mktemp("sky"))
    write_config(workdir / "config/tiny.yaml")
    result = run_snakemake(workdir, f"{REMOTE}/images_gz2.zip", "--configfile", "config/tiny.yaml")
    assert result.returncode == 0, explain(result)
    www = tmp_path_factory.mktemp("www")
    for path in (workdir / REMOTE).iterdir():
        shutil.copy(path, www / path.name)
    return www


def gz2_workflow(folder, server, image_retries=10):
    workdir = copy_workflow(folder)
    fast = {"retries": 4, "backoff_s": 0.05, "timeout_s": 1.0}
    write_config(
        workdir / "config/tiny.yaml",
        {
            "dataset": "gz2",
            "catalogue": {
                "hart16_url": server.url("/gz2_hart16.csv.gz"),
                "mapping_url": server.url("/gz2_filename_mapping.csv"),
                **fast,
            },
            "images": {
                "source": "zip",
                "zip_url": server.url("/images_gz2.zip"),
                **fast,
                "retries": image_retries,
            },
        },
    )
    return workdir


def arm_when(condition, action, stop: threading.Event):
    """Run ``action`` once ``condition()`` holds (faults aimed at one stage of the run)."""

    def watch():
        while not stop.is_set():
            if condition():
                action()
                return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_transient_faults_never_give_a_wrong_image(sky, tmp_path):
    with FileServer(sky) as server:
        # More attempts than faults injected on the zip: every one is retried away.
        workdir = gz2_workflow(tmp_path / "wf", server, image_retries=10)
        server.fail("/gz2_hart16.csv.gz", times=2, status=503)
        server.truncate("/gz2_filename_mapping.csv", after_bytes=1000, times=1)
        server.drop("/images_gz2.zip", after_bytes=10, times=2)  # the directory read too
        stop = threading.Event()

        def image_faults():  # once the index is read: faults on the member reads
            server.corrupt("/images_gz2.zip", times=2)  # members cut short
            server.truncate("/images_gz2.zip", after_bytes=500, times=2)
            server.delay("/images_gz2.zip", 3.0, times=1)  # past the 1 s timeout
            server.fail("/images_gz2.zip", times=3, status=500)

        arm_when((workdir / "resources/gz2/image_index.txt").exists, image_faults, stop)
        try:
            result = run_snakemake(workdir, *SHARDS, "--configfile", "config/tiny.yaml")
        finally:
            stop.set()
        assert result.returncode == 0, explain(result)
        assert server.count("/gz2_hart16.csv.gz") >= 3
        assert server.count("/gz2_filename_mapping.csv") >= 2

    stored = 0
    with zipfile.ZipFile(sky / "images_gz2.zip") as archive:
        members = {name.rsplit("/", 1)[-1]: name for name in archive.namelist()}
        for shard in SHARDS:
            for jpg in (workdir / shard).glob("*.jpg"):
                assert jpg.read_bytes() == archive.read(members[jpg.name]), jpg
                stored += 1
            failures = (workdir / f"{shard}.failures.csv").read_text().splitlines()
            assert failures[1:] == [], failures  # every fault was retried away
    assert stored == 80
    assert (workdir / "resources/gz2/gz2_hart16.csv.gz").read_bytes() == (
        sky / "gz2_hart16.csv.gz"
    ).read_bytes()
    assert (workdir / "resources/gz2/gz2_filename_mapping.csv").read_bytes() == (
        sky / "gz2_filename_mapping.csv"
    ).read_bytes()


def test_a_server_dying_midway_stops_with_the_list_of_what_is_missing(sky, tmp_path):
    with FileServer(sky) as server:
        # Each image is tried 3 times (backoff doubling from 0.05 s) before it counts as missing.
        workdir = gz2_workflow(tmp_path / "wf", server, image_retries=3)
        server.delay("/images_gz2.zip", 0.05)  # a slow server: the fault lands midway
        stop = threading.Event()
        died = threading.Event()

        def die():  # after a few images of the first shard: every request fails
            server.fail("*", times=None, status=503)
            died.set()

        staging = workdir / "results/images/jpg/train/.shard_0000.partial"
        arm_when(lambda: len(list(staging.glob("*.jpg"))) >= 3, die, stop)
        try:
            result = run_snakemake(
                workdir, SHARDS[0], "--configfile", "config/tiny.yaml", timeout=300
            )
        finally:
            stop.set()
    assert died.is_set()
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule fetch_images: DownloadError:" in console, explain(result)
    assert "images.max_failure_fraction" in console
    log = (workdir / "logs/images/fetch_images/train_0000.log").read_text()
    missing = re.findall(r"missing asset_id (\d+) \(dr7objid \d+\): (.*HTTP 503.*)", log)
    kept = {int(p.stem) for p in staging.glob("*.jpg")}
    sample = (workdir / "results/sample/train.csv").read_text().splitlines()[1:]
    wanted = {int(line.split(",")[1]) for line in sample}
    # Every sampled image is either kept (verified) for the rerun, or listed as missing.
    assert {int(asset) for asset, _ in missing} | kept == wanted
    assert not {int(asset) for asset, _ in missing} & kept
    assert not (workdir / SHARDS[0]).exists()
    with zipfile.ZipFile(sky / "images_gz2.zip") as archive:
        members = {name.rsplit("/", 1)[-1]: name for name in archive.namelist()}
        for jpg in staging.glob("*.jpg"):
            assert jpg.read_bytes() == archive.read(members[jpg.name])
