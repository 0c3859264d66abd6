# galmorph: galaxy morphology from Galaxy Zoo 2 images.
#   snakemake --cores all                                  # built-in demo sky
#   snakemake --cores all --configfile config/gz2.yaml     # the real release
#   snakemake --workflow-profile profiles/slurm            # on a SLURM cluster
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# The working directory's config/config.yaml (a deployed workflow's own), else the
# repository's defaults (snakemake --directory ELSEWHERE).
DEFAULT_CONFIG = Path("config/config.yaml")
if not DEFAULT_CONFIG.exists():
    DEFAULT_CONFIG = Path(str(workflow.current_basedir)) / "config" / "config.yaml"


configfile: str(DEFAULT_CONFIG)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/catalogue.smk"
include: "workflow/rules/images.smk"
include: "workflow/rules/reduction.smk"
include: "workflow/rules/clustering.smk"
include: "workflow/rules/cnn.smk"


rule all:
    default_target: True
    input:
        all_targets(),
