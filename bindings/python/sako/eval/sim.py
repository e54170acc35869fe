"""A simulated grocery world, deterministic by seed, for regret measurements.

World
- Catalog: departments -> aisles -> products, the real Instacart shape when
  instacart/products.csv is present (49,688 products), generated otherwise.
- Appeal: log appeal_i = aisle effect + ε_i, ε ~ N(0, σ²). The aisle effects are the real
  aisles' log purchase rates in instacart/baskets_sample (shrunk), and σ is fitted by
  maximum likelihood of a Poisson-lognormal model to the real per-product basket counts
  (zeros included), so simulated purchase frequencies have the real long tail
  (`calibrate()` reports the fit).
- Users: department preferences (lognormal multipliers), a few "staples" each that they
  click and buy often (repeat purchases), activity drawn lognormal (some shop a lot).
- Click probability p(u, i) = p_max · (1 − exp(−c · appeal_i · pref_u[dept_i])), a staple's
  at least `staple_click`; purchase given click q_i ~ Beta(4, 6) (staples 0.8).
- New products (a share of the catalog) arrive in batches during the run; at known moments
  the appeal of a random fifth of the aisles shifts up or down (seasons, prices).
- The expected reward of an impression is 0.7·p + p·q (the original reward weights).

Protocol: every policy sees the same users in the same order; each request shows k
products; outcomes use common random numbers (the same user shown the same product at
the same step clicks or not identically under every policy). Regret is pseudo-regret,
in expected reward, against (a) the best fixed top-k for the population (an oracle that
knows every product's true rates; the right yardstick for non-personalised policies) and
(b) the personal oracle (also knows each user's preferences and staples).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import data as D
from .policies import CLICK, IMPRESSION, PURCHASE, Policy, PolicyCatalog

T0_MS = 1_700_000_000_000
STEP_MS = 60_000


# ------------------------------------------------------------- calibration

@dataclass
class Calibration:
    sigma_item: float           # within-aisle sd of log appeal
    sigma_aisle: float          # sd of the aisle effects
    aisle_effect: np.ndarray | None   # real aisle log-rates (when calibrated on Instacart)
    source: str
    fit: dict = field(default_factory=dict)


def _poisson_lognormal_loglik(counts: np.ndarray, lam: np.ndarray, sigma: float, nodes=24) -> float:
    """Σ log P(count_i) with count_i ~ Poisson(lam_i · exp(σz − σ²/2)), z ~ N(0,1)."""
    from scipy.special import gammaln, logsumexp
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    logw = np.log(w / w.sum())
    mult = np.exp(sigma * x - sigma ** 2 / 2)                # (nodes,)
    mu = lam[:, None] * mult[None, :]                         # (n, nodes)
    lp = counts[:, None] * np.log(mu) - mu - gammaln(counts + 1)[:, None]
    return float(logsumexp(lp + logw[None, :], axis=1).sum())


def calibrate() -> Calibration:
    """Fit the appeal distribution to instacart/baskets_sample product counts."""
    try:
        cat = D.instacart_catalog()
        ids, cnt = D.instacart_basket_counts()
    except D.DatasetMissing as e:
        return Calibration(1.6, 0.9, None, f"uncalibrated defaults ({e})")
    from scipy.optimize import minimize_scalar
    n = cat.n_items
    counts = np.zeros(n)
    counts[ids - 1] = cnt
    a = cat.item_aisle
    n_a = cat.n_aisles
    tot_a = np.bincount(a, weights=counts, minlength=n_a)
    size_a = np.bincount(a, minlength=n_a)
    rate_a = (tot_a + 0.5) / size_a                             # per-product mean count per aisle
    lam = rate_a[a]
    res = minimize_scalar(lambda s: -_poisson_lognormal_loglik(counts, lam, s),
                          bounds=(0.05, 4.0), method="bounded", options={"xatol": 5e-3})
    sigma = float(res.x)
    eff = np.log(rate_a)
    eff -= np.average(eff, weights=size_a)
    # goodness of fit: count histogram of the real sample vs the model's expectation
    rng = np.random.default_rng(12345)
    sims = []
    for _ in range(5):
        z = rng.standard_normal(n)
        sims.append(rng.poisson(lam * np.exp(sigma * z - sigma ** 2 / 2)))
    bins = [(0, 0), (1, 1), (2, 4), (5, 19), (20, 10 ** 9)]
    hist_real = [float(((counts >= lo) & (counts <= hi)).mean()) for lo, hi in bins]
    hist_sim = [float(np.mean([((s >= lo) & (s <= hi)).mean() for s in sims])) for lo, hi in bins]
    top1 = lambda c: float(np.sort(c)[::-1][: n // 100].sum() / c.sum())
    fit = {
        "n_products": n, "n_lines": int(counts.sum()),
        "bins": ["0", "1", "2-4", "5-19", "20+"],
        "hist_real": hist_real, "hist_sim": hist_sim,
        "top1pct_share_real": top1(counts), "top1pct_share_sim": float(np.mean([top1(s) for s in sims])),
        "rank_freq_real": np.sort(counts)[::-1], "rank_freq_sim": np.sort(sims[0])[::-1],
        "loglik": -float(res.fun),
        "loglik_poisson_only": _poisson_lognormal_loglik(counts, lam, 1e-6),
    }
    return Calibration(sigma, float(np.sqrt(np.average(eff ** 2, weights=size_a))), eff,
                       "instacart/baskets_sample (Poisson-lognormal MLE, real aisle effects)", fit)


# ------------------------------------------------------------------- world

@dataclass
class SimConfig:
    n_items: int | None = 50000      # None or >= 49,688 = the whole real catalog
    n_users: int = 5000
    n_requests: int = 10000          # 10 slots each: 100,000 impressions
    k: int = 10
    seed: int = 1
    new_share: float = 0.05          # products arriving during the run
    n_arrivals: int = 10
    shifts: tuple = (0.5,)           # preference shifts at these fractions of the run
    shift_aisle_share: float = 0.2
    shift_strength: float = 1.0      # a shifted aisle's appeal times e^(+-strength)
    mean_click: float = 0.02         # catalog-average click probability
    p_max: float = 0.5
    pref_sigma: float = 0.5
    n_staples: int = 6
    staple_click: float = 0.3
    staple_buy: float = 0.8


class World:
    def __init__(self, cfg: SimConfig, calib: Calibration | None = None):
        self.cfg = cfg
        self.calib = calib or calibrate()
        rng = np.random.default_rng([cfg.seed, 0])
        cat = D.catalog(cfg.n_items, cfg.seed)
        self.catalog = cat
        n = cat.n_items
        if self.calib.aisle_effect is not None and self.calib.aisle_effect.size == cat.n_aisles:
            aeff = self.calib.aisle_effect
        else:
            aeff = rng.normal(0.0, self.calib.sigma_aisle, cat.n_aisles)
        s = self.calib.sigma_item
        log_app = aeff[cat.item_aisle] + rng.normal(-s * s / 2, s, n)
        self.appeal0 = np.exp(log_app)
        self.appeal0 /= self.appeal0.mean()
        self.q = rng.beta(4.0, 6.0, n)
        # users
        self.pref = np.exp(rng.normal(-cfg.pref_sigma ** 2 / 2, cfg.pref_sigma, (cfg.n_users, cat.n_depts)))
        w = self.appeal0 / self.appeal0.sum()
        self.staples = np.stack([rng.choice(n, cfg.n_staples, replace=False, p=w) for _ in range(cfg.n_users)])
        activity = rng.lognormal(0.0, 1.0, cfg.n_users)
        self.users = rng.choice(cfg.n_users, cfg.n_requests, p=activity / activity.sum())
        # arrivals of new products
        n_new = int(round(cfg.new_share * n))
        self.new_items = np.sort(rng.choice(n, n_new, replace=False))
        self.is_new = np.zeros(n, dtype=bool)
        self.is_new[self.new_items] = True
        batches = np.array_split(rng.permutation(self.new_items), cfg.n_arrivals)
        at = np.linspace(0.1, 0.9, cfg.n_arrivals)
        self.arrivals = {int(a * cfg.n_requests): b for a, b in zip(at, batches) if b.size}
        # preference shifts
        self.shift_steps = [int(f * cfg.n_requests) for f in cfg.shifts]
        self.shift_mult = []
        for _ in self.shift_steps:
            m = np.ones(cat.n_aisles)
            pick = rng.choice(cat.n_aisles, max(1, int(cfg.shift_aisle_share * cat.n_aisles)), replace=False)
            m[pick] = np.exp(cfg.shift_strength * rng.choice([-1.0, 1.0], pick.size))
            self.shift_mult.append(m)
        # click scale c: catalog-average click probability = mean_click
        self.c = self._solve_c()
        self._phase_cache = {}

    # -- the truth
    def _solve_c(self) -> float:
        cfg = self.cfg
        pm = self.pref.mean(axis=0)[self.catalog.item_dept]
        lo, hi = 1e-6, 100.0
        for _ in range(60):
            mid = math.sqrt(lo * hi)
            m = (cfg.p_max * (1 - np.exp(-mid * self.appeal0 * pm))).mean()
            lo, hi = (mid, hi) if m < cfg.mean_click else (lo, mid)
        return math.sqrt(lo * hi)

    def appeal_at(self, step: int) -> np.ndarray:
        app = self.appeal0
        for s, m in zip(self.shift_steps, self.shift_mult):
            if step >= s:
                app = app * m[self.catalog.item_aisle]
        return app

    def active_at(self, step: int) -> np.ndarray:
        act = ~self.is_new
        for s, b in self.arrivals.items():
            if step >= s:
                act = act.copy()
                act[b] = True
        return act

    def probs(self, user: int, items: np.ndarray, appeal: np.ndarray):
        cfg = self.cfg
        dept = self.catalog.item_dept[items]
        p = cfg.p_max * (1 - np.exp(-self.c * appeal[items] * self.pref[user, dept]))
        q = self.q[items].copy()
        st = np.isin(items, self.staples[user])
        if st.any():
            p[st] = np.maximum(p[st], cfg.staple_click)
            q[st] = cfg.staple_buy
        return p, q

    def value(self, p, q):
        return p * (0.7 + q)

    def _key(self, step: int):
        return (sum(step >= s for s in self.shift_steps), sum(step >= s for s in self.arrivals))

    def _phase(self, step: int):
        key = self._key(step)
        if key not in self._phase_cache:
            appeal = self.appeal_at(step)
            active = self.active_at(step)
            # population-best fixed top-k: expected value over a sample of users
            rng = np.random.default_rng([self.cfg.seed, 7])
            us = rng.choice(self.cfg.n_users, min(300, self.cfg.n_users), replace=False)
            idx = np.flatnonzero(active)
            dept = self.catalog.item_dept[idx]
            acc = np.zeros(idx.size)
            for u in us:
                p = self.cfg.p_max * (1 - np.exp(-self.c * appeal[idx] * self.pref[u, dept]))
                acc += p * (0.7 + self.q[idx])
            best = idx[np.argsort(-acc)[: self.cfg.k]]
            self._phase_cache[key] = (appeal, active, best, self._candidates(appeal, active))
        return self._phase_cache[key][:3]

    def _candidates(self, appeal, active):
        """Items that can be in some user's personal top-k: within a department the value
        grows with appeal and with q, so an item dominated (in both) by k others of its
        department never is. Staples are added per user."""
        import heapq
        k = self.cfg.k
        out = []
        dept = self.catalog.item_dept
        for d in range(self.catalog.n_depts):
            idx = np.flatnonzero(active & (dept == d))
            idx = idx[np.argsort(-appeal[idx], kind="stable")]
            heap: list = []
            for i in idx:
                qi = self.q[i]
                if len(heap) < k:
                    out.append(i)
                    heapq.heappush(heap, qi)
                elif qi > heap[0]:
                    out.append(i)
                    heapq.heapreplace(heap, qi)
        return np.asarray(out, dtype=np.int64)

    def oracles(self, progress=None):
        """Per request: (population-oracle value, personal-oracle value)."""
        cfg = self.cfg
        pop = np.zeros(cfg.n_requests)
        per = np.zeros(cfg.n_requests)
        for t in range(cfg.n_requests):
            appeal, active, best = self._phase(t)
            u = self.users[t]
            p, q = self.probs(u, best, appeal)
            pop[t] = self.value(p, q).sum()
            cand = self._phase_cache[self._key(t)][3]
            st = self.staples[u][active[self.staples[u]]]
            idx = np.union1d(cand, st)
            p, q = self.probs(u, idx, appeal)
            v = self.value(p, q)
            per[t] = np.partition(v, v.size - cfg.k)[-cfg.k:].sum()
            if progress is not None:
                progress.update(1)
        return pop, per


def _uniforms(seed: int, step: int, items: np.ndarray, stream: int) -> np.ndarray:
    """Counter-based uniforms (splitmix64 of seed, step, item, stream): common random numbers."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(step) * np.uint64(0xBF58476D1CE4E5B9)
             + items.astype(np.uint64) * np.uint64(0x94D049BB133111EB)
             + np.uint64(stream) * np.uint64(0x2545F4914F6CDD1D))
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


