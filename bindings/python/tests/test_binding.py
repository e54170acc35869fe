"""Round trips through the binding: recommend, events, catalog, info, lifecycle."""
from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import sako
from sako import _sako
from sako._engine import DTYPES

from conftest import CATEGORIES, ITEMS, fill


def test_version_from_c():
    assert sako.__version__ == _sako.SAKO_VERSION_STRING
    assert _sako.sako_version_number() == _sako.SAKO_VERSION_NUMBER
    assert sako.version_info == (_sako.SAKO_VERSION_MAJOR, _sako.SAKO_VERSION_MINOR,
                                 _sako.SAKO_VERSION_PATCH)
    assert _sako.sako_threadsafe() == 1


def test_default_options_come_from_c():
    o = sako.default_options()
    assert o["reward_click"] == pytest.approx(0.7)
    assert o["reward_purchase"] == 1.0
    assert o["busy_timeout_ms"] == 5000


def test_recommend_objects(engine):
    recs = engine.recommend(1, k=5)
    assert len(recs) == 5
    assert all(isinstance(r, sako.Recommendation) for r in recs)
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    assert {r.source for r in recs} == {"thompson"}
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert repr(recs[0]).startswith("Recommendation(item_id=")
    with pytest.raises(AttributeError):
        recs[0].extra = 1  # __slots__
    assert recs[0].as_dict()["item_id"] == recs[0].item_id
    assert recs[0] == sako.Recommendation(recs[0].item_id, recs[0].score, "thompson")


def test_recommend_arrays(engine):
    ids, scores = engine.recommend_arrays(1, k=7)
    assert ids.dtype == np.int64 and scores.dtype == np.float64
    assert ids.shape == scores.shape == (7,)
    assert np.all(np.diff(scores) <= 0)
    assert set(ids.tolist()) <= {i for i, _ in ITEMS}


def test_k_bounds(engine):
    assert engine.recommend(1, k=0) == []
    ids, scores = engine.recommend_arrays(1, k=0)
    assert ids.shape == (0,)
    assert len(engine.recommend(1, k=1000)) == len(ITEMS)  # k > n_items: all of them
    ids, _ = engine.recommend_arrays(1, k=100)
    assert len(ids) == len(ITEMS)


def test_category_exclude_recent(engine):
    recs = engine.recommend(1, k=50, category=2)
    assert {r.item_id for r in recs} == {i for i, c in ITEMS if c == 2}
    dairy = engine.recommend(1, k=50, category=1)  # subtree: yoghurt + cheese
    assert {r.item_id for r in dairy} == {i for i, c in ITEMS if c in (2, 3)}
    excl = [i for i, c in ITEMS if c == 2][:3]
    recs = engine.recommend(1, k=50, category=2, exclude=excl, recent=[101, 102])
    assert not {r.item_id for r in recs} & set(excl)
    recs = engine.recommend(1, k=50, exclude=np.array(excl, dtype=np.int32))
    assert len(recs) == len(ITEMS) - 3


def test_update_tuples_dicts_events(engine):
    n = engine.update([
        (1, 100, "click", 0),
        (1, 100, sako.EventType.PURCHASE),
        {"user_id": 2, "item_id": 101, "type": "impression"},
        {"user_id": 2, "item_id": 101, "type": 2, "time": 1_700_000_000_000, "recommendation_id": 5},
        sako.Event(3, 102, "cart"),
    ])
    assert n == 5
    a = engine.item(100)
    assert a.clicks == 1 and a.purchases == 1
    b = engine.item(101)
    assert b.impressions == 1 and b.carts == 1
    s = engine.stats()
    assert s.n_events == 5 and s.n_users == 3


def test_update_arrays_and_types_by_name(engine):
    users = np.array([1, 2, 3, 4], dtype=np.int64)
    items = np.array([100, 100, 101, 101])
    types = np.array(["click", "impression", "PURCHASE", "cart"])
    assert engine.update_arrays(users, items, types) == 4
    assert engine.item(100).clicks == 1
    assert engine.item(101).purchases == 1
    times = np.array(["2026-01-01T00:00", "2026-01-02T00:00"], dtype="datetime64[m]")
    engine.update_arrays([5, 5], [102, 102], [0, 1], times)
    assert engine.item(102).last_event_at == int(np.datetime64("2026-01-02", "ms").astype(np.int64))


