"""Matrix factors: quality (issue 10's quality targets), tuned on one split, reported on the other.

Two parts, each with the tuning discipline of the journey (parameters chosen by looking at
the tuning split only; the report split is replayed/evaluated afterwards with the chosen
parameters and is never used to choose):

**Journey** (``journey-tune``, ``journey-report``): the Complete Journey replay
(``journey.py``) with three rows retrained weekly on the same schedule (before the first
recommendation whose basket time is 7 days or more after the last training):

- ``libsako-weekly``: the personal engine (``journey.SAKO_CHOSEN``) retrained weekly,
  no factors (``mf_factors`` 0) - the "without them" row;
- ``libsako-mf``: the same engine with matrix factors (``journey.MF_CHOSEN`` or the grid
  point): trained by ``sako_retrain``, folded in exactly for households active since,
  served as the personal posterior's factor signal (``source`` = mf);
- ``als-same``: ``implicit``'s ALS (``journey.WeeklyALS``) with the same model: the same
  r_ui (0.7 clicks + 1 purchases), confidence 1 + alpha r_ui, factors, regularization and
  iterations (``journey.als_same_params``).

Tuning: the quick subset (``journey.QUICK_HOUSEHOLDS`` households), odd household ids,
months 4-12, NDCG@20 of ``libsako-mf`` at each grid point (``JOURNEY_GRID``). Report: the
chosen point, even household ids, months 4-12, several seeds (a seed chooses the scored
baskets and the engines' and ALS's random state); the paired differences (mf - weekly,
mf - ALS) with 95 % intervals from a bootstrap over households
(``lifecycle.household_bootstrap``).

**Ranking** (``ranking-tune``, ``ranking-report``): ``ranking.py``'s ml-100k and Instacart
tasks; :class:`MFRanker` (``sako.mf_fit`` + exact fold-in ``sako.mf_fold_in``) beside
:class:`ranking.ALSRanker` with ``confidence="sako"`` (the same model in implicit). Queries
are split by the parity of their user (held-out task: of the test basket's index): odd =
tuning, even = report. The grid (``RANKING_GRID``: factors, regularization, alpha;
iterations 15) is scored on the tuning queries by **implicit's** NDCG@20 (the baseline
chooses the shared parameters, so the comparison cannot favour libsako by the choice);
the report gives recall@20 and NDCG@20 on the report queries with bootstrap intervals
and the paired difference, over seeds.

    python -m sako.eval.mfeval journey-tune [--households N] [--seed S] --out DIR
    python -m sako.eval.mfeval journey-report --seeds 1 2 3 [--households N] [--jobs 2] --out DIR
    python -m sako.eval.mfeval ranking-tune --out DIR
    python -m sako.eval.mfeval ranking-report --seeds 1 2 3 --out DIR
    python -m sako.eval.mfeval report --out docs/journey        # both reports (make eval-mf)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import journey as J
from . import ranking as R
from .lifecycle import household_bootstrap
from .metrics import bootstrap_ci, ndcg_at_k, recall_at_k

K = 20
LO, HI = 4, 12                      # months of the replay compared (issue 10's target)
BASE, MF, ALS = "libsako-weekly", "libsako-mf", "als-same"

#: libsako-mf grid of the journey tuning (options over journey.MF_CHOSEN); the shared
#: parameters (factors, regularization, alpha) and the serving ones (mf_weight,
#: mf_candidates, mf_mode)
#: (0.7: the factor signal re-ranks only products new to the household; the shared
#: parameters are 0.6's choice, the grid varies the signal's weight)
JOURNEY_GRID = [
    "mf_factors=64:mf_regularization=1:mf_alpha=1:mf_weight=1",
    "mf_factors=64:mf_regularization=1:mf_alpha=1:mf_weight=2",
    "mf_factors=64:mf_regularization=1:mf_alpha=1:mf_weight=0.5",
]


def _params(spec: str) -> dict:
    return {a: J._num(b) for a, b in (x.split("=", 1) for x in spec.split(":") if x)}


def _key(base: str, spec: str) -> str:
    return f"{base}:{spec}" if spec else base


# ------------------------------------------------------------------ journey

def _inspect(p) -> dict:
    """Scheduled retrains (libsako) or trainings (implicit), and the engine's factors."""
    info = dict(retrains=int(getattr(p, "retrains", 0) or getattr(p, "trainings", 0)))
    eng = getattr(p, "engine", None)
    if eng is not None and hasattr(eng, "factors_info"):
        fi = eng.factors_info()
        info.update(factors=int(fi.factors), users=int(fi.n_users), items=int(fi.n_items),
                    serving=int(fi.serving), bytes=int(fi.bytes))
    return info


