"""Retrains run by the service: the background task that asks the engine's retrain
policy whether a retrain is due (``Engine.retrain_due``) every few seconds and runs the
due ones, and the record of the last retrain that ``GET /v1/policy`` and the metrics
show.

Every retrain, manual (``POST /v1/retrain``) or due, goes through
:meth:`Retrainer.retrain`: in a worker thread (never on the event loop), one at a time
(a lock), timed, and recorded with its reason and outcome. A failure is logged and
recorded, never raised out of the background task: the service keeps serving from the
active model and the next check tries again.

After a successful background retrain the task also compacts the event log
(``Engine.compact``, settings ``auto_compact``, ``compact_keep_days``,
``compact_keep_events``): a retrain moves the point up to which the log may be folded
into its checkpoint, so under steady traffic the file stops growing without an
operator. A failed compaction is logged and counted, never raised.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from starlette.concurrency import run_in_threadpool

import sako

log = logging.getLogger("sako.service")

#: the reason recorded for ``POST /v1/retrain``
MANUAL = "manual"


@dataclasses.dataclass
class RetrainRecord:
    """One retrain as the service ran it. Times are unix ms."""

    reason: str                  #: "manual", or the policy's reasons joined by "+" ("events+drift")
    started_at: int
    finished_at: int = 0
    duration_seconds: float = 0.0
    outcome: str = "running"     #: "ok", "error" or, while it runs, "running"
    error: Optional[str] = None  #: the exception's type and message when it failed
    model_version: Optional[int] = None  #: the version it produced
    version: Optional[int] = None  #: the same (the model version it built)
    gate: Optional[str] = None     #: activated, rejected or not_activated (pinned)
    verdict: Optional[str] = None  #: the gate's verdict

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def policy_reason(status: sako.RetrainStatus) -> str:
    """The reason label of a due retrain: its reasons joined by ``+``."""
    return "+".join(status.reason_names) or "policy"


class Retrainer:
    """Runs the service's retrains and remembers the last one.

    Parameters
    ----------
    get_engine : callable
        Returns the engine being served (or None while none is open).
    check_seconds : float
        How often the background task asks whether a retrain is due.
    on_finish : callable, optional
        Called with each finished :class:`RetrainRecord` (the metrics).
    compact : dict, optional
        ``Engine.compact``'s keyword arguments (``keep_days``, ``keep_events``) for the
        compaction after each successful background retrain; None: no compaction.
    on_compact : callable, optional
        Called with each compaction's :class:`sako.CompactReport`, or None when it
        failed (the metrics).
    """

    def __init__(self, get_engine: Callable[[], Optional[sako.Engine]], check_seconds: float,
                 on_finish: Optional[Callable[[RetrainRecord], None]] = None,
                 compact: Optional[Dict[str, Any]] = None,
                 on_compact: Optional[Callable[[Optional[sako.CompactReport]], None]] = None
                 ) -> None:
        self._get = get_engine
        self.check_seconds = float(check_seconds)
        self._on_finish = on_finish
        self.compact_options = dict(compact) if compact is not None else None
        self._on_compact = on_compact
        self.last_compaction: Optional[Dict[str, Any]] = None
        self._lock = threading.Lock()     # one retrain at a time
        self._state = threading.Lock()    # guards the fields below
        self.running: Optional[RetrainRecord] = None
        self.last: Optional[RetrainRecord] = None
        self.last_check_at: Optional[int] = None
        self.last_check_error: Optional[str] = None
        self.checks = 0
        self._task: Optional[asyncio.Task] = None

    # ------------------------------------------------------------ retrains
    def retrain(self, engine: sako.Engine, reason: str,
                reasons: Optional[int] = None) -> sako.Stats:
        """Retrain now (blocking: call it from a worker thread); waits for a retrain
        already running. Records the outcome; re-raises a failure. ``reasons`` are the
        :class:`sako.RetrainReason` bits passed to the engine (``MANUAL`` by default):
        an automatic retrain does not replace a pinned active version."""
        return self.retrain_recorded(engine, reason, reasons)[0]

    def retrain_recorded(self, engine: sako.Engine, reason: str,
                         reasons: Optional[int] = None) -> Tuple[sako.Stats, RetrainRecord]:
        """:meth:`retrain`, also returning its record (with the version it built)."""
        bits = int(sako.RetrainReason.MANUAL) if reasons is None else int(reasons)
        with self._lock:
            rec = RetrainRecord(reason=reason, started_at=int(time.time() * 1000))
            with self._state:
                self.running = rec
            t0 = time.perf_counter()
            try:
                info = engine.retrain_for(bits)
                stats = engine.stats()
            except Exception as exc:
                rec.outcome, rec.error = "error", f"{type(exc).__name__}: {exc}"
                raise
            else:
                rec.outcome, rec.model_version = "ok", int(stats.model_version)
                rec.version, rec.verdict = info.version, info.verdict
                rec.gate = {"active": "activated", "rejected": "rejected"}.get(info.status,
                                                                              "not_activated")
                return stats, rec
            finally:
                rec.duration_seconds = time.perf_counter() - t0
                rec.finished_at = int(time.time() * 1000)
                with self._state:
                    self.running, self.last = None, rec
                if rec.outcome == "error":
                    log.error("retrain (%s) failed after %.3f s: %s", reason,
                              rec.duration_seconds, rec.error)
                else:
                    log.info("retrain (%s): model version %s %s in %.3f s (%s)", reason,
                             rec.version, rec.gate, rec.duration_seconds, rec.verdict)
                if self._on_finish is not None:
                    try:
                        self._on_finish(rec)
                    except Exception:  # pragma: no cover - metrics must not break retrains
                        log.exception("recording a retrain")

    def check_once(self) -> Optional[RetrainRecord]:
        """Ask the policy; run a due retrain (blocking). Never raises: a failure is
        logged and kept in ``last_check_error`` / ``last``. Returns the record of the
        retrain it ran, if any."""
        e = self._get()
        if e is None or e.closed:
            return None
        try:
            status = e.retrain_due()
            with self._state:
                self.checks += 1
                self.last_check_at = int(time.time() * 1000)
                self.last_check_error = None
            if not status.due:
                return None
            self.retrain(e, policy_reason(status), int(status.reasons))
            self.compact_once(e)
        except Exception as exc:
            if isinstance(exc, sako.Misuse) and e.closed:  # shutting down
                return None
            with self._state:
                self.last_check_error = f"{type(exc).__name__}: {exc}"
            log.error("background retrain check: %s", self.last_check_error)
        return self.last

    def compact_once(self, engine: sako.Engine) -> Optional[sako.CompactReport]:
        """The compaction after a background retrain (blocking), when configured. Holds
        the retrain lock, so a manual retrain asked for meanwhile waits for it instead
        of making it fail. Never raises: a failure (``Busy`` during a
        ``POST /v1/compact``, an I/O error) is logged, counted and kept in
        ``last_compaction``; the next retrain tries again."""
        if self.compact_options is None or engine.closed:
            return None
        report: Optional[sako.CompactReport] = None
        t0 = time.perf_counter()
        try:
            with self._lock:
                report = engine.compact(**self.compact_options)
        except Exception as exc:
            if isinstance(exc, sako.Misuse) and engine.closed:  # shutting down
                return None
            error = f"{type(exc).__name__}: {exc}"
            log.error("compaction after a retrain failed: %s", error)
            record: Dict[str, Any] = {"outcome": "error", "error": error,
                                      "finished_at": int(time.time() * 1000)}
        else:
            log.info("compaction after a retrain: %d events removed (log starts after batch "
                     "%d) in %.3f s", report.events_removed, report.compact_batch,
                     time.perf_counter() - t0)
            record = {"outcome": "ok", "error": None, "finished_at": int(time.time() * 1000),
                      "compact_batch": report.compact_batch,
                      "events_removed": report.events_removed,
                      "duration_seconds": report.elapsed_ms / 1000.0}
        with self._state:
            self.last_compaction = record
        if self._on_compact is not None:
            try:
                self._on_compact(report)
            except Exception:  # pragma: no cover - metrics must not break compactions
                log.exception("recording a compaction")
        return report

    async def run(self) -> None:
        """The background loop: every ``check_seconds``, :meth:`check_once` in a worker
        thread. Runs until cancelled."""
        while True:
            await asyncio.sleep(self.check_seconds)
            await run_in_threadpool(self.check_once)

    def start(self) -> None:
        """Start the background loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="sako-retrainer")

    async def stop(self) -> None:
        """Cancel the background loop (a retrain already in its thread finishes)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    @property
    def background(self) -> bool:
        return self._task is not None

    def snapshot(self) -> Dict[str, Any]:
        """The service's side of ``GET /v1/policy``."""
        with self._state:
            return {
                "background": self.background,
                "check_seconds": self.check_seconds,
                "checks": self.checks,
                "last_check_at": self.last_check_at,
                "last_check_error": self.last_check_error,
                "running": self.running.as_dict() if self.running else None,
                "last_retrain": self.last.as_dict() if self.last else None,
                "auto_compact": self.compact_options is not None,
                "last_compaction": self.last_compaction,
            }


__all__ = ["Retrainer", "RetrainRecord", "MANUAL", "policy_reason"]
