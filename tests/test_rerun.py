"""After a config or code edit, Snakemake reruns exactly the jobs the edit touches.

Every case is a dry run (default rerun triggers: mtime, params, input,
software-env, code) in the shared finished tiny run, with the edited
configuration in a file of its own; code edits are undone, mtime included.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import pytest
from conftest import TINY_CONFIG, explain, run_snakemake, write_config

pytestmark = pytest.mark.slow

_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n?)*)", re.MULTILINE)
_WILDCARDS = re.compile(r"^\s+wildcards: (.+)$", re.MULTILINE)

SPLITS = ("train", "test")
SHARD = "0000"  # the tiny run has one shard per split
METHODS = ("kmeans", "hierarchical", "hdbscan", "som", "gmm")
VARIANTS = ("unbalanced", "balanced")  # the CNNs; the ensemble joins them and "measures"
assert TINY_CONFIG["images"]["n_shards"] == 1


def job(rule: str, **wildcards: str) -> str:
    """A job's name: its rule and wildcards, e.g. ``cluster[method=kmeans]``."""
    if not wildcards:
        return rule
    return f"{rule}[{', '.join(f'{k}={v}' for k, v in sorted(wildcards.items()))}]"


def jobs(rule: str, key: str, values: Iterable[str], **fixed: str) -> set[str]:
    return {job(rule, **{key: value}, **fixed) for value in values}


SAMPLE = {"sample"}
IMAGES = (
    jobs("fetch_images", "split", SPLITS, shard=SHARD)
    | jobs("jpg_to_hdf5", "split", SPLITS, shard=SHARD)
    | jobs("pack_jpg", "split", SPLITS)
    | jobs("pack_hdf5", "split", SPLITS)
    | jobs("image_examples", "split", SPLITS)
)
REDUCTION = {"fit_reduction"} | jobs("reduce_split", "split", SPLITS)
CLUSTERING = jobs("cluster", "method", METHODS) | {"map_training_split", "clustering_summary"}
ENSEMBLE = {
    "assemble_cnn_ensemble",
    "attach_decision_rule[variant=ensemble]",
    "evaluate_cnn[variant=ensemble]",
}
MEASURES = {
    "train_measures_network",
    "attach_decision_rule[variant=measures]",
    "evaluate_cnn[variant=measures]",
}
CNN = (
    {"balance_training_set", "cnn_summary"}
    | MEASURES
    | jobs("train_cnn", "variant", VARIANTS)
    | jobs("attach_decision_rule", "variant", VARIANTS)
    | jobs("evaluate_cnn", "variant", VARIANTS)
    | ENSEMBLE
)
#: The CNN summary sets the networks beside the clustering scores, so it follows both.
SUMMARIES = {"clustering_summary", "cnn_summary"}


def scheduled(output: str) -> dict[str, str]:
    """Job name -> its block of a dry run's listing (the target rule ``all`` left out)."""
    found = {}
    for rule, body in _JOB.findall(output):
        if rule == "all":
            continue
        wildcards = _WILDCARDS.search(body)
        pairs = (
            dict(pair.split("=", 1) for pair in wildcards.group(1).split(", ")) if wildcards else {}
        )
        found[job(rule, **pairs)] = body
    return found


def dry_run(run, configfile: str | None = None) -> dict[str, str]:
    result = run_snakemake(run.workdir, "--dry-run", "--configfile", configfile or run.configfile)
    assert result.returncode == 0, explain(result)
    return scheduled(result.stdout + result.stderr)


def dry_run_with(run, overrides: dict, tmp_name: str) -> dict[str, str]:
    """Dry run with the tiny configuration plus ``overrides``."""
    path = write_config(run.workdir / "config" / f"{tmp_name}.yaml", overrides)
    try:
        return dry_run(run, str(path.relative_to(run.workdir)))
    finally:
        path.unlink()


def test_listing_parser_reads_rules_and_wildcards():
    listing = (
        "rule cluster:\n    input: a\n    jobid: 3\n    wildcards: method=kmeans\n\n"
        "localrule fetch_images:\n    wildcards: split=train, shard=0000\n    threads: 1\n"
        "rule sample:\n    reason: Params have changed\n\nlocalrule all:\n    jobid: 0\n"
    )
    assert set(scheduled(listing)) == {
        "cluster[method=kmeans]",
        "fetch_images[shard=0000, split=train]",
        "sample",
    }


