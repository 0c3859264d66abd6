"""k-fold cross-validation of one CNN variant on its training data."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn import train
from galmorph.cnn.shards import ShardIndex
from galmorph.io import atomic_path


def main(snakemake):
    train.configure_threads(snakemake.threads)
    index = ShardIndex.from_paths(snakemake.input.shards)
    settings = train.TrainSettings(**snakemake.params.settings)
    folds = train.cross_validate(index, settings, snakemake.params.k)
    summary = train.summarize_folds(folds)
    print(summary.to_string(index=False))
    with atomic_path(snakemake.output.folds) as temporary:
        folds.to_csv(temporary, index=False)
    with atomic_path(snakemake.output.summary) as temporary:
        summary.to_csv(temporary, index=False)


_bootstrap.run(main, snakemake)  # noqa: F821
