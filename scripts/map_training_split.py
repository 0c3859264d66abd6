"""The 2-D map (t-SNE) of the training split's clustering features, shared by every report."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)
from threadpoolctl import threadpool_limits

from galmorph.clustering.embedding import training_map, write_map
from galmorph.reduction.pipeline import load_reduced


def main(snakemake):
    params = snakemake.params
    with threadpool_limits(snakemake.threads):
        table = training_map(
            load_reduced(snakemake.input.train), params.seed, params.max_points, params.perplexity
        )
    write_map(table, snakemake.output.table)


_bootstrap.run(main, snakemake)  # noqa: F821
