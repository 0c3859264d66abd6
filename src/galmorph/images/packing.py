"""Deterministic ``.tar.gz`` archives: the same files give byte-identical archives.

Everything that usually varies between two runs is fixed: members are sorted
by name; every member is a regular file with mtime 0, uid/gid 0, empty
user/group names and mode 0644; the gzip header has mtime 0 and no file name.
Only the members' names and contents reach the archive.

Two compressors write the same standard gzip format (``tar -xzf`` and Python's
``tarfile`` read both): ``zlib`` (levels 0-9, Python's ``gzip``) and ``isal``
(levels 0-3, the ISA-L library's ``igzip``), whose level 1 compresses about ten
times more bytes per CPU-second than zlib's 6 at a ratio about 15% lower
(``bench/images_cost.py`` measures both on the same shards). Either output is a
function of the members and the level only: the same inputs give the same bytes.
"""

from __future__ import annotations

import gzip
import os
import sys
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from tqdm import tqdm

from galmorph.errors import InputDataError
from galmorph.io import atomic_path, sha256_of

FILE_MODE = 0o644
_COPY_BUFFER = 1 << 20

#: compressor -> (lowest, highest) gzip level it takes
COMPRESSORS = {"zlib": (0, 9), "isal": (0, 3)}


def _gzip_writer(raw, compressor: str, level: int):
    """A gzip stream over ``raw`` with a fixed header (mtime 0, no file name)."""
    if compressor not in COMPRESSORS:
        raise ValueError(f"compressor must be one of {sorted(COMPRESSORS)}, not {compressor!r}")
    low, high = COMPRESSORS[compressor]
    if not low <= level <= high:
        raise ValueError(f"{compressor} gzip level must be {low}-{high}, not {level}")
    if compressor == "isal":
        from isal import igzip

        opener = igzip.GzipFile
    else:
        opener = gzip.GzipFile
    # filename="" keeps the name out of the header (None would take raw.name).
    return opener(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0)


def members_under(root: str | os.PathLike, base: str | os.PathLike) -> dict[str, Path]:
    """Every file below ``root``, named by its path relative to ``base``.

    Hidden files (temporary ``.name.tmp-*`` leftovers) are not members.
    """
    root, base = Path(root), Path(base)
    if not root.is_dir():
        raise InputDataError(f"{root}: not a folder; nothing to archive")
    members = {}
    for path in root.rglob("*"):
        if path.is_file() and not any(
            part.startswith(".") for part in path.relative_to(root).parts
        ):
            members[path.relative_to(base).as_posix()] = path
    return members


def _as_mapping(members: Mapping[str, os.PathLike] | Iterable[tuple[str, os.PathLike]]):
    pairs = members.items() if isinstance(members, Mapping) else members
    mapping: dict[str, Path] = {}
    for name, path in pairs:
        name = Path(name).as_posix()
        if name.startswith("/") or ".." in Path(name).parts:
            raise ValueError(f"archive member name {name!r} must be relative, without '..'")
        if name in mapping:
            raise ValueError(f"two files for archive member {name!r}")
        mapping[name] = Path(path)
    return mapping


def pack(
    members: Mapping[str, os.PathLike] | Iterable[tuple[str, os.PathLike]],
    out_path: str | os.PathLike,
    *,
    compresslevel: int = 6,
    compressor: str = "zlib",
    progress: bool = True,
) -> int:
    """Write ``members`` (archive name -> file) into a deterministic ``.tar.gz``.

    ``compressor`` is ``"zlib"`` or ``"isal"`` (:data:`COMPRESSORS` gives the
    levels each takes); both write standard gzip.

    Files are streamed, so memory does not depend on their size. The archive
    appears under ``out_path`` only when complete.

    Returns
    -------
    int
        The number of members.
    """
    mapping = _as_mapping(members)
    names = sorted(mapping)
    out_path = Path(out_path)
    with atomic_path(out_path, suffix=".tar.gz") as temporary:
        with (
            open(temporary, "wb") as raw,
            _gzip_writer(raw, compressor, compresslevel) as compressed,
            tarfile.open(
                fileobj=compressed,
                mode="w",
                format=tarfile.GNU_FORMAT,
                # 1 MB copies: tarfile's default 16 kB costs a Python call per 16 kB
                copybufsize=_COPY_BUFFER,
            ) as tar,
        ):
            for name in tqdm(
                names,
                desc=f"pack {out_path.name}",
                unit="file",
                file=sys.stderr,
                disable=not progress,
                mininterval=2.0,
            ):
                path = mapping[name]
                try:
                    handle = open(path, "rb")  # noqa: SIM115  (closed below)
                except OSError as error:
                    raise InputDataError(f"{path}: cannot be archived ({error})") from error
                with handle:
                    info = tarfile.TarInfo(name)
                    info.size = os.fstat(handle.fileno()).st_size
                    info.mtime = 0
                    info.mode = FILE_MODE
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.type = tarfile.REGTYPE
                    tar.addfile(info, handle)
    return len(names)


def verify(
    archive: str | os.PathLike,
    members: Mapping[str, os.PathLike] | Iterable[tuple[str, os.PathLike]],
) -> int:
    """Check that ``archive`` holds exactly ``members``, each extracting to its file's bytes.

    Returns the number of members checked.

    Raises
    ------
    InputDataError
        Naming the first missing, extra or differing member.
    """
    expected = _as_mapping(members)
    seen = set()
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for info in tar:
                if info.name not in expected:
                    raise InputDataError(f"{archive}: unexpected member {info.name!r}")
                if not info.isreg():
                    raise InputDataError(f"{archive}: member {info.name!r} is not a file")
                with open(expected[info.name], "rb") as source:
                    want = sha256_of(source)
                got = sha256_of(tar.extractfile(info))
                if got != want:
                    raise InputDataError(
                        f"{archive}: member {info.name!r} differs from {expected[info.name]}"
                    )
                seen.add(info.name)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputDataError(f"{archive}: damaged archive ({error}); pack it again") from error
    missing = sorted(set(expected) - seen)
    if missing:
        raise InputDataError(f"{archive}: {len(missing)} member(s) missing, e.g. {missing[0]!r}")
    return len(seen)