def _replay(j, keys, seed, progress):
    return J.replay_keys(j, keys, seed, progress, _inspect)


def split_metrics(res, name, parity, lo=LO, hi=HI):
    """(per-scored-basket metrics (n, 4): hit, recall, NDCG, new; household of each) of
    months lo..hi and this household parity (1 = tuning, 0 = report)."""
    hh = res.journey.household[res.scored]
    mo = res.journey.month[res.scored]
    sel = (hh % 2 == parity) & (mo >= lo) & (mo <= hi)
    return res.metrics[name][sel], hh[sel]


def _tune_part(args):
    """Replay one share of the tuning keys (a process of its own under --jobs); odd ids."""
    keys, households, seed, j = args
    from .cli import _progress_factory
    if j is None:
        j = J.load_journey(households, seed)
    res, info = _replay(j, keys, seed, _progress_factory(True))
    rows = []
    for key in keys:
        m, _ = split_metrics(res, key, 1)
        rows.append(dict(key=key, n=int(m.shape[0]), ndcg=float(m[:, 2].mean()), recall=float(m[:, 1].mean()),
                         hit=float(m[:, 0].mean()), seconds=float(res.seconds[key]), **info[key]))
    return rows, int(j.n_baskets)


def journey_tune(grid=JOURNEY_GRID, households=J.QUICK_HOUSEHOLDS, seed=1, progress=None, log=print,
                 journey=None, jobs=1):
    """Replay the quick subset with ``libsako-weekly`` and ``libsako-mf`` at every grid
    point (``jobs`` processes, each replaying a share of them with the same seed, so the
    same scored baskets); look at odd ids only. Returns (chosen spec, table)."""
    keys = [BASE] + [_key(MF, g) for g in grid]
    t0 = time.perf_counter()
    parts = [keys[i::jobs] for i in range(jobs)] if jobs > 1 else [keys]
    args = [(p, households, seed, journey) for p in parts if p]
    if len(args) > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=len(args)) as ex:
            outs = list(ex.map(_tune_part, args))
    else:
        outs = [_tune_part(a) for a in args]
    by_key = {r["key"]: r for rows, _ in outs for r in rows}
    rows = [by_key[k] for k in keys]
    for r in rows:
        log(f"  {r['key']:70s} NDCG@20 {r['ndcg']:.4f} recall@20 {r['recall']:.4f} ({r['seconds']:.0f} s)")
    best = max(rows[1:], key=lambda r: r["ndcg"])
    return best["key"].split(":", 1)[1] if ":" in best["key"] else "", \
        dict(rows=rows, seed=seed, households=households, wall=time.perf_counter() - t0, n_baskets=outs[0][1])


