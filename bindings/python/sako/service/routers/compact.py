"""POST /v1/compact (admin): fold the old part of the event log into a checkpoint and
delete it (``Engine.compact``), while the service keeps serving."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

import sako

from ..dependencies import Admin, EngineDep
from ..schemas import ADMIN_RESPONSES, ErrorBody

router = APIRouter(tags=["ops"])


class CompactRequest(BaseModel):
    keep_days: float = Field(30.0, ge=0.0, le=1e6,
                             description="keep every batch holding an event less than this many "
                                         "days older than the log's latest event (0: no window)")
    keep_events: int = Field(100_000, ge=0, le=sako.ID_MAX,
                             description="keep at least this many of the latest events (raised "
                                         f"to {sako.COMPACT_MIN_EVENTS} and to the retrain "
                                         "policy's gate_holdout_events)")


class CompactOut(BaseModel):
    compact_batch: int = Field(description="the compaction point after the call: the log "
                                           "starts after this batch (0: never compacted)")
    first_batch: int = Field(description="the first batch left in the log (0: none)")
    batches_removed: int
    events_removed: int
    checkpoint_bytes: int = Field(description="size of the checkpoint written (0: nothing "
                                              "to compact)")
    duration_seconds: float
    log_events: int = Field(description="events left in the log")
    file_bytes: int = Field(description="size of the database file (free pages are reused by "
                                        "later writes; the file does not shrink)")


@router.post("/v1/compact", response_model=CompactOut,
             responses={**ADMIN_RESPONSES, 503: {"model": ErrorBody}},
             dependencies=[Admin], summary="Compact the event log (admin)")
def post_compact(request: Request, e: EngineDep,
                 req: Optional[CompactRequest] = Body(None)) -> Any:
    req = req or CompactRequest()
    metrics = request.app.state.metrics
    try:
        r = e.compact(keep_days=req.keep_days, keep_events=req.keep_events)
    except sako.SakoError:  # Busy (a retrain runs): 503 busy, like the other routes
        if metrics is not None:
            metrics.compaction_failed()
        raise
    if metrics is not None:
        metrics.compaction_done(r)
    log = e.log_stats()
    return {"compact_batch": r.compact_batch, "first_batch": r.first_batch,
            "batches_removed": r.batches_removed, "events_removed": r.events_removed,
            "checkpoint_bytes": r.checkpoint_bytes,
            "duration_seconds": round(r.elapsed_ms / 1000.0, 6),
            "log_events": log.n_events, "file_bytes": log.file_bytes}
