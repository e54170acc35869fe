"""The personal engine through the binding (0.2): its options, order ids and baskets,
users' state, the modes and the sources of results."""
from __future__ import annotations

import numpy as np
import pytest

import sako
from sako import _sako
from sako._engine import DTYPES

from conftest import ITEMS, fill

T0 = 1_700_000_000_000  # unix ms
DAY = 86_400_000
SOURCES = {"thompson", "repeat", "affinity", "copurchase", "demand", "mf"}

#: a value for every option of the personal engine, none of them the default
PERSONAL_OPTIONS = {
    "organic_demand": 0, "demand_min_purchases": 50, "personal": 1, "personal_min_baskets": 2,
    "half_life_days": 30.0, "personal_strength": 5.0, "personal_temperature": 0.1,
    "due_exponent": 0.5, "affinity_strength": 10.0, "lift_strength": 2.0,
    "basket_gap_ms": 60_000,
}


def buy(engine, user, items, order, time):
    """One basket: `user` buys every item of `items` in order `order` at `time`."""
    return engine.update([(user, it, "purchase", time, 0, order) for it in items])


# ------------------------------------------------------------------- options
def test_defaults_are_the_headers():
    o = sako.default_options()
    assert o["personal"] == 1 and o["organic_demand"] == 1
    assert o["personal_min_baskets"] == 1 and o["demand_min_purchases"] == 100
    assert (o["half_life_days"], o["personal_strength"], o["personal_temperature"]) == (45.0, 1.0, 0.0)
    assert (o["due_exponent"], o["affinity_strength"], o["lift_strength"]) == (0.2, 20.0, 5.0)
    assert o["basket_gap_ms"] == 1_800_000


def test_options_set_at_open_are_reported_back(db_path):
    with sako.open(db_path, seed=5, **PERSONAL_OPTIONS) as e:
        for key, want in PERSONAL_OPTIONS.items():
            assert e.options[key] == want, key
        assert e.options["seed"] == 5
    # model fields are stored: reopened without options, the database keeps them
    with sako.open(db_path) as e:
        for key, want in PERSONAL_OPTIONS.items():
            assert e.options[key] == want, key
    # and only reconfigure replaces them: all of them, by the open's (given or default)
    with sako.open(db_path, personal_temperature=0.5) as e:
        assert e.options["personal_temperature"] == 0.1
    with sako.open(db_path, personal_temperature=0.5, reconfigure=1) as e:
        assert e.options["personal_temperature"] == 0.5
        assert e.options["half_life_days"] == sako.default_options()["half_life_days"]


def test_options_come_from_c_not_from_the_arguments(db_path):
    """Engine.options is what sako_options_get reports: a clock seed as used, reconfigure 0."""
    with sako.open(db_path, reconfigure=1) as e:
        assert e.options["reconfigure"] == 0
        assert e.options["seed"] != 0
        assert set(e.options) == set(sako.default_options())


def test_bad_personal_options():
    with pytest.raises(sako.InvalidArgument, match="personal_min_baskets"):
        sako.open(None, personal_min_baskets=-1)  # a uint32_t
    with pytest.raises(sako.InvalidArgument, match="half_life_days"):
        sako.open(None, half_life_days="long")
    with pytest.raises(sako.InvalidArgument):
        sako.open(None, personal_temperature=float("nan"))
    with pytest.raises(sako.InvalidArgument):
        sako.open(None, half_life_days=-1.0)


# ------------------------------------------------------------ order ids, baskets
def test_three_orders_are_three_baskets(engine):
    for n in range(3):
        buy(engine, 7, [100], order=11 + n, time=T0 + n * DAY)
    u = engine.user(7)
    assert isinstance(u, sako.UserInfo)
    assert (u.id, u.n_events, u.n_baskets, u.n_products) == (7, 3, 3, 1)
    assert u.personal is True
    assert u.last_event_at == T0 + 2 * DAY and u.last_basket_at == T0 + 2 * DAY
    assert 0 < u.weight <= 3
    ui = engine.user_item(7, 100)
    assert isinstance(ui, sako.UserItem)
    assert (ui.item_id, ui.n_baskets, ui.last_bought_at) == (100, 3, T0 + 2 * DAY)
    assert 0 < ui.weight <= 3
    assert ui.mean_gap_days == pytest.approx(1.0)


