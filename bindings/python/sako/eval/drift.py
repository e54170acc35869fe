"""Decay against drift in the simulated world (docs/evaluation.md, "Decay and a
preference shift").

The simulated world of ``sim.py`` with one preference shift halfway through: the
appeal of a share of the aisles is multiplied by e or 1/e at a known request. libsako
(category priors, the population engine) runs with decay off and with a few
half-lives of event time (one request per simulated minute), each without and with a
retrain policy (every N events, or on measured drift) obeyed as the service's
background retrainer obeys it. The half-life and the policy are chosen on a tuning
seed (the best click rate after the shift) and reported on other seeds.

Run: ``python -m sako.eval.drift --out docs`` (figure in docs/figures/decay_drift.png).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from . import sim
from .sako_adapter import SakoPolicy, available

HALF_LIVES = (0.0, 1.0, 2.0, 4.0, 8.0)   # days of event time; 0 = no decay
#: retrain policies (``sako.Policy`` fields; see SakoPolicy's ``policy_*`` options)
RETRAIN_POLICIES = {
    "none": {},
    "every 40k events": {"every_events": 40_000},
    "drift 0.9": {"drift_fraction": 0.9, "drift_window": 20_000, "drift_min_impressions": 10_000},
}
TUNING_SEED = 1
REPORT_SEEDS = (2, 3, 4)


def world(seed: int, args, calib) -> sim.World:
    cfg = sim.SimConfig(n_items=args.items, n_users=args.users, n_requests=args.requests, seed=seed,
                        new_share=0.0, shifts=(0.5,), shift_aisle_share=args.share,
                        shift_strength=args.strength)
    return sim.World(cfg, calib)


def run_one(w: sim.World, half_life: float, seed: int, policy: str = "none") -> np.ndarray:
    """Clicks per request of libsako with this half-life and retrain policy in world w."""
    opts = {f"policy_{k}": v for k, v in RETRAIN_POLICIES[policy].items()}
    p = SakoPolicy(prior="category", seed=seed + 11, personal=0, decay_half_life_days=half_life, **opts)
    p.name = f"libsako decay {half_life:g} d, retrain {policy}"
    clicks = sim.run_policy(w, p, seed).clicks.astype(float)
    run_one.retrains = p.retrains_due
    return clicks


def label(v) -> str:
    h, pol = v
    return ("no decay" if h == 0 else f"decay {h:g} d") + ("" if pol == "none" else f", retrain {pol}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sako.eval.drift")
    ap.add_argument("--out", default=None, help="folder for figures/decay_drift.png")
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=40000)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--share", type=float, default=0.5, help="share of aisles that shift")
    ap.add_argument("--strength", type=float, default=2.0,
                    help="a shifted aisle's appeal is multiplied by e^(+-strength)")
    args = ap.parse_args(argv)
    if not available():
        raise SystemExit("libsako is not built")
    calib = sim.calibrate()
    R, half = args.requests, args.requests // 2
    t0 = time.perf_counter()
    # tuning seed: every half-life with every retrain policy
    w = world(TUNING_SEED, args, calib)
    k = w.cfg.k
    print("| half-life (days) | retrain policy | seed | retrains | clicks/slot before the shift | "
          "after the shift | last quarter |")
    print("|---|---|---:|---:|---:|---:|---:|")

    def row(v, s, c, kind):
        print(f"| {v[0]:g} | {v[1]} | {s} ({kind}) | {run_one.retrains} | {c[:half].mean() / k:.4f} | "
              f"{c[half:].mean() / k:.4f} | {c[3 * R // 4:].mean() / k:.4f} |", flush=True)

    tuning = {}
    for h in HALF_LIVES:
        for pol in RETRAIN_POLICIES:
            tuning[(h, pol)] = run_one(w, h, TUNING_SEED, pol)
            row((h, pol), TUNING_SEED, tuning[(h, pol)], "tuning")
    after = {v: c[half:].mean() for v, c in tuning.items()}
    decay_only = max((v for v in tuning if v[0] > 0 and v[1] == "none"), key=after.get)
    retrain_only = max((v for v in tuning if v[0] == 0 and v[1] != "none"), key=after.get)
    both = max((v for v in tuning if v[0] > 0 and v[1] != "none"), key=after.get)
    variants = [(0.0, "none"), decay_only, retrain_only, both]
    report = {}
    for s in REPORT_SEEDS:
        w = world(s, args, calib)
        report[s] = {}
        for v in variants:
            report[s][v] = run_one(w, v[0], s, v[1])
            row(v, s, report[s][v], "report")
    base = (0.0, "none")
    for v in variants[1:]:
        gain = [report[s][v][half:].mean() / report[s][base][half:].mean() - 1 for s in REPORT_SEEDS]
        print(f"\n{label(v)} (chosen on seed {TUNING_SEED}): after the shift, report seeds "
              f"{REPORT_SEEDS}: click rate {', '.join(f'{g:+.1%}' for g in gain)} vs neither")
    print(f"{time.perf_counter() - t0:.0f} s")
    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        win = args.window
        x = (np.arange(R // win) + 0.5) * win
        fig, ax = plt.subplots(figsize=(8, 4))
        for v, style in zip(variants, ("-", "--", ":", "-.")):
            rates = np.mean([report[s][v][: R // win * win].reshape(-1, win).mean(axis=1) / k
                             for s in REPORT_SEEDS], axis=0)
            ax.plot(x, rates, style, label=label(v))
        ax.axvline(half, color="grey", lw=0.8)
        ax.text(half, ax.get_ylim()[1], " preference shift", va="top", fontsize=8)
        ax.set_xlabel(f"request (one per simulated minute; windows of {win})")
        ax.set_ylabel(f"clicks per slot (mean of seeds {', '.join(map(str, REPORT_SEEDS))})")
        ax.legend()
        fig.tight_layout()
        path = Path(args.out) / "figures" / "decay_drift.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
