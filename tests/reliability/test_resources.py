"""Out of disk, out of memory, two runs in one folder: clean failures, nothing half-written.

* Disk: the HDF5 folder is a 300 KB tmpfs, too small for a shard; the
  conversion fails with one message, leaves no file in it, and once space is
  back the rerun writes the complete shard.
* Memory: the conversion job's address space is capped (``prlimit``) once it
  is writing; it fails with the out-of-memory message and leaves nothing.
* Lock: a second ``snakemake`` started while the first runs is refused with
  Snakemake's lock message, and the first completes intact.

Needs root for the tmpfs mount (CI runs as root); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import tarfile
import time

import h5py
import pytest
from conftest import copy_workflow, explain, run_command, run_snakemake, write_config
from faults import job_pids, output_of, start_snakemake, temporary_files

pytestmark = pytest.mark.slow

SHARDS = [f"results/images/jpg/{split}/shard_0000" for split in ("train", "test")]


def snake(workdir, *args, config="config/tiny.yaml"):
    return run_snakemake(workdir, *args, "--configfile", config)


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """A tiny demo run up to the downloaded JPEGs of both splits."""
    workdir = copy_workflow(tmp_path_factory.mktemp("resources"))
    write_config(workdir / "config/tiny.yaml")
    # Images stored at 2048 pixels: a conversion needs tens of MB per image.
    write_config(workdir / "config/big.yaml", {"images": {"size": 2048}})
    result = snake(workdir, *SHARDS)
    assert result.returncode == 0, explain(result)
    return workdir


@pytest.fixture
def small_disk(fetched):
    """results/images/hdf5 on a 300 KB tmpfs (a shard of the tiny run is ~500 KB)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = fetched / "results/images/hdf5"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_fails_cleanly_and_the_rerun_completes(fetched, small_disk):
    target = "results/images/hdf5/train/shard_0000.h5"
    result = snake(fetched, target)
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule jpg_to_hdf5: OSError: no space left on device" in console, explain(result)
    assert "free disk space and rerun" in console
    # Nothing left on the full disk: no shard, no temporary file.
    assert [str(p.relative_to(small_disk)) for p in small_disk.rglob("*") if p.is_file()] == []

    subprocess.run(["umount", str(small_disk)], check=True)  # space is back
    again = snake(fetched, target)
    assert again.returncode == 0, explain(again)
    with h5py.File(fetched / target) as handle:
        assert handle["images"].shape == (40, 64, 64, 3)
        assert handle["images"][-1].std() > 0  # the last image was written too


def _vm_size_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmSize for {pid}")


def test_out_of_memory_fails_cleanly_and_leaves_nothing(fetched):
    target = "results/images/hdf5/test/shard_0000.h5"
    folder = fetched / "results/images/hdf5/test"
    process = start_snakemake(fetched, target, "--configfile", "config/big.yaml")
    capped = False
    try:
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline and not capped:
            for pid in job_pids("jpg_to_hdf5.py", fetched):
                os.kill(pid, signal.SIGSTOP)
                try:
                    # Cap the address space once it is writing the shard (imports done).
                    while not any(folder.glob(".shard_0000.h5.tmp-*")):
                        os.kill(pid, signal.SIGCONT)
                        time.sleep(0.003)
                        os.kill(pid, signal.SIGSTOP)
                    limit = (_vm_size_kb(pid) + 4096) * 1024  # 4 MB more: not one image
                    resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
                    capped = True
                finally:
                    os.kill(pid, signal.SIGCONT)
                break
            time.sleep(0.01)
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = output_of(process)
    assert capped, output[-4000:]
    assert process.returncode != 0
    assert "Error in rule jpg_to_hdf5: MemoryError: rule jpg_to_hdf5 ran out of memory" in output, (
        output[-4000:]
    )
    log = (fetched / "logs/images/jpg_to_hdf5/test_0000.log").read_text()
    assert "raise its mem_mb resource" in log
    assert not (fetched / target).exists()
    assert temporary_files(folder) == []


def test_a_second_run_in_the_same_folder_is_refused(fetched):
    targets = [f"results/images/archives/{split}_jpg.tar.gz" for split in ("train", "test")]
    first = start_snakemake(fetched, *targets, "--configfile", "config/tiny.yaml")
    paused = []
    try:
        # Hold the first run's packing job, as a long job would, while the second starts.
        deadline = time.monotonic() + 120
        while not paused and time.monotonic() < deadline:
            assert first.poll() is None, output_of(first)
            for pid in job_pids("pack.py", fetched):
                os.kill(pid, signal.SIGSTOP)
                paused.append(pid)
            time.sleep(0.01)
        second = run_command(
            ["snakemake", "--cores", "1", *targets, "--configfile", "config/tiny.yaml"],
            cwd=fetched,
            timeout=120,
        )
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
        first.wait(timeout=300)
    finally:
        for pid in paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    console = second.stdout + second.stderr
    assert second.returncode != 0
    assert "LockException" in console and "Directory cannot be locked" in console, console
    assert first.returncode == 0, output_of(first)[-4000:]
    for target in targets:
        with tarfile.open(fetched / target) as archive:
            assert len(archive.getmembers()) == 41  # 40 JPEGs and the failures list
