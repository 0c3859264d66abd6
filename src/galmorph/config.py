"""Configuration checks run before any job: one clear message per problem."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from galmorph.cnn.settings import MIN_INPUT_SIZE
from galmorph.errors import GalmorphError
from galmorph.images.packing import COMPRESSORS

#: Galaxies in gz2_hart16 (Hart et al. 2016): no sample can be larger.
GZ2_CATALOGUE_ROWS = 239_695
#: Smallest input side of each CNN preset (owned by galmorph.cnn.settings, TensorFlow-free).
CNN_MIN_INPUT_SIZE = MIN_INPUT_SIZE


class ConfigError(GalmorphError, ValueError):
    """A configuration that cannot run; the message names the key."""


def load_schema(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _key(path) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    """Turn one jsonschema error into a sentence that names the config key."""
    where = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        parts = []
        for name in extra:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            parts.append(f"unknown key '{_key([*error.absolute_path, name])}'{hint}")
        return "; ".join(parts) + f". Allowed here: {', '.join(allowed)}"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"missing key '{_key([*error.absolute_path, missing])}'"
    if error.validator == "type":
        return (
            f"config key '{where}' must be of type {error.validator_value}, "
            f"got {error.instance!r} ({type(error.instance).__name__})"
            + (
                " (YAML reads 1e-3 as text: write 1.0e-3)"
                if isinstance(error.instance, str) and "e" in error.instance.lower()
                else ""
            )
        )
    if error.validator == "enum":
        return f"config key '{where}' is {error.instance!r}; choose one of {error.validator_value}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {
            "minimum": ">=",
            "exclusiveMinimum": ">",
            "maximum": "<=",
            "exclusiveMaximum": "<",
        }[error.validator]
        limit = error.validator_value
        return f"config key '{where}' is {error.instance!r}; it must be {relation} {limit}"
    return f"config key '{where}': {error.message}"


def schema_errors(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """All schema violations of ``config``, one sentence each."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    return [_describe(error) for error in errors]


def consistency_errors(config: Mapping[str, Any]) -> list[str]:
    """Problems no schema can express: limits that depend on other keys."""
    checks = (
        _sample_errors,
        _dataset_errors,
        _crop_errors,
        _cnn_input_errors,
        _ensemble_errors,
        _mirror_errors,
        _class_bias_errors,
        _reduction_errors,
        _archive_errors,
        _count_errors,
    )
    return [problem for check in checks for problem in check(config)]


def _sample_errors(config: Mapping[str, Any]) -> list[str]:
    """The sample fits in what the dataset supplies."""
    sample = config["sample"]
    wanted = sample["n_train"] + sample["n_test"]
    if config["dataset"] == "demo":
        demo = config["demo"]
        supply = demo["n_galaxies"] - demo["n_malformed"]
        if wanted > supply:
            return [
                f"sample.n_train + sample.n_test = {wanted} but the demo sky has only "
                f"{supply} labelled galaxies with an image (demo.n_galaxies - demo.n_malformed): "
                "lower the sample sizes or raise demo.n_galaxies"
            ]
    elif config["dataset"] == "gz2" and wanted > GZ2_CATALOGUE_ROWS:
        return [
            f"sample.n_train + sample.n_test = {wanted} but gz2_hart16 has only "
            f"{GZ2_CATALOGUE_ROWS} galaxies"
        ]
    return []


def _dataset_errors(config: Mapping[str, Any]) -> list[str]:
    """What the chosen dataset needs: URLs for gz2, the folder section for folder."""
    problems = []
    images = config["images"]
    if config["dataset"] == "gz2":
        for key in ("hart16_url", "mapping_url"):
            if not config["catalogue"][key]:
                problems.append(f"config key 'catalogue.{key}' is empty; dataset gz2 needs a URL")
        source_key = {"zip": "zip_url", "cutout": "cutout_url", "directory": "directory"}
        key = source_key[images["source"]]
        if not images.get(key):
            problems.append(
                f"config key 'images.{key}' is empty; images.source {images['source']!r} needs it"
            )
    if config["cnn"]["vote_fractions"]["enabled"] and config["dataset"] not in ("demo", "gz2"):
        problems.append(
            f"config key 'cnn.vote_fractions.enabled' is true but dataset {config['dataset']!r} "
            "has no Galaxy Zoo 2 votes (they come from gz2_hart16: dataset demo or gz2); "
            "set it to false"
        )
    if config["dataset"] == "folder":
        folder = config.get("folder")
        required = ("images", "labels", "id_column", "label_column", "filename_pattern")
        if folder is None:
            problems.append("dataset is 'folder' but the 'folder' section is missing")
        else:
            problems += [
                f"missing key 'folder.{key}' (dataset is 'folder')"
                for key in required
                if key not in folder
            ]
    return problems


