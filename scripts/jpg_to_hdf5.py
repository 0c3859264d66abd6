"""Rule jpg_to_hdf5: one shard's verified JPEGs -> one HDF5 file."""

import logging

import _bootstrap

from galmorph.catalogue.sample import read_class_list, shard_rows
from galmorph.images.acquire import failed_asset_ids
from galmorph.images.hdf5 import convert_shard


def main(snakemake):
    params = snakemake.params
    shard = int(snakemake.wildcards.shard)
    rows = shard_rows(snakemake.input.sample, params.n_shards, shard)
    failed = failed_asset_ids(snakemake.input.failures)
    report = convert_shard(
        snakemake.input.jpg,
        rows,
        snakemake.output.h5,
        class_names=read_class_list(snakemake.input.classes),
        size=params.size,
        size_policy=params.size_policy,
        compression=params.compression,
        gzip_level=params.gzip_level,
        attrs={"source": params.source, "split": snakemake.wildcards.split, "shard": shard},
        skip=failed,
    )
    logging.info(
        "wrote %d images to %s (%d failed downloads left out)",
        report.n_images,
        report.path,
        report.n_skipped,
    )


_bootstrap.run(main, snakemake)  # noqa: F821
