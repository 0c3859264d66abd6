"""The balanced training set: counts, distinct synthetic images, no test leakage.

Shards are written in the design's HDF5 format from real SDSS galaxy images
(../shared/data/sdss_gz1_sample), shrunk to 64 pixels to stay fast.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import GZ1, require_shared
from PIL import Image

from galmorph.cnn.balance import (
    BalanceSettings,
    build_balanced_set,
    plan_balanced_set,
    transform_image,
)
from galmorph.cnn.shards import ShardIndex
from galmorph.errors import InputDataError

CLASS_NAMES = ("elliptical", "edge_on", "spiral_acw", "spiral_cw", "merger", "dont_know")
SIZE = 64


def real_galaxies(counts: dict[str, int], skip: int = 0, size: int = SIZE):
    """``counts[class]`` real galaxy images per class (after skipping ``skip`` of each)."""
    labels = pd.read_csv(require_shared(GZ1) / "labels.csv").sort_values("dr7objid")
    images, classes, ids = [], [], []
    for name, n in counts.items():
        rows = labels[labels["gz1_class"] == name].iloc[skip : skip + n]
        assert len(rows) == n, f"the shared sample has too few {name} images"
        for objid in rows["dr7objid"]:
            with Image.open(GZ1 / "images" / f"{objid}.jpeg") as image:
                images.append(np.asarray(image.convert("RGB").resize((size, size))))
            classes.append(CLASS_NAMES.index(name))
            ids.append(int(objid))
    return np.stack(images), np.array(classes), np.array(ids)


def write_shard(path, images, labels, asset_ids, split, shard=0, class_names=CLASS_NAMES):
    """One shard in the design's HDF5 format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset(
            "images", data=images, chunks=(1, *images.shape[1:]), compression="lzf"
        )
        handle["asset_id"] = np.asarray(asset_ids, dtype=np.int64)
        handle["dr7objid"] = np.asarray(asset_ids, dtype=np.int64) + 1
        handle["class"] = np.asarray(labels, dtype=np.int16)
        handle.attrs["class_names"] = list(class_names)
        handle.attrs["split"] = split
        handle.attrs["shard"] = shard
        handle.attrs["source"] = "sdss_gz1_sample"
    return path


def write_split(folder: Path, split: str, counts: dict[str, int], skip: int = 0, n_shards=2):
    images, labels, ids = real_galaxies(counts, skip)
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels, ids = images[order], labels[order], ids[order]
    bounds = np.linspace(0, len(labels), n_shards + 1).astype(int)
    return [
        write_shard(
            folder / split / f"shard_{shard:04d}.h5",
            images[start:stop],
            labels[start:stop],
            ids[start:stop],
            split,
            shard,
        )
        for shard, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]


TRAIN_COUNTS = {"elliptical": 12, "edge_on": 6, "spiral_acw": 3, "spiral_cw": 1, "dont_know": 2}
TEST_COUNTS = {"elliptical": 4, "edge_on": 3, "spiral_acw": 2, "merger": 2}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hdf5")
    train = write_split(folder, "train", TRAIN_COUNTS)
    test = write_split(folder, "test", TEST_COUNTS, skip=20, n_shards=1)
    return train, test


@pytest.fixture(scope="module")
def balanced(splits, tmp_path_factory):
    train, _ = splits
    out = tmp_path_factory.mktemp("balanced") / "train_balanced.h5"
    settings = BalanceSettings(per_class=8, drop_empty_classes=True, crop=48, seed=5)
    summary = build_balanced_set(train, out, settings)
    return out, summary


def read_all(path):
    with h5py.File(path, "r") as handle:
        return {key: handle[key][:] for key in handle} | {"attrs": dict(handle.attrs)}


