"""The 37 vote fractions of a split's galaxies from gz2_hart16 (rule vote_table)."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.catalogue.decision_tree import vote_table, write_vote_table
from galmorph.catalogue.sample import read_sample_csv


def main(snakemake):
    sample = read_sample_csv(snakemake.input.sample)
    table = vote_table(snakemake.input.hart16, sample, snakemake.params.column)
    write_vote_table(table, snakemake.output.votes)
    print(f"{len(table)} galaxies, {snakemake.params.column} fractions")


_bootstrap.run(main, snakemake)  # noqa: F821
