"""Galaxy Zoo 2's 37 vote fractions: the tree, the vote table, the network, its scores and use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import FINISHED_RUN_OVERRIDES, REPO, TINY_CONFIG, deep_update

from galmorph.catalogue import decision_tree as tree
from galmorph.errors import InputDataError


def _answer(name: str) -> int:
    return tree.ANSWERS.index(name)


def _galaxy(**fractions: float) -> np.ndarray:
    """One row of conditional fractions from ``answer=fraction`` keywords."""
    row = np.zeros(tree.N_ANSWERS)
    for name, value in fractions.items():
        row[_answer(name)] = value
    return row


def _training_index(tmp_path):
    """A training shard of 12 blob galaxies, three classes (no winding among them)."""
    from shardfiles import blob_images
    from test_cnn_balance import write_shard

    from galmorph.cnn.shards import ShardIndex

    path = write_shard(
        tmp_path / "train" / "shard_0000.h5", blob_images(12, 48, seed=0), np.arange(12) % 3,
        np.arange(100, 112), "train", class_names=("elliptical", "edge_on", "merger"),
    )  # fmt: skip
    return ShardIndex.from_paths([path])


def _random_fractions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Conditional fractions of ``n`` galaxies: a random split of every task's votes."""
    parts = [rng.dirichlet(np.ones(size), size=n) for size in tree.task_sizes()]
    return np.concatenate(parts, axis=1)


# ---------------------------------------------------------------------------------
# The tree


def test_the_tree_has_11_tasks_37_answers_and_parents_before_children():
    assert len(tree.TASKS) == 11 and tree.N_ANSWERS == 37
    assert tree.task_slices()[-1] == (31, 37)
    for position, (parent, leads) in enumerate(tree.parent_answers()):
        assert parent is None or parent < position
        start, stop = tree.task_slices()[parent] if parent is not None else (0, 0)
        assert all(start <= answer < stop for answer in leads)
    # the demo sky draws its votes along the same tree
    from galmorph.synth import TASKS

    assert TASKS is tree.TASKS


def test_reach_follows_the_answers_that_lead_to_each_task():
    spiral = _galaxy(
        t01_smooth_or_features_a02_features_or_disk=0.8,
        t01_smooth_or_features_a01_smooth=0.1,
        t01_smooth_or_features_a03_star_or_artifact=0.1,
        t02_edgeon_a05_no=0.75,
        t02_edgeon_a04_yes=0.25,
        t04_spiral_a08_spiral=0.5,
        t04_spiral_a09_no_spiral=0.5,
        t06_odd_a14_yes=0.2,
        t06_odd_a15_no=0.8,
    )
    reach = dict(zip((task for task, _ in tree.TASKS), tree.reach(spiral[None])[0], strict=True))
    assert reach["t01_smooth_or_features"] == 1.0
    assert reach["t02_edgeon"] == pytest.approx(0.8)
    assert reach["t03_bar"] == reach["t05_bulge_prominence"] == pytest.approx(0.6)
    assert reach["t10_arms_winding"] == reach["t11_arms_number"] == pytest.approx(0.3)
    assert reach["t09_bulge_shape"] == pytest.approx(0.2)
    assert reach["t07_rounded"] == pytest.approx(0.1)
    # everyone but the star-or-artifact voters is asked whether anything is odd
    assert reach["t06_odd"] == pytest.approx(0.9)
    assert reach["t08_odd_feature"] == pytest.approx(0.18)
    cumulative = tree.cumulative(spiral[None])[0]
    assert cumulative[_answer("t04_spiral_a08_spiral")] == pytest.approx(0.3)


def test_normalise_tasks_rescales_reached_tasks_and_zeroes_the_rest():
    values = np.full((2, tree.N_ANSWERS), np.nan)
    values[0] = np.arange(tree.N_ANSWERS) % 3  # some tasks sum to more than 1
    values[1, :3] = [0.2, 0.2, 0.0]  # t01 only; the rest missing
    out = tree.normalise_tasks(values)
    for start, stop in tree.task_slices():
        assert np.allclose(out[0, start:stop].sum(), 1.0)
    np.testing.assert_allclose(out[1, :3], [0.5, 0.5, 0.0])
    assert not out[1, 3:].any()
    with pytest.raises(InputDataError, match="negative"):
        tree.normalise_tasks(-np.ones((1, tree.N_ANSWERS)))
    with pytest.raises(InputDataError, match="shape"):
        tree.normalise_tasks(np.ones((1, 36)))


