"""Example images of a split, class by class, read back from its HDF5 shards.

The figure shows what the later stages will see: the stored pixels, with the
outline of a central crop drawn on each image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from galmorph.images import hdf5  # noqa: E402
from galmorph.io import atomic_path  # noqa: E402


def collect_examples(
    paths: Sequence[str | os.PathLike], per_class: int, batch_size: int = 64
) -> dict[int, list[tuple[np.ndarray, int]]]:
    """The first ``per_class`` images (and asset ids) of each class, in shard order.

    Streams the shards and stops as soon as every class that occurs is full, or
    the shards end.
    """
    n_classes = len(hdf5.read_class_names(paths))
    examples: dict[int, list[tuple[np.ndarray, int]]] = {}
    for batch in hdf5.iter_batches(paths, batch_size):
        for image, label, asset in zip(batch.images, batch.labels, batch.asset_id, strict=True):
            chosen = examples.setdefault(int(label), [])
            if len(chosen) < per_class:
                chosen.append((image, int(asset)))
        if len(examples) == n_classes and all(len(v) == per_class for v in examples.values()):
            break
    return examples


def plot_examples(
    paths: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    per_class: int = 6,
    crop: int | None = None,
    title: str = "",
) -> None:
    """One row per class present in the shards, ``per_class`` images per row."""
    names = hdf5.read_class_names(paths)
    examples = collect_examples(paths, per_class)
    labels = sorted(examples)
    fig, axes = plt.subplots(
        max(len(labels), 1),
        per_class,
        figsize=(1.6 * per_class, 1.7 * max(len(labels), 1)),
        squeeze=False,
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for row, label in enumerate(labels):
        axes[row, 0].text(
            -0.1, 0.5, names[label], transform=axes[row, 0].transAxes, ha="right", va="center"
        )
        for col, (image, asset) in enumerate(examples[label]):
            ax = axes[row, col]
            ax.imshow(image)
            ax.set_title(str(asset), fontsize=7)
            if crop:
                start = (image.shape[0] - crop) / 2 - 0.5
                ax.add_patch(Rectangle((start, start), crop, crop, fill=False, ec="w", lw=0.6))
    fig.suptitle(title or "example galaxies by class")
    with atomic_path(out_path, suffix=Path(out_path).suffix) as temporary:
        fig.savefig(temporary, dpi=100, bbox_inches="tight")
    plt.close(fig)