def test_nothing_changed_schedules_nothing(finished_run):
    assert dry_run(finished_run) == {}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"clustering": {"kmeans": {"n_clusters": 3}}},
            {"cluster[method=kmeans]"} | SUMMARIES,
            id="one clustering parameter",
        ),
        pytest.param(
            {"clustering": {"som": {"sigma": 0.5}}},
            {"cluster[method=som]"} | SUMMARIES,
            id="another clustering parameter",
        ),
        pytest.param(
            {"cnn": {"epochs": 2}},
            CNN - {"balance_training_set"} - MEASURES,
            id="cnn epochs retrain the CNNs, not the measures variant",
        ),
        pytest.param(
            {"cnn": {"measures_network": {"hidden": 8}}},
            MEASURES | ENSEMBLE | {"cnn_summary"},
            id="the measures networks touch their variant and the ensemble only",
        ),
        pytest.param(
            {"cnn": {"balanced": {"per_class": 5}}},
            {"balance_training_set", "train_cnn[variant=balanced]"}
            | {"attach_decision_rule[variant=balanced]", "evaluate_cnn[variant=balanced]"}
            | {"cnn_summary"}
            | ENSEMBLE,
            id="balancing touches the balanced variant and the ensemble only",
        ),
        pytest.param(
            {"cnn": {"prior_shift": {"ensemble": 0.3}}},
            {"attach_decision_rule[variant=ensemble]", "evaluate_cnn[variant=ensemble]"}
            | {"cnn_summary"},
            id="a variant's prior shift re-evaluates that variant only",
        ),
        pytest.param(
            {"cnn": {"class_bias": {"balanced": {"Ec": 0.5}}}},
            {"attach_decision_rule[variant=balanced]", "evaluate_cnn[variant=balanced]"}
            | {"cnn_summary"},
            id="a variant's class bias re-evaluates that variant only",
        ),
        pytest.param(
            {"cnn": {"tta": {"rotations": 2}}},
            jobs("attach_decision_rule", "variant", (*VARIANTS, "measures", "ensemble"))
            | jobs("evaluate_cnn", "variant", (*VARIANTS, "measures", "ensemble"))
            | {"cnn_summary"},
            id="test-time views re-evaluate every variant and retrain none",
        ),
        pytest.param(
            {"reduction": {"n_components": 5}},
            REDUCTION | CLUSTERING | {"cnn_summary"},
            id="component count",
        ),
        pytest.param(
            {"reduction": {"crop": 40}},
            # The image examples outline the reduction's crop, so they follow it too.
            REDUCTION | CLUSTERING | {"cnn_summary"} | jobs("image_examples", "split", SPLITS),
            id="crop",
        ),
        pytest.param(
            {"sample": {"n_train": 38}},
            SAMPLE | IMAGES | REDUCTION | CLUSTERING | CNN,
            id="sample size",
        ),
    ],
)
def test_config_edit_reruns_only_what_it_touches(finished_run, overrides, expected):
    assert set(dry_run_with(finished_run, overrides, "edited")) == expected


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("clustering_summary.py", {"clustering_summary", "cnn_summary"}),
        ("train_cnn.py", CNN - {"balance_training_set"} - MEASURES),
        ("fit_reduction.py", REDUCTION | CLUSTERING | {"cnn_summary"}),
    ],
)
def test_script_edit_reruns_its_rule(finished_run, script, expected):
    path = finished_run.workdir / "scripts" / script
    original, stat = path.read_bytes(), path.stat()
    try:
        path.write_bytes(original + b"\n# edited\n")
        found = dry_run(finished_run)
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert set(found) == expected
    rule = script.removesuffix(".py")
    edited = [body for name, body in found.items() if name.split("[")[0] == rule]
    assert edited and all("Code has changed" in body for body in edited), found
    assert dry_run(finished_run) == {}, "the edit was not undone"


def _reversed_keys(value):
    """The same configuration with the keys of every mapping in reverse order."""
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(list(value))}
    return value


def test_the_same_config_with_its_keys_in_another_order_schedules_nothing(finished_run):
    """A reformatted config (keys reordered at every level, e.g. by a tool that sorts
    them) is the same config: no job, and above all no CNN training, runs again."""
    import yaml

    path = finished_run.workdir / "config" / "config.yaml"
    original, stat = path.read_bytes(), path.stat()
    try:
        reordered = _reversed_keys(yaml.safe_load(original))
        assert list(reordered) != list(yaml.safe_load(original))
        path.write_text(yaml.safe_dump(reordered, sort_keys=False))
        assert dry_run(finished_run) == {}
        path.write_text(yaml.safe_dump(reordered, sort_keys=True))
        assert dry_run(finished_run) == {}
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_overlays_merged_in_another_order_schedule_nothing(finished_run):
    """The tiny configuration split into two overlays (the CNN keys, everything else) is the
    same configuration whichever of them --configfile merges first, each written with its
    keys sorted: no job runs again."""
    import yaml
    from conftest import TINY_CONFIG

    config_dir = finished_run.workdir / "config"
    cnn_part = {"cnn": _reversed_keys(TINY_CONFIG["cnn"])}
    rest = {key: value for key, value in TINY_CONFIG.items() if key != "cnn"}
    paths = [config_dir / "overlay_cnn.yaml", config_dir / "overlay_rest.yaml"]
    try:
        paths[0].write_text(yaml.safe_dump(cnn_part, sort_keys=True))
        paths[1].write_text(yaml.safe_dump(_reversed_keys(rest), sort_keys=False))
        for order in (paths, paths[::-1]):
            names = [str(path.relative_to(finished_run.workdir)) for path in order]
            result = run_snakemake(finished_run.workdir, "--dry-run", "--configfile", *names)
            assert result.returncode == 0, explain(result)
            assert scheduled(result.stdout + result.stderr) == {}, names
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
