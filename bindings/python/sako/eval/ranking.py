"""Ranking quality on real grocery histories (and MovieLens as the standard CF check).

Tasks
- instacart-next-basket: instacart/users_sample. Train on each user's earlier orders,
  predict the last basket (the Kaggle `train` order when given, else the last `prior`
  order, which is then left out of training). No exclusion: repeat purchases count.
- instacart-heldout / groceries-heldout: instacart/baskets_sample and groceries/. Every
  fifth basket (by order id / line number) is a test basket; one of its items, chosen by
  the seed, is hidden and must be ranked from the catalog, the rest of the basket is given
  (excluded from the ranking, and folded in as the query for ALS). Training: the other
  baskets.
- ml-100k: ratings >= 4 are positives; each user's last 20 % of ratings by time are the
  test; rated training items are excluded.

Bandit policies (libsako, the original TS) learn from events: in basket data every
training line is a purchase, and each training basket also brings impressions without a
click of 10 random catalog products per line (an exposure model: shown, not bought); in
ml-100k every rating is an impression and a rating >= 4 also a click.

instacart-next-basket also gives each order a time (a user's first order at a fixed
date and hour, each next one ``days_since_prior_order`` later, at its hour of day) and its
order id to the policies that take them (libsako 0.2: the order id groups a basket's
purchases, times drive its decay); the query's time is that of the target order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import data as D
from .metrics import ap_at_k, bootstrap_ci, ndcg_at_k, recall_at_k
from .policies import CLICK, IMPRESSION, PURCHASE, Policy, PolicyCatalog, _topk

NEG_PER_LINE = 10


@dataclass
class Query:
    user: int                 # the id a policy sees
    row: int                  # the row of the ALS matrix (a user or a test basket)
    relevant: set
    exclude: list = field(default_factory=list)
    given: list = field(default_factory=list)   # items of the query basket (fold-in)
    time_ms: int = 0          # when the query is for (0: not given)


@dataclass
class Task:
    name: str
    n_items: int
    item_aisle: np.ndarray
    aisle_dept: np.ndarray
    train_rows: np.ndarray     # (row, item) positive interactions for matrix models
    train_users: np.ndarray    # user id of each training row (for buy-again)
    events: tuple              # (users, items, types, times) for bandit policies
    queries: list
    repeat: bool               # whether buy-again applies
    notes: str = ""
    event_orders: np.ndarray = None  # order id of each event (parallel to events), or None


def _basket_events(basket_users, baskets, n_items, rng, t0=1_600_000_000_000, basket_times=None,
                   with_orders=False):
    """Purchases of every basket line, plus NEG_PER_LINE unclicked impressions of random
    catalog products per line (products of the same basket are not used as negatives).
    basket_times: unix ms of each basket (default: t0 + 1 s per basket); with_orders: also
    return each event's order id (its basket's index + 1)."""
    sizes = np.fromiter((len(b) for b in baskets), dtype=np.int64, count=len(baskets))
    bid = np.repeat(np.arange(len(baskets)), sizes)
    items = np.fromiter((i for b in baskets for i in b), dtype=np.int64, count=int(sizes.sum()))
    users = np.asarray(basket_users, dtype=np.int64)
    nb = np.repeat(bid, NEG_PER_LINE)
    neg = rng.integers(0, n_items, nb.size)
    keep = ~np.isin(nb * n_items + neg, bid * n_items + items)
    nb, neg = nb[keep], neg[keep]
    u = np.concatenate([users[bid], users[nb]])
    it = np.concatenate([items, neg])
    ty = np.concatenate([np.full(items.size, PURCHASE), np.full(neg.size, IMPRESSION)])
    eb = np.concatenate([bid, nb])
    tm = t0 + 1000 * eb if basket_times is None else np.asarray(basket_times, dtype=np.int64)[eb]
    order = np.argsort(tm, kind="stable")
    if with_orders:
        return u[order], it[order], ty[order], tm[order], eb[order] + 1
    return u[order], it[order], ty[order], tm[order]


def task_instacart_next_basket(seed: int) -> Task:
    cat = D.instacart_catalog()
    baskets, orders = D.instacart_baskets("users_sample")
    by_user: dict[int, list] = {}
    for o in orders:
        if o["order_id"] in baskets:
            by_user.setdefault(o["user_id"], []).append(o)
    rng = np.random.default_rng([seed, 21])
    users = sorted(by_user)
    uidx = {u: i for i, u in enumerate(users)}
    train_b, train_u, train_t, queries = [], [], [], []
    t0, day, hour = 1_600_000_000_000, 86_400_000, 3_600_000
    for u in users:
        os_ = sorted(by_user[u], key=lambda o: o["order_number"])
        target = [o for o in os_ if o["eval_set"] == "train"]
        target = target[0] if target else os_[-1]
        hist = [o for o in os_ if o is not target and o["eval_set"] == "prior"]
        if not hist:
            continue
        # order times: the first at t0, each next days_since_prior_order later (+ its hour)
        days = np.cumsum([0.0] + [o.get("days_since_prior_order", 0.0) for o in os_[1:]])
        when = {id(o): t0 + int(d * day) + o.get("order_hour_of_day", 0) * hour for o, d in zip(os_, days)}
        for o in hist:
            train_b.append([p - 1 for p in baskets[o["order_id"]]])
            train_u.append(uidx[u])
            train_t.append(when[id(o)])
        queries.append(Query(user=uidx[u], row=uidx[u], relevant={p - 1 for p in baskets[target["order_id"]]},
                             time_ms=when[id(target)]))
    rows = np.array([(u, i) for u, b in zip(train_u, train_b) for i in b], dtype=np.int64)
    *ev, orders = _basket_events(train_u, train_b, cat.n_items, rng, basket_times=train_t, with_orders=True)
    return Task("instacart next basket (users_sample)", cat.n_items, cat.item_aisle, cat.aisle_dept,
                rows, rows[:, 0], tuple(ev), queries, True,
                f"{len(queries)} users, {len(train_b)} training orders", event_orders=orders)


def _heldout(name, baskets_list, test_mask, n_items, item_aisle, aisle_dept, seed):
    rng = np.random.default_rng([seed, 22])
    train_b = [b for b, t in zip(baskets_list, test_mask) if not t]
    test_b = [b for b, t in zip(baskets_list, test_mask) if t and len(set(b)) >= 2]
    n_train = len(train_b)
    rows = np.array([(j, i) for j, b in enumerate(train_b) for i in set(b)], dtype=np.int64)
    queries = []
    for j, b in enumerate(test_b):
        b = list(dict.fromkeys(b))
        h = b[int(rng.integers(0, len(b)))]
        rest = [x for x in b if x != h]
        queries.append(Query(user=n_train + j, row=n_train + j, relevant={h}, exclude=rest, given=rest))
    ev = _basket_events(list(range(n_train)), [list(set(b)) for b in train_b], n_items, rng)
    return Task(name, n_items, item_aisle, aisle_dept, rows, rows[:, 0], ev, queries, False,
                f"{n_train} training baskets, {len(queries)} test baskets")


def task_instacart_heldout(seed: int) -> Task:
    cat = D.instacart_catalog()
    baskets, _ = D.instacart_baskets("baskets_sample")
    ids = sorted(baskets)
    bl = [[p - 1 for p in baskets[o]] for o in ids]
    test = [(o % 5) == 0 for o in ids]
    return _heldout("instacart held-out item (baskets_sample)", bl, test, cat.n_items,
                    cat.item_aisle, cat.aisle_dept, seed)


def task_groceries_heldout(seed: int) -> Task:
    bs = D.groceries_baskets()
    names = sorted({x for b in bs for x in b})
    ix = {n: i for i, n in enumerate(names)}
    bl = [[ix[x] for x in b] for b in bs]
    test = [(j % 5) == 0 for j in range(len(bl))]
    # 169 categories without a hierarchy: one aisle, one department
    return _heldout("groceries held-out item", bl, test, len(names), np.zeros(len(names), dtype=np.int64),
                    np.zeros(1, dtype=np.int64), seed)


def task_ml100k(seed: int) -> Task:
    r = D.ml100k_ratings()
    genre = D.ml100k_genres()
    n_items = genre.size
    u, i, rt, ts = r[:, 0] - 1, r[:, 1] - 1, r[:, 2], r[:, 3]
    order = np.lexsort((i, ts, u))
    u, i, rt, ts = u[order], i[order], rt[order], ts[order]
    test = np.zeros(u.size, dtype=bool)
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    ends = np.r_[starts[1:], u.size]
    for s, e in zip(starts, ends):
        n_test = int(round(0.2 * (e - s)))
        test[e - n_test:e] = True
    tr = ~test
    pos = rt >= 4
    rows = np.stack([u[tr & pos], i[tr & pos]], axis=1)
    clicks = tr & pos
    ev_u = np.concatenate([u[tr], u[clicks]])
    ev_i = np.concatenate([i[tr], i[clicks]])
    ev_t = np.concatenate([np.full(int(tr.sum()), IMPRESSION), np.full(int(clicks.sum()), CLICK)])
    ev_tm = np.concatenate([ts[tr], ts[clicks]]) * 1000
    queries = []
    for s, e in zip(starts, ends):
        rel = set(i[s:e][test[s:e] & pos[s:e]].tolist())
        if rel:
            queries.append(Query(user=int(u[s]), row=int(u[s]), relevant=rel,
                                 exclude=i[s:e][~test[s:e]].tolist()))
    return Task("ml-100k (rating >= 4, last 20 % per user)", n_items, genre,
                np.zeros(int(genre.max()) + 1, dtype=np.int64), rows, rows[:, 0],
                (ev_u, ev_i, ev_t, ev_tm), queries, False,
                f"{len(queries)} users with test positives, {rows.shape[0]} training positives")


TASKS = {
    "instacart-next-basket": (task_instacart_next_basket, ("instacart", "users_sample")),
    "instacart-heldout": (task_instacart_heldout, ("instacart", "baskets_sample")),
    "groceries-heldout": (task_groceries_heldout, ("groceries",)),
    "ml-100k": (task_ml100k, ("ml-100k", "u.data")),
}


# ------------------------------------------------------------------ rankers

class Ranker:
    name = "ranker"

    def fit(self, task: Task) -> None:
        raise NotImplementedError

    def rank(self, q: Query, k: int, rng) -> np.ndarray:
        raise NotImplementedError


class PopularityRanker(Ranker):
    name = "popularity"

    def fit(self, task):
        self.pop = np.bincount(task.train_rows[:, 1], minlength=task.n_items).astype(np.float64)
        self.pop += np.linspace(1e-9, 0, task.n_items)  # deterministic tie-break

    def rank(self, q, k, rng):
        s = self.pop.copy()
        if q.exclude:
            s[np.asarray(q.exclude)] = -np.inf
        return _topk(s, k)


class BuyAgainRanker(PopularityRanker):
    """The user's own purchase counts first (ties by popularity), then popularity."""
    name = "buy it again"

    def fit(self, task):
        super().fit(task)
        self.hist: dict[int, dict[int, int]] = {}
        for u, i in task.train_rows:
            d = self.hist.setdefault(int(u), {})
            d[int(i)] = d.get(int(i), 0) + 1

    def rank(self, q, k, rng):
        s = self.pop / (self.pop.max() + 1.0)
        s = s.copy()
        for i, c in self.hist.get(q.row, {}).items():
            s[i] += c
        if q.exclude:
            s[np.asarray(q.exclude)] = -np.inf
        return _topk(s, k)


