"""Small file helpers shared by every stage."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def sha256_of(source: str | Path | BinaryIO) -> str:
    """Hex SHA-256 of a file, by path or open binary handle, read in 1 MB blocks."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            return sha256_of(handle)
    digest = hashlib.sha256()
    for block in iter(lambda: source.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


#: ``.<name>.tmp-<pid>@<host>-<random>``: who writes a temporary file (see :func:`_stale`)
_TEMPORARY = re.compile(r"\.tmp-(\d+)@([^/]*)-[^-]*$")
#: a temporary file named without its writer (an earlier release) is stale after this long
_UNNAMED_STALE_S = 24 * 3600


def _host() -> str:
    """This host's name as temporary file names carry it (no ``/``, no ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())


def _stale(temporary: Path) -> bool:
    """Whether ``temporary`` was left by a writer that is gone.

    Its name says which process on which host writes it: a process of this host
    that no longer exists is gone (a killed run); a live one, or one on another
    host that shares the folder (a SLURM node), may still be writing it, so its
    file stays.
    """
    match = _TEMPORARY.search(temporary.name)
    if match is None:
        try:
            return time.time() - temporary.stat().st_mtime > _UNNAMED_STALE_S
        except OSError:
            return False
    pid, host = int(match.group(1)), match.group(2)
    if host != _host():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` on success.

    A reader never sees a partial file under the final name: on any error,
    or if the process is killed, only the temporary file (``.<name>.tmp-*``)
    remains; it is removed on error, and a killed writer's leftover is removed
    by the next writer of ``final``. A concurrent writer's temporary file is left
    alone (its name says whose it is); the last rename wins.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A killed writer (SIGKILL, node failure) cannot remove its temporary file:
    # the next writer of the same output does, so reruns leave no debris.
    for stale in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
        if _stale(stale):
            with contextlib.suppress(OSError):
                stale.unlink()
    handle, temporary = tempfile.mkstemp(
        prefix=f".{final.name}.tmp-{os.getpid()}@{_host()}-", suffix=suffix, dir=final.parent
    )
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        # mkstemp creates 0600; give the result the permissions of a normal new file.
        umask = os.umask(0)
        os.umask(umask)
        if temporary.exists():
            os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


#: First characters that make a spreadsheet read a cell as a formula (OWASP's list),
#: and the quote that marks a cell as text (it is escaped too, so the escape reverses).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_cell(text: str) -> str:
    """``text`` made safe to open in a spreadsheet: a leading ``'`` when it would start a
    formula (an id ``=HYPERLINK(...)``), so it shows as text; :func:`unescape_cell` undoes it."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def unescape_cell(text: str) -> str:
    """The text :func:`escape_cell` was given."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def escape_columns(frame, columns):
    """A copy of ``frame`` with :func:`escape_cell` applied to the text ``columns`` it has."""
    frame = frame.copy()
    for column in columns:
        if column in frame:
            frame[column] = frame[column].map(
                lambda value: escape_cell(value) if isinstance(value, str) else value
            )
    return frame
