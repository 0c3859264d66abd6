"""Evaluate a trained CNN on the untouched test split: metrics and figures."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn import train
from galmorph.cnn.evaluate import evaluate_on_shards


def main(snakemake):
    train.configure_threads(snakemake.threads)
    model, metadata = train.load(snakemake.input.model)
    evaluate_on_shards(
        model,
        metadata,
        snakemake.input.test,
        {name: snakemake.output[name] for name in snakemake.output.keys()},
        batch_size=snakemake.params.batch_size,
        n_misclassified=snakemake.params.n_misclassified,
    )


_bootstrap.run(main, snakemake)  # noqa: F821
