import logging

import _bootstrap  # noqa: F401

from galmorph.catalogue.image_index import directory_asset_ids, write_index, zip_asset_ids


def main(snakemake):
    params = snakemake.params
    if params.source == "zip":
        ids = zip_asset_ids(params.zip_url, timeout_s=params.timeout_s, retries=params.retries)
    else:
        ids = directory_asset_ids(params.directory)
    logging.info("%d images available from the %s source", len(ids), params.source)
    write_index(ids, snakemake.output.index)


_bootstrap.run(main, snakemake)  # noqa: F821
