# galmorph: galaxy morphology from Galaxy Zoo 2 images.
#   snakemake --cores all                                  # built-in demo sky
#   snakemake --cores all --configfile config/gz2.yaml     # the real release
#   snakemake --workflow-profile profiles/slurm            # on a SLURM cluster


configfile: "config/config.yaml"


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