@dataclass
class Trajectory:
    name: str
    value: np.ndarray        # expected reward of the shown slate, per request
    clicks: np.ndarray       # realised clicks per request
    purchases: np.ndarray
    new_shown: np.ndarray    # slots given to products that arrived during the run
    shown: list              # item indices per request (for determinism checks)
    seconds: float


def run_policy(world: World, policy: Policy, policy_seed: int, progress=None,
               keep_shown: bool = False) -> Trajectory:
    cfg = world.cfg
    cat = world.catalog
    policy.reset(PolicyCatalog(cat.item_aisle, cat.aisle_dept, world.active_at(0), T0_MS - 86_400_000))
    # the policy's own random stream depends on its name, not its position in the list,
    # so adding a policy to a comparison leaves the others' trajectories unchanged
    import zlib
    rng = np.random.default_rng([cfg.seed, 1000, zlib.crc32(policy.name.encode())])
    R = cfg.n_requests
    val = np.zeros(R)
    clk = np.zeros(R, dtype=np.int64)
    pur = np.zeros(R, dtype=np.int64)
    new = np.zeros(R, dtype=np.int64)
    shown = []
    t0 = time.perf_counter()
    for t in range(R):
        if t in world.arrivals:
            policy.add_items(world.arrivals[t], T0_MS + t * STEP_MS)
        appeal, _, _ = world._phase(t)
        u = int(world.users[t])
        items = np.asarray(policy.recommend(u, cfg.k, rng), dtype=np.int64)
        p, q = world.probs(u, items, appeal)
        c = _uniforms(cfg.seed, t, items, 0) < p
        b = c & (_uniforms(cfg.seed, t, items, 1) < q)
        val[t] = world.value(p, q).sum()
        clk[t] = c.sum()
        pur[t] = b.sum()
        new[t] = world.is_new[items].sum()
        if keep_shown:
            shown.append(items.copy())
        tm = T0_MS + t * STEP_MS
        ev_items = np.concatenate([items, items[c], items[b]])
        ev_types = np.concatenate([np.full(items.size, IMPRESSION), np.full(int(c.sum()), CLICK),
                                   np.full(int(b.sum()), PURCHASE)])
        policy.update(np.full(ev_items.size, u), ev_items, ev_types, np.full(ev_items.size, tm))
        if progress is not None:
            progress.update(1)
    secs = time.perf_counter() - t0
    policy.close()
    return Trajectory(policy.name, val, clk, pur, new, shown, secs)


