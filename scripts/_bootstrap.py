"""Shared start of every rule script.

Snakemake puts this folder on ``sys.path``; importing this module then makes
the ``galmorph`` package in ``src/`` importable without installing it, so the
per-rule conda environments need only the third-party packages.
"""

import contextlib
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
    from galmorph.errors import GalmorphError

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
        except Exception:
            traceback.print_exc(file=stream)
            raise
