"""Adapter from the harness's policy interface to libsako's Python binding (`sako`).

This is the only module of the harness that calls libsako. It uses the binding's
documented API as it is (``bindings/python/sako/_engine.py``, ``docs/python.md``):

- ``sako.open(path, **options)`` -> ``Engine`` (``path=None``: in-memory database);
- ``Engine.upsert_categories_arrays(ids, parent_ids, names)`` and
  ``Engine.upsert_items_arrays(ids, category_ids, active, added_at)``;
- ``Engine.recommend_arrays(user_id, k, exclude=...)`` -> ``(ids, scores)``;
- ``Engine.update_arrays(users, items, types, times, recommendation_ids)``: parallel
  arrays, passed by position. The events on the slate the policy has just recommended
  carry that slate's recommendation id: from 0.2 (option ``organic_demand``) an event
  without one is organic demand, not an outcome of a recommendation, and would teach
  the Beta posteriors nothing;
- ``Engine.retrain()``, ``Engine.stats()``, ``Engine.options``, ``sako.__version__``.

If the binding is not built, `available()` is False and the harness runs without
libsako's rows (and says so in its report).
"""
from __future__ import annotations

import functools

import numpy as np

from .data import AISLE_ID_BASE, DEPT_ID_BASE
from .policies import CART, CLICK, IMPRESSION, PURCHASE, Policy

IMPRESSION_TYPE = 0

#: options of every evaluation engine: no fsync (a run need not survive power loss),
#: unknown items rejected (the harness always loads the catalog first)
EVAL_OPTIONS = {"durability": "off", "unknown_items": "reject"}


@functools.lru_cache(maxsize=None)
def _sako():
    try:
        import sako  # noqa: WPS433 (the parent package; fails if the extension isn't built)
    except ImportError:  # pragma: no cover - depends on the build
        return None
    return sako


def available() -> bool:
    return _sako() is not None


def why_unavailable() -> str:
    try:
        import sako  # noqa: F401
    except ImportError as e:  # pragma: no cover
        return f"`import sako` failed (the SWIG extension is not built?): {e!r}"
    return ""


def version() -> str:
    s = _sako()
    return "not built" if s is None else str(s.__version__)


def open_engine(prior: str = "category", seed: int = 1, **extra):
    """An in-memory engine tuned for evaluation (no fsync), unknown items rejected."""
    return _sako().open(None, **{**EVAL_OPTIONS, "prior": prior, "seed": seed, **extra})


def upsert_tree(engine, aisle_dept: np.ndarray) -> None:
    """Departments (ids 1 + d, parents 0) then aisles (ids 1001 + a) in one batch."""
    aisle_dept = np.asarray(aisle_dept, dtype=np.int64)
    n_d = int(aisle_dept.max()) + 1
    ids = np.r_[DEPT_ID_BASE + np.arange(n_d), AISLE_ID_BASE + np.arange(aisle_dept.size)]
    parents = np.r_[np.zeros(n_d, dtype=np.int64), DEPT_ID_BASE + aisle_dept]
    names = [f"dept {d}" for d in range(n_d)] + [f"aisle {a}" for a in range(aisle_dept.size)]
    engine.upsert_categories_arrays(ids, parents, names)


def upsert_items(engine, item_idx: np.ndarray, item_aisle: np.ndarray, added_at_ms: int = 1) -> None:
    ids = (np.asarray(item_idx, dtype=np.int64) + 1)
    cats = AISLE_ID_BASE + np.asarray(item_aisle, dtype=np.int64)[item_idx]
    engine.upsert_items_arrays(ids, cats, np.ones(ids.size, dtype=np.int32),
                               np.full(ids.size, added_at_ms, dtype=np.int64))


