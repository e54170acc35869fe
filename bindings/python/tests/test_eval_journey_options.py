"""journey --quick (a deterministic household subset) and --policies (by key)."""
import numpy as np
import pytest

pytest.importorskip("sako.eval", reason="the sako package is not importable")
from sako.eval import cli  # noqa: E402
from sako.eval import journey as J  # noqa: E402


def test_quick_subset_is_deterministic_and_seed_free():
    hh = np.repeat(np.arange(1, 3001), 3)
    a, b = J.quick_subset(hh, 400), J.quick_subset(hh[::-1], 400)
    assert a.size == 400 and np.array_equal(a, b) and np.all(np.diff(a) > 0)
    assert np.array_equal(J.quick_subset(hh, 5000), np.arange(1, 3001))   # more than there are: all


def test_make_policies_by_key():
    pols = J.make_policies("popularity, gp-topfreq,tifu-knn", 1)
    assert [p.name for p in pols] == ["popularity", "GP-TopFreq", "TIFU-KNN"]
    assert [p.name for p in J.make_policies("libsako", 1, include_sako=False)] == []
    with pytest.raises(ValueError):
        J.make_policies("popularity:x=1", 1)


def test_cli_rejects_unknown_policy(tmp_path, capsys):
    assert cli.main(["journey", "--quick", "--policies", "nope", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "unknown policy" in capsys.readouterr().err


def test_weekly_als_on_synthetic():
    pytest.importorskip("implicit", reason="implicit is not installed")
    from test_eval_journey import synthetic
    j = synthetic(n_households=6, n_baskets=80, n_products=40)      # 80 baskets, 5 days apart
    als = J.WeeklyALS(factors=4, iterations=3, num_threads=1)
    res = J.replay(j, [J.Popularity(), als], seed=1)
    m = res.metrics[als.name]
    assert m.shape == (16, 4) and np.all((m[:, 2] >= 0) & (m[:, 2] <= 1))
    # retrained at most once a week of replayed time (400 days / 7), at least once
    assert 1 <= als.trainings <= 400 // 7 + 1
