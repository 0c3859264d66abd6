"""Train one CNN variant ({variant}) on its training data; save model, history and figure."""

import shutil
from pathlib import Path

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn import train  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads
from galmorph.cnn.evaluate import plot_history
from galmorph.cnn.shards import ShardIndex
from galmorph.io import atomic_path


def main(snakemake):
    train.configure_threads(snakemake.threads)
    index = ShardIndex.from_paths(snakemake.input.shards)
    # Saved after every epoch; a killed job's rerun resumes from it (galmorph.cnn.checkpoint).
    checkpoint = Path(snakemake.output.network).parent / "checkpoint"
    settings = train.TrainSettings(**snakemake.params.settings)
    result = train.train_model(index, settings, checkpoint_dir=checkpoint)
    result.metadata["variant"] = snakemake.wildcards.variant
    train.save(result, snakemake.output.network, snakemake.output.history)
    with atomic_path(snakemake.output.history_figure, suffix=".png") as temporary:
        plot_history(result.history, temporary)
    shutil.rmtree(checkpoint, ignore_errors=True)


_bootstrap.run(main, snakemake)  # noqa: F821
