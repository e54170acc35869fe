"""RESEARCH REFERENCE, NOT THE PRODUCT: a numpy prototype of issue 8's personal engine.

This module exists to decide what the C engine (libsako, next session) should build: it
is replayed on dunnhumby's Complete Journey by ``sako.eval.journey`` (policy keys
``personal-proto``, ``personal-proto-no-<signal>``, ``demand-ts``) and its estimators,
parameters and results are written up in ``docs/research-personal.md``. It is slow
(Python per request), keeps everything in memory, persists nothing, and none of
libsako's guarantees apply. Do not call it from the package or the service.

Two policies:

``DemandTS`` -- the issue's "plain demand-calibrated Thompson sampler". Product i's
prior mean is its per-basket purchase rate so far, m_i = (c_i + 1/N) / (B + 1) (c_i: baskets
containing i, B: baskets so far, N: catalog size); the posterior of P(bought | shown) is
Beta(n0·m_i + s_i, n0·(1 - m_i) + f_i) with s_i the purchases of i when shown and f_i the
impressions of i without a purchase. Not personal.

``PersonalProto`` -- per-(household u, product j) Thompson sampling, Beta(S·μ'_uj, S·(1 - μ'_uj)):

- (a) population demand: q_j, the per-basket purchase rate of j shrunk inside the
  category tree by empirical Bayes (``shrunk_rate``, ``eb_strength``): a product type's
  mean rate is shrunk to its category's and a category's to its department's with
  ``node_pseudo_items`` pseudo-products; product j's rate is shrunk to its type's mean with
  the type's method-of-moments Beta strength s_t: q_j = (c_j + s_t·m_t) / (B + s_t);
- (c) personal category affinity: A_u(c) = share of u's (decayed) purchases in category c
  over the population's share, each shrunk to the level above with ``affinity_k``
  pseudo-purchases: department share to the population's, category share to
  P_c · A_u(dept) (``affinity``);
- (d) co-purchase: shrunk lift from co-occurrence in baskets,
  lift_ij = (C_ij + k_l) / (c_i·c_j / B + k_l) (``shrunk_lift``), averaged over the
  items of u's latest basket (missing pairs count as lift 1): ℓ_uj = mean_i lift_ij;
- prior of (u, j): π_uj = q_j · A_u(c_j)^rho_a · ℓ_uj^rho_l (clipped to [1e-9, 0.9]);
- (b) repeat: u's own baskets with exponential time decay (half-life ``half_life_days``):
  W_u = Σ_b w_b, n_uj = Σ_b w_b [j ∈ b]; plus impression evidence e_uj = decayed number
  of times j was shown to u and not bought (weight ``gamma``):
  μ_uj = (a0·π_uj + n_uj) / (a0 + W_u + gamma·e_uj)   (Beta-Bernoulli posterior mean);
- due-ness: for a product u bought before, x = (now - last_uj) / ĝ_uj with the
  repurchase interval ĝ_uj = (Σ gaps_uj + G_j) / (#gaps_uj + 1) shrunk to the product's
  population interval G_j; μ'_uj = min(0.99, μ_uj · min(1, x)^kappa) (``due_factor``);
- draw strength S = (a0 + W_u) / temperature (temperature 0: greedy, the posterior
  mean itself). A household with no history gets exactly the population engine
  (W_u = 0, A = 1, ℓ = 1: μ = q_j with strength a0 / temperature).

Candidates (the draw is exact over them, not over the catalog): every product u bought
before, the population top ``pop_top`` by q, the top ``cat_top`` products by q of u's
``n_top_cats`` categories with the most decayed purchases, and the ``cooc_top`` best
co-purchase products of u's latest basket. Population state (q, tree means, per-category
top lists) is refreshed every ``refresh_baskets`` baskets; co-occurrence C is folded in
(sparse XᵀX) when the pending baskets reach 10 % of those folded or a week has passed,
and each product keeps its ``neighbors`` best partners by shrunk lift (pairs with C_ij ≥
``min_support`` and lift > 1).
"""
from __future__ import annotations

import numpy as np

from .policies import CLICK, IMPRESSION, PURCHASE, Policy, _topk

