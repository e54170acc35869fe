"""What the versions' gate adds to a retrain: the same engine retrained alternately with
the gate (a challenger fitted at the holdout's start, both models scored on the newest
5 % of the log, capped at 50,000 events) and without it (gate_holdout_fraction = 0:
finiteness only), REPS times each, in one process; medians and their ratio.

World: N_ITEMS products in 100 categories, N_EVENTS events in 1000-event batches
(impressions and clicks answering recommendations, purchases in orders of 5), on a
file database (durability off). Every retrain passes (margin 1), so each run does the
same work. Run: .venv/bin/python bindings/python/bench/gate_cost.py [N_ITEMS N_EVENTS REPS]
(docs/benchmarks.md, "The versions' gate")."""
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import sako


def main(n_items=50_000, n_events=1_000_000, reps=3):
    rng = np.random.default_rng(1)
    path = os.path.join(tempfile.mkdtemp(), "gate.db")
    e = sako.open(path, seed=1, durability="off")
    e.upsert_categories([(c, 0, f"c{c}") for c in range(1, 101)])
    e.upsert_items([(i, 1 + i % 100) for i in range(1, n_items + 1)])
    users = rng.integers(1, 20_000, n_events)
    items = (rng.zipf(1.3, n_events) % n_items) + 1
    u = rng.random(n_events)
    types = np.where(u < 0.8, 0, np.where(u < 0.9, 1, 3))
    t0 = 1_700_000_000_000
    times = t0 + np.arange(n_events) * 1000
    recs = np.where(types != 3, 1 + np.arange(n_events) // 20, 0)
    orders = np.where(types == 3, 1 + np.arange(n_events) // 5, 0)
    for i in range(0, n_events, 1000):
        s = slice(i, i + 1000)
        e.update_arrays(users[s], items[s], types[s], times[s], recs[s], orders[s])
    e.policy = {"gate_margin": 1.0, "gate_holdout_fraction": 0.05, "gate_holdout_events": 50_000}
    e.retrain()  # version 1: the champion
    on, off = [], []
    for _ in range(reps):
        for frac, out in ((0.05, on), (0.0, off)):
            e.policy = {"gate_holdout_fraction": frac}
            t = time.perf_counter()
            e.retrain()
            out.append(time.perf_counter() - t)
            v = e.retrain_result()
            assert v.status == "active", v.verdict
            if frac:
                last = v
    e.close()
    mon, moff = statistics.median(on), statistics.median(off)
    print(f"{n_items} items, {n_events} events: retrain with gate {mon:.3f} s, without "
          f"{moff:.3f} s (medians of {reps}), ratio {mon / moff:.2f}; "
          f"holdout {last.holdout_events} events, {last.holdout_baskets} baskets; "
          f"runs on {[round(x, 3) for x in on]} off {[round(x, 3) for x in off]}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
