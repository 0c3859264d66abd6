"""Reduce one split with the reducer and scaler fitted on train."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)
from threadpoolctl import threadpool_limits

from galmorph.reduction.pipeline import load_pickle, reduce_split, save_pickle


def main(snakemake):
    reducer = load_pickle(snakemake.input.reducer)
    scaler = load_pickle(snakemake.input.scaler)
    with threadpool_limits(snakemake.threads):
        reduced = reduce_split(
            list(snakemake.input.shards),
            snakemake.params.crop,
            reducer,
            scaler,
            snakemake.params.batch_size,
        )
    save_pickle(reduced, snakemake.output.reduced)


_bootstrap.run(main, snakemake)  # noqa: F821
