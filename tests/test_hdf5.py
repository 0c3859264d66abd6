"""HDF5 shards: contents equal the decoded JPEGs; the size policy; the batch reader."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galmorph.catalogue.classes import CLASS_NAMES
from galmorph.errors import InputDataError
from galmorph.images import hdf5
from galmorph.images.imaging import ImageFormatError, load_image


def galaxy(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth coloured blob on a noisy dark sky, uint8 (size, size, 3)."""
    yy, xx = np.mgrid[:size, :size] - size / 2
    centre = rng.normal(0, size / 20, 2)
    radius = rng.uniform(0.05, 0.2) * size
    blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * radius**2))
    image = blob[..., None] * rng.uniform(120, 255, 3) + rng.normal(10, 4, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_jpgs(folder, asset_ids, size, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for asset in asset_ids:
        Image.fromarray(galaxy(rng, size)).save(folder / f"{asset}.jpg", quality=90)
    return folder


def make_rows(asset_ids, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "dr7objid": [587_700_000_000_000_000 + int(a) for a in asset_ids],
            "asset_id": list(asset_ids),
            "class": rng.choice(CLASS_NAMES, len(asset_ids)),
        }
    )


def decoded(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def shard(tmp_path):
    """24 GZ2-sized JPEGs and their rows."""
    ids = list(range(1000, 1024))
    return write_jpgs(tmp_path / "jpg", ids, 424), make_rows(ids)


@pytest.mark.parametrize("compression", ["lzf", "gzip", "none"])
def test_shard_holds_exactly_the_decoded_jpegs(shard, tmp_path, compression):
    jpg_dir, rows = shard
    out = tmp_path / "shard_0000.h5"
    report = hdf5.convert_shard(
        jpg_dir,
        rows,
        out,
        class_names=CLASS_NAMES,
        compression=compression,
        gzip_level=3,
        attrs={"source": "demo:zip", "split": "train", "shard": 0},
        progress=False,
    )
    assert report.n_images == len(rows) and report.n_skipped == 0
    with h5py.File(out) as handle:
        images = handle["images"]
        assert images.dtype == np.uint8 and images.shape == (len(rows), 424, 424, 3)
        assert images.chunks == (1, 424, 424, 3)
        assert images.compression == (None if compression == "none" else compression)
        if compression == "gzip":
            assert images.compression_opts == 3
        for i, asset in enumerate(rows["asset_id"]):
            np.testing.assert_array_equal(images[i], decoded(jpg_dir / f"{asset}.jpg"))
        np.testing.assert_array_equal(handle["asset_id"][()], rows["asset_id"])
        np.testing.assert_array_equal(handle["dr7objid"][()], rows["dr7objid"])
        names = list(handle.attrs["class_names"])
        assert names == list(CLASS_NAMES)
        assert [names[i] for i in handle["class"][()]] == list(rows["class"])
        assert handle["class"].dtype == np.int16 and handle["asset_id"].dtype == np.int64
        attrs = dict(handle.attrs)
        assert attrs["source"] == "demo:zip" and attrs["split"] == "train" and attrs["shard"] == 0
        assert attrs["size_policy"] == "resize" and attrs["compression"] == compression
        assert attrs["size"] == 424 and attrs["crop"] == "none"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jpg", "shard_0000.h5"]


def test_failed_downloads_are_left_out_and_others_missing_are_errors(tmp_path):
    ids = [1, 2, 3, 4, 5]
    jpg_dir = write_jpgs(tmp_path / "jpg", ids, 32)
    rows = make_rows(ids)
    (jpg_dir / "3.jpg").unlink()
    out = tmp_path / "out" / "shard.h5"
    with pytest.raises(InputDataError, match=r"3\.jpg"):
        hdf5.convert_shard(jpg_dir, rows, out, class_names=CLASS_NAMES, size=32, progress=False)
    assert not out.parent.exists() or not any(out.parent.iterdir()), "nothing half-written"

    report = hdf5.convert_shard(
        jpg_dir, rows, out, class_names=CLASS_NAMES, size=32, skip=[3], progress=False
    )
    assert (report.n_images, report.n_skipped) == (4, 1)
    with h5py.File(out) as handle:
        assert list(handle["asset_id"][()]) == [1, 2, 4, 5]
        assert handle.attrs["n_skipped"] == 1


def test_a_shard_whose_downloads_all_failed_is_empty_but_valid(tmp_path):
    jpg_dir = (tmp_path / "jpg").resolve()
    jpg_dir.mkdir()
    out = tmp_path / "empty.h5"
    hdf5.convert_shard(
        jpg_dir, make_rows([7, 8]), out, class_names=CLASS_NAMES, size=32, skip=[7, 8]
    )
    assert hdf5.count([out]) == 0
    assert list(hdf5.iter_batches([out], 4)) == []


def test_unknown_class_and_missing_column_name_the_row(shard, tmp_path):
    jpg_dir, rows = shard
    bad = rows.copy()
    bad.loc[5, "class"] = "Sx"
    with pytest.raises(InputDataError, match=r"asset_id 1005 with class 'Sx'"):
        hdf5.convert_shard(jpg_dir, bad, tmp_path / "a.h5", class_names=CLASS_NAMES)
    with pytest.raises(InputDataError, match=r"dr7objid"):
        hdf5.convert_shard(
            jpg_dir, rows.drop(columns="dr7objid"), tmp_path / "b.h5", class_names=CLASS_NAMES
        )
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()


# ----------------------------------------------------------------------------- size policy


def encoded(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_conforming_jpeg_is_kept_exactly_from_path_or_bytes(tmp_path):
    pixels = galaxy(np.random.default_rng(1), 424)
    path = tmp_path / "a.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    from_path = load_image(path, 424, "reject")
    np.testing.assert_array_equal(from_path, decoded(path))
    np.testing.assert_array_equal(load_image(path.read_bytes(), 424, "reject"), from_path)


def test_greyscale_becomes_three_equal_bands():
    grey = Image.fromarray(galaxy(np.random.default_rng(2), 424)[..., 0])
    image = load_image(encoded(grey), 424, "resize")
    assert image.shape == (424, 424, 3) and image.dtype == np.uint8
    expected = np.asarray(Image.open(io.BytesIO(encoded(grey))))
    for band in range(3):
        np.testing.assert_array_equal(image[..., band], expected)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Image.fromarray(p).convert("CMYK"),
        lambda p: Image.fromarray(p).convert("RGBA"),
        lambda p: Image.fromarray(p).resize((423, 423)),
        lambda p: Image.fromarray(p).crop((0, 50, 424, 350)),  # not square
    ],
    ids=["cmyk", "rgba", "423px", "424x300"],
)
def test_other_modes_and_sizes_resize_or_reject(make):
    pixels = galaxy(np.random.default_rng(3), 424)
    image = make(pixels)
    data = encoded(image, "PNG" if image.mode == "RGBA" else "JPEG")
    converted = load_image(data, 424, "resize")
    assert converted.shape == (424, 424, 3) and converted.dtype == np.uint8
    # The galaxy stays where it was: the centre is brighter than the corners.
    assert converted[200:224, 200:224].mean() > converted[:24, :24].mean() + 40
    with pytest.raises(ImageFormatError, match=r"not 424x424 RGB.*size_policy"):
        load_image(data, 424, "reject", name="odd.jpg")


def test_non_square_image_keeps_its_central_square():
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, 100:200] = 255  # the central square is white, the sides black
    converted = load_image(encoded(Image.fromarray(wide), "PNG"), 50, "resize")
    assert converted.shape == (50, 50, 3) and converted.min() > 240


