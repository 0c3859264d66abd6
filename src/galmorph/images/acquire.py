"""Fetch the images of one shard of a split: parallel, retried, verified, resumable.

Three sources give the JPEG of a galaxy:

- :class:`ZipSource`: the member ``images/<asset_id>.jpg`` of an
  images_gz2.zip-style archive, read locally or with HTTP range requests
  (only the sampled members travel, never the whole archive);
- :class:`CutoutSource`: one request per galaxy to a cutout service, the URL
  filled from ``{ra}``, ``{dec}`` and ``{scale}``;
- :class:`DirectorySource`: an existing folder of ``<asset_id>.jpg``.

:func:`fetch_shard` writes ``<out_dir>/<asset_id>.jpg`` for each row. An
image counts only once it decodes fully as a JPEG; each file appears
atomically (temporary name, fsync, rename), so a killed run leaves no
partial file under a final name and a rerun fetches only what is missing.
Bad or missing images are quarantined and listed in a failures CSV; the
shard fails only when they exceed ``max_failure_fraction``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import string
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from PIL import Image
from tqdm import tqdm

from galmorph.download import local_path, read_bytes
from galmorph.errors import DownloadError, InputDataError
from galmorph.images.imaging import (
    MAX_FILE_BYTES,
    ImageFormatError,
    check_pixels,
    policy_problem,
    to_rgb,
    upright_size,
)
from galmorph.io import atomic_path
from galmorph.remote_zip import ZipIndex

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ("asset_id", "dr7objid", "reason")
#: Cutout scale from the catalogue: GZ2 images are 0.02 x petroR90_r arcsec per pixel.
PETRO_SCALE = 0.02
SOURCE_KINDS = ("zip", "cutout", "directory")


class ImageUnavailable(Exception):
    """This one image cannot be had (missing member or file); not worth a retry."""


@dataclass(frozen=True)
class Failure:
    asset_id: int
    dr7objid: int
    reason: str


@dataclass
class ShardReport:
    """What :func:`fetch_shard` did.

    ``n_requested`` = ``n_ok`` + ``n_skipped_existing`` + ``n_failed``.
    """

    n_requested: int
    n_ok: int
    n_skipped_existing: int
    n_failed: int
    failures: list[Failure] = field(default_factory=list)


@dataclass(frozen=True)
class Transfer:
    """Network settings of one shard's fetch."""

    timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 0.5


Getter = Callable[[Mapping[str, Any]], bytes]


class Source(Protocol):
    kind: str
    required_columns: tuple[str, ...]

    def open(self, transfer: Transfer) -> tuple[Getter, Callable[[], None]]:
        """A thread-safe function ``row -> JPEG bytes`` and a function releasing resources."""


@dataclass(frozen=True)
class ZipSource:
    """Members ``<prefix><asset_id>.jpg`` of a zip archive (path, file:// or http(s) URL)."""

    url_or_path: str
    prefix: str = "images/"
    kind = "zip"
    required_columns = ("asset_id", "dr7objid")

    def open(self, transfer: Transfer) -> tuple[Getter, Callable[[], None]]:
        index = ZipIndex.open(
            self.url_or_path,
            timeout_s=transfer.timeout_s,
            retries=transfer.retries,
            backoff_s=transfer.backoff_s,
        )

        def get(row: Mapping[str, Any]) -> bytes:
            name = f"{self.prefix}{int(row['asset_id'])}.jpg"
            if name not in index:
                raise ImageUnavailable(f"missing: {name} is not in the archive")
            return index.read(name)

        return get, index.close


