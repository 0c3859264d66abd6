import _bootstrap  # noqa: F401

from galmorph.catalogue.sample import CATALOGUE_COLUMNS, MAPPING_COLUMNS
from galmorph.download import fetch, table_check

#: What each file must hold (docs/design.md, the GZ2 release files): checked before it
#: takes its name.
REQUIRED = {"hart16": CATALOGUE_COLUMNS, "mapping": MAPPING_COLUMNS}


def main(snakemake):
    params = snakemake.params
    for name in ("hart16", "mapping"):
        fetch(
            params.urls[name],
            snakemake.output[name],
            sha256=params.sha256[name] or None,
            retries=params.retries,
            backoff_s=params.backoff_s,
            timeout_s=params.timeout_s,
            config_key=f"catalogue.{name}_url",
            check=table_check(REQUIRED[name]),
        )


_bootstrap.run(main, snakemake)  # noqa: F821
