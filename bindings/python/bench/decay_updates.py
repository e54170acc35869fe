"""Update throughput with decay off and on: 50k items in 50 categories, 1M events
(5 % clicks) over 60 days of event time, 1000-event batches, in memory, durability off.
Run: .venv/bin/python bindings/python/bench/decay_updates.py (docs/benchmarks.md, "Decay")."""
import time

import numpy as np
import sako


def run(h, n_items=50_000, n_events=1_000_000, batch=1000, days=60):
    rng = np.random.default_rng(1)
    e = sako.open(None, seed=1, durability="off", personal=0, decay_half_life_days=h)
    e.upsert_categories([(c, 0, f"c{c}") for c in range(1, 51)])
    e.upsert_items([(i, 1 + i % 50) for i in range(1, n_items + 1)])
    users = rng.integers(1, 10_000, n_events)
    items = rng.integers(1, n_items + 1, n_events)
    types = np.where(rng.random(n_events) < 0.05, 1, 0)
    t0 = 1_700_000_000_000
    times = t0 + (np.arange(n_events) * (days * 86_400_000 // n_events))
    s = time.perf_counter()
    for i in range(0, n_events, batch):
        e.update_arrays(users[i:i+batch], items[i:i+batch], types[i:i+batch], times[i:i+batch])
    el = time.perf_counter() - s
    e.close()
    return el


for h in [0.0, 30.0, 7.0, 1.0]:
    el = run(h)
    print(f"half-life {h:5.1f} d: 1M events in 1000-event batches: {el:6.2f} s = {1e6/el/1e3:6.0f} k events/s", flush=True)
