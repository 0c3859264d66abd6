import json
import logging

import _bootstrap  # noqa: F401

from galmorph.io import atomic_path
from galmorph.sample import (
    build_sample,
    plot_class_histogram,
    read_catalogue,
    read_image_index,
    read_mapping,
)


def main(snakemake):
    params, output = snakemake.params, snakemake.output
    index = snakemake.input.get("image_index")
    sample = build_sample(
        read_catalogue(snakemake.input.hart16),
        read_mapping(snakemake.input.mapping),
        read_image_index(index) if index else None,
        n_train=params.n_train,
        n_test=params.n_test,
        seed=params.seed,
    )
    for name, value in sample.counts.items():
        logging.info("%s: %d", name, value)
    for split in ("train", "test"):
        frame = getattr(sample, split)
        with atomic_path(output[split], suffix=".csv") as temporary:
            frame.to_csv(temporary, index=False)
        plot_class_histogram(frame, output[f"histogram_{split}"], title=f"{split} split")
    with atomic_path(output.summary) as temporary:
        temporary.write_text(
            json.dumps({"counts": sample.counts, "malformed": sample.malformed}, indent=2)
        )


_bootstrap.run(main, snakemake)  # noqa: F821