def _journey_seed(args):
    """One report replay (a process of its own under --jobs)."""
    spec, seed, households, with_als, j = args
    from .cli import _progress_factory
    if j is None:
        j = J.load_journey(households, seed)
    keys = [BASE, _key(MF, spec)] + ([_key(ALS, spec)] if with_als else [])
    t0 = time.perf_counter()
    res, info = _replay(j, keys, seed, _progress_factory(True))
    out = dict(seed=seed, n_baskets=int(j.n_baskets), n_households=int(j.n_households),
               wall=time.perf_counter() - t0, info=info, seconds={k: float(v) for k, v in res.seconds.items()},
               monthly={k: v.tolist() for k, v in res.ndcg_by_month(parity=0).items()})
    names = dict(zip(keys, ("weekly", "mf", "als")))
    per = {}
    for key in keys:
        m, hh = split_metrics(res, key, 0)
        per[names[key]] = m
    out["n"], out["households"] = int(hh.size), int(np.unique(hh).size)
    for nm, m in per.items():
        out[nm] = dict(ndcg=float(m[:, 2].mean()), recall=float(m[:, 1].mean()), hit=float(m[:, 0].mean()))
    for a, b in (("mf", "weekly"), ("mf", "als")):
        if a in per and b in per:
            for col, metric in ((2, "ndcg"), (1, "recall")):
                d = per[a][:, col] - per[b][:, col]
                lo, hi = household_bootstrap(d, hh, seed=seed)
                out[f"{a}-{b}_{metric}"] = dict(diff=float(d.mean()), lo=lo, hi=hi)
    return out


def journey_report(spec, seeds, households=None, with_als=True, jobs=1, log=print, journey=None,
                   on_result=None):
    """Replay (``households`` None: every household; ``journey``: this one instead) with the
    chosen spec per seed; even ids. ``on_result(results so far)`` after each seed (so a
    long run leaves its finished seeds behind)."""
    args = [(spec, s, households, with_als, journey) for s in seeds]
    outs = []

    def done(r):
        outs.append(r)
        outs.sort(key=lambda x: x["seed"])
        log(f"report seed {r['seed']}: weekly {r['weekly']['ndcg']:.4f} mf {r['mf']['ndcg']:.4f}"
            + (f" als {r['als']['ndcg']:.4f}" if "als" in r else "") + f" ({r['wall']:.0f} s)")
        if on_result is not None:
            on_result(list(outs))
    if jobs > 1 and len(args) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            for f in as_completed([ex.submit(_journey_seed, a) for a in args]):
                done(f.result())
    else:
        for a in args:
            done(_journey_seed(a))
    return outs


# ------------------------------------------------------------------ ranking

class MFRanker(R.Ranker):
    """libsako's solver (``sako.mf_fit``) on the task's user x item matrix (values r = the
    number of training rows of the pair), confidence 1 + alpha r. A query with given items
    (held-out baskets) is folded in exactly from them (``sako.mf_fold_in``, exact=True)
    against the item factors; otherwise the user's trained row is used. Scores X_u . Y;
    given and excluded items are left out."""

    def __init__(self, factors=16, iterations=15, regularization=0.05, alpha=10.0, seed=0, threads=1):
        self.kw = dict(factors=int(factors), iterations=int(iterations), regularization=float(regularization),
                       alpha=float(alpha), seed=int(seed) + 1, threads=int(threads))
        self.name = f"libsako MF ({factors} factors, {iterations} it.)"

    def fit(self, task):
        import sako
        self.x, self.y = sako.mf_fit(R.task_matrix(task), **self.kw)
        self.gram = sako.mf_gram(self.y)

    def user_vector(self, q):
        import sako
        if q.given:
            items = np.unique(np.asarray(q.given, dtype=np.int64))
            return sako.mf_fold_in(self.y, items, np.ones(items.size, dtype=np.float32), self.gram, exact=True,
                                   regularization=self.kw["regularization"], alpha=self.kw["alpha"])
        return self.x[q.row]

    def rank(self, q, k, rng):
        s = self.y @ self.user_vector(q)
        s = s.astype(np.float64)
        drop = list(q.given) + list(q.exclude)
        if drop:
            s[np.asarray(drop, dtype=np.int64)] = -np.inf
        return R._topk(s, k)


#: (factors, regularization, alpha) of the ranking grid; iterations 15
RANKING_GRID = [(f, reg, a) for f in (16, 64) for reg in (0.01, 0.1, 1.0) for a in (1.0, 10.0)]
RANKING_TASKS = ("ml-100k", "instacart-next-basket", "instacart-heldout")


