"""Adapter from the harness's policy interface to libsako's Python binding (`sako.Engine`).

The binding is written concurrently by another part of the project; this module is the
only place that knows its calling conventions, and it tolerates the small variations a
young API goes through (tuples or dicts for catalog entries, recommendation objects or
plain ids as results). If the binding is not built, `available()` is False and the
harness runs without libsako's rows (and says so in its report).
"""
from __future__ import annotations

import functools

import numpy as np

from .data import AISLE_ID_BASE, DEPT_ID_BASE
from .policies import Policy


@functools.lru_cache(maxsize=None)
def _sako():
    try:
        import sako  # noqa: WPS433 (the parent package; may fail if the extension isn't built)
    except Exception:  # pragma: no cover - depends on the build
        return None
    return sako if hasattr(sako, "Engine") else None


def available() -> bool:
    return _sako() is not None


def why_unavailable() -> str:
    try:
        import sako  # noqa
    except Exception as e:  # pragma: no cover
        return f"`import sako` failed: {e!r}"
    if not hasattr(sako, "Engine"):
        return "the sako package has no Engine (the SWIG extension is not built)"
    return ""


@functools.lru_cache(maxsize=None)
def supports_flat() -> bool:
    if not available():
        return False
    try:
        e = open_engine(prior="flat", seed=1)
        _close(e)
        return True
    except Exception:
        return False


def version() -> str:
    s = _sako()
    if s is None:
        return "not built"
    for attr in ("__version__", "version", "VERSION"):
        v = getattr(s, attr, None)
        if v:
            return v() if callable(v) else str(v)
    return "unknown"


def open_engine(prior: str = "category", seed: int = 1, **extra):
    """An in-memory engine tuned for evaluation (no fsync), unknown items rejected."""
    s = _sako()
    opts = dict(prior=prior, seed=seed, **extra)
    # durability OFF: an evaluation run need not survive power loss; try the spellings
    for dur in ("off", 2, None):
        try:
            if dur is None:
                return s.Engine(None, **opts)
            return s.Engine(None, durability=dur, **opts)
        except (TypeError, ValueError, KeyError):
            continue
    raise RuntimeError("could not open a sako.Engine")


def _close(engine):
    close = getattr(engine, "close", None)
    if close:
        close()


def _try(fn, variants):
    last = None
    for args in variants:
        try:
            return fn(*args)
        except (TypeError, ValueError, AttributeError) as e:
            last = e
    raise last


def upsert_tree(engine, aisle_dept: np.ndarray) -> None:
    n_d = int(aisle_dept.max()) + 1
    depts = [(DEPT_ID_BASE + d, 0, f"dept {d}") for d in range(n_d)]
    aisles = [(AISLE_ID_BASE + a, DEPT_ID_BASE + int(d), f"aisle {a}") for a, d in enumerate(aisle_dept)]
    cats = depts + aisles
    _try(engine.upsert_categories, [
        (cats,),
        ([{"id": i, "parent_id": p, "name": n} for i, p, n in cats],),
    ])


def upsert_items(engine, item_idx: np.ndarray, item_aisle: np.ndarray, added_at_ms: int = 1) -> None:
    ids = (np.asarray(item_idx, dtype=np.int64) + 1)
    cats = AISLE_ID_BASE + np.asarray(item_aisle, dtype=np.int64)[item_idx]
    if hasattr(engine, "upsert_items_arrays"):
        engine.upsert_items_arrays(ids, cats, np.ones(ids.size, dtype=np.int32),
                                   np.full(ids.size, added_at_ms, dtype=np.int64))
        return
    rows = [(int(i), int(c), 1, int(added_at_ms)) for i, c in zip(ids, cats)]
    _try(engine.upsert_items, [
        (rows,),
        ([{"id": i, "category_id": c, "active": a, "added_at": t} for i, c, a, t in rows],),
    ])


def _ids_of(result) -> np.ndarray:
    if isinstance(result, np.ndarray):
        if result.dtype.names:
            name = "item_id" if "item_id" in result.dtype.names else result.dtype.names[0]
            return result[name].astype(np.int64)
        return result.astype(np.int64)
    if isinstance(result, tuple) and len(result) and isinstance(result[0], np.ndarray):
        return result[0].astype(np.int64)
    out = []
    for r in result:
        if hasattr(r, "item_id"):
            out.append(r.item_id)
        elif isinstance(r, dict):
            out.append(r["item_id"])
        elif isinstance(r, (tuple, list)):
            out.append(r[0])
        else:
            out.append(int(r))
    return np.asarray(out, dtype=np.int64)


