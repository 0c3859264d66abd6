"""A saved model carries its decision rule (test-time views, prior shift, class biases)."""

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
        {"class_bias": {"a": math.nan}},
        {"class_bias": {"a": "1"}},
        {"class_bias": {"a": True}},
        {"class_bias": [1.0]},
    ],
    ids=repr,
)
def test_a_rule_refuses_values_that_decide_nothing(values):
    with pytest.raises(InputDataError, match=next(iter(values))):
        decision.DecisionRule(**values)


def test_the_written_rule_is_read_back_and_overridden_field_by_field():
    meta = decision.attach({"class_names": ["a", "b"]}, decision.DecisionRule(4, True, 0.4))
    assert meta["decision"] == {
        "tta_rotations": 4, "tta_mirror": True, "prior_shift": 0.4, "class_bias": {}
    }  # fmt: skip
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
    rule = {"tta_rotations": 2, "tta_mirror": False, "prior_shift": 0.0, "class_bias": {}}
    assert meta == {"class_names": ["a", "b"], "crop": 8, "decision": rule}
    with pytest.raises(InputDataError, match="train the network first"):
        decision.write_model(tmp_path / "none.keras", tmp_path / "m.keras", decision.DecisionRule())


def test_a_class_bias_names_classes_of_the_model_and_no_vote_fractions():
    rule = decision.DecisionRule(class_bias={"b": 1})
    assert rule.class_bias == {"b": 1.0}
    np.testing.assert_array_equal(rule.bias_vector(["a", "b", "c"]), [0.0, 1.0, 0.0])
    assert decision.attach({"class_names": ["a", "b"]}, rule)["decision"]["class_bias"] == {
        "b": 1.0
    }
    with pytest.raises(InputDataError, match=r"class_bias names \['z'\]"):
        decision.attach({"class_names": ["a", "b"]}, decision.DecisionRule(class_bias={"z": 1}))
    with pytest.raises(InputDataError, match="not to vote fractions"):
        decision.attach({"class_names": ["a", "b"], "target": "vote_fractions"}, rule)


def test_a_class_bias_multiplies_each_class_by_exp_of_it():
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    assert decision.apply_class_bias(proba, np.zeros(3)) is proba
    biased = decision.apply_class_bias(proba, np.log([1.0, 2.0, 1.0]))
    expected = proba * [1.0, 2.0, 1.0]
    np.testing.assert_allclose(biased, expected / expected.sum(axis=1, keepdims=True))


def test_fit_class_bias_finds_a_class_the_probabilities_under_call():
    """Class 2's galaxies get 0.4 for their class beside 0.45 for class 0: never called.
    A bias for class 2 (or against 0) calls them, and raises the macro-F1."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y_true = np.repeat([0, 1, 2], [60, 30, 10])
    proba = np.full((100, 3), 0.05)
    proba[np.arange(100), y_true] = 0.9
    proba[y_true == 2] = [0.45, 0.15, 0.40]
    proba += rng.uniform(0, 0.02, proba.shape)
    proba /= proba.sum(axis=1, keepdims=True)
    before = f1_score(y_true, proba.argmax(axis=1), average="macro")
    bias = decision.fit_class_bias(proba, y_true)
    after = f1_score(y_true, (np.log(proba) + bias).argmax(axis=1), average="macro")
    assert before < 0.7 and after == pytest.approx(1.0)
    assert bias[2] - bias[0] > 0.1
    assert set(np.round(bias, 1)) <= set(decision.BIAS_GRID)
    # probabilities that already decide every galaxy rightly keep no bias
    perfect = np.eye(3)[y_true] * 0.8 + 0.2 / 3
    np.testing.assert_array_equal(decision.fit_class_bias(perfect, y_true), np.zeros(3))
    with pytest.raises(InputDataError, match="for 3 labels"):
        decision.fit_class_bias(proba, y_true[:3])


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
    assert meta["decision"] == {
        "tta_rotations": 4, "tta_mirror": True, "prior_shift": config_shift, "class_bias": {}
    }  # fmt: skip
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


def test_tied_classes_share_one_bias():
    """Clockwise galaxies (class 1) under-called against anticlockwise ones (class 2):
    untied, the fit prefers one sense; tied, the pair keeps one value."""
    y_true = np.repeat([0, 1, 2], [50, 25, 25])
    proba = np.full((100, 3), 0.1)
    proba[np.arange(100), y_true] = 0.8
    proba[y_true == 1] = [0.1, 0.44, 0.46]
    free = decision.fit_class_bias(proba, y_true)
    tied = decision.fit_class_bias(proba, y_true, tied=((1, 2),))
    assert free[1] != free[2]
    assert tied[1] == tied[2]