class SakoPolicy(Policy):
    """libsako (sako.Engine) behind the harness's policy interface."""
    accepts_logged = True   # update(..., logged=True): a bandit log's clicks are outcomes

    #: event types that answer the latest slate when they name one of its items (the
    #: simulator and the bandit-log replay only produce events on what was shown)
    linked_types = (IMPRESSION, CLICK, CART, PURCHASE)

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
        self._slate = np.empty(0, dtype=np.int64)  # engine ids of the latest recommendation
        self._rec_id = 0
        self.max_exclude = int(_sako().MAX_EXCLUDE) if available() else 10000

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
        if len(ex) > self.max_exclude:  # over SAKO_MAX_EXCLUDE: over-fetch and filter instead
            res, _ = self.engine.recommend_arrays(int(user) + 1, min(1000, k + len(ex)))
            exs = set(ex.tolist())
            ids = np.asarray([i for i in res.tolist() if i not in exs][:k], dtype=np.int64)
        else:
            ids, _ = self.engine.recommend_arrays(int(user) + 1, int(k), exclude=ex)
        self._slate, self._rec_id = ids, self._rec_id + 1
        return ids - 1

    def update(self, users, items, types, times, logged: bool = False):
        """logged=True: the events are a bandit log's, every click an outcome of the
        logging policy's recommendation (so each gets a recommendation id)."""
        users = np.asarray(users, dtype=np.int64) + 1
        items = np.asarray(items, dtype=np.int64) + 1
        types = np.asarray(types, dtype=np.int32)
        times = np.maximum(np.asarray(times, dtype=np.int64), 1)
        # The harnesses feed the events of a slate right after recommending it; matched by
        # item, not user (the bandit-log replay recommends to user i, records as user 1).
        # Used once: later events (a ranking fit, the next basket) are not its outcomes.
        linked = np.isin(items, self._slate) & np.isin(types, self.linked_types)
        if logged:
            linked = types != IMPRESSION_TYPE
        recs = np.where(linked, self._rec_id if not logged else 1, 0).astype(np.int64)
        self._slate = self._slate[:0]
        self.engine.update_arrays(users, items, types, times, recs)
        if self.retrain_every:
            self._since_retrain += users.size
            if self._since_retrain >= self.retrain_every:
                self.engine.retrain()
                self._since_retrain = 0

    def refresh(self):
        self.engine.retrain()

    def close(self):
        if self.engine is not None:
            self.engine.close()
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
        opts = eng.options
        return {"n_events": int(st.n_events), "events_since_refresh": int(st.events_since_refresh),
                "refreshed": int(st.events_since_refresh) < int(st.n_events),
                "prior_refresh_events": int(opts.get("prior_refresh_events", 0)),
                "n_items": int(item_aisle.size)}
    finally:
        eng.close()


class SakoTreePolicy(SakoPolicy):
    """libsako over a catalog that brings its own category tree (any depth).

    ``reset(catalog)`` takes an object with ``tree_ids``, ``tree_parents`` (0 = a root),
    ``tree_names`` (parents before children) and ``item_category`` (the libsako category
    id of each dense item index); items are loaded active with ``catalog.time_ms``.

    Used by the journey replay, whose purchases are a real household's basket: showing a
    product did not cause them, so they stay organic demand (docs/research-personal.md);
    only impressions and the clicks on shown products answer the slate."""

    linked_types = (IMPRESSION, CLICK)

    def reset(self, catalog):
        Policy.reset(self, catalog)
        self.close()
        self.engine = open_engine(prior=self.prior, seed=self.seed, **self.options)
        self._since_retrain = 0
        self.engine.upsert_categories_arrays(np.asarray(catalog.tree_ids, dtype=np.int64),
                                             np.asarray(catalog.tree_parents, dtype=np.int64),
                                             list(catalog.tree_names))
        n = int(catalog.item_category.size)
        self.engine.upsert_items_arrays(np.arange(1, n + 1, dtype=np.int64),
                                        np.asarray(catalog.item_category, dtype=np.int64),
                                        np.ones(n, dtype=np.int32),
                                        np.full(n, max(1, int(catalog.time_ms)), dtype=np.int64))
