"""What a publisher checks before a batch enters the log. A replica rejects a batch
that fails validation and consumes its position (sako.h, "replication"), so every
check the C library would make is made here first, against the local replica's
catalog: the messages are the C library's, so a client sees the same error in
replicated mode as without it."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

import sako

_TIME_MAX = sako.TIME_MAX
_ID_MAX = sako.ID_MAX


def _first_bad(mask: np.ndarray) -> Optional[int]:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if len(idx) else None


def events(users: np.ndarray, items: np.ndarray, types: np.ndarray, times: np.ndarray,
           recs: np.ndarray, orders: Optional[np.ndarray]) -> None:
    """The checks that need no state (times already resolved: none is 0)."""
    n = len(users)
    if n > sako.MAX_BATCH:
        raise sako.RangeError(f"{n} events exceed the batch limit {sako.MAX_BATCH}")
    for name, col, lo in (("user_id", users, 1), ("item_id", items, 1)):
        i = _first_bad((col < lo) | (col > _ID_MAX))
        if i is not None:
            raise sako.InvalidArgument(f"event [{i}]: {name} {int(col[i])} is out of range "
                                       f"[1, 2^53-1]")
    i = _first_bad((types < 0) | (types > 3))
    if i is not None:
        raise sako.InvalidArgument(f"event [{i}]: type {int(types[i])} is not a sako_event_type")
    i = _first_bad((times < 1) | (times > _TIME_MAX))
    if i is not None:
        raise sako.InvalidArgument(f"event [{i}]: time {int(times[i])} is not a unix time in ms")
    i = _first_bad((recs < 0) | (recs > _ID_MAX))
    if i is not None:
        raise sako.InvalidArgument(f"event [{i}]: rec_id {int(recs[i])} is out of range")
    if orders is not None:
        i = _first_bad((orders < 0) | (orders > _ID_MAX))
        if i is not None:
            raise sako.InvalidArgument(f"event [{i}]: order_id {int(orders[i])} is out of range "
                                       f"[0, 2^53-1]")


def unknown_items(engine: Any, items: np.ndarray, known: Optional[set] = None) -> Optional[int]:
    """The index of the first event naming an item the replica does not know. Items
    are never deleted, so an item known here is known at every later position: the
    ids found go into ``known`` (a cache the caller keeps), and only ids not in it
    are looked up."""
    known = set() if known is None else known
    missing = set(np.unique(items).tolist()) - known
    unknown = set()
    for it in missing:
        try:
            engine.item(it)
            known.add(it)
        except sako.NotFound:
            unknown.add(it)
    if not unknown:
        return None
    return next(idx for idx, it in enumerate(items.tolist()) if it in unknown)


def items(engine: Any, ids: np.ndarray, cats: np.ndarray, active: np.ndarray,
          added: np.ndarray) -> None:
    n = len(ids)
    if n > sako.MAX_BATCH:
        raise sako.RangeError(f"{n} items exceed the batch limit {sako.MAX_BATCH}")
    seen = set()
    for i in range(n):
        iid, cat = int(ids[i]), int(cats[i])
        if not 1 <= iid <= _ID_MAX:
            raise sako.InvalidArgument(f"item [{i}]: id {iid} is out of range [1, 2^53-1]")
        if int(active[i]) not in (0, 1):
            raise sako.InvalidArgument(f"item [{i}]: active = {int(active[i])} is not 0 or 1")
        if not 1 <= int(added[i]) <= _TIME_MAX:
            raise sako.InvalidArgument(f"item [{i}]: added_at {int(added[i])} is not a unix "
                                       f"time in ms")
        if iid in seen:
            raise sako.InvalidArgument(f"item [{i}]: id {iid} appears twice in the batch")
        seen.add(iid)
        if cat != 0:
            if not 1 <= cat <= _ID_MAX:
                raise sako.InvalidArgument(f"item [{i}]: category_id {cat} is out of range")
            try:
                engine.category_prior(cat)
            except sako.NotFound:
                raise sako.NotFound(f"item [{i}]: unknown category {cat}") from None


def categories(engine: Any, ids: Sequence[int], parents: Sequence[int],
               names: Sequence[Optional[str]]) -> None:
    """Ids, names and parents. A cycle or a chain too deep made by moving categories
    is left to the replicas (they reject it alike); see docs/operations.md."""
    n = len(ids)
    if n > sako.MAX_BATCH:
        raise sako.RangeError(f"{n} categories exceed the batch limit {sako.MAX_BATCH}")
    seen = set()
    for i in range(n):
        cid, parent, name = int(ids[i]), int(parents[i]), names[i]
        if not 1 <= cid <= _ID_MAX:
            raise sako.InvalidArgument(f"category [{i}]: id {cid} is out of range [1, 2^53-1]")
        if cid in seen:
            raise sako.InvalidArgument(f"category [{i}]: id {cid} appears twice in the batch")
        if name is not None and len(name.encode("utf-8")) > sako.MAX_NAME:
            raise sako.InvalidArgument(f"category [{i}]: name longer than {sako.MAX_NAME} bytes")
        if parent == cid:
            raise sako.InvalidArgument(f"category [{i}]: {cid} is its own parent")
        if parent != 0 and parent not in seen:
            if not 1 <= parent <= _ID_MAX:
                raise sako.InvalidArgument(f"category [{i}]: parent_id {parent} is out of range")
            try:
                engine.category_prior(parent)
            except sako.NotFound:
                raise sako.NotFound(f"category [{i}]: unknown parent {parent}") from None
        seen.add(cid)
