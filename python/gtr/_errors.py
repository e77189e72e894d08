"""_errors.py — library errors as Python exceptions."""
from . import _lib


class GtrError(Exception):
    """A libgtr call failed. str(e) is the library's one-line message (it names the file, line,
    tensor ... concerned); e.status is the short status name ("format error", ...), e.code its
    number (gtr_status)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.status = _lib.status_str(code).decode()
        self.message = message


def raise_for(code, err):
    if code:
        raise GtrError(code, err.message.decode("utf-8", "replace"))


def raise_null(err):
    raise GtrError(err.code or 10, err.message.decode("utf-8", "replace") or "failed")
