"""SIGKILL at every heavy stage, then rerun: the results equal an uninterrupted run's.

One copy of the workflow (tiny demo config, one clustering method, one CNN
variant) is run while five faults fire in turn, each in the middle of its
job: the image download, the HDF5 conversion, the archive packing, the
reduction fit and the CNN training. A kill of the job alone is a job that
died (Snakemake cleans its outputs); a kill of the whole process group is a
node failure (Snakemake leaves a stale lock and incomplete outputs: the
profile's ``rerun-incomplete`` and ``snakemake --unlock`` take over). After
each kill nothing complete-looking is left under a final name; after the
last rerun every deterministic output equals the uninterrupted reference run
(started alongside, in another copy), byte for byte or array for array.
"""

from __future__ import annotations

import json
import pickle
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import copy_workflow, write_config
from faults import (
    Fault,
    output_of,
    run_until_fault,
    start_snakemake,
    temporary_files,
    visible_files,
)
from PIL import Image

pytestmark = pytest.mark.slow

#: The tiny config plus: one clustering method and one variant (time), three epochs
#: (so that a checkpoint exists mid-training) and the study network's smallest input.
OVERRIDES = {
    "clustering": {"methods": ["kmeans"]},
    "cnn": {
        "variants": ["unbalanced"],
        "input_size": 38,
        "epochs": 3,
        "early_stopping_patience": 3,
    },
}
RUN_TIMEOUT_S = 600


def _exists(pattern):
    return lambda workdir: any(workdir.glob(pattern))


def _log_says(path, text):
    def condition(workdir):
        log = workdir / path
        return log.is_file() and text in log.read_text(errors="replace")

    return condition


def _snapshot(*patterns):
    """What a kill left: final names present, temporaries present."""

    def inspect(workdir):
        return {
            pattern: sorted(str(p.relative_to(workdir)) for p in workdir.glob(pattern))
            for pattern in patterns
        }

    return inspect


