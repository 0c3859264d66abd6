"""Image shards in HDF5: one file per shard, written image by image, read in batches.

Layout of a shard (``docs/design.md``)::

    images    uint8 (N, S, S, 3), chunks (1, S, S, 3), lzf / gzip / no compression
    asset_id  int64 (N,)
    dr7objid  int64 (N,)
    class     int16 (N,), index into the ``class_names`` attribute
    attrs     class_names, size, size_policy, compression, gzip_level, crop,
              n_skipped, plus whatever the caller records (source, split, shard)

One image per chunk keeps a random read to one decompression and bounds the
memory of both writer and reader to a few images, whatever the shard size.

Readers stream batches from a list of shards::

    from galmorph.images import hdf5
    names = hdf5.read_class_names(paths)
    for batch in hdf5.iter_batches(paths, batch_size=250, crop=174):
        batch.images   # uint8 (b, 174, 174, 3)
        batch.labels   # int (b,), index into names
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from galmorph.errors import InputDataError
from galmorph.images.imaging import SIZE_POLICIES, load_image
from galmorph.io import atomic_path

COMPRESSIONS = ("lzf", "gzip", "none")
REQUIRED_COLUMNS = ("asset_id", "dr7objid", "class")
#: Shards a reader keeps open at once (a split may have thousands).
MAX_OPEN_FILES = 32
#: What to do about a damaged shard.
REDO = "delete it and rerun the workflow, so that the conversion (rule jpg_to_hdf5) writes it again"


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert_shard` wrote."""

    path: Path
    n_images: int
    n_skipped: int


@dataclass(frozen=True)
class Batch:
    """A batch of images with their labels and identifiers, in the same order."""

    images: np.ndarray  # uint8 (b, h, w, 3)
    labels: np.ndarray  # int16 (b,), index into the shards' class_names
    asset_id: np.ndarray  # int64 (b,)
    dr7objid: np.ndarray  # int64 (b,)

    def __len__(self) -> int:
        return len(self.labels)


# ----------------------------------------------------------------------------- writing


def _label_indices(rows: pd.DataFrame, class_names: Sequence[str], where: str) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    labels = rows["class"].map(index)
    unknown = labels.isna()
    if unknown.any():
        first = rows[unknown].iloc[0]
        raise InputDataError(
            f"{where}: {int(unknown.sum())} row(s) have a class outside {list(class_names)}, "
            f"e.g. asset_id {first['asset_id']} with class {first['class']!r}; "
            "regenerate the sample or list the class in the configuration"
        )
    return labels.to_numpy(np.int16)


def _dataset_options(compression: str, gzip_level: int) -> dict:
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression == "gzip":
        if not 0 <= gzip_level <= 9:
            raise ValueError(f"gzip_level must be in 0..9, got {gzip_level}")
        return {"compression": "gzip", "compression_opts": gzip_level}
    if compression == "none":
        return {}
    raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")


@contextlib.contextmanager
def shard_writer(
    out_path: str | os.PathLike,
    n_images: int,
    side: int,
    class_names: Sequence[str],
    *,
    compression: str = "none",
    gzip_level: int = 4,
    attrs: Mapping[str, object] | None = None,
) -> Iterator[h5py.File]:
    """Open a new shard of ``n_images`` ``side x side`` RGB images: the format's one writer.

    Yields the open file with its ``images`` dataset (one image per chunk) and the
    ``class_names``, ``size`` and ``compression`` attributes; the caller fills the
    images and calls :func:`write_rows`. The file appears under ``out_path`` only when
    the block completes.
    """
    options = _dataset_options(compression, gzip_level)
    with atomic_path(out_path, suffix=".h5") as temporary, h5py.File(temporary, "w") as handle:
        handle.create_dataset(
            "images",
            shape=(n_images, side, side, 3),
            dtype=np.uint8,
            chunks=(1, side, side, 3),
            maxshape=(None, side, side, 3),  # also allows a shard with no image
            **options,
        )
        handle.attrs["class_names"] = list(class_names)
        handle.attrs["size"] = side
        handle.attrs["compression"] = compression
        handle.attrs["gzip_level"] = gzip_level if compression == "gzip" else -1
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
        yield handle


def write_rows(handle: h5py.File, asset_id, dr7objid, labels) -> None:
    """The per-row columns of the format (:data:`REQUIRED_COLUMNS`), in image order."""
    handle.create_dataset("asset_id", data=np.asarray(asset_id, dtype=np.int64))
    handle.create_dataset("dr7objid", data=np.asarray(dr7objid, dtype=np.int64))
    handle.create_dataset("class", data=np.asarray(labels, dtype=np.int16))


