"""Read single members of a (possibly remote, possibly huge) zip archive.

A zip's central directory sits at its end, so the list of members and any
one member can be read with a few byte-range reads: one for the tail (End
Of Central Directory record, ZIP64 locator), one for the central directory,
then one per member (local header + data). For the 3.3 GB ``images_gz2.zip``
that is a ~16 MB directory read plus ~13 KB per image instead of the whole
archive. Works on local paths, ``file://`` URLs and ``http(s)://`` URLs
(servers must honour ``Range``; one that does not is reported, not
silently downloaded in full).

A hostile or broken archive is refused with an :class:`InputDataError`, never a
bare traceback or an unbounded allocation: members larger than the image
policy allows (:data:`galmorph.images.imaging.MAX_FILE_BYTES`) are refused
before any byte is read, deflate data is inflated with a bound of the declared
size, offsets and sizes that point past the archive are refused, and an
HTTP body longer than the asked range is cut off after one byte too many.
"""

from __future__ import annotations

import logging
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
from galmorph.images.imaging import MAX_FILE_BYTES

log = logging.getLogger(__name__)

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
#: The largest central directory read: GZ2's 243,000-image archive has a ~16 MB
#: one, so this leaves room for 15x as many members while refusing a record
#: that declares gigabytes.
MAX_DIRECTORY_BYTES = 256 * 1024 * 1024


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
        if start < 0 or length < 0 or start + length > self.size:
            raise InputDataError(
                f"{self.where}: a record points at bytes {start}..{start + length} of an "
                f"archive of {self.size:,} bytes (corrupt or hostile zip)"
            )
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
                # One byte more than the range holds is enough to tell a body that
                # runs on; a hostile server's gigabytes are never read.
                body = resp.read(stop - start + 2)
        except (TransientError, DownloadError):
            raise
        except Exception as error:  # noqa: BLE001 - classified
            raise classify(error) from error
        if len(body) > stop - start + 1:
            raise DownloadError(
                f"{self.where}: the answer to bytes {spec} runs past its Content-Range "
                f"{start}-{stop}; refused"
            )
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
        _check_member(entry, self._reader.size, where)
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


def _check_member(entry: ZipEntry, archive_size: int | None, where: str) -> None:
    """Refuse a member whose declared sizes exceed the image policy or the archive."""
    for what, value in (("size", entry.file_size), ("compressed size", entry.compressed_size)):
        if value > MAX_FILE_BYTES:
            raise InputDataError(
                f"{where}: declared {what} {value:,} bytes is more than the "
                f"{MAX_FILE_BYTES:,} an image may have; refused"
            )
    if archive_size is not None and entry.header_offset + entry.compressed_size > archive_size:
        raise InputDataError(
            f"{where}: its header offset {entry.header_offset:,} and compressed size "
            f"{entry.compressed_size:,} point past the end of the {archive_size:,}-byte archive"
        )


