"""Train the network that predicts the 37 GZ2 vote fractions, on the training split."""

import shutil
from pathlib import Path

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.catalogue.decision_tree import read_vote_table, targets_for
from galmorph.cnn import train  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads
from galmorph.cnn.evaluate import plot_history
from galmorph.cnn.shards import ShardIndex
from galmorph.io import atomic_path


def main(snakemake):
    train.configure_threads(snakemake.threads)
    index = ShardIndex.from_paths(snakemake.input.shards)
    votes = str(snakemake.input.votes)
    targets = targets_for(read_vote_table(votes), index.asset_id, votes)
    # Saved after every epoch; a killed job's rerun resumes from it (galmorph.cnn.checkpoint).
    checkpoint = Path(snakemake.output.network).parent / "checkpoint"
    settings = train.TrainSettings(**snakemake.params.settings)
    result = train.train_model(index, settings, checkpoint_dir=checkpoint, targets=targets)
    result.metadata["variant"] = "votes"
    result.metadata["vote_column"] = snakemake.params.column
    train.save(result, snakemake.output.network, snakemake.output.history)
    with atomic_path(snakemake.output.history_figure, suffix=".png") as temporary:
        plot_history(result.history, temporary, metrics=("loss", "cumulative_rmse"))
    shutil.rmtree(checkpoint, ignore_errors=True)


_bootstrap.run(main, snakemake)  # noqa: F821
