"""Ranking tasks and rankers of sako.eval on tiny synthetic tasks and, when present, the real data."""
import numpy as np
import pytest

pytest.importorskip("sako.eval", reason="the sako package is not importable")
from sako.eval import data as D  # noqa: E402
from sako.eval import ranking as R  # noqa: E402
from sako.eval.policies import OriginalTS, PopularityPolicy, RandomPolicy  # noqa: E402


def tiny_task():
    # 3 users, 6 items; item 0 most popular, user 2 buys item 5 repeatedly
    rows = np.array([(0, 0), (0, 1), (1, 0), (1, 2), (2, 5), (2, 5), (2, 0), (0, 0)])
    ev = (rows[:, 0], rows[:, 1], np.full(len(rows), 3), np.arange(len(rows)) + 1)
    qs = [R.Query(user=2, row=2, relevant={5}), R.Query(user=0, row=0, relevant={3}, exclude=[0])]
    return R.Task("tiny", 6, np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1]), rows, rows[:, 0],
                  ev, qs, True)


def test_popularity_and_buy_again():
    t = tiny_task()
    pop = R.PopularityRanker()
    pop.fit(t)
    assert list(pop.rank(t.queries[0], 2, None)) == [0, 5]
    assert 0 not in pop.rank(t.queries[1], 3, None)  # excluded
    ba = R.BuyAgainRanker()
    ba.fit(t)
    assert list(ba.rank(t.queries[0], 2, None)) == [5, 0]


def test_evaluate_rows_and_ranges():
    t = tiny_task()
    rows = R.evaluate(t, [R.PopularityRanker(), R.BuyAgainRanker(),
                          R.PolicyRanker(PopularityPolicy()), R.PolicyRanker(RandomPolicy())],
                      k=2, n_boot=50)
    assert [r["method"] for r in rows] == ["popularity", "buy it again", "popularity", "random"]
    ba = rows[1]
    # query 0: item 5 at rank 1 -> 1; query 1: item 3 not in top-2 -> 0
    assert ba["recall"][0] == pytest.approx(0.5)
    assert ba["ndcg"][0] == pytest.approx(0.5)
    for r in rows:
        for m in ("recall", "ndcg", "map"):
            e, lo, hi = r[m]
            assert 0 <= lo <= e <= hi <= 1
        assert 0 < r["coverage"] <= 1


def test_buy_again_skipped_without_repeats():
    t = tiny_task()
    t.repeat = False
    rows = R.evaluate(t, [R.PopularityRanker(), R.BuyAgainRanker()], k=2, n_boot=20)
    assert [r["method"] for r in rows] == ["popularity"]


def test_policy_ranker_learns_popularity_from_events():
    t = tiny_task()
    pr = R.PolicyRanker(PopularityPolicy())
    pr.fit(t)
    assert pr.rank(t.queries[0], 1, np.random.default_rng(0))[0] == 0


@pytest.mark.skipif(not R.have_implicit(), reason="the implicit package is not installed")
def test_als_ranker_runs_and_folds_in():
    rng = np.random.default_rng(0)
    rows = np.array([(u, i) for u in range(40) for i in rng.choice(30, 5, replace=False)])
    qs = [R.Query(user=40, row=40, relevant={int(rows[0, 1])}, exclude=[int(rows[1, 1])],
                  given=[int(rows[1, 1])])]
    t = R.Task("als", 30, np.zeros(30, dtype=int), np.zeros(1, dtype=int), rows, rows[:, 0],
               (rows[:, 0], rows[:, 1], np.full(len(rows), 3), np.ones(len(rows))), qs, False)
    als = R.ALSRanker(factors=4, iterations=2)
    als.fit(t)
    out = als.rank(qs[0], 5, None)
    assert len(out) == 5 and int(rows[1, 1]) not in out


def test_groceries_task_shape():
    if not D.have("groceries", "groceries.csv"):
        pytest.skip(f"groceries/ not found under {D.describe_datasets_root()}")
    t = R.task_groceries_heldout(0)
    assert t.n_items == 169
    assert len(t.queries) > 1500
    for q in t.queries[:50]:
        assert len(q.relevant) == 1 and not (q.relevant & set(q.exclude))
    # the split is deterministic
    t2 = R.task_groceries_heldout(0)
    assert [q.relevant for q in t.queries[:50]] == [q.relevant for q in t2.queries[:50]]


def test_instacart_next_basket_task_shape():
    if not D.have("instacart", "users_sample", "orders.csv"):
        pytest.skip(f"instacart/users_sample not found under {D.describe_datasets_root()}")
    t = R.task_instacart_next_basket(0)
    assert 40 <= len(t.queries) <= 64 and t.n_items == 49688
    rows = R.evaluate(t, [R.PopularityRanker(), R.BuyAgainRanker(), R.PolicyRanker(OriginalTS())],
                      k=10, n_boot=50)
    by = {r["method"]: r["recall"][0] for r in rows}
    # repeat purchases dominate grocery baskets: buy-it-again beats global popularity
    assert by["buy it again"] > by["popularity"]