def test_undecodable_data_is_a_clear_error(tmp_path):
    data = encoded(Image.fromarray(galaxy(np.random.default_rng(4), 64)))
    truncated = tmp_path / "9.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFormatError, match=r"9\.jpg: not a readable image"):
        load_image(truncated, 64)
    with pytest.raises(ImageFormatError, match=r"not a readable image"):
        load_image(b"<html>rate limited</html>", 64)


def test_the_converter_applies_the_policy(tmp_path):
    jpg_dir = write_jpgs(tmp_path / "jpg", [1, 2], 48)
    Image.fromarray(galaxy(np.random.default_rng(5), 40)[..., 1]).save(jpg_dir / "2.jpg")
    rows = make_rows([1, 2])
    out = tmp_path / "s.h5"
    with pytest.raises(ImageFormatError, match=r"2\.jpg: image is 40x40 L"):
        hdf5.convert_shard(jpg_dir, rows, out, class_names=CLASS_NAMES, size=48,
                           size_policy="reject", progress=False)  # fmt: skip
    assert not out.exists()
    hdf5.convert_shard(jpg_dir, rows, out, class_names=CLASS_NAMES, size=48, progress=False)
    with h5py.File(out) as handle:
        np.testing.assert_array_equal(handle["images"][1], load_image(jpg_dir / "2.jpg", 48))


# ----------------------------------------------------------------------------- reading


@pytest.fixture
def three_shards(tmp_path):
    """Shards of 7, 1 and 5 images of side 40; returns paths and all images in order."""
    paths, images, ids = [], [], []
    start = 0
    for shard, n in enumerate([7, 1, 5]):
        assets = list(range(start, start + n))
        start += n
        jpg_dir = write_jpgs(tmp_path / f"jpg{shard}", assets, 40, seed=shard)
        path = tmp_path / f"shard_{shard:04d}.h5"
        hdf5.convert_shard(jpg_dir, make_rows(assets, seed=shard), path,
                           class_names=CLASS_NAMES, size=40, progress=False)  # fmt: skip
        paths.append(path)
        images += [decoded(jpg_dir / f"{a}.jpg") for a in assets]
        ids += assets
    return paths, np.stack(images), np.asarray(ids)


