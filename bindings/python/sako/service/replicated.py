"""Replicated mode of the service (``sako serve --replicate nats://...``): the routes
see an engine whose reads go to the local replica and whose writes go through the
replicated log (:class:`sako.replication.Replica`).

A write answers after JetStream's acknowledgement and, for read-your-writes on this
worker, after the local replica has applied it (at most ``wait_seconds``; past that
the answer still says the batch is accepted, since it is in the log, and carries
``Sako-Applied: pending``). NATS unreachable: writes raise
:class:`sako.replication.Unavailable` (503 with Retry-After), reads go on."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import sako
from sako.replication import Replica

from .errors import ApiError


def _not_replicated(what: str) -> ApiError:
    return ApiError(409, "not_replicated", f"{what} is not replicated yet: in replicated mode "
                                           "it would change this replica only (docs/operations.md, "
                                           "'Replication')")


class ReplicatedEngine:
    """An :class:`sako.Engine` look-alike over a replica's engine."""

    def __init__(self, engine: sako.Engine, replica: Replica, wait_seconds: float = 2.0) -> None:
        if replica.engine is not engine:
            raise ValueError("the replica follows another engine")
        object.__setattr__(self, "replica", replica)
        object.__setattr__(self, "wait_seconds", wait_seconds)
        object.__setattr__(self, "pending", 0)

    @property
    def _engine(self) -> sako.Engine:
        """The replica's engine now (a snapshot restored while running replaces it)."""
        return self.replica.engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "policy":
            raise AttributeError(name)
        self._settle(self.replica.publish_policy(value))

    def _settle(self, seq: int) -> None:
        if not self.replica.wait_applied(seq, self.wait_seconds):
            object.__setattr__(self, "pending", self.pending + 1)

    # writes through the log
    def update_arrays(self, users: Any, items: Any, types: Any, times: Any = None,
                      recommendation_ids: Any = None, order_ids: Any = None) -> int:
        seq = self.replica.publish_events(users, items, types, times, recommendation_ids, order_ids)
        self._settle(seq)
        return len(users)

    def upsert_items_arrays(self, ids: Any, category_ids: Any = None, active: Any = None,
                            added_at: Any = None) -> int:
        seq = self.replica.publish_items(ids, category_ids, active, added_at)
        self._settle(seq)
        return len(ids)

    def upsert_categories_arrays(self, ids: Sequence[int], parent_ids: Optional[Sequence[int]] = None,
                                 names: Optional[Sequence[Optional[str]]] = None) -> int:
        seq = self.replica.publish_categories(ids, parent_ids, names)
        self._settle(seq)
        return len(ids)

    def retrain_for(self, reasons: Any) -> sako.VersionInfo:
        seq = self.replica.publish_retrain(int(reasons))
        if not self.replica.wait_applied(seq, max(self.wait_seconds, 120.0)):
            raise sako.Busy("the retrain entry is in the log but this replica has not applied it yet")
        return self._engine.retrain_result()

    def retrain(self) -> sako.Stats:
        self.retrain_for(sako.RetrainReason.MANUAL)
        return self._engine.stats()

    def update(self, events: Any) -> int:  # the routes use update_arrays
        raise _not_replicated("Engine.update")

    def activate(self, version: int) -> Any:
        self._settle(self.replica.publish_activate(version))
        return self._engine.version(version)

    def pin(self, version: int, pinned: bool = True) -> Any:
        self._settle(self.replica.publish_pin(version, pinned))
        return self._engine.version(version)

    def compact(self, keep_days: float = 30.0, keep_events: int = 100_000) -> Any:
        """A compaction entry in the log: every replica compacts at its position; the
        report is this replica's."""
        seq = self.replica.publish_compact(keep_days, keep_events)
        if not self.replica.wait_applied(seq, max(self.wait_seconds, 120.0)):
            raise sako.Busy("the compaction entry is in the log but this replica has not "
                            "applied it yet")
        report = self.replica.compact_reports.get(seq)
        if report is None:  # rejected here (the scratch check passed): say why
            raise sako.Busy(f"the compaction entry at {seq} was not applied on this replica")
        return report


def metrics_text(replica: Replica) -> str:
    """Prometheus lines of a replica's state (appended to /metrics)."""
    s = replica.status()
    lines = [
        "# HELP sako_replication_lag Entries of the stream this replica has not applied.",
        "# TYPE sako_replication_lag gauge", f"sako_replication_lag {s['lag']}",
        "# HELP sako_replication_applied_position Stream sequence of the last entry applied.",
        "# TYPE sako_replication_applied_position gauge",
        f"sako_replication_applied_position {s['applied']}",
        "# HELP sako_replication_stream_last_seq The stream's last sequence, as last seen.",
        "# TYPE sako_replication_stream_last_seq gauge",
        f"sako_replication_stream_last_seq {s['last_seq']}",
        "# HELP sako_replication_connected 1 while connected to NATS.",
        "# TYPE sako_replication_connected gauge",
        f"sako_replication_connected {1 if s['connected'] else 0}",
        "# HELP sako_replication_leader 1 while this replica holds the retrain lease.",
        "# TYPE sako_replication_leader gauge", f"sako_replication_leader {1 if s['leader'] else 0}",
        "# HELP sako_replication_entries_rejected_total Entries that failed validation here.",
        "# TYPE sako_replication_entries_rejected_total counter",
        f"sako_replication_entries_rejected_total {s['entries_rejected']}",
    ]
    return "\n".join(lines) + "\n"
