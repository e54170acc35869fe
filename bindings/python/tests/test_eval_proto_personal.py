"""The research prototype of issue 8's personal engine (sako.eval.proto_personal): its
building blocks on cases computed by hand, and determinism of its replay by seed."""
import numpy as np
import pytest

pytest.importorskip("sako.eval", reason="the sako package is not importable")
from sako.eval import journey as J  # noqa: E402
from sako.eval import proto_personal as P  # noqa: E402
from sako.eval.policies import IMPRESSION, PURCHASE, PolicyCatalog  # noqa: E402

DAY = 86_400_000
T0 = 1_483_228_800_000


def test_shrunk_rate_by_hand():
    assert P.shrunk_rate(3, 10, 0.5, 10) == pytest.approx(0.4)          # (3 + 5) / 20
    assert P.shrunk_rate(0, 0, 0.2, 7) == pytest.approx(0.2)            # no data: the prior
    np.testing.assert_allclose(P.shrunk_rate([0, 100], 100, 0.5, 0), [0.0, 1.0])


def test_eb_strength_by_hand():
    # two products with rates 0.1 and 0.3, so many trials the binomial noise is ~0:
    # m = 0.2, var = 0.01, s = m(1-m)/var - 1 = 15
    n = 1e9
    s, m = P.eb_strength([0.1 * n, 0.3 * n], n, [0, 0], 1)
    assert m[0] == pytest.approx(0.2) and s[0] == pytest.approx(15.0, rel=1e-4)
    # identical rates: no between-product variance -> the strength clips at the top
    s, _ = P.eb_strength([10, 10, 10], 100, [0, 0, 0], 1, hi=1e6)
    assert s[0] == 1e6
    # a group with one product cannot estimate a variance: the top too
    s, _ = P.eb_strength([5], 100, [0], 1, hi=1e6)
    assert s[0] == 1e6


def test_shrunk_lift_by_hand():
    # c_i = 10, c_j = 20, B = 100: expected co-occurrences 2
    assert P.shrunk_lift(2, 10, 20, 100, 5) == pytest.approx(1.0)
    assert P.shrunk_lift(10, 10, 20, 100, 5) == pytest.approx(15 / 7)
    assert P.shrunk_lift(0, 0, 0, 0, 5) == pytest.approx(1.0)           # nothing known: 1
    # shrinkage: one co-occurrence of two rare products is not a big lift
    assert P.shrunk_lift(1, 1, 1, 1000, 5) < 1.25


def test_decay_and_due_by_hand():
    assert P.decay(14, 7) == pytest.approx(0.25)
    # gaps 5 + 7 days (2 gaps), population interval 6: ĝ = (12 + 6) / 3 = 6
    assert P.due_factor(3, 12, 2, 6, 1.0) == pytest.approx(0.5)
    assert P.due_factor(3, 12, 2, 6, 0.5) == pytest.approx(0.5 ** 0.5)
    assert P.due_factor(30, 12, 2, 6, 1.0) == pytest.approx(1.0)        # overdue: capped at 1
    assert P.due_factor(3, 12, 2, 6, 0.0) == pytest.approx(1.0)         # kappa 0: off
    # bought once: the population interval alone
    assert P.due_factor(2, 0, 0, 8, 1.0) == pytest.approx(0.25)


def test_affinity_by_hand():
    # 2 departments (shares 0.5/0.5), 2 categories (one per department).
    # The household: 10 purchases, all in category 0. k = 10:
    # A_d0 = (10 + 5) / 20 / 0.5 = 1.5, A_d1 = (0 + 5) / 20 / 0.5 = 0.5; categories equal departments
    a_d, a_c = P.affinity([10, 0], [10, 0], 10, [0.5, 0.5], [0.5, 0.5], np.array([0, 1]), 10)
    np.testing.assert_allclose(a_d, [1.5, 0.5])
    # category prior = P_c * A_d: (10 + 10 * 0.75) / 20 / 0.5 = 1.75; (0 + 10 * 0.25) / 20 / 0.5 = 0.25
    np.testing.assert_allclose(a_c, [1.75, 0.25])
    # no data: affinity 1 everywhere
    a_d, a_c = P.affinity([0, 0], [0, 0], 0, [0.5, 0.5], [0.5, 0.5], np.array([0, 1]), 10)
    np.testing.assert_allclose(a_c, [1.0, 1.0])


def _catalog(n=6):
    # items 0-2 in category 0 (department 0), items 3-5 in category 1 (department 1)
    return PolicyCatalog(item_aisle=np.array([0, 0, 0, 1, 1, 1])[:n], aisle_dept=np.array([0, 1]), time_ms=T0)


def test_household_state_decays_by_hand():
    p = P.PersonalProto(half_life_days=7.0)
    p.reset(_catalog())
    p.update([1, 1], [0, 1], [PURCHASE, PURCHASE], [T0, T0])
    p.update([1, 1], [0, 2], [PURCHASE, PURCHASE], [T0 + 7 * DAY] * 2)
    h = p.houses[1]
    assert h.W == pytest.approx(1.5)                   # 0.5 + 1
    assert h.it.tolist() == [0, 1, 2]
    np.testing.assert_allclose(h.n, [1.5, 0.5, 1.0])
    np.testing.assert_allclose(h.nb, [2, 1, 1])
    assert h.gsum[0] == pytest.approx(7.0) and h.last[0] == T0 + 7 * DAY
    assert p.B == 2 and p.c.tolist() == [2, 1, 1, 0, 0, 0]
    assert p.gcnt[0] == 1 and p.ggap[0] == pytest.approx(7.0)


