"""Bring-your-own images: a folder of JPEG/PNG files plus a labels CSV.

The folder dataset goes through the same DAG as Galaxy Zoo 2; this module
turns its labels into the rows of the sample stage.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from galmorph.errors import InputDataError

log = logging.getLogger(__name__)

ENCODINGS = ("utf-8-sig", "utf-16", "cp1252", "latin-1")


def read_labels(path: str | Path, id_column: str, label_column: str) -> pd.DataFrame:
    """Read a labels CSV whatever its delimiter and common encoding.

    Returns a frame with string columns ``id`` and ``label``. The delimiter
    is sniffed (comma, semicolon, tab, pipe); the encoding is the first of
    :data:`ENCODINGS` that decodes the whole file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"labels file {path} does not exist; set folder.labels")
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = ("utf-16",)
    else:
        candidates = tuple(e for e in ENCODINGS if e != "utf-16")
    for encoding in candidates:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # latin-1 decodes any byte string, so this is unreachable in practice
        raise InputDataError(f"{path}: cannot decode the labels file as text")
    if encoding not in ("utf-8-sig",):
        log.warning("%s: read with encoding %s", path, encoding)
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in (id_column, label_column) if c not in frame.columns]
    if missing:
        raise InputDataError(
            f"{path}: no column {', '.join(map(repr, missing))} (columns found: "
            f"{', '.join(map(repr, frame.columns))}, delimiter {delimiter!r}); "
            "set folder.id_column and folder.label_column"
        )
    return pd.DataFrame(
        {"id": frame[id_column].str.strip(), "label": frame[label_column].str.strip()}
    )


