import json
import logging

import _bootstrap  # noqa: F401

from galmorph.catalogue.classes import CLASS_NAMES
from galmorph.catalogue.folder import folder_galaxies, list_images, read_labels, split_folder
from galmorph.catalogue.sample import (
    Sample,
    build_sample,
    plot_class_histogram,
    read_catalogue,
    read_image_index,
    read_mapping,
    write_sample_csv,
)
from galmorph.io import atomic_path


def gz2_sample(snakemake) -> tuple[Sample, list[str]]:
    params = snakemake.params
    index = snakemake.input.get("image_index")
    sample = build_sample(
        read_catalogue(snakemake.input.hart16),
        read_mapping(snakemake.input.mapping),
        read_image_index(index) if index else None,
        n_train=params.n_train,
        n_test=params.n_test,
        seed=params.seed,
    )
    return sample, list(CLASS_NAMES)


def folder_sample(snakemake) -> tuple[Sample, list[str]]:
    params, folder = snakemake.params, snakemake.params.folder
    galaxies, class_names, counts = folder_galaxies(
        read_labels(snakemake.input.labels, folder["id_column"], folder["label_column"]),
        list_images(snakemake.input.images, folder["filename_pattern"]),
        folder.get("classes") or None,
    )
    train, test = split_folder(
        galaxies, params.n_train, params.n_test, params.seed, folder.get("stratify", True)
    )
    counts.update(train=len(train), test=len(test))
    return Sample(train=train, test=test, counts=counts), class_names


def main(snakemake):
    output = snakemake.output
    sample, class_names = (folder_sample if snakemake.params.dataset == "folder" else gz2_sample)(
        snakemake
    )
    for name, value in sample.counts.items():
        logging.info("%s: %d", name, value)
    for split in ("train", "test"):
        frame = getattr(sample, split)
        write_sample_csv(frame, output[split])
        plot_class_histogram(
            frame, output[f"histogram_{split}"], title=f"{split} split", class_names=class_names
        )
    with atomic_path(output.classes) as temporary:
        temporary.write_text("".join(f"{name}\n" for name in class_names))
    with atomic_path(output.summary) as temporary:
        summary = {"counts": sample.counts, "malformed": sample.malformed, "classes": class_names}
        temporary.write_text(json.dumps(summary, indent=2))


_bootstrap.run(main, snakemake)  # noqa: F821
