"""Shared fixtures: the tiny demo configuration, a copy of the workflow, a finished run.

End-to-end tests drive the ``snakemake`` command (its Python API is internal)
in a copy of the workflow under a temporary folder, so they never touch the
repository's own ``results/``.
"""

from __future__ import annotations

import copy
import importlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
#: The real SDSS sample (Galaxy Zoo 1 labels) beside the repository, read by the tests whose
#: point is real galaxies; a user's clone has none.
GZ1 = SHARED_DATA / "sdss_gz1_sample"


def require_shared(path: Path) -> Path:
    """``path`` under ../shared/data, or skip the test with a reason naming it.

    Under CI (``CI=true``) the data must be there: a missing folder fails the test
    instead, so that no skip stands in for a pass.
    """
    if not path.exists():
        message = f"needs the real data in {path} (beside the repository, not in it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI runs on a clone beside ../shared")
        pytest.skip(message)
    return path


def require_module(name: str):
    """Import ``name``, or skip the test (or module) with a reason naming it.

    Under CI (``CI=true``) every dependency is installed: a missing one fails
    instead, so that no CNN test can skip silently there.
    """
    try:
        return importlib.import_module(name)
    except ImportError as error:
        message = f"needs {name} ({error}); pip install -e '.[test]' installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


#: What a run needs from the repository.
WORKFLOW_PATHS = ("Snakefile", "workflow", "scripts", "src", "config", "profiles")
#: Upper bound of one end-to-end snakemake call (the tiny run takes far less).
SNAKEMAKE_TIMEOUT_S = 900

#: Overrides of config/config.yaml: the smallest run that still exercises every
#: stage (all clustering methods, every CNN variant) in well under a minute of work.
TINY_CONFIG: dict = {
    "demo": {"n_galaxies": 120, "n_unlabelled": 6, "n_malformed": 2},
    "sample": {"n_train": 40, "n_test": 40},
    "images": {"n_shards": 1, "connections": 2, "size": 64},
    "reduction": {"crop": 48, "n_components": 6, "batch_size": 20, "n_reconstruction_examples": 4},
    "clustering": {
        "kmeans": {"n_clusters": 4, "batch_size": 20, "max_iter": 50, "n_init": 1},
        "hierarchical": {"n_clusters": 4, "max_fit_samples": 30},
        "hdbscan": {"min_cluster_size": 3},
        "som": {"rows": 2, "cols": 2, "iterations": 200},
        "gmm": {"n_components": 4, "max_iter": 100},
    },
    "cnn": {
        "variants": ["unbalanced", "balanced", "measures", "ensemble"],
        "crop": 48,
        "input_size": 40,
        "measure_crop": 48,
        "epochs": 1,
        "batch_size": 16,
        "early_stopping_patience": 1,
        "reduce_lr_patience": 1,
        "balanced": {"per_class": 4},
        "measures_network": {"members": 2, "max_epochs": 5},
        # a shift on one trained variant, so that the decision rule's tests see one at work
        "prior_shift": {"unbalanced": 0.5, "balanced": 0.0, "ensemble": 0.0},
    },
}
#: The finished run also trains the vote-fraction network (off in the demo default; a
#: folder dataset, which has no votes, refuses it).
FINISHED_RUN_OVERRIDES: dict = {"cnn": {"vote_fractions": {"enabled": True, "column": "debiased"}}}


def deep_update(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, nested mappings key by key."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def write_config(path: Path, overrides: dict | None = None) -> Path:
    """Write the tiny configuration (plus ``overrides``) as YAML to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(deep_update(TINY_CONFIG, overrides or {}), sort_keys=False))
    return path


def copy_workflow(dest: Path) -> Path:
    """Copy the files a run needs into ``dest`` (no outputs, caches or metadata)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake")
    for name in WORKFLOW_PATHS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, dest / name)
    return dest


def run_snakemake(
    workdir: Path, *args: str, timeout: float = SNAKEMAKE_TIMEOUT_S
) -> subprocess.CompletedProcess:
    """Run ``snakemake --cores 2 *args`` in ``workdir``; the caller checks the result.

    On timeout the whole process group (snakemake and its jobs) is killed, so
    no job outlives the test.
    """
    return run_command(["snakemake", "--cores", "2", *args], cwd=workdir, timeout=timeout)


