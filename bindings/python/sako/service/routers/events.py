"""POST /v1/events."""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
from fastapi import APIRouter, Request, Response

import sako

from ..dependencies import Client, EngineDep
from ..errors import ApiError
from ..schemas import AUTH_RESPONSES, EventsRequest, EventsResponse

router = APIRouter(tags=["events"])


@router.post("/v1/events", response_model=EventsResponse, responses=AUTH_RESPONSES,
             dependencies=[Client], summary="Record a batch of events (all or nothing)")
def post_events(req: EventsRequest, request: Request, response: Response, e: EngineDep) -> Any:
    evs = req.events
    n = len(evs)
    users = np.fromiter((x.user_id for x in evs), dtype=np.int64, count=n)
    items = np.fromiter((x.item_id for x in evs), dtype=np.int64, count=n)
    types = np.fromiter((sako.EVENT_TYPE_NAMES[x.type] for x in evs), dtype=np.int32, count=n)
    times = np.fromiter((x.time for x in evs), dtype=np.int64, count=n)
    recs = np.fromiter((x.recommendation_id or 0 for x in evs), dtype=np.int64, count=n)
    # no order id in the batch: plain sako_update, as before order ids existed
    orders = (np.fromiter((x.order_id or 0 for x in evs), dtype=np.int64, count=n)
              if any(x.order_id is not None for x in evs) else None)
    try:
        # positional: the engine's name for the last array changes with issue 7
        e.update_arrays(users, items, types, times, recs, orders)
    except sako.NotFound as exc:
        raise ApiError(422, "unknown_item", str(exc), _unknown_items(e, items)) from None
    metrics = request.app.state.metrics
    if metrics is not None and n:
        metrics.count_events(types)
    if any(x.rec_id is not None for x in evs):
        response.headers["Deprecation"] = "true"  # rec_id: send recommendation_id instead
    return {"accepted": n}


def _unknown_items(e: sako.Engine, items: np.ndarray, limit: int = 50) -> List[Dict[str, Any]]:
    """The entries naming unknown items (index + reason), found after the C library
    refused the batch."""
    out: List[Dict[str, Any]] = []
    known: Dict[int, bool] = {}
    for idx, it in enumerate(items.tolist()):
        ok = known.get(it)
        if ok is None:
            try:
                e.item(it)
                ok = True
            except sako.NotFound:
                ok = False
            known[it] = ok
        if not ok:
            out.append({"index": idx, "field": "item_id", "reason": f"unknown item {it}"})
            if len(out) >= limit:
                break
    return out