class PolicyRanker(Ranker):
    def __init__(self, policy: Policy):
        self.policy = policy
        self.name = policy.name

    def fit(self, task):
        self.policy.reset(PolicyCatalog(task.item_aisle, task.aisle_dept))
        u, i, t, tm = task.events
        orders = task.event_orders if getattr(self.policy, "takes_orders", False) else None
        step = 200_000
        for s in range(0, u.size, step):
            if orders is None:
                self.policy.update(u[s:s + step], i[s:s + step], t[s:s + step], tm[s:s + step])
            else:
                self.policy.update(u[s:s + step], i[s:s + step], t[s:s + step], tm[s:s + step],
                                   order_ids=orders[s:s + step])
        self.policy.refresh()   # trained offline: bring the category priors up to date

    def rank(self, q, k, rng):
        if q.time_ms and hasattr(self.policy, "set_time"):
            self.policy.set_time(q.time_ms)
        return np.asarray(self.policy.recommend(q.user, k, rng, exclude=q.exclude), dtype=np.int64)


def task_matrix(task: Task):
    """The task's rows x items CSR matrix for matrix models: value = the number of training
    rows of the pair; a row for every query too (test baskets have no training rows)."""
    from scipy.sparse import csr_matrix
    rows = task.train_rows
    n_rows = max(int(rows[:, 0].max()) + 1, max(q.row for q in task.queries) + 1)
    m = csr_matrix((np.ones(rows.shape[0], dtype=np.float32), (rows[:, 0], rows[:, 1])),
                   shape=(n_rows, task.n_items))
    m.sum_duplicates()
    return m


