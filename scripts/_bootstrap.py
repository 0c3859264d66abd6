"""Shared start of every rule script.

Snakemake puts this folder on ``sys.path``; importing this module then makes
the ``galmorph`` package in ``src/`` importable without installing it, so the
per-rule conda environments need only the third-party packages.
"""

import contextlib
import errno
import logging
import os
import sys
import traceback
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def run(main, snakemake) -> None:
    """Call ``main(snakemake)`` with stdout, stderr and logging sent to the rule's log.

    An expected failure (:class:`galmorph.errors.GalmorphError`, e.g. bad
    input) is written as one clear message, not a traceback, and the job
    fails with exit status 1.
    """
    from galmorph.errors import GalmorphError, deferred

    log_path = snakemake.log[0] if snakemake.log else None
    console = sys.stderr
    stream = open(log_path, "w", buffering=1) if log_path else sys.stderr  # noqa: SIM115
    with contextlib.ExitStack() as stack:
        if log_path:
            stack.enter_context(stream)
            # Native libraries (TensorFlow, HDF5) write to file descriptors 1 and 2
            # directly: point those at the log too, keeping the console for one line.
            console = os.fdopen(os.dup(2), "w", buffering=1)
            stack.enter_context(console)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(stream.fileno(), 1)
            os.dup2(stream.fileno(), 2)
            stack.enter_context(contextlib.redirect_stdout(stream))
            stack.enter_context(contextlib.redirect_stderr(stream))
        logging.basicConfig(
            stream=stream,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,
        )
        try:
            main(snakemake)
        except GalmorphError as error:
            message = f"{type(error).__name__}: {error}"
            print(message, file=stream)
            if log_path:
                print(f"Error in rule {snakemake.rule}: {message} (log: {log_path})", file=console)
            sys.exit(1)
        except Exception as error:
            # Bad input met inside a library (a tf.data generator) that re-raised it as
            # its own error; or a job out of memory or disk: one clear message.
            cause = deferred() or _resource_message(error, snakemake.rule)
            if cause is None:
                traceback.print_exc(file=stream)
                raise
            message = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
            if isinstance(cause, str):
                traceback.print_exc(file=stream)
            print(message, file=stream)
            if log_path:
                print(f"Error in rule {snakemake.rule}: {message} (log: {log_path})", file=console)
            # A library that failed midway (a TensorFlow pipeline, an allocation) can hang
            # the interpreter's shutdown; outputs were already cleaned up while the error
            # propagated, so end the job now.
            for handle in (stream, console, sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    handle.flush()
            os._exit(1)


def _resource_message(error: BaseException, rule: str) -> str | None:
    """A sentence for a job that ran out of memory or disk space, else None."""
    if isinstance(error, MemoryError):
        return (
            f"MemoryError: rule {rule} ran out of memory; raise its mem_mb resource (or the "
            "memory limit of the job) or lower the batch size in the configuration, and rerun"
        )
    # HDF5 reports a full disk in its message only, without an errno.
    full = isinstance(error, OSError) and (
        error.errno == errno.ENOSPC or "No space left on device" in str(error)
    )
    if full:
        where = f" writing {error.filename}" if error.filename else ""
        return (
            f"OSError: no space left on device{where} in rule {rule}; free disk space and "
            "rerun (outputs are written atomically: nothing half-written was kept)"
        )
    return None
