"""Ranking metrics and intervals of sako.eval on small hand-checked cases."""
import math

import numpy as np
import pytest

ev = pytest.importorskip("sako.eval", reason="the sako package is not importable")
from sako.eval import metrics as M  # noqa: E402


def test_recall_hand_checked():
    assert M.recall_at_k([1, 2, 3, 4], {2, 4, 9}, 2) == pytest.approx(1 / 3)
    assert M.recall_at_k([1, 2, 3, 4], {2, 4, 9}, 4) == pytest.approx(2 / 3)
    assert M.recall_at_k([5, 6], {1}, 2) == 0.0
    assert M.recall_at_k([1], {1}, 10) == 1.0  # fewer results than k


def test_ndcg_hand_checked():
    # hits at ranks 1 and 3 of 3, two relevant: DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3)
    assert M.ndcg_at_k([7, 8, 9], {7, 9}, 3) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert M.ndcg_at_k([7, 8, 9], {7}, 3) == 1.0
    # single relevant item at rank 2: 1/log2(3)
    assert M.ndcg_at_k([1, 2, 3], {2}, 3) == pytest.approx(1 / math.log2(3))
    # more relevant than k: IDCG is capped at k hits, so a perfect top-k scores 1
    assert M.ndcg_at_k([1, 2], {1, 2, 3, 4}, 2) == pytest.approx(1.0)
    assert M.ndcg_at_k([5, 6], {1}, 2) == 0.0


def test_ap_and_map_hand_checked():
    # hits at ranks 1 and 3, two relevant: (1/1 + 2/3) / 2
    assert M.ap_at_k([1, 2, 3], {1, 3}, 3) == pytest.approx((1 + 2 / 3) / 2)
    # one relevant at rank 2: 1/2
    assert M.ap_at_k([1, 2, 3], {2}, 3) == pytest.approx(0.5)
    # relevant beyond k does not count; normaliser min(|rel|, k)
    assert M.ap_at_k([1, 2, 3], {3, 4, 5, 6}, 2) == 0.0
    assert M.ap_at_k([1, 2], {1, 2, 3}, 2) == pytest.approx(1.0)
    assert M.map_at_k([[1, 2, 3], [1, 2, 3]], [{1, 3}, {2}], 3) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)


def test_undefined_without_relevant():
    for f in (M.recall_at_k, M.ndcg_at_k, M.ap_at_k):
        with pytest.raises(ValueError):
            f([1, 2], set(), 2)


def test_coverage():
    assert M.coverage([[1, 2], [2, 3], [3]], 10) == pytest.approx(0.3)
    assert M.coverage([[1, 2, 3], [4, 5, 6]], 6, k=1) == pytest.approx(2 / 6)


def test_bootstrap_ci_brackets_mean_and_shrinks():
    rng = np.random.default_rng(0)
    small = rng.normal(1.0, 1.0, 100)
    big = rng.normal(1.0, 1.0, 10000)
    e1, lo1, hi1 = M.bootstrap_ci(small, 500, seed=1)
    e2, lo2, hi2 = M.bootstrap_ci(big, 500, seed=1)
    assert lo1 < e1 < hi1 and lo2 < e2 < hi2
    assert e1 == pytest.approx(small.mean())
    # width ~ 2·1.96·σ/√n
    assert (hi2 - lo2) == pytest.approx(2 * 1.96 / 100, rel=0.2)
    assert (hi1 - lo1) > 5 * (hi2 - lo2)
    assert M.bootstrap_ci(small, 200, seed=3) == M.bootstrap_ci(small, 200, seed=3)


def test_normal_ci():
    m, lo, hi = M.normal_ci([0.0, 1.0, 0.0, 1.0])
    assert m == 0.5 and lo < 0.5 < hi
    assert hi - 0.5 == pytest.approx(1.959964 * np.std([0, 1, 0, 1], ddof=1) / 2, rel=1e-4)
