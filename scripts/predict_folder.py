"""Classify the JPEGs of the configured folder (predict_folder) with a trained variant."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn import train
from galmorph.cnn.predict import predict_folder


def main(snakemake):
    train.configure_threads(snakemake.threads)
    predictions, failures = predict_folder(
        snakemake.input.model,
        snakemake.params.folder,
        snakemake.output.predictions,
        batch_size=snakemake.params.batch_size,
    )
    print(f"{len(predictions)} image(s) classified, {len(failures)} skipped")


_bootstrap.run(main, snakemake)  # noqa: F821
