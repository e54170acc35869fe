"""Speed side by side, in one process: libsako vs the original numpy path vs MABWiser's
Thompson sampling vs Vowpal Wabbit's cb_explore_adf, at several catalog sizes.

Each engine starts from the same warm state (every item's impressions and clicks drawn
once from one seed; the same events are given to every engine) and is then timed on:
- recommend: one request for the top k = 20 of the whole catalog (median of R calls);
- update: one batch of the 20 events a request produces (20 impressions, 1 click),
  median per call.
Medians over repeated calls; ratios are peer / libsako (> 1: libsako is faster).

The original numpy path is the original service's per-request work without MySQL: a new
numpy Generator, Beta(a, b) for every product, a full argsort, the top 1000 kept.
MABWiser ranks by its `predict_expectations()` (one Thompson draw per arm), the only way
it exposes more than one arm. Vowpal Wabbit scores every action of an ADF example built
from cached per-action feature strings (action id and category); its update learns from
the shown slate (20 actions, one labelled).
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from . import sako_adapter
from .data import AISLE_ID_BASE

K = 20


def _warm_state(n: int, seed: int):
    rng = np.random.default_rng([seed, 41])
    aisle = rng.integers(0, 134, n)
    imps = rng.poisson(5.0, n)
    ctr = rng.beta(1.0, 30.0, n)
    clicks = rng.binomial(imps, ctr)
    return aisle, imps, clicks


def _median_us(fn, reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn()
        ts.append(time.perf_counter_ns() - t0)
    return statistics.median(ts) / 1000.0


def _batches(n: int, reps: int, seed: int):
    rng = np.random.default_rng([seed, 42])
    out = []
    for _ in range(reps + 5):
        items = rng.choice(n, K, replace=False)
        out.append((items, int(items[0])))
    return out


class _Cycle:
    def __init__(self, xs):
        self.xs, self.i = xs, 0

    def next(self):
        x = self.xs[self.i % len(self.xs)]
        self.i += 1
        return x


def bench_original(n, seed, reps):
    aisle, imps, clicks = _warm_state(n, seed)
    a = 1.0 + 0.7 * clicks
    b = 1.0 + (imps - clicks)

    def rec():
        g = np.random.default_rng()                 # a new Generator per request, as the original
        x = g.beta(a, b)
        return np.argsort(-x)[:1000][:K]

    cyc = _Cycle(_batches(n, reps, seed))

    def upd():
        items, clicked = cyc.next()
        np.add.at(b, items, 1.0)
        b[clicked] -= 1.0
        a[clicked] += 0.7

    return _median_us(rec, reps), _median_us(upd, reps)


def bench_sako(n, seed, reps, prior="category"):
    aisle, imps, clicks = _warm_state(n, seed)
    eng = sako_adapter.open_engine(prior=prior, seed=seed + 1)
    sako_adapter.upsert_tree(eng, np.arange(134) % 21)
    sako_adapter.upsert_items(eng, np.arange(n), aisle)
    ids = np.repeat(np.arange(n) + 1, imps)
    cids = np.repeat(np.arange(n) + 1, clicks)
    users = np.ones(ids.size + cids.size, dtype=np.int64)
    items = np.concatenate([ids, cids])
    types = np.concatenate([np.zeros(ids.size, np.int32), np.ones(cids.size, np.int32)])
    times = np.full(items.size, 1_700_000_000_000, dtype=np.int64)
    for s in range(0, items.size, 500_000):
        eng.update_arrays(users[s:s + 500_000], items[s:s + 500_000], types[s:s + 500_000], times[s:s + 500_000])
    eng.retrain()

    def rec():
        return eng.recommend_arrays(7, K)

    cyc = _Cycle(_batches(n, reps, seed))
    u20 = np.full(K + 1, 7, dtype=np.int64)
    t20 = np.r_[np.zeros(K, np.int32), np.ones(1, np.int32)]
    tm = np.full(K + 1, 1_700_000_100_000, dtype=np.int64)

    def upd():
        it, clicked = cyc.next()
        eng.update_arrays(u20, np.r_[it + 1, clicked + 1], t20, tm)

    r = _median_us(rec, reps), _median_us(upd, reps)
    eng.close()
    return r


def bench_mabwiser(n, seed, reps):
    from mabwiser.mab import MAB, LearningPolicy
    aisle, imps, clicks = _warm_state(n, seed)
    arms = list(range(n))
    mab = MAB(arms=arms, learning_policy=LearningPolicy.ThompsonSampling(), seed=seed)
    dec = np.repeat(np.arange(n), imps)
    rew = np.zeros(dec.size, dtype=np.int64)
    # the first `clicks` impressions of each item are its clicks
    starts = np.r_[0, np.cumsum(imps)[:-1]]
    for i in np.flatnonzero(clicks):
        rew[starts[i]:starts[i] + clicks[i]] = 1
    # arms never shown still need to be known: fit on a seed event of each, reward 0
    dec = np.r_[dec, np.arange(n)]
    rew = np.r_[rew, np.zeros(n, dtype=np.int64)]
    mab.fit(dec, rew)

    def rec():
        e = mab.predict_expectations()
        keys = np.fromiter(e.keys(), dtype=np.int64, count=len(e))
        vals = np.fromiter(e.values(), dtype=np.float64, count=len(e))
        return keys[np.argsort(-vals)[:K]]

    cyc = _Cycle(_batches(n, reps, seed))

    def upd():
        items, clicked = cyc.next()
        mab.partial_fit(items.tolist(), [1 if i == clicked else 0 for i in items])

    return _median_us(rec, reps), _median_us(upd, reps)


def bench_vw(n, seed, reps):
    import vowpalwabbit
    aisle, imps, clicks = _warm_state(n, seed)
    ws = vowpalwabbit.Workspace("--cb_explore_adf --epsilon 0.05 --quiet -q sa --random_seed %d" % seed)
    lines = [f"|a id{i} c{aisle[i]}" for i in range(n)]
    shared = "shared |s u7"
    # warm: learn once from a sample of the warm clicks (one labelled action per example)
    rng = np.random.default_rng([seed, 43])
    for i in rng.choice(n, min(n, 2000), replace=False):
        cost = -1.0 if clicks[i] > 0 else 0.0
        ex = [shared] + [f"0:{cost}:0.05 " + lines[i]] + [lines[j] for j in rng.choice(n, 4)]
        ws.learn(ex)

    full = [shared] + lines

    def rec():
        pmf = np.asarray(ws.predict(full), dtype=np.float64)
        return np.argsort(-pmf)[:K]

    cyc = _Cycle(_batches(n, reps, seed))

    def upd():
        items, clicked = cyc.next()
        ex = [shared] + [(f"0:-1:0.05 " if i == clicked else "") + lines[i] for i in items]
        ws.learn(ex)

    r = _median_us(rec, max(3, reps // 4)), _median_us(upd, reps)
    ws.finish()
    return r


PEERS = {
    "mabwiser": ("MABWiser Thompson sampling", "mabwiser", bench_mabwiser),
    "vw": ("Vowpal Wabbit cb_explore_adf", "vowpalwabbit", bench_vw),
}


def run(sizes=(1000, 10000, 50000), seed: int = 0, reps: int = 200, progress_factory=None) -> dict:
    rows, skipped = [], {}
    engines = [("original numpy path", bench_original, {})]
    if sako_adapter.available():
        engines.insert(0, ("libsako (category prior)", bench_sako, {"prior": "category"}))
        engines.insert(1, ("libsako (flat prior)", bench_sako, {"prior": "flat"}))
    else:
        skipped["libsako"] = sako_adapter.why_unavailable()
    for key, (label, module, fn) in PEERS.items():
        try:
            __import__(module)
            engines.append((label, fn, {}))
        except Exception as e:  # noqa: BLE001
            skipped[label] = f"not installed ({type(e).__name__}: {e})"
    bar = progress_factory(total=len(sizes) * len(engines), desc="speed") if progress_factory else None
    for n in sizes:
        for label, fn, kw in engines:
            # fewer repetitions for the slow per-arm Python/ADF paths on big catalogs
            r = reps if n <= 10000 or "libsako" in label else max(5, reps // 40)
            try:
                rec_us, upd_us = fn(n, seed, r, **kw)
                rows.append({"engine": label, "n_items": n, "recommend_us": rec_us, "update_us": upd_us})
            except Exception as e:  # noqa: BLE001 - a failing peer is reported, not fatal
                skipped[f"{label} @ {n}"] = f"failed: {type(e).__name__}: {e}"
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    base = {}
    for row in rows:
        if row["engine"].startswith("libsako (category"):
            base[row["n_items"]] = row
    for row in rows:
        b = base.get(row["n_items"])
        row["rec_ratio"] = row["recommend_us"] / b["recommend_us"] if b else float("nan")
        row["upd_ratio"] = row["update_us"] / b["update_us"] if b else float("nan")
    return {"rows": rows, "skipped": skipped, "k": K}
