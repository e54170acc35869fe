"""Adapter from the harness's policy interface to libsako's Python binding (`sako`).

This is the only module of the harness that calls libsako. It uses the binding's
documented API as it is (``bindings/python/sako/_engine.py``, ``docs/python.md``):

- ``sako.open(path, **options)`` -> ``Engine`` (``path=None``: in-memory database);
- ``Engine.upsert_categories_arrays(ids, parent_ids, names)`` and
  ``Engine.upsert_items_arrays(ids, category_ids, active, added_at)``;
- ``Engine.recommend_arrays(user_id, k, exclude=..., mode=..., time=...)`` -> ``(ids, scores)``;
- ``Engine.update_arrays(users, items, types, times, recommendation_ids, order_ids)``:
  parallel arrays. Recommendation ids and order ids (0.2) are passed by position, so the
  harness does not depend on the keyword name of the recommendation-id array;
- ``Engine.retrain()``, ``Engine.stats()``, ``Engine.options``, ``sako.__version__``.

If the binding is not built, `available()` is False and the harness runs without
libsako's rows (and says so in its report).

Recommendation ids and orders (0.2's personal engine). Every ``recommend`` gets a new
recommendation id (1, 2, ...). The next ``update`` of the same user stamps that id on
the events of the products it returned (their impressions, and the click and purchase of
a recommended product that was bought); every other event (a purchase of a product that
was not recommended) keeps rec_id 0, i.e. it is organic demand. After that update the
recommendation is spent. ``set_time(ms)`` sets the query time of the next ``recommend``
(0 = the engine's clock); ``set_order(id)`` the order id given to the purchases of the
next ``update`` (0 = none: the engine groups purchases by time).
"""
from __future__ import annotations

import functools

import numpy as np

