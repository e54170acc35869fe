"""Off-policy evaluation on real logged bandit feedback (Open Bandit Dataset sample).

Each OBD row is one slot (position 1-3) of one impression, with the logging policy's
propensity of the shown item at that position. Two protocols:

1. Replay (Li, Chu, Langford, Wang 2011) on the uniform-random log, for policies that
   learn online: the policy proposes a slate of 3 for each row; when its item at the
   row's position is the logged item, the row counts (its click is the reward) and the
   policy is updated with it; otherwise the row is skipped. Unbiased for uniform logging;
   it keeps about 1/34 of the rows.
2. Frozen policies: each policy is trained on the first half of the random log (all rows,
   as impression/click events; then `refresh()`, i.e. libsako's retrain) and then evaluated on the second half with
   IPS (inverse propensity scoring), SNIPS (self-normalised IPS) and DR (doubly robust,
   reward model = per-item CTR of the training half shrunk to the global CTR). The policy's
   action distribution per position is estimated by Monte-Carlo draws of its slates.

Confidence intervals are percentile bootstraps over rows (replay: a normal approximation
of the matched rows' click rate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from . import data as D
from .metrics import bootstrap_ci
from .policies import CLICK, IMPRESSION, Policy, PolicyCatalog

SLATE = 3


# ------------------------------------------------------------------ estimators

def ips_terms(pi_logged: np.ndarray, pscore: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """Per-row IPS terms w_i r_i, w_i = π(a_i|x_i) / π0(a_i|x_i)."""
    return pi_logged / pscore * reward


def ips(pi_logged, pscore, reward) -> float:
    return float(ips_terms(pi_logged, pscore, reward).mean())


def snips(pi_logged, pscore, reward) -> float:
    w = pi_logged / pscore
    return float((w * reward).sum() / w.sum())


def dr_terms(pi_all: np.ndarray, q_all: np.ndarray, action: np.ndarray, pscore: np.ndarray,
             reward: np.ndarray) -> np.ndarray:
    """Per-row doubly-robust terms: Σ_a π(a|x) q̂(x,a) + w_i (r_i − q̂(x_i, a_i)).
    pi_all, q_all: (n, n_actions)."""
    rows = np.arange(action.size)
    w = pi_all[rows, action] / pscore
    return (pi_all * q_all).sum(axis=1) + w * (reward - q_all[rows, action])


def dr(pi_all, q_all, action, pscore, reward) -> float:
    return float(dr_terms(pi_all, q_all, action, pscore, reward).mean())


def _boot(terms_fn, n, n_boot=1000, seed=0):
    """Percentile bootstrap of a statistic computed from row indices."""
    rng = np.random.default_rng(seed)
    vals = np.array([terms_fn(rng.integers(0, n, n)) for _ in range(n_boot)])
    return np.quantile(vals, [0.025, 0.975])


def synthetic_log(n: int, n_actions: int = 10, seed: int = 0):
    """A log with known truth: action CTRs θ, a non-uniform logging policy π0 and a target
    π; returns (action, pscore, reward, pi_target (n_actions,), theta, true value)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.01, 0.3, n_actions)
    pi0 = rng.dirichlet(np.ones(n_actions) * 2) * 0.8 + 0.2 / n_actions
    pi = rng.dirichlet(np.ones(n_actions))
    a = rng.choice(n_actions, n, p=pi0)
    r = (rng.random(n) < theta[a]).astype(np.float64)
    return a, pi0[a], r, pi, theta, float(pi @ theta)


# ------------------------------------------------------------------ protocols

def _catalog(log: D.BanditLog) -> PolicyCatalog:
    return PolicyCatalog(item_aisle=log.item_category.copy(),
                         aisle_dept=np.zeros(int(log.item_category.max()) + 1, dtype=np.int64))


@dataclass
class ReplayResult:
    policy: str
    matched: int
    clicks: float
    ctr: float
    lo: float
    hi: float


