"""Small file helpers shared by every stage."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
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


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` on success.

    A reader never sees a partial file under the final name: on any error,
    or if the process is killed, only the temporary file (``.<name>.tmp-*``)
    remains; it is removed on error, and a killed writer's leftover is removed
    by the next writer of ``final``.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A killed writer (SIGKILL, node failure) cannot remove its temporary file:
    # the next writer of the same output does, so reruns leave no debris.
    for stale in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    handle, temporary = tempfile.mkstemp(
        prefix=f".{final.name}.tmp-", suffix=suffix, dir=final.parent
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
