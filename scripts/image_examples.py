"""Rule image_examples: a grid of stored images of a split, class by class."""

import _bootstrap

from galmorph.gallery import plot_examples


def main(snakemake):
    plot_examples(
        list(snakemake.input.shards),
        snakemake.output.figure,
        per_class=snakemake.params.per_class,
        crop=snakemake.params.crop,
        title=f"{snakemake.wildcards.split} split: stored images "
        f"(box: the {snakemake.params.crop}px crop of the reduction)",
    )


_bootstrap.run(main, snakemake)  # noqa: F821