def faults() -> list[Fault]:
    return [
        Fault(
            "download",
            "fetch_images.py",
            _exists("results/images/jpg/train/.shard_0000.partial/*.jpg"),
            scope="job",
            holds="logs/images/fetch_images/train_0000.log",
            inspect=_snapshot(
                "results/images/jpg/train/shard_0000",
                "results/images/jpg/train/shard_0000.failures.csv",
                "results/images/jpg/train/.shard_0000.partial/*.jpg",
            ),
        ),
        Fault(
            "HDF5 writing",
            "jpg_to_hdf5.py",
            _exists("results/images/hdf5/*/.shard_0000.h5.tmp-*"),
            scope="group",
            inspect=_snapshot(
                "results/images/hdf5/*/shard_0000.h5", "results/images/hdf5/*/.shard_0000.h5.tmp-*"
            ),
        ),
        Fault(
            "packing",
            "pack.py",
            _exists("results/images/archives/.*.tar.gz.tmp-*"),
            scope="job",
            holds=".tar.gz.tmp-",  # the job writing an archive, not its twin
            inspect=_snapshot(
                "results/images/archives/*.tar.gz", "results/images/archives/.*.tar.gz.tmp-*"
            ),
        ),
        Fault(
            "reduction fitting",
            "fit_reduction.py",
            _log_says("logs/reduction/fit_reduction.log", "fitting the reduction"),
            scope="group",
            inspect=_snapshot("results/reduction/*.pkl"),
        ),
        Fault(
            "CNN training",
            "train_cnn.py",
            _exists("results/cnn/unbalanced/checkpoint/state.json"),
            scope="group",
            inspect=_snapshot(
                "results/cnn/unbalanced/network.*", "results/cnn/unbalanced/checkpoint/state.json"
            ),
        ),
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(reference workdir, interrupted workdir, faults fired in order, rerun outputs)."""
    reference = copy_workflow(tmp_path_factory.mktemp("reference"))
    interrupted = copy_workflow(tmp_path_factory.mktemp("interrupted"))
    for workdir in (reference, interrupted):
        write_config(workdir / "config" / "tiny.yaml", OVERRIDES)
    args = ("--configfile", "config/tiny.yaml")
    reference_run = start_snakemake(reference, *args)
    fired, outputs, pending = [], [], faults()
    try:
        for _ in range(len(pending) + 1):
            process = start_snakemake(interrupted, *args)
            fault = run_until_fault(process, interrupted, pending, RUN_TIMEOUT_S)
            outputs.append((process.returncode, output_of(process)))
            if fault is None:
                break
            fired.append(fault)
            if fault.scope == "group":  # a node failure leaves Snakemake's lock behind
                unlock = start_snakemake(interrupted, *args, "--unlock")
                assert unlock.wait(RUN_TIMEOUT_S) == 0, output_of(unlock)
    finally:
        reference_run.wait(RUN_TIMEOUT_S)
    assert reference_run.returncode == 0, output_of(reference_run)[-6000:]
    return reference, interrupted, fired, outputs, pending


def test_every_fault_fired_mid_job_and_the_last_rerun_completed(runs):
    _, _, fired, outputs, pending = runs
    assert not pending, f"jobs that ended before their fault could fire: {pending}"
    assert sorted(fault.name for fault in fired) == sorted(fault.name for fault in faults())
    for returncode, _ in outputs[:-1]:
        assert returncode != 0
    returncode, output = outputs[-1]
    assert returncode == 0, output[-6000:]


def test_a_kill_never_leaves_a_complete_looking_output(runs):
    _, _, fired, _, _ = runs
    observed = {fault.name: fault.observed for fault in fired}
    download = observed["download"]
    assert download["results/images/jpg/train/shard_0000"] == []  # only the staging folder
    assert download["results/images/jpg/train/.shard_0000.partial/*.jpg"]  # mid-download
    for fault, final, temporary in (
        ("HDF5 writing", "results/images/hdf5/*/shard_0000.h5", ".shard_0000.h5.tmp-*"),
        ("packing", "results/images/archives/*.tar.gz", ".*.tar.gz.tmp-*"),
    ):
        seen = observed[fault]
        partial = seen[str(Path(final).parent / temporary)]
        assert partial, fault  # killed mid-write ...
        for path in partial:  # ... and the output being written is not under its final name
            assert _final_name(path) not in seen[final], (fault, path)
    assert observed["reduction fitting"]["results/reduction/*.pkl"] == []
    cnn = observed["CNN training"]
    assert cnn["results/cnn/unbalanced/network.*"] == []
    assert cnn["results/cnn/unbalanced/checkpoint/state.json"]


def _final_name(temporary: str) -> str:
    """``dir/.name.tmp-xyz`` -> ``dir/name``."""
    folder, name = temporary.rsplit("/", 1)
    return f"{folder}/{name[1:].split('.tmp-')[0]}"


def test_reruns_resume_instead_of_starting_over(runs):
    _, interrupted, fired, outputs, _ = runs
    text = "\n".join(output for _, output in outputs)
    fetch_log = (interrupted / "logs/images/fetch_images/train_0000.log").read_text()
    staged = len(
        next(f for f in fired if f.name == "download").observed[
            "results/images/jpg/train/.shard_0000.partial/*.jpg"
        ]
    )
    already = int(fetch_log.split(" already there")[0].rsplit(", ", 1)[-1].split()[0])
    assert already >= staged > 0, fetch_log[-2000:]
    train_log = (interrupted / "logs/cnn/train_cnn/unbalanced.log").read_text()
    assert "resuming from the checkpoint of epoch" in train_log, train_log[-3000:]
    assert "Directory cannot be locked" not in text


def test_results_equal_the_uninterrupted_run(runs):
    reference, interrupted, _, _, _ = runs
    ours = visible_files(interrupted / "results")
    theirs = visible_files(reference / "results")
    assert sorted(ours) == sorted(theirs)
    assert temporary_files(interrupted / "results") == []
    assert not (interrupted / "results/cnn/unbalanced/checkpoint").exists()
    compared = 0
    for name, path in ours.items():
        other = theirs[name]
        if name.endswith(".h5"):
            _same_shard(path, other)
        elif name.endswith(".pkl"):
            _same_pickle(path, other)
        elif name.endswith((".json", "history.csv", "test_predictions.csv", "per_class.csv")):
            _same_numbers(path, other)
        elif name.endswith(".png"):
            Image.open(path).verify()  # complete; pixels may differ by font rendering
            continue
        elif name.endswith(".keras"):
            continue  # its weights are compared through the predictions
        else:  # CSVs, classes.txt, JPEGs, tar.gz archives: deterministic bytes
            assert path.read_bytes() == other.read_bytes(), name
            if name.endswith(".tar.gz"):
                with tarfile.open(path) as archive:
                    assert archive.getmembers()
        compared += 1
    assert compared > 90


def _same_shard(path, other):
    with h5py.File(path, "r") as mine, h5py.File(other, "r") as theirs:
        assert sorted(mine) == sorted(theirs)
        for name in mine:
            np.testing.assert_array_equal(mine[name][()], theirs[name][()], err_msg=str(path))
        assert dict(mine.attrs).keys() == dict(theirs.attrs).keys()


def _same_pickle(path, other):
    with open(path, "rb") as a, open(other, "rb") as b:
        mine, theirs = pickle.load(a), pickle.load(b)
    mine = mine if isinstance(mine, dict) else vars(mine)
    theirs = theirs if isinstance(theirs, dict) else vars(theirs)
    assert mine.keys() == theirs.keys(), path
    for key, value in mine.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            np.testing.assert_allclose(value, theirs[key], rtol=1e-6, err_msg=f"{path}:{key}")
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, theirs[key], err_msg=f"{path}:{key}")


def _same_numbers(path, other):
    if path.suffix == ".json":
        _close(json.loads(path.read_text()), json.loads(other.read_text()), str(path))
    else:
        pd.testing.assert_frame_equal(
            pd.read_csv(path), pd.read_csv(other), rtol=1e-5, check_exact=False
        )


def _close(mine, theirs, where: str) -> None:
    """Equal structure and text, numbers equal to 1e-5 (seeded fits, float sums)."""
    if isinstance(mine, dict):
        assert mine.keys() == theirs.keys(), where
        for key in mine:
            _close(mine[key], theirs[key], f"{where}:{key}")
    elif isinstance(mine, list):
        assert len(mine) == len(theirs), where
        for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            _close(a, b, f"{where}[{i}]")
    elif isinstance(mine, float):
        assert mine == pytest.approx(theirs, rel=1e-5, abs=1e-7, nan_ok=True), where
    else:
        assert mine == theirs, where
