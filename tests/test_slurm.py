"""The tiny demo workflow on a real SLURM cluster, through profiles/slurm.

`.ci/run` starts a single-node cluster (tests/slurm/start_cluster.sh); the
shared ``finished_run`` fixture then runs the tiny workflow on it. Without a
reachable cluster these tests are skipped on a workstation but fail in CI
(CI=true), where the cluster is part of the set-up.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import copy_finished_run, explain, run_on_cluster, slurm_reachable

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

_SUBMITTED = re.compile(r"Job ([\w-]+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")
_LOCAL_JOB = re.compile(r"^localrule (\w+):$", re.MULTILINE)
#: Rules that must run on the submitting machine (downloads need its internet).
LOCAL_RULES = {"download_catalogue", "image_index", "fetch_images"}


@pytest.fixture(scope="module")
def cluster_run(finished_run):
    if finished_run.executor != "slurm" or not slurm_reachable():
        message = "no SLURM cluster reachable (start one with tests/slurm/start_cluster.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must start it in .ci/run")
        pytest.skip(message)
    return finished_run


def submitted_jobs(result: subprocess.CompletedProcess) -> dict[str, Path]:
    """SLURM job id -> the executor's log of that job, as the run reported them."""
    return {slurm_id: Path(log) for _, slurm_id, log in _SUBMITTED.findall(result.stderr)}


def slurm_states(job_ids) -> dict[str, str]:
    """State of each job as the controller remembers it (MinJobAge keeps finished jobs)."""
    listing = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%i %T", "--jobs", ",".join(job_ids)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listing.returncode == 0, listing.stderr
    return dict(line.split() for line in listing.stdout.splitlines() if line.strip())


def test_tiny_workflow_succeeds_on_the_cluster(cluster_run):
    result = cluster_run.result
    assert re.search(r"\d+ of \d+ steps \(100%\) done", result.stderr), explain(result)
    # Every output of the default target exists and is up to date.
    dry = cluster_run.snakemake("--dry-run")
    assert dry.returncode == 0, explain(dry)
    assert "Nothing to be done" in dry.stdout + dry.stderr, explain(dry)


def test_jobs_really_went_through_slurm(cluster_run):
    jobs = submitted_jobs(cluster_run.result)
    assert jobs, "no job was submitted to SLURM:\n" + explain(cluster_run.result)
    # The controller ran each of them to completion.
    assert slurm_states(jobs) == dict.fromkeys(jobs, "COMPLETED")
    logs = cluster_run.workdir / ".snakemake" / "slurm_logs"
    for slurm_id, log in jobs.items():
        # Written on the node by the job itself: the rule ran inside SLURM.
        assert log.is_file() and log.is_relative_to(logs), f"job {slurm_id}: no log {log}"
        assert "Finished jobid" in log.read_text() or "Finished job" in log.read_text(), log
    # Logs lie under rule_<rule>/ for single jobs, group_<group>.../ for grouped small jobs.
    submitted = {log.relative_to(logs).parts[0].removeprefix("rule_") for log in jobs.values()}
    assert {"sample", "jpg_to_hdf5", "fit_reduction", "cluster", "train_cnn"} <= submitted
    assert any(name.startswith("group_summaries") for name in submitted), submitted
    # Downloads are local rules: on the submitting machine, never in a job.
    assert LOCAL_RULES <= set(_LOCAL_JOB.findall(cluster_run.result.stderr))
    assert not submitted & LOCAL_RULES


def test_a_failing_job_fails_the_run(cluster_run, tmp_path):
    """A job that fails inside SLURM makes snakemake fail, naming that job."""
    run = copy_finished_run(cluster_run, tmp_path / "run")
    # A corrupt catalogue: the sample job, which reads it on the node, must fail.
    catalogue = run.workdir / "resources" / "demo" / "gz2_hart16.csv.gz"
    catalogue.write_bytes(b"this is not a gzip file\n")
    # mtime only: the copy lives in another folder, and the demo's file:// URLs (params
    # of the download rules) name the folder, which must not rerun the downloads here.
    result = run_on_cluster(
        run.workdir,
        "results/sample/train.csv",
        "--configfile",
        run.configfile,
        "--retries",
        "0",
        "--rerun-triggers",
        "mtime",
    )
    assert result.returncode != 0, explain(result)
    jobs = submitted_jobs(result)
    assert len(jobs) == 1, explain(result)
    (slurm_id,) = jobs
    assert f"SLURM-job '{slurm_id}' failed" in result.stderr, explain(result)
    assert slurm_states(jobs) == {slurm_id: "FAILED"}
    # The failed job's outputs are removed, and its log tells why.
    assert not (run.workdir / "results" / "sample" / "train.csv").exists()
    assert "gz2_hart16.csv.gz" in (run.workdir / "logs" / "sample" / "sample.log").read_text()
