"""Threads and bulk numpy input."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import sako


@pytest.fixture
def big():
    with sako.open(None, seed=5, prior_refresh_events=0) as e:
        e.upsert_categories([(1, 0, "All"), (2, 1, "Half")])
        n = 20_000
        e.upsert_items_arrays(np.arange(1, n + 1), np.where(np.arange(n) % 2 == 0, 2, 1))
        yield e


def test_threads_recommend_while_updating(big):
    errors = []
    stop = threading.Event()
    counts = [0] * 4

    def reader(slot):
        try:
            while not stop.is_set():
                ids, scores = big.recommend_arrays(slot + 1, k=20)
                assert len(ids) == 20 and np.all(np.diff(scores) <= 0)
                recs = big.recommend(slot + 1, k=5, category=2)
                assert all(r.item_id % 2 == 1 for r in recs)
                counts[slot] += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def writer():
        rs = np.random.default_rng(1)
        try:
            for _ in range(40):
                n = 2000
                big.update_arrays(rs.integers(1, 500, n), rs.integers(1, 20_001, n),
                                  rs.integers(0, 4, n))
            big.retrain()
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    w = threading.Thread(target=writer)
    for t in threads:
        t.start()
    w.start()
    w.join(60)
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all(c > 0 for c in counts[:3])
    assert big.stats().n_events == 80_000


def test_gil_released_during_c_calls(big):
    """While one thread is inside a long C call (a big update), the other thread keeps
    running Python code."""
    n = 1_000_000
    rs = np.random.default_rng(2)
    users, items, types = rs.integers(1, 10_000, n), rs.integers(1, 20_001, n), rs.integers(0, 4, n)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(1)
            done.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        big.update_arrays(users, items, types)
    finally:
        done.set()
        t.join()
    assert big.stats().n_events == n
    assert len(ticks) > 3


def test_close_waits_for_calls_in_flight():
    e = sako.open(None, seed=1)
    e.upsert_items_arrays(np.arange(1, 50_001))
    errs = []

    def spam():
        for _ in range(200):
            try:
                e.recommend_arrays(1, k=10)
            except sako.Misuse as x:
                assert "closed" in str(x)
                return
            except Exception as x:  # pragma: no cover
                errs.append(x)
                return

    ts = [threading.Thread(target=spam) for _ in range(4)]
    for t in ts:
        t.start()
    e.close()
    for t in ts:
        t.join()
    assert not errs


def test_million_events_from_numpy(big):
    n = 1_000_000
    rs = np.random.default_rng(3)
    u = rs.integers(1, 100_000, n)
    i = rs.integers(1, 20_001, n).astype(np.int32)  # converted once, no Python loop
    t = rs.integers(0, 4, n).astype(np.int8)
    tm = np.full(n, 1_700_000_000_000, dtype=np.int64)
    assert big.update_arrays(u, i, t, tm) == n
    s = big.stats()
    assert s.n_events == n
    assert s.n_users == len(np.unique(u))


def test_batch_over_limit_is_range_error(big):
    n = sako.MAX_BATCH + 1
    z = np.ones(n, dtype=np.int64)
    with pytest.raises(sako.RangeError):
        big.update_arrays(z, z, np.zeros(n, np.int32))
    assert big.stats().n_events == 0