def test_every_kept_class_has_exactly_per_class_images(balanced):
    path, summary = balanced
    data = read_all(path)
    counts = np.bincount(data["class"], minlength=len(CLASS_NAMES))
    # merger has no training image and is dropped; every other class has 8.
    assert counts.tolist() == [8, 8, 8, 8, 0, 8]
    assert list(data["attrs"]["dropped_classes"]) == ["merger"]
    by_class = summary.set_index("class")
    assert by_class.loc["elliptical", ["originals", "synthetic"]].tolist() == [8, 0]
    assert by_class.loc["edge_on", ["originals", "synthetic"]].tolist() == [6, 2]
    assert by_class.loc["spiral_cw", ["originals", "synthetic"]].tolist() == [1, 7]
    assert bool(by_class.loc["merger", "dropped"])


def test_the_balanced_set_remembers_the_split_it_was_drawn_from(balanced, splits):
    """The training split's own class mix and image size travel with the balanced set: the
    balanced variant's prior shift moves towards the real mix, not towards 8 of each."""
    from galmorph.cnn.shards import source_class_counts, source_image_size

    path, _ = balanced
    train, _ = splits
    split = ShardIndex.from_paths(train)
    expected = [TRAIN_COUNTS.get(name, 0) for name in CLASS_NAMES]
    assert split.class_counts().tolist() == expected
    balanced_index = ShardIndex.from_paths([path])
    assert source_class_counts(balanced_index).tolist() == expected
    assert balanced_index.class_counts().tolist() == [8, 8, 8, 8, 0, 8]
    assert source_image_size(path) == split.image_size != balanced_index.image_size


def test_majority_class_is_a_subset_of_distinct_originals(balanced, splits):
    path, _ = balanced
    data = read_all(path)
    elliptical = data["class"] == 0
    assert not data["synthetic"][elliptical].any()
    sources = data["source_index"][elliptical]
    assert np.unique(sources).size == 8
    train = ShardIndex.from_paths(splits[0])
    assert (train.labels[sources] == 0).all()


def test_synthetic_images_are_all_different(balanced, splits):
    path, _ = balanced
    data = read_all(path)
    images = data["images"].reshape(len(data["images"]), -1).astype(np.int16)
    synthetic = np.flatnonzero(data["synthetic"])
    assert synthetic.size == 0 + 2 + 5 + 7 + 6  # edge_on, spiral_acw, spiral_cw, dont_know
    for i in synthetic:
        # differs from every other image of the set, original or synthetic
        others = np.delete(np.arange(len(images)), i)
        assert np.abs(images[others] - images[i]).max(axis=1).min() > 0
    angles = data["angle"][synthetic]
    assert np.unique(angles).size == synthetic.size
    assert not np.allclose(np.mod(angles, 90), 0)
    assert np.abs(angles).max() <= 180
    assert not data["flip"].any(), "flips are off by default"


def test_sources_are_used_in_turn_before_any_repeats(balanced, splits):
    path, _ = balanced
    data = read_all(path)
    train = ShardIndex.from_paths(splits[0])
    for label, originals in ((1, 6), (2, 3), (5, 2)):
        rows = (data["class"] == label) & data["synthetic"]
        sources = data["source_index"][rows]
        uses = np.bincount(sources, minlength=len(train))[train.labels == label]
        # 8 - n synthetic copies spread over n sources: use counts differ by at most one
        assert uses.max() - uses.min() <= 1, (label, uses)
        assert uses.sum() == 8 - originals


def test_synthetic_pixels_are_the_recorded_transform_of_the_source(balanced, splits):
    path, _ = balanced
    data = read_all(path)
    train = ShardIndex.from_paths(splits[0])
    row = int(np.flatnonzero(data["synthetic"])[0])
    source = train.read_images([data["source_index"][row]])[0]
    expected = transform_image(
        source,
        float(data["angle"][row]),
        float(data["shift_x"][row]),
        float(data["shift_y"][row]),
        float(data["zoom"][row]),
        bool(data["flip"][row]),
    )[8:56, 8:56]
    np.testing.assert_array_equal(data["images"][row], expected)
    assert data["images"].shape[1:] == (48, 48, 3)


def test_no_test_image_reaches_the_balanced_set(balanced, splits):
    path, _ = balanced
    data = read_all(path)
    train_ids = ShardIndex.from_paths(splits[0]).asset_id
    test_ids = ShardIndex.from_paths(splits[1]).asset_id
    assert set(data["asset_id"]) <= set(train_ids)
    assert not set(data["asset_id"]) & set(test_ids)
    assert data["attrs"]["split"] == "train"
    assert [Path(p).name for p in data["attrs"]["balanced_from"]] == [
        "shard_0000.h5",
        "shard_0001.h5",
    ]