@dataclass(frozen=True)
class CutoutSource:
    """One request per galaxy to a cutout service.

    ``url_template`` is filled with ``{ra}``, ``{dec}`` and ``{scale}`` (and
    ``{asset_id}``, ``{dr7objid}`` if it names them); format specs such as
    ``{ra:.6f}`` work. The scale is ``0.02 x petroR90_r`` arcsec per pixel when
    the rows carry ``petroR90_r``, else ``default_scale``.
    """

    url_template: str
    default_scale: float = 0.396
    kind = "cutout"
    required_columns = ("asset_id", "dr7objid", "ra", "dec")

    def __post_init__(self):
        fields = {name for _, name, _, _ in string.Formatter().parse(self.url_template) if name}
        unknown = fields - {"ra", "dec", "scale", "asset_id", "dr7objid"}
        if not {"ra", "dec"} <= fields or unknown:
            raise InputDataError(
                f"images.cutout_url {self.url_template!r} must contain {{ra}} and {{dec}} "
                f"(and may contain {{scale}}, {{asset_id}}, {{dr7objid}})"
                + (f"; unknown placeholders: {sorted(unknown)}" if unknown else "")
            )
        if not self.default_scale > 0:
            raise InputDataError(f"images.cutout_scale must be > 0, got {self.default_scale}")

    def scale(self, row: Mapping[str, Any]) -> float:
        petro = row.get("petroR90_r")
        if petro is not None and math.isfinite(float(petro)) and float(petro) > 0:
            return PETRO_SCALE * float(petro)
        return self.default_scale

    def url(self, row: Mapping[str, Any]) -> str:
        return self.url_template.format(
            ra=float(row["ra"]),
            dec=float(row["dec"]),
            scale=self.scale(row),
            asset_id=int(row["asset_id"]),
            dr7objid=int(row["dr7objid"]),
        )

    def open(self, transfer: Transfer) -> tuple[Getter, Callable[[], None]]:
        def get(row: Mapping[str, Any]) -> bytes:
            return read_bytes(
                self.url(row),
                timeout_s=transfer.timeout_s,
                retries=transfer.retries,
                backoff_s=transfer.backoff_s,
                max_bytes=MAX_FILE_BYTES,
            )

        return get, lambda: None


@dataclass(frozen=True)
class DirectorySource:
    """An existing folder of images, ``<asset_id>.jpg`` unless ``filename_pattern`` says otherwise.

    ``filename_pattern`` may use ``{id}`` (the row's ``image_id`` for a folder
    dataset, else its ``asset_id``) and ``{asset_id}``. Images that are not
    JPEG (PNG, say) are re-encoded as JPEG at quality 95, so the shard folder
    holds JPEGs only.
    """

    path: str
    filename_pattern: str = "{id}.jpg"
    kind = "directory"
    required_columns = ("asset_id", "dr7objid")

    def open(self, transfer: Transfer) -> tuple[Getter, Callable[[], None]]:
        folder = Path(self.path)
        if not folder.is_dir():
            raise InputDataError(
                f"images.directory {self.path!r} is not a folder; set it to the folder "
                "holding the images"
            )

        def get(row: Mapping[str, Any]) -> bytes:
            image_id = row.get("image_id")
            if image_id is None or (isinstance(image_id, float) and image_id != image_id):
                image_id = int(row["asset_id"])
            name = self.filename_pattern.format(id=image_id, asset_id=int(row["asset_id"]))
            file = folder / name
            try:
                if file.stat().st_size > MAX_FILE_BYTES:
                    raise ImageUnavailable(
                        f"{file}: {file.stat().st_size:,} bytes, more than the "
                        f"{MAX_FILE_BYTES:,} an image may have"
                    )
                data = file.read_bytes()
            except FileNotFoundError:
                raise ImageUnavailable(f"missing: {file} does not exist") from None
            return data if data[:2] == b"\xff\xd8" else _as_jpeg(data, str(file))

        return get, lambda: None


