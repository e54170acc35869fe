"""Prometheus metrics of the service: requests and latency per route, events ingested,
recommendations served, and the engine's model version and catalog size (read from
the engine at scrape time); retrains by reason and outcome, the last one's reason and
duration, and the retrain policy's counters (read at scrape time); the active model
version (scrape time) and the gate's results (``sako_gate_total{result}``); compactions,
and the size of the event log and of the database file (read at scrape time)."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np

import sako
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_TYPE_NAMES = ("impression", "click", "cart", "purchase")
_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _EngineCollector:
    def __init__(self, get_engine: Callable[[], Any]) -> None:
        self._get = get_engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        e = self._get()
        if e is None or e.closed:
            return
        try:
            s = e.stats()
        except Exception:  # a closed engine during shutdown: no sample
            return
        try:
            d = e.retrain_due()
        except Exception:
            d = None
        policy = () if d is None else (
            ("sako_retrain_due", "1 if the retrain policy says a retrain is due", float(d.due)),
            ("sako_retrain_events_since", "Events since the last retrain", d.events_since),
            ("sako_retrain_seconds_since", "Seconds since the last retrain", d.seconds_since),
            ("sako_conversion_baseline", "Weighted conversion of served recommendations after "
             "the last retrain (the drift baseline)", d.baseline_conversion),
            ("sako_conversion_recent", "Weighted conversion of served recommendations over the "
             "recent window", d.recent_conversion),
        )
        if d is not None:
            g = GaugeMetricFamily("sako_retrain_due_reason", "1 for each retrain-policy trigger "
                                  "that fired", labels=["reason"])
            for r in sako.RetrainReason:
                g.add_metric([r.name.lower()], float(r in d.reasons))
            yield g
        try:  # the active version (0 before any retrain)
            active = e.version(0).version
        except sako.NotFound:
            active = 0
        except Exception:
            active = None
        versions = () if active is None else (
            ("sako_active_model_version", "The model version served (0 before any retrain)",
             active),)
        for name, doc, value in policy + versions + (
            ("sako_model_version", "Model version (increases with every retrain)", s.model_version),
            ("sako_catalog_items", "Items in the catalog", s.n_items),
            ("sako_catalog_active_items", "Recommendable items", s.n_active_items),
            ("sako_catalog_categories", "Categories", s.n_categories),
            ("sako_users", "Users seen in events", s.n_users),
            ("sako_event_log_events", "Events in the log", s.n_events),
            ("sako_global_mean", "Pooled reward rate of the catalog", s.global_mean),
        ) + self._log_gauges(e):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], float(value))
            yield g


    @staticmethod
    def _log_gauges(e: Any) -> Tuple[Tuple[str, str, float], ...]:
        try:
            log = e.log_stats()
        except Exception:
            return ()
        return (
            ("sako_log_batches", "Event batches in the log (after the compaction point)",
             log.n_batches),
            ("sako_log_events", "Events in the log (after the compaction point)", log.n_events),
            ("sako_log_compacted_events", "Events folded into the log checkpoint",
             log.compacted_events),
            ("sako_log_checkpoint_bytes", "Size of the log checkpoint", log.checkpoint_bytes),
            ("sako_db_file_bytes", "Size of the database file", log.file_bytes),
            ("sako_db_free_bytes", "Free pages of the database file (reused by later writes)",
             log.free_bytes),
        )


class Metrics:
    """A private registry (several apps may live in one process, e.g. in tests)."""

    def __init__(self, get_engine: Callable[[], Any]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("sako_http_requests", "HTTP requests",
                                ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("sako_http_request_duration_seconds", "HTTP request latency",
                                 ("method", "route"), buckets=_BUCKETS, registry=self.registry)
        self.events = Counter("sako_events_ingested", "Events accepted", ("type",),
                              registry=self.registry)
        self.recommendations = Counter("sako_recommendations", "Recommendation requests served",
                                       registry=self.registry)
        self.retrains = Counter("sako_retrains", "Retrains run by the service",
                                ("reason", "outcome"), registry=self.registry)
        self.last_retrain = Gauge("sako_last_retrain_timestamp_seconds",
                                  "When the last retrain finished, labelled with its reason and "
                                  "outcome", ("reason", "outcome"), registry=self.registry)
        self.gate = Counter("sako_gate", "Versions built by the service's retrains, by what "
                            "their gate made of them: activated, rejected, not_activated "
                            "(the active version is pinned)", ("result",),
                            registry=self.registry)
        self.last_retrain_duration = Gauge("sako_last_retrain_duration_seconds",
                                           "Duration of the last retrain", registry=self.registry)
        self.registry.register(_EngineCollector(get_engine))
        # POST /v1/backup (routers/backup.py)
        self.backup_last_time = Gauge("sako_backup_last_success_timestamp_seconds",
                                      "Unix time the last successful backup finished",
                                      registry=self.registry)
        self.backup_last_duration = Gauge("sako_backup_last_duration_seconds",
                                          "Duration of the last successful backup",
                                          registry=self.registry)
        self.backup_last_size = Gauge("sako_backup_last_size_bytes",
                                      "Size of the last successful backup", registry=self.registry)
        self.backups = Counter("sako_backups", "Backups attempted", ("result",),
                               registry=self.registry)
        # POST /v1/compact (routers/compact.py) and the compaction after each background
        # retrain (retrainer.py)
        self.compactions = Counter("sako_compactions", "Compactions of the event log attempted",
                                   ("result",), registry=self.registry)
        self.compaction_last_duration = Gauge("sako_compaction_last_duration_seconds",
                                              "Duration of the last successful compaction",
                                              registry=self.registry)
        self.compaction_removed_events = Counter("sako_compaction_removed_events",
                                                 "Events deleted from the log by compactions",
                                                 registry=self.registry)
        self._children: Dict[Tuple[str, str, int], Tuple[Any, Any]] = {}
        self._event_children = [self.events.labels(t) for t in _TYPE_NAMES]
        metrics = self

        class _Middleware:
            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                t0 = time.perf_counter()
                status = 500

                async def send_wrapper(message: Dict[str, Any]) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    await send(message)

                try:
                    await self.app(scope, receive, send_wrapper)
                finally:
                    metrics.observe(scope, status, time.perf_counter() - t0)

        self.middleware = _Middleware

    def observe(self, scope: Dict[str, Any], status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        key = (scope.get("method", ""), path, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (self.requests.labels(key[0], path, str(status)),
                    self.latency.labels(key[0], path))
            if len(self._children) < 1000:
                self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def count_events(self, types: np.ndarray) -> None:
        counts = np.bincount(types, minlength=4)
        for t, c in enumerate(counts[:4].tolist()):
            if c:
                self._event_children[t].inc(c)

    def observe_retrain(self, rec: Any) -> None:
        """A finished retrain (a :class:`sako.service.retrainer.RetrainRecord`)."""
        self.retrains.labels(rec.reason, rec.outcome).inc()
        if rec.gate is not None:
            self.gate.labels(rec.gate).inc()
        self.last_retrain.clear()
        self.last_retrain.labels(rec.reason, rec.outcome).set(rec.finished_at / 1000.0)
        self.last_retrain_duration.set(rec.duration_seconds)
    def backup_done(self, seconds: float, size: int) -> None:
        self.backup_last_time.set(time.time())
        self.backup_last_duration.set(seconds)
        self.backup_last_size.set(size)
        self.backups.labels("ok").inc()

    def compaction_done(self, report: Any) -> None:
        self.compactions.labels("ok").inc()
        self.compaction_last_duration.set(report.elapsed_ms / 1000.0)
        self.compaction_removed_events.inc(report.events_removed)

    def compaction_failed(self) -> None:
        self.compactions.labels("failed").inc()

    def observe_compaction(self, report: Any) -> None:
        """A compaction after a background retrain: its report, or None if it failed."""
        if report is None:
            self.compaction_failed()
        else:
            self.compaction_done(report)

    def backup_failed(self) -> None:
        self.backups.labels("failed").inc()

    def render(self) -> Tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
