"""A generated demo grocery catalog: departments -> aisles -> a few thousand products.

Everything here is made up by this module (vocabulary written for the project, brand
names built from syllables), deterministic for a given seed. Used by ``sako serve``
to seed its default database and by the examples.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

# department -> aisle -> product nouns
_DEPARTMENTS: Tuple[Tuple[str, Tuple[Tuple[str, Tuple[str, ...]], ...]], ...] = (
    ("Dairy & Eggs", (
        ("Milk", ("whole milk", "semi-skimmed milk", "oat drink", "lactose-free milk", "goat milk")),
        ("Yoghurt", ("natural yoghurt", "greek yoghurt", "strawberry yoghurt", "skyr", "kefir")),
        ("Cheese", ("cheddar", "mozzarella", "feta", "brie", "gouda", "cream cheese", "halloumi")),
        ("Eggs", ("free-range eggs", "organic eggs", "quail eggs")),
        ("Butter & Spreads", ("salted butter", "unsalted butter", "margarine", "ghee")),
    )),
    ("Fruit & Vegetables", (
        ("Fresh Fruit", ("apples", "bananas", "pears", "blueberries", "strawberries", "oranges", "grapes", "kiwis")),
        ("Fresh Vegetables", ("carrots", "broccoli", "spinach", "tomatoes", "cucumbers", "peppers", "onions", "leeks")),
        ("Salad", ("mixed leaves", "rocket", "iceberg lettuce", "baby spinach", "lambs lettuce")),
        ("Herbs", ("basil", "coriander", "parsley", "mint", "dill")),
        ("Potatoes", ("baking potatoes", "new potatoes", "sweet potatoes", "salad potatoes")),
    )),
    ("Bakery", (
        ("Bread", ("sourdough loaf", "wholemeal loaf", "rye bread", "white sandwich loaf", "seeded loaf")),
        ("Rolls & Bagels", ("bagels", "brioche buns", "ciabatta rolls", "pitta breads", "wraps")),
        ("Cakes & Pastries", ("croissants", "pain au chocolat", "muffins", "carrot cake", "cinnamon swirls")),
    )),
    ("Meat & Fish", (
        ("Chicken", ("chicken breasts", "chicken thighs", "whole chicken", "chicken wings")),
        ("Beef & Lamb", ("beef mince", "sirloin steak", "lamb chops", "diced beef")),
        ("Pork", ("pork sausages", "bacon rashers", "pork loin", "gammon steaks")),
        ("Fish", ("salmon fillets", "cod fillets", "prawns", "smoked mackerel", "tuna steaks")),
    )),
    ("Pantry", (
        ("Pasta & Rice", ("spaghetti", "penne", "fusilli", "basmati rice", "risotto rice", "egg noodles")),
        ("Tins & Jars", ("chopped tomatoes", "chickpeas", "kidney beans", "baked beans", "coconut milk", "tuna chunks")),
        ("Sauces", ("pasta sauce", "pesto", "curry paste", "ketchup", "mayonnaise", "soy sauce")),
        ("Breakfast Cereals", ("porridge oats", "granola", "muesli", "corn flakes", "bran flakes")),
        ("Baking", ("plain flour", "self-raising flour", "caster sugar", "baking powder", "cocoa powder")),
        ("Oils & Vinegars", ("olive oil", "sunflower oil", "balsamic vinegar", "cider vinegar", "sesame oil")),
    )),
    ("Snacks & Sweets", (
        ("Crisps", ("sea salt crisps", "salt & vinegar crisps", "tortilla chips", "popcorn", "pretzels")),
        ("Chocolate", ("milk chocolate bar", "dark chocolate bar", "chocolate buttons", "hazelnut chocolate")),
        ("Biscuits", ("digestives", "oat biscuits", "shortbread", "chocolate cookies", "ginger nuts")),
        ("Nuts & Dried Fruit", ("cashews", "almonds", "mixed nuts", "raisins", "dried apricots")),
    )),
    ("Drinks", (
        ("Water", ("still water", "sparkling water", "flavoured water")),
        ("Juice", ("orange juice", "apple juice", "cloudy lemonade", "smoothie")),
        ("Tea & Coffee", ("breakfast tea", "green tea", "ground coffee", "coffee beans", "instant coffee")),
        ("Soft Drinks", ("cola", "ginger beer", "tonic water", "iced tea")),
    )),
    ("Frozen", (
        ("Frozen Vegetables", ("garden peas", "sweetcorn", "mixed vegetables", "edamame")),
        ("Ice Cream", ("vanilla ice cream", "chocolate ice cream", "sorbet", "ice lollies")),
        ("Frozen Meals", ("pizza", "lasagne", "fish fingers", "veggie burgers", "dumplings")),
    )),
    ("Household", (
        ("Cleaning", ("washing-up liquid", "surface spray", "bleach", "dishwasher tablets")),
        ("Laundry", ("laundry liquid", "fabric conditioner", "stain remover")),
        ("Paper", ("toilet roll", "kitchen roll", "tissues")),
    )),
    ("Baby & Personal Care", (
        ("Baby", ("nappies", "baby wipes", "baby food pouches")),
        ("Toiletries", ("shampoo", "shower gel", "toothpaste", "hand soap", "deodorant")),
    )),
)

_ADJECTIVES = ("organic", "classic", "finest", "everyday", "family", "light", "smoky",
               "farmhouse", "luxury", "simply", "wholesome", "extra mature", "hearty",
               "zesty", "golden", "rustic", "creamy", "crunchy", "mild", "bold")
_SIZES = ("250g", "400g", "500g", "1kg", "6 pack", "4 pack", "1l", "2l", "750ml", "200g",
          "12 pack", "300g")
_SYL_A = ("Bra", "Lo", "Ve", "Ma", "Tor", "Fen", "Sil", "Kal", "Nor", "Pe", "Gra", "Hal",
          "Del", "Ru", "Os", "Ami")
_SYL_B = ("mo", "ri", "va", "den", "lin", "sa", "to", "ne", "ko", "ber", "la", "vi")
_SYL_C = ("", "'s", " Farm", " & Co", " Kitchen", " Valley", " Mill", "")


@dataclass
class DemoCatalog:
    """The generated catalog.

    Attributes
    ----------
    categories : list of (id, parent_id, name)
        Departments (parent 0) first, then aisles.
    items : list of (id, category_id)
    names : dict item id -> product name
    aisle_of : dict item id -> aisle id
    """

    categories: List[Tuple[int, int, str]] = field(default_factory=list)
    items: List[Tuple[int, int]] = field(default_factory=list)
    names: Dict[int, str] = field(default_factory=dict)
    aisle_of: Dict[int, int] = field(default_factory=dict)

    def category_name(self, cid: int) -> str:
        for c in self.categories:
            if c[0] == cid:
                return c[2]
        return str(cid)

    def aisles(self) -> List[Tuple[int, int, str]]:
        return [c for c in self.categories if c[1] != 0]


def _brands(rng: random.Random, n: int) -> List[str]:
    seen: Dict[str, None] = {}
    while len(seen) < n:
        seen[rng.choice(_SYL_A) + rng.choice(_SYL_B) + rng.choice(_SYL_C)] = None
    return list(seen)


def make_catalog(n_products: int = 3000, seed: int = 42) -> DemoCatalog:
    """Generate the demo catalog.

    Parameters
    ----------
    n_products : int
        Number of products (spread over the aisles in proportion to their nouns).
    seed : int
        The same seed gives the same catalog.
    """
    rng = random.Random(seed)
    cat = DemoCatalog()
    brands = _brands(rng, 40)
    aisles: List[Tuple[int, Tuple[str, ...]]] = []
    for d, (dept, dept_aisles) in enumerate(_DEPARTMENTS, start=1):
        cat.categories.append((d, 0, dept))
    aid = 100
    for d, (dept, dept_aisles) in enumerate(_DEPARTMENTS, start=1):
        for aisle, nouns in dept_aisles:
            aid += 1
            cat.categories.append((aid, d, aisle))
            aisles.append((aid, nouns))
    total_nouns = sum(len(n) for _, n in aisles)
    item_id = 10000
    used: Dict[str, None] = {}
    for a, nouns in aisles:
        quota = max(1, round(n_products * len(nouns) / total_nouns))
        for _ in range(quota):
            if len(cat.items) >= n_products:
                break
            for _attempt in range(20):
                name = "%s %s %s %s" % (rng.choice(brands), rng.choice(_ADJECTIVES),
                                        rng.choice(nouns), rng.choice(_SIZES))
                if name not in used:
                    break
            used[name] = None
            item_id += 1
            cat.items.append((item_id, a))
            cat.names[item_id] = name
            cat.aisle_of[item_id] = a
    # rounding may leave a few short: fill from the largest aisles
    while len(cat.items) < n_products:
        a, nouns = aisles[len(cat.items) % len(aisles)]
        item_id += 1
        name = "%s %s %s %s #%d" % (rng.choice(brands), rng.choice(_ADJECTIVES),
                                    rng.choice(nouns), rng.choice(_SIZES), item_id)
        cat.items.append((item_id, a))
        cat.names[item_id] = name
        cat.aisle_of[item_id] = a
    return cat


def simulate_events(catalog: DemoCatalog, n_users: int = 200, n_events: int = 20000,
                    seed: int = 42, start_ms: Optional[int] = None):
    """Simulated shoppers' history as parallel arrays (users, items, types, times).

    Each product has a hidden appeal; each shopper prefers a few aisles. Impressions
    lead to clicks, carts and purchases with probabilities that grow with appeal.
    """
    import numpy as np

    rs = np.random.default_rng(seed)
    items = np.array([i for i, _ in catalog.items], dtype=np.int64)
    aisle = np.array([a for _, a in catalog.items], dtype=np.int64)
    appeal = rs.beta(2.0, 8.0, size=len(items))
    aisle_ids = np.unique(aisle)
    fav = {u: rs.choice(aisle_ids, size=3, replace=False) for u in range(1, n_users + 1)}
    users = rs.integers(1, n_users + 1, size=n_events)
    pick = np.empty(n_events, dtype=np.int64)
    by_aisle = {a: np.nonzero(aisle == a)[0] for a in aisle_ids}
    for j in range(n_events):
        if rs.random() < 0.7:
            members = by_aisle[fav[int(users[j])][rs.integers(0, 3)]]
            pick[j] = members[rs.integers(0, len(members))]
        else:
            pick[j] = rs.integers(0, len(items))
    p = appeal[pick]
    r = rs.random(n_events)
    types = np.where(r < p * 0.25, 3, np.where(r < p * 0.5, 2, np.where(r < p, 1, 0))).astype(np.int32)
    if start_ms is None:
        start_ms = 1_700_000_000_000
    times = start_ms + np.sort(rs.integers(0, 30 * 86_400_000, size=n_events))
    return users.astype(np.int64), items[pick], types, times.astype(np.int64)


def seed_engine(engine, n_products: int = 3000, seed: int = 42, events: int = 20000) -> DemoCatalog:
    """Load the demo catalog (and, if ``events``, a simulated history) into an engine."""
    cat = make_catalog(n_products, seed)
    engine.upsert_categories(cat.categories)
    ids = [i for i, _ in cat.items]
    cats = [c for _, c in cat.items]
    engine.upsert_items_arrays(ids, cats)
    if events:
        u, i, t, tm = simulate_events(cat, n_events=events, seed=seed)
        engine.update_arrays(u, i, t, tm)
    return cat
