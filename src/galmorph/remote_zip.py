"""Read single members of a (possibly remote, possibly huge) zip archive.

A zip's central directory sits at its end, so the list of members and any
one member can be read with a few byte-range reads: one for the tail (End
Of Central Directory record, ZIP64 locator), one for the central directory,
then one per member (local header + data). For the 3.3 GB ``images_gz2.zip``
that is a ~16 MB directory read plus ~13 KB per image instead of the whole
archive. Works on local paths, ``file://`` URLs and ``http(s)://`` URLs
(servers must honour ``Range``; one that does not is reported, not
silently downloaded in full).
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from galmorph.download import (
    TransientError,
    classify,
    local_path,
    open_url,
    range_ignored_error,
    with_retries,
)
from galmorph.errors import DownloadError, InputDataError

_EOCD = struct.Struct("<4s4H2LH")  # End Of Central Directory record
_EOCD_SIG = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s5H3L2H")
_LOCAL_SIG = b"PK\x03\x04"
#: The EOCD record is followed by a comment of at most 65,535 bytes.
_TAIL_BYTES = _EOCD.size + 0xFFFF + _ZIP64_LOCATOR.size
#: Bytes fetched past the expected end of a member's local header, in case the
#: local extra field is longer than the central one (saves a second request).
_LOCAL_SLACK = 128

STORED, DEFLATED = 0, 8


@dataclass(frozen=True)
class ZipEntry:
    """Where one member lives in the archive."""

    name: str
    header_offset: int
    compressed_size: int
    file_size: int
    method: int
    crc32: int
    flags: int
    name_bytes: int  # length of the encoded name (the local header repeats it)
    extra_bytes: int  # length of the central extra field (the local one is usually alike)


class _LocalReader:
    """Byte ranges of a local file (``os.pread``: safe from many threads)."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise DownloadError(f"zip archive {path} does not exist; check images.zip_url")
        self.where = str(path)
        self._fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

    def read(self, start: int, length: int) -> bytes:
        data = os.pread(self._fd, length, start)
        if len(data) != length:
            raise InputDataError(f"{self.where}: archive ends early (truncated zip?)")
        return data

    def tail(self, length: int) -> tuple[int, bytes]:
        start = max(0, self.size - length)
        return start, self.read(start, self.size - start)

    def close(self) -> None:
        os.close(self._fd)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _check_range(spec: str, start: int, stop: int, total: int) -> None:
    """Raise :class:`TransientError` unless ``start-stop/total`` answers ``bytes=<spec>``."""
    first, _, last = spec.partition("-")
    if first:  # bytes=a-b: exactly a..b, or a..end of a shorter file
        wanted_start, wanted_stop = int(first), int(last)
        if total >= 0:
            wanted_stop = min(wanted_stop, total - 1)
        if (start, stop) != (wanted_start, wanted_stop):
            raise TransientError(
                f"asked for bytes {wanted_start}-{wanted_stop}, the answer holds {start}-{stop}"
            )
    else:  # bytes=-n: the last n bytes (all of a shorter file)
        if total >= 0 and (stop != total - 1 or stop - start + 1 != min(int(last), total)):
            raise TransientError(
                f"asked for the last {last} bytes of {total}, the answer holds {start}-{stop}"
            )
    if stop < start:
        raise TransientError(f"an empty or inverted Content-Range {start}-{stop}")


