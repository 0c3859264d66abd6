"""Model selection never reads the test split: neither the workflow's training, balancing,
k-fold and ensemble-joining jobs nor the tuning scripts (bench/cnn_select.py,
bench/cnn_ensemble_select.py, bench/measures_network_select.py) open a test shard."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    REPO,
    copy_workflow,
    explain,
    require_module,
    run_snakemake,
    spy_on_h5_opens,
    write_config,
)
from test_cnn_augment import NAMES, toy_images
from test_cnn_balance import write_shard

SELECTION_RULES = ("train_cnn", "train_measures_network", "balance_training_set", "cnn_kfold")


def planned_jobs(console: str) -> list[tuple[str, str]]:
    """(rule, input line) of every job a dry run prints."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", console):
        rule = re.match(r"(?:local)?rule (\w+):", block.strip())
        inputs = re.search(r"^\s+input: (.*)$", block, flags=re.MULTILINE)
        if rule:
            jobs.append((rule.group(1), inputs.group(1) if inputs else ""))
    return jobs


def test_training_balancing_and_kfold_jobs_take_no_test_shard(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    write_config(workdir / "config/tiny.yaml", {"cnn": {"kfold": 2}, "images": {"n_shards": 2}})
    # with cnn.kfold > 1 the default target includes every variant's k-fold summary
    result = run_snakemake(workdir, "-n", "--configfile", "config/tiny.yaml")
    assert result.returncode == 0, explain(result)
    jobs = planned_jobs(result.stdout + result.stderr)
    selecting = [(rule, inputs) for rule, inputs in jobs if rule in SELECTION_RULES]
    assert {rule for rule, _ in selecting} == set(SELECTION_RULES), jobs
    for rule, inputs in selecting:
        assert "hdf5/train/" in inputs or "train_balanced.h5" in inputs, (rule, inputs)
        assert "/test/" not in inputs, f"{rule} would read the test split: {inputs}"
    # the ensemble is joined from the trained networks alone
    joining = [inputs for rule, inputs in jobs if rule == "assemble_cnn_ensemble"]
    assert len(joining) == 1 and ".h5" not in joining[0], joining
    assert sorted(joining[0].split(", ")) == sorted(
        f"results/cnn/{variant}/network.{ext}"
        for variant in ("unbalanced", "balanced", "measures")
        for ext in ("keras", "json")
    )
    # the check can fail: the evaluation jobs do take the test shards
    evaluating = [inputs for rule, inputs in jobs if rule == "evaluate_cnn"]
    assert evaluating and all("hdf5/test/shard_0001.h5" in inputs for inputs in evaluating)


def toy_run(run_dir: Path) -> Path:
    """A run folder with one training shard (30 toy galaxies) and one test shard (12);
    returns the test shard."""
    hdf5 = run_dir / "results" / "images" / "hdf5"
    images, labels = toy_images(10, seed=4)
    write_shard(hdf5 / "train" / "shard_0000.h5", images, labels, np.arange(30), "train",
                class_names=NAMES)  # fmt: skip
    images, labels = toy_images(4, seed=5)
    return write_shard(hdf5 / "test" / "shard_0000.h5", images, labels, 100 + np.arange(12),
                       "test", class_names=NAMES)  # fmt: skip


def test_the_tuning_script_opens_no_test_shard(tmp_path, monkeypatch):
    require_module("tensorflow")
    sys.path.insert(0, str(REPO / "bench"))
    import cnn_select

    test_shard = toy_run(tmp_path)
    opened = spy_on_h5_opens(monkeypatch)
    table = cnn_select.main([
        str(tmp_path), "--holdout", "0.3", "--epochs", "1",
        "--candidates", "resnet-96px-measures", "resnet-96px-no-measures",
        "--set", "crop=64", "input_size=32", "measure_crop=64", "batch_size=8",
        "--save-probabilities", str(tmp_path / "held_out"),
    ])  # fmt: skip
    assert opened and Path(test_shard).resolve() not in opened
    assert {path.parent.name for path in opened} == {"train"}
    assert table["candidate"].tolist()[1:] == ["resnet-96px-measures", "resnet-96px-no-measures"]
    assert table["candidate"][0].startswith("baseline: always")
    # every candidate scored at each prior shift; the saved probabilities are the unshifted ones
    assert set(table["prior_shift"].iloc[1:]) <= set(cnn_select.PRIOR_SHIFTS)
    saved = np.load(tmp_path / "held_out" / "resnet-96px-measures.npz")
    assert saved["proba"].shape == (len(saved["y_true"]), len(NAMES))
    np.testing.assert_allclose(saved["proba"].sum(axis=1), 1.0, rtol=1e-5)
    assert saved["class_counts"].sum() + len(saved["y_true"]) == 30  # the training shard


def test_the_ensemble_selection_opens_no_test_shard(tmp_path, monkeypatch):
    require_module("tensorflow")
    sys.path.insert(0, str(REPO / "bench"))
    import cnn_ensemble_select

    test_shard = toy_run(tmp_path)
    opened = spy_on_h5_opens(monkeypatch)
    table = cnn_ensemble_select.main([
        str(tmp_path), "--holdout", "0.3", "--epochs", "1", "--per-class", "6",
        "--candidate", "resnet-96px-measures",
    ])  # fmt: skip
    assert opened and Path(test_shard).resolve() not in opened
    assert "test" not in {path.parent.name for path in opened}
    # the baseline, then each variant at the power it chose
    assert table["variant"].tolist()[1:] == ["unbalanced", "balanced", "ensemble"]
    assert set(table["prior_shift"].iloc[1:]) <= set(cnn_ensemble_select.SHIFTS)
    assert table["accuracy"].between(0.0, 1.0).all()


def test_the_k_fold_ensemble_selection_scores_every_training_galaxy_once(tmp_path, monkeypatch):
    require_module("tensorflow")
    sys.path.insert(0, str(REPO / "bench"))
    import cnn_ensemble_select

    test_shard = toy_run(tmp_path)
    opened = spy_on_h5_opens(monkeypatch)
    table = cnn_ensemble_select.main([
        str(tmp_path), "--folds", "2", "--epochs", "1", "--per-class", "6",
        "--candidate", "resnet-96px-measures", "resnet-96px-measures-unweighted",
        "--save-probabilities", str(tmp_path / "held_out"),
    ])  # fmt: skip
    assert opened and Path(test_shard).resolve() not in opened
    assert "test" not in {path.parent.name for path in opened}
    # a second candidate adds its own unbalanced network and its ensemble with the balanced one
    assert table["variant"].tolist()[1:] == [
        "unbalanced", "unbalanced resnet-96px-measures-unweighted", "balanced", "ensemble",
        "ensemble resnet-96px-measures-unweighted",
    ]  # fmt: skip
    saved = np.load(tmp_path / "held_out" / "ensemble.npz")
    # all 30 training galaxies held out once, each by the networks of the other fold
    assert len(saved["y_true"]) == 30
    assert sorted(np.bincount(saved["fold"]).tolist()) == [15, 15]
    # each fold's fitted mix is the other fold's galaxies
    assert saved["fold_class_counts"].sum(axis=1).tolist() == [15, 15]
    np.testing.assert_allclose(saved["proba"].sum(axis=1), 1.0, rtol=1e-5)


def test_the_measures_network_selection_scores_the_same_folds(tmp_path, monkeypatch):
    require_module("tensorflow")
    sys.path.insert(0, str(REPO / "bench"))
    import cnn_select
    import measures_network_select

    test_shard = toy_run(tmp_path)
    opened = spy_on_h5_opens(monkeypatch)
    table = measures_network_select.main([
        str(tmp_path), "--folds", "2", "--members", "2", "--hidden", "8",
        "--candidate", "resnet-96px-measures", "--save-probabilities", str(tmp_path / "held"),
    ])  # fmt: skip
    assert opened and Path(test_shard).resolve() not in opened
    assert "test" not in {path.parent.name for path in opened}
    assert table["variant"].tolist() == ["baseline: the majority class"] + ["measures"] * len(
        measures_network_select.SHIFTS
    )
    saved = np.load(tmp_path / "held" / "measures.npz")
    # the folds of cnn_select (and so of cnn_ensemble_select): the same galaxies, in order
    _, index, parts = cnn_select.fold_splits(tmp_path, 2, 31)
    held = np.concatenate([positions for _, positions in parts])
    np.testing.assert_array_equal(saved["y_true"], index.labels[held])
    np.testing.assert_array_equal(saved["fold"], np.repeat([0, 1], [len(p) for _, p in parts]))
    np.testing.assert_allclose(saved["proba"].sum(axis=1), 1.0, rtol=1e-5)


def test_the_ensemble_selection_refuses_a_single_fold(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    import cnn_ensemble_select

    with pytest.raises(SystemExit):
        cnn_ensemble_select.main([str(tmp_path), "--folds", "1"])