def run_command(command, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run`` in a session of its own, killed as a whole on timeout."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(
            f"{' '.join(map(str, command))} ran over {timeout} s and was killed\n"
            f"--- stderr ---\n{stderr[-6000:]}"
        )
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def explain(result: subprocess.CompletedProcess, tail: int = 8000) -> str:
    """The end of a failed run's output, for an assertion message."""
    return (
        f"exit {result.returncode}\n--- stdout ---\n{result.stdout[-tail:]}"
        f"\n--- stderr ---\n{result.stderr[-tail:]}"
    )


#: How the test cluster is driven: it has no slurmdbd (so no sacct) and is idle,
#: so squeue is polled every second; jobs may ask for at most the node's CPUs.
SLURM_TEST_OPTIONS = (
    "--workflow-profile",
    "profiles/slurm",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "1",
    "--slurm-keep-successful-logs",
    "--max-threads",
    str(os.cpu_count() or 1),
)


def slurm_reachable() -> bool:
    """True when sbatch exists and the controller answers with a usable node."""
    if not (shutil.which("sbatch") and shutil.which("sinfo")):
        return False
    try:
        states = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return False
    usable = {"idle", "mixed", "allocated", "completing"}
    return states.returncode == 0 and bool(usable & set(states.stdout.split()))


def run_on_cluster(
    workdir: Path, *args: str, timeout: float = SNAKEMAKE_TIMEOUT_S
) -> subprocess.CompletedProcess:
    """Run snakemake with the SLURM profile, bounded by ``timeout -k``.

    ``timeout`` sends SIGTERM first, on which snakemake cancels its SLURM jobs.
    """
    command = ["timeout", "-k", "30", str(int(timeout)), "snakemake", *SLURM_TEST_OPTIONS, *args]
    return run_command(command, cwd=workdir, timeout=timeout + 60)


@dataclass(frozen=True)
class FinishedRun:
    """A copy of the workflow where the tiny configuration ran to completion."""

    workdir: Path
    configfile: str  # relative to workdir, as passed to --configfile
    executor: str  # "slurm" or "local"
    result: subprocess.CompletedProcess  # the run itself

    def snakemake(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """Run snakemake locally in the finished run's folder with its configuration."""
        return run_snakemake(self.workdir, "--configfile", self.configfile, *args, **kwargs)


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    """The tiny configuration written to a YAML file."""
    return write_config(tmp_path / "tiny.yaml")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> FinishedRun:
    """The tiny workflow run once to completion, shared by the SLURM, rerun and report tests.

    It runs on the SLURM cluster when one is reachable (always in CI), locally
    otherwise, so the cluster test costs no second full run. Tests must leave
    it as they found it (dry runs only, edits undone); one that needs to break
    something works on a copy (:func:`copy_finished_run`).
    """
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny_run"))
    write_config(workdir / "config" / "tiny.yaml", FINISHED_RUN_OVERRIDES)
    configfile = "config/tiny.yaml"
    if slurm_reachable():
        executor, result = "slurm", run_on_cluster(workdir, "--configfile", configfile)
    else:
        executor, result = "local", run_snakemake(workdir, "--configfile", configfile)
    assert result.returncode == 0, f"tiny run ({executor}) failed: " + explain(result)
    return FinishedRun(workdir, configfile, executor, result)


def copy_finished_run(run: FinishedRun, dest: Path) -> FinishedRun:
    """A copy of a finished run (outputs, logs and metadata, with their times)."""
    shutil.copytree(run.workdir, dest, symlinks=True)
    return FinishedRun(dest, run.configfile, run.executor, run.result)


def spy_on_h5_opens(monkeypatch) -> list[Path]:
    """Record every file ``h5py.File`` opens from now on (resolved paths), for tests
    that show a step never reads a test shard; returns the list the spy fills."""
    import h5py

    opened: list[Path] = []
    real_file = h5py.File

    def spy(name, *args, **kwargs):
        if isinstance(name, str | os.PathLike):
            opened.append(Path(name).resolve())
        return real_file(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", spy)
    return opened
