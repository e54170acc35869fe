"""Benchmarks of the Python binding and the HTTP service; writes docs/benchmarks-python.md.

1. Binding overhead: the same recommend through the bare SWIG call (sako._testing) and
   through the Python layer (recommend_arrays, recommend), plus an empty call through
   the same SWIG + GIL-release path, medians of repeated runs. The C call alone is in
   docs/benchmarks.md (make bench).
2. Service under a real HTTP load generator (wrk, loopback only, bounded time): sako
   serve (one uvicorn worker) for recommendations and event batches, and in the same
   run the original system's serving design re-created as the baseline
   (bench/baseline_app.py) at the same catalog size.

Run with bench/run.sh (or: python bench/run_bench.py --help). Not a test: no asserts.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

import sako
from sako._testing import empty_call, raw_recommend
from sako.demo import make_catalog, simulate_events

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
KEY = "bench-client-key"
LOAD_START = os.getloadavg()[0]


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ binding overhead
def build_engine(n_items: int, n_events: int, path: Optional[str] = None, seed: int = 1) -> sako.Engine:
    cat = make_catalog(n_items, seed=seed)
    e = sako.open(path, seed=seed, durability="normal")
    e.upsert_categories(cat.categories)
    e.upsert_items_arrays([i for i, _ in cat.items], [c for _, c in cat.items])
    if n_events:
        u, i, t, tm = simulate_events(cat, n_users=2000, n_events=n_events, seed=seed)
        for s in range(0, n_events, 100_000):
            e.update_arrays(u[s:s + 100_000], i[s:s + 100_000], t[s:s + 100_000], tm[s:s + 100_000])
    return e


def per_call_ns(fn, n: int) -> List[int]:
    """Duration of each of n calls, ns (the timer's own cost is measured separately)."""
    pc = time.perf_counter_ns
    out = []
    for _ in range(n):
        t = pc()
        fn()
        out.append(pc() - t)
    return out


def binding_overhead(n_items: int, repeats: int, ks=(1, 20), calls: int = 5000) -> List[Dict[str, float]]:
    """Per-call medians: the bare SWIG call (sako._testing.raw_recommend) vs the same
    query through Engine.recommend_arrays / Engine.recommend, interleaved so cache state
    and machine load are alike; medians over `repeats` rounds of `calls` calls."""
    e = build_engine(n_items, n_events=2 * n_items)
    rows = []
    timer = statistics.median(per_call_ns(lambda: None, calls))
    noop_call = empty_call(e)
    for k in ks:
        raw_call = raw_recommend(e, 7, k)
        raw, arr, lst, noop = [], [], [], []
        for _ in range(repeats):
            raw.append(statistics.median(per_call_ns(raw_call, calls)) - timer)
            arr.append(statistics.median(per_call_ns(lambda: e.recommend_arrays(7, k), calls)) - timer)
            lst.append(statistics.median(per_call_ns(lambda: e.recommend(7, k), calls)) - timer)
            noop.append(statistics.median(per_call_ns(noop_call, calls)) - timer)
        row = {"n_items": n_items, "k": k, "calls": calls, "repeats": repeats,
               "raw_us": statistics.median(raw) / 1e3,
               "arrays_us": statistics.median(arr) / 1e3,
               "list_us": statistics.median(lst) / 1e3,
               "noop_us": statistics.median(noop) / 1e3}
        row["arrays_overhead_us"] = row["arrays_us"] - row["raw_us"]
        row["list_overhead_us"] = row["list_us"] - row["raw_us"]
        rows.append(row)
        log(f"binding n={n_items} k={k}: raw {row['raw_us']:.2f} us, arrays {row['arrays_us']:.2f} us, "
            f"list {row['list_us']:.2f} us, noop {row['noop_us']:.2f} us")
    e.close()
    return rows


def numpy_path(n_items: int = 50_000, runs: int = 60) -> Dict[str, float]:
    """The baseline's numpy part alone, in-process (no SQL read, no HTTP): a new
    Generator, Beta draws for every product, full argsort, top 20 -- against sako's
    recommend (k=20) on an engine of the same size."""
    rs = np.random.default_rng(0)
    a = 1 + rs.gamma(1.0, 2.0, n_items)
    b = 1 + rs.gamma(1.0, 20.0, n_items)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        rng = np.random.default_rng()
        d = rng.beta(a, b)
        np.argsort(-d)[:20]
        ts.append(time.perf_counter_ns() - t0)
    e = build_engine(n_items, n_events=2 * n_items)
    ss = per_call_ns(lambda: e.recommend(7, 20), 2000)
    e.close()
    out = {"n_items": n_items, "numpy_ms": statistics.median(ts) / 1e6,
           "sako_us": statistics.median(ss) / 1e3}
    log(f"numpy path {out['numpy_ms']:.2f} ms vs sako recommend {out['sako_us']:.1f} us")
    return out


def bulk_update(repeats: int) -> Dict[str, float]:
    n = 1_000_000
    e = build_engine(50_000, 0)
    rs = np.random.default_rng(0)
    ids = np.array([i for i in range(10001, 60001)], dtype=np.int64)
    times = []
    for _ in range(repeats):
        u = rs.integers(1, 100_000, n)
        it = ids[rs.integers(0, len(ids), n)]
        t = rs.integers(0, 4, n)
        t0 = time.perf_counter()
        e.update_arrays(u, it, t)
        times.append(time.perf_counter() - t0)
    e.close()
    med = statistics.median(times)
    log(f"bulk update: 1e6 events in {med:.2f} s")
    return {"events": n, "seconds": med, "events_per_s": n / med}


# --------------------------------------------------------------------------- HTTP
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not come up")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: str, args: List[str], duration: int, connections: int,
        pid: Optional[int] = None) -> Dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s",
           os.path.join(HERE, script), url, "--", *args]
    cpu0 = proc_cpu_s(pid) if pid else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    cpu1 = proc_cpu_s(pid) if pid else 0.0
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        raise RuntimeError("wrk printed no summary:\n" + out)
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / max(r["requests"], 1) if pid else float("nan")
    r["cmd"] = " ".join(cmd[:-len(args) - 1]) if args else " ".join(cmd)
    return r