def test_posterior_mean_by_hand():
    """No affinity, no co-purchase, no due-ness, raw rates: μ = (a0·q + n) / (a0 + W)."""
    p = P.PersonalProto(half_life_days=1e9, a0=2.0, kappa=0.0, rho_a=0.0, rho_l=0.0, shrink=False,
                        refresh_baskets=1)
    p.reset(_catalog())
    p.update([1], [0], [PURCHASE], [T0])
    p.update([2, 2], [0, 3], [PURCHASE, PURCHASE], [T0 + DAY] * 2)
    cand, mu, S, own = p.score(1)
    q = (p.c + 1 / 6) / (2 + 1)                       # raw per-basket rate, B = 2
    got = dict(zip(cand.tolist(), mu.tolist()))
    assert got[0] == pytest.approx((2 * q[0] + 1) / (2 + 1))
    assert got[3] == pytest.approx(2 * q[3] / 3)
    assert own[cand.tolist().index(0)] and not own[cand.tolist().index(3)]
    assert np.all(S == 3.0)
    # a household never seen gets the population engine: μ = q
    cand, mu, S, own = p.score(99)
    np.testing.assert_allclose(mu, q[cand])


def test_impressions_count_as_failures():
    p = P.PersonalProto(half_life_days=1e9, a0=2.0, kappa=0.0, rho_a=0.0, rho_l=0.0, gamma=1.0,
                        shrink=False, refresh_baskets=1)
    p.reset(_catalog())
    p.update([1], [0], [PURCHASE], [T0])
    # shown 3 and 4, bought 0 and 3: 4 was shown and not bought
    p.update([1] * 4, [3, 4, 0, 3], [IMPRESSION, IMPRESSION, PURCHASE, PURCHASE], [T0 + DAY] * 4)
    cand, mu, S, own = p.score(1)
    got = dict(zip(cand.tolist(), mu.tolist()))
    q = p.q
    assert got[4] == pytest.approx(2 * q[4] / (2 + 2 + 1))


def test_copurchase_neighbours():
    """0 and 1 always together, 2 alone: 1 is 0's neighbour with lift > 1, 2 is not."""
    p = P.PersonalProto(lift_k=1.0, min_support=2, refresh_baskets=1)
    p.reset(_catalog())
    for b in range(10):
        its = [0, 1] if b % 2 == 0 else [2, 3]
        p.update([b] * 2, its, [PURCHASE] * 2, [T0 + b * DAY] * 2)
    p._refresh()                                      # folds the pending baskets
    nb0 = p.nb_items[p.nb_ptr[0]:p.nb_ptr[1]].tolist()
    assert nb0 == [1]
    # B = 10, c0 = c1 = 5: expected 2.5, C = 5: (5 + 1) / (2.5 + 1)
    assert p.nb_lift[p.nb_ptr[0]] == pytest.approx(6 / 3.5)
    cand, ell = p.candidates(p.houses[8])             # latest basket {0, 1}
    got = dict(zip(cand.tolist(), ell.tolist()))
    assert got[1] == pytest.approx(1 + (6 / 3.5 - 1) / 2) and got[0] == pytest.approx(1 + (6 / 3.5 - 1) / 2)


def test_modes():
    p = P.PersonalProto(temperature=0.0, refresh_baskets=1)
    p.reset(_catalog())
    p.update([1, 1], [0, 1], [PURCHASE, PURCHASE], [T0])
    p.update([2, 2, 2], [2, 3, 4], [PURCHASE] * 3, [T0])
    rng = np.random.default_rng(0)
    p.p["mode"] = "discover"
    assert set(p.recommend(1, 6, rng).tolist()).isdisjoint({0, 1})
    p.p["mode"] = "repeat"
    assert set(p.recommend(1, 6, rng).tolist()) == {0, 1}


def test_demand_ts_learns_from_impressions():
    d = P.DemandTS(n0=10, pool=6, refresh_baskets=1)
    d.reset(_catalog())
    for b in range(20):
        d.update([b] * 3, [0, 1, 1], [IMPRESSION, IMPRESSION, PURCHASE], [T0] * 3)
    assert d.s[1] == 20 and d.f[0] == 20 and d.c[1] == 20 and d.B == 20
    post, m = d._mean()
    assert post[1] > post[2] > post[0]


def _synthetic():
    from test_eval_journey import synthetic
    return synthetic(n_households=6, n_baskets=80, n_products=40)


def test_replay_deterministic_by_seed():
    j = _synthetic()
    keys = "demand-ts,personal-proto,personal-proto-no-repeat,personal-proto-discover"
    a = J.replay(j, J.make_policies(keys, 1), seed=1)
    b = J.replay(j, J.make_policies(keys, 1), seed=1)
    for name in a.policies:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name])
    rows = a.table()
    assert len(rows) == 4 * 2 * len(J.PHASES)  # policies x splits x phases


def test_make_rejects_unknown():
    with pytest.raises(ValueError):
        P.make("personal-proto-no-such")
    with pytest.raises(ValueError):
        P.PersonalProto(no_such=1)
    with pytest.raises(ValueError):
        J.make_policies("popularity,nope")
    pol = J.make_policies("personal-proto:a0=3:temperature=0", 1)[0]
    assert pol.p["a0"] == 3 and pol.p["temperature"] == 0 and pol.name == "personal-proto:a0=3:temperature=0"


def test_discover_slots_end_the_list():
    p = P.PersonalProto(temperature=0.0, kappa=0.0, refresh_baskets=1, discover_slots=2)
    p.reset(_catalog())
    p.update([1, 1, 1], [0, 1, 2], [PURCHASE] * 3, [T0])
    p.update([2, 2, 2], [3, 4, 5], [PURCHASE] * 3, [T0])
    recs = p.recommend(1, 4, np.random.default_rng(0)).tolist()
    assert len(recs) == 4 and set(recs[:2]) <= {0, 1, 2} and set(recs[2:]) <= {3, 4, 5}
