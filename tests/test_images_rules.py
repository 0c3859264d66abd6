"""The images stage through the snakemake command: fetch, convert, pack; reruns on config edits.

The sample rule's outputs are written by hand and only the images rules may run
(``--allowed-rules``), so the test needs no catalogue. Images come from a local
folder (``images.source: directory``), one of them greyscale and of another
size, one missing.
"""

from __future__ import annotations

import re
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, deep_update, explain, run_snakemake
from PIL import Image

from galmorph.catalogue.classes import CLASS_NAMES
from galmorph.catalogue.sample import shard_names, shard_rows
from galmorph.errors import InputDataError
from galmorph.gallery import collect_examples
from galmorph.images import hdf5
from galmorph.images.acquire import failed_asset_ids
from galmorph.images.imaging import load_image
from galmorph.images.packing import members_under, verify

SIZE = 48
IMAGES_RULES = ("fetch_images", "jpg_to_hdf5", "pack_jpg", "pack_hdf5", "image_examples")
N_ROWS = {"train": 9, "test": 7}
GREY, MISSING = 105, 203  # a 40x40 greyscale JPEG (resized), an asset with no image


def sample_frame(split: str, first_asset: int) -> pd.DataFrame:
    rng = np.random.default_rng(first_asset)
    assets = np.arange(first_asset, first_asset + N_ROWS[split])
    return pd.DataFrame(
        {
            "dr7objid": 587_000_000_000_000_000 + assets,
            "asset_id": assets,
            "gz2_class": "Ei",
            "class": rng.choice(CLASS_NAMES, len(assets)),
            "ra": rng.uniform(0, 360, len(assets)),
            "dec": rng.uniform(-10, 60, len(assets)),
        }
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the workflow with hand-written sample outputs and a folder of JPEGs."""
    root = tmp_path_factory.mktemp("images_rules")
    workdir = copy_workflow(root / "wf")
    remote = root / "remote"
    remote.mkdir()
    rng = np.random.default_rng(0)
    (workdir / "results" / "sample").mkdir(parents=True)
    for split, first in (("train", 100), ("test", 200)):
        frame = sample_frame(split, first)
        frame.to_csv(workdir / "results" / "sample" / f"{split}.csv", index=False)
        for asset in frame["asset_id"]:
            if asset == MISSING:
                continue
            side, mode = (40, "L") if asset == GREY else (SIZE, "RGB")
            pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).convert(mode).save(remote / f"{asset}.jpg", quality=90)
    (workdir / "results" / "sample" / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    with open(workdir / "config" / "config.yaml") as handle:
        base = yaml.safe_load(handle)
    config = deep_update(
        base,
        {
            "dataset": "gz2",
            "catalogue": {"hart16_url": "file:///unused", "mapping_url": "file:///unused"},
            "sample": {"n_train": 9, "n_test": 7},
            "images": {
                "source": "directory",
                "directory": str(remote),
                "n_shards": 2,
                "connections": 2,
                "retries": 1,
                "backoff_s": 0.0,
                "max_failure_fraction": 0.5,
                "size": SIZE,
                "compression": "gzip",
            },
            "reduction": {"crop": 32, "n_components": 4, "batch_size": 8},
            "cnn": {"crop": SIZE, "input_size": 40, "measure_crop": SIZE},
            "clustering": {
                "kmeans": {"n_clusters": 3},
                "hierarchical": {"n_clusters": 3},
                "gmm": {"n_components": 3},
                "hdbscan": {"min_cluster_size": 3},
                "som": {"rows": 2, "cols": 2},
            },
        },
    )
    (workdir / "config" / "test.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


TARGETS = [
    *[f"results/images/hdf5/{s}/shard_{n}.h5" for s in N_ROWS for n in ("0000", "0001")],
    *[f"results/images/archives/{s}_{k}.tar.gz" for s in N_ROWS for k in ("jpg", "hdf5")],
    *[f"results/images/examples_{s}.png" for s in N_ROWS],
]


def snakemake(workdir, *args):
    return run_snakemake(
        workdir,
        "--configfile=config/test.yaml",  # with "=": takes no further word
        *args,  # targets first: several options take every word after them
        "--allowed-rules",  # last: it takes every word after it
        *IMAGES_RULES,
        timeout=300,
    )


@pytest.fixture(scope="module")
def finished(workdir):
    result = snakemake(workdir, *TARGETS)
    assert result.returncode == 0, explain(result)
    return workdir


def test_shards_hold_the_sample_rows_and_their_pixels(finished):
    for split in N_ROWS:
        frame = pd.read_csv(finished / "results" / "sample" / f"{split}.csv")
        seen = []
        for shard in shard_names(2):
            jpg_dir = finished / f"results/images/jpg/{split}/shard_{shard}"
            with h5py.File(finished / f"results/images/hdf5/{split}/shard_{shard}.h5") as handle:
                assert handle.attrs["split"] == split and handle.attrs["shard"] == int(shard)
                assert handle.attrs["source"] == "gz2:directory"
                assert handle.attrs["compression"] == "gzip"
                assert handle["images"].shape[1:] == (SIZE, SIZE, 3)
                for image, asset in zip(handle["images"], handle["asset_id"][()], strict=True):
                    np.testing.assert_array_equal(image, load_image(jpg_dir / f"{asset}.jpg", SIZE))
                seen += handle["asset_id"][()].tolist()
        expected = [a for a in frame["asset_id"] if a != MISSING]
        assert seen == expected


def test_failed_download_is_listed_and_left_out(finished):
    failures = finished / "results/images/jpg/test/shard_0001.failures.csv"
    assert failed_asset_ids(failures) == {MISSING}
    with h5py.File(finished / "results/images/hdf5/test/shard_0001.h5") as handle:
        assert handle.attrs["n_skipped"] == 1
    log = (finished / "logs/images/fetch_images/test_0001.log").read_text()
    assert "1 failed" in log


def test_archives_hold_every_file_intact(finished):
    for split in N_ROWS:
        jpg_base = finished / "results/images/jpg"
        members = members_under(jpg_base / split, jpg_base)
        assert f"{split}/shard_0001.failures.csv" in members
        assert verify(finished / f"results/images/archives/{split}_jpg.tar.gz", members) == (
            N_ROWS[split] - (split == "test") + 2
        )
        hdf5_base = finished / "results/images/hdf5"
        members = members_under(hdf5_base / split, hdf5_base)
        assert sorted(members) == [f"{split}/shard_0000.h5", f"{split}/shard_0001.h5"]
        verify(finished / f"results/images/archives/{split}_hdf5.tar.gz", members)


def test_example_figure_shows_the_first_images_of_each_class(finished):
    paths = [finished / f"results/images/hdf5/train/shard_{n}.h5" for n in shard_names(2)]
    examples = collect_examples(paths, per_class=2)
    labels = hdf5.read_labels(paths)
    assert sorted(examples) == sorted(set(labels.tolist()))
    ids = hdf5.read_asset_ids(paths)
    for label, chosen in examples.items():
        assert [asset for _, asset in chosen] == ids[labels == label][:2].tolist()
    with Image.open(finished / "results/images/examples_train.png") as figure:
        assert figure.format == "PNG" and figure.size[1] > 100 * len(examples)


def test_reconverting_and_repacking_gives_identical_bytes(finished):
    archives = [finished / t for t in TARGETS if t.endswith(".tar.gz")]
    before = {path: path.read_bytes() for path in archives}
    result = snakemake(finished, *TARGETS, "--forcerun", "jpg_to_hdf5")
    assert result.returncode == 0, explain(result)
    assert all(path.stat().st_mtime_ns > 0 for path in archives)
    for path in archives:
        assert path.read_bytes() == before[path], f"{path.name} changed"


def test_compression_edit_reruns_conversion_not_download(finished):
    config_path = finished / "config" / "test.yaml"
    original = config_path.read_text()
    try:
        config = yaml.safe_load(original)
        config["images"]["compression"] = "lzf"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        result = snakemake(finished, *TARGETS, "-n", "--quiet", "rules")
        assert result.returncode == 0, explain(result)
        jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
        assert jobs == {"jpg_to_hdf5": "4", "pack_hdf5": "2", "image_examples": "2", "total": "8"}
    finally:
        config_path.write_text(original)


def test_too_many_failed_downloads_fail_the_shard(tmp_path, workdir):
    """No image of the shard available: the job fails with one clear message, no output."""
    copy = copy_workflow(tmp_path / "wf")
    (copy / "results").mkdir()
    shutil.copytree(workdir / "results" / "sample", copy / "results" / "sample")
    config = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
    config["images"]["directory"] = str(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    (copy / "config" / "test.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(copy, "results/images/hdf5/train/shard_0000.h5")
    assert result.returncode != 0
    log = (copy / "logs/images/fetch_images/train_0000.log").read_text()
    assert "DownloadError" in log and "Traceback" not in log
    assert "Error in rule fetch_images: DownloadError" in result.stderr
    assert not (copy / "results/images/jpg/train/shard_0000").exists()
    assert not (copy / "results/images/hdf5/train/shard_0000.h5").exists()


# ----------------------------------------------------------------------------- shard helpers


def test_shard_rows_split_a_csv_in_contiguous_blocks(tmp_path):
    path = tmp_path / "train.csv"
    sample_frame("train", 100).to_csv(path, index=False)
    blocks = [shard_rows(path, 4, shard)["asset_id"].tolist() for shard in range(4)]
    assert sum(blocks, []) == list(range(100, 109))
    assert sorted(len(block) for block in blocks) == [2, 2, 2, 3]
    with pytest.raises(InputDataError, match="cannot fill 10 shards"):
        shard_rows(path, 10, 0)
    pd.DataFrame({"asset_id": [1]}).to_csv(path, index=False)
    with pytest.raises(InputDataError, match=r"missing column\(s\) \['dr7objid', 'class'\]"):
        shard_rows(path, 1, 0)
    path.write_text("dr7objid,asset_id,class\nabc,1,Ei\n")
    with pytest.raises(InputDataError, match="integer dr7objid and asset_id"):
        shard_rows(path, 1, 0)


def test_failures_csv_is_read_by_asset_id(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("asset_id,dr7objid,reason\n5,1,HTTP 404\n9,2,not a valid JPEG\n")
    assert failed_asset_ids(path) == {5, 9}
    path.write_text("asset_id,dr7objid,reason\n")
    assert failed_asset_ids(path) == set()
    path.write_text("id,reason\n5,x\n")
    with pytest.raises(InputDataError, match="no asset_id column"):
        failed_asset_ids(path)
