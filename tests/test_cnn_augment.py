"""Online augmentation, mirror pairs, test-time augmentation and the resnet preset, on
synthetic spirals whose winding is known: labels stay right under every view."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module
from test_cnn_balance import write_shard
from test_morphometry import blob_image, spiral_image

from galmorph.cnn.balance import BalanceSettings, plan_balanced_set
from galmorph.cnn.shards import ShardIndex
from galmorph.errors import InputDataError
from galmorph.reduction import morphometry

tf = require_module("tensorflow")

from galmorph.cnn import data, models, train  # noqa: E402
from galmorph.cnn.evaluate import compute_metrics, predict_index, tta_views  # noqa: E402

NAMES = ("elliptical", "spiral_cw", "spiral_acw")
PAIRS = (("spiral_cw", "spiral_acw"),)
SIZE = 96


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    train.configure_threads(2)


def sense_of(label: int) -> int:
    """The synthetic spiral's sense for each class (elliptical: none)."""
    return {1: 1, 2: -1}.get(label, 0)


def toy_images(n_per_class: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(3):
        for _ in range(n_per_class):
            if label == 0:
                image = blob_image(SIZE, q=rng.uniform(0.4, 1.0), angle=rng.uniform(0, 180))
            else:
                image = spiral_image(SIZE, sense=sense_of(label), pitch_deg=rng.uniform(14, 28),
                                     phase=rng.uniform(0, 6.3), noise=0.02,
                                     seed=int(rng.integers(1 << 30)))  # fmt: skip
            images.append(image)
            labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def toy_shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    images, labels = toy_images(24, seed=1)
    train_path = write_shard(folder / "train.h5", images, labels, np.arange(len(labels)), "train",
                             class_names=NAMES)  # fmt: skip
    images, labels = toy_images(8, seed=2)
    test_path = write_shard(folder / "test.h5", images, labels, 1000 + np.arange(len(labels)),
                            "test", class_names=NAMES)  # fmt: skip
    return train_path, test_path


def test_every_view_keeps_the_label_right(toy_shards):
    """Render each augmented view at native resolution and measure its winding: a turned
    spiral keeps its sense and its label; a mirrored one reverses both."""
    index = ShardIndex.from_paths([toy_shards[0]])
    mirror = data.mirror_map(NAMES, PAIRS)
    features = data.index_measures(index, (SIZE,))
    augment = data.Augmentation(max_zoom=0.05, max_shift=0.0, brightness=0, contrast=0, noise=0)
    dataset = data.make_dataset(
        index, crop=SIZE, input_size=SIZE, batch_size=16, shuffle=True, seed=5, augment=augment,
        features=features, mirror=mirror,
    )  # fmt: skip
    spirals = 0
    for epoch in range(2):
        for inputs, labels in dataset:
            pixels = (np.asarray(inputs["image"]) * 255).astype(np.uint8)
            given = np.asarray(inputs["measures"])
            for image, label, measured in zip(pixels, np.asarray(labels), given, strict=True):
                if label == 0:
                    continue
                sign = np.sign(morphometry.winding_features(image)[1::2].sum())
                # sense +1 measures negative (test_morphometry); the label must follow the pixels
                assert sign == -sense_of(int(label))
                # and the winding input the model is given agrees with the pixels too
                assert np.sign(measured[morphometry.MIRROR_PARITY < 0].sum()) == sign
                spirals += 1
        # the views of this epoch: about half mirrored, angles of every kind
        views = augment.draw(len(index), np.random.default_rng([5, epoch, 1]))
        assert 0.3 < views[:, 1].mean() < 0.7
        assert np.any(views[:, 0] % 90 != 0) and np.any(views[:, 0] % 90 == 0)
    assert spirals == 2 * 48


def test_views_change_every_epoch_and_repeat_with_the_seed(toy_shards):
    index = ShardIndex.from_paths([toy_shards[0]])
    mirror = data.mirror_map(NAMES, PAIRS)
    options = dict(crop=64, input_size=32, batch_size=72, shuffle=True, augment=data.Augmentation(),
                   mirror=mirror)  # fmt: skip

    def two_epochs(seed):
        dataset = data.make_dataset(index, seed=seed, **options)
        return [np.asarray(next(iter(dataset))[0]) for _ in range(2)]

    first, second = two_epochs(3)
    again = two_epochs(3)
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])
    assert not np.allclose(first, second)


