"""sako.eval — the evaluation harness of libsako.

Simulated grocery world with regret (`sim`), off-policy evaluation on the Open Bandit
Dataset (`ope`), ranking metrics on real grocery histories (`ranking`), speed against
peers (`speed`); `python -m sako.eval all --out docs` regenerates docs/evaluation.md.
The harness talks to libsako only through `sako_adapter`; every other module works
without the compiled binding.
"""
from .metrics import ap_at_k, bootstrap_ci, coverage, map_at_k, ndcg_at_k, recall_at_k  # noqa: F401

__all__ = ["ap_at_k", "bootstrap_ci", "coverage", "map_at_k", "ndcg_at_k", "recall_at_k"]
