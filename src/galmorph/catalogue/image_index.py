"""Which galaxies have an image: the sample keeps only those."""

from __future__ import annotations

from pathlib import Path

from galmorph.errors import InputDataError


def zip_asset_ids(url: str, *, timeout_s: float, retries: int) -> list[int]:
    """Asset ids of the ``images/<asset_id>.jpg`` members of an images_gz2.zip-style archive.

    Only the zip's central directory is read (HTTP range requests for a
    remote archive), never the images.
    """
    from galmorph.remote_zip import ZipIndex, asset_ids

    return sorted(asset_ids(ZipIndex.open(url, timeout_s=timeout_s, retries=retries)))


def directory_asset_ids(directory: str | Path) -> list[int]:
    """Asset ids of the ``<asset_id>.jpg`` files in a folder.

    The listing uses the same file-name pattern as the directory image source
    reads, so every id listed here is one the download stage can find.
    """
    from galmorph.catalogue.folder import list_images

    if not Path(directory).is_dir():
        raise InputDataError(
            f"images.directory {str(directory)!r} is not a folder; set it to the folder "
            "holding <asset_id>.jpg files"
        )
    images = list_images(directory, "{id}.jpg")
    ids = [int(name) for name in images if name.isdigit()]
    if not ids:
        raise InputDataError(f"no <asset_id>.jpg file in {directory}")
    return sorted(ids)


def write_index(ids: list[int], path: str | Path) -> None:
    from galmorph.io import atomic_path

    with atomic_path(path) as temporary:
        temporary.write_text("".join(f"{i}\n" for i in ids))