def list_images(directory: str | Path, filename_pattern: str) -> dict[str, Path]:
    """Image files of ``directory`` whose name matches ``filename_pattern`` (with ``{id}``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputDataError(f"image folder {directory} does not exist; set folder.images")
    prefix, _, suffix = filename_pattern.partition("{id}")
    pattern = re.compile("^" + re.escape(prefix) + r"(.+?)" + re.escape(suffix) + "$")
    return {
        match.group(1): entry
        for entry in sorted(directory.iterdir())
        if (match := pattern.match(entry.name))
    }


def folder_galaxies(
    labels: pd.DataFrame, images: dict[str, Path], classes: Sequence[str] | None
) -> tuple[pd.DataFrame, list[str], dict[str, int]]:
    """Labelled images of a folder dataset, as sample rows.

    Ids without an image, images without a label, duplicate ids, empty and
    unknown labels are counted, logged and left out; only a dataset with
    nothing usable left is an error.

    Returns
    -------
    galaxies : DataFrame
        Columns ``dr7objid, asset_id, gz2_class, class, ra, dec, image_id``;
        ``asset_id`` is the id itself when every id is an integer written without
        leading zeros, else a running number; ``image_id`` keeps the id as text.
    class_names : list of str
        ``classes`` if given, else the labels found, sorted.
    counts : dict
        What was kept and dropped.
    """
    counts = {
        "label_rows": len(labels),
        "image_files": len(images),
        "images_without_label": len(set(images) - set(labels["id"])),
    }
    duplicated = labels["id"].duplicated(keep=False)
    counts["duplicate_ids"] = int(duplicated.sum())
    labels = labels[~duplicated]
    empty = labels["label"] == ""
    counts["empty_labels"] = int(empty.sum())
    labels = labels[~empty]
    class_names = list(classes) if classes else sorted(labels["label"].unique())
    unknown = ~labels["label"].isin(class_names)
    counts["unknown_labels"] = int(unknown.sum())
    if unknown.any():
        log.warning(
            "labels outside folder.classes, left out: %s",
            labels.loc[unknown, "label"].value_counts().to_dict(),
        )
    labels = labels[~unknown]
    has_image = labels["id"].isin(images.keys())
    counts["ids_without_image"] = int((~has_image).sum())
    labels = labels[has_image]
    counts["usable"] = len(labels)
    for key in ("duplicate_ids", "empty_labels", "ids_without_image", "images_without_label"):
        if counts[key]:
            log.warning("%s: %d", key.replace("_", " "), counts[key])
    if labels.empty:
        raise InputDataError(
            "no usable labelled image: "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
            + ". Check folder.images, folder.filename_pattern, folder.id_column and folder.classes"
        )
    labels = labels.sort_values("id").reset_index(drop=True)
    # Only canonical integers stand for themselves: 000123 is not 123 (two images may
    # be named so), and the file is found by the id as written (image_id).
    numeric = labels["id"].str.fullmatch(r"0|[1-9]\d{0,17}").all()
    asset_id = labels["id"].astype("int64") if numeric else pd.Series(np.arange(len(labels)) + 1)
    galaxies = pd.DataFrame(
        {
            "dr7objid": asset_id if numeric else -1,
            "asset_id": asset_id,
            "gz2_class": labels["label"],
            "class": labels["label"],
            "ra": np.nan,
            "dec": np.nan,
            "image_id": labels["id"],
        }
    )
    return galaxies, class_names, counts


def stratified_split(
    galaxies: pd.DataFrame, n_train: int, n_test: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split keeping each class's share in both splits.

    Each class gets ``round(share * n)`` rows per split (largest remainders
    fill the rounding gap), drawn after a seeded shuffle of the class.
    """
    wanted = n_train + n_test
    if wanted > len(galaxies):
        raise InputDataError(
            f"sample.n_train + sample.n_test = {wanted} but the folder has only "
            f"{len(galaxies)} usable labelled images: lower the sample sizes"
        )
    rng = np.random.default_rng(seed)
    sizes = galaxies["class"].value_counts().sort_index()
    train_quota = _quota(sizes, n_train)
    test_quota = _quota(sizes - train_quota, n_test)
    train_parts, test_parts = [], []
    for name, group in galaxies.groupby("class", sort=True):
        order = rng.permutation(len(group))
        picked = group.iloc[order]
        train_parts.append(picked.iloc[: train_quota[name]])
        test_parts.append(picked.iloc[train_quota[name] : train_quota[name] + test_quota[name]])
    train = pd.concat(train_parts)
    test = pd.concat(test_parts)
    # Shuffle across classes so shards and batches mix classes.
    train = train.iloc[rng.permutation(len(train))].reset_index(drop=True)
    test = test.iloc[rng.permutation(len(test))].reset_index(drop=True)
    return train, test


def random_split(
    galaxies: pd.DataFrame, n_train: int, n_test: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split without regard to class (``folder.stratify: false``): a permutation of
    the rows (sorted by id, so file order does not matter), the first ``n_train`` train."""
    wanted = n_train + n_test
    if wanted > len(galaxies):
        raise InputDataError(
            f"sample.n_train + sample.n_test = {wanted} but the folder has only "
            f"{len(galaxies)} usable labelled images: lower the sample sizes"
        )
    order = np.random.default_rng(seed).permutation(len(galaxies))
    train = galaxies.iloc[order[:n_train]].reset_index(drop=True)
    test = galaxies.iloc[order[n_train:wanted]].reset_index(drop=True)
    return train, test


def split_folder(galaxies: pd.DataFrame, n_train: int, n_test: int, seed: int, stratify: bool):
    """The sample of a folder dataset: :func:`stratified_split` or :func:`random_split`."""
    return (stratified_split if stratify else random_split)(galaxies, n_train, n_test, seed)


def _quota(available: pd.Series, n: int) -> pd.Series:
    """Split ``n`` over classes in proportion to ``available`` (largest remainder)."""
    exact = available / available.sum() * n
    quota = np.floor(exact).astype(int).clip(upper=available)
    remainder = (exact - quota).sort_values(ascending=False)
    for name in remainder.index:
        if quota.sum() >= n:
            break
        if quota[name] < available[name]:
            quota[name] += 1
    return quota
