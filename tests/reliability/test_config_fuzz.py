"""Generated invalid configurations: each one is refused up front with a message naming the key.

Hypothesis mutates config/config.yaml one key at a time (wrong type, out of
range, wrong choice, unknown key, removed required key); a second property
draws schema-valid values for the keys that constrain each other and checks
that whatever passes the checks satisfies what the later stages assume. A
few invalid configs go through ``snakemake -n`` to show no job starts.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, run_snakemake, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galmorph.config import CNN_MIN_INPUT_SIZE, ConfigError, load_schema, validate

SCHEMA = load_schema(REPO / "workflow/schemas/config.schema.yaml")
DEFAULT = yaml.safe_load((REPO / "config/config.yaml").read_text())


def resolve(node: dict) -> dict:
    """A schema node with its ``$ref`` (to ``#/definitions/...``) replaced by the target."""
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = {**SCHEMA["definitions"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def leaves(config: dict, schema: dict, path=()):
    """(path, value, schema node) of every key in ``config`` that the schema describes."""
    for key, value in config.items():
        node = resolve(schema.get("properties", {}).get(key, {}))
        yield (*path, key), value, node, key in schema.get("required", [])
        if isinstance(value, dict) and node.get("type") == "object":
            yield from leaves(value, node, (*path, key))


KEYS = list(leaves(DEFAULT, SCHEMA))


def dotted(path) -> str:
    return ".".join(path)


def set_at(config: dict, path, value=None, delete=False) -> dict:
    config = copy.deepcopy(config)
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return config


def wrong_types(node: dict):
    """Values of a JSON type the schema node does not allow."""
    allowed = node.get("type")
    if allowed is None and "enum" in node:
        allowed = "string"
    allowed = {allowed} if isinstance(allowed, str) else set(allowed or ())
    if "number" in allowed:
        allowed.add("integer")
    candidates = {
        "string": st.sampled_from(["1e-3", "ten", ""]),
        "integer": st.integers(-5, 5),
        "boolean": st.booleans(),
        "array": st.lists(st.integers(0, 3), max_size=2),
        "object": st.just({"nested": 1}),
        "number": st.floats(0.1, 0.9),
    }
    if "integer" in allowed:
        candidates.pop("number")
    return st.one_of([s for t, s in candidates.items() if t not in allowed and t != "boolean"])


@st.composite
def invalid_configs(draw):
    """(config, dotted key that must be named, kind of mutation)."""
    kinds = ["type", "unknown", "remove"]
    path, _, node, required = draw(st.sampled_from(KEYS))
    numeric = {k for k in ("minimum", "maximum", "exclusiveMinimum") if k in node}
    if numeric:
        kinds.append("range")
    if "enum" in node:
        kinds.append("enum")
    kind = draw(st.sampled_from(kinds))
    if kind == "remove" and not required:
        kind = "type"
    if kind == "type":
        value = draw(wrong_types(node))
        if "enum" in node and value in node["enum"]:
            value = ["not", "a", "choice"]
        return set_at(DEFAULT, path, value), dotted(path), kind
    if kind == "unknown":
        parent = path[:-1]
        name = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12))
        container = DEFAULT
        for key in parent:
            container = container[key]
        if name in container:
            name += "_x"
        return set_at(DEFAULT, (*parent, name), 1), dotted((*parent, name)), kind
    if kind == "remove":
        return set_at(DEFAULT, path, delete=True), dotted(path), kind
    if kind == "enum":
        value = draw(st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8))
        if value in node["enum"]:
            value += "_not"
        return set_at(DEFAULT, path, value), dotted(path), kind
    integer = node.get("type") == "integer"
    if "maximum" in node and draw(st.booleans()):
        value = node["maximum"] + draw(st.integers(1, 1000) if integer else st.floats(0.01, 1e6))
    else:
        low = node.get("minimum", node.get("exclusiveMinimum"))
        gap = draw(st.integers(1, 1000) if integer else st.floats(0.01, 1e6))
        value = low - gap if "minimum" in node else low - (gap if integer else gap) * 1.0
        if "exclusiveMinimum" in node and not integer and draw(st.booleans()):
            value = low  # the bound itself is excluded
    return set_at(DEFAULT, path, value), dotted(path), kind


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_configs())
def test_every_mutated_config_is_refused_naming_the_key(case):
    config, key, kind = case
    with pytest.raises(ConfigError) as caught:
        validate(config, SCHEMA)
    message = str(caught.value)
    assert message.startswith("invalid configuration:")
    assert f"'{key}'" in message, (kind, message)


SIZES = st.sampled_from([16, 32, 48, 64, 100, 174, 256, 424])


@st.composite
def interacting_configs(draw):
    """Schema-valid values of the keys that limit each other."""
    config = copy.deepcopy(DEFAULT)
    n_train, n_test = draw(st.integers(1, 600)), draw(st.integers(1, 600))
    config["sample"] |= {"n_train": n_train, "n_test": n_test}
    config["images"] |= {"size": draw(SIZES), "n_shards": draw(st.integers(1, 8))}
    config["reduction"] |= {
        "crop": draw(SIZES),
        "n_components": draw(st.integers(1, 300)),
        "batch_size": draw(st.integers(1, 300)),
        "representation": draw(st.sampled_from(["pca", "descriptors"])),
    }
    config["cnn"] |= {
        "architecture": draw(st.sampled_from(sorted(CNN_MIN_INPUT_SIZE))),
        "crop": draw(SIZES),
        "input_size": draw(SIZES),
    }
    for section, key in (("kmeans", "n_clusters"), ("gmm", "n_components")):
        config["clustering"][section][key] = draw(st.integers(2, 50))
    return config


@settings(max_examples=300, deadline=None)
@given(interacting_configs())
def test_a_config_that_passes_satisfies_what_later_stages_assume(config):
    try:
        validate(config, SCHEMA)
    except ConfigError as error:
        assert "config key '" in str(error) or "sample.n_train" in str(error)
        return
    sample, images, reduction, cnn = (config[k] for k in ("sample", "images", "reduction", "cnn"))
    assert reduction["crop"] <= images["size"] and cnn["crop"] <= images["size"]
    assert CNN_MIN_INPUT_SIZE[cnn["architecture"]] <= cnn["input_size"] <= cnn["crop"]
    if reduction["representation"] == "pca":  # the descriptors have no components
        assert reduction["n_components"] <= min(reduction["batch_size"], sample["n_train"])
    assert images["n_shards"] <= min(sample["n_train"], sample["n_test"])
    assert config["clustering"]["kmeans"]["n_clusters"] <= sample["n_train"]
    assert sample["n_train"] + sample["n_test"] <= config["demo"]["n_galaxies"]


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"cnn": {"learning_rate": "1e-3"}}, "cnn.learning_rate"),
        ({"clustering": {"kmeans": {"n_cluster": 4}}}, "clustering.kmeans.n_cluster"),
        ({"cnn": {"architecture": "study", "input_size": 24, "crop": 48}}, "cnn.input_size"),
    ],
)
def test_snakemake_stops_before_any_job(tmp_path, overrides, key):
    workdir = copy_workflow(tmp_path / "wf")
    write_config(workdir / "config/tiny.yaml", overrides)
    result = run_snakemake(workdir, "-n", "--configfile", "config/tiny.yaml")
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "invalid configuration:" in console and f"'{key}'" in console, console
    assert "rule " not in console  # no job was even planned
    assert not Path(workdir / "results").exists()
