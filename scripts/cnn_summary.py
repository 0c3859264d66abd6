"""Compare the CNN variants (and the clustering methods, where run) on the test split."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn.summary import plot_summary, summarize
from galmorph.io import atomic_path


def main(snakemake):
    metrics = dict(zip(snakemake.params.variants, snakemake.input.metrics, strict=True))
    clustering = snakemake.input.get("clustering")
    table = summarize(metrics, clustering)
    print(table.to_string(index=False))
    with atomic_path(snakemake.output.table) as temporary:
        table.to_csv(temporary, index=False)
    with atomic_path(snakemake.output.figure, suffix=".png") as temporary:
        plot_summary(table, temporary)


_bootstrap.run(main, snakemake)  # noqa: F821