def test_the_region_cache_gives_the_same_pixels_and_reads_no_shard_in_the_epochs(
    toy_shards, tmp_path, monkeypatch
):
    """Training with the presized region cache sees, to the bit, what it sees without it."""
    import h5py

    index = ShardIndex.from_paths([toy_shards[0]])
    options = dict(crop=64, input_size=32, batch_size=20, shuffle=True, seed=4,
                   augment=data.Augmentation(), mirror=data.mirror_map(NAMES, PAIRS),
                   features=data.index_measures(index, (SIZE,)))  # fmt: skip
    direct = data.make_dataset(index, **options)
    expected = [list(direct) for _ in range(2)]  # two epochs, two different sets of views
    cached = data.make_dataset(index, cache_dir=tmp_path, **options)
    cache_files = list(tmp_path.glob("regions-*.npy"))
    side = data.presized_side(data.Augmentation().region(64), 64, 32)
    assert len(cache_files) == 1
    assert np.load(cache_files[0], mmap_mode="r").shape == (len(index), side, side, 3)
    opened = []
    real_file = h5py.File
    monkeypatch.setattr(h5py, "File", lambda *a, **k: opened.append(a[0]) or real_file(*a, **k))
    for epoch in expected:
        got = list(cached)
        for (inputs, labels), (want, want_labels) in zip(got, epoch, strict=True):
            np.testing.assert_array_equal(np.asarray(inputs["image"]), np.asarray(want["image"]))
            np.testing.assert_array_equal(inputs["measures"], want["measures"])
            np.testing.assert_array_equal(labels, want_labels)
    assert not opened, "the cache was filled when made: an epoch reads no shard"
    assert not np.array_equal(expected[0][0][0]["image"], expected[1][0][0]["image"])


def test_identity_view_equals_the_antialiased_central_crop(toy_shards):
    index = ShardIndex.from_paths([toy_shards[0]])
    dataset = data.make_dataset(index, crop=64, input_size=32, batch_size=4)
    got = np.asarray(next(iter(dataset))[0])
    stored = index.read_images([0, 1, 2, 3], crop=64).astype(np.float32) / 255
    expected = tf.image.resize(stored, (32, 32), antialias=True).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_quarter_turn_and_mirror_views_are_exact():
    image = np.random.default_rng(0).integers(0, 255, (2, 24, 24, 3)).astype(np.uint8)
    pixels = image / 255.0
    turned = np.asarray(data.to_model_input(image, 24, view=(90.0, False)))
    np.testing.assert_allclose(turned, np.rot90(pixels, -1, axes=(1, 2)), atol=1e-5)
    mirrored = np.asarray(data.to_model_input(image, 24, view=(0.0, True)))
    np.testing.assert_allclose(mirrored, pixels[:, :, ::-1], atol=1e-6)


def test_mirrors_without_a_declared_pair_are_refused(toy_shards):
    index = ShardIndex.from_paths([toy_shards[0]])
    settings = train.TrainSettings(architecture="resnet", crop=64, input_size=32, epochs=1,
                                   augment={"mirror": True}, mirror_pairs=())  # fmt: skip
    with pytest.raises(InputDataError, match="spiral_cw, spiral_acw have a winding"):
        train.train_model(index, settings)
    with pytest.raises(InputDataError, match="cnn.mirror_pairs names 'spiral'"):
        data.mirror_map(NAMES, [("spiral", "spiral_acw")])
    with pytest.raises(InputDataError, match="flips is on"):
        plan_balanced_set(np.array([0, 1, 2]), NAMES, BalanceSettings(per_class=3, flips=True))


def test_balanced_flips_fill_a_winding_class_with_its_mirrored_partner():
    labels = np.array([0] * 10 + [1] * 8 + [2] * 2)
    settings = BalanceSettings(per_class=10, flips=True, mirror_pairs=PAIRS, seed=4)
    plan, _ = plan_balanced_set(labels, NAMES, settings)
    for label in range(len(NAMES)):
        rows = plan[plan["label"] == label]
        assert len(rows) == 10
        sources = labels[rows["source_index"].to_numpy()]
        # a copy of another class is a mirror of the partner, relabelled; own copies unmirrored
        partner = {1: 2, 2: 1}.get(label, label)
        assert set(sources) <= {label, partner}
        np.testing.assert_array_equal(rows["flip"].to_numpy(), sources != label)
    acw = plan[plan["label"] == 2]
    assert (labels[acw["source_index"]] == 1).sum() > 0  # the rare class gained mirrored cw


def test_test_time_augmentation_of_a_rotation_invariant_input_equals_one_pass(tmp_path):
    y, x = np.mgrid[0:32, 0:32] - 15.5
    disc = np.repeat((200 * np.exp(-np.hypot(x, y) / 5))[..., None], 3, axis=2).astype(np.uint8)
    images = np.stack([disc, (disc * 0.5).astype(np.uint8)])
    path = write_shard(tmp_path / "test.h5", images, [0, 0], [1, 2], "test", class_names=NAMES)
    index = ShardIndex.from_paths([path])
    model = models.build_model("resnet", 32, 3, n_features=morphometry.N_FEATURES)
    meta = {"class_names": list(NAMES), "crop": 32, "input_size": 32, "measure_crop": 32,
            "mirror_pairs": []}  # fmt: skip
    _, one, _ = predict_index(model, index, meta, views=tta_views(1, False))
    _, many, _ = predict_index(model, index, meta, views=tta_views(4, True))
    np.testing.assert_allclose(many, one, rtol=1e-4, atol=1e-6)
    assert len(tta_views(4, True)) == 8


