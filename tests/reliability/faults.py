"""Fault injection for end-to-end runs: find a rule's job process, catch it mid-work, kill it.

A job is caught at the intended moment (a temporary file growing, a progress
bar started, a checkpoint written) by running it in short slices: it is
stopped (SIGSTOP) as soon as its process appears, then continued for a few
milliseconds at a time until the condition holds, and killed (SIGKILL) then.
So even a job that lasts a fraction of a second is interrupted mid-write,
not before or after.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: How long a stopped job runs between two checks of its condition.
SLICE_S = 0.004


@dataclass
class Fault:
    """SIGKILL to the job of ``script`` once ``condition(workdir)`` holds.

    ``scope`` is ``"job"`` (only the job's process: Snakemake sees a failed job
    and cleans up) or ``"group"`` (Snakemake and all its jobs at once: a node
    failure, leaving incomplete-marked outputs and a stale lock).
    """

    name: str
    script: str  # file name in scripts/, e.g. "jpg_to_hdf5.py"
    condition: Callable[[Path], bool]
    scope: str = "job"
    #: Filled in when the fault fired: what existed right after the kill.
    observed: dict = field(default_factory=dict)
    #: Called right after the kill, before anything else runs.
    inspect: Callable[[Path], dict] | None = None
    #: Only a job with an open file whose path contains this is killed (several jobs
    #: of one rule run at once: the train split's, the test split's).
    holds: str | None = None

    def owns(self, pid: int) -> bool:
        return self.holds is None or any(self.holds in path for path in open_files(pid))


def open_files(pid: int) -> list[str]:
    """Paths of the files a process has open."""
    paths = []
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                paths.append(os.readlink(fd.path))
    except OSError:
        pass
    return paths


def job_pids(script: str, workdir: Path) -> list[int]:
    """Python processes running Snakemake's copy of ``scripts/<script>`` in ``workdir``.

    The working folder tells one run's jobs from any other run's on the machine.
    """
    suffix = f".{script}"
    workdir = os.path.realpath(workdir)
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if not argv or not os.path.basename(argv[0]).startswith(b"python"):
            continue
        if not any(arg.endswith(suffix.encode()) and b"/tmp" in arg for arg in argv[1:]):
            continue
        try:
            if os.path.realpath(f"/proc/{entry.name}/cwd") == workdir:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _signal(pid: int, number: int) -> bool:
    try:
        os.kill(pid, number)
        return True
    except ProcessLookupError:
        return False


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    """``snakemake --cores 2 *args`` in its own session (so a group kill takes all its jobs)."""
    path = workdir / f"snakemake-{time.monotonic_ns()}.out"
    with open(path, "w") as log:
        process = subprocess.Popen(
            ["snakemake", "--cores", "2", *args],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    process.output_path = path
    return process


def output_of(process: subprocess.Popen) -> str:
    """Everything a process from :func:`start_snakemake` wrote so far."""
    return process.output_path.read_text(errors="replace")


def run_until_fault(
    process: subprocess.Popen, workdir: Path, pending: list[Fault], timeout: float
) -> Fault | None:
    """Watch a running Snakemake; fire the first pending fault whose job reaches its condition.

    Returns the fault that fired (removed from ``pending``), or None when
    Snakemake ended without any of them. Always returns with Snakemake ended.
    """
    deadline = time.monotonic() + timeout
    stopped: dict[int, Fault] = {}
    fired = None
    try:
        while process.poll() is None and time.monotonic() < deadline:
            for fault in pending:
                for pid in job_pids(fault.script, workdir):
                    if pid not in stopped and _signal(pid, signal.SIGSTOP):
                        stopped[pid] = fault
            for pid, fault in list(stopped.items()):
                if fault.condition(workdir) and fault.owns(pid):
                    fired = fault
                    if fault.scope == "group":
                        os.killpg(process.pid, signal.SIGKILL)
                    else:
                        _signal(pid, signal.SIGKILL)
                    _wait_gone(pid)
                    del stopped[pid]
                    if fault.inspect:
                        fault.observed = fault.inspect(workdir)
                    pending.remove(fault)
                    break
            if fired:
                break
            for pid in list(stopped):
                if not _signal(pid, signal.SIGCONT):
                    del stopped[pid]  # ended between two checks
            time.sleep(SLICE_S)
            for pid in stopped:
                _signal(pid, signal.SIGSTOP)
    finally:
        for pid in stopped:
            _signal(pid, signal.SIGCONT)
    try:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as error:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        tail = output_of(process)[-4000:]
        raise AssertionError(f"snakemake ran over {timeout} s:\n{tail}") from error
    return fired


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().split(") ")[-1].startswith("Z"):
                    return  # a zombie: dead, its parent has not reaped it yet
        except OSError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} survived SIGKILL")


def visible_files(folder: Path) -> dict[str, Path]:
    """Files under ``folder`` by relative path, leaving out hidden (temporary) names."""
    return {
        str(path.relative_to(folder)): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.parts)
    }


def temporary_files(folder: Path) -> list[str]:
    """Hidden temporary files (``.name.tmp-*``) under ``folder``."""
    return sorted(
        str(path.relative_to(folder)) for path in folder.rglob(".*.tmp*") if path.is_file()
    )
