"""CNN training checkpoints: a resumed run equals an uninterrupted one; stale ones are ignored.

In-process and tiny (real SDSS galaxies, 48-pixel crops fed at 40): the
interruption is a run with fewer epochs, which leaves the same checkpoint a
killed run leaves after that epoch. The workflow-level SIGKILL of a training
job is in test_interruptions.py.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import require_module
from test_cnn_balance import write_split

from galmorph.cnn.shards import ShardIndex

require_module("tensorflow")

from galmorph.cnn import train  # noqa: E402

SETTINGS = train.TrainSettings(
    architecture="study",
    crop=48,
    input_size=40,
    epochs=3,
    batch_size=8,
    validation_fraction=0.25,
    early_stopping_patience=3,
    reduce_lr_patience=1,  # the learning rate changes midway: its state must survive
    seed=5,
)
COUNTS = {"elliptical": 10, "edge_on": 6, "spiral_acw": 4, "spiral_cw": 4}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    train.configure_threads(2)
    return ShardIndex.from_paths(write_split(tmp_path_factory.mktemp("hdf5"), "train", COUNTS))


@pytest.fixture(scope="module")
def uninterrupted(index, tmp_path_factory):
    return train.train_model(
        index, SETTINGS, cache_crops=False, checkpoint_dir=tmp_path_factory.mktemp("ckpt")
    )


def assert_same_training(result, reference):
    for mine, theirs in zip(result.model.get_weights(), reference.model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert result.history.to_dict("list") == reference.history.to_dict("list")


def test_resumed_training_repeats_the_uninterrupted_run(index, uninterrupted, tmp_path):
    folder = tmp_path / "checkpoint"
    first = train.train_model(index, replace(SETTINGS, epochs=1), checkpoint_dir=folder)
    state = json.loads((folder / "state.json").read_text())
    assert state["epoch"] == 1 and len(first.history) == 1
    # Only the files of the last complete epoch stay.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        name for name in ("state.json", state["weights"], state["best_weights"]) if name
    )

    resumed = train.train_model(index, SETTINGS, cache_crops=False, checkpoint_dir=folder)
    assert list(resumed.history["epoch"]) == [1, 2, 3]
    assert_same_training(resumed, uninterrupted)
    assert json.loads((folder / "state.json").read_text())["epoch"] == 3


def test_finished_checkpoint_gives_the_final_model_without_training(
    index, uninterrupted, tmp_path, caplog
):
    # A kill after the last epoch's checkpoint but before the model file was written.
    folder = tmp_path / "checkpoint"
    train.train_model(index, SETTINGS, checkpoint_dir=folder)
    caplog.set_level("INFO")
    again = train.train_model(index, SETTINGS, checkpoint_dir=folder)
    assert "resuming from the checkpoint of epoch 3" in caplog.text
    assert_same_training(again, uninterrupted)


def test_checkpoint_of_other_settings_or_data_is_not_resumed(index, tmp_path, caplog):
    folder = tmp_path / "checkpoint"
    train.train_model(index, replace(SETTINGS, epochs=1), checkpoint_dir=folder)
    caplog.set_level("INFO")
    changed = replace(SETTINGS, epochs=2, learning_rate=5.0e-4)
    result = train.train_model(index, changed, checkpoint_dir=folder)
    assert "written for other settings or data" in caplog.text
    assert list(result.history["epoch"]) == [1, 2]  # trained from epoch 1 again
    caplog.clear()
    fewer_rows = index.subset(np.arange(len(index) - 2))
    train.train_model(fewer_rows, replace(changed, epochs=1), checkpoint_dir=folder)
    assert "written for other settings or data" in caplog.text


def test_unreadable_checkpoint_starts_afresh(index, tmp_path, caplog):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "state.json").write_text('{"key": "trunc')
    caplog.set_level("INFO")
    result = train.train_model(index, replace(SETTINGS, epochs=1), checkpoint_dir=folder)
    assert "unreadable, training starts from epoch 1" in caplog.text
    assert len(result.history) == 1


def test_config_check_knows_each_architectures_smallest_input():
    from galmorph.cnn import models
    from galmorph.config import CNN_MIN_INPUT_SIZE

    presets = models.ARCHITECTURES
    assert CNN_MIN_INPUT_SIZE == {name: models.min_input_size(name) for name in presets}