class ALSRanker(Ranker):
    """implicit's ALS; test baskets are folded in (recalculate_user) from their given items.

    ``confidence="sako"``: libsako's model (c = 1 + alpha r, docs/c-api.md, "The implicit
    package"): the matrix holds 1 + alpha r and implicit gets alpha 1; the default is
    implicit's own (c = alpha r)."""

    def __init__(self, factors=16, iterations=15, regularization=0.05, alpha=10.0, seed=0,
                 confidence="implicit"):
        if confidence not in ("implicit", "sako"):
            raise ValueError("confidence: implicit or sako")
        self.conf = 1.0 + float(alpha) if confidence == "sako" else 1.0   # value of a cell with r = 1
        self.alpha = float(alpha)
        self.sako_conf = confidence == "sako"
        self.kw = dict(factors=factors, iterations=iterations, regularization=regularization,
                       alpha=1.0 if self.sako_conf else alpha, random_state=seed, num_threads=1)
        self.name = f"implicit ALS ({factors} factors, {iterations} it.)"

    def fit(self, task):
        import implicit
        m = task_matrix(task)
        if self.sako_conf:
            m.data = (1.0 + self.alpha * m.data).astype(np.float32)
        self.m = m
        self.n_items = task.n_items
        import warnings
        with warnings.catch_warnings():
            # implicit warns (at construction) when BLAS is multi-threaded; fit runs under
            # threadpool_limits(1) as it advises
            warnings.filterwarnings("ignore", message=".*OpenBLAS.*")
            self.model = implicit.als.AlternatingLeastSquares(**self.kw)
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover
                self.model.fit(m, show_progress=False)
            else:
                with threadpool_limits(1, "blas"):
                    self.model.fit(m, show_progress=False)

    def rank(self, q, k, rng):
        from scipy.sparse import csr_matrix
        if q.given:
            ui = csr_matrix((np.full(len(q.given), self.conf, dtype=np.float32),
                             (np.zeros(len(q.given), dtype=np.int64), np.asarray(q.given))),
                            shape=(1, self.n_items))
            ids, _ = self.model.recommend(0, ui, N=k, filter_already_liked_items=True,
                                          recalculate_user=True)
        else:
            ui = self.m[q.row]
            ex = np.asarray(q.exclude, dtype=np.int64) if q.exclude else None
            ids, _ = self.model.recommend(q.row, ui, N=k, filter_already_liked_items=False,
                                          filter_items=ex)
        return np.asarray(ids, dtype=np.int64)