def test_one_order_id_is_one_basket_across_batches(engine):
    engine.update([(7, 100, "purchase", T0, 0, 21)])
    engine.update_arrays([7, 7], [101, 102], ["purchase"] * 2, [T0 + 5 * 3_600_000] * 2,
                         None, [21, 21])
    u = engine.user(7)
    assert (u.n_baskets, u.n_products) == (1, 3)
    assert engine.user_item(7, 101).n_baskets == 1


def test_distinct_order_ids_at_one_time_are_distinct_baskets(engine):
    engine.update_arrays([7, 7], [100, 100], ["purchase"] * 2, [T0, T0], None, [31, 32])
    assert engine.user(7).n_baskets == 2
    assert engine.user_item(7, 100).n_baskets == 2


def test_without_order_ids_the_gap_splits_baskets(engine):
    gap = sako.default_options()["basket_gap_ms"]
    engine.update([(7, 100, "purchase", T0), (7, 101, "purchase", T0 + 60_000)])
    assert engine.user(7).n_baskets == 1
    engine.update([(7, 102, "purchase", T0 + 60_000 + gap + 1)])
    assert engine.user(7).n_baskets == 2


def test_order_id_in_every_event_form(engine):
    engine.update([sako.Event(7, 100, "purchase", T0, order_id=41),
                   {"user_id": 7, "item_id": 101, "type": "purchase", "time": T0, "order_id": 41},
                   (7, 102, "purchase", T0, 0, 41)])
    assert engine.user(7).n_baskets == 1
    assert sako.Event(1, 2, "click").order_id == 0


def test_no_order_ids_goes_through_sako_update(engine, monkeypatch):
    calls = []
    real = _sako.update_orders
    monkeypatch.setattr(_sako, "update_orders", lambda *a: calls.append(a) or real(*a))
    engine.update([(7, 100, "purchase"), (7, 101, "purchase", 0, 0, 0)])
    engine.update_arrays([7], [102], ["purchase"])
    assert calls == []
    engine.update([(7, 100, "purchase", 0, 0, 9)])
    assert len(calls) == 1


@pytest.mark.parametrize("order", [-1, sako.ID_MAX + 1, 2**63 - 1])
def test_bad_order_id_refuses_the_batch(engine, order):
    with pytest.raises(sako.InvalidArgument) as ei:
        engine.update([(7, 100, "purchase", T0, 0, 5), (7, 101, "purchase", T0, 0, order)])
    assert isinstance(ei.value, ValueError)
    with pytest.raises(sako.InvalidArgument):
        engine.update_arrays([7], [100], ["purchase"], None, None, [order])
    assert engine.stats().n_events == 0
    with pytest.raises(sako.NotFound):
        engine.user(7)


def test_order_ids_checked_by_the_binding(engine):
    with pytest.raises(sako.InvalidArgument, match="order_id"):
        engine.update([(7, 100, "purchase", T0, 0, "x")])
    with pytest.raises(sako.InvalidArgument, match="order_id"):
        engine.update([(7, 100, "purchase", T0, 0, 2**70)])
    with pytest.raises(sako.InvalidArgument, match="differ in length"):
        engine.update_arrays([7, 7], [100, 101], [3, 3], None, None, [1])
    with pytest.raises(sako.InvalidArgument, match="integers"):
        engine.update_arrays([7], [100], [3], None, None, [1.5])
    with pytest.raises(sako.InvalidArgument, match="order_id"):
        engine.update([(7, 100, "purchase", T0, 0, 1, 2)])  # seven fields
    # the raw layer checks the lengths too (libsako would read past the shorter array)
    buf = np.zeros(2, DTYPES["sako_event"])
    buf["user_id"], buf["item_id"], buf["type"] = 7, 100, 3
    with pytest.raises(sako.InvalidArgument, match="differ in length"):
        _sako.update_orders(engine._h, buf, np.array([1], np.int64))
    assert engine.stats().n_events == 0