def replay(log: D.BanditLog, policy: Policy, seed: int = 0, progress=None) -> ReplayResult:
    policy.reset(_catalog(log))
    rng = np.random.default_rng([seed, 11])
    m, c = 0, 0.0
    for i in range(log.n):
        user = i % 1_000_000
        slate = policy.recommend(user, SLATE, rng)
        p = int(log.position[i])
        if p < len(slate) and int(slate[p]) == int(log.action[i]):
            m += 1
            r = float(log.reward[i])
            c += r
            a = int(log.action[i])
            if r > 0:
                policy.update([user, user], [a, a], [IMPRESSION, CLICK], [log.time_ms[i]] * 2)
            else:
                policy.update([user], [a], [IMPRESSION], [log.time_ms[i]])
        if progress is not None:
            progress.update(1)
    policy.close()
    ctr = c / m if m else math.nan
    z = NormalDist().inv_cdf(0.975)
    # Wilson interval: sensible with a handful of clicks
    if m:
        den = 1 + z * z / m
        mid = (ctr + z * z / (2 * m)) / den
        half = z * math.sqrt(ctr * (1 - ctr) / m + z * z / (4 * m * m)) / den
        lo, hi = mid - half, mid + half
    else:
        lo = hi = math.nan
    return ReplayResult(policy.name, m, c, ctr, lo, hi)


def action_distribution(policy: Policy, n_actions: int, draws: int, seed: int) -> np.ndarray:
    """(SLATE, n_actions) frequency of each item at each position over Monte-Carlo slates."""
    rng = np.random.default_rng([seed, 12])
    counts = np.zeros((SLATE, n_actions))
    for j in range(draws):
        s = policy.recommend(j + 1, SLATE, rng)
        counts[np.arange(len(s)), np.asarray(s, dtype=np.int64)] += 1
    return counts / draws


def reward_model(train: D.BanditLog, idx: np.ndarray, n_actions: int, m: float = 200.0) -> np.ndarray:
    """q̂(a): per-item CTR of the training rows shrunk to the global CTR with m pseudo-rows."""
    a, r = train.action[idx], train.reward[idx]
    g = r.mean()
    n_a = np.bincount(a, minlength=n_actions)
    c_a = np.bincount(a, weights=r, minlength=n_actions)
    return (c_a + m * g) / (n_a + m)


@dataclass
class OPEResult:
    policy: str
    log: str
    ips: tuple
    snips: tuple
    dr: tuple
    ess: float          # effective sample size of the weights


def evaluate_frozen(policy: Policy, train: D.BanditLog, train_idx: np.ndarray,
                    test: D.BanditLog, test_idx: np.ndarray, draws: int = 2000,
                    seed: int = 0, n_boot: int = 500, pi: np.ndarray | None = None) -> OPEResult:
    """Train on train[train_idx] (as events), freeze, estimate the value on test[test_idx].
    Pass `pi` (SLATE, n_actions) to evaluate a given distribution instead of a policy."""
    n_act = test.n_actions
    if pi is None:
        policy.reset(_catalog(train))
        a = train.action[train_idx]
        r = train.reward[train_idx]
        t = train.time_ms[train_idx]
        clicked = r > 0
        items = np.concatenate([a, a[clicked]])
        types = np.concatenate([np.full(a.size, IMPRESSION), np.full(int(clicked.sum()), CLICK)])
        times = np.concatenate([t, t[clicked]])
        ones = np.ones(items.size, dtype=np.int64)
        if getattr(policy, "accepts_logged", False):   # libsako: logged clicks are outcomes
            policy.update(ones, items, types, times, logged=True)
        else:
            policy.update(ones, items, types, times)
        policy.refresh()
        pi = action_distribution(policy, n_act, draws, seed)
        policy.close()
    name = policy.name if policy is not None else "given distribution"
    act = test.action[test_idx]
    pos = test.position[test_idx]
    ps = test.pscore[test_idx]
    rew = test.reward[test_idx]
    q = reward_model(train, train_idx, n_act)
    pi_logged = pi[pos, act]
    pi_all = pi[pos]                      # (n, n_actions)
    q_all = np.broadcast_to(q, pi_all.shape)
    w = pi_logged / ps
    n = act.size
    ips_t = ips_terms(pi_logged, ps, rew)
    dr_t = dr_terms(pi_all, q_all, act, ps, rew)
    ci_ips = bootstrap_ci(ips_t, n_boot, seed=seed)
    ci_dr = bootstrap_ci(dr_t, n_boot, seed=seed)
    lo_s, hi_s = _boot(lambda ix: (w[ix] * rew[ix]).sum() / w[ix].sum(), n, n_boot, seed)
    ess = float(w.sum() ** 2 / (w ** 2).sum())
    return OPEResult(name, test.name, ci_ips, (float((w * rew).sum() / w.sum()), float(lo_s), float(hi_s)),
                     ci_dr, ess)


