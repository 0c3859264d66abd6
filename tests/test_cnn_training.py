"""Tiny end-to-end CNN runs on real galaxy pixels: pipeline, both variants, k-fold,
no test leakage, evaluation and prediction on a folder with a corrupt file.

TensorFlow is imported once for the module; images are 64 pixels, cropped to
48 and fed at 40 (the smallest the study architecture takes), one or two epochs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GZ1, require_module, require_shared, spy_on_h5_opens
from test_cnn_balance import CLASS_NAMES, write_shard, write_split

from galmorph.cnn.balance import BalanceSettings, build_balanced_set
from galmorph.cnn.shards import ShardIndex
from galmorph.errors import InputDataError

tf = require_module("tensorflow")

from galmorph.cnn import data, models, predict, train  # noqa: E402
from galmorph.cnn.evaluate import (  # noqa: E402
    compute_metrics,
    evaluate_on_shards,
    predict_batches,
)

REPO = Path(__file__).resolve().parents[1]
SETTINGS = train.TrainSettings(
    architecture="study",
    crop=48,
    input_size=40,
    epochs=2,
    batch_size=8,
    validation_fraction=0.25,
    early_stopping_patience=1,
    reduce_lr_patience=1,
    seed=7,
)
TRAIN_COUNTS = {"elliptical": 14, "edge_on": 8, "spiral_acw": 4, "spiral_cw": 3, "merger": 2}
TEST_COUNTS = {"elliptical": 4, "edge_on": 3, "spiral_cw": 2, "dont_know": 2}


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    train.configure_threads(2)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hdf5")
    train_paths = write_split(folder, "train", TRAIN_COUNTS)
    test_paths = write_split(folder, "test", TEST_COUNTS, skip=30, n_shards=1)
    return train_paths, test_paths


@pytest.fixture(scope="module")
def unbalanced(splits, tmp_path_factory):
    index = ShardIndex.from_paths(splits[0])
    result = train.train_model(
        index, train.TrainSettings(**{**vars(SETTINGS), "class_weights": True})
    )
    folder = tmp_path_factory.mktemp("unbalanced")
    train.save(result, folder / "model.keras", folder / "history.csv")
    return folder, result


# ----------------------------------------------------------------------------- pipeline


def test_pipeline_streams_every_row_cropped_resized_and_scaled(splits):
    index = ShardIndex.from_paths(splits[0])
    dataset = data.make_dataset(index, crop=48, input_size=40, batch_size=8, shuffle=True, seed=1)
    batches = list(dataset)
    images = np.concatenate([np.asarray(b[0]) for b in batches])
    labels = np.concatenate([np.asarray(b[1]) for b in batches])
    assert images.shape == (len(index), 40, 40, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.2
    assert sorted(labels) == sorted(index.labels)
    assert [len(b[1]) for b in batches] == [8, 8, 8, 7]


def test_pipeline_order_is_seeded_and_changes_every_epoch(splits):
    index = ShardIndex.from_paths(splits[0])

    def epochs(seed, n=2):
        dataset = data.make_dataset(
            index, crop=48, input_size=40, batch_size=64, shuffle=True, seed=seed
        )
        return [np.asarray(next(iter(dataset))[0]).sum(axis=(1, 2, 3)) for _ in range(n)]

    first, second = epochs(3)
    again_first, again_second = epochs(3)
    np.testing.assert_allclose(first, again_first)
    np.testing.assert_allclose(second, again_second)
    assert not np.allclose(first, second)
    unshuffled = data.make_dataset(index, crop=48, input_size=40, batch_size=64)
    np.testing.assert_array_equal(np.asarray(next(iter(unshuffled))[1]), index.labels)


def test_cached_pipeline_gives_the_same_batches(splits, tmp_path):
    index = ShardIndex.from_paths(splits[0])
    options = dict(crop=48, input_size=40, batch_size=64, shuffle=True, seed=2)
    plain = data.make_dataset(index, **options)
    cached = data.make_dataset(index, cache_dir=tmp_path, **options)
    for _ in range(2):  # without views; tests/test_cnn_augment.py checks them
        expected, got = next(iter(plain)), next(iter(cached))
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(expected[0]))
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(expected[1]))
    assert len(list(tmp_path.glob("regions-*.npy"))) == 1


def test_pipeline_crops_the_centre(tmp_path):
    # a bright frame outside the central 16 pixels, a dark square inside
    images = np.full((2, 32, 32, 3), 255, np.uint8)
    images[:, 8:24, 8:24] = 10
    path = write_shard(tmp_path / "frame.h5", images, [0, 1], [1, 2], "train")
    batch = next(
        iter(data.make_dataset(ShardIndex.from_paths([path]), crop=16, input_size=16, batch_size=2))
    )
    np.testing.assert_allclose(np.asarray(batch[0]), 10 / 255, rtol=1e-6)


# ----------------------------------------------------------------------------- models


def test_study_architecture_is_the_studys():
    model = models.build_model("study", 174, 12)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D",
        "Flatten", "Dense", "Dropout", "Dense",
    ]  # fmt: skip
    conv = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [(c.filters, c.kernel_size) for c in conv] == [(64, (6, 6)), (64, (3, 3)), (32, (3, 3))]
    assert model.get_layer("pool1").pool_size == (3, 3)
    assert model.get_layer("dropout").rate == 0.5
    assert model.output_shape == (None, 12)


def test_deeper_takes_small_inputs_and_study_names_the_limit():
    assert models.build_model("deeper", 16, 3).output_shape == (None, 3)
    with pytest.raises(InputDataError, match="cnn.input_size is 32.*at least 38"):
        models.build_model("study", 32, 12)
    with pytest.raises(InputDataError, match="choose one of"):
        models.build_model("vgg", 64, 12)


# ----------------------------------------------------------------------------- training


def test_validation_split_keeps_groups_whole():
    labels = np.repeat([0, 1], 20)
    groups = np.repeat(np.arange(10), 4)
    fit, val = train.validation_split(labels, groups, 0.2, seed=0)
    assert not set(groups[fit]) & set(groups[val])
    assert len(set(groups[val])) == 2 and len(fit) + len(val) == 40
    with pytest.raises(InputDataError, match="too few"):
        train.validation_split(np.zeros(3, int), np.zeros(3, int), 0.2, seed=0)


def test_class_weights_are_inverse_frequency():
    weights = train.class_weight_map(np.array([0, 0, 0, 1]), 3)
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0), 2: 1.0}


def test_logit_adjusted_loss_is_cross_entropy_of_the_shifted_logits():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    labels = np.array([1, 2])
    offset = models.logit_offset([70, 20, 0], tau=1.0)  # an absent class counts as one
    np.testing.assert_allclose(offset, np.log(np.array([70, 20, 1]) / 91), rtol=1e-12)
    assert models.logit_offset([70, 20, 10], tau=0.0) is None
    shifted = np.log(proba) + np.asarray(offset)
    expected = -(shifted - np.log(np.exp(shifted).sum(1, keepdims=True)))[[0, 1], labels].mean()
    adjusted = models.SmoothedSparseCrossEntropy(0.0, offset)
    assert float(adjusted(labels, proba)) == pytest.approx(expected, rel=1e-5)
    plain = models.SmoothedSparseCrossEntropy(0.0)
    assert float(plain(labels, proba)) == pytest.approx(-np.log([0.2, 0.6]).mean(), rel=1e-5)
    again = models.SmoothedSparseCrossEntropy.from_config(adjusted.get_config())
    assert float(again(labels, proba)) == pytest.approx(expected, rel=1e-5)


def test_logit_adjustment_trains_the_softmax_free_of_the_prior():
    """A network that sees no pixels learns the class mix: with the logit-adjusted loss
    (tau 1) its softmax stays flat, with plain cross-entropy it is the prior."""
    labels = np.tile(np.repeat([0, 1, 2], [70, 20, 10]), 40)  # 40 steps per epoch
    inputs = np.zeros((labels.size, 1), np.float32)
    learnt = {}
    for tau in (0.0, 1.0):
        keras = tf.keras
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(3, activation="softmax")])
        offset = models.logit_offset(np.bincount(labels), tau)
        model.compile(keras.optimizers.SGD(1.0), models.SmoothedSparseCrossEntropy(0.0, offset))
        model.fit(inputs, labels, batch_size=100, epochs=20, verbose=0)
        learnt[tau] = np.asarray(model(inputs[:1]))[0]
    np.testing.assert_allclose(learnt[0.0], [0.7, 0.2, 0.1], atol=0.02)
    np.testing.assert_allclose(learnt[1.0], [1 / 3] * 3, atol=0.02)


def test_logit_adjustment_and_class_weights_are_not_combined():
    with pytest.raises(InputDataError, match="both favour the rare classes"):
        train.TrainSettings(class_weights="sqrt", logit_adjustment=1.0)
    with pytest.raises(InputDataError, match=r"logit_adjustment is -1.0"):
        train.TrainSettings(logit_adjustment=-1)


def test_a_logit_adjusted_network_saves_its_offset_and_loads(splits, tmp_path):
    index = ShardIndex.from_paths(splits[0])
    settings = train.TrainSettings(**{**vars(SETTINGS), "epochs": 1, "logit_adjustment": 1.0})
    result = train.train_model(index, settings)
    train.save(result, tmp_path / "model.keras", tmp_path / "history.csv")
    model, meta = train.load(tmp_path / "model.keras")
    fit = train.validation_split(index.labels, index.groups, 0.25, seed=7)[0]
    counts = np.bincount(index.labels[fit], minlength=index.n_classes)
    np.testing.assert_allclose(meta["logit_offset"], models.logit_offset(counts, 1.0))
    assert model.loss.logit_offset == pytest.approx(meta["logit_offset"])


def test_unbalanced_run_saves_model_history_and_metadata(unbalanced, splits):
    folder, result = unbalanced
    history = pd.read_csv(folder / "history.csv")
    assert history.columns[:1].tolist() == ["epoch"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.columns)
    assert 1 <= len(history) <= 2
    meta = json.loads((folder / "model.json").read_text())
    assert meta["class_names"] == list(CLASS_NAMES)
    assert meta["crop"] == 48 and meta["input_size"] == 40 and meta["image_size"] == 64
    assert meta["n_train"] + meta["n_validation"] == sum(TRAIN_COUNTS.values())
    assert meta["class_weight_values"]["3"] > meta["class_weight_values"]["0"]
    model, _ = train.load(folder / "model.keras")
    test_index = ShardIndex.from_paths(splits[1])
    dataset = data.make_dataset(test_index, crop=48, input_size=40, batch_size=8)
    saved = np.asarray(model.predict(dataset, verbose=0))
    fresh = np.asarray(result.model.predict(dataset, verbose=0))
    np.testing.assert_allclose(saved, fresh, rtol=1e-5, atol=1e-6)


def test_metrics_agree_with_keras_on_the_test_split(unbalanced, splits):
    _, result = unbalanced
    test_index = ShardIndex.from_paths(splits[1])
    dataset = data.make_dataset(test_index, crop=48, input_size=40, batch_size=8)
    y_true, proba, wrong = predict_batches(result.model, dataset, keep_misclassified=4)
    np.testing.assert_array_equal(y_true, test_index.labels)
    metrics = compute_metrics(y_true, proba, test_index.class_names)
    loss, accuracy = result.model.evaluate(dataset, verbose=0)
    assert metrics["loss"] == pytest.approx(loss, rel=1e-4)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert metrics["per_class"]["merger"]["roc_auc"] is None  # absent from the test split
    assert len(wrong) == min(4, round((1 - accuracy) * len(y_true)))


def test_evaluation_writes_every_report_file(unbalanced, splits, tmp_path):
    folder, result = unbalanced
    model, meta = train.load(folder / "model.keras")
    names = ("metrics.json", "per_class.csv", "predictions.csv")
    names += ("confusion.png", "roc.png", "misclassified.png", "calibration.png", "saliency.png")
    names += ("per_class_figure.png",)
    outputs = {name.split(".")[0]: tmp_path / name for name in names}
    metrics = evaluate_on_shards(model, meta, splits[1], outputs, batch_size=4, n_misclassified=3)
    assert json.loads(outputs["metrics"].read_text())["accuracy"] == metrics["accuracy"]
    table = pd.read_csv(outputs["predictions"])
    assert table["asset_id"].tolist() == ShardIndex.from_paths(splits[1]).asset_id.tolist()
    assert (table["class"] == table["predicted_class"]).mean() == pytest.approx(metrics["accuracy"])
    assert pd.read_csv(outputs["per_class"])["class"].tolist() == list(CLASS_NAMES)
    for name, path in outputs.items():
        if path.suffix == ".png":
            assert path.stat().st_size > 1000, name
    assert {"balanced_accuracy", "top2_accuracy", "ece"} <= set(metrics)
    assert metrics["top2_accuracy"] >= metrics["accuracy"]
    renamed = {**meta, "class_names": [*CLASS_NAMES[:-1], "other"]}
    with pytest.raises(InputDataError, match="differ from the model"):
        evaluate_on_shards(model, renamed, splits[1], outputs)


def test_balanced_run_never_opens_a_test_shard(splits, tmp_path, monkeypatch):
    train_paths, test_paths = splits
    opened = spy_on_h5_opens(monkeypatch)
    balanced = tmp_path / "train_balanced.h5"
    build_balanced_set(
        train_paths, balanced, BalanceSettings(per_class=6, crop=48, drop_empty_classes=True)
    )
    index = ShardIndex.from_paths([balanced])
    result = train.train_model(index, train.TrainSettings(**{**vars(SETTINGS), "epochs": 1}))
    train.save(result, tmp_path / "model.keras", tmp_path / "history.csv")
    assert opened, "the spy saw no file"
    assert not {Path(p).resolve() for p in test_paths} & set(opened)
    allowed = {Path(p).resolve() for p in train_paths} | {balanced.resolve()}
    # the balanced file is written under a temporary name first
    assert {p for p in opened if not p.name.startswith(".train_balanced.h5.tmp-")} <= allowed
    # the validation set holds no rotated twin of a training image
    assert result.metadata["n_train"] + result.metadata["n_validation"] == len(index)
    assert result.metadata["image_size"] == 64  # the balanced set stores crops of 64-pixel images
    assert np.bincount(index.labels, minlength=6).tolist() == [6, 6, 6, 6, 6, 0]


def test_training_refuses_the_test_split(splits):
    with pytest.raises(InputDataError, match="test split"):
        train.train_model(ShardIndex.from_paths(splits[1]), SETTINGS)
    with pytest.raises(InputDataError, match="test split"):
        train.cross_validate(ShardIndex.from_paths(splits[1]), SETTINGS, 2)


def test_training_is_reproducible_with_a_seed(splits):
    index = ShardIndex.from_paths(splits[0])
    settings = train.TrainSettings(
        **{**vars(SETTINGS), "epochs": 1, "architecture": "deeper", "input_size": 16}
    )
    first = train.train_model(index, settings).history
    second = train.train_model(index, settings).history
    pd.testing.assert_frame_equal(first, second)


def test_kfold_reports_every_fold_and_the_spread(splits):
    index = ShardIndex.from_paths(splits[0])
    settings = train.TrainSettings(**{**vars(SETTINGS), "epochs": 1})
    folds = train.cross_validate(index, settings, 2)
    assert folds["fold"].tolist() == [1, 2]
    assert folds["n_held_out"].sum() == len(index)
    summary = train.summarize_folds(folds)
    accuracy = summary.set_index("metric").loc["accuracy"]
    assert accuracy["mean"] == pytest.approx(folds["accuracy"].mean())
    assert accuracy["std"] == pytest.approx(folds["accuracy"].std(ddof=1))
    with pytest.raises(InputDataError, match="cnn.kfold is 1"):
        train.cross_validate(index, settings, 1)


# ----------------------------------------------------------------------------- prediction


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jpegs")
    labels = pd.read_csv(require_shared(GZ1) / "labels.csv").sort_values("dr7objid")
    for objid in labels["dr7objid"].iloc[:5]:
        (folder / f"{objid}.jpg").write_bytes((GZ1 / "images" / f"{objid}.jpeg").read_bytes())
    (folder / "truncated.jpg").write_bytes((GZ1 / "images" / f"{objid}.jpeg").read_bytes()[:300])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_folder_reports_the_corrupt_file(unbalanced, jpeg_folder, tmp_path):
    folder, _ = unbalanced
    out = tmp_path / "predictions.csv"
    predictions, failures = predict.predict_folder(
        folder / "model.keras", jpeg_folder, out, batch_size=2
    )
    written = pd.read_csv(out)
    assert len(written) == 5 and "truncated" not in written["id"].astype(str).tolist()
    assert written.columns.tolist() == [
        "id", "predicted_class", "probability", *[f"p_{name}" for name in CLASS_NAMES]
    ]  # fmt: skip
    probabilities = written[[f"p_{name}" for name in CLASS_NAMES]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert set(written["predicted_class"]) <= set(CLASS_NAMES)
    bad = pd.read_csv(predict.failures_path(out))
    assert bad["file"].tolist() == ["truncated.jpg"]
    assert bad["reason"][0].startswith("not a readable image (")


def test_predict_command_line(unbalanced, jpeg_folder, tmp_path):
    folder, _ = unbalanced
    out = tmp_path / "cli.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "galmorph.cnn.predict", "--model", str(folder / "model.keras")]
    done = subprocess.run(
        [*command, "--folder", str(jpeg_folder), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "5 image(s) classified" in done.stdout and "1 skipped" in done.stdout
    assert len(pd.read_csv(out)) == 5
    missing = subprocess.run(
        [*command, "--folder", str(tmp_path / "nowhere"), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert missing.returncode == 1 and "no such folder" in missing.stderr
