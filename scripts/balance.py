"""Build the balanced training set from the training shards only."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn.balance import BalanceSettings, build_balanced_set
from galmorph.io import atomic_path


def main(snakemake):
    settings = BalanceSettings(
        **snakemake.params.balanced, crop=snakemake.params.side, seed=snakemake.params.seed
    )
    summary = build_balanced_set(snakemake.input.shards, snakemake.output.h5, settings)
    print(summary.to_string(index=False))
    with atomic_path(snakemake.output.counts) as temporary:
        summary.to_csv(temporary, index=False)


_bootstrap.run(main, snakemake)  # noqa: F821
