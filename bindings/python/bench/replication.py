"""Replicated mode's benchmark (issue 11; docs/benchmarks-python.md, "Replication"):

1. ingest: events/s of the single-process durable path (Engine.update_arrays,
   durability full) against ingest through a three-node JetStream cluster into one
   and into three replicas (durability normal: the stream is the durable record; the
   publisher's own engine is one of them, the others are processes), batches of 100
   and of 10,000 events, the old publisher (each publish waits for its
   acknowledgement) and the pipelined one alternated; acknowledged and "applied on
   every replica" side by side, with the CPU time per event of each process group;
2. lag: from the publisher's acknowledgement to the entry applied on each replica,
   at 10,000 events/s (batches of 100 every 10 ms);
3. recommendations/s (wrk, POST /v1/recommendations as `make bench-python`) of
   `sako serve --replicate ... --workers 2` against `--workers 1`, runs alternated.

    .venv/bin/python bindings/python/bench/replication.py [--quick] [--ingest-only]
        [--followers-only] [--apply-cost]

Loopback only; medians of --repeats runs; the load average is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Dict, List

import numpy as np

import sako
from sako.demo import make_catalog, simulate_events
from sako.replication import Replica
from sako.replication.natsserver import Cluster

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1_700_000_000_000


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def events(n: int, rng: np.random.Generator, n_items: int, start: int):
    users = rng.integers(1, 5000, n)
    items = rng.integers(1, n_items + 1, n)
    types = rng.choice([0, 0, 0, 0, 1, 2, 3], n).astype(np.int32)
    times = T0 + start + np.arange(n)
    return users, items, types, times


def single_rate(folder: str, batch: int, total: int, n_items: int) -> float:
    path = os.path.join(folder, f"single-{batch}-{time.time_ns()}.db")
    with sako.Engine(path, durability="full") as e:
        e.upsert_categories([(1, 0, "all")])
        e.upsert_items_arrays(np.arange(1, n_items + 1), np.ones(n_items, np.int64))
        rng = np.random.default_rng(batch)
        data = [events(batch, rng, n_items, k * batch) for k in range(total // batch)]
        t, c = time.perf_counter(), time.process_time()
        for u, i, ty, tm in data:
            e.update_arrays(u, i, ty, tm)
        return total / (time.perf_counter() - t), (time.process_time() - c) / total * 1e6


def apply_cost(folder: str, batch: int, total: int, durability: str, n_items: int) -> float:
    """CPU-us per event of one engine applying events entries as a replica does
    (``codec.apply`` at increasing positions; no NATS)."""
    from sako.replication import codec

    path = os.path.join(folder, f"apply-{batch}-{durability}-{time.time_ns()}.db")
    with sako.Engine(path, durability=durability) as e:
        e.upsert_categories_at(1, [1], [0], ["all"])
        e.upsert_items_at(2, np.arange(1, n_items + 1), np.ones(n_items, np.int64),
                          np.ones(n_items, np.int32), np.full(n_items, T0))
        rng = np.random.default_rng(batch)
        entries = [codec.encode_events(*events(batch, rng, n_items, k * batch))
                   for k in range(total // batch)]
        c = time.process_time()
        for position, data in enumerate(entries, start=3):
            codec.apply(e, position, codec.EVENTS, data)
        return (time.process_time() - c) / total * 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (its threads included)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def status(path: str) -> int:
    try:
        return int(open(path).read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


class Replicas:
    """Replica processes (three unless told) following the stream."""

    def __init__(self, folder: str, urls: List[str], tag: str, apply_log: bool = False,
                 n: int = 3) -> None:
        self.status = [os.path.join(folder, f"{tag}-r{i}.status") for i in range(n)]
        self.logs = [os.path.join(folder, f"{tag}-r{i}.applied") for i in range(n)]
        # normal: in replicated mode the stream is the durable record (a replica's file
        # that loses its last batches on power loss loses their position with them and
        # reads them again); see docs/operations.md, "Replication"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
               "SAKO_DURABILITY": os.environ.get("SAKO_REPLICA_DURABILITY", "normal")}
        self.procs = []
        for i in range(n):
            e = dict(env)
            if apply_log:
                e["SAKO_APPLY_LOG"] = self.logs[i]
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "sako.replication.follow",
                 os.path.join(folder, f"{tag}-r{i}.db"), ",".join(urls), self.status[i]], env=e))

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def wait(self, seq: int, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while min((status(s) for s in self.status), default=seq) < seq:
            if time.monotonic() > deadline:
                raise TimeoutError([status(s) for s in self.status])
            time.sleep(0.002)
        return time.perf_counter()

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(60)


def replicated_rate(pub: Replica, reps: Replicas, batch: int, total: int, n_items: int,
                    publishers: int, window: int, nats_pids: List[int]) -> Dict[str, float]:
    """``publishers`` threads; with ``window`` > 1 each publishes its batches pipelined
    (``publish_events_many``: that many acknowledgements awaited at once), else one
    at a time (``publish_events``: each waits for its acknowledgement)."""
    rng = np.random.default_rng(batch + 7)
    data = [events(batch, rng, n_items, 10**9 + k * batch) for k in range(total // batch)]
    seqs: List[int] = []
    lock = threading.Lock()

    def run(part):
        if window > 1:
            got = pub.publish_events_many(part, window=window)
        else:
            got = [pub.publish_events(u, i, ty, tm) for u, i, ty, tm in part]
        with lock:
            seqs.extend(got)

    parts = [data[k::publishers] for k in range(publishers)]
    c_pub, c_reps = time.process_time(), reps.cpu()
    c_nats = sum(cpu_seconds(p) for p in nats_pids)
    t = time.perf_counter()
    threads = [threading.Thread(target=run, args=(p,)) for p in parts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t_ack = time.perf_counter()
    pub.wait_applied(max(seqs), 600)  # the publisher's own replica, when it is one
    t_all = reps.wait(max(seqs))
    us = 1e6 / total
    return {"acked": total / (t_ack - t), "applied": total / (t_all - t),
            "cpu_us_publisher": (time.process_time() - c_pub) * us,
            "cpu_us_followers": (reps.cpu() - c_reps) * us,
            "cpu_us_nats": (sum(cpu_seconds(p) for p in nats_pids) - c_nats) * us}


def lag(pub: Replica, reps: Replicas, seconds: float, n_items: int,
        threads: int = 4) -> Dict[str, float]:
    """10,000 events/s: `threads` publishers, each a batch of 100 every
    threads x 10 ms (a publish waits for its acknowledgement)."""
    acked: Dict[int, int] = {}
    lock = threading.Lock()
    counts = [0] * threads
    start = time.perf_counter()

    def run(c: int) -> None:
        rng = np.random.default_rng(99 + c)
        k = 0
        while time.perf_counter() - start < seconds:
            due = start + (k * threads + c) * 0.010
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            u, i, ty, tm = events(100, rng, n_items, 2 * 10**9 + (k * threads + c) * 100)
            seq = pub.publish_events(u, i, ty, tm)
            t = time.time_ns()
            with lock:
                acked[seq] = t
            k += 1
        counts[c] = k

    ths = [threading.Thread(target=run, args=(c,)) for c in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    rate = sum(counts) * 100 / (time.perf_counter() - start)
    reps.wait(max(acked))
    time.sleep(0.5)
    reps.stop()
    lags = []
    for path in reps.logs:
        for line in open(path):
            s, t = map(int, line.split())
            if s in acked:
                lags.append(max(0, t - acked[s]) / 1e6)
    lags.sort()
    return {"rate": rate, "n": len(lags), "p50_ms": lags[len(lags) // 2],
            "p99_ms": lags[int(len(lags) * 0.99)], "max_ms": lags[-1]}


def wrk(url: str, duration: int, connections: int) -> Dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s",
           os.path.join(HERE, "wrk_recommend.lua"), url, "--", "bench", "20"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    r = json.loads(re.search(r"WRKJSON (\{.*\})", out).group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def serve(folder: str, urls: List[str], workers: int, port: int) -> subprocess.Popen:
    env = {**os.environ, "SAKO_CLIENT_KEYS": "bench", "SAKO_ADMIN_KEYS": "admin"}
    return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "sako"), "serve",
                             "--replicate", ",".join(urls), "--workers", str(workers),
                             "--port", str(port), "--log-level", "warning",
                             "--db", os.path.join(folder, f"w{workers}", "sako.db")], env=env,
                            start_new_session=True)


def ready(port: int, workers: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    seen = set()
    while time.monotonic() < deadline:
        try:
            body = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2))
            r = body["replication"]
            if r["connected"] and r["lag"] == 0 and r["applied"] > 0:
                seen.add(r["applied"])
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if len(seen) >= 1:
                    return
        except Exception:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"port {port} not ready")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--ingest-only", action="store_true", help="stop after the ingest rows")
    ap.add_argument("--apply-cost", action="store_true",
                    help="only the CPU per event of one engine applying entries, durability "
                         "normal against off (the local commit's share), alternated")
    ap.add_argument("--followers-only", action="store_true",
                    help="ingest as in the 0.5.0 figures: the publisher's engine in memory, beside N "
                         "follower processes (default: the publisher's engine is one of the "
                         "N replicas, as a service worker's is)")
    a = ap.parse_args()
    if a.quick:
        a.repeats, a.duration = 1, 5
    n_items = 3000
    out: Dict[str, object] = {"load_before": load()}
    with tempfile.TemporaryDirectory(prefix="sako-repl-bench-") as folder:
        if a.apply_cost:
            for batch, total in ((100, 60_000), (1_000, 100_000), (10_000, 200_000)):
                got: Dict[str, List[float]] = {"normal": [], "off": []}
                for _ in range(a.repeats):
                    for durability in got:
                        got[durability].append(apply_cost(folder, batch, total, durability,
                                                          n_items))
                out[f"apply_cost_{batch}"] = got
                print(f"one engine applying entries of {batch}: CPU-us/event normal "
                      f"{[round(x, 2) for x in got['normal']]}, off "
                      f"{[round(x, 2) for x in got['off']]} (load {load()})", flush=True)
            print("BENCHJSON " + json.dumps(out))
            return 0
        for batch, total in ((100, 20_000), (10_000, 200_000)):
            both = [single_rate(folder, batch, total, n_items) for _ in range(a.repeats)]
            runs = [r for r, _ in both]
            out[f"single_{batch}"] = statistics.median(runs)
            out[f"single_{batch}_cpu_us"] = statistics.median(c for _, c in both)
            print(f"single process, durable, batches of {batch}: {statistics.median(runs):,.0f} "
                  f"events/s, {out[f'single_{batch}_cpu_us']:.2f} CPU-us/event "
                  f"(runs {[round(r) for r in runs]}; load {load()})", flush=True)
        with Cluster(os.path.join(folder, "nats"), 3) as cluster:
            nats_pids = [p.pid for p in cluster.procs if p is not None]
            pub_db = None if a.followers_only else os.path.join(folder, "publisher.db")
            with sako.Engine(pub_db, durability="normal") as pe, \
                    Replica(pe, cluster.urls, retrain_check_seconds=0) as pub:
                assert pub._ready.wait(30)
                pub.wait_applied(pub.publish_categories([1], [0], ["all"]), 30)
                pub.wait_applied(pub.publish_items(np.arange(1, n_items + 1),
                                                   np.ones(n_items, np.int64)), 30)
                # (replicas, batch, total, publisher threads, window): window 1 is the
                # old publisher (each publish waits for its acknowledgement)
                setups = [(1, 100, 20_000, 4, 1), (1, 100, 20_000, 1, 32),
                          (1, 10_000, 200_000, 2, 1), (1, 10_000, 200_000, 1, 4),
                          (3, 100, 20_000, 4, 1), (3, 100, 20_000, 1, 32),
                          (3, 10_000, 200_000, 2, 1), (3, 10_000, 200_000, 1, 4),
                          (3, 10_000, 200_000, 2, 2)]
                for n_reps in (1, 3):
                    reps = Replicas(folder, cluster.urls, f"ingest{n_reps}",
                                    n=n_reps if a.followers_only else n_reps - 1)
                    reps.wait(pub.refresh_last_seq(), 300)
                    mine = [x for x in setups if x[0] == n_reps]
                    runs_of: Dict[tuple, list] = {x: [] for x in mine}
                    for _ in range(a.repeats):  # alternated: A B A B ..., load drifts
                        for x in mine:
                            runs_of[x].append(replicated_rate(pub, reps, x[1], x[2], n_items,
                                                              x[3], x[4], nats_pids))
                    for x in mine:
                        _, batch, total, publishers, window = x
                        runs = runs_of[x]
                        row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                        row["acked_ratio"] = row["acked"] / out[f"single_{batch}"]
                        row["applied_ratio"] = row["applied"] / out[f"single_{batch}"]
                        out[f"replicated_{n_reps}_{batch}_{publishers}x{window}"] = row
                        how = (f"{publishers} publisher(s), " +
                               (f"pipelined, window {window}" if window > 1 else "one at a time"))
                        print(f"through the stream, {n_reps} replica(s), batches of {batch} "
                              f"({how}): acknowledged {row['acked']:,.0f} events/s "
                              f"({row['acked_ratio']:.2f}x), applied on all "
                              f"{row['applied']:,.0f} events/s ({row['applied_ratio']:.2f}x); "
                              f"CPU-us/event: publisher process {row['cpu_us_publisher']:.2f}, "
                              f"followers {row['cpu_us_followers']:.2f}, NATS "
                              f"{row['cpu_us_nats']:.2f} (load {load()})", flush=True)
                    reps.stop()
            if a.ingest_only:
                print("BENCHJSON " + json.dumps(out))
                return 0
            with sako.Engine(None) as pe, Replica(pe, cluster.urls, retrain_check_seconds=0) as pub:
                assert pub._ready.wait(30)
                pub.wait_applied(pub.refresh_last_seq(), 600)
                reps = Replicas(folder, cluster.urls, "lag", apply_log=True)
                reps.wait(pub.refresh_last_seq(), 600)
                out["lag"] = lag(pub, reps, 10 if not a.quick else 5, n_items)
                print(f"lag ack -> applied on each replica at {out['lag']['rate']:,.0f} events/s: "
                      f"p50 {out['lag']['p50_ms']:.1f} ms, p99 {out['lag']['p99_ms']:.1f} ms, "
                      f"max {out['lag']['max_ms']:.1f} ms ({out['lag']['n']} samples; "
                      f"load {load()})", flush=True)
                # a catalog and a history for the recommendation runs
                cat = make_catalog(3000, 42)
                pub.publish_categories([c[0] for c in cat.categories],
                                       [c[1] or 0 for c in cat.categories],
                                       [c[2] for c in cat.categories])
                pub.wait_applied(pub.refresh_last_seq(), 30)
                pub.publish_items([i for i, _ in cat.items], [c for _, c in cat.items])
                u, i, t, tm = simulate_events(cat, n_events=20000, seed=42)
                pub.publish_events(u, i, t, tm)
            ports = {1: 18601, 2: 18602}
            servers = {w: serve(folder, cluster.urls, w, ports[w]) for w in (1, 2)}
            try:
                for w in (1, 2):
                    ready(ports[w], w)
                for w in (1, 2):  # warm-up
                    wrk(f"http://127.0.0.1:{ports[w]}/v1/recommendations", 2, a.connections)
                rec = {1: [], 2: []}
                for _ in range(a.repeats):
                    for w in (1, 2):
                        rec[w].append(wrk(f"http://127.0.0.1:{ports[w]}/v1/recommendations",
                                          a.duration, a.connections))
                for w in (1, 2):
                    rps = statistics.median(r["rps"] for r in rec[w])
                    p99 = statistics.median(r["p99_us"] for r in rec[w]) / 1000
                    out[f"workers_{w}"] = {"rps": rps, "p99_ms": p99,
                                           "errors": sum(r["errors"] + r["status_errors"] for r in rec[w])}
                    print(f"--workers {w}: {rps:,.0f} recommendations/s, p99 {p99:.1f} ms "
                          f"(runs {[round(r['rps']) for r in rec[w]]}; load {load()})", flush=True)
                print(f"ratio 2 workers / 1: {out['workers_2']['rps'] / out['workers_1']['rps']:.2f}")
            finally:
                for p in servers.values():
                    os.killpg(p.pid, signal.SIGTERM)
                for p in servers.values():
                    p.wait(60)
    out["load_after"] = load()
    print("BENCHJSON " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