def median_runs(runs: List[Dict[str, float]]) -> Dict[str, float]:
    keys = ("rps", "p50_us", "p90_us", "p99_us", "errors", "status_errors", "cpu_us_per_req")
    out = {k: statistics.median([r[k] for r in runs]) for k in keys}
    out["runs"] = len(runs)
    out["rps_all"] = [round(r["rps"], 1) for r in runs]
    return out


def service_bench(n_items: int, n_events: int, duration: int, connections: int, repeats: int,
                  batch: int, workdir: str, compare: Optional[str] = None
                  ) -> Dict[str, Dict[str, float]]:
    from baseline_app import make_db  # bench/ is on sys.path

    db = os.path.join(workdir, "sako.db")
    log(f"service: building a {n_items}-item database with {n_events} events ...")
    e = build_engine(n_items, n_events, path=db)
    e.retrain()
    ids = np.array([i for i in range(10001, 10001 + n_items)], dtype=np.int64)
    infos = [e.item(int(i)) for i in ids]
    e.close()
    base_db = os.path.join(workdir, "baseline.db")
    make_db(base_db, ids, np.array([x.alpha for x in infos]), np.array([x.beta for x in infos]))

    results: Dict[str, Dict[str, float]] = {}
    env = dict(os.environ, SAKO_CLIENT_KEYS=KEY)
    py = sys.executable

    def run_server(cmd: List[str], extra_env: Optional[Dict[str, str]] = None):
        port = free_port()
        p = subprocess.Popen(cmd + ["--port", str(port)], env={**env, **(extra_env or {})},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)
        base = f"http://127.0.0.1:{port}"
        return p, base

    def serve_cmd(python: str, path: str, mode: str) -> List[str]:
        return [python, "-m", "sako", "serve", "--db", path, "--no-demo", "--seed", "1",
                "--log-level", "warning", "--recommend-in", mode]

    for mode in ("auto", "threadpool"):
        p, base = run_server(serve_cmd(py, db, mode))
        other = None
        if compare and mode == "auto":
            # the service of another checkout (e.g. main before a change) on a copy of the
            # same database, up at the same time; the wrk runs alternate between the two
            other_db = os.path.join(workdir, "compare.db")
            shutil.copyfile(db, other_db)
            other = run_server(serve_cmd(compare, other_db, mode))
        try:
            wait_up(base + "/healthz", p)
            wrk(base + "/v1/recommendations", "wrk_recommend.lua", [KEY, "20"], 2, connections)
            if other is not None:
                wait_up(other[1] + "/healthz", other[0])
                wrk(other[1] + "/v1/recommendations", "wrk_recommend.lua", [KEY, "20"], 2, connections)
            runs, other_runs = [], []
            for _ in range(repeats):
                runs.append(wrk(base + "/v1/recommendations", "wrk_recommend.lua", [KEY, "20"],
                                duration, connections, p.pid))
                if other is not None:
                    other_runs.append(wrk(other[1] + "/v1/recommendations", "wrk_recommend.lua",
                                          [KEY, "20"], duration, connections, other[0].pid))
            results[f"sako recommend k=20 ({mode})"] = median_runs(runs)
            log("sako recommend", mode, results[f"sako recommend k=20 ({mode})"])
            if other is not None:
                results[f"compared: recommend k=20 ({mode})"] = median_runs(other_runs)
                log("compared", mode, results[f"compared: recommend k=20 ({mode})"])
            if mode == "auto":
                runs = [wrk(base + "/v1/events", "wrk_events.lua",
                            [KEY, str(ids[0]), str(ids[-1]), str(batch)], duration, connections, p.pid)
                        for _ in range(repeats)]
                r = median_runs(runs)
                r["events_per_s"] = r["rps"] * batch
                results[f"sako events, batches of {batch}"] = r
                log("sako events", r)
        finally:
            stop(p)
            if other is not None:
                stop(other[0])

    p, base = run_server([py, "-m", "uvicorn", "--app-dir", HERE, "baseline_app:app",
                          "--log-level", "warning", "--no-access-log"],
                         {"SAKO_BASELINE_DB": base_db})
    try:
        wait_up(base + "/docs", p)
        wrk(base + "/v1/recommendations", "wrk_recommend.lua", ["", "20"], 2, connections)
        runs = [wrk(base + "/v1/recommendations", "wrk_recommend.lua", ["", "20"], duration,
                    connections, p.pid) for _ in range(repeats)]
        results["baseline recommend k=20"] = median_runs(runs)
        log("baseline", results["baseline recommend k=20"])
    finally:
        stop(p)
    return results


