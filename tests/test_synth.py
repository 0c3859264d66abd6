"""The synthetic Galaxy Zoo 2 sky: formats, votes, determinism and class balance."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from galmorph.catalogue.classes import CLASS_NAMES, MalformedClassError, parse
from galmorph.errors import InputDataError
from galmorph.synth import (
    CLASS_COUNTS,
    CLASS_PROPORTIONS,
    TASKS,
    build_catalogue,
    catalogue_columns,
    class_answers,
    contact_sheet,
    draw_class_strings,
    render,
    write_sky,
)
from galmorph.synth.catalogue import draw_objids, sexagesimal, vote_columns

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"
SEED_SAMPLE = SHARED_DATA / "gz2_seed_sample"
N_GALAXIES, N_UNLABELLED, N_MALFORMED = 40, 5, 3
LEADING = [
    "dr7objid",
    "ra",
    "dec",
    "rastring",
    "decstring",
    "sample",
    "gz2_class",
    "total_classifications",
    "total_votes",
]


@pytest.fixture(scope="module")
def sky(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sky")
    write_sky(out, N_GALAXIES, seed=7, n_unlabelled=N_UNLABELLED, n_malformed=N_MALFORMED)
    return out


@pytest.fixture(scope="module")
def catalogue(sky) -> pd.DataFrame:
    return pd.read_csv(sky / "gz2_hart16.csv.gz", keep_default_na=False)


@pytest.fixture(scope="module")
def mapping(sky) -> pd.DataFrame:
    return pd.read_csv(sky / "gz2_filename_mapping.csv")


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# --- formats -----------------------------------------------------------------


def test_writes_exactly_the_three_release_files(sky):
    assert sorted(p.name for p in sky.iterdir()) == [
        "gz2_filename_mapping.csv",
        "gz2_hart16.csv.gz",
        "images_gz2.zip",
    ]


def test_catalogue_has_the_hart16_columns(catalogue):
    assert list(catalogue.columns[:9]) == LEADING
    assert list(catalogue.columns) == catalogue_columns()
    answers = [c[: -len("_count")] for c in catalogue.columns if c.endswith("_count")]
    assert len(answers) == 37
    assert answers[0] == "t01_smooth_or_features_a01_smooth"
    assert answers[-1] == "t11_arms_number_a37_cant_tell"
    assert "t08_odd_feature_a38_dust_lane" in answers
    for answer in answers:
        for suffix in ("count", "weight", "fraction", "weighted_fraction", "debiased", "flag"):
            assert f"{answer}_{suffix}" in catalogue.columns
    assert len(catalogue) == N_GALAXIES


def test_ids_and_positions_are_realistic(catalogue, mapping):
    ids = catalogue["dr7objid"]
    assert ids.dtype == np.int64 and ids.is_unique
    assert ids.astype(str).str.len().eq(18).all()
    assert ((ids.to_numpy() >> 59) == 1).all()  # SDSS sky version of DR7 ids
    assert catalogue["ra"].between(0, 360).all() and catalogue["dec"].between(-12, 70).all()
    assert catalogue["rastring"].str.fullmatch(r"\d\d:\d\d:\d\d\.\d\d").all()
    assert catalogue["decstring"].str.fullmatch(r"[+-]\d\d:\d\d:\d\d\.\d").all()
    assert set(catalogue["sample"]) <= {"original", "extra", "stripe82"}
    assert mapping["asset_id"].is_unique and mapping["objid"].is_unique


def test_sexagesimal_strings_match_degrees():
    ra, dec = np.array([0.0, 187.5, 359.99999]), np.array([-1.5, 45.25, 0.0])
    rastrings, decstrings = sexagesimal(ra, dec)
    assert rastrings == ["00:00:00.00", "12:30:00.00", "00:00:00.00"]
    assert decstrings == ["-01:30:00.0", "+45:15:00.0", "+00:00:00.0"]


def test_mapping_join_gives_exactly_the_catalogue(catalogue, mapping):
    assert list(mapping.columns) == ["objid", "sample", "asset_id"]
    assert len(mapping) == N_GALAXIES + N_UNLABELLED
    joined = mapping.rename(columns={"objid": "dr7objid"}).merge(
        catalogue[["dr7objid", "gz2_class"]], on="dr7objid"
    )
    assert len(joined) == N_GALAXIES
    assert sorted(joined["dr7objid"]) == sorted(catalogue["dr7objid"])
    assert (~mapping["objid"].isin(catalogue["dr7objid"])).sum() == N_UNLABELLED


def test_zip_holds_one_424_rgb_jpeg_per_catalogue_row(sky, catalogue, mapping):
    labelled = mapping[mapping["objid"].isin(catalogue["dr7objid"])]
    with zipfile.ZipFile(sky / "images_gz2.zip") as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(f"images/{a}.jpg" for a in labelled["asset_id"])
        for name in names[:10]:
            image = Image.open(io.BytesIO(archive.read(name)))
            assert image.format == "JPEG"
            assert image.mode == "RGB" and image.size == (424, 424)


def test_images_are_mostly_dark_sky_with_a_bright_centre(sky):
    with zipfile.ZipFile(sky / "images_gz2.zip") as archive:
        images = [np.asarray(Image.open(archive.open(n))) for n in archive.namelist()[:12]]
    stack = np.stack(images).astype(float)
    corner = stack[:, :80, :80]
    centre = stack[:, 192:232, 192:232]
    assert np.median(corner) < 12  # SDSS-like dark background
    assert corner.std() > 1.0  # with sky noise, not a flat fill
    assert centre.mean() > 4 * corner.mean()


# --- votes -----------------------------------------------------------------


def _task_fractions(row: pd.Series, task: str, answers, suffix: str) -> np.ndarray:
    return np.array([row[f"{task}_{a}_{suffix}"] for a in answers], dtype=float)


def test_task_fractions_sum_to_one_where_reached(catalogue):
    for _, row in catalogue.iterrows():
        for task, answers in TASKS:
            counts = _task_fractions(row, task, answers, "count")
            for suffix in ("fraction", "weighted_fraction", "debiased"):
                total = _task_fractions(row, task, answers, suffix).sum()
                expected = 1.0 if counts.sum() > 0 else 0.0
                assert total == pytest.approx(expected, abs=1e-5), (task, suffix)
            fractions = _task_fractions(row, task, answers, "fraction")
            if counts.sum():
                np.testing.assert_allclose(fractions, counts / counts.sum(), atol=1e-6)
        assert row["total_votes"] == sum(
            _task_fractions(row, task, answers, "count").sum() for task, answers in TASKS
        )
        t01 = _task_fractions(row, *TASKS[0], "count").sum()
        assert t01 == row["total_classifications"]


def test_votes_agree_with_the_class(catalogue):
    checked = 0
    for _, row in catalogue.iterrows():
        try:
            path = class_answers(row["gz2_class"])
        except MalformedClassError:
            continue
        checked += 1
        for task, answers in TASKS:
            if task in path:
                for suffix in ("fraction", "weighted_fraction", "debiased"):
                    values = _task_fractions(row, task, answers, suffix)
                    assert np.argmax(values) == path[task], (row["gz2_class"], task, suffix)
    assert checked == N_GALAXIES - N_MALFORMED


def test_a_round_elliptical_votes_smooth_and_completely_round():
    rng = np.random.default_rng(0)
    rows = [vote_columns(rng, "Er") for _ in range(30)]
    smooth = np.mean([r["t01_smooth_or_features_a01_smooth_fraction"] for r in rows])
    round_ = np.mean([r["t07_rounded_a16_completely_round_fraction"] for r in rows])
    assert smooth > 0.5 and round_ > 0.5
    bar = [r["t03_bar_a06_bar_fraction"] + r["t03_bar_a07_no_bar_fraction"] for r in rows]
    assert np.mean(bar) < 0.6  # reached only by the few who answered "features"


def test_class_path_of_a_barred_spiral():
    assert class_answers("SBc2m(r)") == {
        "t01_smooth_or_features": 1,
        "t02_edgeon": 1,
        "t03_bar": 0,
        "t04_spiral": 0,
        "t10_arms_winding": 1,
        "t11_arms_number": 1,
        "t05_bulge_prominence": 1,
        "t06_odd": 0,
        "t08_odd_feature": 0,
    }
    assert class_answers("Seb") == {
        "t01_smooth_or_features": 1,
        "t02_edgeon": 0,
        "t09_bulge_shape": 1,
        "t06_odd": 1,
    }


# --- classes ---------------------------------------------------------------


def test_class_strings_parse_except_the_malformed_rows(catalogue):
    bad = []
    for value in catalogue["gz2_class"]:
        try:
            parse(value)
        except MalformedClassError:
            bad.append(value)
    assert len(bad) == N_MALFORMED


def test_drawn_class_shares_follow_the_real_sample():
    n = 30_000
    strings = draw_class_strings(np.random.default_rng(123), n)
    simple = pd.Series([parse(s).simple for s in strings]).value_counts()
    observed = np.array([simple.get(name, 0) for name in CLASS_NAMES])
    expected = np.array([CLASS_PROPORTIONS[name] for name in CLASS_NAMES]) * n
    # Chi-square on the classes with enough expected counts; rare ones within 5 sigma.
    big = expected >= 20
    assert (
        stats.chisquare(
            observed[big], expected[big] * observed[big].sum() / expected[big].sum()
        ).pvalue
        > 1e-3
    )
    sigma = np.sqrt(expected)
    assert np.all(np.abs(observed - expected) < 5 * sigma + 2)


def test_sub_codes_are_varied_and_realistic():
    strings = draw_class_strings(np.random.default_rng(5), 20_000)
    parsed = [parse(s) for s in strings]
    odd = np.mean([c.odd is not None for c in parsed])
    assert 0.1 <= odd <= 0.2
    disks = [c for c in parsed if c.family == "S"]
    spirals = [c for c in disks if c.spiral]
    assert 0.6 < len(spirals) / len(disks) < 0.9
    assert {c.arms for c in spirals} == {"1", "2", "3", "4", "+", "?"}
    assert {c.winding for c in spirals} == {"t", "m", "l"}
    barred = [c for c in disks if c.barred]
    assert {c.bulge for c in barred} == {"a", "b", "c", "d"}
    # Arms wind more tightly around big bulges.
    tight = {b: np.mean([c.winding == "t" for c in spirals if c.bulge == b]) for b in "bd"}
    assert tight["b"] > tight["d"]
    dust = [c for c in parsed if c.odd == "u"]
    assert np.mean([c.family == "Se" for c in dust]) > 0.5


def _real_counts() -> dict[str, int]:
    frames = [pd.read_csv(SEED_SAMPLE / f"log_data_{s}.csv") for s in ("train", "test")]
    return pd.concat(frames)["gz2_class"].value_counts().to_dict()


def test_embedded_class_counts_equal_the_real_sample():
    from conftest import require_shared

    require_shared(SEED_SAMPLE)
    assert CLASS_COUNTS == _real_counts()
    assert sum(CLASS_PROPORTIONS.values()) == pytest.approx(1.0)


def test_embedded_counts_cover_the_class_list():
    assert set(CLASS_COUNTS) == set(CLASS_NAMES)
    assert sum(CLASS_COUNTS.values()) == 20_000


# --- determinism -------------------------------------------------------------


def test_same_seed_gives_identical_bytes(sky, tmp_path):
    write_sky(tmp_path, N_GALAXIES, 7, N_UNLABELLED, N_MALFORMED, progress=False)
    assert _digest(tmp_path) == _digest(sky)


def test_different_seed_gives_different_files(sky, tmp_path):
    write_sky(tmp_path, N_GALAXIES, 8, N_UNLABELLED, N_MALFORMED, progress=False)
    theirs, ours = _digest(tmp_path), _digest(sky)
    assert all(theirs[name] != ours[name] for name in ours)


def test_image_of_a_row_does_not_depend_on_the_sky_size(tmp_path):
    """Per-row generators: the first rows of a bigger sky render identically."""
    small, big = tmp_path / "small", tmp_path / "big"
    write_sky(small, 6, 3, progress=False)
    write_sky(big, 6, 3, n_unlabelled=4, progress=False)
    with (
        zipfile.ZipFile(small / "images_gz2.zip") as a,
        zipfile.ZipFile(big / "images_gz2.zip") as b,
    ):
        assert a.namelist() and all(len(a.read(n)) > 0 for n in a.namelist())
        # Different mapping sizes draw different asset ids, but the pixels of row i agree.
        pixels_a = sorted(hashlib.sha256(a.read(n)).hexdigest() for n in a.namelist())
        pixels_b = sorted(hashlib.sha256(b.read(n)).hexdigest() for n in b.namelist())
    assert pixels_a == pixels_b


def test_parallel_rendering_gives_the_same_zip(sky, tmp_path):
    write_sky(tmp_path, N_GALAXIES, 7, N_UNLABELLED, N_MALFORMED, progress=False, n_jobs=2)
    assert _digest(tmp_path)["images_gz2.zip"] == _digest(sky)["images_gz2.zip"]


def test_render_is_a_pure_function_of_the_generator():
    a = render("SBc2m(r)", np.random.default_rng(11))
    b = render("SBc2m(r)", np.random.default_rng(11))
    c = render("SBc2m(r)", np.random.default_rng(12))
    assert a.shape == (424, 424, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# --- the images show their class ----------------------------------------------


def _second_moments(image: np.ndarray) -> float:
    """Axis ratio of the light inside 60 px of the centre (background removed)."""
    light = image.astype(float).mean(axis=2)[152:272, 152:272]
    light = np.clip(light - np.median(image) - 8, 0, None)
    y, x = np.mgrid[: light.shape[0], : light.shape[1]]
    total = light.sum()
    mx, my = (light * x).sum() / total, (light * y).sum() / total
    cov = np.cov(np.stack([x.ravel() - mx, y.ravel() - my]), aweights=light.ravel())
    low, high = np.linalg.eigvalsh(cov)
    return float(np.sqrt(low / high))


def test_elliptical_axis_ratios_follow_the_roundness_code():
    ratios = {
        code: np.median([_second_moments(render(code, np.random.default_rng(s))) for s in range(5)])
        for code in ("Er", "Ei", "Ec", "Sen")
    }
    assert ratios["Er"] > ratios["Ei"] > ratios["Ec"] > ratios["Sen"]
    assert ratios["Er"] > 0.8 and ratios["Ec"] < 0.55


def test_ellipticals_are_redder_than_late_disks():
    def colour(code):
        image = render(code, np.random.default_rng(3)).astype(float)[182:242, 182:242]
        return image[..., 0].sum() / image[..., 2].sum()

    assert colour("Ei") > colour("Sd2l") + 0.1


# --- errors and the contact sheet ----------------------------------------------


def test_bad_sizes_are_clear_errors(tmp_path):
    with pytest.raises(InputDataError, match="n_malformed"):
        write_sky(tmp_path, 5, 1, n_malformed=6, progress=False)
    with pytest.raises(InputDataError, match="n_galaxies"):
        write_sky(tmp_path, 0, 1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_failure_leaves_nothing_half_written(tmp_path, monkeypatch):
    import galmorph.synth.writer as writer

    def broken(task):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(writer, "_render_row", broken)
    with pytest.raises(RuntimeError):
        write_sky(tmp_path, 5, 1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_objids_are_unique_even_when_many_are_drawn():
    ids = draw_objids(np.random.default_rng(0), 50_000)
    assert len(np.unique(ids)) == 50_000


def test_catalogue_refuses_more_malformed_rows_than_galaxies():
    with pytest.raises(ValueError, match="n_malformed"):
        build_catalogue(1, 3, 0, 4)


def test_contact_sheet_has_one_row_per_present_class(sky, catalogue, tmp_path):
    out = contact_sheet(sky, tmp_path / "sheet.png", per_class=3, thumb=64)
    present = set()
    for value in catalogue["gz2_class"]:
        try:
            present.add(parse(value).simple)
        except MalformedClassError:
            pass
    with Image.open(out) as sheet:
        assert sheet.size == (3 * 64, len(present) * 64)


def test_contact_sheet_names_a_missing_sky(tmp_path):
    with pytest.raises(InputDataError, match="gz2_hart16.csv.gz is missing"):
        contact_sheet(tmp_path, tmp_path / "sheet.png")
