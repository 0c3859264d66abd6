"""The labelled train/test sample: join, filter, simplify, seeded shuffle."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from galmorph.catalogue.classes import CLASS_NAMES, simplify_many
from galmorph.errors import InputDataError
from galmorph.io import atomic_path, escape_columns, unescape_cell

log = logging.getLogger(__name__)

CATALOGUE_COLUMNS = ("dr7objid", "ra", "dec", "gz2_class")
MAPPING_COLUMNS = ("objid", "asset_id")
SAMPLE_COLUMNS = ("dr7objid", "asset_id", "gz2_class", "class", "ra", "dec")


def shard_bounds(n_rows: int, n_shards: int, shard: int) -> tuple[int, int]:
    """Row range ``[start, stop)`` of ``shard`` when ``n_rows`` are split in contiguous blocks.

    Block sizes differ by at most one row.
    """
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
    return n_rows * shard // n_shards, n_rows * (shard + 1) // n_shards


def _check_columns(frame_columns: Iterable[str], required: Iterable[str], path: str | Path):
    missing = [column for column in required if column not in set(frame_columns)]
    if missing:
        raise InputDataError(
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, frame_columns))}. Is this the right file?"
        )


def _read_csv(path: str | Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read only the needed columns of a (possibly gzipped) CSV, with a clear error if absent."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError, EOFError) as error:  # gzip/parse errors
        raise InputDataError(f"{path}: cannot be read as CSV ({error})") from error
    _check_columns(header, required, path)
    frame = pd.read_csv(path, usecols=list(required), dtype={"gz2_class": "string"})
    for column in ("dr7objid", "objid", "asset_id"):
        if column in frame and not pd.api.types.is_integer_dtype(frame[column]):
            bad = frame[column][pd.to_numeric(frame[column], errors="coerce").isna()]
            raise InputDataError(
                f"{path}: column {column} must hold integer ids; row {bad.index[0] + 2} "
                f"has {bad.iloc[0]!r}"
            )
    return frame


def read_catalogue(path: str | Path) -> pd.DataFrame:
    """The columns of ``gz2_hart16`` the sample needs (the file has ~230 more)."""
    return _read_csv(path, CATALOGUE_COLUMNS)


def read_mapping(path: str | Path) -> pd.DataFrame:
    """``gz2_filename_mapping`` with ``objid`` renamed to ``dr7objid``."""
    return _read_csv(path, MAPPING_COLUMNS).rename(columns={"objid": "dr7objid"})


def read_image_index(path: str | Path) -> set[int]:
    """Asset ids with an image, one per line."""
    with open(path) as handle:
        return {int(line) for line in handle if line.strip()}


def read_class_list(path: str | Path) -> list[str]:
    """Class names in label order, one per line (``results/sample/classes.txt``)."""
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip()]


@dataclass
class Sample:
    """The two splits and what was dropped on the way (for the log and summary)."""

    train: pd.DataFrame
    test: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)


def labelled_galaxies(
    catalogue: pd.DataFrame, mapping: pd.DataFrame, available: set[int] | None
) -> tuple[pd.DataFrame, dict[str, int], dict[str, int]]:
    """Join catalogue and mapping, keep galaxies with an image and a valid class.

    Parameters
    ----------
    catalogue : DataFrame
        ``dr7objid, ra, dec, gz2_class``.
    mapping : DataFrame
        ``dr7objid, asset_id``.
    available : set of int or None
        Asset ids that have an image; ``None`` means every galaxy has one
        (a cutout service draws any position).

    Returns
    -------
    galaxies : DataFrame
        One row per galaxy, columns :data:`SAMPLE_COLUMNS`, sorted by ``dr7objid``.
    counts : dict
        Rows kept or dropped at each step.
    malformed : dict
        ``gz2_class`` strings outside the grammar and how often each occurred.
    """
    counts = {"catalogue_rows": len(catalogue), "mapping_rows": len(mapping)}
    duplicated = catalogue["dr7objid"].duplicated(keep=False)
    if duplicated.any():
        ids = catalogue.loc[duplicated, "dr7objid"].unique()[:5]
        raise InputDataError(
            f"the catalogue lists dr7objid {', '.join(map(str, ids))} more than once "
            f"({int(duplicated.sum())} rows): each galaxy must appear once"
        )
    joined = catalogue.merge(mapping, on="dr7objid", how="inner", validate="one_to_many")
    counts["joined_rows"] = len(joined)
    # A galaxy mapped to several images keeps its lowest asset id, so the
    # choice does not depend on file order.
    joined = joined.sort_values(["dr7objid", "asset_id"]).drop_duplicates("dr7objid")
    counts["galaxies_joined"] = len(joined)

    if available is not None:
        joined = joined[joined["asset_id"].isin(available)]
    counts["with_image"] = len(joined)

    unlabelled = joined["gz2_class"].isna() | (joined["gz2_class"].str.strip() == "")
    counts["unlabelled"] = int(unlabelled.sum())
    joined = joined[~unlabelled]

    simple, malformed = simplify_many(joined["gz2_class"].tolist())
    joined = joined.assign(**{"class": simple})
    counts["malformed_class"] = int(joined["class"].isna().sum())
    joined = joined[joined["class"].notna()]
    counts["labelled_with_image"] = len(joined)
    galaxies = joined.loc[:, list(SAMPLE_COLUMNS)].reset_index(drop=True)
    galaxies["gz2_class"] = galaxies["gz2_class"].astype(str)
    return galaxies, counts, malformed


def draw_sample(galaxies: pd.DataFrame, n_train: int, n_test: int, seed: int):
    """Seeded shuffle, then the first ``n_train`` rows train and the next ``n_test`` test.

    The shuffle starts from rows sorted by ``dr7objid``, so the draw depends
    only on the set of galaxies and the seed, not on file order.
    """
    wanted = n_train + n_test
    if wanted > len(galaxies):
        raise InputDataError(
            f"sample.n_train + sample.n_test = {wanted} but only {len(galaxies)} labelled "
            "galaxies with an image are available: lower the sample sizes"
        )
    ordered = galaxies.sort_values("dr7objid").reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = ordered.iloc[order[:wanted]].reset_index(drop=True)
    return shuffled.iloc[:n_train].reset_index(drop=True), shuffled.iloc[n_train:].reset_index(
        drop=True
    )


def build_sample(
    catalogue: pd.DataFrame,
    mapping: pd.DataFrame,
    available: set[int] | None,
    n_train: int,
    n_test: int,
    seed: int,
) -> Sample:
    """The whole sample stage on in-memory tables."""
    galaxies, counts, malformed = labelled_galaxies(catalogue, mapping, available)
    if malformed:
        shown = ", ".join(f"{text!r} x{n}" for text, n in list(malformed.items())[:10])
        log.warning(
            "excluded %d galaxies whose gz2_class does not follow the grammar: %s",
            counts["malformed_class"],
            shown,
        )
    train, test = draw_sample(galaxies, n_train, n_test, seed)
    counts.update(train=len(train), test=len(test))
    return Sample(train=train, test=test, counts=counts, malformed=malformed)


def class_counts(frame: pd.DataFrame, class_names: Iterable[str] = CLASS_NAMES) -> pd.Series:
    """Rows per class, in label order, zeros included."""
    return frame["class"].value_counts().reindex(list(class_names), fill_value=0)


def plot_class_histogram(
    frame: pd.DataFrame, path: str | Path, title: str, class_names: Iterable[str] = CLASS_NAMES
) -> None:
    """Bar chart of galaxies per class, with the count on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = class_counts(frame, class_names)
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    bars = ax.bar(counts.index, counts.values, color="#4c72b0")
    ax.bar_label(bars, fontsize=8)
    ax.set_xlabel("class")
    ax.set_ylabel("galaxies")
    ax.set_title(f"{title} (n = {len(frame)})")
    with atomic_path(path, suffix=".png") as temporary:
        fig.savefig(temporary, dpi=120)
    plt.close(fig)


