#!/usr/bin/env python3
"""A minimal FastAPI app embedding libsako through its Python binding.

The shipped service (`sako serve`) adds auth, limits and metrics; to mount it instead,
use `sako.service.create_app(sako.service.Settings(...), engine=eng)`. This is the
smallest useful shape for your own app: one engine per process, opened in the lifespan
and closed at shutdown, errors mapped to HTTP statuses.

    uvicorn --app-dir examples fastapi_embed:app --port 8080
    curl -s -XPOST localhost:8080/recommend -H 'content-type: application/json' \
         -d '{"user_id": 1, "k": 5}'
"""
from __future__ import annotations

import contextlib
import os
from typing import List, Optional

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

import sako
from sako.demo import seed_engine

DB = os.environ.get("SAKO_DB", "embed.db")
state = {}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    fresh = not os.path.exists(DB)
    eng = sako.open(DB)                  # one engine, shared by all requests (thread-safe)
    if fresh:
        seed_engine(eng, n_products=1000, events=0)
    state["eng"] = eng
    yield
    eng.close()                          # idempotent; waits for calls in flight


app = FastAPI(title="sako embedded", lifespan=lifespan)


class Query(BaseModel):
    user_id: int = Field(ge=0)
    k: int = Field(default=10, ge=0, le=1000)
    category_id: Optional[int] = None


class Feedback(BaseModel):
    user_id: int = Field(ge=1)
    item_id: int = Field(ge=1)
    type: str = "click"


@app.post("/recommend")
def recommend(q: Query) -> List[dict]:
    # a plain `def` runs in FastAPI's threadpool; the C call releases the GIL
    try:
        return [r.as_dict() for r in state["eng"].recommend(q.user_id, k=q.k, category=q.category_id)]
    except sako.NotFound as e:
        raise HTTPException(404, str(e))
    except (sako.InvalidArgument, sako.RangeError) as e:
        raise HTTPException(422, str(e))


@app.post("/feedback")
def feedback(events: List[Feedback]) -> dict:
    try:
        n = state["eng"].update([(e.user_id, e.item_id, e.type) for e in events])
    except sako.NotFound as e:
        raise HTTPException(422, str(e))
    except sako.InvalidArgument as e:
        raise HTTPException(422, str(e))
    except sako.Busy:
        raise HTTPException(503, "busy, retry", headers={"Retry-After": "1"})
    return {"accepted": n}