# ------------------------------------------------------------------ users
def test_unknown_user_and_product(engine):
    with pytest.raises(sako.NotFound):
        engine.user(4242)
    with pytest.raises(KeyError):  # NotFound is a KeyError too
        engine.user_item(4242, 100)
    buy(engine, 7, [100], order=1, time=T0)
    with pytest.raises(sako.NotFound):
        engine.user_item(7, 101)  # never bought
    with pytest.raises(sako.InvalidArgument):
        engine.user(0)
    with pytest.raises(sako.InvalidArgument):
        engine.user_item(7, sako.ID_MAX + 1)


def test_a_user_without_purchases(engine):
    engine.update([(8, 100, "click", T0)])
    u = engine.user(8)
    assert (u.n_events, u.n_baskets, u.n_products, u.last_basket_at) == (1, 0, 0, 0)
    assert u.personal is False
    assert engine.recommend(8, k=10, mode="repeat") == []


def test_personal_off_keeps_the_population_engine():
    with sako.open(None, seed=3, personal=0) as e:
        fill(e)
        buy(e, 7, [100, 101], order=1, time=T0)
        assert e.user(7).personal is False
        assert {r.source for r in e.recommend(7, k=30)} == {"thompson"}


def test_closed_engine(db_path):
    e = sako.open(db_path)
    e.close()
    for call in (lambda: e.user(1), lambda: e.user_item(1, 2),
                 lambda: e.update([(1, 2, 3, 0, 0, 4)]), lambda: e.recommend(1, mode="repeat")):
        with pytest.raises(sako.Misuse, match="engine is closed"):
            call()


# ------------------------------------------------------------------- modes
@pytest.fixture
def shopper(engine):
    """User 7 bought 100, 101, 104 over three orders; others bought other things."""
    buy(engine, 7, [100, 101], order=1, time=T0)
    buy(engine, 7, [100, 104], order=2, time=T0 + 7 * DAY)
    buy(engine, 7, [101], order=3, time=T0 + 14 * DAY)
    for u in range(20, 30):
        buy(engine, u, [100 + (u % 7), 110 + (u % 5)], order=1000 + u, time=T0 + u * DAY)
    return engine


BOUGHT = {100, 101, 104}


def test_repeat_returns_only_what_the_user_bought(shopper):
    for _ in range(10):
        recs = shopper.recommend(7, k=30, mode="repeat")
        assert {r.item_id for r in recs} == BOUGHT
        assert {r.source for r in recs} <= SOURCES - {"thompson"}
    ids, scores = shopper.recommend_arrays(7, k=2, mode="repeat")
    assert len(ids) == 2 and set(ids.tolist()) <= BOUGHT and scores[0] >= scores[1]


def test_discover_returns_none_of_it(shopper):
    for _ in range(10):
        recs = shopper.recommend(7, k=30, mode="discover")
        assert len(recs) == len(ITEMS) - len(BOUGHT)
        assert not {r.item_id for r in recs} & BOUGHT
        assert "repeat" not in {r.source for r in recs}
    ids, _ = shopper.recommend_arrays(7, k=30, mode=sako.Mode.DISCOVER)
    assert not set(ids.tolist()) & BOUGHT


