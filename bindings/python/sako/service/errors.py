"""Errors as HTTP answers: one JSON body for every error, engine errors mapped to a
status by their C status code (``SakoError.code``), and the handlers that produce them."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import sako

log = logging.getLogger("sako.service")

#: ``SakoError.code`` -> (HTTP status, ``error`` of the body). A code missing here (one
#: added to the C library later) is a 500 ``internal``.
STATUS_OF_CODE: Mapping[int, Tuple[int, str]] = {
    sako.InvalidArgument.code: (422, "invalid_argument"),
    sako.RangeError.code: (422, "out_of_range"),
    sako.NotFound.code: (404, "not_found"),
    sako.Busy.code: (503, "busy"),
    sako.IOFailure.code: (503, "io_failure"),
    sako.OutOfMemory.code: (503, "out_of_memory"),
    sako.Misuse.code: (503, "unavailable"),  # engine closed: the service is shutting down
    sako.Corrupt.code: (500, "corrupt"),
    sako.VersionError.code: (500, "version"),
    sako.InternalError.code: (500, "internal"),
}

#: Errors of the service's own layers, not codes of the C library:
#: ``sako.replication.Unavailable`` (replicated mode: the log cannot take a write).
SERVICE_STATUS_OF_CODE: Mapping[int, Tuple[int, str]] = {
    -1000: (503, "log_unavailable"),
}


class ApiError(Exception):
    """An answer other than 2xx, raised from a route or a dependency.

    Parameters
    ----------
    status : int
    error : str
        The stable ``error`` code of the body (``unauthorized``, ``unknown_item``, ...).
    message : str
    errors : sequence of dict
        Entries ``{index, field, reason}`` naming the bad parts of the request.
    """

    def __init__(self, status: int, error: str, message: str,
                 errors: Sequence[Dict[str, Any]] = (),
                 headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.errors, self.headers = list(errors), headers


def error_response(status: int, error: str, message: str, errors: Sequence[Dict[str, Any]] = (),
                   headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "errors": list(errors)},
                        status_code=status, headers=headers)


def from_sako_error(exc: sako.SakoError) -> Tuple[int, str]:
    """(HTTP status, ``error`` code) of an engine error."""
    return STATUS_OF_CODE.get(exc.code) or SERVICE_STATUS_OF_CODE.get(exc.code, (500, "internal"))


def validation_entries(exc: RequestValidationError) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for e in exc.errors()[:100]:
        loc = [x for x in e.get("loc", ()) if x != "body"]
        index = next((x for x in loc if isinstance(x, int)), None)
        field = ".".join(str(x) for x in loc) or None
        out.append({"index": index, "field": field, "reason": str(e.get("msg", "invalid"))})
    return out


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.error, exc.message, exc.errors, exc.headers)


async def _sako_error(_: Request, exc: sako.SakoError) -> JSONResponse:
    status, error = from_sako_error(exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    if status >= 500:
        log.error("engine error: %s: %s", type(exc).__name__, exc)
    return error_response(status, error, str(exc), headers=headers)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    json_errors = [e for e in exc.errors() if e.get("type") == "json_invalid"]
    if json_errors:
        pos = next((x for x in json_errors[0].get("loc", ()) if isinstance(x, int)), None)
        where = "" if pos is None else f" at character {pos}"
        return error_response(400, "malformed_json", f"malformed JSON{where}",
                              [{"reason": str(json_errors[0].get("msg", "JSON decode error"))}])
    entries = validation_entries(exc)
    msg = "; ".join(f"{e['field'] or 'body'}: {e['reason']}" for e in entries[:5])
    return error_response(422, "validation_error", msg or "invalid request", entries)


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error, str(exc.detail),
                          headers=getattr(exc, "headers", None))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
    log.exception("unhandled error")
    return error_response(500, "internal", f"{type(exc).__name__}")


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the service's JSON body."""
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(sako.SakoError, _sako_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


__all__ = ["ApiError", "STATUS_OF_CODE", "error_response", "from_sako_error", "install"]