@dataclass
class SimResult:
    cfg: SimConfig
    calib: Calibration
    catalog_source: str
    pop_oracle: np.ndarray
    personal_oracle: np.ndarray
    trajectories: list
    arrival_steps: list
    shift_steps: list
    n_items: int = 0


class _Counter:
    """Progress shared with worker processes (a multiprocessing Value), or None."""

    def __init__(self, value):
        self.value = value
        self.n = 0

    def update(self, k=1):
        self.n += k
        if self.n >= 50:
            with self.value.get_lock():
                self.value.value += self.n
            self.n = 0


_WORKER = {}


def _worker_init(cfg, calib, counter):
    _WORKER["world"] = World(cfg, calib)
    _WORKER["counter"] = counter


def _worker_run(policy, j, keep_shown):
    c = _Counter(_WORKER["counter"])
    tr = run_policy(_WORKER["world"], policy, j, c, keep_shown)
    with c.value.get_lock():
        c.value.value += c.n
    return tr


def simulate(cfg: SimConfig, policies: list[Policy], calib: Calibration | None = None,
             progress_factory=None, keep_shown: bool = False, workers: int = 1) -> SimResult:
    """Run every policy on the same world. workers > 1 runs policies in parallel processes
    (fork); each process rebuilds the same world from the seed, so results are identical."""
    calib = calib or calibrate()
    world = World(cfg, calib)
    bar = progress_factory(total=cfg.n_requests * (len(policies) + 1), desc="simulation") \
        if progress_factory else None
    pop, per = world.oracles(bar)
    if workers > 1 and len(policies) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, wait
        ctx = mp.get_context("fork")
        counter = ctx.Value("q", 0)
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(cfg, calib, counter)) as ex:
            futs = [ex.submit(_worker_run, pol, j, keep_shown) for j, pol in enumerate(policies)]
            done_before = 0
            while True:
                done, pending = wait(futs, timeout=1.0)
                if bar is not None:
                    v = counter.value
                    bar.update(v - done_before)
                    done_before = v
                if not pending:
                    break
            trajs = [f.result() for f in futs]
    else:
        trajs = []
        for j, pol in enumerate(policies):
            if bar is not None:
                bar.set_postfix_str(pol.name[:30])
            trajs.append(run_policy(world, pol, j, bar, keep_shown))
    if bar is not None:
        bar.close()
    return SimResult(cfg, world.calib, world.catalog.source, pop, per, trajs,
                     sorted(world.arrivals), world.shift_steps, world.catalog.n_items)


def summary(res: SimResult) -> list[dict]:
    rows = []
    k = res.cfg.k
    for tr in res.trajectories:
        rows.append({
            "policy": tr.name,
            "regret_pop": float((res.pop_oracle - tr.value).sum()),
            "regret_personal": float((res.personal_oracle - tr.value).sum()),
            "ctr": float(tr.clicks.sum() / (k * tr.value.size)),
            "purchase_rate": float(tr.purchases.sum() / (k * tr.value.size)),
            "exp_reward_per_imp": float(tr.value.sum() / (k * tr.value.size)),
            "new_share": float(tr.new_shown.sum() / (k * tr.value.size)),
            "seconds": tr.seconds,
        })
    return rows