def _catalogue(tmp_path, n: int = 30):
    """A gz2_hart16 of the demo sky (all 231 columns) and a sample of 10 of its galaxies."""
    from galmorph.synth import build_catalogue

    frame = build_catalogue(4, n_galaxies=n, n_unlabelled=0, n_malformed=0).catalogue
    path = tmp_path / "gz2_hart16.csv.gz"
    frame.to_csv(path, index=False)
    sample = frame[["dr7objid"]].iloc[[7, 2, 9, 0, 5, 1, 3, 4, 8, 6]].copy()
    sample["asset_id"] = np.arange(100, 110)
    return path, frame, sample


@pytest.mark.parametrize("kind", tree.VOTE_KINDS)
def test_the_vote_table_takes_the_catalogue_columns_in_sample_order(tmp_path, kind):
    path, frame, sample = _catalogue(tmp_path)
    table = tree.vote_table(path, sample, kind)
    assert list(table.columns) == ["dr7objid", "asset_id", *tree.ANSWERS]
    assert table["dr7objid"].tolist() == sample["dr7objid"].tolist()
    columns = tree.catalogue_vote_columns(kind)
    expected = frame.set_index("dr7objid").loc[sample["dr7objid"], columns]
    np.testing.assert_allclose(
        table[list(tree.ANSWERS)].to_numpy(), tree.normalise_tasks(expected.to_numpy())
    )
    written = tmp_path / "votes.csv"
    tree.write_vote_table(table, written)
    back = tree.read_vote_table(written)
    np.testing.assert_allclose(back[list(tree.ANSWERS)], table[list(tree.ANSWERS)], atol=1e-5)
    targets = tree.targets_for(back, np.array([105, 100]))
    np.testing.assert_allclose(targets, table[list(tree.ANSWERS)].to_numpy()[[5, 0]], atol=1e-5)
    with pytest.raises(InputDataError, match="asset_id 999"):
        tree.targets_for(back, np.array([100, 999]))


def test_the_vote_table_refuses_a_catalogue_without_votes_or_galaxies(tmp_path):
    path, frame, sample = _catalogue(tmp_path)
    gz1 = tmp_path / "gz1.csv"
    frame[["dr7objid", "ra", "dec"]].to_csv(gz1, index=False)
    with pytest.raises(InputDataError, match="gz2_hart16 catalogue of Galaxy Zoo 2"):
        tree.vote_table(gz1, sample, "debiased")
    stranger = pd.DataFrame({"dr7objid": [1], "asset_id": [1]})
    with pytest.raises(InputDataError, match="no row for dr7objid 1 "):
        tree.vote_table(path, stranger, "fraction")
    with pytest.raises(InputDataError, match="weighted"):
        tree.vote_table(path, sample, "weighted")


def test_a_vote_table_whose_tasks_do_not_sum_to_one_is_refused(tmp_path):
    table = pd.DataFrame(np.full((1, tree.N_ANSWERS), 0.5), columns=list(tree.ANSWERS))
    table.insert(0, "asset_id", [1])
    table.insert(0, "dr7objid", [1])
    table.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputDataError, match="neither 0 nor 1"):
        tree.read_vote_table(tmp_path / "bad.csv")


# ---------------------------------------------------------------------------------
# The network's output and loss


def test_task_softmax_gives_each_task_answers_summing_to_one():
    from galmorph.cnn.votes import TaskSoftmax

    logits = np.random.default_rng(0).normal(size=(5, tree.N_ANSWERS)).astype("float32")
    out = np.asarray(TaskSoftmax(tree.task_sizes())(logits))
    for start, stop in tree.task_slices():
        np.testing.assert_allclose(out[:, start:stop].sum(axis=1), 1.0, rtol=1e-5)
    # it is a softmax: the order of a task's answers follows the logits
    start, stop = tree.task_slices()[4]
    assert (out[:, start:stop].argmax(axis=1) == logits[:, start:stop].argmax(axis=1)).all()