def query_split(task, parity: int):
    """The task with only the queries of this parity (of the query's user id)."""
    import dataclasses
    return dataclasses.replace(task, queries=[q for q in task.queries if q.user % 2 == parity])


def per_query(task, ranker, k=K):
    """(recall@k, NDCG@k) arrays over the task's queries (the ranker fitted here)."""
    ranker.fit(task)
    rng = np.random.default_rng(0)
    rec, nd = [], []
    for q in task.queries:
        r = list(ranker.rank(q, k, rng))
        rec.append(recall_at_k(r, q.relevant, k))
        nd.append(ndcg_at_k(r, q.relevant, k))
    return np.asarray(rec), np.asarray(nd)


def _rankers(f, reg, a, seed, iterations=15):
    return (R.ALSRanker(factors=f, iterations=iterations, regularization=reg, alpha=a, seed=seed, confidence="sako"),
            MFRanker(factors=f, iterations=iterations, regularization=reg, alpha=a, seed=seed))


def ranking_tune(tasks=RANKING_TASKS, grid=RANKING_GRID, seed=1, progress=None, log=print):
    """Per task: every grid point on the tuning queries (odd); chosen by implicit's NDCG@20."""
    from . import data as D
    out = {}
    for name in tasks:
        fn, need = R.TASKS[name]
        if not D.have(*need):
            log(f"{name}: skipped ({'/'.join(need)} not found)")
            continue
        task = query_split(fn(seed), 1)
        rows = []
        bar = progress(total=len(grid), desc=f"tune {name}") if progress else None
        for f, reg, a in grid:
            als, mf = _rankers(f, reg, a, seed)
            ar, an = per_query(task, als)
            mr, mn = per_query(task, mf)
            rows.append(dict(factors=f, regularization=reg, alpha=a, als_ndcg=float(an.mean()),
                             als_recall=float(ar.mean()), mf_ndcg=float(mn.mean()), mf_recall=float(mr.mean())))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        best = max(rows, key=lambda r: r["als_ndcg"])
        out[name] = dict(rows=rows, chosen=(best["factors"], best["regularization"], best["alpha"]),
                         n_queries=len(task.queries))
        log(f"{name}: chosen by implicit's tuning NDCG@20: factors {best['factors']}, reg "
            f"{best['regularization']:g}, alpha {best['alpha']:g} ({best['als_ndcg']:.4f}; libsako "
            f"{best['mf_ndcg']:.4f}; {len(task.queries)} tuning queries)")
    return out


def ranking_report(chosen: dict, seeds, n_boot=1000, log=print):
    """Per task and seed: the report queries (even), both rankers at the chosen point."""
    from . import data as D
    out = {}
    for name, (f, reg, a) in chosen.items():
        fn, need = R.TASKS[name]
        if not D.have(*need):
            continue
        res = []
        for s in seeds:
            task = query_split(fn(s), 0)
            als, mf = _rankers(f, reg, a, s)
            t0 = time.perf_counter()
            ar, an = per_query(task, als)
            t1 = time.perf_counter()
            mr, mn = per_query(task, mf)
            t2 = time.perf_counter()
            r = dict(seed=s, n=len(task.queries), als_seconds=t1 - t0, mf_seconds=t2 - t1)
            for lab, v in (("als_recall", ar), ("als_ndcg", an), ("mf_recall", mr), ("mf_ndcg", mn),
                           ("diff_recall", mr - ar), ("diff_ndcg", mn - an)):
                r[lab] = bootstrap_ci(v, n_boot, seed=s)
            res.append(r)
            log(f"{name} seed {s}: NDCG@20 implicit {r['als_ndcg'][0]:.4f} libsako {r['mf_ndcg'][0]:.4f} "
                f"diff {r['diff_ndcg'][0]:+.4f} [{r['diff_ndcg'][1]:+.4f}, {r['diff_ndcg'][2]:+.4f}]")
        out[name] = dict(params=(f, reg, a), seeds=res)
    return out