def convert_shard(
    jpg_dir: str | os.PathLike,
    rows: pd.DataFrame,
    out_path: str | os.PathLike,
    *,
    class_names: Sequence[str],
    size: int = 424,
    size_policy: str = "resize",
    compression: str = "lzf",
    gzip_level: int = 4,
    attrs: Mapping[str, object] | None = None,
    skip: Iterable[int] = (),
    progress: bool = True,
) -> ConversionReport:
    """Write the images of ``rows`` from ``jpg_dir/<asset_id>.jpg`` into one HDF5 shard.

    Images are decoded one at a time (:func:`galmorph.images.imaging.load_image`, which
    applies the size policy) and written to their own chunk, so memory does not
    grow with the shard. The file appears under ``out_path`` only when complete.

    Parameters
    ----------
    jpg_dir : path
        Folder holding ``<asset_id>.jpg``.
    rows : DataFrame
        The shard's rows, with columns ``asset_id``, ``dr7objid`` and ``class`` (a
        name in ``class_names``). Their order is the order in the file.
    out_path : path
        The ``.h5`` file to write.
    class_names : sequence of str
        Label order; stored as the ``class_names`` attribute.
    size, size_policy : int, {"resize", "reject"}
        The stored image side and what happens to images of another size or mode.
    compression, gzip_level : {"lzf", "gzip", "none"}, int
        Filter of the ``images`` dataset.
    attrs : mapping, optional
        Extra attributes to record (e.g. ``source``, ``split``, ``shard``).
    skip : iterable of int
        Asset ids whose download is known to have failed (the shard's failures
        list): they are left out. Any other missing image is an error.
    progress : bool
        Show a tqdm progress bar on stderr.

    Raises
    ------
    InputDataError
        A missing column, an unknown class, a missing image not in ``skip``, or an
        image that cannot be decoded or that the size policy rejects.
    """
    jpg_dir, out_path = Path(jpg_dir), Path(out_path)
    if size_policy not in SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
    _dataset_options(compression, gzip_level)  # a bad compression fails before any work
    rows, n_skipped = _rows_to_convert(rows, skip, out_path.name)
    labels = _label_indices(rows, class_names, f"rows for {out_path.name}")
    asset_ids = rows["asset_id"].to_numpy(np.int64)
    files = _image_files(jpg_dir, asset_ids, out_path.name)
    # Shards keep the whole image; each later stage crops to its own parameter.
    info = {"size_policy": size_policy, "crop": "none", "n_skipped": n_skipped, **(attrs or {})}
    with shard_writer(out_path, len(files), size, class_names, compression=compression,
                      gzip_level=gzip_level, attrs=info) as handle:  # fmt: skip
        bar = tqdm(
            files,
            desc=f"convert {out_path.name}",
            unit="img",
            file=sys.stderr,
            disable=not progress,
            mininterval=2.0,
        )
        _write_images(handle["images"], (load_image(path, size, size_policy) for path in bar))
        write_rows(handle, asset_ids, rows["dr7objid"].to_numpy(np.int64), labels)
    return ConversionReport(out_path, len(files), n_skipped)


def _rows_to_convert(rows: pd.DataFrame, skip: Iterable[int], name: str):
    """``rows`` less the failed downloads in ``skip``, checked for the format's columns."""
    missing = [column for column in REQUIRED_COLUMNS if column not in rows.columns]
    if missing:
        raise InputDataError(
            f"rows for {name} lack column(s) {missing}; "
            f"the sample CSV must have {list(REQUIRED_COLUMNS)}"
        )
    skip = {int(asset) for asset in skip}
    keep = ~rows["asset_id"].astype(np.int64).isin(skip)
    return rows[keep], int((~keep).sum())


def _image_files(jpg_dir: Path, asset_ids: np.ndarray, name: str) -> list[Path]:
    """``jpg_dir/<asset_id>.jpg`` of every row; all must be there."""
    files = [jpg_dir / f"{asset}.jpg" for asset in asset_ids]
    absent = [path for path in files if not path.is_file()]
    if absent:
        raise InputDataError(
            f"{len(absent)} image(s) of {name} are missing from {jpg_dir} and not "
            f"listed as failed downloads, e.g. {absent[0].name}; rerun the download of this shard"
        )
    return files


