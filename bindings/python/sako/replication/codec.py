"""The entries of the replicated log: one NATS message per batch, its kind in the
``Sako-Kind`` header, its body packed little-endian (events and items) or JSON
(categories, retrains). The format is versioned by the ``Sako-Format`` header."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

import sako

FORMAT = "1"
KIND_HEADER = "Sako-Kind"
FORMAT_HEADER = "Sako-Format"
EVENTS, ITEMS, CATEGORIES, RETRAIN = "events", "items", "categories", "retrain"
# Settings that change every replica's model, applied with their own calls (which are
# idempotent: applied again after a crash before the position was stored, they change
# nothing) and then the position stored with an empty batch.
POLICY, ACTIVATE, PIN = "policy", "activate", "pin"
# A compaction of the event log (its keep options, JSON): every replica compacts at the
# same position. Its point is a function of the log (the latest retrain's batch, the
# events' times and counts), so every replica removes the same batches; a replica
# killed before the position was stored compacts again, which then removes nothing.
COMPACT = "compact"
KINDS = (EVENTS, ITEMS, CATEGORIES, RETRAIN, POLICY, ACTIVATE, PIN, COMPACT)

class Malformed(ValueError):
    """An entry no replica can decode: every replica consumes its position alike."""


#: One event on the wire (44 bytes): what ``sako_update_at`` takes, with its order id.
EVENT_DTYPE = np.dtype([("user_id", "<i8"), ("item_id", "<i8"), ("type", "<i4"),
                        ("time", "<i8"), ("rec_id", "<i8"), ("order_id", "<i8")])
#: One item on the wire (28 bytes).
ITEM_DTYPE = np.dtype([("id", "<i8"), ("category_id", "<i8"), ("active", "<i4"),
                       ("added_at", "<i8")])


def encode_events(users: np.ndarray, items: np.ndarray, types: np.ndarray, times: np.ndarray,
                  recs: Optional[np.ndarray] = None, orders: Optional[np.ndarray] = None) -> bytes:
    buf = np.zeros(len(users), EVENT_DTYPE)
    buf["user_id"], buf["item_id"], buf["type"], buf["time"] = users, items, types, times
    if recs is not None:
        buf["rec_id"] = recs
    if orders is not None:
        buf["order_id"] = orders
    return buf.tobytes()


def _then_position(engine: Any, position: int, op: Any) -> Any:
    """An idempotent setting, then its position (an empty batch at it)."""
    if position <= engine.log_position:
        return sako.AtOutcome("skipped", "")
    try:
        op()
    except (sako.InvalidArgument, sako.NotFound, sako.RangeError) as exc:
        out = engine.update_events_at(position, np.zeros(0, EVENT_DTYPE))
        return sako.AtOutcome("rejected", f"{exc} (rejected at log position {position})") \
            if out.outcome == "applied" else out
    return engine.update_events_at(position, np.zeros(0, EVENT_DTYPE))


def decode_events(data: bytes) -> np.ndarray:
    if len(data) % EVENT_DTYPE.itemsize:
        raise Malformed(f"events entry of {len(data)} bytes is not a whole number of events")
    return np.frombuffer(data, EVENT_DTYPE)


def encode_items(ids: np.ndarray, cats: np.ndarray, active: np.ndarray, added: np.ndarray) -> bytes:
    buf = np.zeros(len(ids), ITEM_DTYPE)
    buf["id"], buf["category_id"], buf["active"], buf["added_at"] = ids, cats, active, added
    return buf.tobytes()


def decode_items(data: bytes) -> np.ndarray:
    if len(data) % ITEM_DTYPE.itemsize:
        raise Malformed(f"items entry of {len(data)} bytes is not a whole number of items")
    return np.frombuffer(data, ITEM_DTYPE)


def encode_categories(ids: Sequence[int], parents: Sequence[int],
                      names: Sequence[Optional[str]]) -> bytes:
    return json.dumps([[int(i), int(p), n] for i, p, n in zip(ids, parents, names)],
                      separators=(",", ":")).encode()


def decode_categories(data: bytes) -> Tuple[List[int], List[int], List[Optional[str]]]:
    rows = json.loads(data)
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def encode_retrain(reasons: int) -> bytes:
    return json.dumps({"reasons": int(reasons)}).encode()


def decode_retrain(data: bytes) -> int:
    return int(json.loads(data)["reasons"])


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def headers(kind: str, msg_id: str) -> Dict[str, str]:
    return {"Nats-Msg-Id": msg_id, KIND_HEADER: kind, FORMAT_HEADER: FORMAT}


def encode_compact(keep_days: float, keep_events: int) -> bytes:
    return encode_json({"keep_days": float(keep_days), "keep_events": int(keep_events)})


def apply(engine: Any, position: int, kind: str, data: bytes,
          reports: Optional[Dict[int, Any]] = None) -> Any:
    """Apply one entry to a replica at its stream sequence: the ``*_at`` call of its
    kind. Returns the :class:`sako.AtOutcome`; raises :class:`Malformed`. A compaction
    applied here leaves its :class:`sako.CompactReport` in ``reports[position]``."""
    try:
        return _apply(engine, position, kind, data, reports)
    except (KeyError, TypeError, IndexError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Malformed(f"{kind} entry: {type(exc).__name__}: {exc}") from None


def _apply(engine: Any, position: int, kind: str, data: bytes,
           reports: Optional[Dict[int, Any]]) -> Any:
    if kind == EVENTS:
        return engine.update_events_at(position, decode_events(data))
    if kind == ITEMS:
        it = decode_items(data)
        return engine.upsert_items_at(position, it["id"], it["category_id"], it["active"],
                                      it["added_at"])
    if kind == CATEGORIES:
        ids, parents, names = decode_categories(data)
        return engine.upsert_categories_at(position, ids, parents, names)
    if kind == RETRAIN:
        return engine.retrain_at(position, decode_retrain(data))
    if kind == POLICY:
        policy = json.loads(data)
        if not isinstance(policy, dict):
            raise TypeError("a policy entry is a JSON object")
        return _then_position(engine, position, lambda: setattr(engine, "policy", policy))
    if kind == ACTIVATE:
        version = int(json.loads(data)["version"])
        return _then_position(engine, position, lambda: engine.activate(version))
    if kind == PIN:
        body = json.loads(data)
        version, pinned = int(body["version"]), bool(body["pinned"])
        return _then_position(engine, position, lambda: engine.pin(version, pinned))
    if kind == COMPACT:
        body = json.loads(data)
        try:
            keep_days, keep_events = float(body["keep_days"]), int(body["keep_events"])
        except ValueError as exc:
            raise TypeError(str(exc)) from None

        def compact() -> None:
            report = engine.compact(keep_days=keep_days, keep_events=keep_events)
            if reports is not None:
                reports[position] = report
        return _then_position(engine, position, compact)
    raise Malformed(f"unknown entry kind {kind!r}")
