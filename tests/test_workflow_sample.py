"""End-to-end: the demo sky, catalogue "download" and sample stages through snakemake."""

import json

import pandas as pd
from conftest import copy_workflow, explain, run_snakemake, write_config

from galmorph.catalogue.classes import CLASS_NAMES


def test_first_stages_run_end_to_end(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    write_config(workdir / "config" / "tiny.yaml")
    targets = ["results/sample/train.csv", "results/sample/test.csv", "results/sample/summary.json"]

    dry = run_snakemake(workdir, *targets, "-n", "--configfile", "config/tiny.yaml")
    assert dry.returncode == 0, explain(dry)
    for rule in ("demo_sky", "download_catalogue", "image_index", "sample"):
        assert f"rule {rule}:" in dry.stdout or f"localrule {rule}:" in dry.stdout, rule

    result = run_snakemake(workdir, *targets, "--configfile", "config/tiny.yaml")
    assert result.returncode == 0, explain(result)

    # The "download" copied the demo remote into resources/demo/.
    assert (workdir / "resources/demo/gz2_hart16.csv.gz").stat().st_size > 0
    index = (workdir / "resources/demo/image_index.txt").read_text().split()
    assert len(index) == 120

    train = pd.read_csv(workdir / "results/sample/train.csv")
    test = pd.read_csv(workdir / "results/sample/test.csv")
    assert list(train.columns[:4]) == ["dr7objid", "asset_id", "gz2_class", "class"]
    assert len(train) == 40 and len(test) == 40
    assert not set(train["dr7objid"]) & set(test["dr7objid"])
    assert set(train["class"]) | set(test["class"]) <= set(CLASS_NAMES)
    assert set(train["asset_id"].astype(str)) <= set(index)

    summary = json.loads((workdir / "results/sample/summary.json").read_text())
    assert summary["counts"]["malformed_class"] == 2
    assert sum(summary["malformed"].values()) == 2
    log = (workdir / "logs/sample/sample.log").read_text()
    assert "excluded 2 galaxies whose gz2_class does not follow the grammar" in log
    for split in ("train", "test"):
        png = workdir / f"results/sample/class_histogram_{split}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"

    again = run_snakemake(workdir, *targets, "-n", "--configfile", "config/tiny.yaml")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout, explain(again)
