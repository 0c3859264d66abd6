import pandas as pd
import pytest
from conftest import GZ1 as SDSS
from conftest import require_shared

from galmorph.catalogue.folder import (
    folder_galaxies,
    list_images,
    read_labels,
    split_folder,
    stratified_split,
)
from galmorph.errors import InputDataError

SDSS_CLASSES = ["elliptical", "edge_on", "spiral_cw", "spiral_acw", "merger", "dont_know"]


def write_images(folder, names):
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"\xff\xd8 not decoded at this stage")
    return folder


def test_real_sdss_sample_gives_a_stratified_split():
    require_shared(SDSS)
    labels = read_labels(SDSS / "labels.csv", "dr7objid", "gz1_class")
    images = list_images(SDSS / "images", "{id}.jpeg")
    galaxies, classes, counts = folder_galaxies(labels, images, SDSS_CLASSES)
    assert counts["usable"] == len(galaxies) == 5011
    assert classes == SDSS_CLASSES
    assert galaxies["class"].value_counts()["elliptical"] == 3485
    assert galaxies["asset_id"].dtype == "int64"
    train, test = stratified_split(galaxies, 3500, 1500, seed=31)
    assert len(train) == 3500 and len(test) == 1500
    assert not set(train["asset_id"]) & set(test["asset_id"])
    share = galaxies["class"].value_counts(normalize=True)
    for split in (train, test):
        observed = split["class"].value_counts(normalize=True)
        assert (observed - share).abs().max() < 0.002
    again, _ = stratified_split(galaxies, 3500, 1500, seed=31)
    pd.testing.assert_frame_equal(train, again)


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-16", "\t"), ("cp1252", ";"), ("utf-8-sig", "|")],
)
def test_labels_in_other_encodings_and_delimiters(tmp_path, encoding, delimiter):
    text = delimiter.join(["name", "morphologie"]) + "\n"
    text += "".join(delimiter.join([f"g{i}", "élliptique" if i % 2 else "spirale"]) + "\n"
                    for i in range(6))  # fmt: skip
    path = tmp_path / "labels.csv"
    path.write_bytes(text.encode(encoding))
    labels = read_labels(path, "name", "morphologie")
    assert labels["id"].tolist() == [f"g{i}" for i in range(6)]
    assert set(labels["label"]) == {"élliptique", "spirale"}


def test_missing_column_names_the_file_and_the_columns(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("id;class\n1;a\n")
    with pytest.raises(
        InputDataError, match=r"no column 'dr7objid'.*'id', 'class'.*folder.id_column"
    ):
        read_labels(path, "dr7objid", "class")


def test_mismatches_are_counted_and_string_ids_get_running_numbers(tmp_path):
    folder = write_images(tmp_path / "img", ["a.png", "b.png", "c.png", "zz.png", "notes.txt"])
    labels = pd.DataFrame(
        {"id": ["a", "b", "c", "d", "b2", "e"], "label": ["x", "y", "x", "x", "", "w"]}
    )
    galaxies, classes, counts = folder_galaxies(labels, list_images(folder, "{id}.png"), ["x", "y"])
    assert galaxies["image_id"].tolist() == ["a", "b", "c"]
    assert galaxies["asset_id"].tolist() == [1, 2, 3]
    assert counts["ids_without_image"] == 1  # d
    assert counts["images_without_label"] == 1  # zz
    assert counts["empty_labels"] == 1 and counts["unknown_labels"] == 1
    assert classes == ["x", "y"]


def test_nothing_usable_is_a_clear_error(tmp_path):
    folder = write_images(tmp_path / "img", ["1.jpg"])
    labels = pd.DataFrame({"id": ["2"], "label": ["x"]})
    with pytest.raises(InputDataError, match="no usable labelled image.*ids without image 1"):
        folder_galaxies(labels, list_images(folder, "{id}.jpg"), None)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(InputDataError, match="set folder.images"):
        list_images(tmp_path / "nope", "{id}.jpg")


def test_directory_source_reads_the_pattern_and_reencodes_png(tmp_path):
    import numpy as np
    from PIL import Image

    from galmorph.images.acquire import fetch_shard, make_source

    folder = tmp_path / "img"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "gal-a.png")
    Image.fromarray(pixels).save(folder / "gal-b.jpeg", quality=90)
    rows = pd.DataFrame(
        {"asset_id": [1, 2, 3], "dr7objid": [-1, -1, -1], "image_id": ["a", "b", "c"]}
    )
    with pytest.raises(InputDataError, match=r"uses \['ext', 'id'\].*folder.filename_pattern"):
        make_source("directory", directory=str(folder), filename_pattern="gal-{id}.{ext}")
    for name in ("gal-a.png",):
        (folder / name).rename(folder / name.replace(".png", ".img"))
    (folder / "gal-b.jpeg").rename(folder / "gal-b.img")
    source = make_source("directory", directory=str(folder), filename_pattern="gal-{id}.img")
    report = fetch_shard(
        rows, source, tmp_path / "out", tmp_path / "f.csv", max_failure_fraction=0.5,
        progress=False,
    )  # fmt: skip
    assert (report.n_ok, report.n_failed) == (2, 1)
    with Image.open(tmp_path / "out" / "1.jpg") as image:
        assert image.format == "JPEG" and image.size == (40, 40)
    assert "missing" in pd.read_csv(tmp_path / "f.csv")["reason"].iloc[0]


def test_stratify_switch_chooses_the_split():
    """folder.stratify: true keeps each class's share in both splits; false draws at random
    (seeded), so a rare class may miss a split."""
    galaxies = pd.DataFrame(
        {"asset_id": range(100), "class": ["a"] * 90 + ["b"] * 10, "dr7objid": range(100)}
    )
    strat_train, strat_test = split_folder(galaxies, 50, 50, seed=3, stratify=True)
    assert (strat_train["class"] == "b").sum() == 5 and (strat_test["class"] == "b").sum() == 5
    shares = set()
    for seed in range(20):
        train, test = split_folder(galaxies, 50, 50, seed=seed, stratify=False)
        assert sorted([*train["asset_id"], *test["asset_id"]]) == list(range(100))
        shares.add(int((train["class"] == "b").sum()))
    assert len(shares) > 1  # not stratified: the rare class's count varies with the seed
    again, _ = split_folder(galaxies, 50, 50, seed=7, stratify=False)
    first, _ = split_folder(galaxies, 50, 50, seed=7, stratify=False)
    pd.testing.assert_frame_equal(again, first)
