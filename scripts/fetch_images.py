"""Rule fetch_images: download and verify the JPEGs of one shard of a split."""

import logging
from pathlib import Path

import _bootstrap

from galmorph.catalogue.sample import shard_rows
from galmorph.images.acquire import Transfer, fetch_shard, make_source, resumable_dir


def main(snakemake):
    params = snakemake.params
    rows = shard_rows(snakemake.input.sample, params.n_shards, int(snakemake.wildcards.shard))
    source = make_source(**params.source)
    final = Path(snakemake.output.jpg)
    # A staging folder kept after a failure, so that a rerun fetches only what is missing.
    with resumable_dir(final) as staging:
        report = fetch_shard(
            rows,
            source,
            staging,
            snakemake.output.failures,
            connections=params.connections,
            transfer=Transfer(params.timeout_s, params.retries, params.backoff_s),
            max_failure_fraction=params.max_failure_fraction,
            size=params.size,
            size_policy=params.size_policy,
            progress=True,
            quarantine_dir=final.with_name(f"{final.name}.quarantine"),
        )
    logging.info(
        "%d images: %d fetched, %d already there, %d failed (listed in %s)",
        report.n_requested,
        report.n_ok,
        report.n_skipped_existing,
        report.n_failed,
        snakemake.output.failures,
    )


_bootstrap.run(main, snakemake)  # noqa: F821
