"""Errors the user can act on; rule scripts print them without a traceback."""


class GalmorphError(Exception):
    """Base class: the message says what is wrong and what to do."""


class InputDataError(GalmorphError):
    """Bad input data: the message names the file, row or key."""


class DownloadError(GalmorphError):
    """A download that could not complete; the message names the URL."""