def _crop_errors(config: Mapping[str, Any]) -> list[str]:
    """Every crop fits in the stored images."""
    size = config["images"]["size"]
    crops = {
        "reduction.crop": config["reduction"]["crop"],
        "cnn.crop": config["cnn"]["crop"],
        "cnn.measure_crop": config["cnn"]["measure_crop"],
    }
    return [
        f"config key '{key}' is {value}, larger than the stored images (images.size = {size})"
        for key, value in crops.items()
        if value > size
    ]


def _cnn_input_errors(config: Mapping[str, Any]) -> list[str]:
    """The network input is large enough for the preset and no larger than its crop."""
    cnn = config["cnn"]
    problems = []
    smallest = CNN_MIN_INPUT_SIZE.get(cnn["architecture"], 1)
    if cnn["input_size"] < smallest:
        problems.append(
            f"config key 'cnn.input_size' is {cnn['input_size']}, too small for "
            f"cnn.architecture {cnn['architecture']!r} (at least {smallest} pixels)"
        )
    if cnn["input_size"] > cnn["crop"]:
        problems.append(
            f"config key 'cnn.input_size' ({cnn['input_size']}) is larger than "
            f"cnn.crop ({cnn['crop']}): the network would see upsampled pixels"
        )
    return problems


def _ensemble_errors(config: Mapping[str, Any]) -> list[str]:
    """The ensemble votes with the trained variants listed: two at least. The measures
    variant needs measures."""
    from galmorph.cnn import VARIANTS

    cnn = config["cnn"]
    variants = cnn["variants"]
    problems = []
    trained = [name for name in VARIANTS if name in variants]
    if "ensemble" in variants and len(trained) < 2:
        listed = trained[0] if trained else "no trained variant"
        problems.append(
            f"config key 'cnn.variants' lists ensemble beside {listed} alone: the ensemble "
            f"joins the trained variants listed ({', '.join(VARIANTS)}); list two or more "
            "(the unbalanced and the balanced networks, for example)"
        )
    if "measures" in variants and not cnn["measure_crop"]:
        problems.append(
            "config key 'cnn.variants' lists measures, but cnn.measure_crop is 0: the "
            "measures variant learns from the measured morphology; set cnn.measure_crop"
        )
    return problems


def _reduction_errors(config: Mapping[str, Any]) -> list[str]:
    """An incremental PCA keeps at most as many components as its first batch has rows."""
    reduction, sample = config["reduction"], config["sample"]
    side = reduction["preprocess"].get("size") or reduction["crop"]
    limit = min(reduction["batch_size"], sample["n_train"], 3 * side**2)
    if reduction["representation"] == "pca" and reduction["n_components"] > limit:
        return [
            f"config key 'reduction.n_components' is {reduction['n_components']}, but an "
            f"incremental PCA needs at most min(reduction.batch_size, sample.n_train, "
            f"3 x side^2) = {limit} (side: reduction.preprocess.size, else reduction.crop)"
        ]
    return []


def _archive_errors(config: Mapping[str, Any]) -> list[str]:
    """The archive level is one the compressor takes."""
    images = config["images"]
    low, high = COMPRESSORS[images["archive_compressor"]]
    if not low <= images["archive_gzip_level"] <= high:
        return [
            f"config key 'images.archive_gzip_level' is {images['archive_gzip_level']}, but "
            f"images.archive_compressor {images['archive_compressor']!r} takes {low}-{high}"
        ]
    return []