def obp_crosscheck(pi: np.ndarray, test: D.BanditLog, test_idx: np.ndarray, q: np.ndarray):
    """IPS and DR from the `obp` package on the same inputs, or (None, reason)."""
    try:
        from obp.ope import DoublyRobust, InverseProbabilityWeighting, OffPolicyEvaluation
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
        return None, f"obp not importable ({type(e).__name__}: {e})"
    act = test.action[test_idx]
    pos = test.position[test_idx]
    n = act.size
    ad = pi[pos][:, :, None]          # (n, n_actions, 1): each row's π in obp's slot 0
    est = np.broadcast_to(q[None, :, None], ad.shape).copy()
    fb = {"n_rounds": n, "action": act, "reward": test.reward[test_idx],
          "pscore": test.pscore[test_idx], "position": np.zeros(n, dtype=int)}
    ope = OffPolicyEvaluation(bandit_feedback=fb,
                              ope_estimators=[InverseProbabilityWeighting(), DoublyRobust()])
    v = ope.estimate_policy_values(action_dist=ad, estimated_rewards_by_reg_model=est)
    return {"ipw": float(v["ipw"]), "dr": float(v["dr"])}, ""


def rows_needed(p1: float, p2: float, n_actions: int, alpha: float = 0.05, power: float = 0.8):
    """Rows an A/B test needs per arm to tell CTR p1 from p2, and random-log rows replay needs."""
    nd = NormalDist()
    z = nd.inv_cdf(1 - alpha / 2) + nd.inv_cdf(power)
    per_arm = z * z * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2
    return int(math.ceil(per_arm)), int(math.ceil(per_arm * n_actions))


def run(policies_factory, seed: int = 0, draws: int = 2000, n_boot: int = 500,
        max_rows: int | None = None, progress_factory=None) -> dict:
    """Everything the report needs from OBD. policies_factory() -> fresh list of policies."""
    rnd = D.obd_log("random", "men")
    bts = D.obd_log("bts", "men")
    if max_rows:
        for lg in (rnd, bts):
            for f in ("action", "position", "reward", "pscore", "time_ms"):
                setattr(lg, f, getattr(lg, f)[:max_rows])
    out = {"n_random": rnd.n, "n_bts": bts.n, "n_actions": rnd.n_actions,
           "ctr_random": float(rnd.reward.mean()), "clicks_random": int(rnd.reward.sum()),
           "ctr_bts": float(bts.reward.mean()), "clicks_bts": int(bts.reward.sum())}
    out["ctr_random_ci"] = bootstrap_ci(rnd.reward, n_boot, seed=seed)
    out["ctr_bts_ci"] = bootstrap_ci(bts.reward, n_boot, seed=seed)
    pols = policies_factory()
    bar = progress_factory(total=rnd.n * len(pols), desc="OBD replay") if progress_factory else None
    out["replay"] = [replay(rnd, p, seed, bar) for p in pols]
    if bar is not None:
        bar.close()
    half = rnd.n // 2
    tr_idx, te_idx = np.arange(half), np.arange(half, rnd.n)
    frozen = []
    for p in policies_factory():
        frozen.append(evaluate_frozen(p, rnd, tr_idx, rnd, te_idx, draws, seed, n_boot))
    out["frozen"] = frozen
    # a cross-log check of the estimators on real data: the uniform policy's value
    # estimated by IPS/SNIPS/DR from the BTS log vs the random log's on-policy CTR
    uni = np.full((SLATE, bts.n_actions), 1.0 / bts.n_actions)
    out["uniform_from_bts"] = evaluate_frozen(None, rnd, tr_idx, bts, np.arange(bts.n), seed=seed,
                                              n_boot=n_boot, pi=uni)
    q = reward_model(rnd, tr_idx, rnd.n_actions)
    out["obp"], out["obp_reason"] = obp_crosscheck(uni, bts, np.arange(bts.n), q)
    if out["obp"] is not None:
        out["obp_ours"] = {"ipw": out["uniform_from_bts"].ips[0], "dr": out["uniform_from_bts"].dr[0]}
    # what the sample can resolve
    out["rows_needed_men"] = rows_needed(0.0051, 0.0067, rnd.n_actions)
    out["replay_expected_matches"] = rnd.n / rnd.n_actions
    return out
