"""Write a synthetic sky in the formats of the Galaxy Zoo 2 release.

Three files, in the formats of the real ones (docs/design.md, "The Galaxy Zoo 2
release files"):
``gz2_hart16.csv.gz``, ``gz2_filename_mapping.csv`` and ``images_gz2.zip``
(members ``images/<asset_id>.jpg``). The files are byte-identical for the
same arguments: gzip and zip timestamps are fixed, and each image has its
own seeded generator, so neither the order of work nor ``n_jobs`` matters.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import zipfile
from collections.abc import Sequence
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from galmorph.catalogue.classes import CLASS_NAMES, MalformedClassError, parse
from galmorph.errors import InputDataError
from galmorph.io import atomic_path
from galmorph.synth.catalogue import Sky, build_catalogue
from galmorph.synth.images import render_jpeg

log = logging.getLogger(__name__)

HART16 = "gz2_hart16.csv.gz"
MAPPING = "gz2_filename_mapping.csv"
IMAGES_ZIP = "images_gz2.zip"
FILES = (HART16, MAPPING, IMAGES_ZIP)
#: Date stamped on every zip member (zip dates start in 1980).
_ZIP_DATE = (2019, 12, 2, 0, 0, 0)
# Seed streams: the catalogue is stream 0, image i is stream (1, i).
_CATALOGUE_STREAM = 0
_IMAGE_STREAM = 1


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of catalogue row ``index``'s image, independent of every other row."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_IMAGE_STREAM, index)))


def _render_row(task: tuple[int, int, str]) -> bytes:
    seed, index, gz2_class = task
    return render_jpeg(gz2_class, image_rng(seed, index))


def _gzip_csv(frame: pd.DataFrame, path: Path) -> None:
    """gzip with no name and mtime 0 in the header, so equal tables give equal bytes."""
    data = frame.to_csv(index=False).encode()
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as gz:
        gz.write(data)


def _check_sizes(n_galaxies: int, n_unlabelled: int, n_malformed: int) -> None:
    if n_galaxies < 1:
        raise InputDataError(f"demo sky: n_galaxies must be at least 1, got {n_galaxies}")
    if n_unlabelled < 0:
        raise InputDataError(f"demo sky: n_unlabelled must be >= 0, got {n_unlabelled}")
    if not 0 <= n_malformed <= n_galaxies:
        raise InputDataError(
            f"demo sky: n_malformed must be between 0 and n_galaxies ({n_galaxies}), "
            f"got {n_malformed}"
        )


def write_sky(
    out_dir: str | Path,
    n_galaxies: int,
    seed: int,
    n_unlabelled: int = 0,
    n_malformed: int = 0,
    progress: bool = True,
    n_jobs: int = 1,
) -> dict[str, Path]:
    """Generate a synthetic Galaxy Zoo 2 sky and write its three files into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Folder of the three files; created if missing.
    n_galaxies : int
        Catalogue rows, each with an image in the zip.
    seed : int
        Everything written is a pure function of the arguments.
    n_unlabelled : int
        Extra mapping rows whose ``objid`` is not in the catalogue (and with no image).
    n_malformed : int
        Catalogue rows whose ``gz2_class`` is outside the grammar.
    progress : bool
        Show a tqdm bar while rendering.
    n_jobs : int
        Processes rendering images; the output does not depend on it.

    Returns
    -------
    dict
        ``{"hart16": path, "mapping": path, "zip": path}``.

    Notes
    -----
    The three files appear together: all are written under temporary names
    and renamed only once the last one is complete.
    """
    _check_sizes(n_galaxies, n_unlabelled, n_malformed)
    out_dir = Path(out_dir)
    sky = build_catalogue(
        np.random.SeedSequence(seed, spawn_key=(_CATALOGUE_STREAM,)),
        n_galaxies,
        n_unlabelled,
        n_malformed,
    )
    paths = {"hart16": out_dir / HART16, "mapping": out_dir / MAPPING, "zip": out_dir / IMAGES_ZIP}
    with contextlib.ExitStack() as stack:
        temporary = {key: stack.enter_context(atomic_path(path)) for key, path in paths.items()}
        _gzip_csv(sky.catalogue, temporary["hart16"])
        sky.mapping.to_csv(temporary["mapping"], index=False)
        _write_zip(sky, seed, temporary["zip"], progress, n_jobs)
    log.info(
        "wrote %d galaxies (%d malformed classes) and %d unlabelled mapping rows to %s",
        n_galaxies,
        n_malformed,
        n_unlabelled,
        out_dir,
    )
    return paths


def _write_zip(sky: Sky, seed: int, path: Path, progress: bool, n_jobs: int) -> None:
    # Members in asset_id order, as an archive of a folder listing would be.
    order = np.argsort(sky.asset_ids, kind="stable")
    tasks = [(seed, int(i), sky.classes[i]) for i in order]
    bar = tqdm(total=len(tasks), desc="rendering galaxies", unit="img", disable=not progress)
    with contextlib.ExitStack() as stack:
        archive = stack.enter_context(zipfile.ZipFile(path, "w", zipfile.ZIP_STORED))
        # Fork, not spawn: a spawned worker re-runs the caller's __main__, which
        # for a rule script is the script itself. Without fork, render serially.
        if n_jobs > 1 and "fork" in get_all_start_methods():
            pool = stack.enter_context(get_context("fork").Pool(n_jobs))
            images = pool.imap(_render_row, tasks, chunksize=8)
        else:
            images = map(_render_row, tasks)
        for (_, index, _), jpeg in zip(tasks, images, strict=True):
            info = zipfile.ZipInfo(f"images/{int(sky.asset_ids[index])}.jpg", _ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, jpeg)
            bar.update()
    bar.close()


# ---------------------------------------------------------------------------
# Contact sheet


def contact_sheet(
    sky_dir: str | Path,
    out_png: str | Path,
    per_class: int = 6,
    thumb: int = 160,
) -> Path:
    """A PNG grid of a written sky: one row per class, each image labelled with its gz2_class.

    Parameters
    ----------
    sky_dir : path
        Folder holding the three files written by :func:`write_sky`.
    out_png : path
        The grid, written atomically.
    per_class : int
        Images per row; the first rows of each class in catalogue order.
    thumb : int
        Side of each thumbnail in pixels.
    """
    sky_dir = Path(sky_dir)
    for name in FILES:
        if not (sky_dir / name).exists():
            raise InputDataError(f"{sky_dir / name} is missing: write the sky with write_sky first")
    catalogue = pd.read_csv(sky_dir / HART16, usecols=["dr7objid", "gz2_class"])
    mapping = pd.read_csv(sky_dir / MAPPING)
    rows = catalogue.merge(mapping, left_on="dr7objid", right_on="objid")
    picks: dict[str, list[tuple[int, str]]] = {name: [] for name in CLASS_NAMES}
    for asset_id, gz2_class in zip(rows["asset_id"], rows["gz2_class"], strict=True):
        try:
            simple = parse(gz2_class).simple
        except MalformedClassError:
            continue
        if len(picks[simple]) < per_class:
            picks[simple].append((int(asset_id), gz2_class))
    classes = [name for name in CLASS_NAMES if picks[name]]
    font = _font(max(10, thumb // 11))
    sheet = Image.new("RGB", (thumb * per_class, thumb * len(classes)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    with zipfile.ZipFile(sky_dir / IMAGES_ZIP) as archive:
        for row, name in enumerate(classes):
            for col, (asset_id, gz2_class) in enumerate(picks[name]):
                with archive.open(f"images/{asset_id}.jpg") as member:
                    image = Image.open(io.BytesIO(member.read())).convert("RGB")
                x, y = col * thumb, row * thumb
                sheet.paste(image.resize((thumb, thumb), Image.Resampling.LANCZOS), (x, y))
                draw.text((x + 4, y + 3), f"{name}: {gz2_class}", fill=(255, 230, 90), font=font)
    out_png = Path(out_png)
    with atomic_path(out_png, suffix=".png") as temporary:
        sheet.save(temporary, format="PNG")
    return out_png


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def contact_sheet_of(images: Sequence[np.ndarray], labels: Sequence[str], columns: int, thumb: int):
    """A labelled grid of in-memory images (for quick looks in a notebook)."""
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (thumb * columns, thumb * rows), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = _font(max(10, thumb // 11))
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        x, y = (k % columns) * thumb, (k // columns) * thumb
        sheet.paste(Image.fromarray(image).resize((thumb, thumb), Image.Resampling.LANCZOS), (x, y))
        draw.text((x + 4, y + 3), label, fill=(255, 230, 90), font=font)
    return sheet