# ------------------------------------------------------------------ report

def _head(*cols, right=None) -> list:
    """A markdown table's header and rule; columns right-aligned after the first, or the
    ``right`` ones only."""
    r = set(range(1, len(cols))) if right is None else set(right)
    return ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if i in r else "---" for i in range(len(cols))) + "|"]


def _ci(t, digits=4):
    return f"{t[0]:.{digits}f} [{t[1]:.{digits}f}, {t[2]:.{digits}f}]"


def _sci(t, digits=4):
    return f"{t[0]:+.{digits}f} [{t[1]:+.{digits}f}, {t[2]:+.{digits}f}]"


def markdown(tune_j, chosen_spec, rep_j, tune_r, rep_r, command, commit, machine, figure,
             tune_commands=()) -> str:
    L = ["# Matrix factors: quality (issue 10)\n",
         f"Generated by `{command}` (commit {commit}; {machine}). Tuning split and report split "
         "are disjoint: parameters were chosen on the tuning split only (tables below, from the "
         "tuning commands" + "".join(f"; `{c}`" for c in tune_commands if c) +
         "), then the report commands ran the chosen parameters on the report split.\n"]
    if rep_j:
        r0 = rep_j[0]
        L += ["## The Complete Journey replay, months 4-12\n",
              f"Report split: **even household ids**, {r0['n_households']:,} households replayed "
              f"({r0['n_baskets']:,} baskets{', the quick subset' if r0['n_households'] < 2469 else ''}), "
              f"libsako-mf options `{chosen_spec}` over `journey.MF_CHOSEN`; every row retrained weekly. "
              "Intervals: 95 %, bootstrap over households of the paired per-basket difference.\n",
              "| seed | scored baskets (households) | NDCG@20 weekly, no factors | NDCG@20 + factors | "
              "NDCG@20 implicit ALS, same model | factors - no factors | factors - implicit | "
              "recall@20 no factors / factors / implicit | seconds (weekly / mf / implicit) |",
              "|---:|---|---:|---:|---:|---|---|---|---|"]
        for r in rep_j:
            als = r.get("als", {})
            sec = r["seconds"]
            L.append(f"| {r['seed']} | {r['n']:,} ({r['households']}) | {r['weekly']['ndcg']:.4f} | "
                     f"{r['mf']['ndcg']:.4f} | {als.get('ndcg', float('nan')):.4f} | "
                     f"{r['mf-weekly_ndcg']['diff']:+.4f} [{r['mf-weekly_ndcg']['lo']:+.4f}, "
                     f"{r['mf-weekly_ndcg']['hi']:+.4f}] | "
                     + (f"{r['mf-als_ndcg']['diff']:+.4f} [{r['mf-als_ndcg']['lo']:+.4f}, "
                        f"{r['mf-als_ndcg']['hi']:+.4f}]" if "mf-als_ndcg" in r else "–")
                     + f" | {r['weekly']['recall']:.4f} / {r['mf']['recall']:.4f} / "
                     f"{als.get('recall', float('nan')):.4f} | "
                     + " / ".join(f"{v:.0f}" for v in sec.values()) + " |")
        if len(rep_j) > 1:
            def mean(f):
                return float(np.mean([f(r) for r in rep_j]))
            L.append(f"| mean | | {mean(lambda r: r['weekly']['ndcg']):.4f} | {mean(lambda r: r['mf']['ndcg']):.4f} | "
                     + (f"{mean(lambda r: r['als']['ndcg']):.4f}" if "als" in r0 else "–")
                     + f" | {mean(lambda r: r['mf-weekly_ndcg']['diff']):+.4f} | "
                     + (f"{mean(lambda r: r['mf-als_ndcg']['diff']):+.4f}" if "mf-als_ndcg" in r0 else "–")
                     + f" | {mean(lambda r: r['weekly']['recall']):.4f} / {mean(lambda r: r['mf']['recall']):.4f} / "
                     + (f"{mean(lambda r: r['als']['recall']):.4f}" if "als" in r0 else "–") + " | |")
        L.append("")
        if figure:
            L.append(f"![NDCG@20 by month, report split]({figure})\n")
    if tune_j:
        L += [f"### Tuning (odd household ids, months 4-12, quick subset of {tune_j['households']} "
              f"households, seed {tune_j['seed']})\n",
              *_head("policy key", "scored baskets", "NDCG@20", "recall@20", "hit rate", "retrains", "seconds")]
        for r in tune_j["rows"]:
            mark = "**" if r["key"] == _key(MF, chosen_spec) else ""
            L.append(f"| {mark}`{r['key']}`{mark} | {r['n']:,} | {r['ndcg']:.4f} | {r['recall']:.4f} | "
                     f"{100 * r['hit']:.1f} % | {r.get('retrains', 0)} | {r['seconds']:.0f} |")
        L.append("")
    if rep_r:
        L += ["## Ranking: ml-100k and the Instacart samples\n",
              "Report split: queries of **even** user ids (held-out task: even test-basket index); "
              "parameters chosen by implicit's NDCG@20 on the odd ones (table below). Both rankers "
              "fit the same model (confidence 1 + alpha r; implicit fed 1 + alpha r with alpha 1), "
              "one thread, 15 iterations. Intervals: 95 % bootstrap over queries.\n",
              *_head("task", "factors, reg, alpha", "seed", "queries", "recall@20 implicit", "recall@20 libsako",
                     "NDCG@20 implicit", "NDCG@20 libsako", "NDCG@20 libsako - implicit",
                     "fit+rank s (implicit / libsako)", right=(2, 3))]
        for name, d in rep_r.items():
            f, reg, a = d["params"]
            for r in d["seeds"]:
                L.append(f"| {name} | {f}, {reg:g}, {a:g} | {r['seed']} | {r['n']} | {_ci(r['als_recall'])} | "
                         f"{_ci(r['mf_recall'])} | {_ci(r['als_ndcg'])} | {_ci(r['mf_ndcg'])} | "
                         f"{_sci(r['diff_ndcg'])} | {r['als_seconds']:.1f} / {r['mf_seconds']:.1f} |")
            if len(d["seeds"]) > 1:
                mean = {c: float(np.mean([r[c][0] for r in d["seeds"]]))
                        for c in ("als_recall", "mf_recall", "als_ndcg", "mf_ndcg", "diff_ndcg")}
                L.append(f"| {name} | | mean | | {mean['als_recall']:.4f} | {mean['mf_recall']:.4f} | "
                         f"{mean['als_ndcg']:.4f} | {mean['mf_ndcg']:.4f} | {mean['diff_ndcg']:+.4f} | |")
        L.append("")
    if tune_r:
        L += ["### Ranking tuning (odd user ids; seed 1; chosen by implicit's NDCG@20, **bold**)\n",
              *_head("task", "factors", "reg", "alpha", "NDCG@20 implicit", "NDCG@20 libsako", "recall@20 implicit",
                     "recall@20 libsako")]
        for name, d in tune_r.items():
            for r in d["rows"]:
                ch = tuple(d["chosen"]) == (r["factors"], r["regularization"], r["alpha"])
                b = "**" if ch else ""
                L.append(f"| {name} | {r['factors']} | {r['regularization']:g} | {r['alpha']:g} | "
                         f"{b}{r['als_ndcg']:.4f}{b} | {r['mf_ndcg']:.4f} | {r['als_recall']:.4f} | "
                         f"{r['mf_recall']:.4f} |")
        L.append("")
    return "\n".join(L) + "\n"


