"""Ranking metrics and confidence intervals.

Conventions (per query; a query is a user's next basket or a held-out item):
- recall@k = |top-k ∩ relevant| / |relevant|
- NDCG@k   = DCG@k / IDCG@k, DCG = Σ_{i<k} rel_i / log2(i + 2), binary relevance,
             IDCG over min(|relevant|, k) hits
- MAP@k    = mean over queries of AP@k = (1 / min(|relevant|, k)) Σ_{i<k} P@(i+1) · rel_i
- coverage = distinct items in any top-k list / catalog size
Queries with no relevant item are skipped by the callers (the metric is undefined).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np


def _hits(ranked: Sequence, relevant: set, k: int) -> np.ndarray:
    return np.fromiter((1.0 if x in relevant else 0.0 for x in list(ranked)[:k]), dtype=np.float64)


def recall_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    rel = set(relevant)
    if not rel:
        raise ValueError("recall@k is undefined without relevant items")
    return float(_hits(ranked, rel, k).sum()) / len(rel)


def ndcg_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    rel = set(relevant)
    if not rel:
        raise ValueError("NDCG@k is undefined without relevant items")
    h = _hits(ranked, rel, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((h * disc[: h.size]).sum())
    idcg = float(disc[: min(len(rel), k)].sum())
    return dcg / idcg


def ap_at_k(ranked: Sequence, relevant: Iterable, k: int) -> float:
    rel = set(relevant)
    if not rel:
        raise ValueError("AP@k is undefined without relevant items")
    h = _hits(ranked, rel, k)
    if h.size == 0:
        return 0.0
    prec = np.cumsum(h) / np.arange(1, h.size + 1)
    return float((prec * h).sum()) / min(len(rel), k)


def map_at_k(rankings: Sequence[Sequence], relevants: Sequence[Iterable], k: int) -> float:
    return float(np.mean([ap_at_k(r, s, k) for r, s in zip(rankings, relevants)]))


def coverage(rankings: Iterable[Sequence], n_catalog: int, k: int | None = None) -> float:
    seen = set()
    for r in rankings:
        seen.update(list(r)[:k] if k else r)
    return len(seen) / n_catalog


def bootstrap_ci(values, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                 stat=np.mean) -> tuple[float, float, float]:
    """(estimate, low, high): percentile bootstrap of stat over resampled values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    if stat is np.mean:
        idx = rng.integers(0, v.size, size=(n_boot, v.size))
        boots = v[idx].mean(axis=1)
    else:
        boots = np.array([stat(v[rng.integers(0, v.size, v.size)]) for _ in range(n_boot)])
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(stat(v)), float(lo), float(hi)


def normal_ci(values, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, low, high) with a normal approximation of the standard error of the mean."""
    from statistics import NormalDist
    v = np.asarray(values, dtype=np.float64)
    m = float(v.mean())
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return m, m - z * se, m + z * se


def fmt_ci(est: float, lo: float, hi: float, scale: float = 1.0, digits: int = 3) -> str:
    if math.isnan(est):
        return "n/a"
    return f"{est * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"
