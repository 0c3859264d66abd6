"""Bad input through the real workflow: a clear message naming the file, row or key.

Messy input that can be used (another encoding and delimiter, duplicate ids,
empty and unknown labels, images of another mode or size) is counted and
handled; input that cannot (a catalogue without its columns, a labels file
without its label column, a corrupt or truncated HDF5 shard, images a
``reject`` policy refuses) stops the job with one sentence saying what to
do, in the log and on the console, and never a library's traceback.

The folder dataset is built from real SDSS galaxies of the shared sample.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil

import h5py
import pandas as pd
import pytest
from conftest import GZ1, copy_workflow, explain, require_shared, run_snakemake, write_config
from PIL import Image

pytestmark = pytest.mark.slow

CLASSES = ["elliptical", "edge_on", "spiral_cw"]
COUNTS = {"elliptical": 16, "edge_on": 12, "spiral_cw": 12}
#: Images rewritten in another mode or size: grayscale, CMYK, a 300x200 crop, palette.
ODD = {0: "L", 1: "CMYK", 2: "small", 3: "P"}


def folder_config(folder, overrides=None):
    config = {
        "dataset": "folder",
        "folder": {
            "images": str(folder / "images"),
            "labels": str(folder / "labels.csv"),
            "id_column": "objid",
            "label_column": "morphology",
            "filename_pattern": "{id}.jpeg",
            "classes": CLASSES,
        },
        "sample": {"n_train": 24, "n_test": 12},
        # lzf: a damaged chunk fails to decompress (raw chunks carry no checksum)
        "images": {"source": "directory", "n_shards": 1, "size": 64, "compression": "lzf"},
        "clustering": {"methods": ["kmeans"]},
        # spiral_cw without its anticlockwise partner: mirrors must stay off
        "cnn": {
            "variants": ["unbalanced"],
            "input_size": 38,
            "augment": {"mirror": False},
            "tta": {"mirror": False},
        },
    }
    return _merge(config, overrides or {})


def _merge(base, overrides):
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    """40 real galaxies, a UTF-16 tab-separated labels file with messy rows, odd images."""
    require_shared(GZ1)
    folder = tmp_path_factory.mktemp("messy")
    (folder / "images").mkdir()
    labels = pd.read_csv(GZ1 / "labels.csv").sort_values("dr7objid")
    rows = []
    for name, n in COUNTS.items():
        rows += labels[labels["gz1_class"] == name].iloc[:n].values.tolist()
    for number, (objid, _) in enumerate(rows):
        source, target = GZ1 / "images" / f"{objid}.jpeg", folder / "images" / f"{objid}.jpeg"
        kind = ODD.get(number)
        if kind is None:
            shutil.copy(source, target)
            continue
        with Image.open(source) as image:
            if kind == "small":
                image.crop((0, 0, 300, 200)).save(target, "JPEG")
            elif kind == "P":  # a PNG's palette mode behind a .jpeg name
                image.convert("P").save(target, "PNG")
            else:
                image.convert(kind).save(target, "JPEG")
    extra = [
        (rows[5][0], rows[5][1]),  # duplicate id: both rows left out
        (588848901000000001, ""),  # empty label
        (588848901000000002, "ufo"),  # unknown label
    ]
    table = pd.DataFrame(rows + extra, columns=["objid", "morphology"])
    text = table.to_csv(sep="\t", index=False)
    (folder / "labels.csv").write_bytes(text.encode("utf-16"))
    return folder, table


@pytest.fixture(scope="module")
def converted(messy_folder, tmp_path_factory):
    """The messy folder run through sample, image fetch and HDF5 conversion."""
    folder, _ = messy_folder
    workdir = copy_workflow(tmp_path_factory.mktemp("messy_run"))
    write_config(workdir / "config/tiny.yaml", folder_config(folder))
    targets = [f"results/images/hdf5/{split}/shard_0000.h5" for split in ("train", "test")]
    result = snake(workdir, *targets)
    assert result.returncode == 0, explain(result)
    return workdir


def snake(workdir, *args):
    """Snakemake in ``workdir`` on its config/tiny.yaml (targets first: --configfile takes many)."""
    return run_snakemake(workdir, *args, "--configfile", "config/tiny.yaml")


def assert_clear_failure(result, rule, log, *phrases):
    """The run failed in ``rule`` with a one-line message, in its log and on the console."""
    assert result.returncode != 0
    console = result.stdout + result.stderr
    assert f"Error in rule {rule}:" in console, explain(result)
    text = log.read_text()
    for phrase in phrases:
        assert phrase in text, text[-3000:]
        assert phrase in console, explain(result)
    assert "Traceback" not in text, text[-3000:]


def test_messy_labels_are_read_counted_and_left_out(messy_folder, converted):
    _, table = messy_folder
    summary = json.loads((converted / "results/sample/summary.json").read_text())
    counts = summary["counts"]
    assert counts["duplicate_ids"] == 2
    assert counts["empty_labels"] == 1
    assert counts["unknown_labels"] == 1
    split = pd.concat(
        [pd.read_csv(converted / f"results/sample/{name}.csv") for name in ("train", "test")]
    )
    assert len(split) == 36
    assert table.iloc[5, 0] not in set(split["dr7objid"])
    assert set(split["class"]) == set(CLASSES)
    log = (converted / "logs/sample/sample.log").read_text()
    assert "encoding utf-16" in log


def test_images_of_another_mode_or_size_become_rgb_squares(messy_folder, converted):
    _, table = messy_folder
    odd_ids = {int(table.iloc[number, 0]) for number in ODD}
    stored = 0
    for split in ("train", "test"):
        with h5py.File(converted / f"results/images/hdf5/{split}/shard_0000.h5") as handle:
            assert handle["images"].shape[1:] == (64, 64, 3)
            ids = set(handle["asset_id"][()].tolist())
            stored += len(ids & odd_ids)
            assert handle["images"][()].std() > 10  # real pixels, not blank fill
    assert stored == len(ODD)  # none lost: the resize policy converts them


def test_reject_policy_stops_with_the_list_of_refused_images(messy_folder, tmp_path):
    folder, table = messy_folder
    workdir = copy_workflow(tmp_path / "wf")
    config = folder_config(folder, {"images": {"size_policy": "reject", "size": 423}})
    write_config(workdir / "config/tiny.yaml", config)
    targets = [f"results/images/jpg/{split}/shard_0000" for split in ("train", "test")]
    result = snake(workdir, *targets, "-k")
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "images.max_failure_fraction" in console and "Full list:" in console, explain(result)
    refused = set()
    for split in ("train", "test"):
        assert not (workdir / f"results/images/jpg/{split}/shard_0000").exists()
        # Snakemake removes the failed job's outputs but keeps its log: the list is there.
        log = (workdir / f"logs/images/fetch_images/{split}_0000.log").read_text()
        for asset, reason in re.findall(r"missing asset_id (\d+) \(dr7objid \d+\): (.*)", log):
            refused.add(int(asset))
            assert "expected 423x423 RGB (size_policy reject)" in reason, reason
    # Grayscale, CMYK and 300x200 are refused; a PNG behind a .jpeg name is re-encoded
    # as an RGB JPEG by the directory source, and its size fits.
    assert refused == {int(table.iloc[number, 0]) for number, kind in ODD.items() if kind != "P"}


def test_corrupt_hdf5_shard_stops_reduction_and_cnn_with_a_clear_message(converted):
    shard = converted / "results/images/hdf5/train/shard_0000.h5"
    backup = shard.read_bytes()
    data = bytearray(backup)
    middle = len(data) // 3
    data[middle : middle + 4000] = bytes(b ^ 0xFF for b in data[middle : middle + 4000])
    try:
        shard.write_bytes(bytes(data))
        result = snake(
            converted,
            "results/reduction/reducer.pkl",
            "results/cnn/unbalanced/network.keras",
            "-k",
        )
        for rule, log in (
            ("fit_reduction", "logs/reduction/fit_reduction.log"),
            ("train_cnn", "logs/cnn/train_cnn/unbalanced.log"),
        ):
            assert_clear_failure(
                result, rule, converted / log, f"{shard.relative_to(converted)}: corrupt HDF5"
            )
            assert "rerun the workflow" in (converted / log).read_text()
        assert not (converted / "results/reduction/reducer.pkl").exists()
        assert not (converted / "results/cnn/unbalanced/network.keras").exists()
    finally:
        shard.write_bytes(backup)


def test_truncated_hdf5_shard_is_named(converted):
    shard = converted / "results/images/hdf5/test/shard_0000.h5"
    backup = shard.read_bytes()
    try:
        shard.write_bytes(backup[: len(backup) // 2])
        result = snake(converted, "results/images/examples_test.png")
        assert_clear_failure(
            result,
            "image_examples",
            converted / "logs/images/image_examples/test.log",
            "truncated file",
            "delete it and rerun the workflow",
        )
    finally:
        shard.write_bytes(backup)


def test_labels_without_the_label_column_name_the_columns(messy_folder, tmp_path):
    folder, table = messy_folder
    (tmp_path / "labels.csv").write_text(table.rename(columns={"morphology": "kind"}).to_csv())
    config = folder_config(folder, {"folder": {"labels": str(tmp_path / "labels.csv")}})
    workdir = copy_workflow(tmp_path / "wf")
    write_config(workdir / "config/tiny.yaml", config)
    result = snake(workdir, "results/sample/train.csv")
    assert_clear_failure(
        result, "sample", workdir / "logs/sample/sample.log", "no column 'morphology'", "'kind'"
    )
    assert not (workdir / "results/sample/train.csv").exists()


def test_catalogue_without_required_columns_and_with_duplicate_ids(tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    ids = [*range(1, 31), 2]  # dr7objid 2 twice
    catalogue = pd.DataFrame({"dr7objid": ids, "ra": 0.0, "dec": 0.0, "gz2_class": "Ei"})
    mapping = pd.DataFrame({"objid": ids[:-1], "sample": "original", "asset_id": ids[:-1]})
    mapping.to_csv(remote / "mapping.csv", index=False)

    def run(frame, name):
        with gzip.open(remote / name, "wt") as handle:
            frame.to_csv(handle, index=False)
        workdir = copy_workflow(tmp_path / name.split(".")[0])
        config = {
            "dataset": "gz2",
            "catalogue": {
                "hart16_url": (remote / name).as_uri(),
                "mapping_url": (remote / "mapping.csv").as_uri(),
            },
            "sample": {"n_train": 10, "n_test": 10},
            "images": {"source": "cutout", "cutout_url": "http://127.0.0.1:9/{ra}/{dec}/{scale}"},
        }
        write_config(workdir / "config/tiny.yaml", config)
        result = snake(workdir, "results/sample/train.csv")
        return workdir, result

    # A catalogue without gz2_class is refused before it takes its name in resources/.
    workdir, result = run(catalogue.drop(columns=["gz2_class"]), "no_class.csv.gz")
    assert_clear_failure(
        result,
        "download_catalogue",
        workdir / "logs/catalogue/download_catalogue.log",
        "no_class.csv.gz: the downloaded body is a header without the column(s) gz2_class",
    )
    assert not (workdir / "resources/gz2/gz2_hart16.csv.gz").exists()
    workdir, result = run(catalogue, "duplicates.csv.gz")
    assert_clear_failure(
        result, "sample", workdir / "logs/sample/sample.log", "dr7objid 2 more than once"
    )
    for name in ("train.csv", "test.csv"):
        assert not (workdir / "results/sample" / name).exists()
