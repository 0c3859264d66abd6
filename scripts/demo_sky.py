"""Rule demo_sky: write the synthetic Galaxy Zoo 2 sky (the demo "remote")."""

from pathlib import Path

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.synth import write_sky


def main(snakemake):
    out_dir = Path(snakemake.output.hart16).parent
    for name in ("mapping", "zip"):
        if Path(snakemake.output[name]).parent != out_dir:
            raise ValueError("demo_sky writes its three files into one folder")
    written = write_sky(
        out_dir,
        n_galaxies=snakemake.params.n_galaxies,
        seed=snakemake.params.seed,
        n_unlabelled=snakemake.params.n_unlabelled,
        n_malformed=snakemake.params.n_malformed,
        n_jobs=snakemake.threads,
    )
    for key, path in written.items():
        if Path(path) != Path(snakemake.output[key]):
            raise ValueError(f"demo_sky output {key} is {snakemake.output[key]}, wrote {path}")


_bootstrap.run(main, snakemake)  # noqa: F821