def test_the_tree_loss_is_cross_entropy_weighted_by_reach():
    from galmorph.cnn.votes import DecisionTreeLoss

    rng = np.random.default_rng(1)
    y_true, y_pred = _random_fractions(rng, 8), _random_fractions(rng, 8)
    reach = tree.reach(y_true)
    expected = np.mean(
        [
            sum(
                -reach[g, t] * (y_true[g, a:b] * np.log(y_pred[g, a:b])).sum()
                for t, (a, b) in enumerate(tree.task_slices())
            )
            for g in range(8)
        ]
    )
    loss = DecisionTreeLoss()
    assert float(loss(y_true.astype("float32"), y_pred.astype("float32"))) == pytest.approx(
        expected, rel=1e-4
    )
    # a task nobody reached costs nothing, whatever the network says of it
    smooth = y_true.copy()
    start, stop = tree.task_slices()[0]
    smooth[:, start:stop] = [1.0, 0.0, 0.0]  # all smooth: the disk questions go unasked
    other = y_pred.copy()
    a, b = tree.task_slices()[3]  # t04 spiral
    other[:, a:b] = other[:, a:b][:, ::-1]
    first = float(loss(smooth.astype("float32"), y_pred.astype("float32")))
    assert float(loss(smooth.astype("float32"), other.astype("float32"))) == pytest.approx(first)
    other[:, 15:18] = other[:, 15:18][:, ::-1]  # t07 rounded: asked of smooth galaxies
    assert float(loss(smooth.astype("float32"), other.astype("float32"))) != pytest.approx(first)


def test_scores_are_zero_for_the_truth_and_the_mean_is_the_best_constant():
    from galmorph.cnn.votes import mean_prediction, vote_scores

    rng = np.random.default_rng(2)
    train, test = _random_fractions(rng, 200), _random_fractions(rng, 100)
    baseline = mean_prediction(train)
    perfect, per_answer = vote_scores(test, test, baseline)
    assert perfect["rmse"] == 0 and perfect["rmse_conditional"] == 0
    assert perfect["rmse_baseline"] > 0.05 and perfect["rmse_conditional_baseline"] > 0.05
    assert list(per_answer["answer"]) == list(tree.ANSWERS)
    assert (per_answer["rmse"] == 0).all() and (per_answer["rmse_baseline"] > 0).all()
    # on its own training set, no other constant beats the mean cumulative fractions
    own, _ = vote_scores(train, np.tile(baseline["conditional"], (200, 1)), baseline)
    shifted = {**baseline, "cumulative": baseline["cumulative"] + 0.02}
    assert vote_scores(train, train, shifted)[0]["rmse_baseline"] > own["rmse_baseline"]


def test_a_vote_network_saves_loads_and_keeps_targets_under_mirrors(tmp_path):
    """Built, saved and loaded with its custom layer and loss; a mirrored training view
    keeps its vote fractions (no answer of the tree has a handedness)."""
    from galmorph.cnn import train
    from galmorph.cnn.data import Augmentation, make_dataset
    from galmorph.cnn.models import build_model

    model = build_model("deeper", 32, 0, target="vote_fractions")
    assert model.output_shape == (None, tree.N_ANSWERS)
    images = np.random.default_rng(3).random((2, 32, 32, 3)).astype("float32")
    train.save_model(model, {"target": "vote_fractions"}, tmp_path / "votes.keras")
    loaded, meta = train.load(tmp_path / "votes.keras")
    assert meta["target"] == "vote_fractions"
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-6)
    index = _training_index(tmp_path)
    targets = _random_fractions(np.random.default_rng(5), len(index)).astype("float32")
    mirror_only = Augmentation(rotate=False, mirror=True)
    dataset = make_dataset(
        index, crop=None, input_size=32, batch_size=len(index), augment=mirror_only,
        mirror=np.arange(index.n_classes), targets=targets,
    )  # fmt: skip
    _, yielded = next(iter(dataset))
    np.testing.assert_array_equal(np.asarray(yielded), targets)


