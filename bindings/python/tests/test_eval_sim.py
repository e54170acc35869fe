"""The simulated grocery world: determinism, common random numbers, oracle exactness."""
import numpy as np
import pytest

pytest.importorskip("sako.eval", reason="the sako package is not importable")
from sako.eval import sim  # noqa: E402
from sako.eval.policies import (CategoryPriorTS, OriginalTS, PopularityPolicy,  # noqa: E402
                                RandomPolicy)

CALIB = sim.Calibration(sigma_item=1.6, sigma_aisle=0.9, aisle_effect=None, source="test defaults")


def small_cfg(seed=3, **kw):
    base = dict(n_items=600, n_users=50, n_requests=120, k=5, seed=seed)
    base.update(kw)
    return sim.SimConfig(**base)


def run_all(cfg):
    pols = [RandomPolicy(), OriginalTS(), CategoryPriorTS(refresh_events=100), PopularityPolicy()]
    return sim.simulate(cfg, pols, CALIB, keep_shown=True)


def test_same_seed_identical_trajectories():
    a = run_all(small_cfg())
    b = run_all(small_cfg())
    np.testing.assert_array_equal(a.pop_oracle, b.pop_oracle)
    np.testing.assert_array_equal(a.personal_oracle, b.personal_oracle)
    for ta, tb in zip(a.trajectories, b.trajectories):
        assert ta.name == tb.name
        assert len(ta.shown) == len(tb.shown)
        for x, y in zip(ta.shown, tb.shown):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(ta.value, tb.value)
        np.testing.assert_array_equal(ta.clicks, tb.clicks)
        np.testing.assert_array_equal(ta.purchases, tb.purchases)


def test_other_seed_differs():
    a = run_all(small_cfg(seed=3))
    b = run_all(small_cfg(seed=4))
    assert not np.array_equal(a.trajectories[0].value, b.trajectories[0].value)


def test_common_random_numbers():
    items = np.arange(1000)
    u1 = sim._uniforms(5, 17, items, 0)
    np.testing.assert_array_equal(u1, sim._uniforms(5, 17, items, 0))
    assert 0.0 <= u1.min() and u1.max() < 1.0
    # the same item's outcome does not depend on which other items are on the slate
    assert sim._uniforms(5, 17, items[[3]], 0)[0] == u1[3]
    # roughly uniform
    assert abs(u1.mean() - 0.5) < 0.05
    assert not np.array_equal(u1, sim._uniforms(5, 18, items, 0))
    assert not np.array_equal(u1, sim._uniforms(5, 17, items, 1))


def test_personal_oracle_is_exact_and_dominates():
    cfg = small_cfg()
    w = sim.World(cfg, CALIB)
    pop, per = w.oracles()
    for t in range(0, cfg.n_requests, 7):
        appeal, active, _ = w._phase(t)
        idx = np.flatnonzero(active)
        p, q = w.probs(w.users[t], idx, appeal)
        v = w.value(p, q)
        assert per[t] == pytest.approx(np.sort(v)[-cfg.k:].sum(), rel=1e-12)
        assert per[t] >= pop[t] - 1e-12
    res = sim.simulate(cfg, [RandomPolicy()], CALIB)
    assert np.all(res.personal_oracle >= res.trajectories[0].value - 1e-12)


def test_world_events_happen():
    cfg = small_cfg()
    w = sim.World(cfg, CALIB)
    assert w.active_at(0).sum() == w.catalog.n_items - w.new_items.size
    assert w.active_at(cfg.n_requests).all()
    assert not np.array_equal(w.appeal_at(0), w.appeal_at(cfg.n_requests - 1))  # the shift
    assert abs(w.c) > 0
    res = sim.simulate(cfg, [RandomPolicy()], CALIB)
    # a uniform policy gives new products about their share of the active catalog
    assert res.trajectories[0].new_shown.sum() > 0
    rows = sim.summary(res)
    assert rows[0]["regret_pop"] > 0 and 0 < rows[0]["ctr"] < 1


def test_calibration_fit_when_instacart_present():
    from sako.eval import data as D
    if not D.have("instacart", "baskets_sample", "order_products__prior.csv"):
        pytest.skip(f"instacart/baskets_sample not found under {D.describe_datasets_root()}")
    c = sim.calibrate()
    assert 0.5 < c.sigma_item < 3.5
    # the fitted model reproduces the share of products never bought within 2 points
    assert abs(c.fit["hist_real"][0] - c.fit["hist_sim"][0]) < 0.02
    assert c.fit["loglik"] > c.fit["loglik_poisson_only"]


def test_parallel_workers_give_identical_results():
    cfg = small_cfg(n_requests=60)
    pols = lambda: [RandomPolicy(), OriginalTS(), PopularityPolicy()]  # noqa: E731
    a = sim.simulate(cfg, pols(), CALIB, keep_shown=True, workers=1)
    b = sim.simulate(cfg, pols(), CALIB, keep_shown=True, workers=2)
    for ta, tb in zip(a.trajectories, b.trajectories):
        assert ta.name == tb.name
        np.testing.assert_array_equal(ta.value, tb.value)
        for x, y in zip(ta.shown, tb.shown):
            np.testing.assert_array_equal(x, y)
