"""POST /v1/backup (admin): an online backup of the served database into the configured
backup directory (``backup_dir``), while the service keeps serving."""
from __future__ import annotations

import os
import time
from typing import Any, Optional

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

import sako

from ...restore import timestamp
from ..dependencies import Admin, EngineDep
from ..errors import ApiError
from ..schemas import ADMIN_RESPONSES, ErrorBody

router = APIRouter(tags=["ops"])


class BackupRequest(BaseModel):
    name: Optional[str] = Field(
        None, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$",
        description="file name inside the backup directory (no path); "
                    "default sako-<UTC time>.db")


class BackupOut(BaseModel):
    path: str = Field(description="absolute path of the backup file")
    size_bytes: int
    duration_seconds: float
    n_events: int = Field(description="events in the engine's log when the backup returned "
                                      "(the backup holds at least those acknowledged before "
                                      "the request)")
    created_at: str = Field(description="UTC time the backup started (ISO 8601)")


@router.post("/v1/backup", response_model=BackupOut,
             responses={**ADMIN_RESPONSES, 409: {"model": ErrorBody}},
             dependencies=[Admin], summary="Back up the database (admin)")
def post_backup(request: Request, e: EngineDep,
                req: Optional[BackupRequest] = Body(None)) -> Any:
    settings = request.app.state.settings
    directory = os.path.abspath(settings.backup_directory())
    stamp = timestamp()
    name = req.name if req is not None and req.name else f"sako-{stamp}.db"
    path = os.path.join(directory, name)
    metrics = request.app.state.metrics
    try:
        os.makedirs(directory, mode=0o750, exist_ok=True)
    except OSError as exc:
        raise ApiError(503, "io_failure", f"backup directory {directory}: {exc.strerror}") from None
    if os.path.lexists(path):
        raise ApiError(409, "exists", f"{name} exists in the backup directory; a backup never "
                                      f"overwrites a file", [{"field": "name", "reason": "exists"}])
    t0 = time.monotonic()
    try:
        e.backup(path)
    except sako.InvalidArgument as exc:  # created meanwhile by another request
        if metrics is not None:
            metrics.backup_failed()
        raise ApiError(409, "exists", str(exc), [{"field": "name", "reason": "exists"}]) from None
    except sako.SakoError:
        if metrics is not None:
            metrics.backup_failed()
        raise
    seconds = time.monotonic() - t0
    size = os.path.getsize(path)
    if metrics is not None:
        metrics.backup_done(seconds, size)
    iso = f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:]}"
    return {"path": path, "size_bytes": size, "duration_seconds": round(seconds, 6),
            "n_events": e.stats().n_events, "created_at": iso}