def _write_images(images: h5py.Dataset, pixels: Iterable[np.ndarray]) -> None:
    """Fill ``images`` one image per chunk, in order."""
    # Without a filter a chunk is the raw array: writing it directly skips
    # HDF5's selection machinery, the main cost after decoding.
    direct = images.compression is None
    for i, image in enumerate(pixels):
        if direct:
            images.id.write_direct_chunk((i, 0, 0, 0), np.ascontiguousarray(image))
        else:
            images[i] = image


# ----------------------------------------------------------------------------- reading


class _Shards:
    """Open shard files on demand, keeping at most :data:`MAX_OPEN_FILES` open."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = paths
        self._open: OrderedDict[int, h5py.File] = OrderedDict()

    def __getitem__(self, index: int) -> h5py.File:
        if index in self._open:
            self._open.move_to_end(index)
            return self._open[index]
        handle = open_shard(self.paths[index])
        self._open[index] = handle
        if len(self._open) > MAX_OPEN_FILES:
            self._open.popitem(last=False)[1].close()
        return handle

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()


def open_shard(path: Path) -> h5py.File:
    """Open a shard for reading, checked: readable, with the format's datasets and labels."""
    if not Path(path).is_file():
        raise InputDataError(f"{path}: HDF5 shard not found; rerun the images stage")
    try:
        handle = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as error:
        raise InputDataError(f"{path}: not a readable HDF5 shard ({error}); {REDO}") from error
    missing = [name for name in ("images", *REQUIRED_COLUMNS) if name not in handle]
    if missing or "class_names" not in handle.attrs:
        handle.close()
        raise InputDataError(
            f"{path}: not an image shard (missing {missing or ['class_names attribute']}); "
            "delete it so that the conversion runs again"
        )
    return handle


def _paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(path) for path in paths]


def _lengths(paths: Sequence[Path]) -> np.ndarray:
    lengths = []
    for path in paths:
        with open_shard(path) as handle:
            lengths.append(len(handle["class"]))
    return np.asarray(lengths, dtype=np.int64)


def count(paths) -> int:
    """Number of images in the shards."""
    return int(_lengths(_paths(paths)).sum())


def read_class_names(paths) -> list[str]:
    """The label order shared by all shards.

    Raises
    ------
    InputDataError
        If the shards disagree (they come from different configurations).
    """
    paths = _paths(paths)
    if not paths:
        raise ValueError("no shard paths given")
    names = None
    for path in paths:
        with open_shard(path) as handle:
            these = [str(name) for name in handle.attrs["class_names"]]
        if names is None:
            names = these
        elif these != names:
            raise InputDataError(
                f"{path}: class_names {these} differ from {names} of {paths[0]}; "
                "the shards come from different runs: convert them again"
            )
    return names


def read_column(paths, name: str, *, required: bool = True) -> np.ndarray | None:
    """One per-row dataset of every shard, concatenated in reading order.

    A shard without it: an error, or with ``required=False`` None (optional columns
    such as a balanced set's ``dr7objid``).
    """
    parts = []
    for path in _paths(paths):
        with open_shard(path) as handle:
            if name not in handle:
                if required:
                    raise InputDataError(f"{path}: no {name!r} column; {REDO}")
                return None
            parts.append(handle[name][()])
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def read_labels(paths) -> np.ndarray:
    """Class indices of all images, in the order :func:`iter_batches` gives unshuffled."""
    return read_column(paths, "class")


def read_asset_ids(paths) -> np.ndarray:
    """Asset ids of all images, in the order :func:`iter_batches` gives unshuffled."""
    return read_column(paths, "asset_id")


def crop_bounds(size: int, crop: int | None, where: str = "the stored images") -> tuple[int, int]:
    """Start and stop of the central ``crop`` pixels of ``size`` (424, 174 -> 125, 299).

    The one definition of the central crop, for every reader (reduction, CNN pipeline,
    balanced set, prediction); None (or the full side) keeps the whole image.
    """
    if crop is None or crop == size:
        return 0, size
    if not 0 < crop <= size:
        raise InputDataError(
            f"{where}: crop {crop} does not fit its {size}x{size} images; "
            f"choose a crop between 1 and {size} (reduction.crop, cnn.crop) or raise images.size"
        )
    start = (size - crop) // 2
    return start, start + crop


def _crop_window(size: int, crop: int | None, path: Path) -> slice:
    return slice(*crop_bounds(size, crop, str(path)))


