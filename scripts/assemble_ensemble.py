"""Join the trained unbalanced and balanced networks into the ensemble variant's model."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn import train  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads
from galmorph.cnn.ensemble import build_ensemble


def main(snakemake):
    train.configure_threads(snakemake.threads)
    members, metadata = {}, {}
    for key in snakemake.input.keys():  # <variant>_network, one per member (common.smk)
        if key.endswith("_network"):
            variant = key.removesuffix("_network")
            members[variant], metadata[variant] = train.load(snakemake.input[key])
    model, meta = build_ensemble(members, metadata)
    train.save_model(model, meta, snakemake.output.network)


_bootstrap.run(main, snakemake)  # noqa: F821
