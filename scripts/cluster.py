"""One clustering method (the {method} wildcard): fit on train, assign test, report."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)
from threadpoolctl import threadpool_limits

from galmorph.clustering.embedding import read_map
from galmorph.clustering.report import REPORT_FILES, cluster_report
from galmorph.reduction.pipeline import load_pickle, load_reduced


def main(snakemake):
    with threadpool_limits(snakemake.threads):
        cluster_report(
            snakemake.wildcards.method,
            snakemake.params.method_params,
            snakemake.params.seed,
            load_reduced(snakemake.input.train),
            load_reduced(snakemake.input.test),
            load_pickle(snakemake.input.reducer),
            {
                "train": list(snakemake.input.train_shards),
                "test": list(snakemake.input.test_shards),
            },
            read_map(snakemake.input.train_map),
            {name: snakemake.output[name] for name in REPORT_FILES},
        )


_bootstrap.run(main, snakemake)  # noqa: F821