# -- the rows of one shard of a split ----------------------------------------------
ID_COLUMNS = ("dr7objid", "asset_id")


def shard_names(n_shards: int) -> list[str]:
    """The ``{shard}`` wildcard values: ``["0000", "0001", ...]``."""
    return [f"{shard:04d}" for shard in range(n_shards)]


#: Text columns of a sample CSV: a folder dataset's own ids and labels, kept as text
#: (never re-parsed: ``000123`` and ``NA`` are ids) and escaped for spreadsheets.
TEXT_COLUMNS = ("gz2_class", "class", "image_id")


def write_sample_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write one split atomically, its text columns safe to open in a spreadsheet."""
    with atomic_path(path, suffix=".csv") as temporary:
        escape_columns(frame, TEXT_COLUMNS).to_csv(temporary, index=False)


def read_sample_csv(path: str | os.PathLike) -> pd.DataFrame:
    """One split as :func:`write_sample_csv` wrote it: integer ids, float coordinates, and
    the text columns exactly as they were (no ``NA``/``nan``/``null`` turned missing)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ID_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("int64")
    for column in ("ra", "dec"):
        if column in frame:
            frame[column] = frame[column].map(lambda text: float(text) if text else np.nan)
    for column in TEXT_COLUMNS:
        if column in frame:
            frame[column] = frame[column].map(unescape_cell)
    return frame


def shard_rows(sample_csv: str | os.PathLike, n_shards: int, shard: int) -> pd.DataFrame:
    """The contiguous block of rows of a split CSV that belongs to ``shard``.

    Raises
    ------
    InputDataError
        If the CSV lacks a column of the sample contract or has too few rows.
    """
    try:
        frame = read_sample_csv(sample_csv)
    except (ValueError, TypeError, OSError) as error:
        raise InputDataError(
            f"{sample_csv}: not a readable sample CSV with integer dr7objid and asset_id "
            f"({error}); rerun the sample rule"
        ) from error
    missing = [column for column in ("dr7objid", "asset_id", "class") if column not in frame]
    if missing:
        raise InputDataError(
            f"{sample_csv}: missing column(s) {missing}; a sample CSV has {list(SAMPLE_COLUMNS)}"
        )
    if len(frame) < n_shards:
        raise InputDataError(
            f"{sample_csv}: {len(frame)} rows cannot fill {n_shards} shards; lower images.n_shards"
        )
    start, stop = shard_bounds(len(frame), n_shards, shard)
    return frame.iloc[start:stop].reset_index(drop=True)