def test_non_contiguous_and_other_dtypes_are_converted(engine):
    big = np.array([[1, 100], [2, 101], [3, 102], [4, 103]], dtype=np.int32)
    users, items = big[:, 0], big[:, 1]  # strided views
    assert not users.flags.c_contiguous
    types = np.arange(8, dtype=np.int16)[::2] % 4
    assert engine.update_arrays(users, items, types) == 4
    assert engine.update_arrays(np.array([1.0, 2.0]), np.array([100.0, 101.0]), [1, 1]) == 2
    assert engine.update_arrays(np.array([1], dtype=np.uint8), [100], [0]) == 1


def test_wrong_dtypes_refused_cleanly(engine):
    with pytest.raises(sako.InvalidArgument, match="integers"):
        engine.update_arrays(np.array([1.5, 2.0]), [100, 101], [0, 0])
    with pytest.raises(sako.InvalidArgument):
        engine.update_arrays(np.array([np.nan]), [100], [0])
    with pytest.raises(TypeError):
        engine.update_arrays(np.array([True]), [100], [0])
    with pytest.raises(TypeError):
        engine.update_arrays(np.array([1 + 2j]), [100], [0])
    with pytest.raises(sako.InvalidArgument, match="1-D"):
        engine.update_arrays(np.ones((2, 2), dtype=np.int64), [100, 101], [0, 0])
    with pytest.raises(sako.InvalidArgument, match="unknown event type"):
        engine.update_arrays([1], [100], ["view"])
    with pytest.raises(sako.InvalidArgument, match="differ in length"):
        engine.update_arrays([1, 2], [100], [0, 0])
    with pytest.raises(sako.InvalidArgument):
        engine.update_arrays([1], [100], [7])  # C rejects the type
    with pytest.raises(sako.InvalidArgument):
        engine.update([(1, 100)])  # too few fields
    with pytest.raises(sako.InvalidArgument):
        engine.update([{"user_id": 1, "item_id": 100}])  # missing type
    assert engine.stats().n_events == 0  # nothing half-applied


def test_raw_layer_refuses_bad_buffers(engine):
    """The one buffer typemap: 1-D, C-contiguous, the exact item size (and type, for
    scalars); never a conversion."""
    h = engine._h
    out = np.empty(5, DTYPES["sako_rec"])
    with pytest.raises(TypeError, match="8-byte items"):
        _sako.recommend(h, 1, 5, 0, np.array([1], dtype=np.int32), None, 0, 0, out)
    with pytest.raises(TypeError, match="format"):
        _sako.recommend(h, 1, 5, 0, np.array([1.0]), None, 0, 0, out)
    with pytest.raises(ValueError, match="contiguous"):
        _sako.recommend(h, 1, 5, 0, np.arange(10, dtype=np.int64)[::2], None, 0, 0, out)
    with pytest.raises(TypeError):
        _sako.recommend(h, 1, 5, 0, [1], None, 0, 0, out)
    with pytest.raises(TypeError):
        _sako.recommend(h, 1, 5, 0, np.array([1], dtype=">i8"), None, 0, 0, out)
    with pytest.raises(TypeError, match="24-byte items"):
        _sako.recommend(h, 1, 5, 0, None, None, 0, 0, np.empty(15, np.int64))
    ro = out.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        _sako.recommend(h, 1, 5, 0, None, None, 0, 0, ro)
    with pytest.raises(TypeError, match="40-byte items"):
        _sako.sako_update(h, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="at least one"):
        _sako.sako_stats_get(h, np.zeros(0, DTYPES["sako_stats"]))
    import array
    assert _sako.recommend(h, 1, 5, 0, array.array("q", [100]), None, 0, 0, out) == 5
    assert _sako.sako_retrain(h) is None  # SAKO_OK


def test_out_of_range_scalars(engine):
    with pytest.raises(sako.InvalidArgument):
        engine.recommend(2**70)
    with pytest.raises(sako.InvalidArgument):
        engine.recommend(-1)
    with pytest.raises(sako.InvalidArgument):
        engine.recommend("7")
    with pytest.raises(sako.RangeError):
        engine.recommend(1, k=2**40)
    with pytest.raises(sako.InvalidArgument):
        engine.recommend(1, k=-(2**40))
    with pytest.raises(sako.InvalidArgument):
        engine.item(0)
    with pytest.raises(sako.InvalidArgument):
        engine.update([(sako.ID_MAX + 1, 100, "click")])