def test_balancing_refuses_the_test_split(splits, tmp_path):
    _, test = splits
    settings = BalanceSettings(per_class=4, drop_empty_classes=True, crop=48)
    with pytest.raises(InputDataError, match="test split"):
        build_balanced_set(test, tmp_path / "out.h5", settings)
    assert not list(tmp_path.iterdir()), "nothing half-written"


def test_an_empty_class_is_an_error_naming_it_unless_dropped():
    labels = np.array([0, 0, 1, 2, 2, 2])
    names = ("Er", "Ei", "Ec", "Sd")
    with pytest.raises(InputDataError, match="Sd.*drop_empty_classes"):
        plan_balanced_set(labels, names, BalanceSettings(per_class=3, drop_empty_classes=False))
    plan, dropped = plan_balanced_set(
        labels, names, BalanceSettings(per_class=3, drop_empty_classes=True)
    )
    assert dropped == ["Sd"]
    assert np.bincount(plan["label"], minlength=4).tolist() == [3, 3, 3, 0]


def test_plan_is_seeded():
    labels = np.repeat([0, 1, 2], [10, 3, 1])
    settings = BalanceSettings(per_class=6, seed=3)
    first, _ = plan_balanced_set(labels, ("a", "b", "c"), settings)
    again, _ = plan_balanced_set(labels, ("a", "b", "c"), settings)
    other, _ = plan_balanced_set(labels, ("a", "b", "c"), BalanceSettings(per_class=6, seed=4))
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_flips_when_asked():
    labels = np.repeat([0, 1], [1, 40])
    plan, _ = plan_balanced_set(labels, ("a", "b"), BalanceSettings(per_class=40, flips=True))
    flips = plan.loc[plan["synthetic"], "flip"]
    assert 0 < flips.sum() < len(flips)


def test_copies_of_one_source_keep_apart_in_angle():
    labels = np.zeros(1, dtype=int)
    plan, _ = plan_balanced_set(
        labels, ("a", "b"), BalanceSettings(per_class=50, drop_empty_classes=True)
    )
    angles = np.sort(plan.loc[plan["synthetic"], "angle"].to_numpy())
    assert angles.size == 49
    assert np.diff(angles).min() > 0.5  # gap min(1, 360 / 100) = 1 degree, minus float noise
    assert np.abs(angles).min() >= 1.0 - 1e-9  # never (nearly) the original


def test_identity_and_quarter_turn_transforms():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(transform_image(image, 0.0), image)
    # counter-clockwise as displayed; bilinear weights of cos(90 deg) ~ 6e-17 may round by 1
    quarter = transform_image(image, 90.0).astype(int)
    assert np.abs(quarter - np.rot90(image, 1)).max() <= 1
    assert np.abs(quarter - np.rot90(image, -1)).max() > 100
    np.testing.assert_array_equal(transform_image(image, 0.0, flip=True), image[:, ::-1])
    zoomed = transform_image(image, 0.0, zoom=2.0)
    assert not np.array_equal(zoomed, image)


def test_all_transforms_off_is_refused():
    with pytest.raises(InputDataError, match="max_rotation_deg"):
        BalanceSettings(per_class=4, max_rotation_deg=0, max_shift=0, max_zoom=0)


def test_bad_shards_are_named(tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not hdf5")
    with pytest.raises(InputDataError, match="broken.h5"):
        ShardIndex.from_paths([broken])
    with pytest.raises(InputDataError, match="missing.h5.*not found"):
        ShardIndex.from_paths([tmp_path / "missing.h5"])
    incomplete = tmp_path / "incomplete.h5"
    with h5py.File(incomplete, "w") as handle:
        handle["images"] = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(
        InputDataError, match=r"incomplete.h5: not an image shard \(missing \['asset_id'"
    ):
        ShardIndex.from_paths([incomplete])
