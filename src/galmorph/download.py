"""Robust downloads: retries with backoff, resume, atomic files, checksums.

:func:`fetch` copies one URL (``http(s)://``, ``file://`` or a plain local
path) to a local file. The lower-level helpers (:func:`http_get`,
:func:`with_retries`, :func:`local_path`) are shared with
:mod:`galmorph.remote_zip` and :mod:`galmorph.images.acquire`. Only the standard
library speaks HTTP, so the download environment needs nothing else.
"""

from __future__ import annotations

import csv
import gzip
import http.client
import json
import logging
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from galmorph.errors import DownloadError
from galmorph.io import sha256_of

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = "galmorph/0.1 (+https://github.com/galmorph)"
CHUNK_BYTES = 256 * 1024
#: Upper bound of one wait between attempts, whatever the backoff or Retry-After.
MAX_WAIT_S = 60.0


class TransientError(Exception):
    """A failure worth another attempt: connection errors, timeouts, 5xx, 429, short bodies.

    ``retry_after_s`` carries a server's ``Retry-After`` hint when it gave one.
    """

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def is_remote(url: str) -> bool:
    """True for ``http://`` and ``https://`` URLs."""
    return urllib.parse.urlsplit(str(url)).scheme.lower() in ("http", "https")


def local_path(url_or_path: str | os.PathLike) -> Path | None:
    """The filesystem path of a ``file://`` URL or plain path; ``None`` for remote URLs.

    Raises
    ------
    DownloadError
        For a scheme other than ``http``, ``https`` or ``file``.
    """
    text = os.fspath(url_or_path)
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DownloadError(f"{text}: file:// URLs must name a local path (file:///abs/path)")
        return Path(urllib.request.url2pathname(parts.path))
    # A Windows drive letter parses as a one-letter scheme.
    if scheme and len(scheme) > 1:
        raise DownloadError(
            f"{text}: unsupported URL scheme {parts.scheme!r}; use http(s)://, file:// "
            "or a plain local path"
        )
    return Path(text)


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def describe_error(error: BaseException) -> str:
    """A short human description of a network error."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        if isinstance(reason, socket.gaierror):
            return f"host name could not be resolved ({reason.strerror})"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, TimeoutError | socket.timeout):
            return "timed out"
        return str(reason)
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, http.client.IncompleteRead):
        return f"connection closed after {len(error.partial)} bytes of the body"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def classify(error: BaseException) -> Exception:
    """Map an exception from urllib/http.client to :class:`TransientError` or a final error.

    HTTP 4xx other than 429 is final (retrying cannot help); everything on the
    network path (refused, reset, timeout, DNS, 5xx, 429, short body) is transient.
    """
    if isinstance(error, TransientError | DownloadError):
        return error
    if isinstance(error, urllib.error.HTTPError):
        message = describe_error(error)
        if error.code == 429 or error.code >= 500:
            return TransientError(message, _retry_after(error.headers))
        return DownloadError(message)
    if isinstance(error, urllib.error.URLError | OSError | http.client.HTTPException):
        return TransientError(describe_error(error))
    return error  # a programming error: let it surface as is


def with_retries(
    attempt: Callable[[], T],
    *,
    retries: int,
    backoff_s: float,
    what: str,
    on_retry: Callable[[int, Exception], None] | None = None,
) -> T:
    """Call ``attempt()`` up to ``retries`` times, waiting ``backoff_s * 2**k`` in between.

    Only :class:`TransientError` (or a network exception :func:`classify` maps to
    it) is retried. The final failure is a :class:`DownloadError` naming ``what``.

    Parameters
    ----------
    attempt : callable
        One try; raises on failure.
    retries : int
        Attempts in total (at least one is made).
    backoff_s : float
        First wait; doubled after each failed attempt, capped at one minute.
        A server's ``Retry-After`` is honoured when longer.
    what : str
        Names the thing fetched in messages (usually the URL).
    """
    attempts = max(1, int(retries))
    last: TransientError | None = None
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except Exception as raw:  # noqa: BLE001 - classified just below
            error = classify(raw)
            if not isinstance(error, TransientError):
                if isinstance(error, DownloadError) and what not in str(error):
                    raise DownloadError(f"{what}: {error}") from raw
                raise error from raw
            last = error
            if number == attempts:
                break
            wait = min(MAX_WAIT_S, backoff_s * 2 ** (number - 1))
            if error.retry_after_s is not None:
                wait = min(MAX_WAIT_S, max(wait, error.retry_after_s))
            log.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1f s",
                what,
                number,
                attempts,
                error,
                wait,
            )
            if on_retry is not None:
                on_retry(number, error)
            time.sleep(wait)
    raise DownloadError(f"{what}: failed after {attempts} attempt(s); last error: {last}")


def open_url(url: str, *, timeout_s: float, headers: dict[str, str] | None = None):
    """Open ``url`` with urllib (redirects followed); the caller closes the response."""
    request_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    request_headers.update(headers or {})
    request = urllib.request.Request(url, headers=request_headers)
    return urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 - scheme checked


def _read_exactly(response, length: int | None, max_bytes: int | None = None) -> bytes:
    """Read a whole body; a body shorter than Content-Length is a TransientError.

    With ``max_bytes``, a body announced or found longer is a :class:`DownloadError`
    after reading one byte too many at most (a hostile server's endless body is cut).
    """
    if max_bytes is not None and length is not None and length > max_bytes:
        raise DownloadError(
            f"{response.url}: the answer announces {length:,} bytes, more than the "
            f"{max_bytes:,} accepted"
        )
    try:
        data = response.read() if max_bytes is None else response.read(max_bytes + 1)
    except http.client.IncompleteRead as error:
        raise TransientError(describe_error(error)) from error
    if max_bytes is not None and len(data) > max_bytes:
        raise DownloadError(
            f"{response.url}: the answer runs past the {max_bytes:,} bytes accepted; cut off"
        )
    if length is not None and len(data) != length:
        raise TransientError(
            f"truncated body: received {len(data)} of {length} bytes announced by Content-Length"
        )
    return data


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None


def http_get(url: str, *, timeout_s: float, max_bytes: int | None = None) -> bytes:
    """One GET attempt returning the whole body.

    (Byte ranges go through ``galmorph.remote_zip``'s reader, which checks each
    answer's Content-Range; both open connections with :func:`open_url`.)

    Raises
    ------
    TransientError
        Network failures, 5xx/429 and bodies shorter than announced.
    DownloadError
        4xx answers; a body longer than ``max_bytes``.
    """
    try:
        with open_url(url, timeout_s=timeout_s) as response:
            return _read_exactly(response, _content_length(response), max_bytes)
    except (TransientError, DownloadError):
        raise
    except Exception as error:  # noqa: BLE001 - classified
        raise classify(error) from error


def range_ignored_error(url: str, status: int) -> DownloadError:
    return DownloadError(
        f"{url}: the server answered a byte-range request with HTTP {status} instead of "
        "206 Partial Content, i.e. it ignores Range and would send the whole file. "
        "Reading single zip members needs range support: download the archive elsewhere "
        "and set images.zip_url to its local path (or a file:// URL)."
    )


def read_bytes(
    url_or_path: str,
    *,
    timeout_s: float = 60.0,
    retries: int = 5,
    backoff_s: float = 1.0,
    max_bytes: int | None = None,
) -> bytes:
    """The whole content of a small URL or local file, with retries for remote ones.

    ``max_bytes`` refuses (:class:`DownloadError`) anything larger without reading it.
    """
    path = local_path(url_or_path)
    if path is not None:
        try:
            if max_bytes is not None and path.stat().st_size > max_bytes:
                raise DownloadError(
                    f"{url_or_path}: {path.stat().st_size:,} bytes, more than the "
                    f"{max_bytes:,} accepted"
                )
            return path.read_bytes()
        except FileNotFoundError as error:
            raise DownloadError(f"{url_or_path}: no such file ({path})") from error
    return with_retries(
        lambda: http_get(url_or_path, timeout_s=timeout_s, max_bytes=max_bytes),
        retries=retries,
        backoff_s=backoff_s,
        what=url_or_path,
    )


def _progress(total: int | None, initial: int, name: str, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        mininterval=1.0,
        disable=not enabled,
    )


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _state_path(part: Path) -> Path:
    """Beside a ``.part``: the first answer's validators and length, for a safe resume."""
    return part.with_name(part.name + ".json")


def _read_state(part: Path) -> dict:
    try:
        return json.loads(_state_path(part).read_text())
    except (OSError, ValueError):
        return {}


def _restart(part: Path, reason: str) -> TransientError:
    """Drop the partial file (and its state): the next attempt starts from zero."""
    part.unlink(missing_ok=True)
    _state_path(part).unlink(missing_ok=True)
    return TransientError(f"{reason}; restarting from the first byte")


def _http_attempt(url: str, part: Path, *, timeout_s: float, progress: bool) -> None:
    """One attempt: continue ``part`` if it has data and the file is provably the same, else
    start over; every answer is checked for being exactly what was asked.

    A resume is conditional: ``If-Range`` carries the first answer's ETag (or
    Last-Modified), so a server whose file changed answers 200 with the whole new file;
    a 206 must start at our offset and give the same total length as the first answer.
    Without a validator nothing proves the file is unchanged: the attempt restarts.
    """
    offset = part.stat().st_size if part.exists() else 0
    state = _read_state(part) if offset else {}
    validator = state.get("etag") or state.get("last_modified")
    if offset and not validator:
        part.unlink(missing_ok=True)
        offset = 0
    headers = {"Range": f"bytes={offset}-", "If-Range": validator} if offset else {}
    try:
        response = open_url(url, timeout_s=timeout_s, headers=headers)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Nothing left past our offset: either the .part is already complete
            # (kill after the last byte) or it is stale; the size tells.
            total = error.headers.get("Content-Range", "").rpartition("/")[2]
            if total.isdigit() and int(total) == offset == state.get("total"):
                return
            raise _restart(part, "stale partial file (HTTP 416)") from error
        raise
    with response:
        length = _content_length(response)
        content_range = response.headers.get("Content-Range", "").strip()
        if response.status == 206:
            match = _CONTENT_RANGE.fullmatch(content_range)
            if match is None:
                raise _restart(part, f"HTTP 206 with an unusable Content-Range {content_range!r}")
            start, stop = int(match.group(1)), int(match.group(2))
            total = int(match.group(3)) if match.group(3) != "*" else None
            if not offset:  # a plain GET: only the whole file is an answer
                if start != 0 or total is None or stop != total - 1:
                    raise _restart(
                        part, f"a plain GET answered with part of the file ({content_range})"
                    )
            elif start != offset or total is None or total != state.get("total"):
                raise _restart(
                    part,
                    f"resume from byte {offset} of {state.get('total')} answered with "
                    f"{content_range!r}",
                )
            if length is not None and length != stop - start + 1:
                raise _restart(part, f"Content-Length {length} disagrees with {content_range}")
            mode = "ab" if offset else "wb"
        elif response.status == 200:
            if offset:
                log.info("%s: the server sent the whole file (changed, or no resume)", url)
            offset, mode, total = 0, "wb", length
        else:
            raise _restart(part, f"unexpected HTTP {response.status}")
        if offset == 0:
            _state_path(part).write_text(
                json.dumps(
                    {
                        "etag": response.headers.get("ETag"),
                        "last_modified": response.headers.get("Last-Modified"),
                        "total": total,
                    }
                )
            )
        received = 0
        with (
            open(part, mode) as handle,
            _progress(total, offset, part.name.removesuffix(".part"), progress) as bar,
        ):
            try:
                while block := response.read(CHUNK_BYTES):
                    handle.write(block)
                    received += len(block)
                    bar.update(len(block))
            except http.client.IncompleteRead as error:
                handle.write(error.partial)
                received += len(error.partial)
                raise TransientError(describe_error(error)) from error
            finally:
                handle.flush()
                os.fsync(handle.fileno())
        if length is not None and received != length:
            raise TransientError(f"truncated body: received {received} of {length} bytes; resuming")
        if total is not None and part.stat().st_size != total:
            raise _restart(part, f"{part.stat().st_size} bytes on disk, the file has {total}")


def table_check(required: tuple[str, ...]) -> Callable[[Path], None]:
    """A content check for a CSV (or gzipped CSV) that must hold the ``required`` columns.

    Most users set no checksum, so the content itself must prove the download: a ``.gz``
    must decompress to its end (gzip's CRC and length trailer), the text must be a CSV whose
    header names every required column, and it must end with a complete row. The check
    raises :class:`ValueError` saying what came instead (an HTML page, a cut-short file ...).
    """

    def check(path: Path) -> None:
        path = Path(path)
        with open(path, "rb") as raw:
            magic = raw.read(2)
        gzipped = path.name.removesuffix(".part").endswith(".gz")
        if gzipped and magic != b"\x1f\x8b":
            raise ValueError(f"not a gzip file; it starts with {_preview(path)}")
        opener = gzip.open if gzipped else open
        first, last = b"", b""
        try:
            with opener(path, "rb") as stream:
                first = stream.readline(1 << 20)
                last = first[-1:]
                while block := stream.read(CHUNK_BYTES):
                    last = block[-1:]
        except (EOFError, OSError, zlib.error) as error:
            raise ValueError(f"not a complete gzip file ({error})") from error
        text = first.decode("utf-8", errors="replace").strip()
        if text.lstrip().startswith("<"):
            raise ValueError(f"an HTML or XML page instead of a CSV: {text[:80]!r}")
        header = next(csv.reader([text]), [])
        missing = [column for column in required if column not in header]
        if missing:
            raise ValueError(f"a header without the column(s) {', '.join(missing)}: {text[:80]!r}")
        if last != b"\n":
            raise ValueError("a file cut short in the middle of a row")

    return check


def _preview(path: Path) -> str:
    with open(path, "rb") as handle:
        return repr(handle.read(60).decode("utf-8", errors="replace"))


def _checked(check: Callable[[Path], None] | None, part: Path, url: str, final: bool) -> None:
    """Run ``check`` on a complete ``part``; a refusal deletes it (and is retried unless final)."""
    if check is None:
        return
    try:
        check(part)
    except ValueError as error:
        part.unlink(missing_ok=True)
        _state_path(part).unlink(missing_ok=True)
        message = f"{url}: the downloaded body is {error}"
        if final:
            raise DownloadError(message) from error
        raise TransientError(message) from error


def _copy_local(source: Path, part: Path, *, url: str, progress: bool) -> None:
    if not source.is_file():
        raise DownloadError(
            f"{url}: no such file ({source}). Check the path in the config "
            "(a file:// URL needs an absolute path: file:///abs/path/name)"
        )
    with (
        open(source, "rb") as reader,
        open(part, "wb") as writer,
        _progress(source.stat().st_size, 0, source.name, progress) as bar,
    ):
        while block := reader.read(CHUNK_BYTES):
            writer.write(block)
            bar.update(len(block))
        writer.flush()
        os.fsync(writer.fileno())


def _offline_hint(url: str, dest: Path, config_key: str | None) -> str:
    name = Path(urllib.parse.urlsplit(url).path).name or dest.name
    key = config_key or "the URL's config key (e.g. catalogue.hart16_url)"
    return (
        f" Is this machine offline or the host down? Download the file elsewhere and "
        f"set {key} to file:///path/to/{name}"
    )


def fetch(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
    progress: bool = True,
    config_key: str | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming and retrying as needed.

    Data goes to ``<dest>.part`` next to ``dest`` and is renamed to ``dest``
    only once complete (and checksum-verified when ``sha256`` is given). A
    ``.part`` left by an earlier failed or killed attempt is continued with a
    ``Range: bytes=N-`` request when the server answers 206, else restarted.

    Parameters
    ----------
    url : str
        ``http://``, ``https://``, ``file://`` URL or a plain local path.
    dest : path
        The final file.
    sha256 : str, optional
        Expected hex digest; empty or ``None`` skips the check. On mismatch the
        file is deleted and :class:`DownloadError` raised (not retried).
    retries : int
        Attempts in total; connection errors, timeouts, HTTP 5xx/429 and
        truncated bodies are retried, other 4xx are not.
    backoff_s : float
        First wait between attempts, doubled each time.
    timeout_s : float
        Seconds without data before an attempt is abandoned.
    progress : bool
        Show a tqdm bar on stderr.
    config_key : str, optional
        The config key holding ``url``, named in error messages.
    check : callable, optional
        Validates the complete file's content before it takes its final name
        (:func:`table_check`); a refused body is deleted and fetched again, and
        the last refusal names the URL and what came instead.

    Returns
    -------
    Path
        ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    source = local_path(url)
    if source is not None:
        _copy_local(source, part, url=url, progress=progress)
        _checked(check, part, url, final=True)
    else:

        def attempt() -> None:
            _http_attempt(url, part, timeout_s=timeout_s, progress=progress)
            _checked(check, part, url, final=False)

        try:
            with_retries(
                attempt,
                retries=retries,
                backoff_s=backoff_s,
                what=url,
            )
        except DownloadError as error:
            message = str(error)
            if "failed after" in message:  # transient all the way: likely offline
                message += "." + _offline_hint(url, dest, config_key)
            raise DownloadError(message) from error
    if sha256:
        actual = sha256_of(part)
        if actual.lower() != sha256.lower():
            part.unlink(missing_ok=True)
            key = f" ({config_key.replace('_url', '_sha256')})" if config_key else ""
            raise DownloadError(
                f"{url}: checksum mismatch: expected sha256 {sha256.lower()}{key}, got {actual}. "
                "The download was deleted; rerun to fetch it again, or correct the checksum "
                "if the file changed upstream."
            )
    os.replace(part, dest)
    _state_path(part).unlink(missing_ok=True)
    return dest


__all__ = [
    "DownloadError",
    "TransientError",
    "classify",
    "describe_error",
    "fetch",
    "http_get",
    "is_remote",
    "local_path",
    "open_url",
    "range_ignored_error",
    "read_bytes",
    "table_check",
    "with_retries",
]
