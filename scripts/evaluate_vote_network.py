"""Score the vote-fraction network once on the untouched test split: RMSE and figures."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn import train, votes


def main(snakemake):
    train.configure_threads(snakemake.threads)
    model, metadata = train.load(snakemake.input.model)
    votes.evaluate_on_shards(
        model,
        metadata,
        snakemake.input.test,
        snakemake.input.votes,
        {name: snakemake.output[name] for name in snakemake.output.keys()},
        batch_size=snakemake.params.batch_size,
    )


_bootstrap.run(main, snakemake)  # noqa: F821