class SakoPolicy(Policy):
    """libsako (sako.Engine) behind the harness's policy interface."""

    def __init__(self, prior: str = "category", seed: int = 1, retrain_every: int = 0, **options):
        """retrain_every > 0: call the engine's retrain() after every that many events (an
        operator's retrain schedule), on top of libsako's own prior refreshes."""
        self.prior = prior
        self.seed = seed
        self.options = options
        self.retrain_every = int(retrain_every)
        self.name = f"libsako ({prior} prior)"
        self.engine = None
        self._since_retrain = 0

    def reset(self, catalog):
        super().reset(catalog)
        self.close()
        self.engine = open_engine(prior=self.prior, seed=self.seed, **self.options)
        self._since_retrain = 0
        upsert_tree(self.engine, catalog.aisle_dept)
        idx = np.flatnonzero(catalog.active)
        if idx.size:
            upsert_items(self.engine, idx, catalog.item_aisle, max(1, int(catalog.time_ms)))

    def add_items(self, items, time_ms: int = 1):
        super().add_items(items)
        upsert_items(self.engine, np.asarray(items, dtype=np.int64), self.catalog.item_aisle, time_ms)

    def recommend(self, user, k, rng, exclude=()):
        ex = (np.asarray(exclude, dtype=np.int64) + 1) if len(exclude) else ()
        if len(ex) > 10000:  # SAKO_MAX_EXCLUDE: over-fetch and filter instead
            res = _ids_of(self.engine.recommend(int(user) + 1, min(1000, k + len(ex))))
            exs = set(ex.tolist())
            return np.asarray([i - 1 for i in res if i not in exs][:k], dtype=np.int64)
        if hasattr(self.engine, "recommend_arrays"):
            ids, _ = self.engine.recommend_arrays(int(user) + 1, int(k), exclude=ex)
            return ids - 1
        return _ids_of(self.engine.recommend(int(user) + 1, int(k), exclude=ex)) - 1

    def update(self, users, items, types, times):
        users = np.asarray(users, dtype=np.int64) + 1
        items = np.asarray(items, dtype=np.int64) + 1
        types = np.asarray(types, dtype=np.int32)
        times = np.maximum(np.asarray(times, dtype=np.int64), 1)
        if hasattr(self.engine, "update_arrays"):
            self.engine.update_arrays(users, items, types, times)
        else:
            self.engine.update([(int(u), int(i), int(t), int(tm)) for u, i, t, tm in
                                zip(users, items, types, times)])
        if self.retrain_every:
            self._since_retrain += users.size
            if self._since_retrain >= self.retrain_every:
                self.engine.retrain()
                self._since_retrain = 0

    def refresh(self):
        if hasattr(self.engine, "retrain"):
            self.engine.retrain()

    def close(self):
        if self.engine is not None:
            _close(self.engine)
            self.engine = None


def refresh_probe(item_aisle: np.ndarray, aisle_dept: np.ndarray, n_events: int, batch: int = 1000,
                  seed: int = 1) -> dict:
    """Push n_events impressions (in batches) into a fresh engine over this catalog and
    report whether libsako refreshed its category priors on its own (stats afterwards)."""
    eng = open_engine(prior="category", seed=seed)
    try:
        upsert_tree(eng, aisle_dept)
        upsert_items(eng, np.arange(item_aisle.size), item_aisle)
        rng = np.random.default_rng(seed)
        for s in range(0, n_events, batch):
            m = min(batch, n_events - s)
            eng.update_arrays(np.ones(m, dtype=np.int64), rng.integers(1, item_aisle.size + 1, m),
                              np.zeros(m, dtype=np.int32), np.full(m, 1_700_000_000_000, dtype=np.int64))
        st = eng.stats()
        opts = dict(getattr(eng, "options", {}) or {})
        return {"n_events": int(st.n_events), "events_since_refresh": int(st.events_since_refresh),
                "refreshed": int(st.events_since_refresh) < int(st.n_events),
                "prior_refresh_events": int(opts.get("prior_refresh_events", 0)),
                "n_items": int(item_aisle.size)}
    finally:
        _close(eng)