def _count_errors(config: Mapping[str, Any]) -> list[str]:
    """No more clusters than training galaxies, no more shards than galaxies in a split."""
    sample, clustering, images = config["sample"], config["clustering"], config["images"]
    counts = {
        "clustering.kmeans.n_clusters": clustering["kmeans"]["n_clusters"],
        "clustering.hierarchical.n_clusters": clustering["hierarchical"]["n_clusters"],
        "clustering.gmm.n_components": clustering["gmm"]["n_components"],
    }
    problems = [
        f"config key '{key}' is {value}, more clusters than training galaxies "
        f"(sample.n_train = {sample['n_train']})"
        for key, value in counts.items()
        if value > sample["n_train"]
    ]
    som = clustering["som"]
    if som["rows"] * som["cols"] > sample["n_train"]:
        problems.append(
            f"config keys 'clustering.som.rows' x 'clustering.som.cols' = "
            f"{som['rows'] * som['cols']} map cells, more than training galaxies "
            f"(sample.n_train = {sample['n_train']})"
        )
    if clustering["hdbscan"]["min_cluster_size"] > sample["n_train"]:
        problems.append(
            f"config key 'clustering.hdbscan.min_cluster_size' is "
            f"{clustering['hdbscan']['min_cluster_size']}: no cluster can be that large with "
            f"sample.n_train = {sample['n_train']} training galaxies"
        )
    if images["n_shards"] > min(sample["n_train"], sample["n_test"]):
        problems.append(
            f"config key 'images.n_shards' is {images['n_shards']}, more shards than "
            "galaxies in a split; every shard must hold at least one galaxy"
        )
    return problems


def _mirror_errors(config: Mapping[str, Any]) -> list[str]:
    """Mirror pairs must name known classes; mirrors need a partner for every chiral class."""
    from galmorph.catalogue.classes import chiral_classes

    cnn = config["cnn"]
    pairs = cnn["mirror_pairs"]
    problems = []
    named = [name for pair in pairs for name in pair]
    if len(set(named)) != len(named) or any(a == b for a, b in pairs):
        problems.append(
            f"config key 'cnn.mirror_pairs' is {pairs}: each class may appear in one pair only, "
            "paired with another class"
        )
    if config["dataset"] != "folder":
        return problems  # GZ2's simplified classes state no winding
    classes = config["folder"].get("classes") or []
    unknown = [name for name in named if classes and name not in classes]
    if unknown:
        problems.append(
            f"config key 'cnn.mirror_pairs' names {', '.join(unknown)}, not in folder.classes"
        )
    unpaired = [name for name in chiral_classes(classes) if name not in named]
    asked = [
        key
        for key, on in (
            ("cnn.augment.mirror", cnn["augment"]["enabled"] and cnn["augment"]["mirror"]),
            ("cnn.tta.mirror", cnn["tta"]["mirror"]),
            ("cnn.balanced.flips", cnn["balanced"]["flips"]),
        )
        if on
    ]
    if unpaired and asked:
        problems.append(
            f"config key '{asked[0]}' mirrors images, but class(es) {', '.join(unpaired)} have "
            "a winding a mirror reverses: declare their partners in cnn.mirror_pairs "
            "(e.g. [[spiral_cw, spiral_acw]]) or turn mirrors off"
        )
    return problems


def _class_bias_errors(config: Mapping[str, Any]) -> list[str]:
    """A class bias names a class of the dataset, and mirror partners share one bias."""
    from galmorph.catalogue.classes import CLASS_NAMES

    if config["dataset"] == "folder":
        classes = config["folder"].get("classes") or []
    else:
        classes = list(CLASS_NAMES)
    problems = []
    for variant, biases in config["cnn"]["class_bias"].items():
        unknown = [name for name in biases if classes and name not in classes]
        if unknown:
            problems.append(
                f"config key 'cnn.class_bias.{variant}' names {', '.join(unknown)}, not a "
                f"class of the dataset ({', '.join(classes)})"
            )
        for a, b in config["cnn"]["mirror_pairs"]:
            if biases.get(a, 0.0) != biases.get(b, 0.0):
                problems.append(
                    f"config key 'cnn.class_bias.{variant}' gives {a} and {b} different "
                    "biases: a mirror turns one into the other, so they share one"
                )
    return problems