# ------------------------------------------------------------------------- report
def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    import fastapi
    import uvicorn

    return (f"{cpu}, {os.cpu_count()} vCPU (shared with other jobs), {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}, numpy {np.__version__}, "
            f"fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, "
            f"libsako {sako.__version__}; wrk {wrk_version()}")


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        return out.split()[1] if out else "?"
    except (OSError, IndexError):
        return "?"


def write_report(path: str, args: argparse.Namespace, binding: List[Dict[str, float]],
                 bulk: Optional[Dict[str, float]], service: Dict[str, Dict[str, float]],
                 numpy_cmp: Optional[Dict[str, float]] = None) -> None:
    L: List[str] = []
    L.append("# Python binding and service benchmarks\n")
    L.append(f"Generated by `bindings/python/bench/run.sh` on {dt.datetime.utcnow():%Y-%m-%d %H:%M} UTC. "
             "Re-run it to refresh this page; the numbers are medians of repeated runs on a "
             "shared, noisy 2-vCPU machine, so compare rows of one run, not runs.\n")
    L.append(f"- **Machine:** {machine()}")
    L.append("- **Command:** `" + " ".join(["bindings/python/bench/run.sh"] + sys.argv[1:]) + "`")
    L.append(f"- **Load average** (1 min) at start / end: {LOAD_START:.1f} / {os.getloadavg()[0]:.1f} "
             "(other jobs shared the 2 vCPUs during the run)")
    L.append(f"- **Settings:** {args.repeats} repeats; wrk `-t1 -c{args.connections} -d{args.duration}s` "
             f"over 127.0.0.1; one uvicorn worker; catalog {args.items} items "
             f"({args.events} logged events, demo categories).\n")
    if binding:
        L.append("## Binding overhead (recommend)\n")
        L.append("Per-call medians. `raw` is the bare SWIG call into a preallocated `sako_rec` "
                 "array (`sako._testing.raw_recommend`: `sako_recommend()` plus argument parsing, "
                 "closed-handle check and GIL release); `arrays` is `Engine.recommend_arrays()` and "
                 "`list` is `Engine.recommend()` (result objects built in Python), timed around "
                 "each Python call (timer cost subtracted); `noop` is the same SWIG path for k = 0. "
                 "Overhead = Python layer − raw. The C call alone: docs/benchmarks.md.\n")
        L.append("| items | k | raw µs | arrays µs | list µs | overhead arrays µs | overhead list µs | noop µs |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in binding:
            L.append(f"| {r['n_items']:,} | {r['k']} | {r['raw_us']:.2f} | "
                     f"{r['arrays_us']:.2f} | {r['list_us']:.2f} | {r['arrays_overhead_us']:.2f} | "
                     f"{r['list_overhead_us']:.2f} | {r['noop_us']:.2f} |")
        L.append("")
    if numpy_cmp:
        L.append("## In-process: the original numpy path vs sako\n")
        L.append(f"At {numpy_cmp['n_items']:,} items, the baseline's numpy part alone (new Generator, "
                 f"Beta draw for every product, full argsort, top 20; no SQL read) takes "
                 f"**{numpy_cmp['numpy_ms']:.2f} ms** per request; `Engine.recommend(k=20)` takes "
                 f"**{numpy_cmp['sako_us']:.1f} µs** "
                 f"({numpy_cmp['numpy_ms'] * 1e3 / numpy_cmp['sako_us']:.0f}× less), medians.\n")
    if bulk:
        L.append("## Bulk events from numpy\n")
        L.append(f"`Engine.update_arrays()` with {bulk['events']:,} events (int64 arrays, structs "
                 f"filled by numpy, one atomic batch, durability=normal): **{bulk['seconds']:.2f} s** "
                 f"({bulk['events_per_s']:,.0f} events/s).\n")
    if service:
        L.append("## HTTP service under wrk\n")
        base = service.get("baseline recommend k=20")
        L.append("| scenario | requests/s | p50 ms | p90 ms | p99 ms | ×baseline (req/s) | server CPU µs/request | ×baseline (CPU) | errors |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in service.items():
            label = name.replace("compared", args.compare_label, 1) if name.startswith("compared: ") else name
            ratio = f"{r['rps'] / base['rps']:.1f}×" if base and "events" not in name else "—"
            cratio = (f"{base['cpu_us_per_req'] / r['cpu_us_per_req']:.0f}×"
                      if base and "events" not in name else "—")
            extra = f" ({r['events_per_s']:,.0f} events/s)" if "events_per_s" in r else ""
            L.append(f"| {label}{extra} | {r['rps']:,.0f} | {r['p50_us'] / 1e3:.2f} | "
                     f"{r['p90_us'] / 1e3:.2f} | {r['p99_us'] / 1e3:.2f} | {ratio} | "
                     f"{r['cpu_us_per_req']:,.0f} | {cratio} | {int(r['errors'] + r['status_errors'])} |")
        L.append("")
        L.append("- *server CPU µs/request*: CPU time (user + system) the server process spent per "
                 "request during the runs, from /proc; less sensitive than requests/s to the other "
                 "jobs sharing this machine (wrk itself takes most of a core).")
        L.append("- *sako recommend (auto)*: the default `sako serve`; recommend runs on the event "
                 "loop while its measured cost is under 200 µs, else in the threadpool. "
                 "*(threadpool)*: `--recommend-in threadpool`.")
        L.append("- *baseline*: `bench/baseline_app.py`, the original design: per request read "
                 "every product's (a, b) from an SQLite table, a new numpy Generator, Beta draws "
                 "for every product, full argsort, top k. Same catalog size, same posteriors.")
        L.append("- *events*: `POST /v1/events`, random batches over the whole catalog, default "
                 "durability (`full`: every acknowledged batch is fsynced), so concurrent batches "
                 "queue on the single writer; the tail latency is that queue.")
        for name, r in service.items():
            if name.startswith("compared: "):
                mine = service.get("sako recommend k=20 " + name.rsplit(" ", 1)[1])
                if mine:
                    L.append(f"- *compared*: {args.compare_label}, served from a copy of the same "
                             "database at the same time as this tree's service, the wrk runs "
                             "alternating between the two. This tree / compared: "
                             f"requests/s {mine['rps'] / r['rps']:.2f}×, p50 "
                             f"{mine['p50_us'] / r['p50_us']:.2f}×, p99 "
                             f"{mine['p99_us'] / r['p99_us']:.2f}×, server CPU per request "
                             f"{mine['cpu_us_per_req'] / r['cpu_us_per_req']:.2f}×.")
        L.append("- The baseline is dominated by reading and converting 50k rows per request; its "
                 "numpy part alone is in the in-process section above.")
        L.append("- Targets: ≥ 10× the baseline's requests/s with p99 < 20 ms on one worker.\n")
    L.append("## Raw numbers\n")
    L.append("```json")
    L.append(json.dumps({"binding": binding, "numpy_path": numpy_cmp, "bulk": bulk, "service": service},
                        indent=1, default=str))
    L.append("```")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")
    log("wrote", path)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=50_000, help="catalog size for the service runs")
    ap.add_argument("--events", type=int, default=100_000, help="logged events in the service db")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=100, help="events per POST /v1/events")
    ap.add_argument("--compare", metavar="PYTHON", default=None,
                    help="also serve recommendations with the sako of another interpreter "
                         "(e.g. a venv of main), alternating wrk runs with this one")
    ap.add_argument("--compare-label", default="compared",
                    help="what --compare runs, for the report")
    ap.add_argument("--skip-binding", action="store_true")
    ap.add_argument("--skip-service", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-python.md"))
    args = ap.parse_args(argv)
    if not args.skip_service and not shutil.which("wrk"):
        log("wrk not found (apt-get install wrk); use --skip-service")
        return 2
    sys.path.insert(0, HERE)
    binding: List[Dict[str, float]] = []
    bulk = None
    numpy_cmp = None
    service: Dict[str, Dict[str, float]] = {}
    if not args.skip_binding:
        for n in (1_000, 50_000):
            binding += binding_overhead(n, max(args.repeats, 5))
        numpy_cmp = numpy_path(args.items)
        bulk = bulk_update(max(args.repeats, 3))
    if not args.skip_service:
        with tempfile.TemporaryDirectory(prefix="sako-bench-") as d:
            service = service_bench(args.items, args.events, args.duration, args.connections,
                                    args.repeats, args.batch, d, args.compare)
    write_report(args.out, args, binding, bulk, service, numpy_cmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
