"""The exception hierarchy, generated from one table of libsako status codes.

Every failing C call raises the class registered here for its status code, with the C
side's ``sako_errmsg()`` as the message. Adding a code means adding one row to
:data:`_TABLE`.
"""
from __future__ import annotations

from typing import Dict, NoReturn, Type

from . import _sako


class SakoError(Exception):
    """Base class of every libsako error.

    Attributes
    ----------
    code : int
        The C status code (``sako.SAKO_*``), negative.
    message : str
        The detailed message of the C library (``sako_errmsg()``).
    """

    code: int = _sako.SAKO_ERROR

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(message, *args)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message; we never do
        return self.message


# (C status constant, class name, extra base, docstring). One row per code.
_TABLE = (
    ("SAKO_ERROR", "InternalError", None, "Internal error: a bug, or an unexpected SQLite failure."),
    ("SAKO_NOMEM", "OutOfMemory", MemoryError, "Out of memory; nothing was changed."),
    ("SAKO_INVALID", "InvalidArgument", ValueError,
     "An argument is invalid (NaN, negative, bad id, bad type, duplicate...)."),
    ("SAKO_NOTFOUND", "NotFound", KeyError, "An id names no known item or category."),
    ("SAKO_RANGE", "RangeError", ValueError, "A size or count exceeds a documented limit."),
    ("SAKO_IO", "IOFailure", OSError, "The disk failed or is full; the operation was not applied."),
    ("SAKO_CORRUPT", "Corrupt", None, "The file is not a libsako database, or is damaged."),
    ("SAKO_BUSY", "Busy", None, "The database is locked by another connection; retry later."),
    ("SAKO_MISUSE", "Misuse", None,
     "The library was called wrongly, e.g. a method of a closed engine."),
    ("SAKO_VERSION", "VersionError", None, "The database was written by a newer libsako schema."),
)

#: status code -> exception class
ERRORS: Dict[int, Type[SakoError]] = {}


def _build() -> Dict[str, Type[SakoError]]:
    made: Dict[str, Type[SakoError]] = {}
    for const, name, extra, doc in _TABLE:
        code = getattr(_sako, const)
        bases = (SakoError,) if extra is None else (SakoError, extra)
        cls = type(name, bases, {"__doc__": f"{doc}\n\nC status ``{const}`` ({code}).",
                                 "__module__": "sako", "code": code,
                                 "__str__": SakoError.__str__})
        ERRORS[code] = cls
        made[name] = cls
    return made


_classes = _build()
InternalError: Type[SakoError] = _classes["InternalError"]
OutOfMemory: Type[SakoError] = _classes["OutOfMemory"]
InvalidArgument: Type[SakoError] = _classes["InvalidArgument"]
NotFound: Type[SakoError] = _classes["NotFound"]
RangeError: Type[SakoError] = _classes["RangeError"]
IOFailure: Type[SakoError] = _classes["IOFailure"]
Corrupt: Type[SakoError] = _classes["Corrupt"]
Busy: Type[SakoError] = _classes["Busy"]
Misuse: Type[SakoError] = _classes["Misuse"]
VersionError: Type[SakoError] = _classes["VersionError"]
SakoError.__module__ = "sako"


def error_for(code: int) -> Type[SakoError]:
    """The exception class of a status code (``SakoError`` for an unknown one)."""
    return ERRORS.get(code, SakoError)


def _raise(code: int, message: bytes) -> NoReturn:
    """Raise the exception of a failed C call. The status typemap of sako.i calls this
    with sako_errmsg() (or the binding's own text); an empty message falls back to the
    code's static description."""
    text = message.decode("utf-8", "replace") or _sako.sako_errstr(code)
    raise error_for(code)(text)
