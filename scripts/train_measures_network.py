"""Train the measures variant (dense networks on the measured morphology) and save it."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn import train  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads
from galmorph.cnn.measures_network import plot_member_history, train_measures_model
from galmorph.cnn.settings import MeasuresNetworkSettings
from galmorph.cnn.shards import ShardIndex
from galmorph.io import atomic_path


def main(snakemake):
    train.configure_threads(snakemake.threads)
    index = ShardIndex.from_paths(snakemake.input.shards)
    settings = train.TrainSettings(**snakemake.params.settings)
    network = MeasuresNetworkSettings(**snakemake.params.network)
    result = train_measures_model(index, settings, network)
    result.metadata["variant"] = "measures"
    train.save(result, snakemake.output.network, snakemake.output.history)
    with atomic_path(snakemake.output.history_figure, suffix=".png") as temporary:
        plot_member_history(result.history, temporary)


_bootstrap.run(main, snakemake)  # noqa: F821