def iter_batches(
    paths,
    batch_size: int,
    crop: int | None = None,
    *,
    shuffle: bool = False,
    seed: int | None = None,
) -> Iterator[Batch]:
    """Stream the images of several shards in batches, never loading a split at once.

    Parameters
    ----------
    paths : path or sequence of paths
        HDF5 shards (:func:`convert_shard`), read in the given order.
    batch_size : int
        Images per batch; every batch but the last is full, across shard ends.
    crop : int, optional
        Keep the central ``crop x crop`` pixels (174 on 424 is the study's
        ``[125:-125, 125:-125]``). Only those pixels are read.
    shuffle : bool
        Visit the images in a random order over all shards (one permutation of
        the whole list, not per shard), drawn from ``seed``.
    seed : int, optional
        Seed of the shuffle: the same seed gives the same order.

    Yields
    ------
    Batch
        ``images`` uint8 (b, h, w, 3), ``labels``, ``asset_id``, ``dr7objid``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    paths = _paths(paths)
    if not paths:
        return
    lengths = _lengths(paths)
    read_class_names(paths)  # refuse to mix shards with different label orders
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = int(offsets[-1])
    order = np.random.default_rng(seed).permutation(total) if shuffle else None
    shards = _Shards(paths)
    try:
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            wanted = order[start:stop] if shuffle else np.arange(start, stop)
            yield _read_batch(shards, offsets, wanted, crop)
    finally:
        shards.close()


def read_images(paths, indices, crop: int | None = None) -> Batch:
    """The images (and labels, ids) at global ``indices`` of the shards, in that order.

    Indices count over the shards in the order :func:`iter_batches` reads them
    unshuffled (the order of a reduced split's rows).
    """
    paths = _paths(paths)
    wanted = np.asarray(indices, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(_lengths(paths))])
    if len(wanted) and (wanted.min() < 0 or wanted.max() >= offsets[-1]):
        raise IndexError(f"image index out of range: the shards hold {int(offsets[-1])} images")
    if not len(wanted):
        return Batch(np.zeros((0, 0, 0, 3), np.uint8), *(np.zeros(0, np.int64),) * 3)
    unique, inverse = np.unique(wanted, return_inverse=True)  # h5py reads each row once
    shards = _Shards(paths)
    try:
        batch = _read_batch(shards, offsets, unique, crop)
    finally:
        shards.close()
    return Batch(
        batch.images[inverse],
        batch.labels[inverse],
        batch.asset_id[inverse],
        batch.dr7objid[inverse],
    )


def _read_batch(shards: _Shards, offsets: np.ndarray, wanted: np.ndarray, crop) -> Batch:
    """Read global image indices ``wanted`` (any order) into one batch, in that order."""
    owner = np.searchsorted(offsets, wanted, side="right") - 1
    parts: dict[str, list[np.ndarray]] = {"images": [], "class": [], "asset_id": [], "dr7objid": []}
    positions = []
    for shard in np.unique(owner):
        mine = np.flatnonzero(owner == shard)
        local = wanted[mine] - offsets[shard]
        sort = np.argsort(local)
        local, mine = local[sort], mine[sort]
        handle = shards[int(shard)]
        images = handle["images"]
        window = _crop_window(images.shape[1], crop, shards.paths[shard])
        contiguous = local[-1] - local[0] == len(local) - 1
        # A slice is one hyperslab; h5py needs sorted, unique indices otherwise.
        rows = slice(int(local[0]), int(local[-1]) + 1) if contiguous else local.tolist()
        try:
            parts["images"].append(images[rows, window, window, :])
            for name in ("class", "asset_id", "dr7objid"):
                column = handle[name]
                parts[name].append(column[rows])
        except OSError as error:  # a damaged chunk fails only when it is read
            raise InputDataError(
                f"{shards.paths[shard]}: corrupt HDF5 shard, rows {int(local[0])}-"
                f"{int(local[-1])} cannot be read ({error}); {REDO}"
            ) from error
        positions.append(mine)
    gathered = np.concatenate(positions)
    if np.array_equal(gathered, np.arange(len(wanted))):  # already in order: no extra copy
        joined = {name: _join(values) for name, values in parts.items()}
    else:
        inverse = np.empty(len(wanted), dtype=np.int64)
        inverse[gathered] = np.arange(len(wanted))
        joined = {name: np.concatenate(values)[inverse] for name, values in parts.items()}
    return Batch(joined["images"], joined["class"], joined["asset_id"], joined["dr7objid"])


def _join(values: list[np.ndarray]) -> np.ndarray:
    return values[0] if len(values) == 1 else np.concatenate(values)