#: The most values (mappings, lists and scalars) a config may hold once its YAML
#: aliases are expanded: the fullest real config holds a few hundred.
MAX_CONFIG_NODES = 100_000


def expanded_size(node: Any, *, limit: int = MAX_CONFIG_NODES) -> int:
    """How many values ``node`` holds with every shared (aliased) part counted each time.

    YAML aliases make a config a graph whose expansion can be exponential (nine
    lists of nine aliases of the list before: 9**9 values from 1 kB): the count is
    memoised by object, so it costs one visit per distinct value, and it stops as
    soon as it passes ``limit`` (the returned size is then > ``limit``).
    """
    sizes: dict[int, int] = {}

    def size(value: Any) -> int:
        if not isinstance(value, Mapping | list | tuple):
            return 1
        known = sizes.get(id(value))
        if known is not None:
            return known
        sizes[id(value)] = limit + 1  # a value that holds itself counts as too large
        children = value.values() if isinstance(value, Mapping) else value
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        sizes[id(value)] = total
        return total

    return size(node)


def validate(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` listing every problem of ``config``.

    A config too large once its YAML aliases are expanded is refused before any
    other check (the schema's checks would take hours on it). Schema problems
    are reported next; consistency checks run only on a config that passes the
    schema, so they can rely on types and keys.
    """
    if expanded_size(config) > MAX_CONFIG_NODES:
        raise ConfigError(
            f"invalid configuration: it holds more than {MAX_CONFIG_NODES:,} values once its "
            "YAML aliases (*name) are expanded; write the values out, or remove the aliases "
            "that repeat a list inside itself"
        )
    problems = schema_errors(config, schema)
    if not problems:
        problems = consistency_errors(config)
    if problems:
        raise ConfigError(
            "invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )


def _allowed(node: Mapping[str, Any], definitions: Mapping[str, Any]) -> str:
    """What a schema node accepts, in words: the enum, or the type and its bounds."""
    if "$ref" in node:
        node = {**definitions[node["$ref"].rsplit("/", 1)[-1]], **node}
    if "enum" in node:
        return " / ".join(str(value) for value in node["enum"])
    kind = node.get("type", "")
    kind = " or ".join(str(k) for k in kind) if isinstance(kind, list) else str(kind)
    bounds = [
        f"{symbol} {node[key]}"
        for key, symbol in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        )
        if key in node
    ]
    return ", ".join([kind, *bounds]) if kind else ", ".join(bounds)


def _default(defaults: Mapping[str, Any], path: list[str]) -> str:
    node: Any = defaults
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return ""
        node = node[key]
    if isinstance(node, Mapping):
        return ""
    return f"`{json.dumps(node)}`"


def reference_markdown(schema: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """``config/README.md``: every key with its default, what it accepts and its description,
    generated from the schema's ``description:``s and ``config/config.yaml``."""
    definitions = schema.get("definitions", {})
    out = [
        "# Configuration reference",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` (descriptions, accepted values)",
        "and `config/config.yaml` (defaults) by `python -m galmorph.config > config/README.md`;",
        "a test keeps it current. Overlays (`config/gz2.yaml`, `config/sdss_gz1.yaml`,",
        "`config/study_chain.yaml`) change some of these values; unknown keys are errors.",
        "",
        "| key | default | accepts | description |",
        "|---|---|---|---|",
    ]

    def walk(node: Mapping[str, Any], path: list[str]) -> None:
        for key, child in (node.get("properties") or {}).items():
            here = [*path, key]
            description = str(child.get("description", "")).replace("|", "\\|").strip()
            accepts = "" if "properties" in child else _allowed(child, definitions)
            out.append(
                f"| `{'.'.join(here)}` | {_default(defaults, here)} | {accepts} | {description} |"
            )
            if "properties" in child:
                walk(child, here)

    walk(schema, [])
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    _repo = Path(__file__).resolve().parents[2]
    _schema = load_schema(_repo / "workflow/schemas/config.schema.yaml")
    with open(_repo / "config/config.yaml") as _handle:
        print(reference_markdown(_schema, yaml.safe_load(_handle)), end="")