def plot(rep_j, figs):
    fig, ax = figs.new()
    names = list(rep_j[0]["monthly"])
    for name in names:
        y = np.nanmean([r["monthly"][name] for r in rep_j], axis=0)
        ax.plot(np.arange(1, 13), y, marker="o", ms=3, label=name)
    ax.axvspan(LO - 0.5, HI + 0.5, color="0.92", zorder=0)
    ax.set_xlabel("month of the replay")
    ax.set_ylabel(f"NDCG@20 (even ids; mean of {len(rep_j)} seeds)")
    ax.set_xticks(range(1, 13))
    ax.set_title("Matrix factors on The Complete Journey")
    ax.legend(fontsize=7)
    return figs.save(fig, "journey_mf_by_month.png",
                     f"The Complete Journey, {rep_j[0]['n_baskets']:,} baskets, {rep_j[0]['n_households']} households")


def _machine() -> str:
    import os
    import platform
    try:
        load = "load %.1f" % os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = "load ?"
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {load} at the end"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sako.eval.mfeval")
    ap.add_argument("command", choices=("journey-tune", "journey-report", "ranking-tune", "ranking-report",
                                        "report", "render"))
    ap.add_argument("--out", default="docs/journey")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--households", type=int, default=J.QUICK_HOUSEHOLDS,
                    help="journey: replay the quick subset of this many households (0 = every household)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="journey: processes side by side (report: one seed each; tune: a share of the grid each)")
    ap.add_argument("--no-als", action="store_true", help="journey-report: without the implicit row")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    from .cli import _progress_factory
    from .report import Figures, git_commit
    progress = _progress_factory(not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "mf_quality.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    hh = args.households or None
    t0 = time.perf_counter()
    cmd = "python -m sako.eval.mfeval " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.command == "journey-tune":
        spec, tab = journey_tune(households=hh, seed=args.seed, progress=progress, jobs=args.jobs)
        state["journey_tune"], state["journey_chosen"] = tab, spec
        state["journey_tune_command"] = cmd
    if args.command == "ranking-tune":
        tr = ranking_tune(seed=args.seed, progress=progress)
        state["ranking_tune"] = tr
        state["ranking_tune_command"] = cmd
    if args.command == "report" and not state.get("ranking_tune"):
        raise SystemExit("run ranking-tune first (it writes the chosen parameters into mf_quality.json)")

    def save(reports):
        state["journey_report"] = reports
        state_path.write_text(json.dumps(state, indent=1, default=float), encoding="utf-8")
    if args.command in ("journey-report", "report"):
        if "journey_chosen" not in state:
            raise SystemExit("run journey-tune first (it writes the chosen parameters into mf_quality.json)")
        state.pop("journey_report", None)
        state["journey_report_command"] = cmd
        journey_report(state["journey_chosen"], args.seeds, hh, not args.no_als, args.jobs, on_result=save)
    if args.command in ("ranking-report", "report"):
        chosen = {n: tuple(d["chosen"]) for n, d in state.get("ranking_tune", {}).items()}
        if not chosen:
            raise SystemExit("run ranking-tune first (it writes the chosen parameters into mf_quality.json)")
        state["ranking_report"] = ranking_report(chosen, args.seeds)
    if args.command in ("journey-report", "ranking-report", "report"):   # render: only the markdown
        state["report_command"] = cmd
        state["report_seconds"] = time.perf_counter() - t0
        state["machine"] = _machine()
        state["commit"] = git_commit()
    state_path.write_text(json.dumps(state, indent=1, default=float), encoding="utf-8")
    commit = state.get("commit") or git_commit()
    figure = None
    if state.get("journey_report"):
        figs = Figures(out, state["journey_report"][0]["seed"], commit)
        figure = plot(state["journey_report"], figs)
    command = state.get("report_command", cmd)
    machine = state.get("machine") or _machine()
    if "report_seconds" in state:
        machine = f"{state['report_seconds'] / 60:.1f} min; {machine}"
    (out / "mf_quality.md").write_text(markdown(state.get("journey_tune"), state.get("journey_chosen", ""),
                                                state.get("journey_report"), state.get("ranking_tune"),
                                                state.get("ranking_report"), command, commit, machine, figure,
                                                (state.get("journey_tune_command"), state.get("ranking_tune_command"))),
                                       encoding="utf-8")
    print(f"wrote {out / 'mf_quality.md'} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