@pytest.fixture(scope="module")
def toy_model(toy_shards):
    index = ShardIndex.from_paths([toy_shards[0]])
    settings = train.TrainSettings(
        architecture="resnet", crop=80, input_size=32, epochs=12, batch_size=16,
        learning_rate=3.0e-3, validation_fraction=0.2, class_weights="sqrt",
        early_stopping_patience=12, selection_metric="macro_f1", measure_crop=SIZE,
        measure_scales=(0.5, 1.0), augment={"max_zoom": 0.05, "noise": 0.01},
        mirror_pairs=PAIRS, seed=3,
    )  # fmt: skip
    return train.train_model(index, settings)


def test_resnet_with_measures_learns_the_toy_set_and_tells_the_senses_apart(toy_model, toy_shards):
    result = toy_model
    assert {"val_macro_f1", "val_balanced_accuracy"} <= set(result.history.columns)
    assert result.metadata["n_features"] == 2 * morphometry.N_FEATURES  # two crops
    assert result.metadata["class_counts"] == [24, 24, 24]
    assert result.metadata["split_class_counts"] == [24, 24, 24]  # not a balanced set
    test = ShardIndex.from_paths([toy_shards[1]])
    y_true, proba, _ = predict_index(result.model, test, result.metadata, 16, tta_views(4, True))
    metrics = compute_metrics(y_true, proba, NAMES, PAIRS)
    assert metrics["accuracy"] >= 0.8, metrics  # chance: 1/3
    assert metrics["chirality_accuracy"] >= 0.8, metrics  # chance: 1/2


def test_predicting_a_folder_gives_the_evaluations_probabilities(toy_model, tmp_path):
    """A folder of JPEGs goes through the same crop, measures and test-time views as a
    shard: the same galaxies get the same probabilities either way."""
    from PIL import Image

    from galmorph.cnn import predict
    from galmorph.images import imaging

    images, labels = toy_images(3, seed=9)
    folder = tmp_path / "jpegs"
    folder.mkdir()
    decoded = []
    for number, image in enumerate(images):
        path = folder / f"{number:03d}.jpg"
        Image.fromarray(image).save(path, quality=95)
        decoded.append(imaging.load_image(path, SIZE, "resize"))
    shard = write_shard(tmp_path / "test.h5", np.stack(decoded), labels, np.arange(len(labels)),
                        "test", class_names=NAMES)  # fmt: skip
    train.save(toy_model, tmp_path / "model.keras", tmp_path / "history.csv")
    _, expected, _ = predict_index(toy_model.model, ShardIndex.from_paths([shard]),
                                   toy_model.metadata, 4, tta_views(4, True))  # fmt: skip
    table, failures = predict.predict_folder(tmp_path / "model.keras", folder,
                                             tmp_path / "out.csv", batch_size=4,
                                             tta_rotations=4, tta_mirror=True)  # fmt: skip
    assert failures.empty and table["id"].tolist() == [f"{n:03d}" for n in range(len(labels))]
    got = table[[f"p_{name}" for name in NAMES]].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # the decision shifted towards the training prior, the same way in both
    _, shifted, _ = predict_index(toy_model.model, ShardIndex.from_paths([shard]),
                                  toy_model.metadata, 4, prior_shift=0.3)  # fmt: skip
    table, _ = predict.predict_folder(tmp_path / "model.keras", folder, tmp_path / "out.csv",
                                      batch_size=4, prior_shift=0.3)  # fmt: skip
    np.testing.assert_allclose(table[[f"p_{name}" for name in NAMES]].to_numpy(), shifted,
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_the_prior_shift_moves_decisions_towards_the_frequent_classes():
    from galmorph.cnn.evaluate import shift_to_prior

    proba = np.array([[0.4, 0.6], [0.7, 0.3], [0.5, 0.5]])
    meta = {"split_class_counts": [900, 100], "class_counts": [400, 400]}
    assert shift_to_prior(proba, meta, 0.0) is proba
    shifted = shift_to_prior(proba, meta, 0.5)
    np.testing.assert_allclose(shifted.sum(axis=1), 1.0)
    # odds times sqrt(9) = 3 for the frequent class
    np.testing.assert_allclose(shifted[:, 0] / shifted[:, 1], 3 * proba[:, 0] / proba[:, 1])
    assert shifted.argmax(axis=1).tolist() == [0, 0, 0]
    np.testing.assert_allclose(shift_to_prior(proba, {"split_class_counts": [5, 5]}, 1.0), proba)
    # a model of an earlier release (no split counts) is refused, not silently left unshifted
    with pytest.raises(InputDataError, match="split_class_counts"):
        shift_to_prior(proba, {"class_counts": [400, 400]}, 0.2)


def test_measure_scales_outside_zero_to_one_are_refused():
    for scales in ((), (0.0,), (1.5,), (0.5, -1.0)):
        with pytest.raises(InputDataError, match="cnn.measure_scales"):
            train.TrainSettings(measure_scales=scales)
    assert train.TrainSettings(measure_crop=120, measure_scales=[1, 0.5]).measure_crops() == (
        60,
        120,
    )
