import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from galmorph.config import ConfigError, load_schema, validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(REPO / "workflow/schemas/config.schema.yaml")


def default_config():
    with open(REPO / "config/config.yaml") as handle:
        return yaml.safe_load(handle)


def merged(base, override):
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def error_of(config):
    with pytest.raises(ConfigError) as caught:
        validate(config, SCHEMA)
    return str(caught.value)


def test_shipped_configs_are_valid():
    base = default_config()
    validate(base, SCHEMA)
    for name in ("gz2.yaml", "sdss_gz1.yaml", "study_chain.yaml"):
        with open(REPO / "config" / name) as handle:
            validate(merged(base, yaml.safe_load(handle)), SCHEMA)


def test_negative_cluster_count_names_the_key():
    config = default_config()
    config["clustering"]["kmeans"]["n_clusters"] = -3
    message = error_of(config)
    assert "clustering.kmeans.n_clusters" in message
    assert "-3" in message and ">= 2" in message


def test_misspelled_key_is_named_with_a_suggestion():
    config = default_config()
    config["clustering"]["kmeans"]["n_cluster"] = config["clustering"]["kmeans"].pop("n_clusters")
    message = error_of(config)
    assert "unknown key 'clustering.kmeans.n_cluster'" in message
    assert "did you mean 'n_clusters'" in message


def test_misspelled_top_level_key():
    config = default_config()
    config["sampel"] = config.pop("sample")
    message = error_of(config)
    assert "unknown key 'sampel'" in message and "did you mean 'sample'" in message
    assert "missing key 'sample'" in message


def test_string_where_a_number_belongs():
    config = default_config()
    config["sample"]["n_train"] = "many"
    message = error_of(config)
    assert "sample.n_train" in message and "integer" in message and "'many'" in message


def test_yaml_exponent_written_as_text_gets_a_hint():
    config = default_config()
    config["clustering"]["gmm"]["tol"] = "1e-7"
    assert "write 1.0e-3" in error_of(config)


def test_enum_lists_the_choices():
    config = default_config()
    config["images"]["source"] = "ftp"
    message = error_of(config)
    assert "images.source" in message and "'zip'" in message and "'cutout'" in message


def test_sample_larger_than_the_demo_sky():
    config = default_config()
    config["sample"]["n_train"] = config["demo"]["n_galaxies"]
    message = error_of(config)
    assert "sample.n_train + sample.n_test" in message and "demo.n_galaxies" in message


def test_sample_larger_than_the_gz2_catalogue():
    config = merged(default_config(), {"dataset": "gz2", "sample": {"n_train": 240_000}})
    config["catalogue"]["hart16_url"] = config["catalogue"]["mapping_url"] = "https://x/y"
    config["images"]["zip_url"] = "https://x/z.zip"
    assert "gz2_hart16 has only 239695 galaxies" in error_of(config)


def test_components_beyond_the_batch():
    config = default_config()
    config["reduction"]["representation"] = "pca"
    config["reduction"]["n_components"] = config["reduction"]["batch_size"] + 1
    assert "reduction.n_components" in error_of(config)
    # the descriptors have no components: the key is not used then
    config["reduction"]["representation"] = "descriptors"
    validate(config, SCHEMA)


def test_archive_level_outside_the_compressor_range():
    config = default_config()
    config["images"]["archive_compressor"] = "isal"
    config["images"]["archive_gzip_level"] = 6
    assert "isal' takes 0-3" in error_of(config)
    config["images"]["archive_compressor"] = "zlib"
    validate(config, SCHEMA)


def test_crop_larger_than_the_stored_images():
    config = default_config()
    config["reduction"]["crop"] = 500
    assert "reduction.crop" in error_of(config)


def test_every_problem_is_listed_at_once():
    config = default_config()
    config["seed"] = -1
    config["clustering"]["som"]["rows"] = 0
    message = error_of(config)
    assert "seed" in message and "clustering.som.rows" in message


def test_snakemake_refuses_a_bad_config_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("clustering:\n  kmeans:\n    n_clusters: -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(REPO / "config/config.yaml"), str(bad)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid configuration" in output
    assert "clustering.kmeans.n_clusters" in output
    assert "Traceback" not in output
    assert not (tmp_path / "results").exists()


def test_every_key_is_described_and_config_readme_is_current():
    """config/README.md is generated from the schema's descriptions and the defaults:
    every key has a description, and the committed file is what the generator writes."""
    from galmorph.config import reference_markdown

    undescribed = []

    def walk(node, path):
        for key, child in (node.get("properties") or {}).items():
            here = f"{path}.{key}" if path else key
            if not child.get("description"):
                undescribed.append(here)
            walk(child, here)

    walk(SCHEMA, "")
    assert not undescribed, f"schema keys without a description: {undescribed}"
    expected = reference_markdown(SCHEMA, default_config())
    assert (REPO / "config" / "README.md").read_text() == expected, (
        "config/README.md is stale: python -m galmorph.config > config/README.md"
    )


def test_an_ensemble_without_its_two_members_is_refused():
    config = default_config()
    config["cnn"]["variants"] = ["unbalanced", "ensemble"]
    message = error_of(config)
    assert "cnn.variants" in message and "balanced" in message and "ensemble" in message
    config["cnn"]["variants"] = ["measures", "ensemble"]
    assert "beside measures alone" in error_of(config)
    config["cnn"]["variants"] = ["unbalanced", "measures", "ensemble"]
    validate(config, SCHEMA)  # three trained variants: accepted


def test_the_measures_variant_without_measures_is_refused():
    config = default_config()
    config["cnn"]["variants"] = ["measures"]
    config["cnn"]["measure_crop"] = 0
    assert "lists measures, but cnn.measure_crop is 0" in error_of(config)
    config["cnn"]["measures_network"]["members"] = 0
    assert "cnn.measures_network.members" in error_of(config)


def test_a_prior_shift_for_an_unknown_variant_is_refused():
    config = default_config()
    config["cnn"]["prior_shift"]["balance"] = 0.2
    assert "cnn.prior_shift.balance" in error_of(config)


def test_a_class_bias_names_classes_of_the_dataset_and_ties_mirror_partners():
    with open(REPO / "config" / "sdss_gz1.yaml") as handle:
        sdss = merged(default_config(), yaml.safe_load(handle))
    sdss["cnn"]["class_bias"]["ensemble"] = {"edge_on": 0.8, "spiral": 1.0}
    message = error_of(sdss)
    assert "cnn.class_bias.ensemble' names spiral, not a class of the dataset" in message
    sdss["cnn"]["class_bias"]["ensemble"] = {"edge_on": 0.8, "spiral_cw": 0.5}
    assert "gives spiral_cw and spiral_acw different biases" in error_of(sdss)
    sdss["cnn"]["class_bias"]["ensemble"] = {"spiral_cw": 0.5, "spiral_acw": 0.5}
    validate(sdss, SCHEMA)
    demo = default_config()
    demo["cnn"]["class_bias"]["balanced"] = {"edge_on": 0.8}
    assert "names edge_on, not a class of the dataset (Er, Ei" in error_of(demo)
    demo["cnn"]["class_bias"]["balanced"] = {"Ec": 20}
    assert "cnn.class_bias.balanced.Ec" in error_of(demo)