DAY_MS = 86_400_000


# ------------------------------------------------------------------ building blocks (tested)

def shrunk_rate(count, trials, prior_mean, strength):
    """Beta-Binomial posterior mean: (count + strength·prior_mean) / (trials + strength)."""
    return (np.asarray(count, dtype=np.float64) + strength * np.asarray(prior_mean)) / \
        (np.asarray(trials, dtype=np.float64) + strength)


def eb_strength(counts, trials: float, group, n_groups: int, lo: float = 1.0, hi: float = 1e7):
    """Per group, the method-of-moments Beta strength s of the members' rates p_i = c_i / n:
    m = mean p, v = max(var p - mean(m(1-m)/n), tiny) (between-product variance minus the
    binomial noise), s = m(1 - m) / v - 1, clipped to [lo, hi]; returns (s, m) per group."""
    counts = np.asarray(counts, dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    n_g = np.bincount(group, minlength=n_groups).astype(np.float64)
    p = counts / max(trials, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.bincount(group, weights=p, minlength=n_groups) / n_g
        ex2 = np.bincount(group, weights=p * p, minlength=n_groups) / n_g
        var = np.maximum(ex2 - m * m, 0.0)
        noise = m * (1.0 - m) / max(trials, 1.0)
        v = np.maximum(var - noise, 1e-15)
        s = m * (1.0 - m) / v - 1.0
    s = np.where(np.isfinite(s) & (n_g > 1), s, hi)
    return np.clip(s, lo, hi), np.nan_to_num(m)


def shrunk_lift(co, ci, cj, baskets, k: float):
    """Shrunk lift of a pair: (C_ij + k) / (c_i·c_j / B + k); 1 when nothing is known."""
    e = np.asarray(ci, dtype=np.float64) * np.asarray(cj, dtype=np.float64) / max(float(baskets), 1.0)
    return (np.asarray(co, dtype=np.float64) + k) / (e + k)


def decay(dt_days, half_life_days: float):
    """Weight of evidence dt days old: 2^(-dt / half-life)."""
    return np.power(0.5, np.asarray(dt_days, dtype=np.float64) / float(half_life_days))


def due_factor(since_days, gap_sum_days, n_gaps, pop_interval_days, kappa: float):
    """min(1, x)^kappa with x = since / ĝ, ĝ = (Σ gaps + G) / (#gaps + 1)."""
    g = (np.asarray(gap_sum_days, dtype=np.float64) + pop_interval_days) / (np.asarray(n_gaps) + 1.0)
    x = np.asarray(since_days, dtype=np.float64) / np.maximum(g, 1e-9)
    return np.power(np.minimum(1.0, x), kappa)


def affinity(n_dept, n_cat, total, pop_dept_share, pop_cat_share, cat_dept, k: float):
    """Hierarchical personal affinity (share over population share) of every department and
    category: dept share (n_d + k·P_d) / (N + k); category share (n_c + k·P_c·A_d) / (N + k).
    Returns (A_dept, A_cat)."""
    n_dept, n_cat = np.asarray(n_dept, dtype=np.float64), np.asarray(n_cat, dtype=np.float64)
    pd, pc = np.asarray(pop_dept_share, dtype=np.float64), np.asarray(pop_cat_share, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        a_d = np.where(pd > 0, (n_dept + k * pd) / (total + k) / pd, 1.0)
        prior_c = pc * a_d[cat_dept]
        a_c = np.where(pc > 0, (n_cat + k * prior_c) / (total + k) / pc, 1.0)
    return a_d, a_c


def tree_levels(item_category, tree_ids, tree_parents):
    """Dense (type, category, department) index of every item, and cat -> dept, from the
    journey's tree (department -> product_category -> product_type, parents first)."""
    pos = {int(c): i for i, c in enumerate(tree_ids)}
    parent = np.array([pos.get(int(p), -1) for p in tree_parents], dtype=np.int64)
    node = np.array([pos[int(c)] for c in item_category], dtype=np.int64)
    cat_node = parent[node]
    dept_node = parent[cat_node]
    t_u, t_idx = np.unique(node, return_inverse=True)
    c_u, c_idx = np.unique(cat_node, return_inverse=True)
    d_u, d_idx = np.unique(dept_node, return_inverse=True)
    type_cat = np.zeros(t_u.size, dtype=np.int64)
    type_cat[t_idx] = c_idx
    cat_dept = np.zeros(c_u.size, dtype=np.int64)
    cat_dept[c_idx] = d_idx
    return t_idx, c_idx, d_idx, type_cat, cat_dept


# ------------------------------------------------------------------ the plain demand TS

class DemandTS(Policy):
    """The issue's plain demand-calibrated Thompson sampler (see the module docstring).
    The draw is over a candidate pool: the top ``pool`` products by posterior mean,
    recomputed every ``refresh_baskets`` baskets (products outside it have a prior mean
    below the pool's and are never drawn: an approximation, stated)."""
    name = "demand-calibrated TS (plain)"

    def __init__(self, n0: float = 100.0, pool: int = 1000, refresh_baskets: int = 200):
        self.n0, self.pool_size, self.refresh_baskets = float(n0), int(pool), int(refresh_baskets)

    def reset(self, catalog):
        super().reset(catalog)
        n = catalog.n_items
        self.c = np.zeros(n)
        self.s = np.zeros(n)
        self.f = np.zeros(n)
        self.B = 0
        self.since = 10 ** 9
        self.pool = np.arange(min(self.pool_size, n))

    def _mean(self, idx=None):
        n = self.catalog.n_items
        sl = slice(None) if idx is None else idx
        m = (self.c[sl] + 1.0 / n) / (self.B + 1.0)
        return (self.n0 * m + self.s[sl]) / (self.n0 + self.s[sl] + self.f[sl]), m

    def recommend(self, user, k, rng, exclude=()):
        if self.since >= self.refresh_baskets:
            self.pool = _topk(self._mean()[0], self.pool_size)
            self.since = 0
        idx = self.pool
        n = self.catalog.n_items
        m = (self.c[idx] + 1.0 / n) / (self.B + 1.0)
        draw = rng.beta(self.n0 * m + self.s[idx], self.n0 * (1.0 - m) + self.f[idx])
        return idx[_topk(draw, k)]

    def update(self, users, items, types, times):
        items = np.asarray(items, dtype=np.int64)
        types = np.asarray(types)
        bought = np.unique(items[types == PURCHASE])
        shown = items[types == IMPRESSION]
        hit = np.isin(shown, bought)
        np.add.at(self.s, shown[hit], 1.0)
        np.add.at(self.f, shown[~hit], 1.0)
        if bought.size:
            self.c[bought] += 1.0
            self.B += 1
            self.since += 1


# ------------------------------------------------------------------ the personal prototype

class _House:
    """One household's state (sorted product arrays; decayed quantities at time t_ref)."""
    __slots__ = ("it", "n", "nb", "last", "gsum", "W", "t_ref", "latest", "imp")

    def __init__(self):
        self.it = np.empty(0, dtype=np.int64)    # distinct products bought, sorted
        self.n = np.empty(0)                     # decayed number of baskets containing it
        self.nb = np.empty(0)                    # raw number of baskets containing it
        self.last = np.empty(0, dtype=np.int64)  # time of the last purchase (ms)
        self.gsum = np.empty(0)                  # sum of repurchase gaps (days)
        self.W = 0.0                             # decayed number of baskets
        self.t_ref = 0
        self.latest = np.empty(0, dtype=np.int64)
        self.imp: dict = {}                      # product -> (decayed shown-not-bought, t)


DEFAULTS = dict(
    half_life_days=90.0,   # repeat decay
    a0=5.0,                # prior strength of (u, j), in baskets
    kappa=0.5,             # due-ness exponent (0: off)
    rho_a=1.0,             # affinity exponent (0: off)
    rho_l=1.0,             # co-purchase exponent (0: off)
    gamma=0.0,             # weight of shown-not-bought (0: off)
    temperature=0.3,       # draw strength S = (a0 + W_u) / temperature (0: greedy)
    affinity_k=20.0,       # pseudo-purchases of the affinity shrinkage
    lift_k=5.0,            # shrunk lift pseudo-count (expected co-occurrences)
    node_pseudo_items=5.0, # tree means: type -> category -> department
    shrink=True,           # (a)'s empirical-Bayes shrinkage (False: raw rate c_j / B)
    demand=True,           # (a) at all (False: every product gets the catalog's mean rate)
    repeat=True,           # (b) at all (False: own baskets ignored in the posterior)
    pop_top=200, cat_top=20, n_top_cats=8, cooc_top=60, neighbors=50, min_support=2,
    refresh_baskets=250, mode="mixed",
    discover_slots=0,      # mixed mode: the last slots go to the best products u never bought
)
ABLATIONS = {
    "no-demand": dict(demand=False),
    "no-shrinkage": dict(shrink=False),
    "no-repeat": dict(repeat=False),
    "no-due": dict(kappa=0.0),
    "no-affinity": dict(rho_a=0.0),
    "no-copurchase": dict(rho_l=0.0),
}
#: other variants reported (not ablations: the chosen parameters switched these off)
VARIANTS = {
    "ts": (dict(temperature=0.1), "Thompson draw, temperature 0.1"),
    "impressions": (dict(gamma=0.5), "with shown-not-bought evidence (gamma 0.5)"),
    "slots6": (dict(discover_slots=6), "6 discover slots"),
}
#: parameters chosen on the tuning split (odd household ids) of --quick runs, seeds 1 and 2,
#: by months 4-12 NDCG@20 (docs/research-personal.md has the grid): a longer or shorter
#: half-life, due-ness above 0.2 and any Thompson temperature > 0 all lost there.
CHOSEN: dict = dict(half_life_days=45.0, a0=10.0, kappa=0.2, temperature=0.0, gamma=0.0,
                    affinity_k=20.0, lift_k=5.0, rho_a=1.0, rho_l=1.0)


class PersonalProto(Policy):
    """Issue 8's per-(household, product) Thompson sampler, numpy research reference
    (see the module docstring for every formula)."""
    name = "personal prototype (numpy)"

    def __init__(self, **params):
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        self.p = {**DEFAULTS, **params}
        self.sources: dict = {}

    # ---------------------------------------------------------- state
    def reset(self, catalog):
        super().reset(catalog)
        n = catalog.n_items
        ids = getattr(catalog, "tree_ids", None)
        if ids is not None:
            self.t_of, self.c_of, self.d_of, self.type_cat, self.cat_dept = tree_levels(
                catalog.item_category, catalog.tree_ids, catalog.tree_parents)
        else:   # an aisle/department catalog: aisle = type = category
            self.t_of = np.asarray(catalog.item_aisle, dtype=np.int64)
            self.c_of = self.t_of
            self.d_of = np.asarray(catalog.aisle_dept, dtype=np.int64)[self.t_of]
            self.type_cat = np.arange(int(self.t_of.max()) + 1)
            self.cat_dept = np.asarray(catalog.aisle_dept, dtype=np.int64)
        self.n_t, self.n_c, self.n_d = int(self.t_of.max()) + 1, int(self.c_of.max()) + 1, int(self.d_of.max()) + 1
        self.c = np.zeros(n)             # baskets containing j
        self.B = 0
        self.ggap = np.zeros(n)          # population repurchase gaps: sum (days), count
        self.gcnt = np.zeros(n)
        self.houses: dict = {}
        self.pending: list = []          # baskets not yet folded into C
        self.C = None
        self.nb_ptr = np.zeros(n + 1, dtype=np.int64)
        self.nb_items = np.empty(0, dtype=np.int64)
        self.nb_lift = np.empty(0)
        self.folded, self.folded_at = 0, None
        self.since = 10 ** 9
        self.now = 0
        self._refresh()

    def _refresh(self):
        p, n = self.p, self.catalog.n_items
        B = max(self.B, 1)
        if not p["demand"]:
            self.q = np.full(n, max(self.c.sum(), 1.0) / (B * n))
        elif not p["shrink"]:
            self.q = (self.c + 1.0 / n) / (B + 1.0)
        else:
            k = p["node_pseudo_items"]
            cnt_t = np.bincount(self.t_of, minlength=self.n_t).astype(np.float64)
            cnt_c = np.bincount(self.c_of, minlength=self.n_c).astype(np.float64)
            cnt_d = np.bincount(self.d_of, minlength=self.n_d).astype(np.float64)
            C_t = np.bincount(self.t_of, weights=self.c, minlength=self.n_t)
            C_c = np.bincount(self.c_of, weights=self.c, minlength=self.n_c)
            C_d = np.bincount(self.d_of, weights=self.c, minlength=self.n_d)
            root = (self.c.sum() + 1.0) / (B * n + 1.0)
            m_d = shrunk_rate(C_d, cnt_d * B, root, k * B)
            m_c = shrunk_rate(C_c, cnt_c * B, m_d[self.cat_dept], k * B)
            m_t = shrunk_rate(C_t, cnt_t * B, m_c[self.type_cat], k * B)
            s_t, _ = eb_strength(self.c, B, self.t_of, self.n_t)
            self.q = shrunk_rate(self.c, B, m_t[self.t_of], s_t[self.t_of])
        self.pop_top = _topk(self.q, p["pop_top"])
        # per category: its cat_top products by q
        o = np.lexsort((-self.q, self.c_of))
        starts = np.searchsorted(self.c_of[o], np.arange(self.n_c))
        ends = np.r_[starts[1:], o.size]
        self.cat_lists = [o[s:min(e, s + p["cat_top"])] for s, e in zip(starts, ends)]
        tot = max(self.c.sum(), 1.0)
        self.P_c = np.bincount(self.c_of, weights=self.c, minlength=self.n_c) / tot
        self.P_d = np.bincount(self.d_of, weights=self.c, minlength=self.n_d) / tot
        gbar = (self.ggap.sum() + 14.0 * 10) / (self.gcnt.sum() + 10)     # days
        self.G = (self.ggap + 2.0 * gbar) / (self.gcnt + 2.0)
        self.since = 0
        # co-occurrence: fold pending baskets when they reach 10 % of the folded or a week passed
        if self.pending and (len(self.pending) >= 0.1 * self.folded or
                             self.folded_at is None or self.now - self.folded_at >= 7 * DAY_MS):
            self._fold()

    def _fold(self):
        from scipy import sparse
        n, p = self.catalog.n_items, self.p
        if not self.pending:
            return
        lens = np.fromiter((b.size for b in self.pending), dtype=np.int64, count=len(self.pending))
        X = sparse.csr_matrix((np.ones(int(lens.sum()), dtype=np.float32), np.concatenate(self.pending),
                               np.r_[0, np.cumsum(lens)]), shape=(len(self.pending), n))
        XtX = (X.T @ X).tocsr()
        self.C = XtX if self.C is None else (self.C + XtX).tocsr()
        self.folded += len(self.pending)
        self.pending = []
        self.folded_at = self.now
        # neighbour lists: per product its best partners by shrunk lift
        C = self.C.tocoo()
        keep = (C.row != C.col) & (C.data >= p["min_support"])
        r, cc, d = C.row[keep], C.col[keep], C.data[keep].astype(np.float64)
        lift = shrunk_lift(d, self.c[r], self.c[cc], self.B, p["lift_k"])
        m = lift > 1.0
        r, cc, lift = r[m], cc[m], lift[m]
        o = np.lexsort((-lift, r))
        r, cc, lift = r[o], cc[o], lift[o]
        start = np.searchsorted(r, np.arange(n))
        rank = np.arange(r.size) - start[r]
        m = rank < p["neighbors"]
        r, cc, lift = r[m], cc[m], lift[m]
        self.nb_ptr = np.r_[0, np.cumsum(np.bincount(r, minlength=n))].astype(np.int64)
        self.nb_items, self.nb_lift = cc.astype(np.int64), lift

    def update(self, users, items, types, times):
        items = np.asarray(items, dtype=np.int64)
        types = np.asarray(types)
        if len(times):
            self.now = int(np.max(times))
        bought = np.unique(items[types == PURCHASE])
        u = int(np.asarray(users)[0]) if len(users) else None   # one basket of one household per call
        t = self.now
        h = self.houses.get(u)
        if h is None and bought.size:
            h = self.houses[u] = _House()
            h.t_ref = t
        if h is not None and self.p["gamma"] > 0:
            shown = items[types == IMPRESSION]
            for j in shown[~np.isin(shown, bought)].tolist():
                v, t0 = h.imp.get(j, (0.0, t))
                h.imp[j] = (v * float(decay((t - t0) / DAY_MS, self.p["half_life_days"])) + 1.0, t)
        if not bought.size:
            return
        self.c[bought] += 1.0
        self.B += 1
        self.since += 1
        self.pending.append(bought)
        # household
        d = float(decay((t - h.t_ref) / DAY_MS, self.p["half_life_days"]))
        h.n *= d
        h.W = h.W * d + 1.0
        h.t_ref = t
        pos = np.searchsorted(h.it, bought)
        known = (pos < h.it.size) & (h.it[np.minimum(pos, max(h.it.size - 1, 0))] == bought) if h.it.size \
            else np.zeros(bought.size, dtype=bool)
        kp = pos[known]
        gap = (t - h.last[kp]) / DAY_MS
        h.gsum[kp] += gap
        self.ggap[bought[known]] += gap
        self.gcnt[bought[known]] += 1.0
        h.n[kp] += 1.0
        h.nb[kp] += 1.0
        h.last[kp] = t
        new = bought[~known]
        if new.size:
            at = np.searchsorted(h.it, new)
            h.it = np.insert(h.it, at, new)
            h.n = np.insert(h.n, at, 1.0)
            h.nb = np.insert(h.nb, at, 1.0)
            h.last = np.insert(h.last, at, t)
            h.gsum = np.insert(h.gsum, at, 0.0)
        h.latest = bought

    # ---------------------------------------------------------- scoring
    def candidates(self, h):
        """(candidate products, their co-purchase lift ℓ) for household h (None: new)."""
        p = self.p
        parts = [self.pop_top]
        ell_i = ell_v = None
        if h is not None:
            if p["repeat"] or p["mode"] == "repeat":
                parts.append(h.it)
            if p["rho_a"] > 0 and h.it.size:
                byc = np.bincount(self.c_of[h.it], weights=h.n, minlength=self.n_c)
                for c in _topk(byc, min(p["n_top_cats"], int((byc > 0).sum()))).tolist():
                    parts.append(self.cat_lists[c])
            if p["rho_l"] > 0 and h.latest.size and self.nb_items.size:
                L = h.latest
                s, e = self.nb_ptr[L], self.nb_ptr[L + 1]
                idx = np.concatenate([np.arange(a, b) for a, b in zip(s.tolist(), e.tolist())]) \
                    if (e > s).any() else np.empty(0, dtype=np.int64)
                if idx.size:
                    it, inv = np.unique(self.nb_items[idx], return_inverse=True)
                    # mean over the latest basket of lift, missing pairs = 1
                    ell = 1.0 + np.bincount(inv, weights=self.nb_lift[idx] - 1.0, minlength=it.size) / L.size
                    ell_i, ell_v = it, ell
                    parts.append(it[_topk(ell * self.q[it], p["cooc_top"])])
        cand = np.unique(np.concatenate(parts))
        ell = np.ones(cand.size)
        if ell_i is not None:
            pos = np.searchsorted(ell_i, cand)
            ok = (pos < ell_i.size) & (ell_i[np.minimum(pos, ell_i.size - 1)] == cand)
            ell[ok] = ell_v[pos[ok]]
        return cand, ell

    def score(self, user, now=None):
        """(candidates, posterior mean μ', draw strength S) of household ``user`` at ``now``."""
        p = self.p
        now = self.now if now is None else now
        if self.since >= p["refresh_baskets"]:
            self._refresh()
        h = self.houses.get(int(user))
        cand, ell = self.candidates(h)
        pi = self.q[cand].copy()
        if h is None or h.it.size == 0:
            mu = np.clip(pi, 1e-9, 0.99)
            return cand, mu, np.full(cand.size, p["a0"]), np.zeros(cand.size, dtype=bool)
        if p["rho_a"] > 0:
            byd = np.bincount(self.d_of[h.it], weights=h.n, minlength=self.n_d)
            byc = np.bincount(self.c_of[h.it], weights=h.n, minlength=self.n_c)
            _, a_c = affinity(byd, byc, h.n.sum(), self.P_d, self.P_c, self.cat_dept, p["affinity_k"])
            pi *= a_c[self.c_of[cand]] ** p["rho_a"]
        if p["rho_l"] > 0:
            pi *= ell ** p["rho_l"]
        pi = np.clip(pi, 1e-9, 0.9)
        pos = np.searchsorted(h.it, cand)
        own = (pos < h.it.size) & (h.it[np.minimum(pos, h.it.size - 1)] == cand)
        n_uj = np.zeros(cand.size)
        W = h.W if p["repeat"] else 0.0
        if p["repeat"]:
            n_uj[own] = h.n[pos[own]]
        e = np.zeros(cand.size)
        if p["gamma"] > 0 and h.imp:
            for x, j in enumerate(cand.tolist()):
                v = h.imp.get(j)
                if v is not None:
                    e[x] = v[0] * float(decay((h.t_ref - v[1]) / DAY_MS, p["half_life_days"]))
        mu = (p["a0"] * pi + n_uj) / (p["a0"] + W + p["gamma"] * e)
        if p["kappa"] > 0 and p["repeat"]:
            po = pos[own]
            since = (now - h.last[po]) / DAY_MS
            mu[own] *= due_factor(since, h.gsum[po], h.nb[po] - 1.0, self.G[cand[own]], p["kappa"])
        mu = np.clip(mu, 1e-9, 0.99)
        S = np.full(cand.size, p["a0"] + W)
        return cand, mu, S, own

    def recommend(self, user, k, rng, exclude=()):
        cand, mu, S, own = self.score(user)
        mode = self.p["mode"]
        if mode == "discover":
            cand, mu, S, own = cand[~own], mu[~own], S[~own], own[~own]
        elif mode == "repeat":
            cand, mu, S, own = cand[own], mu[own], S[own], own[own]
        t = self.p["temperature"]
        if t > 0:
            Se = S / t
            val = rng.beta(Se * mu, Se * (1.0 - mu))
        else:
            val = mu + rng.random(mu.size) * 1e-12
        d = min(int(self.p["discover_slots"]), k) if mode == "mixed" else 0
        if d and (~own).any():
            first = _topk(val, k - d)
            rest = np.ones(val.size, dtype=bool)
            rest[first] = False
            pool = np.flatnonzero(rest & ~own)
            new = pool[_topk(val[pool], d)]
            chosen = np.r_[first, new]
            if chosen.size < k:                                # too few new ones: fill by value
                rest[chosen] = False
                pool = np.flatnonzero(rest)
                chosen = np.r_[chosen, pool[_topk(val[pool], k - chosen.size)]]
            return cand[chosen[:k]]
        top = _topk(val, k)
        return cand[top]


def make(key: str, seed: int = 1, **params):
    """``demand-ts``, ``personal-proto`` (``CHOSEN``), ``personal-proto-no-<signal>``
    (``ABLATIONS``), ``personal-proto-<variant>`` (``VARIANTS``), ``personal-proto-discover`` /
    ``-repeat`` (modes); params override the chosen ones."""
    if key == "demand-ts":
        pol = DemandTS(**params)
        return pol
    base = {**CHOSEN}
    suffix = key[len("personal-proto"):].lstrip("-")
    label = "personal prototype (numpy)"
    if suffix in ("discover", "repeat"):
        base["mode"] = suffix
        label += f", {suffix} mode"
    elif suffix in VARIANTS:
        base.update(VARIANTS[suffix][0])
        label += ", " + VARIANTS[suffix][1]
    elif suffix:
        if suffix not in ABLATIONS:
            raise ValueError(f"unknown prototype variant {key!r}; known: "
                             + ", ".join("personal-proto-" + a for a in list(ABLATIONS) + list(VARIANTS)))
        base.update(ABLATIONS[suffix])
        label += f" without {suffix[3:]}"
    pol = PersonalProto(**{**base, **params})
    pol.name = label
    return pol