def _as_jpeg(data: bytes, name: str) -> bytes:
    """Re-encode a non-JPEG image (PNG, ...) as an upright 8-bit RGB JPEG
    (:func:`galmorph.images.imaging.to_rgb`); undecodable bytes pass unchanged.

    Raises
    ------
    ImageUnavailable
        The image is too large to decode (a decompression bomb): one failure row.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            check_pixels(image, name)
            image.load()
            buffer = io.BytesIO()
            to_rgb(image).save(buffer, format="JPEG", quality=95)
            return buffer.getvalue()
    except (ImageFormatError, Image.DecompressionBombError) as error:
        raise ImageUnavailable(f"not a usable image: {error}") from error
    except (OSError, SyntaxError, ValueError):
        return data  # verification reports it as not a valid JPEG


def make_source(
    kind: str,
    *,
    zip_url: str = "",
    cutout_url: str = "",
    cutout_scale: float = 0.396,
    directory: str = "",
    filename_pattern: str = "{id}.jpg",
) -> ZipSource | CutoutSource | DirectorySource:
    """Build the source named by ``images.source`` from the other ``images.*`` strings."""
    needed = {"zip": ("zip_url", zip_url), "cutout": ("cutout_url", cutout_url)}
    needed["directory"] = ("directory", directory)
    if kind not in needed:
        raise InputDataError(f"images.source is {kind!r}; choose one of {list(SOURCE_KINDS)}")
    key, value = needed[kind]
    if not value:
        raise InputDataError(f"images.{key} is empty; images.source {kind!r} needs it")
    if kind == "zip":
        return ZipSource(str(value))
    if kind == "cutout":
        return CutoutSource(str(value), float(cutout_scale))
    path = local_path(str(value))
    if path is None:
        raise InputDataError(f"images.directory {value!r} must be a local folder, not a URL")
    fields = {name for _, name, _, _ in string.Formatter().parse(filename_pattern) if name}
    if not fields <= {"id", "asset_id"}:
        raise InputDataError(
            f"image file-name pattern {filename_pattern!r} uses {sorted(fields)}; "
            "only {id} and {asset_id} are known (folder.filename_pattern)"
        )
    return DirectorySource(str(path), filename_pattern)


def verify_jpeg(data: bytes, size: int, size_policy: str = "resize") -> str | None:
    """Why ``data`` is not an acceptable image, or ``None`` if it is.

    The image must decode fully as a JPEG. With ``size_policy="reject"`` it
    must also be ``size`` x ``size`` RGB; with ``"resize"`` any size and mode
    pass, as conversion resizes them.
    """
    if not data:
        return "empty file"
    if len(data) > MAX_FILE_BYTES:
        return f"{len(data):,} bytes, more than the {MAX_FILE_BYTES:,} an image may have"
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG":
                return f"not a JPEG ({image.format or 'unknown'} data)"
            check_pixels(image, "the image")
            image.load()
            shape, mode = upright_size(image), image.mode
    except ImageFormatError as error:
        return str(error)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        snippet = data[:60].decode("ascii", "replace").replace("\n", " ")
        detail = f"{error}" if data[:2] == b"\xff\xd8" else f"{error}; starts with {snippet!r}"
        return f"not a valid JPEG: {detail}"
    # The one size/mode policy: galmorph.images.imaging's, as the conversion applies it.
    return policy_problem(mode, shape, size, size_policy)


@contextlib.contextmanager
def resumable_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder ``.<name>.partial`` next to ``final``; rename it on success.

    Unlike a throw-away temporary folder, the staging folder has a fixed name
    and is kept when the body fails or the process is killed, so the next run
    passes it to :func:`fetch_shard` again and fetches only what is missing.
    ``final`` itself only ever appears complete.
    """
    final = Path(final)
    staging = final.with_name(f".{final.name}.partial")
    staging.mkdir(parents=True, exist_ok=True)
    yield staging
    if final.is_dir():
        if any(final.iterdir()):
            raise InputDataError(f"{final} already exists and is not empty; remove it first")
        final.rmdir()  # an empty folder left by the scheduler: replace it
    os.replace(staging, final)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`galmorph.io.atomic_path`, fsynced first:
    never a partial file under the final name, even after a power loss."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _check_rows(rows: pd.DataFrame, required: tuple[str, ...]) -> pd.DataFrame:
    missing = [column for column in required if column not in rows.columns]
    if missing:
        raise InputDataError(
            f"the shard's rows lack column(s) {missing}; the split CSV must have "
            f"{list(required)} (found {list(rows.columns)})"
        )
    bad = rows["asset_id"].isna() | rows["dr7objid"].isna()
    if bad.any():
        raise InputDataError(
            f"row(s) {list(rows.index[bad][:5])} of the shard have no asset_id/dr7objid"
        )
    duplicated = rows["asset_id"].duplicated()
    if duplicated.any():
        raise InputDataError(
            f"asset_id(s) {sorted(set(rows['asset_id'][duplicated]))[:5]} appear more than "
            "once in the shard's rows; the sample must list each galaxy once"
        )
    return rows


