"""Locating and reading the evaluation datasets in place (never copied into the repo).

The datasets folder is, in this order (the first one given wins):

1. the ``--datasets`` option of ``python -m sako.eval`` (:func:`set_datasets_root`);
2. the environment variable ``$SAKO_DATASETS``;
3. in a source checkout only, ``../shared/datasets`` beside the repository.

An installed package (not a checkout) has no third choice. When the chosen folder does
not exist, or none is given, every loader raises :class:`DatasetMissing` (a subclass of
``FileNotFoundError``) whose message names all three, so callers and tests can skip
cleanly and a user knows what to set.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

ENV_VAR = "SAKO_DATASETS"


class DatasetMissing(FileNotFoundError):
    """A dataset folder or file the evaluation needs is not present."""


_override: Optional[Path] = None


def set_datasets_root(path: Union[str, "os.PathLike[str]", None]) -> None:
    """Use ``path`` as the datasets folder (the ``--datasets`` option); None clears it."""
    global _override
    _override = None if path is None else Path(path).expanduser()


def checkout_root() -> Optional[Path]:
    """The repository root when this package runs from a source checkout, else None.

    A checkout is recognised by its own files (``include/sako.h`` and this package under
    ``bindings/python/sako``), not by the number of parent folders alone: an installed
    copy in site-packages has neither.
    """
    here = Path(__file__).resolve()
    # bindings/python/sako/eval/data.py -> the root is four levels up in a checkout
    if len(here.parents) < 5:
        return None
    root = here.parents[4]
    if (root / "include" / "sako.h").is_file() and (root / "bindings" / "python" / "sako").is_dir():
        return root
    return None


def checkout_default() -> Optional[Path]:
    """``../shared/datasets`` beside the checkout, or None outside a checkout."""
    root = checkout_root()
    return None if root is None else (root.parent / "shared" / "datasets").resolve()


def _candidates() -> list:
    env = os.environ.get(ENV_VAR)
    return [("--datasets", _override),
            (f"${ENV_VAR}", Path(env).expanduser() if env else None),
            ("the checkout's default ../shared/datasets", checkout_default())]


def _missing_message(chosen=None) -> str:
    lines = []
    for i, (name, path) in enumerate(_candidates()):
        if path is None:
            state = "not set" if i < 2 else "none (not running from a source checkout)"
        else:
            state = f"{path} ({'exists' if path.is_dir() else 'does not exist'})"
        lines.append(f"  {i + 1}. {name}: {state}")
    head = (f"the datasets folder {chosen[1]} given by {chosen[0]} does not exist"
            if chosen else "no datasets folder found")
    return (f"{head}; looked at, in this order:\n" + "\n".join(lines) +
            f"\nPass --datasets DIR or set {ENV_VAR}=DIR (see shared/datasets/README.md).")


def datasets_root() -> Path:
    """The datasets folder: ``--datasets``, else ``$SAKO_DATASETS``, else the checkout's
    default. Raises DatasetMissing naming all three if the first one given does not exist
    or none is given."""
    for name, path in _candidates():
        if path is None:
            continue
        if path.is_dir():
            return path
        raise DatasetMissing(_missing_message((name, path)))
    raise DatasetMissing(_missing_message())


def describe_datasets_root() -> str:
    """The datasets folder for a report header, or why there is none (never raises)."""
    try:
        return str(datasets_root())
    except DatasetMissing:
        return "no datasets folder (--datasets, $SAKO_DATASETS and the checkout default all absent)"


def dataset_path(*parts: str) -> Path:
    root = datasets_root()
    p = root.joinpath(*parts)
    if not p.exists():
        raise DatasetMissing(
            f"dataset file {p} not found under the datasets folder {root} "
            f"(choose the folder with --datasets DIR or {ENV_VAR}=DIR)")
    return p


def have(*parts: str) -> bool:
    try:
        return datasets_root().joinpath(*parts).exists()
    except DatasetMissing:
        return False


# ------------------------------------------------------------------ catalog

@dataclass
class Catalog:
    """A department -> aisle -> product tree, all ids dense from 0.

    item_aisle[i] is the aisle index of item i; aisle_dept[a] the department of aisle a.
    Category ids handed to libsako are 1 + dept (departments) and 1001 + aisle (aisles).
    """
    item_aisle: np.ndarray
    aisle_dept: np.ndarray
    source: str

    @property
    def n_items(self) -> int:
        return int(self.item_aisle.size)

    @property
    def n_aisles(self) -> int:
        return int(self.aisle_dept.size)

    @property
    def n_depts(self) -> int:
        return int(self.aisle_dept.max()) + 1

    @property
    def item_dept(self) -> np.ndarray:
        return self.aisle_dept[self.item_aisle]


DEPT_ID_BASE = 1
AISLE_ID_BASE = 1001


def instacart_catalog() -> Catalog:
    """The real Instacart catalog shape (49,688 products, 134 aisles, 21 departments)."""
    path = dataset_path("instacart", "products.csv")
    aisle, dept = [], []
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            aisle.append(int(row[2]))
            dept.append(int(row[3]))
    aisle = np.asarray(aisle) - 1
    dept = np.asarray(dept) - 1
    n_aisles = int(aisle.max()) + 1
    aisle_dept = np.zeros(n_aisles, dtype=np.int64)
    aisle_dept[aisle] = dept
    return Catalog(item_aisle=aisle.astype(np.int64), aisle_dept=aisle_dept,
                   source="instacart/products.csv (real catalog shape)")


def generated_catalog(n_items: int, seed: int, n_depts: int = 21, n_aisles: int = 134) -> Catalog:
    """A catalog of the Instacart shape, generated (aisle sizes lognormal like the real one)."""
    rng = np.random.default_rng(seed)
    aisle_dept = np.concatenate([np.arange(n_depts), rng.integers(0, n_depts, n_aisles - n_depts)])
    sizes = rng.lognormal(0.0, 0.7, n_aisles)
    item_aisle = rng.choice(n_aisles, size=n_items, p=sizes / sizes.sum())
    return Catalog(item_aisle=np.sort(item_aisle).astype(np.int64), aisle_dept=aisle_dept,
                   source=f"generated ({n_items} items, {n_aisles} aisles, {n_depts} departments)")


def catalog(n_items: int | None, seed: int) -> Catalog:
    """The real Instacart shape when present (subsampled to n_items if smaller), else generated."""
    try:
        cat = instacart_catalog()
    except DatasetMissing:
        return generated_catalog(n_items or 49688, seed)
    if n_items is None or n_items >= cat.n_items:
        return cat
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(cat.n_items, size=n_items, replace=False))
    return Catalog(item_aisle=cat.item_aisle[keep], aisle_dept=cat.aisle_dept,
                   source=f"instacart/products.csv, {n_items} of {cat.n_items} products sampled")


# ------------------------------------------------------------------ baskets

def instacart_basket_counts() -> tuple[np.ndarray, np.ndarray]:
    """(product_id array, count array) of product lines in instacart/baskets_sample."""
    path = dataset_path("instacart", "baskets_sample", "order_products__prior.csv")
    ids = []
    with open(path, newline="") as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            ids.append(int(row[1]))
    u, c = np.unique(np.asarray(ids), return_counts=True)
    return u, c


def instacart_baskets(sample: str = "baskets_sample"):
    """Baskets of an Instacart sample: dict order_id -> list of product ids (cart order),
    and the orders table as a list of dicts."""
    orders = []
    with open(dataset_path("instacart", sample, "orders.csv"), newline="") as f:
        for row in csv.DictReader(f):
            orders.append({
                "order_id": int(row["order_id"]), "user_id": int(row["user_id"]),
                "eval_set": row["eval_set"], "order_number": int(row["order_number"]),
                "days_since_prior_order": float(row.get("days_since_prior_order") or 0.0),
                "order_hour_of_day": int(row.get("order_hour_of_day") or 0),
            })
    baskets: dict[int, list[tuple[int, int]]] = {}
    files = ["order_products__prior.csv"]
    if have("instacart", sample, "order_products__train.csv"):
        files.append("order_products__train.csv")
    for fn in files:
        with open(dataset_path("instacart", sample, fn), newline="") as f:
            r = csv.reader(f)
            next(r)
            for row in r:
                baskets.setdefault(int(row[0]), []).append((int(row[2]), int(row[1])))
    out = {k: [p for _, p in sorted(v)] for k, v in baskets.items()}
    return out, orders


def groceries_baskets() -> list[list[str]]:
    path = dataset_path("groceries", "groceries.csv")
    with open(path, newline="", encoding="utf-8") as f:
        return [[x for x in row if x] for row in csv.reader(f) if row]


def ml100k_ratings() -> np.ndarray:
    """(user, item, rating, timestamp) int64 array of ml-100k u.data."""
    path = dataset_path("ml-100k", "u.data")
    return np.loadtxt(path, dtype=np.int64)


def ml100k_genres() -> np.ndarray:
    """First genre flag index of each movie (0-based item index) as its category."""
    path = dataset_path("ml-100k", "u.item")
    cats = []
    with open(path, encoding="latin-1") as f:
        for line in f:
            parts = line.rstrip("\n").split("|")
            flags = [int(x) for x in parts[5:24]]
            cats.append(flags.index(1) if 1 in flags else 0)
    return np.asarray(cats, dtype=np.int64)


# ------------------------------------------------------------------ OBD

@dataclass
class BanditLog:
    """One OBD log: one row per (impression, slot)."""
    action: np.ndarray      # item id shown
    position: np.ndarray    # 0,1,2
    reward: np.ndarray      # click 0/1
    pscore: np.ndarray      # logging propensity of (action, position)
    time_ms: np.ndarray
    n_actions: int
    item_category: np.ndarray  # a categorical item feature used as the "category"
    name: str

    @property
    def n(self) -> int:
        return int(self.action.size)


def obd_log(policy: str = "random", campaign: str = "men") -> BanditLog:
    path = dataset_path("obd", policy, campaign, f"{campaign}.csv")
    from datetime import datetime
    act, pos, rew, ps, tms = [], [], [], [], []
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        i_t, i_a, i_p, i_c, i_ps = (header.index(h) for h in
                                    ("timestamp", "item_id", "position", "click", "propensity_score"))
        for row in r:
            act.append(int(row[i_a]))
            pos.append(int(row[i_p]) - 1)
            rew.append(int(row[i_c]))
            ps.append(float(row[i_ps]))
            tms.append(int(datetime.fromisoformat(row[i_t]).timestamp() * 1000))
    # item_feature_1 (7 values for men) serves as a category; hashed strings -> dense ints
    cpath = dataset_path("obd", policy, campaign, "item_context.csv")
    cat_of = {}
    with open(cpath, newline="") as f:
        r = csv.DictReader(f)
        vals = {}
        for row in r:
            v = row["item_feature_1"]
            vals.setdefault(v, len(vals))
            cat_of[int(row["item_id"])] = vals[v]
    n_actions = max(cat_of) + 1
    item_cat = np.asarray([cat_of[i] for i in range(n_actions)], dtype=np.int64)
    order = np.argsort(np.asarray(tms), kind="stable")
    return BanditLog(action=np.asarray(act)[order], position=np.asarray(pos)[order],
                     reward=np.asarray(rew, dtype=np.float64)[order],
                     pscore=np.asarray(ps)[order], time_ms=np.asarray(tms, dtype=np.int64)[order],
                     n_actions=n_actions, item_category=item_cat, name=f"obd/{policy}/{campaign}")
