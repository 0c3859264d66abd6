"""Small file helpers shared by every stage."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` on success.

    A reader never sees a partial file under the final name: on any error,
    or if the process is killed, only the temporary file (``.<name>.tmp-*``)
    remains, and it is removed on error.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
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
