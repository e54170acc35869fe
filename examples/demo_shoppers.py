#!/usr/bin/env python3
"""Simulated shoppers against libsako, showing how recommendations adapt.

By default the engine runs in-process on the generated demo catalog. With --url it
talks to a running service instead (start one with `sako serve --dev`).

Each shopper has a hidden taste (a few favourite aisles); products have a hidden
appeal. Every round a shopper asks for 10 recommendations, sees them (impressions),
clicks / carts / buys according to taste and appeal, and the events go back at once.
The script prints, as rounds go by, what share of recommendations falls in the
shoppers' favourite aisles and the click-through rate: both climb as the model learns.

    python examples/demo_shoppers.py                  # in-process, fresh in-memory engine
    python examples/demo_shoppers.py --url http://127.0.0.1:8000 --key KEY
"""
from __future__ import annotations

import argparse
import random
import sys
from typing import Dict, List, Sequence, Tuple

try:
    import sako
    from sako.demo import make_catalog
except ImportError:  # pragma: no cover
    sys.exit("import sako failed: run bindings/python/setup_venv.sh and use .venv/bin/python")


class LocalShop:
    """The engine in-process."""

    def __init__(self, cat, seed: int) -> None:
        self.eng = sako.open(None, seed=seed)
        self.eng.upsert_categories(cat.categories)
        self.eng.upsert_items([(i, c) for i, c in cat.items])

    def recommend(self, user: int, k: int) -> Tuple[int, List[int]]:
        return 0, [r.item_id for r in self.eng.recommend(user, k=k)]

    def send(self, events: List[Tuple[int, int, str, int]]) -> None:
        self.eng.update([(u, i, t, 0, rid) for u, i, t, rid in events])


class RemoteShop:
    """The same through the HTTP service."""

    def __init__(self, url: str, key: str) -> None:
        import httpx

        self.c = httpx.Client(base_url=url, headers={"X-API-Key": key} if key else {}, timeout=30)

    def recommend(self, user: int, k: int) -> Tuple[int, List[int]]:
        r = self.c.post("/v1/recommendations", json={"user_id": user, "k": k})
        r.raise_for_status()
        body = r.json()
        return body["recommendation_id"], [x["item_id"] for x in body["items"]]

    def send(self, events: List[Tuple[int, int, str, int]]) -> None:
        r = self.c.post("/v1/events", json={"events": [
            {"user_id": u, "item_id": i, "type": t, **({"recommendation_id": rid} if rid else {})}
            for u, i, t, rid in events]})
        r.raise_for_status()


def main(argv: Sequence[str] = ()) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="service base URL (default: in-process engine)")
    ap.add_argument("--key", default="", help="API key for --url")
    ap.add_argument("--shoppers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--products", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(list(argv) or None)

    rng = random.Random(args.seed)
    cat = make_catalog(args.products, seed=args.seed)  # same catalog as `sako serve`'s demo db
    appeal = {i: rng.betavariate(2, 6) for i, _ in cat.items}
    aisles = [a for a, _, _ in cat.aisles()]
    taste: Dict[int, set] = {u: set(rng.sample(aisles, 3)) for u in range(1, args.shoppers + 1)}
    shop = RemoteShop(args.url, args.key) if args.url else LocalShop(cat, args.seed)

    print(f"{len(cat.items)} products in {len(aisles)} aisles, {args.shoppers} shoppers")
    print("round | in favourite aisles | click-through | purchases")
    for rnd in range(1, args.rounds + 1):
        shown = fav_hits = clicks = buys = 0
        for u in range(1, args.shoppers + 1):
            rid, items = shop.recommend(u, 10)
            events = []
            for it in items:
                shown += 1
                liked = cat.aisle_of[it] in taste[u]
                fav_hits += liked
                events.append((u, it, "impression", rid))
                p = appeal[it] * (2.5 if liked else 0.3)
                if rng.random() < min(p, 0.95):
                    clicks += 1
                    events.append((u, it, "click", rid))
                    if rng.random() < 0.4:
                        buys += 1
                        events.append((u, it, "purchase", rid))
            shop.send(events)
        if rnd == 1 or rnd % 5 == 0:
            print(f"{rnd:5d} | {fav_hits / shown:19.1%} | {clicks / shown:13.1%} | {buys:9d}")
    u = 1
    _, items = shop.recommend(u, 5)
    fav_names = ", ".join(sorted(cat.category_name(a) for a in taste[u]))
    print(f"\nshopper {u} likes {fav_names}; now recommended:")
    for it in items:
        print(f"  {it}: {cat.names[it]}  ({cat.category_name(cat.aisle_of[it])})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