def write_failures(failures: list[Failure], path: str | Path) -> None:
    """The failures CSV (header always, one row per failure), written atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FAILURE_COLUMNS)
        for failure in failures:
            writer.writerow((failure.asset_id, failure.dr7objid, failure.reason))


def failed_asset_ids(failures_csv: str | os.PathLike) -> set[int]:
    """Asset ids listed in a failures CSV of :func:`write_failures` (column ``asset_id``)."""
    try:
        frame = pd.read_csv(failures_csv)
    except pd.errors.EmptyDataError:
        return set()
    if "asset_id" not in frame:
        raise InputDataError(
            f"{failures_csv}: no asset_id column; rerun the download of this shard"
        )
    return set(frame["asset_id"].astype("int64").tolist())


def _quarantine(folder: Path, asset_id: int, data: bytes | None) -> None:
    if data:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(folder / f"{asset_id}.jpg", data)


@dataclass(frozen=True)
class ShardFolder:
    """Where one shard's images go: kept ones in ``out_dir``, bad bytes in ``quarantine``.

    ``size`` and ``size_policy`` decide what counts as a valid image (:func:`verify_jpeg`).
    """

    out_dir: Path
    quarantine: Path
    size: int = 424
    size_policy: str = "resize"

    def problem(self, data: bytes) -> str | None:
        return verify_jpeg(data, self.size, self.size_policy)

    def image(self, asset_id: int) -> Path:
        return self.out_dir / f"{asset_id}.jpg"

    def present(self, asset_id: int) -> bool:
        """Whether a valid image is already there; an invalid one is removed to be fetched again."""
        final = self.image(asset_id)
        if not final.is_file():
            return False
        if self.problem(final.read_bytes()) is None:
            return True
        final.unlink()  # e.g. written by an older, laxer run: fetch it again
        return False

    def keep(self, asset_id: int, data: bytes) -> str | None:
        """Store valid ``data`` atomically, or quarantine it and say why not."""
        reason = self.problem(data)
        if reason is not None:
            _quarantine(self.quarantine, asset_id, data)
            return reason
        _write_atomically(self.image(asset_id), data)
        (self.quarantine / f"{asset_id}.jpg").unlink(missing_ok=True)
        return None


def _shard_folder(out_dir, quarantine_dir, size: int, size_policy: str) -> ShardFolder:
    if size_policy not in ("resize", "reject"):
        raise InputDataError(f"images.size_policy is {size_policy!r}; use resize or reject")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.tmp"):  # left by a killed run: never a final file
        stale.unlink(missing_ok=True)
    quarantine = (
        out_dir.parent / f"{out_dir.name}.quarantine"
        if quarantine_dir is None
        else Path(quarantine_dir)
    )
    return ShardFolder(out_dir, quarantine, size, size_policy)


def _fetch_rows(
    pending: list[dict],
    source: Source,
    transfer: Transfer,
    folder: ShardFolder,
    connections: int,
    bar: tqdm,
) -> tuple[int, list[Failure]]:
    """Fetch and keep ``pending`` rows over ``connections`` threads: (number kept, failures)."""
    get, release = source.open(transfer)

    def acquire(row: Mapping[str, Any]) -> str | None:
        try:
            data = get(row)
        except (ImageUnavailable, DownloadError, InputDataError) as error:
            return str(error)
        return folder.keep(int(row["asset_id"]), data)

    n_ok, failures = 0, []
    try:
        with ThreadPoolExecutor(max_workers=max(1, connections)) as pool:
            futures = {pool.submit(acquire, row): row for row in pending}
            try:
                for future in as_completed(futures):
                    row, reason = futures[future], future.result()
                    if reason is None:
                        n_ok += 1
                    else:
                        failures.append(Failure(int(row["asset_id"]), int(row["dr7objid"]), reason))
                    bar.update()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        release()
    return n_ok, failures


def _too_many_failures(
    report: ShardReport, max_failure_fraction: float, folder: ShardFolder, failures_csv
) -> DownloadError:
    # The workflow removes a failed job's outputs (the failures CSV too) but keeps
    # its log: the log holds the full list of what is missing.
    for failure in report.failures:
        log.warning(
            "missing asset_id %d (dr7objid %d): %s",
            failure.asset_id,
            failure.dr7objid,
            failure.reason,
        )
    examples = "; ".join(f"{f.asset_id}: {f.reason}" for f in report.failures[:3])
    quarantine = folder.quarantine
    return DownloadError(
        f"{report.n_failed} of {report.n_requested} images "
        f"({report.n_failed / report.n_requested:.1%}) of {folder.out_dir} failed, more than "
        f"images.max_failure_fraction = {max_failure_fraction:.1%}. First reasons: "
        f"{examples}. Full list: {failures_csv} and the log ('missing asset_id' lines)"
        + (f"; bad bytes kept in {quarantine}" if quarantine.is_dir() else "")
        + ". Rerun to retry only the missing images, or check images.source and its URL."
    )


def fetch_shard(
    rows: pd.DataFrame,
    source: ZipSource | CutoutSource | DirectorySource,
    out_dir: str | Path,
    failures_csv: str | Path,
    *,
    transfer: Transfer = Transfer(),
    connections: int = 4,
    max_failure_fraction: float = 0.02,
    size: int = 424,
    size_policy: str = "resize",
    progress: bool = True,
    quarantine_dir: str | Path | None = None,
) -> ShardReport:
    """Fetch, verify and store the images of ``rows`` as ``<out_dir>/<asset_id>.jpg``.

    Parameters
    ----------
    rows : DataFrame
        Rows of the split CSV for this shard: ``asset_id``, ``dr7objid`` and,
        for a cutout source, ``ra``, ``dec`` (``petroR90_r`` optional).
    source : ZipSource, CutoutSource or DirectorySource
        Where the JPEGs come from (see :func:`make_source`).
    out_dir : path
        Folder of the shard's images; images already there and valid are kept
        (a rerun fetches only what is missing).
    failures_csv : path
        Always written: ``asset_id, dr7objid, reason`` per failed image.
    transfer : Transfer
        Attempts per request in total, first wait (doubled each time), seconds
        without data before a request is abandoned.
    connections : int
        Parallel requests.
    max_failure_fraction : float
        Raise when more than this fraction of the rows failed.
    size, size_policy : int, {"resize", "reject"}
        With "reject", only ``size`` x ``size`` RGB images count as valid.
    progress : bool
        Show a tqdm bar on stderr.
    quarantine_dir : path, optional
        Where the bytes of bad images go; default ``<out_dir>.quarantine``
        next to ``out_dir``. Created only when something is quarantined.

    Returns
    -------
    ShardReport

    Raises
    ------
    DownloadError
        The source cannot be reached at all, or too many images failed (the
        message gives the count, the first reasons and the failures CSV).
    InputDataError
        Rows lacking a required column or listing an asset twice.
    """
    folder = _shard_folder(out_dir, quarantine_dir, size, size_policy)
    records = _check_rows(rows, source.required_columns).to_dict("records")
    pending = [row for row in records if not folder.present(int(row["asset_id"]))]
    skipped = len(records) - len(pending)
    log.info(
        "%s: %d images requested, %d already present, %d to fetch from %s",
        folder.out_dir,
        len(records),
        skipped,
        len(pending),
        source.kind,
    )
    n_ok, failures = 0, []
    if pending:
        bar = tqdm(
            total=len(records),
            initial=skipped,
            desc=folder.out_dir.name,
            unit="img",
            file=sys.stderr,
            mininterval=1.0,
            disable=not progress,
        )
        with bar:
            n_ok, failures = _fetch_rows(pending, source, transfer, folder, connections, bar)
    order = {int(row["asset_id"]): number for number, row in enumerate(records)}
    failures.sort(key=lambda failure: order[failure.asset_id])
    write_failures(failures, failures_csv)
    report = ShardReport(len(records), n_ok, skipped, len(failures), failures)
    log.info(
        "%s: %d fetched, %d already present, %d failed",
        folder.out_dir,
        report.n_ok,
        report.n_skipped_existing,
        report.n_failed,
    )
    if records and report.n_failed > max_failure_fraction * report.n_requested:
        raise _too_many_failures(report, max_failure_fraction, folder, failures_csv)
    return report
