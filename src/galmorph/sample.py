"""The labelled train/test sample: join, filter, simplify, seeded shuffle."""

from __future__ import annotations


def shard_bounds(n_rows: int, n_shards: int, shard: int) -> tuple[int, int]:
    """Row range ``[start, stop)`` of ``shard`` when ``n_rows`` are split in contiguous blocks.

    Block sizes differ by at most one row.
    """
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
    return n_rows * shard // n_shards, n_rows * (shard + 1) // n_shards
