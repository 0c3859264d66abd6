"""Fit the incremental PCA and the scaler on the training shards; save both and figures."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)
from threadpoolctl import threadpool_limits

from galmorph import plots
from galmorph.reduction import example_reconstructions, fit_reduction, save_pickle


def main(snakemake):
    shards = list(snakemake.input.shards)
    params = snakemake.params
    with threadpool_limits(snakemake.threads):
        reducer, scaler = fit_reduction(shards, params.crop, params.n_components, params.batch_size)
        originals, rebuilt, titles = example_reconstructions(
            shards, params.crop, reducer, params.n_examples
        )
    # The saved reducer is a plain scikit-learn IncrementalPCA: loading it needs no galmorph.
    save_pickle(reducer.to_sklearn(), snakemake.output.reducer)
    save_pickle(scaler, snakemake.output.scaler)
    plots.explained_variance(reducer.explained_variance_ratio_, snakemake.output.variance)
    plots.reconstructions(originals, rebuilt, titles, snakemake.output.reconstructions)


_bootstrap.run(main, snakemake)  # noqa: F821
