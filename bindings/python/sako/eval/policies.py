"""Policies compared by every part of the evaluation, behind one small interface.

Items are dense indices 0..N-1 inside the harness; a policy returns indices. Events are
given as parallel arrays (users, items, types, times) with the libsako event types
(0 impression, 1 click, 2 cart, 3 purchase).

    policy.reset(catalog)                      # a PolicyCatalog; active items only
    policy.add_items(items, time_ms)           # new products become active
    policy.recommend(user, k, rng, exclude=()) # -> np.ndarray of item indices, best first
    policy.update(users, items, types, times)  # feedback
    policy.refresh()                           # after offline training (libsako: retrain)
    policy.close()
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IMPRESSION, CLICK, CART, PURCHASE = 0, 1, 2, 3
REWARD = {CLICK: 0.7, CART: 0.85, PURCHASE: 1.0}  # the original system's weights


@dataclass
class PolicyCatalog:
    item_aisle: np.ndarray          # aisle index of each item
    aisle_dept: np.ndarray          # department index of each aisle
    active: np.ndarray = field(default=None)  # bool mask of items present at start
    time_ms: int = 1                          # when the initial catalog was added (unix ms)

    def __post_init__(self):
        if self.active is None:
            self.active = np.ones(self.item_aisle.size, dtype=bool)

    @property
    def n_items(self) -> int:
        return int(self.item_aisle.size)


def evidence(n_items: int, items, types):
    """Per-item (successes, failures) of a batch under the original reward rule:
    successes = 0.7·clicks + 0.85·carts + 1·purchases; failures = max(0, impressions − clicks)."""
    items = np.asarray(items, dtype=np.int64)
    types = np.asarray(types)
    s = np.zeros(n_items)
    imp = np.bincount(items[types == IMPRESSION], minlength=n_items).astype(np.float64)
    clk = np.bincount(items[types == CLICK], minlength=n_items).astype(np.float64)
    for t, w in REWARD.items():
        m = types == t
        if m.any():
            s += w * np.bincount(items[m], minlength=n_items)
    return s, imp, clk


def _exclude_mask(n, active, exclude):
    ok = active.copy()
    if len(exclude):
        ok[np.asarray(exclude, dtype=np.int64)] = False
    return ok


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.size)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


class Policy:
    name = "policy"
    personal = False

    def reset(self, catalog: PolicyCatalog) -> None:
        self.catalog = catalog
        self.active = catalog.active.copy()

    def add_items(self, items, time_ms: int = 1) -> None:
        self.active[np.asarray(items, dtype=np.int64)] = True

    def recommend(self, user: int, k: int, rng: np.random.Generator, exclude=()) -> np.ndarray:
        raise NotImplementedError

    def update(self, users, items, types, times) -> None:
        pass

    def refresh(self) -> None:
        """Bring derived state (category priors) up to date after offline training."""

    def close(self) -> None:
        pass


class RandomPolicy(Policy):
    name = "random"

    def recommend(self, user, k, rng, exclude=()):
        pool = np.flatnonzero(_exclude_mask(self.catalog.n_items, self.active, exclude))
        return rng.choice(pool, size=min(k, pool.size), replace=False)


class OriginalTS(Policy):
    """The original system: Beta(1, 1) for every product, impression without click b+1,
    click a+0.7, purchase a+1; per request sample every product and argsort (numpy)."""
    name = "original Beta(1,1) TS"

    def reset(self, catalog):
        super().reset(catalog)
        n = catalog.n_items
        self.a = np.ones(n)
        self.b = np.ones(n)

    def recommend(self, user, k, rng, exclude=()):
        ok = _exclude_mask(self.catalog.n_items, self.active, exclude)
        idx = np.flatnonzero(ok)
        draw = rng.beta(self.a[idx], self.b[idx])
        order = np.argsort(-draw)          # the full sort, as the original did
        return idx[order[:k]]

    def update(self, users, items, types, times):
        s, imp, clk = evidence(self.catalog.n_items, items, types)
        self.a += s
        self.b += np.maximum(0.0, imp - clk)


class PopularityPolicy(Policy):
    """Greedy popularity: rank by accumulated reward (0.7·clicks + purchases), random tie-break."""
    name = "popularity"

    def reset(self, catalog):
        super().reset(catalog)
        self.score = np.zeros(catalog.n_items)

    def recommend(self, user, k, rng, exclude=()):
        ok = _exclude_mask(self.catalog.n_items, self.active, exclude)
        s = np.where(ok, self.score + rng.random(self.score.size) * 1e-6, -np.inf)
        return _topk(s, min(k, int(ok.sum())))

    def update(self, users, items, types, times):
        s, _, _ = evidence(self.catalog.n_items, items, types)
        self.score += s


class CategoryPriorTS(Policy):
    """A pure-numpy reference of category-prior Thompson sampling (empirical Bayes), following
    the rule documented in sako.h: an item's prior is its aisle's pooled posterior mean with
    `prior_strength` pseudo-observations; an aisle's pooled mean is shrunk to its department's
    with `category_shrinkage` pseudo-observations, a department's to the catalog's. Priors are
    refreshed every `refresh_events` events. Used to develop the harness before libsako's
    binding existed, and as a cross-check of libsako's numbers."""
    name = "reference category-prior TS (numpy)"

    def __init__(self, prior_strength=2.0, category_shrinkage=20.0, refresh_events=10000):
        self.kappa = prior_strength
        self.lam = category_shrinkage
        self.refresh_events = refresh_events

    def reset(self, catalog):
        super().reset(catalog)
        n = catalog.n_items
        self.s = np.zeros(n)
        self.f = np.zeros(n)
        self.since = 0
        self._refresh()

    def _refresh(self):
        c = self.catalog
        n_a, n_d = c.aisle_dept.size, int(c.aisle_dept.max()) + 1
        S, F = self.s.sum(), self.f.sum()
        root = (S + 1.0) / (S + F + 2.0)
        sa = np.bincount(c.item_aisle, weights=self.s, minlength=n_a)
        fa = np.bincount(c.item_aisle, weights=self.f, minlength=n_a)
        sd = np.bincount(c.aisle_dept, weights=sa, minlength=n_d)
        fd = np.bincount(c.aisle_dept, weights=fa, minlength=n_d)
        md = (sd + self.lam * root) / (sd + fd + self.lam)
        ma = (sa + self.lam * md[c.aisle_dept]) / (sa + fa + self.lam)
        self.prior_mean = ma[c.item_aisle]
        self.since = 0

    def recommend(self, user, k, rng, exclude=()):
        ok = _exclude_mask(self.catalog.n_items, self.active, exclude)
        idx = np.flatnonzero(ok)
        a = self.kappa * self.prior_mean[idx] + self.s[idx]
        b = self.kappa * (1.0 - self.prior_mean[idx]) + self.f[idx]
        draw = rng.beta(a, b)
        return idx[_topk(draw, k)]

    def update(self, users, items, types, times):
        s, imp, clk = evidence(self.catalog.n_items, items, types)
        self.s += s
        self.f += np.maximum(0.0, imp - clk)
        self.since += len(items)
        if self.refresh_events and self.since >= self.refresh_events:
            self._refresh()

    def refresh(self):
        self._refresh()


def default_policies(include_popularity: bool = True, include_reference: bool | None = None,
                     seed: int = 0) -> list[Policy]:
    """Random, original TS, libsako (category and flat priors, when the binding is built),
    the numpy reference of category priors (by default only when libsako is not built),
    and popularity."""
    from . import sako_adapter
    if include_reference is None:
        include_reference = not sako_adapter.available()
    pols: list[Policy] = [RandomPolicy(), OriginalTS()]
    if sako_adapter.available():
        pols.append(sako_adapter.SakoPolicy(prior="category", seed=seed + 1))
        pols.append(sako_adapter.SakoPolicy(prior="flat", seed=seed + 2))
    if include_reference:
        pols.append(CategoryPriorTS())
    if include_popularity:
        pols.append(PopularityPolicy())
    return pols
