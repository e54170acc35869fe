"""Off-policy estimators: unbiased on synthetic logs whose true value is known.

Tolerances are statistical: 4 standard errors computed from the sample size, so a
correct estimator fails with probability ~6e-5 (and the seeds are fixed)."""
import math

import numpy as np
import pytest

pytest.importorskip("sako.eval", reason="the sako package is not importable")
from sako.eval import data as D  # noqa: E402
from sako.eval import ope  # noqa: E402
from sako.eval.policies import Policy  # noqa: E402


def test_ips_and_dr_unbiased_single_large_log():
    n = 200_000
    a, ps, r, pi, theta, v = ope.synthetic_log(n, n_actions=10, seed=1)
    terms = ope.ips_terms(pi[a], ps, r)
    tol = 4 * terms.std() / math.sqrt(n)
    assert abs(ope.ips(pi[a], ps, r) - v) < tol
    # DR with a deliberately wrong reward model is still unbiased ...
    pi_all = np.broadcast_to(pi, (n, pi.size))
    q_bad = np.full((n, pi.size), 0.5)
    d_bad = ope.dr_terms(pi_all, q_bad, a, ps, r)
    assert abs(d_bad.mean() - v) < 4 * d_bad.std() / math.sqrt(n)
    # ... and with the true model it is unbiased with lower variance than IPS
    q_true = np.broadcast_to(theta, (n, pi.size))
    d_true = ope.dr_terms(pi_all, q_true, a, ps, r)
    assert abs(d_true.mean() - v) < 4 * d_true.std() / math.sqrt(n)
    assert d_true.std() < terms.std()
    # SNIPS is consistent
    assert abs(ope.snips(pi[a], ps, r) - v) < tol


def test_ips_unbiased_independent_logs():
    n, reps = 400, 300
    _, _, _, pi, theta, v = ope.synthetic_log(10, n_actions=6, seed=5)
    rng = np.random.default_rng(5)
    pi0 = rng.dirichlet(np.ones(6)) * 0.7 + 0.3 / 6
    est, dr_est = [], []
    for _ in range(reps):
        a = rng.choice(6, n, p=pi0)
        r = (rng.random(n) < theta[a]).astype(float)
        est.append(ope.ips(pi[a], pi0[a], r))
        dr_est.append(ope.dr(np.broadcast_to(pi, (n, 6)), np.full((n, 6), 0.1), a, pi0[a], r))
    for e in (np.asarray(est), np.asarray(dr_est)):
        assert abs(e.mean() - v) < 4 * e.std(ddof=1) / math.sqrt(reps)


class _Fixed(Policy):
    name = "fixed"

    def __init__(self, slate):
        self.slate = np.asarray(slate)

    def recommend(self, user, k, rng, exclude=()):
        return self.slate[:k]


def _uniform_log(n, n_actions, theta, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_actions, n)
    pos = rng.integers(0, 3, n)
    r = (rng.random(n) < theta[a]).astype(float)
    return D.BanditLog(action=a, position=pos, reward=r, pscore=np.full(n, 1.0 / n_actions),
                       time_ms=np.arange(n, dtype=np.int64) + 1, n_actions=n_actions,
                       item_category=np.zeros(n_actions, dtype=np.int64), name="synthetic")


def test_replay_unbiased_for_a_fixed_policy():
    n_act, n = 8, 120_000
    theta = np.linspace(0.05, 0.4, n_act)
    log = _uniform_log(n, n_act, theta, seed=7)
    slate = [7, 0, 3]
    res = ope.replay(log, _Fixed(slate))
    truth = theta[slate].mean()  # each position equally likely in the log
    assert res.matched == pytest.approx(n / n_act, rel=0.05)
    se = math.sqrt(truth * (1 - truth) / res.matched)
    assert abs(res.ctr - truth) < 4 * se
    assert res.lo < res.ctr < res.hi


def test_evaluate_frozen_on_known_distribution():
    n_act, n = 8, 60_000
    theta = np.linspace(0.05, 0.4, n_act)
    log = _uniform_log(n, n_act, theta, seed=8)
    pi = np.zeros((3, n_act))
    pi[:, 2] = 0.5
    pi[:, 6] = 0.5
    truth = 0.5 * (theta[2] + theta[6])
    half = n // 2
    r = ope.evaluate_frozen(None, log, np.arange(half), log, np.arange(half, n), pi=pi, n_boot=200)
    for est in (r.ips, r.snips, r.dr):
        e, lo, hi = est
        assert lo <= e <= hi
        assert abs(e - truth) < 4 * (hi - lo) / (2 * 1.96)


def test_rows_needed_reproduces_the_textbook_formula():
    per_arm, replay_rows = ope.rows_needed(0.0051, 0.0067, 34)
    assert 30_000 < per_arm < 45_000
    assert replay_rows == pytest.approx(per_arm * 34, rel=1e-3)


def test_obd_sample_loads():
    if not D.have("obd", "random", "men", "men.csv"):
        pytest.skip(f"obd/random/men not found under {D.describe_datasets_root()}")
    log = D.obd_log("random", "men")
    assert log.n == 10_000 and log.n_actions == 34
    assert np.allclose(log.pscore, 1 / 34)
    assert int(log.reward.sum()) == 46
    assert set(np.unique(log.position)) == {0, 1, 2}
    assert np.all(np.diff(log.time_ms) >= 0)
    bts = D.obd_log("bts", "men")
    assert int(bts.reward.sum()) == 69 and bts.pscore.min() > 0
