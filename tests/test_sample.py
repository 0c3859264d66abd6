import numpy as np
import pandas as pd
import pytest

from galmorph.catalogue.sample import (
    SAMPLE_COLUMNS,
    build_sample,
    class_counts,
    labelled_galaxies,
    plot_class_histogram,
    read_catalogue,
    read_mapping,
    shard_bounds,
)
from galmorph.errors import InputDataError

CLASSES = ["Er", "Ei(m)", "SBc2m", "Sc?t(u)", "Ser", "Sb", "Ec", "Sen", "A", "Sd4l"]


def make_tables(n=200, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**17, size=n, replace=False) + 587_700_000_000_000_000
    catalogue = pd.DataFrame(
        {
            "dr7objid": ids,
            "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-10, 70, n),
            "gz2_class": [CLASSES[i % len(CLASSES)] for i in range(n)],
        }
    )
    mapping = pd.DataFrame({"dr7objid": ids, "asset_id": np.arange(n) + 1000})
    return catalogue, mapping


def test_join_filters_and_counts():
    catalogue, mapping = make_tables(100)
    catalogue.loc[0, "gz2_class"] = "Sx"  # malformed
    catalogue.loc[1, "gz2_class"] = pd.NA  # unlabelled
    extra = pd.DataFrame({"dr7objid": [1, 2], "asset_id": [1, 2]})  # not in the catalogue
    mapping = pd.concat([mapping, extra], ignore_index=True)
    available = set(mapping["asset_id"]) - {1002, 1003}  # two galaxies without an image
    galaxies, counts, malformed = labelled_galaxies(catalogue, mapping, available)
    assert list(galaxies.columns) == list(SAMPLE_COLUMNS)
    assert counts["joined_rows"] == 100
    assert counts["with_image"] == 98
    assert counts["unlabelled"] == 1
    assert malformed == {"Sx": 1}
    assert counts["labelled_with_image"] == len(galaxies) == 96
    assert galaxies["dr7objid"].is_unique
    row = galaxies.set_index("asset_id").loc[1013]
    assert row["gz2_class"] == "Sc?t(u)" and row["class"] == "Sc"
    assert set(galaxies["class"]) <= {"Er", "Ei", "SB", "Sc", "Ser", "Sb", "Ec", "Sen", "A", "Sd"}


def test_galaxy_with_two_images_keeps_the_lowest_asset_id():
    catalogue, mapping = make_tables(10)
    duplicate = mapping.iloc[[3]].assign(asset_id=5)
    galaxies, counts, _ = labelled_galaxies(
        catalogue, pd.concat([duplicate, mapping]), available=None
    )
    assert counts["joined_rows"] == 11 and len(galaxies) == 10
    assert galaxies.set_index("dr7objid").loc[mapping.iloc[3]["dr7objid"], "asset_id"] == 5


def test_sample_is_seeded_disjoint_and_independent_of_row_order():
    catalogue, mapping = make_tables(300)
    first = build_sample(catalogue, mapping, None, n_train=100, n_test=80, seed=31)
    shuffled = catalogue.sample(frac=1, random_state=5)
    again = build_sample(shuffled, mapping.sample(frac=1, random_state=6), None, 100, 80, 31)
    pd.testing.assert_frame_equal(first.train, again.train)
    pd.testing.assert_frame_equal(first.test, again.test)
    assert len(first.train) == 100 and len(first.test) == 80
    assert not set(first.train["dr7objid"]) & set(first.test["dr7objid"])
    other = build_sample(catalogue, mapping, None, 100, 80, seed=32)
    assert not first.train["dr7objid"].equals(other.train["dr7objid"])


def test_sample_larger_than_supply_is_a_clear_error():
    catalogue, mapping = make_tables(50)
    with pytest.raises(InputDataError, match="only 50 labelled galaxies"):
        build_sample(catalogue, mapping, None, n_train=40, n_test=20, seed=1)


def test_duplicate_catalogue_ids_are_named():
    catalogue, mapping = make_tables(20)
    catalogue.loc[5, "dr7objid"] = catalogue.loc[4, "dr7objid"]
    with pytest.raises(InputDataError, match=str(catalogue.loc[4, "dr7objid"])):
        labelled_galaxies(catalogue, mapping, None)


def test_readers_check_columns_and_ids(tmp_path):
    catalogue, mapping = make_tables(20)
    catalogue["t01_smooth_or_features_a01_smooth_fraction"] = 0.5
    catalogue.to_csv(tmp_path / "hart16.csv.gz", index=False)
    mapping.rename(columns={"dr7objid": "objid"}).assign(sample="original").to_csv(
        tmp_path / "mapping.csv", index=False
    )
    read = read_catalogue(tmp_path / "hart16.csv.gz")
    assert list(read.columns) == ["dr7objid", "ra", "dec", "gz2_class"]
    assert read["dr7objid"].tolist() == catalogue["dr7objid"].tolist()
    assert "dr7objid" in read_mapping(tmp_path / "mapping.csv").columns

    catalogue.drop(columns=["gz2_class"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputDataError, match=r"bad\.csv: missing required column\(s\) gz2_class"):
        read_catalogue(tmp_path / "bad.csv")

    mapping.assign(objid="x").to_csv(tmp_path / "badids.csv", index=False)
    with pytest.raises(InputDataError, match="objid must hold integer ids; row 2"):
        read_mapping(tmp_path / "badids.csv")

    (tmp_path / "garbage.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputDataError, match="cannot be read as CSV"):
        read_catalogue(tmp_path / "garbage.csv.gz")


def test_shard_bounds_cover_every_row_once():
    for n_rows, n_shards in [(10, 3), (7, 7), (1000, 6), (5, 1)]:
        bounds = [shard_bounds(n_rows, n_shards, s) for s in range(n_shards)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n_rows
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        sizes = [stop - start for start, stop in bounds]
        assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError):
        shard_bounds(10, 3, 3)


def test_histogram_figure(tmp_path):
    catalogue, mapping = make_tables(60)
    sample = build_sample(catalogue, mapping, None, 30, 30, seed=3)
    counts = class_counts(sample.train)
    assert counts.sum() == 30 and counts.index[0] == "Er" and len(counts) == 12
    plot_class_histogram(sample.train, tmp_path / "h.png", "train")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".h.png.tmp-*"))
