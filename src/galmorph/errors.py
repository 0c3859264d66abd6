"""Errors the user can act on; rule scripts print them without a traceback."""


class GalmorphError(Exception):
    """Base class: the message says what is wrong and what to do."""


class InputDataError(GalmorphError):
    """Bad input data: the message names the file, row or key."""


class DownloadError(GalmorphError):
    """A download that could not complete; the message names the URL."""


#: Errors raised where a library catches them and raises its own instead (a
#: tf.data generator's exception reaches the caller as a TensorFlow error).
_deferred: list[GalmorphError] = []


def defer(error: GalmorphError) -> GalmorphError:
    """Remember ``error`` so the rule script reports it, not the library's error; return it."""
    _deferred.append(error)
    return error


def deferred() -> GalmorphError | None:
    """The last error passed to :func:`defer`, if any."""
    return _deferred[-1] if _deferred else None
