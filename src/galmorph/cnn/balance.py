"""The balanced training set: ``per_class`` images of every class, from the training split only.

A class with more images than ``per_class`` keeps a seeded random subset; a
class with fewer keeps all of them and is filled with synthetic copies that
are each different: sources are used in turn (every image once before any is
used twice), each copy gets its own random rotation angle (any angle, not
multiples of 90 degrees; copies of one source are kept apart by a minimum
angle), and optionally a small shift and zoom.

Flips are off by default: a mirror image reverses the winding of a spiral's
arms, and labels such as clockwise/anticlockwise depend on it. With flips on,
a class with a mirror partner (``cnn.mirror_pairs``) is also filled with
mirrored images of its partner's galaxies, relabelled; a class whose name
states a winding and has no partner makes flips an error.

The study built its balanced set from train + test together (test images
leaked into training) and every synthetic image was the same first image at
angle 0; neither can happen here: the input must be the training split, and
the test file checks distinctness.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from galmorph.cnn.shards import (
    ShardIndex,
    central_crop_bounds,
    source_class_counts,
    source_image_size,
)
from galmorph.errors import InputDataError
from galmorph.images import hdf5

log = logging.getLogger(__name__)

PLAN_COLUMNS = ("source_index", "label", "synthetic", "angle", "shift_x", "shift_y", "zoom", "flip")


@dataclass(frozen=True)
class BalanceSettings:
    """How the balanced set is drawn (``cnn.balanced.*`` and ``cnn.crop`` in the config)."""

    per_class: int = 400
    max_rotation_deg: float = 180.0
    max_shift: float = 0.05
    max_zoom: float = 0.1
    flips: bool = False
    drop_empty_classes: bool = False
    crop: int | None = None
    mirror_pairs: tuple = ()
    seed: int = 31

    def __post_init__(self):
        if self.per_class < 1:
            raise InputDataError(f"cnn.balanced.per_class is {self.per_class}; it must be >= 1")
        if self.max_rotation_deg == 0 and self.max_shift == 0 and self.max_zoom == 0:
            raise InputDataError(
                "cnn.balanced.max_rotation_deg, max_shift and max_zoom are all 0: synthetic "
                "images would be exact copies; allow a rotation (the study: 180)"
            )


def _circular_gap(angle: float, others: list[float]) -> float:
    return min((abs((angle - other + 180.0) % 360.0 - 180.0) for other in others), default=360.0)


def _draw_angles(n: int, max_deg: float, rng: np.random.Generator) -> list[float]:
    """``n`` random angles in [-max_deg, max_deg], kept apart from each other and from 0.

    The minimum gap shrinks with ``n`` so that it can always be met; rejection
    sampling keeps the draw uniform otherwise.
    """
    if max_deg == 0:
        return [0.0] * n
    span = 2 * max_deg if max_deg < 180 else 360.0
    gap = min(1.0, span / (2 * (n + 1)))
    angles: list[float] = []
    for _ in range(n):
        for _attempt in range(1000):
            angle = float(rng.uniform(-max_deg, max_deg))
            if _circular_gap(angle, [0.0, *angles]) >= gap:
                break
        angles.append(angle)
    return angles


def plan_balanced_set(
    labels: np.ndarray, class_names: tuple[str, ...], settings: BalanceSettings
) -> tuple[pd.DataFrame, list[str]]:
    """Choose the rows of the balanced set and the transform of each synthetic image.

    Parameters
    ----------
    labels : ndarray of int
        Class index of every training row.
    class_names : tuple of str
    settings : BalanceSettings

    Returns
    -------
    plan : DataFrame
        One row per image of the balanced set, columns :data:`PLAN_COLUMNS`;
        ``source_index`` is the training row it is made from.
    dropped : list of str
        Classes without any training image (when ``drop_empty_classes``).

    Raises
    ------
    InputDataError
        A class has no training image and ``drop_empty_classes`` is false.
    """
    from galmorph.catalogue.classes import chiral_classes
    from galmorph.cnn.views import mirror_map

    rng = np.random.default_rng(settings.seed)
    partner = mirror_map(class_names, settings.mirror_pairs)
    chiral = set(chiral_classes(class_names))
    paired = {name for pair in settings.mirror_pairs for name in pair}
    if settings.flips and chiral - paired:
        raise InputDataError(
            f"cnn.balanced.flips is on but class(es) {', '.join(sorted(chiral - paired))} have "
            "a winding that a mirror reverses; declare their partners in cnn.mirror_pairs "
            "(e.g. [[spiral_cw, spiral_acw]]) or set cnn.balanced.flips: false"
        )
    # a random mirror suits a class only if a mirror keeps it (no winding, no partner)
    free_flips = np.array(
        [settings.flips and partner[c] == c and name not in chiral
         for c, name in enumerate(class_names)]
    )  # fmt: skip
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [class_names[c] for c in range(len(class_names)) if counts[c] == 0]
    if empty and not settings.drop_empty_classes:
        raise InputDataError(
            f"class(es) {', '.join(empty)} have no image in the training split, so no balanced "
            "set can hold them; enlarge the sample or set cnn.balanced.drop_empty_classes: true"
        )
    frames = []
    for label in range(len(class_names)):
        members = np.flatnonzero(labels == label)
        if members.size == 0:
            continue
        if members.size >= settings.per_class:
            chosen = np.sort(rng.choice(members, settings.per_class, replace=False))
            frames.append(_original_rows(chosen, label))
            continue
        frames.append(_original_rows(members, label))
        missing = settings.per_class - members.size
        # the pool of sources: the class's own images, and its mirror partner's (to be mirrored)
        pool = members
        mirrored_pool = np.zeros(members.size, dtype=bool)
        if settings.flips and partner[label] != label:
            others = np.flatnonzero(labels == partner[label])
            pool = np.concatenate([members, others])
            mirrored_pool = np.concatenate([mirrored_pool, np.ones(others.size, dtype=bool)])
        rounds = math.ceil(missing / pool.size)
        picks = np.concatenate([rng.permutation(pool.size) for _ in range(rounds)])[:missing]
        sources, from_partner = pool[picks], mirrored_pool[picks]
        angles = np.empty(missing)
        for source in np.unique(sources):
            where = np.flatnonzero(sources == source)
            angles[where] = _draw_angles(where.size, settings.max_rotation_deg, rng)
        frames.append(
            pd.DataFrame(
                {
                    "source_index": sources,
                    "label": label,
                    "synthetic": True,
                    "angle": angles,
                    "shift_x": rng.uniform(-settings.max_shift, settings.max_shift, missing),
                    "shift_y": rng.uniform(-settings.max_shift, settings.max_shift, missing),
                    "zoom": 1.0 + rng.uniform(-settings.max_zoom, settings.max_zoom, missing),
                    "flip": from_partner | (free_flips[label] & (rng.random(missing) < 0.5)),
                }
            )
        )
    plan = pd.concat(frames, ignore_index=True)
    plan = plan.astype({"source_index": "int64", "label": "int64", "synthetic": bool, "flip": bool})
    return plan[list(PLAN_COLUMNS)], empty


def _original_rows(rows: np.ndarray, label: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_index": rows,
            "label": label,
            "synthetic": False,
            "angle": 0.0,
            "shift_x": 0.0,
            "shift_y": 0.0,
            "zoom": 1.0,
            "flip": False,
        }
    )


def transform_image(
    image: np.ndarray,
    angle: float,
    shift_x: float = 0.0,
    shift_y: float = 0.0,
    zoom: float = 1.0,
    flip: bool = False,
) -> np.ndarray:
    """Rotate ``image`` by ``angle`` degrees (counter-clockwise) about its centre, zoom and shift.

    Shifts are fractions of the image side; ``zoom`` > 1 enlarges. Pixels
    coming from outside the image are black, like the sky around a galaxy.
    One bilinear resampling does all three, so the image is blurred once.
    """
    size_y, size_x = image.shape[:2]
    centre = np.array([size_x / 2.0, size_y / 2.0])
    theta = math.radians(angle)
    # PIL maps every output pixel back to the input: p_in = c + R(theta) (p_out - c - t) / zoom,
    # where R(theta) in image coordinates (y down) undoes a counter-clockwise turn.
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    matrix = rotation / zoom
    shift = np.array([shift_x * size_x, shift_y * size_y])
    offset = centre - matrix @ (centre + shift)
    coefficients = (*matrix[0], offset[0], *matrix[1], offset[1])
    result = Image.fromarray(image).transform(
        (size_x, size_y), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR
    )
    if flip:
        result = result.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(result)


def build_balanced_set(
    train_paths: list[str | Path], out_path: str | Path, settings: BalanceSettings
) -> pd.DataFrame:
    """Write the balanced training set to ``out_path`` in the shard format.

    Synthetic images are transformed at full size, then centrally cropped to
    ``settings.crop`` (so a rotation never brings a corner into view); the
    file stores the cropped images, so the training pipeline's crop is a
    no-op on it. Extra per-row datasets: ``synthetic``, ``source_index``
    (row of the concatenated training shards), ``angle``, ``shift_x``,
    ``shift_y``, ``zoom``, ``flip``.

    Returns
    -------
    DataFrame
        Per class: ``originals``, ``synthetic`` and ``total`` images.
    """
    index = ShardIndex.from_paths(train_paths)
    index.require_not_test("balancing")
    plan, dropped = plan_balanced_set(index.labels, index.class_names, settings)
    if dropped:
        log.warning("classes without training images, left out: %s", ", ".join(dropped))
    start, stop = central_crop_bounds(index.image_size, settings.crop)
    side = stop - start
    n = len(plan)
    with h5py.File(index.paths[0], "r") as first:
        source_attr = first.attrs.get("source", "")
    attrs = {
        "source": source_attr,
        "size_policy": f"central crop {side} of {index.image_size}",
        "split": "train",
        "shard": 0,
        "balanced_from": [str(path) for path in index.paths],
        "dropped_classes": dropped,
        # the survey's image size, carried through when the input is itself a crop
        "source_image_size": source_image_size(index.paths[0]),
        # the split's own class mix, the prior of cnn.prior_shift for the balanced variant
        "source_class_counts": source_class_counts(index),
    }
    with hdf5.shard_writer(
        out_path, n, side, index.class_names, compression="lzf", attrs=attrs
    ) as out:
        images = out["images"]
        # Reading in source order keeps each shard's file access sequential.
        order = np.argsort(plan["source_index"].to_numpy(), kind="stable")
        sources = plan["source_index"].to_numpy()[order]
        rows = plan.iloc[order]
        stream = index.iter_images(sources)
        for (position, row), (image, _) in tqdm(
            zip(rows.iterrows(), stream, strict=True), total=n, desc="balanced set", unit="image"
        ):
            if row["synthetic"]:
                image = transform_image(
                    image, row["angle"], row["shift_x"], row["shift_y"], row["zoom"], row["flip"]
                )
            images[position] = image[start:stop, start:stop]
        source = plan["source_index"].to_numpy()
        dr7objid = hdf5.read_column(index.paths, "dr7objid")
        hdf5.write_rows(out, index.asset_id[source], dr7objid[source], plan["label"].to_numpy())
        out["synthetic"] = plan["synthetic"].to_numpy()
        out["source_index"] = source.astype(np.int64)
        for column in ("angle", "shift_x", "shift_y", "zoom"):
            out[column] = plan[column].to_numpy().astype(np.float32)
        out["flip"] = plan["flip"].to_numpy()
        out.attrs["per_class"] = settings.per_class
        out.attrs["seed"] = settings.seed
    summary = (
        plan.assign(original=~plan["synthetic"])
        .groupby("label")
        .agg(originals=("original", "sum"), synthetic=("synthetic", "sum"))
        .reindex(range(index.n_classes), fill_value=0)
    )
    summary.insert(0, "class", list(index.class_names))
    summary["total"] = summary["originals"] + summary["synthetic"]
    summary["dropped"] = summary["class"].isin(dropped)
    return summary.reset_index(drop=True)
