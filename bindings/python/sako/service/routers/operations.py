"""Operations: stats, retrain, health and Prometheus metrics."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

import sako

from ..dependencies import Admin, Client, EngineDep
from ..errors import ApiError
from ..retrainer import MANUAL
from ..schemas import (ADMIN_RESPONSES, AUTH_RESPONSES, UNAVAILABLE_RESPONSES, HealthOut,
                       ReadyOut, RetrainOut, StatsOut, gate_result, stats_out)

router = APIRouter()


@router.get("/v1/stats", response_model=StatsOut, responses=AUTH_RESPONSES, tags=["model"],
            dependencies=[Client], summary="Engine-wide figures")
def stats(e: EngineDep) -> Any:
    return stats_out(e.stats())


@router.post("/v1/retrain", response_model=RetrainOut, responses=ADMIN_RESPONSES, tags=["model"],
             dependencies=[Admin], summary="Rebuild the model from the event log, gate the new "
                                           "version and activate it if it passes (admin)")
def retrain(request: Request, e: EngineDep) -> Any:
    # through the service's retrainer: one at a time, recorded with reason "manual"; a
    # rejected version is an answer (200, gate "rejected"), not an error
    stats, rec = request.app.state.retrainer.retrain_recorded(e, MANUAL)
    info = e.version(rec.version)
    return {**stats_out(stats), "version": info.as_dict(), "gate": gate_result(info)}


@router.get("/healthz", response_model=HealthOut, responses=UNAVAILABLE_RESPONSES, tags=["ops"],
            summary="Liveness (the process serves, the engine is open)")
def healthz(request: Request, e: EngineDep) -> Any:
    s = e.stats()
    replica = getattr(request.app.state, "replica", None)
    return {"status": "ok", "version": sako.__version__, "model_version": s.model_version,
            "n_items": s.n_items, "ready": e.ready,
            "replication": replica.status() if replica is not None else None}


@router.get("/readyz", response_model=ReadyOut, responses=UNAVAILABLE_RESPONSES, tags=["ops"],
            summary="Readiness: engine open, model loaded, samplers built; 503 otherwise")
def readyz(request: Request) -> Any:
    state = request.app.state
    e = state.engine
    if state.stopping or e is None or e.closed:
        raise ApiError(503, "not_ready", "the engine is not open (starting or shutting down)",
                       headers={"Retry-After": "1"})
    if not e.ready:
        raise ApiError(503, "not_ready", "the samplers are being built (large catalog)",
                       headers={"Retry-After": "1"})
    replica = getattr(state, "replica", None)
    if replica is not None:
        st = replica.status()
        if st["stalled"] or st["lag"] > state.settings.replicate_max_lag:
            raise ApiError(503, "lagging", f"the replica is {st['lag']} entries behind the "
                                           f"stream (bound {state.settings.replicate_max_lag})"
                                           + (f": {st['stalled']}" if st["stalled"] else ""),
                           headers={"Retry-After": "1"})
    return {"ready": True, "model_version": e.stats().model_version}


#: included only when the app counts metrics
metrics_router = APIRouter(tags=["ops"])


@metrics_router.get("/metrics", response_class=Response, summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    body, ctype = request.app.state.metrics.render()
    replica = getattr(request.app.state, "replica", None)
    if replica is not None:
        from ..replicated import metrics_text

        body += metrics_text(replica).encode()
    return Response(body, media_type=ctype)
