"""Fit the preprocessing + representation and the scaler on the training shards; save them."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from galmorph import plots
from galmorph.reduction.pipeline import example_reconstructions, fit_reduction, save_pickle
from galmorph.reduction.sharing import save_pipeline


def main(snakemake):
    shards = list(snakemake.input.shards)
    params = snakemake.params
    with threadpool_limits(snakemake.threads):
        reducer, scaler = fit_reduction(
            shards,
            params.crop,
            params.n_components,
            params.batch_size,
            preprocess=params.preprocess,
            representation=params.representation,
        )
        rows, titles = example_reconstructions(shards, params.crop, reducer, params.n_examples)
    save_pickle(reducer, snakemake.output.reducer)
    save_pickle(scaler, snakemake.output.scaler)
    save_pipeline(Pipeline([*reducer.steps, ("scale", scaler)]), snakemake.output.pipeline)
    if "pca" in reducer.named_steps:
        ratio = reducer.named_steps["pca"].explained_variance_ratio_
        plots.explained_variance(ratio, snakemake.output.variance)
    else:
        plots.descriptor_spread(scaler, reducer.named_steps["describe"], snakemake.output.variance)
    plots.reconstructions(rows, titles, snakemake.output.reconstructions)


_bootstrap.run(main, snakemake)  # noqa: F821
