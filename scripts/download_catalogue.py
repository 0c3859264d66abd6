import _bootstrap  # noqa: F401

from galmorph.download import fetch


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
        )


_bootstrap.run(main, snakemake)  # noqa: F821