def have_implicit() -> bool:
    try:
        import implicit  # noqa: F401
        return True
    except Exception:
        return False


def evaluate(task: Task, rankers: list[Ranker], k: int = 10, seed: int = 0, n_boot: int = 1000,
             progress=None) -> list[dict]:
    out = []
    for r in rankers:
        if isinstance(r, BuyAgainRanker) and not task.repeat:
            continue
        t0 = time.perf_counter()
        r.fit(task)
        fit_s = time.perf_counter() - t0
        rng = np.random.default_rng([seed, 31])
        rec, nd, ap, seen = [], [], [], set()
        t0 = time.perf_counter()
        for q in task.queries:
            ranked = list(r.rank(q, k, rng))
            rec.append(recall_at_k(ranked, q.relevant, k))
            nd.append(ndcg_at_k(ranked, q.relevant, k))
            ap.append(ap_at_k(ranked, q.relevant, k))
            seen.update(ranked)
            if progress is not None:
                progress.update(1)
        q_s = time.perf_counter() - t0
        if isinstance(r, PolicyRanker):
            r.policy.close()
        out.append({"task": task.name, "method": r.name, "n_queries": len(task.queries),
                    "recall": bootstrap_ci(rec, n_boot, seed=seed),
                    "ndcg": bootstrap_ci(nd, n_boot, seed=seed),
                    "map": bootstrap_ci(ap, n_boot, seed=seed),
                    "coverage": len(seen) / task.n_items, "fit_s": fit_s, "query_s": q_s})
    return out