class _HttpReader:
    """Byte ranges of a URL through HTTP ``Range`` requests, retried with backoff."""

    def __init__(self, url: str, *, timeout_s: float, retries: int, backoff_s: float):
        self.where = url
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.size: int | None = None
        self.requests = 0  # ranged requests made, for callers' statistics
        self._lock = threading.Lock()

    def _get(self, spec: str) -> tuple[int, int, bytes]:
        """One attempt: ``Range: bytes=<spec>`` -> (start, total size, body).

        Every answer is checked for being exactly what was asked (206, a Content-Range
        naming the asked bytes, that many bytes of body); any other answer, a 200 that
        ignores the range included, is a :class:`TransientError`: one bad answer from a
        proxy or a busy server is retried like a dropped connection, and only a server
        that never honours ranges fails, after the retries, with the reason.
        """
        with self._lock:
            self.requests += 1
        try:
            with open_url(
                self.where, timeout_s=self.timeout_s, headers={"Range": f"bytes={spec}"}
            ) as resp:
                if resp.status != 206:
                    raise TransientError(str(range_ignored_error(self.where, resp.status)))
                match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
                if match is None:
                    raise TransientError(
                        f"{self.where}: 206 answer without a usable Content-Range header"
                    )
                start, stop = int(match.group(1)), int(match.group(2))
                total = int(match.group(3)) if match.group(3) != "*" else -1
                _check_range(spec, start, stop, total)
                body = resp.read()
        except (TransientError, DownloadError):
            raise
        except Exception as error:  # noqa: BLE001 - classified
            raise classify(error) from error
        if len(body) != stop - start + 1:
            raise TransientError(f"truncated body: {len(body)} of {stop - start + 1} bytes")
        return start, total, body

    def _retrying(self, spec: str) -> tuple[int, int, bytes]:
        return with_retries(
            lambda: self._get(spec),
            retries=self.retries,
            backoff_s=self.backoff_s,
            what=f"{self.where} (bytes {spec})",
        )

    def tail(self, length: int) -> tuple[int, bytes]:
        start, total, body = self._retrying(f"-{length}")
        self.size = total if total >= 0 else start + len(body)
        return start, body

    def read(self, start: int, length: int) -> bytes:
        _, _, body = self._retrying(f"{start}-{start + length - 1}")
        return body

    def close(self) -> None:
        pass


def _zip64_extra(extra: bytes, entry: list[int]) -> None:
    """Replace the 0xFFFFFFFF fields of ``entry`` [size, csize, offset] from a ZIP64 extra."""
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind == 1:
            values = extra[position + 4 : position + 4 + length]
            index = 0
            for slot in range(3):
                if entry[slot] == 0xFFFFFFFF:
                    (entry[slot],) = struct.unpack_from("<Q", values, index)
                    index += 8
            return
        position += 4 + length


class ZipIndex:
    """The central directory of a zip archive, and ranged reads of its members.

    Build it with :meth:`open`; it is safe to call :meth:`read` from many threads.
    """

    def __init__(self, source: str, reader, entries: dict[str, ZipEntry]):
        self.source = source
        self._reader = reader
        self._entries = entries

    @classmethod
    def open(
        cls,
        url_or_path: str | os.PathLike,
        *,
        timeout_s: float = 60.0,
        retries: int = 5,
        backoff_s: float = 1.0,
    ) -> ZipIndex:
        """Read the central directory of the zip at ``url_or_path``.

        Parameters
        ----------
        url_or_path : str or path
            Local path, ``file://`` URL or ``http(s)://`` URL of the archive.
        timeout_s, retries, backoff_s : float, int, float
            Per request: seconds without data, attempts in total, first wait
            between attempts (doubled each time).

        Raises
        ------
        DownloadError
            The archive cannot be reached, or the server ignores ``Range``.
        InputDataError
            The file is not a (complete) zip archive.
        """
        source = os.fspath(url_or_path)
        path = local_path(source)
        if path is not None:
            reader = _LocalReader(path)
        else:
            reader = _HttpReader(source, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
        tail_start, tail = reader.tail(_TAIL_BYTES)
        entries = _parse_directory(source, reader, tail_start, tail)
        return cls(source, reader, entries)

    def names(self) -> list[str]:
        """Member names, in archive order."""
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str) -> ZipEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a member of {self.source}") from None

    @property
    def requests(self) -> int:
        """HTTP range requests made so far (0 for a local archive)."""
        return getattr(self._reader, "requests", 0)

    def read(self, name: str) -> bytes:
        """The uncompressed content of member ``name``, CRC32-checked.

        One ranged read covers the local header and the data (a second one
        only if the local extra field is unusually long).

        Raises
        ------
        KeyError
            ``name`` is not in the archive.
        InputDataError
            Corrupt member: bad local header, unsupported compression, CRC mismatch.
        DownloadError
            The bytes could not be fetched.
        """
        entry = self.entry(name)
        where = f"{self.source} member {name}"
        wanted = _LOCAL.size + entry.name_bytes + entry.extra_bytes + entry.compressed_size
        size = self._reader.size
        length = wanted + _LOCAL_SLACK
        if size is not None:
            length = min(length, size - entry.header_offset)
        block = self._reader.read(entry.header_offset, length)
        if len(block) < _LOCAL.size or block[:4] != _LOCAL_SIG:
            raise InputDataError(f"{where}: no local file header at offset {entry.header_offset}")
        fields = _LOCAL.unpack_from(block)
        data_start = _LOCAL.size + fields[9] + fields[10]
        data_stop = data_start + entry.compressed_size
        if data_stop > len(block):
            block += self._reader.read(entry.header_offset + len(block), data_stop - len(block))
        return _decompress(entry, block[data_start:data_stop], where)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> ZipIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _decompress(entry: ZipEntry, raw: bytes, where: str) -> bytes:
    if entry.flags & 0x1:
        raise InputDataError(f"{where}: encrypted members are not supported")
    if entry.method == STORED:
        data = raw
    elif entry.method == DEFLATED:
        try:
            inflater = zlib.decompressobj(-15)
            data = inflater.decompress(raw) + inflater.flush()
        except zlib.error as error:
            raise InputDataError(f"{where}: corrupt deflate data ({error})") from error
    else:
        raise InputDataError(
            f"{where}: compression method {entry.method} is not supported (stored or deflate only)"
        )
    if len(data) != entry.file_size or zlib.crc32(data) != entry.crc32:
        raise InputDataError(
            f"{where}: CRC32/size mismatch (got {len(data)} bytes, expected {entry.file_size}); "
            "the archive or the transfer is corrupt"
        )
    return data