def test_catalog_roundtrip_and_arrays(engine):
    engine.upsert_categories_arrays(np.array([6, 7]), np.array([0, 6]), ["Drinks", "Water"])
    engine.upsert_items_arrays(np.arange(500, 510), np.full(10, 7), np.ones(10, bool))
    s = engine.stats()
    assert s.n_categories == len(CATEGORIES) + 2
    assert s.n_items == len(ITEMS) + 10
    engine.upsert_items([{"id": 500, "category_id": 7, "active": False}])
    assert engine.item(500).active is False
    assert engine.stats().n_active_items == len(ITEMS) + 9
    recs = engine.recommend(1, k=100, category=7)
    assert 500 not in {r.item_id for r in recs}
    assert engine.category_prior(7) > 0
    assert engine.category_prior(0) > 0
    with pytest.raises(sako.InvalidArgument, match="NUL"):
        engine.upsert_categories([(8, 0, "bad\x00name")])
    with pytest.raises(sako.NotFound):
        engine.upsert_items([(600, 999)])
    with pytest.raises(sako.NotFound):
        engine.upsert_categories([(9, 999, "orphan")])
    with pytest.raises(sako.NotFound):
        engine.category_prior(12345)


def test_item_info_and_retrain(engine):
    engine.update([(1, 100, "impression"), (1, 100, "click"), (2, 100, "purchase")])
    info = engine.item(100)
    assert isinstance(info, sako.ItemInfo)
    assert info.alpha > 0 and info.beta > 0
    assert 0 < info.posterior_mean < 1
    v0 = engine.stats().model_version
    s = engine.retrain()
    assert s.model_version > v0
    after = engine.item(100)  # evidence kept; the prior may be refreshed
    assert (after.impressions, after.clicks, after.purchases) == (1, 1, 1)


def test_persistence(db_path):
    with sako.open(db_path, seed=1) as e:
        fill(e)
        e.update([(1, 100, "purchase")])
    with sako.open(db_path) as e:
        assert e.stats().n_items == len(ITEMS)
        assert e.item(100).purchases == 1
    assert os.path.exists(db_path)


def test_close_is_idempotent_and_safe(db_path):
    e = sako.Engine(db_path)
    e.close()
    e.close()
    assert e.closed
    for call in (lambda: e.recommend(1), lambda: e.recommend_arrays(1), lambda: e.stats(),
                 lambda: e.update([(1, 2, 0)]), lambda: e.update_arrays([1], [2], [0]),
                 lambda: e.upsert_items([(1, 0)]), lambda: e.upsert_categories([(1, 0, "x")]),
                 lambda: e.retrain(), lambda: e.item(1), lambda: e.category_prior(0)):
        with pytest.raises(sako.SakoError, match="engine is closed") as ei:
            call()
        assert isinstance(ei.value, sako.Misuse)
    assert "closed" in repr(e)


def test_context_manager_and_gc(db_path):
    with sako.open(db_path) as e:
        assert not e.closed
    assert e.closed
    e2 = sako.Engine(db_path)
    del e2
    gc.collect()  # __del__ frees the handle without a crash


def test_options(db_path):
    with sako.open(db_path, durability="normal", unknown_items="create", prior="flat",
                   seed=3, reward_click=0.5) as e:
        e.update([(1, 4242, "click")])  # auto-created
        assert e.item(4242).clicks == 1
        assert e.options["reward_click"] == 0.5
    with pytest.raises(sako.InvalidArgument, match="unknown option"):
        sako.Engine(None, nonsense=1)
    with pytest.raises(sako.InvalidArgument, match="durability"):
        sako.Engine(None, durability="sometimes")
    with pytest.raises(sako.InvalidArgument):
        sako.Engine(None, reward_click=float("nan"))


def test_seeded_engines_are_deterministic():
    out = []
    for _ in range(2):
        with sako.open(None, seed=11) as e:
            fill(e)
            out.append([(r.item_id, r.score) for r in e.recommend(1, k=10)])
    assert out[0] == out[1]


def test_learning_moves_recommendations(engine):
    """An item with many purchases should come first nearly always."""
    engine.update([(u, 115, "purchase") for u in range(1, 200)])
    engine.update([(u, i, "impression") for u in range(1, 50) for i, _ in ITEMS if i != 115])
    top = [engine.recommend(1, k=1)[0].item_id for _ in range(50)]
    assert top.count(115) >= 45
