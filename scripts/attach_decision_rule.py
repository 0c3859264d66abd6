"""Make a variant's model: its trained network with its decision rule in model.json."""

import _bootstrap  # noqa: F401  (puts src/ on sys.path)

from galmorph.cnn import decision


def main(snakemake):
    rule = decision.DecisionRule(**snakemake.params.rule)
    decision.write_model(snakemake.input.network, snakemake.output.model, rule)
    print(f"{snakemake.output.model}: {rule}")


_bootstrap.run(main, snakemake)  # noqa: F821
