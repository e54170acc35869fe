"""Issue 10's quality harness (sako.eval.mfeval): the libsako MF ranker, the same-model
implicit rows, the weekly retrain schedule and the split discipline, on small synthetic
data made here (fixed seeds)."""
import numpy as np
import pytest

pytest.importorskip("sako.eval", reason="the sako package is not importable")
from sako.eval import journey as J  # noqa: E402
from sako.eval import mfeval as M  # noqa: E402
from sako.eval import ranking as R  # noqa: E402
from sako.eval import sako_adapter as A  # noqa: E402
from sako.eval.policies import CLICK, IMPRESSION, PURCHASE, PolicyCatalog  # noqa: E402

needs_sako = pytest.mark.skipif(not A.available(), reason="libsako binding not built")
DAY = 86_400_000
T0 = 1_483_228_800_000


def planted_task(n_users=240, n_clusters=4, per_cluster=30, n_train=12, n_test=4, seed=7):
    """Users in clusters, each buying from its cluster's 30 products; on top, a global
    popularity skew (products 0..9 bought by everyone now and then), so that popularity is
    a real but weak baseline. Each user's test items are unseen products of their cluster."""
    rng = np.random.default_rng(seed)
    n_items = n_clusters * per_cluster + 10
    rows, queries = [], []
    for u in range(n_users):
        c = u % n_clusters
        own = 10 + c * per_cluster + rng.permutation(per_cluster)
        for i in own[:n_train]:
            rows.append((u, int(i)))
        for i in rng.choice(10, 3, replace=False):     # the globally popular products
            rows.append((u, int(i)))
        queries.append(R.Query(user=u, row=u, relevant=set(own[n_train:n_train + n_test].tolist()),
                               exclude=[i for (v, i) in rows if v == u]))
    rows = np.asarray(rows, dtype=np.int64)
    z = np.zeros(0, dtype=np.int64)
    return R.Task("planted", n_items, np.zeros(n_items, dtype=np.int64), np.zeros(1, dtype=np.int64),
                  rows, rows[:, 0], (z, z, z, z), queries, False)


def test_query_split_is_by_user_parity():
    t = planted_task()
    odd, even = M.query_split(t, 1), M.query_split(t, 0)
    assert {q.user % 2 for q in odd.queries} == {1} and {q.user % 2 for q in even.queries} == {0}
    assert len(odd.queries) + len(even.queries) == len(t.queries)
    assert odd.train_rows is t.train_rows        # only the scoring is split