def test_training_refuses_targets_that_do_not_fit(tmp_path):
    from galmorph.cnn.settings import TrainSettings
    from galmorph.cnn.train import train_model

    index = _training_index(tmp_path)
    votes = TrainSettings(target="vote_fractions", selection_metric="loss", epochs=1)
    with pytest.raises(InputDataError, match="needs the rows' vote fractions"):
        train_model(index, votes)
    with pytest.raises(InputDataError, match="shape"):
        train_model(index, votes, targets=np.zeros((len(index) + 1, 37)))
    by_f1 = TrainSettings(target="vote_fractions", selection_metric="macro_f1")
    with pytest.raises(InputDataError, match="validation loss"):
        train_model(index, by_f1, targets=np.zeros((len(index), 37)))
    with pytest.raises(InputDataError, match="classifier"):
        train_model(index, TrainSettings(), targets=np.zeros((len(index), 37)))
    with pytest.raises(InputDataError, match="target is 'votes'"):
        TrainSettings(target="votes")


def test_the_config_refuses_votes_for_a_dataset_without_them():
    import yaml

    from galmorph import config as galmorph_config

    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    sdss = deep_update(base, yaml.safe_load((REPO / "config" / "sdss_gz1.yaml").read_text()))
    assert not sdss["cnn"]["vote_fractions"]["enabled"]
    sdss["cnn"]["vote_fractions"]["enabled"] = True
    problems = galmorph_config.consistency_errors(sdss)
    assert any("has no Galaxy Zoo 2 votes" in problem for problem in problems), problems
    gz2 = deep_update(base, yaml.safe_load((REPO / "config" / "gz2.yaml").read_text()))
    assert gz2["cnn"]["vote_fractions"] == {"enabled": True, "column": "debiased"}
    assert not galmorph_config.consistency_errors(gz2)


# ---------------------------------------------------------------------------------
# In the workflow


def test_the_tiny_run_scores_and_predicts_vote_fractions(finished_run, tmp_path):
    """The tiny run (vote fractions on) trains, scores and writes the 37 columns; the
    command on the test JPEGs, without flags, gives the evaluation's fractions."""
    assert FINISHED_RUN_OVERRIDES["cnn"]["vote_fractions"]["enabled"]
    results = finished_run.workdir / "results"
    metrics = json.loads((results / "cnn" / "votes" / "metrics.json").read_text())
    assert metrics["n_galaxies"] == TINY_CONFIG["sample"]["n_test"]
    for key in ("rmse", "rmse_baseline", "rmse_conditional", "rmse_conditional_baseline"):
        assert 0 < metrics[key] < 1, (key, metrics)
    meta = json.loads((results / "cnn" / "votes" / "model.json").read_text())
    assert meta["target"] == "vote_fractions" and meta["answers"] == list(tree.ANSWERS)
    assert meta["decision"] == {
        "tta_rotations": 4, "tta_mirror": True, "prior_shift": 0.0, "class_bias": {}
    }  # fmt: skip
    per_answer = pd.read_csv(results / "cnn" / "votes" / "per_answer.csv")
    assert len(per_answer) == 37 and per_answer["rmse"].notna().all()
    evaluated = pd.read_csv(
        results / "cnn" / "votes" / "test_predictions.csv", dtype={"asset_id": str}
    ).set_index("asset_id")
    columns = [f"{answer}_fraction" for answer in tree.ANSWERS]
    assert list(evaluated.columns) == columns
    folder = results / "images" / "jpg" / "test" / "shard_0000"
    out = tmp_path / "votes.csv"
    model = results / "cnn" / "votes" / "model.keras"
    done = subprocess.run(
        [sys.executable, "-m", "galmorph.cnn.predict", "--model", str(model),
         "--folder", str(folder), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = pd.read_csv(out, dtype={"id": str}).set_index("id")
    assert list(predicted.columns) == columns and len(predicted) == len(evaluated)
    np.testing.assert_allclose(
        predicted.loc[evaluated.index, columns].to_numpy(), evaluated.to_numpy(), atol=2e-5
    )
    for start, stop in tree.task_slices():
        np.testing.assert_allclose(predicted[columns[start:stop]].sum(axis=1), 1.0, atol=1e-4)