def _decompress(entry: ZipEntry, raw: bytes, where: str) -> bytes:
    if entry.flags & 0x1:
        raise InputDataError(f"{where}: encrypted members are not supported")
    if entry.method == STORED:
        data = raw
    elif entry.method == DEFLATED:
        try:
            # Inflate one byte past the declared size at most: a member declaring
            # 1,000 bytes that would inflate to gigabytes stops there.
            inflater = zlib.decompressobj(-15)
            data = inflater.decompress(raw, entry.file_size + 1)
        except zlib.error as error:
            raise InputDataError(f"{where}: corrupt deflate data ({error})") from error
    else:
        raise InputDataError(
            f"{where}: compression method {entry.method} is not supported (stored or deflate only)"
        )
    if len(data) > entry.file_size:
        raise InputDataError(
            f"{where}: inflates past its declared size of {entry.file_size:,} bytes; refused "
            "(corrupt or hostile zip)"
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


def _end_record(source: str, tail: bytes) -> int:
    """Where in ``tail`` (the archive's last bytes) its End Of Central Directory record is.

    The record is the one whose comment runs exactly to the end of the file. A
    second such record, hidden in the comment of the first, would make the archive
    mean two things (an empty one, say, to a reader that takes the last): refused.
    """
    candidates = []
    at = tail.rfind(_EOCD_SIG)
    while at >= 0:
        if at + _EOCD.size <= len(tail):
            (comment_len,) = struct.unpack_from("<H", tail, at + _EOCD.size - 2)
            if at + _EOCD.size + comment_len == len(tail):
                candidates.append(at)
        at = tail.rfind(_EOCD_SIG, 0, at)
    if not candidates:
        raise InputDataError(
            f"{source}: not a zip archive (no End Of Central Directory record ending the "
            f"file in its last {len(tail)} bytes); check images.zip_url, or the file is "
            "truncated"
        )
    if len(candidates) > 1:
        raise InputDataError(
            f"{source}: {len(candidates)} End Of Central Directory records, one inside the "
            "archive comment of another; refused as ambiguous (corrupt or hostile zip)"
        )
    return candidates[0]


def _parse_directory_records(
    source: str, reader, tail_start: int, tail: bytes
) -> dict[str, ZipEntry]:
    at = _end_record(source, tail)
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    locator_at = at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == _ZIP64_LOCATOR_SIG:
        _, _, zip64_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
        if zip64_offset + _ZIP64_EOCD.size > tail_start + locator_at:
            raise InputDataError(
                f"{source}: the ZIP64 locator points at offset {zip64_offset:,}, past itself "
                "(corrupt or hostile zip)"
            )
        if zip64_offset >= tail_start:
            record = tail[zip64_offset - tail_start : zip64_offset - tail_start + _ZIP64_EOCD.size]
        else:
            record = reader.read(zip64_offset, _ZIP64_EOCD.size)
        if record[:4] != _ZIP64_EOCD_SIG:
            raise InputDataError(f"{source}: broken ZIP64 end of central directory record")
        fields = _ZIP64_EOCD.unpack(record)
        count, cd_size, cd_offset = fields[7], fields[8], fields[9]
    if cd_size > MAX_DIRECTORY_BYTES:
        raise InputDataError(
            f"{source}: the central directory declares {cd_size:,} bytes, more than the "
            f"{MAX_DIRECTORY_BYTES:,} read at most (corrupt or hostile zip)"
        )
    if cd_offset + cd_size > tail_start + at:
        raise InputDataError(
            f"{source}: the central directory ({cd_size:,} bytes at offset {cd_offset:,}) "
            f"runs past the end record at {tail_start + at:,} (corrupt or hostile zip)"
        )
    if count * _CENTRAL.size > cd_size:
        raise InputDataError(
            f"{source}: {count:,} members cannot fit in a {cd_size:,}-byte central directory"
        )
    if cd_offset >= tail_start and cd_offset + cd_size <= tail_start + len(tail):
        directory = tail[cd_offset - tail_start : cd_offset - tail_start + cd_size]
    elif cd_size:
        directory = reader.read(cd_offset, cd_size)
    else:
        directory = b""
    entries: dict[str, ZipEntry] = {}
    position = skipped = 0
    for number in range(count):
        if directory[position : position + 4] != _CENTRAL_SIG:
            raise InputDataError(f"{source}: corrupt central directory at entry {number}")
        fields = _CENTRAL.unpack_from(directory, position)
        flags, method, crc = fields[3], fields[4], fields[7]
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        start = position + _CENTRAL.size
        raw_name = directory[start : start + name_len]
        extra = directory[start + name_len : start + name_len + extra_len]
        sizes = [fields[9], fields[8], fields[16]]  # file size, compressed size, offset
        if 0xFFFFFFFF in sizes:
            _zip64_extra(extra, sizes)
        position = start + name_len + extra_len + comment_len
        try:
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        except UnicodeDecodeError:
            # No image can be asked for by such a name: the member is left out,
            # said once, and the rest of the archive stays readable.
            log.warning(
                "%s: member %d has a name that is not valid UTF-8 (%r); left out",
                source,
                len(entries) + skipped,
                raw_name[:80],
            )
            skipped += 1
            continue
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