def test_batches_stream_all_images_in_order_across_shards(three_shards):
    paths, images, ids = three_shards
    batches = list(hdf5.iter_batches(paths, 4))
    assert [len(batch) for batch in batches] == [4, 4, 4, 1]
    np.testing.assert_array_equal(np.concatenate([b.images for b in batches]), images)
    np.testing.assert_array_equal(np.concatenate([b.asset_id for b in batches]), ids)
    np.testing.assert_array_equal(
        np.concatenate([b.labels for b in batches]), hdf5.read_labels(paths)
    )
    np.testing.assert_array_equal(hdf5.read_asset_ids(paths), ids)
    assert hdf5.count(paths) == 13
    assert hdf5.read_class_names(paths) == list(CLASS_NAMES)


def test_crop_reads_the_central_window(three_shards):
    paths, images, _ = three_shards
    cropped = np.concatenate([b.images for b in hdf5.iter_batches(paths, 5, crop=20)])
    np.testing.assert_array_equal(cropped, images[:, 10:30, 10:30])
    with pytest.raises(InputDataError, match=r"crop 41 does not fit its 40x40"):
        next(hdf5.iter_batches(paths, 5, crop=41))


def test_study_crop_is_125_pixels_from_each_side(shard, tmp_path):
    jpg_dir, rows = shard
    out = tmp_path / "s.h5"
    hdf5.convert_shard(jpg_dir, rows.head(3), out, class_names=CLASS_NAMES, progress=False)
    batch = next(hdf5.iter_batches(out, 3, crop=174))
    assert batch.images.shape == (3, 174, 174, 3)
    np.testing.assert_array_equal(
        batch.images[0], decoded(jpg_dir / "1000.jpg")[125:-125, 125:-125]
    )


def test_shuffle_is_a_seeded_permutation_over_all_shards(three_shards):
    paths, images, ids = three_shards
    by_id = dict(zip(ids.tolist(), images, strict=True))
    labels = dict(zip(ids.tolist(), hdf5.read_labels(paths).tolist(), strict=True))

    def order(seed):
        batches = list(hdf5.iter_batches(paths, 4, shuffle=True, seed=seed))
        for batch in batches:  # every image travels with its own label and id
            for image, asset, label in zip(batch.images, batch.asset_id, batch.labels, strict=True):
                np.testing.assert_array_equal(image, by_id[int(asset)])
                assert labels[int(asset)] == label
        return np.concatenate([b.asset_id for b in batches]).tolist()

    first = order(7)
    assert sorted(first) == sorted(ids.tolist())
    # One permutation of the whole list, as numpy draws it from the seed.
    assert first == ids[np.random.default_rng(7).permutation(len(ids))].tolist()
    assert first == order(7)
    assert first != order(8)
    assert first != ids.tolist()
    # Images from different shards meet in one batch.
    assert any(len({a // 7 for a in first[i : i + 4]}) > 1 for i in range(0, 12, 4))


def test_shards_with_different_class_lists_are_refused(three_shards, tmp_path):
    paths, _, _ = three_shards
    jpg_dir = write_jpgs(tmp_path / "other", [99], 40)
    other = tmp_path / "other.h5"
    rows = make_rows([99]).assign(**{"class": "spiral"})
    hdf5.convert_shard(jpg_dir, rows, other, class_names=["spiral", "elliptical"], size=40)
    with pytest.raises(InputDataError, match=r"class_names .* differ"):
        hdf5.read_class_names([paths[0], other])
    with pytest.raises(InputDataError, match=r"differ"):
        next(hdf5.iter_batches([paths[0], other], 4))


def test_a_file_that_is_not_a_shard_is_named(tmp_path):
    bogus = tmp_path / "bogus.h5"
    bogus.write_text("not hdf5")
    with pytest.raises(InputDataError, match=r"bogus\.h5: not a readable HDF5 shard"):
        hdf5.count([bogus])
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = [1]
    with pytest.raises(InputDataError, match=r"other\.h5: not an image shard"):
        hdf5.read_class_names(tmp_path / "other.h5")


def test_read_images_by_global_index_across_shards(tmp_path):
    from shardfiles import blob_images, write_shard

    images = blob_images(12, 16, seed=4)
    paths = [
        write_shard(tmp_path / "a.h5", images[:5], 0, np.arange(5) % 3),
        write_shard(tmp_path / "b.h5", images[5:], 5, np.arange(5, 12) % 3),
    ]
    wanted = [9, 2, 6, 2]
    batch = hdf5.read_images(paths, wanted, crop=8)
    np.testing.assert_array_equal(batch.images, images[wanted, 4:12, 4:12])
    assert batch.asset_id.tolist() == wanted
    with pytest.raises(IndexError, match="12 images"):
        hdf5.read_images(paths, [12])
