"""Rows of one shard of a split, and the bookkeeping files around a shard's images."""

from __future__ import annotations

import os

import pandas as pd

from galmorph.errors import InputDataError
from galmorph.sample import shard_bounds

SAMPLE_COLUMNS = ("dr7objid", "asset_id", "gz2_class", "class", "ra", "dec")
ID_COLUMNS = ("dr7objid", "asset_id")


def shard_names(n_shards: int) -> list[str]:
    """The ``{shard}`` wildcard values: ``["0000", "0001", ...]``."""
    return [f"{shard:04d}" for shard in range(n_shards)]


def shard_rows(sample_csv: str | os.PathLike, n_shards: int, shard: int) -> pd.DataFrame:
    """The contiguous block of rows of a split CSV that belongs to ``shard``.

    Raises
    ------
    InputDataError
        If the CSV lacks a column of the sample contract or has too few rows.
    """
    try:
        frame = pd.read_csv(sample_csv, dtype={column: "int64" for column in ID_COLUMNS})
    except (ValueError, OSError) as error:
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


def failed_asset_ids(failures_csv: str | os.PathLike) -> set[int]:
    """Asset ids listed in a shard's ``.failures.csv`` (column ``asset_id``)."""
    try:
        frame = pd.read_csv(failures_csv)
    except pd.errors.EmptyDataError:
        return set()
    if "asset_id" not in frame:
        raise InputDataError(
            f"{failures_csv}: no asset_id column; rerun the download of this shard"
        )
    return set(frame["asset_id"].astype("int64").tolist())
