"""The original system's serving design, re-created as the benchmark baseline.

Per request: read every product's (a, b) from an SQL table, build a new numpy
Generator, draw Beta(a, b) for every product, full argsort, keep the top k. (The
original read from MySQL; here SQLite on the same disk, one connection per thread,
which only favours the baseline.)

Run: uvicorn --app-dir bench baseline_app:app --port 8001   with SAKO_BASELINE_DB set.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from typing import List

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field

DB = os.environ.get("SAKO_BASELINE_DB", "baseline.db")
app = FastAPI(title="baseline")
_local = threading.local()


def _conn() -> sqlite3.Connection:
    c = getattr(_local, "conn", None)
    if c is None:
        c = _local.conn = sqlite3.connect(DB, check_same_thread=False)
    return c


class Req(BaseModel):
    user_id: int = Field(ge=0)
    k: int = Field(default=20, ge=0, le=1000)


@app.post("/v1/recommendations")
def recommend(req: Req) -> dict:
    rows = _conn().execute("SELECT id, a, b FROM arms").fetchall()
    arr = np.array(rows, dtype=np.float64)
    rng = np.random.default_rng()
    draws = rng.beta(arr[:, 1], arr[:, 2])
    order = np.argsort(-draws)[:1000]
    top = order[: req.k]
    items: List[dict] = [{"item_id": int(arr[i, 0]), "score": float(draws[i]), "source": "thompson"}
                         for i in top]
    return {"recommendation_id": 0, "items": items}


def make_db(path: str, ids: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    if os.path.exists(path):
        os.remove(path)
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE arms (id INTEGER PRIMARY KEY, a REAL NOT NULL, b REAL NOT NULL)")
    c.executemany("INSERT INTO arms VALUES (?, ?, ?)",
                  zip(ids.tolist(), a.tolist(), b.tolist()))
    c.commit()
    c.close()
