"""The ensemble variant: the trained networks voting as one Keras model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module

from galmorph.errors import InputDataError

keras = require_module("keras")

from galmorph.cnn import train  # noqa: E402
from galmorph.cnn.ensemble import SHARED_KEYS, build_ensemble  # noqa: E402
from galmorph.cnn.evaluate import shift_to_prior  # noqa: E402

N_CLASSES, N_FEATURES, SIDE = 4, 5, 8


def member(seed: int, name: str = "resnet") -> keras.Model:
    """A small network with the workflow's two inputs (image, measures) and a softmax."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((SIDE, SIDE, 3), name="image")
    measures = keras.Input((N_FEATURES,), name="measures")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(image), measures])
    output = keras.layers.Dense(N_CLASSES, activation="softmax", name="classes")(x)
    return keras.Model({"image": image, "measures": measures}, output, name=name)


def metadata(**changes) -> dict:
    meta = {
        "class_names": ["a", "b", "c", "d"],
        "image_size": 32,
        "crop": SIDE,
        "input_size": SIDE,
        "measure_crop": SIDE,
        "measure_scales": [1.0],
        "measures": "morphometry",
        "n_features": N_FEATURES,
        "mirror_pairs": [["c", "d"]],
        "split_class_counts": [70, 20, 6, 4],
        "architecture": "resnet",
        "trained_on": ["shard_0000.h5"],
        "n_train": 100,
        "best_epoch": 3,
        "seed": 1,
    }
    return meta | changes


def inputs(n: int = 6, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.random((n, SIDE, SIDE, 3), dtype=np.float32),
        "measures": rng.normal(size=(n, N_FEATURES)).astype(np.float32),
    }


@pytest.fixture(scope="module")
def members():
    return {"unbalanced": member(1), "balanced": member(2)}


def test_the_ensemble_is_the_normalised_geometric_mean_of_its_members(members, tmp_path):
    meta = {"unbalanced": metadata(class_counts=[70, 20, 6, 4]),
            "balanced": metadata(class_counts=[25, 25, 25, 25])}  # fmt: skip
    model, ensemble_meta = build_ensemble(members, meta)
    x = inputs()
    p1, p2 = (np.asarray(m(x, training=False), dtype=np.float64) for m in members.values())
    expected = np.sqrt(p1 * p2)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, atol=1e-6)
    # saved and loaded as any variant's model, with its model.json beside it
    train.save_model(model, ensemble_meta, tmp_path / "model.keras")
    loaded, loaded_meta = train.load(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), expected, atol=1e-6)
    assert loaded_meta["variant"] == "ensemble"
    assert [m["variant"] for m in loaded_meta["members"]] == ["unbalanced", "balanced"]
    assert [m["class_counts"] for m in loaded_meta["members"]] == [[70, 20, 6, 4], [25] * 4]
    assert {key: loaded_meta[key] for key in SHARED_KEYS} == {
        key: metadata()[key] for key in SHARED_KEYS
    }


def test_the_ensembles_prior_shift_moves_towards_the_training_split(members):
    _, meta = build_ensemble(members, {"unbalanced": metadata(), "balanced": metadata()})
    proba = np.full((1, N_CLASSES), 0.25)
    shifted = shift_to_prior(proba, meta, 1.0)
    np.testing.assert_allclose(shifted[0], np.array([70, 20, 6, 4]) / 100)


def test_a_member_confident_against_a_class_vetoes_it(members):
    """Unlike the arithmetic mean, the geometric mean lets a member that rules a class out
    outvote a member that favours it weakly."""
    from galmorph.cnn.models import GeometricMean

    sure_not = np.array([[0.01, 0.33, 0.33, 0.33]], dtype=np.float32)
    leaning = np.array([[0.55, 0.15, 0.15, 0.15]], dtype=np.float32)
    vote = np.asarray(GeometricMean()([sure_not, leaning]))
    assert vote.argmax() != 0 and (sure_not + leaning).argmax() == 0
    np.testing.assert_allclose(vote.sum(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("key", ["crop", "input_size", "measure_scales", "class_names",
                                 "mirror_pairs", "split_class_counts"])  # fmt: skip
def test_members_that_read_images_differently_are_refused(members, key):
    changed = {
        "crop": 16, "input_size": 16, "measure_scales": [0.5, 1.0],
        "class_names": ["a", "b", "d", "c"], "mirror_pairs": [], "split_class_counts": [1, 1, 1, 1],
    }[key]  # fmt: skip
    meta = {"unbalanced": metadata(), "balanced": metadata(**{key: changed})}
    with pytest.raises(InputDataError, match=key):
        build_ensemble(members, meta)


def test_one_member_is_not_an_ensemble(members):
    with pytest.raises(InputDataError, match="two or more"):
        build_ensemble({"unbalanced": members["unbalanced"]}, {"unbalanced": metadata()})


@pytest.mark.slow
def test_the_workflows_ensemble_classifies_a_folder_as_its_two_networks_vote(
    finished_run, tmp_path
):
    """In the finished tiny run: the ensemble has its test metrics, and rule predict_folder
    gives every image of a folder the normalised geometric mean of what the unbalanced and
    the balanced networks and the measures variant give it (one view, no shift: the vote
    is then exact)."""
    import json

    import pandas as pd
    import yaml
    from conftest import copy_finished_run, explain, run_snakemake

    run = copy_finished_run(finished_run, tmp_path / "run")
    metrics = json.loads((run.workdir / "results/cnn/ensemble/metrics.json").read_text())
    assert metrics["variant"] == "ensemble" and metrics["prior_shift"] == 0.0
    folder = run.workdir / "results/images/jpg/test/shard_0000"
    overlay = run.workdir / "config" / "predict.yaml"
    overlay.write_text(yaml.safe_dump({
        "predict_folder": str(folder),
        "cnn": {"tta": {"rotations": 1, "mirror": False},
                "prior_shift": {"unbalanced": 0.0, "balanced": 0.0, "ensemble": 0.0}},
    }))  # fmt: skip
    variants = ("unbalanced", "balanced", "measures", "ensemble")
    targets = [f"results/predict/{variant}/predictions.csv" for variant in variants]
    result = run_snakemake(
        run.workdir, "--configfile", run.configfile, str(overlay.relative_to(run.workdir)),
        "--", *targets,
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    tables = {
        variant: pd.read_csv(run.workdir / target, dtype={"id": str})
        for variant, target in zip(variants, targets, strict=True)
    }
    columns = [column for column in tables["ensemble"] if column.startswith("p_")]
    assert len(tables["ensemble"]) == len(list(folder.glob("*.jpg"))) > 0
    for table in tables.values():
        assert table["id"].tolist() == tables["ensemble"]["id"].tolist()
    logs = [np.log(np.clip(tables[v][columns].to_numpy(), 1e-7, 1.0)) for v in variants[:3]]
    vote = np.exp(np.mean(logs, axis=0))
    vote /= vote.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(tables["ensemble"][columns].to_numpy(), vote, atol=1e-5)
