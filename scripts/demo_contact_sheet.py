"""Rule demo_contact_sheet: a labelled grid of the synthetic sky, class by class."""

from pathlib import Path

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.synth import contact_sheet


def main(snakemake):
    contact_sheet(
        Path(snakemake.input.hart16).parent,
        snakemake.output.sheet,
        per_class=snakemake.params.per_class,
    )


_bootstrap.run(main, snakemake)  # noqa: F821