@needs_sako
def test_mf_ranker_recovers_planted_clusters_better_than_popularity():
    t = planted_task()
    _, nd_pop = M.per_query(t, R.PopularityRanker())
    rec_mf, nd_mf = M.per_query(t, M.MFRanker(factors=8, iterations=10, regularization=0.1, alpha=10, seed=1))
    # popularity ranks the 10 global products first (all excluded) then cluster-blind
    # products: ~20/130 of its slots land in the user's cluster, 4 of 18 unseen are relevant
    assert nd_mf.mean() > 0.5 and nd_mf.mean() > nd_pop.mean() + 0.3
    assert rec_mf.mean() > 0.8                   # 4 relevant among the 18 unseen own products
    # the factors separate the clusters: apart from the 10 global products, a user's top 18
    # unseen products are exactly the 18 unseen products of the user's cluster
    m = M.MFRanker(factors=8, iterations=10, regularization=0.1, alpha=10, seed=1)
    m.fit(t)
    q = t.queries[5]
    drop = np.isin(np.arange(t.n_items), q.exclude) | (np.arange(t.n_items) < 10)
    top = M.R._topk(m.y @ m.user_vector(q) - 1e9 * drop, 18)
    assert set(((top - 10) // 30).tolist()) == {5 % 4}


@needs_sako
def test_mf_ranker_folds_in_given_items_exactly():
    import sako
    t = planted_task(n_users=120)
    m = M.MFRanker(factors=8, iterations=8, regularization=0.1, alpha=5, seed=2)
    m.fit(t)
    q = R.Query(user=999, row=0, relevant={11}, exclude=[12, 13, 12], given=[12, 13, 12])
    x = m.user_vector(q)
    # the exact normal equations of the user with values r = 1 on {12, 13}
    Y = m.y.astype(np.float64)
    A = Y.T @ Y + 0.1 * np.eye(8) + 5 * Y[[12, 13]].T @ Y[[12, 13]]
    b = (1 + 5) * Y[[12, 13]].sum(axis=0)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=2e-3, atol=1e-5)
    r = m.rank(q, 5, None)
    assert not set(r.tolist()) & {12, 13} and len(r) == 5
    assert sako.mf_gram(m.y).shape == (8, 8)


@pytest.mark.skipif(not R.have_implicit(), reason="implicit not installed")
@needs_sako
def test_same_model_implicit_and_libsako_agree_on_planted_clusters():
    t = planted_task()
    als, mf = M._rankers(8, 0.1, 10.0, seed=3, iterations=10)
    assert als.kw["alpha"] == 1.0 and als.conf == 11.0   # implicit fed 1 + alpha r
    _, nd_als = M.per_query(t, als)
    assert als.m.data.min() == pytest.approx(11.0)
    _, nd_mf = M.per_query(t, mf)
    assert nd_als.mean() > 0.5 and abs(nd_als.mean() - nd_mf.mean()) < 0.1


def test_weekly_als_sako_weighting_by_hand():
    p = J.WeeklyALS(factors=4, iterations=1, alpha=2.0, weighting="sako")
    assert p.kw["alpha"] == 1.0
    p.reset(PolicyCatalog(item_aisle=np.zeros(5, dtype=np.int64), aisle_dept=np.zeros(1, dtype=np.int64)))
    u = np.full(4, 7)
    p.update(u, np.array([1, 2, 2, 3]), np.array([IMPRESSION, CLICK, PURCHASE, PURCHASE]), np.full(4, T0))
    p.update(u[:2], np.array([2, 4]), np.array([PURCHASE, IMPRESSION]), np.full(2, T0 + DAY))
    m = p.matrix().toarray()
    # r(2) = 0.7 + 1 + 1 = 2.7, r(3) = 1; impressions do not enter; c = 1 + 2 r
    np.testing.assert_allclose(m[0], [0, 0, 1 + 2 * 2.7, 1 + 2 * 1.0, 0], rtol=1e-6)
    with pytest.raises(ValueError):
        J.WeeklyALS(weighting="nope")


def test_als_same_params_maps_the_mf_options():
    kw = J.als_same_params({"mf_factors": 32, "mf_regularization": 0.5, "mf_alpha": 3, "mf_iterations": 7})
    assert kw == dict(factors=32, regularization=0.5, iterations=7, alpha=3, weighting="sako", num_threads=1)
    p = J.make_policies("als-same:mf_factors=16:mf_alpha=4")[0]
    assert p.kw["factors"] == 16 and p.alpha == 4.0 and p.weighting == "sako"


@needs_sako
def test_weekly_retrain_schedule_and_mf_rows():
    from test_eval_journey import synthetic
    j = synthetic(n_households=6, n_baskets=60)         # a basket every 5 days
    pols = J.make_policies(["libsako-weekly", "libsako-mf:mf_factors=4:mf_mode=on:mf_min_users=1"], seed=1)
    assert [p.retrain_ms for p in pols] == [7 * DAY, 7 * DAY]
    assert pols[0].options["mf_factors"] == 0 and pols[1].options["mf_factors"] == 4
    res = J.replay(j, pols, seed=1)
    # baskets at 0, 5, 10, ... days: a retrain before the first recommend, then whenever
    # 7 days have passed: at days 0, 10, 20, ... (every second basket)
    assert pols[0].retrains == pols[1].retrains == 30
    fi = pols[1].engine.factors_info()
    assert fi.factors == 4 and fi.n_users == 6
    assert pols[0].engine.factors_info().factors == 0
    assert res.metrics[pols[1].name].shape == res.metrics[pols[0].name].shape
    for p in pols:
        p.close()


@needs_sako
def test_journey_tune_and_report_on_synthetic_data():
    from test_eval_journey import synthetic
    j = synthetic(n_households=8, n_baskets=120, n_products=40)
    grid = ["mf_factors=4:mf_mode=on:mf_min_users=1", "mf_factors=8:mf_mode=on:mf_min_users=1"]
    spec, tab = M.journey_tune(grid, journey=j, seed=1, log=lambda *a: None)
    assert spec in grid and len(tab["rows"]) == 3
    rep = M.journey_report(spec, [1, 2], journey=j, with_als=M.R.have_implicit(), log=lambda *a: None)
    assert [r["seed"] for r in rep] == [1, 2]
    for r in rep:
        d = r["mf-weekly_ndcg"]
        assert d["lo"] <= d["diff"] <= d["hi"]
        assert d["diff"] == pytest.approx(r["mf"]["ndcg"] - r["weekly"]["ndcg"])
        assert r["households"] <= 4                      # even ids only: 2, 4, 6, 8
    text = M.markdown(tab, spec, rep, None, None, "cmd", "abc", "machine", None)
    assert "even household ids" in text and "Tuning (odd household ids" in text
    assert "| mean |" in text                               # two seeds: their mean row


def test_ranking_markdown_marks_the_choice_and_averages_seeds():
    tune = {"ml-100k": dict(chosen=[16, 0.1, 1.0], n_queries=3, rows=[
        dict(factors=16, regularization=0.1, alpha=1.0, als_ndcg=0.2, mf_ndcg=0.21, als_recall=0.3, mf_recall=0.31),
        dict(factors=64, regularization=0.1, alpha=1.0, als_ndcg=0.1, mf_ndcg=0.3, als_recall=0.2, mf_recall=0.4)])}
    ci = [0.5, 0.4, 0.6]
    rep = {"ml-100k": dict(params=[16, 0.1, 1.0], seeds=[
        dict(seed=s, n=10, als_seconds=1.0, mf_seconds=1.0, als_recall=ci, mf_recall=ci, als_ndcg=ci,
             mf_ndcg=[0.5 + d, 0.4, 0.6], diff_ndcg=[d, -0.1, 0.1]) for s, d in ((1, 0.02), (2, 0.04))])}
    text = M.markdown(None, "", None, tune, rep, "cmd", "abc", "machine", None)
    assert "| ml-100k | 16 | 0.1 | 1 | **0.2000** |" in text      # chosen by implicit's score
    assert "| ml-100k | 64 | 0.1 | 1 | 0.1000 |" in text
    assert "| ml-100k | | mean | | 0.5000 | 0.5000 | 0.5000 | 0.5300 | +0.0300 | |" in text


def test_split_metrics_selects_months_and_parity():
    from test_eval_journey import synthetic
    j = synthetic(n_households=6, n_baskets=60)
    res = J.replay(j, J.make_policies(["popularity"]), seed=1)
    name = res.policies[0]
    m, hh = M.split_metrics(res, name, 0)
    mo = j.month[res.scored]
    sel = (j.household[res.scored] % 2 == 0) & (mo >= 4)
    assert m.shape[0] == sel.sum() and set(hh.tolist()) <= {2, 4, 6}
