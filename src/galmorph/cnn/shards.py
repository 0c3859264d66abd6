"""A row index over the HDF5 shards of one split (h5py only, no TensorFlow).

Training needs random access by row (a validation subset, k folds, a seeded
order per epoch), so the index keeps, for every row of the concatenated
shards, its file and row number and its label; pixels are read only when a
pipeline asks for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from galmorph.errors import InputDataError
from galmorph.images import hdf5
from galmorph.images.hdf5 import crop_bounds


def _decode(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def source_image_size(path: str | Path) -> int:
    """Side of the images a shard was made from (a balanced set stores crops of them)."""
    with h5py.File(path, "r") as handle:
        return int(handle.attrs.get("source_image_size", handle["images"].shape[1]))


def source_class_counts(index: ShardIndex) -> np.ndarray:
    """Galaxies per class of the split an index's shards come from.

    The index's own counts, except for a balanced set: it records the counts
    of the training split it was drawn from (``source_class_counts``).
    """
    with h5py.File(index.paths[0], "r") as handle:
        counts = handle.attrs.get("source_class_counts")
    if counts is None:
        return index.class_counts()
    return np.asarray(counts, dtype=np.int64)


def central_crop_bounds(size: int, crop: int | None) -> tuple[int, int]:
    """The central crop of the shard format (:func:`galmorph.images.hdf5.crop_bounds`)."""
    return crop_bounds(size, crop)


def _read_shard(path: str) -> dict:
    """What the index needs of one shard, checked: labels within its class list."""
    with hdf5.open_shard(Path(path)) as handle:
        images = handle["images"]
        if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] != 3:
            raise InputDataError(
                f"{path}: 'images' has shape {images.shape}, expected (N, S, S, 3)"
            )
        names = tuple(_decode(name) for name in handle.attrs["class_names"])
        labels = handle["class"][:].astype(np.int64)
        bad = np.flatnonzero((labels < 0) | (labels >= len(names)))
        if bad.size:
            raise InputDataError(
                f"{path}: row {bad[0]} has class {labels[bad[0]]}, outside "
                f"0..{len(names) - 1} (class_names has {len(names)} entries)"
            )
        n = len(labels)
        return {
            "class_names": names,
            "image_size": images.shape[1],
            "split": _decode(handle.attrs.get("split", "")),
            "labels": labels,
            "asset_id": handle["asset_id"][:].astype(np.int64),
            "groups": handle["source_index"][:] if "source_index" in handle else None,
            "synthetic": handle["synthetic"][:].astype(bool)
            if "synthetic" in handle
            else np.zeros(n, dtype=bool),
        }


def _check_compatible(path: str, shard: dict, first_path: str, first: dict) -> None:
    """Shards of one index share the label order, the image size and the split."""
    if shard["class_names"] != first["class_names"]:
        raise InputDataError(
            f"{path}: class_names {list(shard['class_names'])} differ from {first_path}'s "
            f"{list(first['class_names'])}; shards of one run must share the label order"
        )
    if shard["image_size"] != first["image_size"]:
        raise InputDataError(
            f"{path}: images are {shard['image_size']} pixels, {first_path}'s are "
            f"{first['image_size']}; convert all shards with the same images.size"
        )
    if shard["split"] != first["split"]:
        raise InputDataError(
            f"{path}: split {shard['split']!r} mixed with split {first['split']!r} in one index"
        )


@dataclass(frozen=True)
class ShardIndex:
    """Every row of a list of HDF5 shards, in file order.

    Attributes
    ----------
    paths : tuple of str
        The shard files.
    file : ndarray of int
        Index into ``paths`` of each row.
    row : ndarray of int
        Row number inside its file.
    labels : ndarray of int
        Class index of each row, into ``class_names``.
    asset_id : ndarray of int
    groups : ndarray of int
        Rows sharing a group come from one source image (a balanced set's
        ``source_index``); they must fall on the same side of any split.
    synthetic : ndarray of bool
        Rotated/shifted copies made by balancing.
    class_names : tuple of str
    image_size : int
        Side of the stored square images.
    split : str
        The ``split`` attribute of the shards (``train``, ``test`` ...).
    """

    paths: tuple[str, ...]
    file: np.ndarray
    row: np.ndarray
    labels: np.ndarray
    asset_id: np.ndarray
    groups: np.ndarray
    synthetic: np.ndarray
    class_names: tuple[str, ...]
    image_size: int
    split: str

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path]) -> ShardIndex:
        """Index ``paths``; raise :class:`InputDataError` naming the file for bad shards.

        Each shard is opened and checked by the format's owner
        (:func:`galmorph.images.hdf5.open_shard`); this adds what an index over several
        shards needs: one label order, one image size and one split across them, and
        labels within the class list.
        """
        paths = tuple(str(path) for path in paths)
        if not paths:
            raise InputDataError("no HDF5 shard given: the images stage produced no file")
        shards = [_read_shard(path) for path in paths]
        first = shards[0]
        for path, shard in zip(paths[1:], shards[1:], strict=True):
            _check_compatible(path, shard, paths[0], first)
        offsets = np.cumsum([0, *(len(shard["labels"]) for shard in shards)])
        index = cls(
            paths=paths,
            file=np.concatenate(
                [np.full(len(s["labels"]), n, dtype=np.int64) for n, s in enumerate(shards)]
            ),
            row=np.concatenate([np.arange(len(s["labels"]), dtype=np.int64) for s in shards]),
            labels=np.concatenate([s["labels"] for s in shards]),
            asset_id=np.concatenate([s["asset_id"] for s in shards]),
            # A balanced set's copies share the group of their source row; else one per row.
            groups=np.concatenate(
                [
                    s["groups"] if s["groups"] is not None else offset + np.arange(len(s["labels"]))
                    for s, offset in zip(shards, offsets, strict=False)
                ]
            ).astype(np.int64),
            synthetic=np.concatenate([s["synthetic"] for s in shards]),
            class_names=first["class_names"],
            image_size=int(first["image_size"]),
            split=first["split"],
        )
        if len(index) == 0:
            raise InputDataError(f"{', '.join(paths)}: the shards hold no image")
        return index

    def __len__(self) -> int:
        return int(self.labels.size)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def subset(self, positions: np.ndarray) -> ShardIndex:
        """The rows at ``positions`` (indices into this index), same files."""
        positions = np.asarray(positions, dtype=np.int64)
        return replace(
            self,
            file=self.file[positions],
            row=self.row[positions],
            labels=self.labels[positions],
            asset_id=self.asset_id[positions],
            groups=self.groups[positions],
            synthetic=self.synthetic[positions],
        )

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_classes)

    def require_not_test(self, purpose: str) -> None:
        """Refuse to use the test split for ``purpose`` (training, balancing, model selection)."""
        if self.split == "test":
            raise InputDataError(
                f"{', '.join(self.paths)}: these are test shards; {purpose} must never see the "
                "test split (it is only for the final evaluation)"
            )

    def iter_images(
        self, order: np.ndarray | None = None, crop: int | None = None
    ) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(image, label)`` in ``order`` (default: index order), centrally cropped.

        Files stay open for the whole pass; only the cropped pixels of one row
        are held at a time, so a split of any size streams in constant memory.
        """
        start, stop = central_crop_bounds(self.image_size, crop)
        order = np.arange(len(self)) if order is None else order
        handles: dict[int, h5py.Dataset] = {}
        files: list[h5py.File] = []
        try:
            for position in order:
                number = int(self.file[position])
                if number not in handles:
                    files.append(h5py.File(self.paths[number], "r"))
                    handles[number] = files[-1]["images"]
                row = int(self.row[position])
                try:
                    image = handles[number][row, start:stop, start:stop, :]
                except OSError as error:  # a damaged chunk fails only when it is read
                    raise InputDataError(
                        f"{self.paths[number]}: corrupt HDF5 shard, row {row} cannot be read "
                        f"({error}); delete it and rerun the workflow, so that the "
                        "conversion (rule jpg_to_hdf5) writes it again"
                    ) from error
                yield image, int(self.labels[position])
        finally:
            for handle in files:
                handle.close()

    def read_images(self, positions: Sequence[int], crop: int | None = None) -> np.ndarray:
        """The cropped images at ``positions`` as one uint8 array (for small selections)."""
        images = [image for image, _ in self.iter_images(np.asarray(positions), crop)]
        if not images:
            start, stop = central_crop_bounds(self.image_size, crop)
            return np.zeros((0, stop - start, stop - start, 3), dtype=np.uint8)
        return np.stack(images)
