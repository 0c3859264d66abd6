"""Compare the clustering methods: one table and one figure."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.clustering.report import write_summary


def main(snakemake):
    write_summary(list(snakemake.input.metrics), snakemake.output.table, snakemake.output.figure)


_bootstrap.run(main, snakemake)  # noqa: F821
