"""A saved model carries its decision rule (test-time views, prior shift) in model.json."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from galmorph.cnn import decision
from galmorph.errors import InputDataError


@pytest.mark.parametrize(
    "values",
    [
        {"prior_shift": math.nan},
        {"prior_shift": math.inf},
        {"prior_shift": -0.1},
        {"prior_shift": "0.4"},
        {"tta_rotations": 0},
        {"tta_rotations": 2.5},
        {"tta_rotations": True},
        {"tta_mirror": "yes"},
    ],
    ids=repr,
)
def test_a_rule_refuses_values_that_decide_nothing(values):
    with pytest.raises(InputDataError, match=next(iter(values))):
        decision.DecisionRule(**values)


def test_the_written_rule_is_read_back_and_overridden_field_by_field():
    meta = decision.attach({"class_names": ["a", "b"]}, decision.DecisionRule(4, True, 0.4))
    assert meta["decision"] == {"tta_rotations": 4, "tta_mirror": True, "prior_shift": 0.4}
    assert decision.from_metadata(meta) == decision.DecisionRule(4, True, 0.4)
    assert decision.from_metadata(meta, tta_mirror=False, prior_shift=None) == (
        decision.DecisionRule(4, False, 0.4)
    )
    # a network straight from training (or an earlier release) decides plainly
    assert decision.from_metadata({"class_names": ["a"]}) == decision.DecisionRule()
    with pytest.raises(InputDataError, match="unknown decision keys"):
        decision.from_metadata({"decision": {"tta_rotation": 4}})
    with pytest.raises(InputDataError, match="prior_shift"):
        decision.from_metadata(meta, prior_shift=math.nan)


def test_write_model_copies_the_network_and_adds_the_rule(tmp_path):
    network = tmp_path / "network.keras"
    network.write_bytes(b"keras bytes \x00\x01")
    (tmp_path / "network.json").write_text(json.dumps({"class_names": ["a", "b"], "crop": 8}))
    meta = decision.write_model(network, tmp_path / "model.keras", decision.DecisionRule(2))
    assert (tmp_path / "model.keras").read_bytes() == network.read_bytes()
    assert json.loads((tmp_path / "model.json").read_text()) == meta
    rule = {"tta_rotations": 2, "tta_mirror": False, "prior_shift": 0.0}
    assert meta == {"class_names": ["a", "b"], "crop": 8, "decision": rule}
    with pytest.raises(InputDataError, match="train the network first"):
        decision.write_model(tmp_path / "none.keras", tmp_path / "m.keras", decision.DecisionRule())


def _predict(args, tmp_path, name):
    out = tmp_path / f"{name}.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "galmorph.cnn.predict", *args, "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    return done, out


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["unbalanced", "ensemble"])
def test_the_command_without_flags_reproduces_the_evaluation(finished_run, tmp_path, variant):
    """The tiny run evaluates with 4 turns x mirror and shifts the unbalanced variant by
    0.5: ``predict`` on the test split's JPEGs, with no flag, gives the probabilities of
    that variant's test_predictions.csv; flags still override the rule."""
    results = finished_run.workdir / "results"
    meta = json.loads((results / "cnn" / variant / "model.json").read_text())
    config_shift = {"unbalanced": 0.5, "ensemble": 0.0}[variant]
    assert meta["decision"] == {"tta_rotations": 4, "tta_mirror": True, "prior_shift": config_shift}
    folder = results / "images" / "jpg" / "test" / "shard_0000"
    model = ["--model", str(results / "cnn" / variant / "model.keras"), "--folder", str(folder)]
    done, out = _predict(model, tmp_path, "default")
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = pd.read_csv(out, dtype={"id": str}).set_index("id")
    evaluated = pd.read_csv(
        results / "cnn" / variant / "test_predictions.csv", dtype={"asset_id": str}
    ).set_index("asset_id")
    assert len(predicted) == len(evaluated) > 0
    columns = [column for column in evaluated if column.startswith("p_")]
    np.testing.assert_allclose(
        predicted.loc[evaluated.index, columns].to_numpy(), evaluated[columns].to_numpy(),
        atol=2e-5,
    )  # fmt: skip
    assert (predicted.loc[evaluated.index, "predicted_class"] == evaluated["predicted_class"]).all()
    # the check can fail: one plain view decides otherwise
    done, plain = _predict([*model, "--tta-rotations", "1", "--no-tta-mirror"], tmp_path, "plain")
    assert done.returncode == 0, done.stderr[-3000:]
    plain = pd.read_csv(plain, dtype={"id": str}).set_index("id")
    assert (
        np.abs(plain.loc[evaluated.index, columns].to_numpy() - evaluated[columns].to_numpy()).max()
        > 1e-3
    )


@pytest.mark.parametrize("value", ["nan", "-0.5", "inf"])
def test_the_command_refuses_a_shift_that_is_no_power(value, tmp_path):
    done, out = _predict(
        ["--model", str(tmp_path / "m.keras"), "--folder", str(tmp_path), f"--prior-shift={value}"],
        tmp_path, "refused",
    )  # fmt: skip
    assert done.returncode == 1 and "prior_shift" in done.stderr, done.stderr[-2000:]
    assert not out.exists()