def _parse_directory(source: str, reader, tail_start: int, tail: bytes) -> dict[str, ZipEntry]:
    try:
        return _parse_directory_records(source, reader, tail_start, tail)
    except struct.error as error:  # a record cut short: never a bare traceback
        raise InputDataError(
            f"{source}: truncated zip central directory ({error}); check images.zip_url, "
            "or the file is incomplete"
        ) from error


def _parse_directory_records(
    source: str, reader, tail_start: int, tail: bytes
) -> dict[str, ZipEntry]:
    at = tail.rfind(_EOCD_SIG)
    while at >= 0 and at + _EOCD.size > len(tail):
        at = tail.rfind(_EOCD_SIG, 0, at)
    if at < 0:
        raise InputDataError(
            f"{source}: not a zip archive (no End Of Central Directory record in its last "
            f"{len(tail)} bytes); check images.zip_url, or the file is truncated"
        )
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    locator_at = at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == _ZIP64_LOCATOR_SIG:
        _, _, zip64_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
        if zip64_offset >= tail_start:
            record = tail[zip64_offset - tail_start : zip64_offset - tail_start + _ZIP64_EOCD.size]
        else:
            record = reader.read(zip64_offset, _ZIP64_EOCD.size)
        if record[:4] != _ZIP64_EOCD_SIG:
            raise InputDataError(f"{source}: broken ZIP64 end of central directory record")
        fields = _ZIP64_EOCD.unpack(record)
        count, cd_size, cd_offset = fields[7], fields[8], fields[9]
    if cd_offset >= tail_start and cd_offset + cd_size <= tail_start + len(tail):
        directory = tail[cd_offset - tail_start : cd_offset - tail_start + cd_size]
    elif cd_size:
        directory = reader.read(cd_offset, cd_size)
    else:
        directory = b""
    entries: dict[str, ZipEntry] = {}
    position = 0
    for _ in range(count):
        if directory[position : position + 4] != _CENTRAL_SIG:
            raise InputDataError(f"{source}: corrupt central directory at entry {len(entries)}")
        fields = _CENTRAL.unpack_from(directory, position)
        flags, method, crc = fields[3], fields[4], fields[7]
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        start = position + _CENTRAL.size
        raw_name = directory[start : start + name_len]
        extra = directory[start + name_len : start + name_len + extra_len]
        sizes = [fields[9], fields[8], fields[16]]  # file size, compressed size, offset
        if 0xFFFFFFFF in sizes:
            _zip64_extra(extra, sizes)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        entries[name] = ZipEntry(
            name=name,
            header_offset=sizes[2],
            compressed_size=sizes[1],
            file_size=sizes[0],
            method=method,
            crc32=crc,
            flags=flags,
            name_bytes=name_len,
            extra_bytes=extra_len,
        )
        position = start + name_len + extra_len + comment_len
    return entries


_MEMBER = re.compile(r"(\d+)\.jpe?g", re.IGNORECASE)


def asset_ids(index: ZipIndex, prefix: str = "images/") -> list[int]:
    """Asset ids of the ``<prefix><asset_id>.jpg`` members, in archive order."""
    ids = []
    for name in index.names():
        if name.startswith(prefix):
            match = _MEMBER.fullmatch(name[len(prefix) :])
            if match:
                ids.append(int(match.group(1)))
    return ids
