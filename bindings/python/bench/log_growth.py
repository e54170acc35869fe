"""The database file under steady traffic, with and without log compaction
(docs/operations.md, "Log compaction"; issue 9 item 5).

Two files get the same traffic: 5,000 items in 50 categories, 20,000 users, 5 %
clicks and 2 % purchases in orders, 1000-event batches, an event every 1.3 s of
event time (2M events are 30 days). Every M events each file is retrained (as the
retrain policy would); the second is then compacted with a retention window of 7
days and at least 100,000 events. The file size is recorded after every step.

Run: .venv/bin/python bindings/python/bench/log_growth.py [--events 2000000]
     [--every 200000] [--out docs/figures/log_growth.png]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import sako


def size(path: str) -> int:
    """Bytes on disk: the file and its -wal."""
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--every", type=int, default=200_000)
    ap.add_argument("--keep-days", type=float, default=7.0)
    ap.add_argument("--keep-events", type=int, default=100_000)
    ap.add_argument("--out", default=None, help="PNG of file size against events (matplotlib)")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n, batch, n_items = args.events, 1000, 5000
    users = rng.integers(1, 20_001, n)
    items = rng.integers(1, n_items + 1, n)
    r = rng.random(n)
    types = np.where(r < 0.02, 3, np.where(r < 0.07, 1, 0)).astype(np.int32)
    times = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 1300
    orders = np.where(types == 3, users * 1000 + np.arange(n) // 5000, 0)
    tmp = tempfile.mkdtemp(prefix="sako-growth-")
    paths = {"plain": os.path.join(tmp, "plain.db"), "compacted": os.path.join(tmp, "compacted.db")}
    engines = {}
    for name, path in paths.items():
        e = sako.open(path, seed=1, durability="normal", decay_half_life_days=14.0)
        e.upsert_categories([(c, 0, f"c{c}") for c in range(1, 51)])
        e.upsert_items([(i, 1 + i % 50) for i in range(1, n_items + 1)])
        engines[name] = e
    rows = []
    compact_ms = []
    for start in range(0, n, args.every):
        end = min(n, start + args.every)
        for name, e in engines.items():
            for i in range(start, end, batch):
                j = min(end, i + batch)
                e.update_arrays(users[i:j], items[i:j], types[i:j], times[i:j], order_ids=orders[i:j])
            e.retrain()
        t0 = time.perf_counter()
        rep = engines["compacted"].compact(keep_days=args.keep_days, keep_events=args.keep_events)
        compact_ms.append((time.perf_counter() - t0) * 1000)
        log = engines["compacted"].log_stats()
        rows.append((end, size(paths["plain"]), size(paths["compacted"]), log.n_events,
                     log.checkpoint_bytes, log.free_bytes, rep.events_removed))
        print(f"{end:>9,} events: plain {rows[-1][1] / 1e6:7.1f} MB, compacted "
              f"{rows[-1][2] / 1e6:7.1f} MB (log {log.n_events:,} events, checkpoint "
              f"{log.checkpoint_bytes / 1e6:.1f} MB, free {log.free_bytes / 1e6:.1f} MB; "
              f"compaction removed {rep.events_removed:,} events in {compact_ms[-1]:.0f} ms)",
              flush=True)
    def model(e, i):  # added_at is each file's own wall clock at the upsert
        x = e.item(i)
        return (x.alpha, x.beta, x.prior_mean, x.impressions, x.clicks, x.purchases)

    same = all(model(engines["plain"], i) == model(engines["compacted"], i)
               for i in range(1, n_items + 1))
    print(f"posteriors equal (every item, bit for bit): {same}; compaction median "
          f"{np.median(compact_ms):.0f} ms, max {max(compact_ms):.0f} ms")
    for e in engines.values():
        e.close()
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        x = [r[0] / 1e6 for r in rows]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(x, [r[1] / 1e6 for r in rows], marker="o", label="no compaction")
        ax.plot(x, [r[2] / 1e6 for r in rows], marker="o",
                label=f"compact every {args.every // 1000}k events")
        ax.set_xlabel("events sent (millions)")
        ax.set_ylabel("database file + WAL (MB)")
        ax.set_title(f"{n_items:,} items, retention {args.keep_days:g} days / "
                     f"{args.keep_events // 1000}k events")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out, dpi=110)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
