"""The 2-D map of the training split: t-SNE of the clustering features.

One map serves every method's report (rule ``map_training_split``): each colours
the same points by class and by its own clusters. t-SNE keeps neighbours
together, which is what a map of galaxy types needs; above ``max_points``
training galaxies the map shows a seeded random subsample (t-SNE's cost grows
faster than the split).

Map file (``results/clustering/map_train.csv``): ``row`` (index into the
reduced training split), ``asset_id``, ``x``, ``y``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE

from galmorph.errors import InputDataError
from galmorph.io import atomic_path

MAP_COLUMNS = ("row", "asset_id", "x", "y")


def embed(features: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """t-SNE coordinates (N, 2) of ``features``; perplexity capped for small sets."""
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if n < 3:
        return np.zeros((n, 2))
    perplexity = float(min(perplexity, (n - 1) / 3.0))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def training_map(
    reduced: dict, seed: int, max_points: int, perplexity: float = 30.0
) -> pd.DataFrame:
    """The map of a reduced training split (:func:`galmorph.reduction.pipeline.load_reduced`)."""
    n = len(reduced["features"])
    rows = np.arange(n)
    if n > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    points = embed(reduced["features"][rows], seed, perplexity)
    return pd.DataFrame(
        {
            "row": rows,
            "asset_id": np.asarray(reduced["asset_id"])[rows],
            "x": points[:, 0],
            "y": points[:, 1],
        }
    )


def write_map(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path, suffix=".csv") as temporary:
        table.to_csv(temporary, index=False)


def read_map(path: str | Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputDataError(f"cannot read the map {path}: {error}; rerun its rule") from error
    missing = set(MAP_COLUMNS) - set(table.columns)
    if missing:
        raise InputDataError(f"{path} lacks columns {sorted(missing)}: rerun its rule")
    return table
