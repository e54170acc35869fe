"""A small world for the model versions' tests: two departments whose conversion
flips, and held-out baskets that favour one of them (as tests/check_versions.c)."""
from __future__ import annotations

import sako

A, B = 1, 2
N_PER = 40
HOLDOUT_BASKETS = 30
HOLDOUT_EVENTS = HOLDOUT_BASKETS * 3


def item(cat: int, k: int) -> int:
    return cat * 1000 + k


def open_world(path=None, **options) -> sako.Engine:
    opts = dict(seed=7, organic_demand=0, prior_refresh_events=0, personal=0, durability="off")
    opts.update(options)
    e = sako.open(path, **opts)
    e.upsert_categories([(A, 0, "A"), (B, 0, "B")])
    e.upsert_items([(item(c, k), c) for c in (A, B) for k in range(1, N_PER + 1)])
    e.policy = {"gate_margin": 0.01, "gate_holdout_events": HOLDOUT_EVENTS,
                "gate_holdout_fraction": 0.5, "gate_min_baskets": 10}
    return e


def evidence(e: sako.Engine, cat: int, first: int, last: int, imps: int, buys: int, t: int) -> None:
    ev = []
    for k in range(first, last + 1):
        ev += [(1, item(cat, k), "impression", t)] * imps
        ev += [(1, item(cat, k), "purchase", t, 1)] * buys
    e.update(ev)


def champion_world(e: sako.Engine) -> None:
    """A converts, B does not."""
    evidence(e, A, 1, 10, 10, 8, 10000)
    evidence(e, B, 1, 10, 10, 0, 10000)


def challenger_world(e: sako.Engine) -> None:
    """The opposite, stronger."""
    evidence(e, B, 11, 20, 20, 20, 20000)
    evidence(e, A, 11, 20, 40, 0, 20000)


def holdout(e: sako.Engine, cat: int, user0: int = 100) -> None:
    for b in range(HOLDOUT_BASKETS):
        e.update([(user0 + b, item(cat, 21 + (b + 7 * k) % 20), "purchase", 30000 + b, 1)
                  for k in range(3)])
