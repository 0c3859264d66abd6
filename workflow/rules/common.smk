import sys
from pathlib import Path

# The domain package lives in src/; the workflow imports it without installing it.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from galmorph import config as galmorph_config  # noqa: E402

REPO = Path(workflow.basedir)
galmorph_config.validate(
    config, galmorph_config.load_schema(REPO / "workflow/schemas/config.schema.yaml")
)

DATASET = config["dataset"]
SPLITS = ("train", "test")
DEMO_REMOTE = "resources/demo/remote"


wildcard_constraints:
    split="train|test",
    shard=r"\d{4}",


def env(name):
    """Path of a per-rule conda environment file."""
    return str(REPO / "envs" / f"{name}.yaml")


def file_url(path):
    """file:// URL of a path relative to the working directory."""
    return Path(path).resolve().as_uri()


def catalogue_url(name):
    """URL of gz2_hart16 or gz2_filename_mapping: the configured one, or the demo sky's."""
    if DATASET == "demo":
        files = {
            "hart16": "gz2_hart16.csv.gz",
            "mapping": "gz2_filename_mapping.csv",
        }
        return file_url(f"{DEMO_REMOTE}/{files[name]}")
    return config["catalogue"][f"{name}_url"]


def demo_remote_inputs(wildcards):
    """The download rules of the demo depend on the generated sky; real data has no input."""
    if DATASET != "demo":
        return {}
    return {
        "hart16": f"{DEMO_REMOTE}/gz2_hart16.csv.gz",
        "mapping": f"{DEMO_REMOTE}/gz2_filename_mapping.csv",
        "zip": f"{DEMO_REMOTE}/images_gz2.zip",
    }


def images_zip_url():
    if DATASET == "demo":
        return file_url(f"{DEMO_REMOTE}/images_gz2.zip")
    return config["images"]["zip_url"]


def sample_figures():
    return expand("results/sample/class_histogram_{split}.png", split=SPLITS)


# Each stage's .smk registers the final outputs of its stage here.
TARGETS = {}


def all_targets():
    """Everything the default run produces, stage by stage."""
    return [path for stage in TARGETS.values() for path in stage]
