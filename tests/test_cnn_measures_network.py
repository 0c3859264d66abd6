"""The measures variant: dense networks on the measured morphology alone, voting."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import require_module
from test_cnn_balance import write_split

from galmorph.cnn import measures
from galmorph.cnn.settings import MeasuresNetworkSettings
from galmorph.cnn.shards import ShardIndex
from galmorph.errors import InputDataError

keras = require_module("keras")

from galmorph.cnn import train  # noqa: E402
from galmorph.cnn.ensemble import SHARED_KEYS, build_ensemble  # noqa: E402
from galmorph.cnn.measures_network import (  # noqa: E402
    ARCHITECTURE,
    fit_members,
    join_members,
    train_measures_model,
    with_mirrors,
)

KIND = "morphometry"
N_FEATURES = len(measures.feature_names(KIND))
#: the first winding measure of :mod:`galmorph.reduction.morphometry` (a mirror negates it)
WINDING = measures.feature_names(KIND).index("winding_0.06_0.25")
SMALL = MeasuresNetworkSettings(members=2, hidden=16, learning_rate=1.0e-2, max_epochs=60)


def settings(**changes) -> train.TrainSettings:
    base = dict(crop=48, input_size=40, measure_crop=48, measures=KIND, validation_fraction=0.2,
                augment={"mirror": True}, mirror_pairs=(("c", "d"),), seed=3)  # fmt: skip
    return train.TrainSettings(**(base | changes))


def rows(n: int, seed: int):
    """Measures whose class is plain to read: a class by the sign of two columns, the
    winding's sign telling the mirror pair c/d apart (as a spiral's sense does)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    features = rng.normal(0, 0.3, (n, N_FEATURES)).astype(np.float32)
    features[:, 0] += np.where(labels == 0, 2.0, np.where(labels == 1, -2.0, 0.0))
    features[:, WINDING] += np.where(labels == 2, 1.5, np.where(labels == 3, -1.5, 0.0))
    return features, labels


def test_mirrored_rows_negate_the_winding_and_swap_the_pair():
    features, labels = rows(10, 0)
    mirror = np.array([0, 1, 3, 2])
    both, both_labels = with_mirrors(features, labels, KIND, mirror, use=True)
    assert len(both) == 20
    np.testing.assert_array_equal(both[10:, WINDING], -features[:, WINDING])
    np.testing.assert_array_equal(both[10:, 0], features[:, 0])  # a shape measure is kept
    np.testing.assert_array_equal(both_labels[10:], mirror[labels])
    alone, alone_labels = with_mirrors(features, labels, KIND, mirror, use=False)
    assert alone is features and alone_labels is labels


def test_the_members_learn_and_the_model_reads_no_pixel(tmp_path):
    features, labels = rows(400, 1)
    mirror = np.array([0, 1, 3, 2])
    members, history, n_validation = fit_members(
        features, labels, np.arange(len(labels)), 4, settings(), SMALL, mirror
    )
    assert len(members) == 2 and n_validation == [80, 80]
    assert set(history["member"]) == {0, 1}
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history.columns)
    model = join_members(members, 40, N_FEATURES)
    test_features, test_labels = rows(200, 2)
    rng = np.random.default_rng(3)
    first = model.predict({"image": rng.random((200, 40, 40, 3)), "measures": test_features},
                          verbose=0)  # fmt: skip
    assert (first.argmax(axis=1) == test_labels).mean() > 0.9  # chance: 0.25
    other = model.predict({"image": np.zeros((200, 40, 40, 3)), "measures": test_features},
                          verbose=0)  # fmt: skip
    np.testing.assert_allclose(first, other, atol=1e-6)  # the pixels change nothing
    # the output is the members' mean
    each = [m.predict(test_features, verbose=0) for m in members]
    np.testing.assert_allclose(first, np.mean(each, axis=0), atol=1e-6)
    # saved and loaded like a CNN
    train.save_model(model, {"class_names": list("abcd")}, tmp_path / "network.keras")
    loaded, _ = train.load(tmp_path / "network.keras")
    again = loaded.predict({"image": np.zeros((200, 40, 40, 3)), "measures": test_features},
                           verbose=0)  # fmt: skip
    np.testing.assert_allclose(first, again, atol=1e-6)


def test_mirrored_training_treats_both_senses_alike():
    """Trained with mirrors, a galaxy's mirror image is called by the partner class."""
    features, labels = rows(400, 4)
    mirror = np.array([0, 1, 3, 2])
    members, _, _ = fit_members(
        features, labels, np.arange(len(labels)), 4, settings(), SMALL, mirror
    )
    model = join_members(members, 40, N_FEATURES)
    pair = labels >= 2
    image = np.zeros((pair.sum(), 40, 40, 3))
    flipped = model.predict(
        {"image": image, "measures": measures.mirror(features[pair], KIND)}, verbose=0
    ).argmax(axis=1)
    assert (flipped == mirror[labels[pair]]).mean() > 0.9


def test_trained_on_real_galaxies_it_joins_a_cnn_in_the_ensemble(tmp_path):
    paths = write_split(tmp_path, "train", {"elliptical": 12, "edge_on": 8, "spiral_cw": 5,
                                            "spiral_acw": 5})  # fmt: skip
    index = ShardIndex.from_paths(paths)
    run = settings(mirror_pairs=(("spiral_cw", "spiral_acw"),))
    result = train_measures_model(index, run, SMALL)
    meta = result.metadata
    assert meta["architecture"] == ARCHITECTURE and meta["measures_network"]["members"] == 2
    assert meta["n_features"] == N_FEATURES and len(meta["best_epoch"]) == 2
    assert meta["split_class_counts"] == index.class_counts().tolist()
    # a CNN of the same settings shares its inputs: the ensemble takes both
    cnn = train.train_model(
        index, replace(run, architecture="study", epochs=1, batch_size=8, augment=None)
    )
    model, ensemble_meta = build_ensemble(
        {"unbalanced": cnn.model, "measures": result.model},
        {"unbalanced": cnn.metadata, "measures": meta},
    )
    assert {key: ensemble_meta[key] for key in SHARED_KEYS} == {
        key: meta[key] for key in SHARED_KEYS
    }
    x = {"image": np.zeros((3, 40, 40, 3), np.float32),
         "measures": np.zeros((3, N_FEATURES), np.float32)}  # fmt: skip
    proba = np.asarray(model(x, training=False))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_nothing_to_measure_or_test_data_is_refused(tmp_path):
    paths = write_split(tmp_path, "train", {"elliptical": 4, "edge_on": 4})
    with pytest.raises(InputDataError, match="cnn.measure_crop"):
        train_measures_model(ShardIndex.from_paths(paths), settings(measure_crop=0), SMALL)
    tests = write_split(tmp_path, "test", {"elliptical": 4, "edge_on": 4}, n_shards=1)
    with pytest.raises(InputDataError, match="test"):
        train_measures_model(ShardIndex.from_paths(tests), settings(), SMALL)


@pytest.mark.parametrize(
    "key, value", [("members", 0), ("hidden", 2.5), ("patience", True), ("learning_rate", 0)]
)
def test_bad_network_settings_are_refused(key, value):
    with pytest.raises(InputDataError, match=f"cnn.measures_network.{key}"):
        MeasuresNetworkSettings(**{key: value})
