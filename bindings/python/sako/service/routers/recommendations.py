"""POST /v1/recommendations."""
from __future__ import annotations

import threading
import time
from typing import Any, List, Optional, Tuple

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

import sako

from ..dependencies import Client, EngineDep
from ..errors import ApiError
from ..schemas import NOT_FOUND_RESPONSES, RecommendationRequest, RecommendationResponse

router = APIRouter(tags=["recommend"])

#: in auto mode, recommend runs inline on the event loop while its cost stays below this
INLINE_BELOW_S = 200e-6


class RecIdGenerator:
    """Unique recommendation ids: unix ms << 10 plus a counter, strictly increasing
    within a process and across restarts (unless > 1024 ids/ms are sustained), below
    2^53 until the year 2109."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        now = int(time.time() * 1000) << 10
        with self._lock:
            self._last = nid = max(now, self._last + 1)
        return nid


class Recommender:
    """Where ``recommend`` runs. ``inline`` True: directly on the event loop (cheapest
    when the C call takes microseconds); False: in the threadpool (the GIL is released
    in C, so requests then use several cores); None: chosen per request from a moving
    average of the call's duration (inline below :data:`INLINE_BELOW_S`)."""

    def __init__(self, inline: Optional[bool] = None) -> None:
        self.inline = inline
        self.rec_ids = RecIdGenerator()
        self._cost = 0.0         # moving average of the call's duration on the loop, s
        self._pool_cost = 0.0    # last duration measured in the threadpool, s

    def _timed(self, e: sako.Engine, args: Tuple[Any, ...]) -> List[sako.Recommendation]:
        t0 = time.perf_counter()
        out = e.recommend(*args)
        self._pool_cost = time.perf_counter() - t0
        return out

    async def run(self, e: sako.Engine, req: RecommendationRequest) -> List[sako.Recommendation]:
        args = (req.user_id, req.k, req.category_id, req.exclude or (), req.recent or (),
                req.mode, req.time)
        inline = self.inline
        if inline is None:
            inline = self._cost < INLINE_BELOW_S
        if inline:
            t0 = time.perf_counter()
            out = e.recommend(*args)
            self._cost = 0.9 * self._cost + 0.1 * (time.perf_counter() - t0)
            return out
        out = await run_in_threadpool(self._timed, e, args)
        # slowly forget, so a faster engine gets inline calls back
        self._cost = 0.9 * self._cost + 0.1 * min(self._pool_cost, self._cost)
        return out


@router.post("/v1/recommendations", response_model=RecommendationResponse,
             responses=NOT_FOUND_RESPONSES, dependencies=[Client],
             summary="Recommend up to k items for a user")
async def recommend(req: RecommendationRequest, request: Request, e: EngineDep) -> Response:
    state = request.app.state
    try:
        recs = await state.recommender.run(e, req)
    except sako.NotFound as exc:  # a category named in the body: the request is invalid
        raise ApiError(422, "not_found", str(exc),
                       [{"field": "category_id", "reason": str(exc)}]) from None
    # each result's source is the engine's, not assumed: later stages add other sources
    items = [r.as_dict() for r in recs]
    if state.metrics is not None:
        state.metrics.recommendations.inc()
    # Serialised here: the shape is fixed, so re-validating it through the response model
    # would only cost time (the model still documents it in OpenAPI). orjson, not json:
    # the repr of 20 floats made json.dumps about a fifth of the request's cost in-process
    # (docs/benchmarks-python.md). Scores are finite, so both give the same JSON.
    body = {"recommendation_id": state.recommender.rec_ids(), "items": items}
    return Response(orjson.dumps(body), media_type="application/json")