from .data import AISLE_ID_BASE, DEPT_ID_BASE
from .policies import IMPRESSION, PURCHASE, Policy

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

    takes_orders = True     # update() accepts per-event order ids
    accepts_logged = True   # update(..., logged=True): a bandit log's clicks are outcomes

    def __init__(self, prior: str = "category", seed: int = 1, retrain_every: int = 0,
                 mode: str = "mixed", retrain_days: float = 0.0, **options):
        """retrain_every > 0: call the engine's retrain() after every that many events (an
        operator's retrain schedule), on top of libsako's own prior refreshes. mode: the
        query mode ("mixed", "repeat", "discover"); options: ``sako.open`` options, and
        ``policy_<field>`` keys (``policy_every_events=50000``, ``policy_drift_fraction=0.8``,
        ...): the engine's retrain policy, obeyed after every update as the service's
        background retrainer obeys it (retrain when ``retrain_due()`` says so).
        retrain_days > 0: call retrain() before a recommend whose query time (``set_time``)
        is that many days or more after the last such retrain, and before the first
        recommend (the schedule of the journey's weekly ALS, so that libsako's matrix
        factors are retrained as often as implicit's)."""
        self.prior = prior
        self.seed = seed
        self.retrain_policy = {k[len("policy_"):]: v for k, v in options.items() if k.startswith("policy_")}
        self.options = {k: v for k, v in options.items() if not k.startswith("policy_")}
        self.retrains_due = 0   # retrains the policy asked for in the last replay
        self.retrain_every = int(retrain_every)
        self.retrain_ms = int(float(retrain_days) * 86_400_000)
        self.retrained_at = None  # query time of the last scheduled retrain
        self.retrains = 0         # scheduled retrains in the last replay
        self.mode = mode
        self.name = f"libsako ({prior} prior)"
        self.engine = None
        self._since_retrain = 0
        self._time = 0
        self._order = 0
        self._rec_id = 0
        self._shown = None      # (user, rec_id, recommended item ids) awaiting its events
        self.max_exclude = int(_sako().MAX_EXCLUDE) if available() else 10000

    def set_time(self, time_ms: int) -> None:
        """The query time of the next recommend (unix ms; 0 = the engine's clock)."""
        self._time = max(0, int(time_ms))

    def set_order(self, order_id: int) -> None:
        """The order id of the purchases of the next update (0 = none)."""
        self._order = max(0, int(order_id))

    def _query(self, user: int, k: int, exclude=()):
        kw = {"time": self._time} if self._time else {}
        if self.mode != "mixed":
            kw["mode"] = self.mode
        ids, _ = self.engine.recommend_arrays(user, k, exclude=exclude, **kw)
        return ids

    def reset(self, catalog):
        super().reset(catalog)
        self.close()
        self.engine = open_engine(prior=self.prior, seed=self.seed, **self.options)
        self._since_retrain = 0
        self.retrains_due = 0
        self.retrained_at = None
        self.retrains = 0
        if self.retrain_policy:
            self.engine.policy = self.retrain_policy
        upsert_tree(self.engine, catalog.aisle_dept)
        idx = np.flatnonzero(catalog.active)
        if idx.size:
            upsert_items(self.engine, idx, catalog.item_aisle, max(1, int(catalog.time_ms)))

    def add_items(self, items, time_ms: int = 1):
        super().add_items(items)
        upsert_items(self.engine, np.asarray(items, dtype=np.int64), self.catalog.item_aisle, time_ms)

    def _scheduled_retrain(self) -> None:
        if not self.retrain_ms:
            return
        now = self._time
        if self.retrained_at is None or now - self.retrained_at >= self.retrain_ms:
            self.engine.retrain()
            self.retrained_at = now
            self.retrains += 1

    def recommend(self, user, k, rng, exclude=()):
        self._scheduled_retrain()
        ex = (np.asarray(exclude, dtype=np.int64) + 1) if len(exclude) else ()
        if len(ex) > self.max_exclude:  # over SAKO_MAX_EXCLUDE: over-fetch and filter instead
            res = self._query(int(user) + 1, min(1000, k + len(ex)))
            exs = set(ex.tolist())
            ids = np.asarray([i for i in res.tolist() if i not in exs][:k], dtype=np.int64)
        else:
            ids = self._query(int(user) + 1, int(k), ex)
        self._rec_id += 1
        self._shown = (int(user), self._rec_id, ids.copy())
        return ids - 1

    def event_ids(self, users, items, types):
        """(rec_ids, order_ids) for a batch (harness indices): the pending recommendation's
        id on the events of the products it returned, for its user; 0 elsewhere. The
        current order id on purchases, 0 elsewhere."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        rec = np.zeros(users.size, dtype=np.int64)
        if self._shown is not None:
            u, rid, shown = self._shown
            rec[(users == u) & np.isin(items + 1, shown)] = rid
        orders = np.where(np.asarray(types) == PURCHASE, self._order, 0).astype(np.int64)
        return rec, orders

    def update(self, users, items, types, times, order_ids=None, logged: bool = False):
        """order_ids: per-event order ids (purchases; 0 = none) instead of ``set_order``'s.
        logged=True: the events are a bandit log's, each click an outcome of the logging
        policy's recommendation (so each gets a recommendation id)."""
        rec, orders = self.event_ids(users, items, types)
        if logged:
            rec = np.where(np.asarray(types) != IMPRESSION, 1, 0).astype(np.int64)
        if order_ids is not None:
            orders = np.asarray(order_ids, dtype=np.int64)
        self._shown = None          # the recommendation's events have arrived
        users = np.asarray(users, dtype=np.int64) + 1
        items = np.asarray(items, dtype=np.int64) + 1
        types = np.asarray(types, dtype=np.int32)
        times = np.maximum(np.asarray(times, dtype=np.int64), 1)
        self.engine.update_arrays(users, items, types, times, rec, orders if orders.any() else None)
        if self.retrain_every:
            self._since_retrain += users.size
            if self._since_retrain >= self.retrain_every:
                self.engine.retrain()
                self._since_retrain = 0
        if self.retrain_policy and self.engine.retrain_due().due:
            self.engine.retrain()
            self.retrains_due += 1

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
    id of each dense item index); items are loaded active with ``catalog.time_ms``."""

    def reset(self, catalog):
        Policy.reset(self, catalog)
        self.close()
        self.engine = open_engine(prior=self.prior, seed=self.seed, **self.options)
        self._since_retrain = 0
        self.retrains_due = 0
        self.retrained_at = None
        self.retrains = 0
        if self.retrain_policy:
            self.engine.policy = self.retrain_policy
        self.engine.upsert_categories_arrays(np.asarray(catalog.tree_ids, dtype=np.int64),
                                             np.asarray(catalog.tree_parents, dtype=np.int64),
                                             list(catalog.tree_names))
        n = int(catalog.item_category.size)
        self.engine.upsert_items_arrays(np.arange(1, n + 1, dtype=np.int64),
                                        np.asarray(catalog.item_category, dtype=np.int64),
                                        np.ones(n, dtype=np.int32),
                                        np.full(n, max(1, int(catalog.time_ms)), dtype=np.int64))
