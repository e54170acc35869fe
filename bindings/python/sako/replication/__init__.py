"""Replicated mode (issue 11): replicas following one replicated event log on NATS
JetStream. See :class:`Replica` and docs/operations.md ("Replication").

Needs ``nats-py`` (in the ``service`` extra)."""
from .codec import EVENT_DTYPE, ITEM_DTYPE, KINDS
from .replica import Replica, Unavailable, now_ms

__all__ = ["Replica", "Unavailable", "EVENT_DTYPE", "ITEM_DTYPE", "KINDS", "now_ms"]