def test_mixed_is_the_default_and_covers_both(shopper):
    recs = shopper.recommend(7, k=30, time=T0 + 21 * DAY)  # a fixed time: decay is to it
    assert {r.item_id for r in recs} == {i for i, _ in ITEMS}
    assert {r.source for r in recs} <= SOURCES - {"thompson"}
    assert "repeat" in {r.source for r in recs}
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_repeat_ranks_the_users_staples_first(shopper):
    """Bought in every basket a fortnight ago vs never: the staples lead a mixed list."""
    top = [shopper.recommend(7, k=3, time=T0 + 21 * DAY) for _ in range(20)]
    hits = sum(len({r.item_id for r in t} & BOUGHT) for t in top)
    assert hits >= 40, hits


def test_modes_by_name_enum_and_int(shopper):
    for mode in ("repeat", "REPEAT", sako.Mode.REPEAT, 1, np.int32(1)):
        assert {r.item_id for r in shopper.recommend(7, k=30, mode=mode)} == BOUGHT
    assert str(sako.Mode.DISCOVER) == "discover"
    assert sako.MODE_NAMES == {"mixed": 0, "repeat": 1, "discover": 2}


@pytest.mark.parametrize("mode", ["sideways", "", "repeat "])
def test_unknown_mode_name(engine, mode):
    with pytest.raises(sako.InvalidArgument, match="mixed, repeat, discover") as ei:
        engine.recommend(7, mode=mode)
    assert isinstance(ei.value, ValueError)
    with pytest.raises(sako.InvalidArgument):
        engine.recommend_arrays(7, mode=mode)


@pytest.mark.parametrize("mode", [3, -1, 2**40, True, None, 1.0, b"repeat"])
def test_bad_mode_values(engine, mode):
    with pytest.raises(sako.InvalidArgument):
        engine.recommend(7, mode=mode)


def test_anonymous_and_new_users_get_the_population_engine(shopper):
    for user in (0, 4242):
        assert {r.source for r in shopper.recommend(user, k=30)} == {"thompson"}
        assert shopper.recommend(user, k=30, mode="repeat") == []
        assert len(shopper.recommend(user, k=30, mode="discover")) == len(ITEMS)


def test_time(shopper):
    assert len(shopper.recommend(7, k=5, time=T0 + 30 * DAY)) == 5
    assert len(shopper.recommend(7, k=5, time=np.int64(T0))) == 5
    for bad in (-1, sako.TIME_MAX + 1):
        with pytest.raises(ValueError):  # InvalidArgument or RangeError
            shopper.recommend(7, time=bad)
    with pytest.raises(sako.InvalidArgument):
        shopper.recommend(7, time="now")


def test_time_is_what_decay_and_dueness_are_measured_to():
    with sako.open(None, seed=1, personal_temperature=0) as e:  # posterior means: no draw
        fill(e)
        buy(e, 7, [100], order=1, time=T0)
        buy(e, 7, [100], order=2, time=T0 + 7 * DAY)

        def score(days):
            return e.recommend(7, k=1, mode="repeat", time=T0 + days * DAY)[0].score
        assert score(8) < score(14)  # bought a day ago, every 7 days: not yet due
        assert score(14) > score(2000)  # due, and later forgotten
        assert score(2000) == pytest.approx(score(3000))  # long forgotten: back to the prior


def test_copurchase_partners_of_recent(engine):
    """Products bought together with a product in `recent` come in as `copurchase`."""
    for u in range(20, 60):
        buy(engine, u, [100, 113], order=u, time=T0 + u * 3_600_000)
    buy(engine, 7, [120], order=1, time=T0)
    sources = {}
    for _ in range(20):
        for r in engine.recommend(7, k=5, recent=[100], mode="discover", time=T0 + 60 * DAY):
            sources.setdefault(r.item_id, set()).add(r.source)
    assert "copurchase" in sources.get(113, set()), sources


def test_source_names_cover_the_header():
    assert set(sako.SOURCE_NAMES.values()) == SOURCES
    assert sako.SOURCE_NAMES[_sako.SAKO_SOURCE_DEMAND] == "demand"
    assert sako.SOURCE_NAMES[99] == "source_99"  # one added to C later still gets a name
