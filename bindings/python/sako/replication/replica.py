"""A replica: a local :class:`sako.Engine` following the replicated log on NATS
JetStream, with the publisher that writes into that log and the retrain lease.

Everything NATS runs on one asyncio loop in a thread of its own, so that the engine's
callers (the service's routes, scripts) stay synchronous:

* the **follower** reads the stream in order with an ordered (ephemeral, durable-free)
  consumer from the engine's stored position + 1 and applies each entry with the
  ``*_at`` call of its kind, at its stream sequence; the engine stores the position
  with the batch, so a replica killed at any moment resumes exactly where its file
  says, and a redelivered entry is skipped;
* the **publisher** resolves "now" (event times, ``added_at``), validates a batch
  against the local replica's catalog (``validate.py``), publishes it with a
  ``Nats-Msg-Id`` (JetStream drops a duplicate within the stream's duplicate window)
  and returns the stream sequence once JetStream has acknowledged it (stored on a
  majority of the stream's replicas);
* the **retrain leader** holds a JetStream KV lease; while it does, it asks its local
  engine whether the retrain policy is due and, if so, publishes a ``retrain`` entry
  that every replica applies at the same position (``sako_retrain_at``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

import sako

from . import codec, validate

log = logging.getLogger("sako.replication")


class Unavailable(sako.SakoError):
    """The log cannot take a write now (NATS unreachable, no JetStream quorum, or
    no acknowledgement in time): nothing was published, or it is unknown whether it
    was (retry with the same message id: JetStream de-duplicates)."""
    code = -1000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _next_pending(sub: Any) -> Any:
    """The next message a subscription has already received: taken from its queue
    directly (as ``next_msg`` does, without its task and timer per message: 7% of a
    follower's CPU for batches of 100) when nats-py's queue is as expected, else with
    ``next_msg``. nats-py tracks an ordered consumer's sequences before queueing."""
    queue = getattr(sub, "_pending_queue", None)
    if isinstance(queue, asyncio.Queue) and isinstance(getattr(sub, "_pending_size", None), int):
        msg = queue.get_nowait()
        sub._pending_size -= len(msg.data)
        queue.task_done()
        return msg
    return await sub.next_msg(timeout=None)


class Replica:
    """A local engine that follows (and writes through) one JetStream stream.

    Parameters
    ----------
    engine : sako.Engine
        The replica's own engine (its own file); only the follower writes to it.
    servers : str or sequence of str
        NATS URLs (``nats://host:port``), comma-separated or a list.
    stream, subject : str
        The stream (created if missing: file storage, ``replicas`` copies) and its
        subject.
    replicas : int, optional
        JetStream replicas of the stream and the lease bucket (default: the number of
        servers given, at most 5).
    lease_seconds : float
        The retrain lease's lifetime; the leader renews it every third of it.
    retrain_check_seconds : float
        How often the leader asks its engine whether a retrain is due (0: never; the
        replica then only applies retrain entries others publish).
    publish_timeout : float
        Longest wait for JetStream's acknowledgement.
    max_payload : int
        The largest entry; batches above it are refused (RangeError).
    compact : dict, optional
        ``keep_days`` and ``keep_events``: while this replica holds the lease, a
        compaction entry follows each retrain entry it publishes.
    restore_when_behind : bool
        When the stream's retention has dropped entries this replica has not applied
        (it was away too long), replace its engine by the latest snapshot and go on
        (default); the engine's file is kept as ``<db>.behind-<unix time>``. The
        ``engine`` attribute then is a new :class:`sako.Engine` (same options) and
        ``on_engine`` is called with it. False, or an in-memory engine: the replica
        stalls and says why in :meth:`status`.
    """

    def __init__(self, engine: sako.Engine, servers: Any, stream: str = "SAKO",
                 subject: str = "sako.log", replicas: Optional[int] = None,
                 lease_seconds: float = 6.0, retrain_check_seconds: float = 5.0,
                 publish_timeout: float = 5.0, max_payload: int = 8 << 20,
                 name: Optional[str] = None, snapshot_every: int = 100_000,
                 on_applied: Optional[Any] = None,
                 compact: Optional[Dict[str, Any]] = None, restore_when_behind: bool = True,
                 on_engine: Optional[Any] = None) -> None:
        self.engine = engine
        self.servers: List[str] = ([s.strip() for s in servers.split(",") if s.strip()]
                                   if isinstance(servers, str) else list(servers))
        if not self.servers:
            raise ValueError("no NATS server given")
        self.stream, self.subject = stream, subject
        self.replicas = replicas or min(len(self.servers), 5)
        self.lease_seconds = lease_seconds
        self.retrain_check_seconds = retrain_check_seconds
        self.publish_timeout = publish_timeout
        self.snapshot_every = snapshot_every
        self.on_applied = on_applied  # called with each entry's sequence once applied
        self.apply_run = 256  # entries handed to the engine's thread at once, at most
        # keep_days / keep_events: the lease holder publishes a compaction after each
        # retrain it publishes (None: never; an admin may still publish_compact)
        self.compact = compact
        self.compact_reports: Dict[int, Any] = {}  # position -> CompactReport (the last few)
        # Fallen behind the stream's retention while running: replace the engine by
        # the latest snapshot (a file engine only), then call on_engine(new engine).
        self.restore_when_behind = restore_when_behind
        self.on_engine = on_engine
        self._known_items: set = set()  # item ids seen in the local replica (never deleted)
        self.snapshot_position = 0  # the last snapshot this replica uploaded
        self.max_payload = max_payload
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.last_seq = 0          # the stream's last sequence, as last seen
        self.first_seq = 0
        self.connected = False
        self.leader = False
        self.stalled: Optional[str] = None  # why the follower cannot go on (retention)
        self.applied_count = 0
        self.rejected_count = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._applied = threading.Condition()
        self._nc: Any = None
        self._js: Any = None
        self._ready = threading.Event()
        self._tasks: List[asyncio.Task] = []

    # ------------------------------------------------------------------ life
    def start(self, wait: float = 0.0) -> "Replica":
        """Start the loop thread (connects in the background, retrying forever);
        with ``wait``, wait that long for the first connection."""
        self._thread = threading.Thread(target=self._run, name="sako-replica", daemon=True)
        self._thread.start()
        if wait:
            self._ready.wait(wait)
        return self

    def stop(self) -> None:
        self._stop.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: None)
        if self._thread is not None:
            self._thread.join(10)
        with self._applied:
            self._applied.notify_all()

    def __enter__(self) -> "Replica":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        import nats

        async def disconnected() -> None:
            self.connected = False

        async def reconnected() -> None:
            self.connected = True

        async def error(exc: Exception) -> None:  # nats-py prints a traceback otherwise
            log.debug("replica %s: NATS: %s", self.name, exc)

        while not self._stop.is_set():
            try:
                self._nc = await nats.connect(
                    servers=self.servers, connect_timeout=2, max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25, allow_reconnect=True, name=self.name,
                    disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error)
                break
            except Exception as exc:  # unreachable: keep trying, reads go on
                log.warning("replica %s: NATS unreachable (%s); retrying", self.name, exc)
                await asyncio.sleep(0.5)
        if self._stop.is_set():
            return
        self._js = self._nc.jetstream()
        self.connected = True
        await self._ensure_stream()
        self._ready.set()
        self._tasks = [asyncio.ensure_future(self._follow()),
                       asyncio.ensure_future(self._watch_stream())]
        if self.retrain_check_seconds > 0:
            self._tasks.append(asyncio.ensure_future(self._lease()))
        while not self._stop.is_set():
            await asyncio.sleep(0.1)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._nc.close()
        except Exception:
            pass

    async def _ensure_stream(self) -> None:
        from nats.js.api import StorageType, StreamConfig

        while not self._stop.is_set():
            try:
                await self._js.stream_info(self.stream)
                return
            except Exception:
                pass
            try:
                await self._js.add_stream(StreamConfig(
                    name=self.stream, subjects=[self.subject], storage=StorageType.FILE,
                    num_replicas=self.replicas, duplicate_window=120.0,
                    max_msg_size=self.max_payload))
                return
            except Exception as exc:
                log.warning("replica %s: cannot create stream %s (%s); retrying", self.name,
                            self.stream, exc)
                await asyncio.sleep(0.5)

    # -------------------------------------------------------------- follower
    async def _follow(self) -> None:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            start = self.applied + 1
            sub = None
            try:
                info = await self._js.stream_info(self.stream)
                if info.state.first_seq > start:  # (a purged stream: first = last + 1)
                    # Retention dropped entries this replica never applied: going on
                    # would skip them. Restore a snapshot first (docs/operations.md):
                    # here, when the engine has a file, else by hand.
                    why = await loop.run_in_executor(None, self._restore_behind,
                                                     info.state.first_seq)
                    if why is None:
                        continue
                    self.stalled = (f"the stream starts at {info.state.first_seq} but this "
                                    f"replica holds entries up to {start - 1} only: {why}")
                    log.error("replica %s: %s", self.name, self.stalled)
                    await asyncio.sleep(1.0)
                    continue
                self.stalled = None
                sub = await self._js.subscribe(
                    self.subject, stream=self.stream, ordered_consumer=True,
                    config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                          opt_start_seq=start, idle_heartbeat=1.0))
                idle_since = time.monotonic()
                while not self._stop.is_set():
                    try:
                        msg = await sub.next_msg(timeout=0.5)
                    except (asyncio.TimeoutError, TimeoutError):
                        # Behind and nothing arrives: the consumer lost its server;
                        # start again from the file's position.
                        if self.lag > 0 and time.monotonic() - idle_since > 2.0:
                            break
                        continue
                    except Exception:
                        break
                    idle_since = time.monotonic()
                    # What has arrived already goes to the engine in one hand-off (one
                    # executor hop for the run, each entry still applied on its own).
                    run, stop = [], False
                    while True:
                        seq = msg.metadata.sequence.stream
                        if seq > self.applied and (not run or seq > run[-1][0]):
                            hdrs = msg.headers or {}
                            fmt = hdrs.get(codec.FORMAT_HEADER, codec.FORMAT)
                            if fmt != codec.FORMAT:  # a newer publisher: never skip it
                                self.stalled = (f"entry {seq} has format {fmt}; this replica "
                                                f"reads {codec.FORMAT}: upgrade it")
                                log.error("replica %s: %s", self.name, self.stalled)
                                stop = True
                                break
                            run.append((seq, hdrs.get(codec.KIND_HEADER, ""), msg.data))
                        if len(run) >= self.apply_run or sub.pending_msgs == 0:
                            break
                        msg = await _next_pending(sub)
                    if run:
                        await loop.run_in_executor(None, self._apply_run, run)
                    if stop:
                        await asyncio.sleep(1.0)
                        break
            except Exception as exc:
                if not self._stop.is_set():
                    log.info("replica %s: follower restarts at %d (%s)", self.name,
                             self.applied + 1, exc)
            finally:
                if sub is not None:
                    try:
                        await sub.unsubscribe()
                    except Exception:
                        pass
            await asyncio.sleep(0.1)

    def _restore_behind(self, first_seq: int) -> Optional[str]:
        """Replace the engine by the latest snapshot when it reaches the stream's
        first entry (None), else say why not. The old engine is closed (waiting for
        the calls in flight) and its files kept beside the new one."""
        from . import snapshot

        old = self.engine
        if not self.restore_when_behind or old.path is None:
            return "restore a snapshot (sako.replication.snapshot)"
        fresh = f"{old.path}.restoring-{os.getpid()}"
        try:
            if os.path.exists(fresh):
                os.unlink(fresh)
            position = snapshot.restore(self.servers, fresh)
        except Exception as exc:
            return f"no snapshot to restore ({type(exc).__name__}: {exc})"
        if position < first_seq - 1:
            os.unlink(fresh)
            return f"the latest snapshot (at {position}) is behind the stream too"
        options = dict(old.options)
        old.close()
        snapshot.set_aside(old.path)
        os.replace(fresh, old.path)
        self.engine = sako.Engine(old.path, **options)
        self.snapshot_position = position
        log.warning("replica %s: fell behind the stream's retention; restored the snapshot "
                    "at %d (the old file is kept beside it)", self.name, position)
        if self.on_engine is not None:
            self.on_engine(self.engine)
        with self._applied:
            self._applied.notify_all()
        return None

    def _apply_run(self, run: List[Any]) -> None:
        for seq, kind, data in run:
            if self._stop.is_set():
                return
            self._apply(seq, kind, data)

    def _apply(self, seq: int, kind: str, data: bytes) -> None:
        """Apply one entry; transient failures are retried here until they pass."""
        while not self._stop.is_set():
            try:
                try:
                    out = codec.apply(self.engine, seq, kind, data, self.compact_reports)
                    while len(self.compact_reports) > 16:
                        del self.compact_reports[min(self.compact_reports)]
                except codec.Malformed as exc:  # no replica can apply it: consume it
                    log.error("replica %s: entry %d: %s; skipped", self.name, seq, exc)
                    out = self.engine.update_events_at(seq, np.zeros(0, codec.EVENT_DTYPE))
                if out.outcome == "rejected":
                    self.rejected_count += 1
                    log.warning("replica %s: entry %d rejected: %s", self.name, seq, out.message)
                elif out.outcome == "applied":
                    self.applied_count += 1
                if self.on_applied is not None:
                    self.on_applied(seq)
                break
            except (sako.Busy, sako.IOFailure, sako.OutOfMemory) as exc:
                log.warning("replica %s: entry %d: %s; retrying", self.name, seq, exc)
                time.sleep(0.2)
        with self._applied:
            self._applied.notify_all()

    async def _watch_stream(self) -> None:
        while not self._stop.is_set():
            try:
                info = await self._js.stream_info(self.stream)
                self.last_seq = max(self.last_seq, info.state.last_seq)
                self.first_seq = info.state.first_seq
            except Exception:
                pass
            await asyncio.sleep(0.25)

    # ----------------------------------------------------------------- lease
    async def _lease(self) -> None:
        from nats.js.api import KeyValueConfig

        kv = None
        revision = 0
        key = "retrain-leader"
        while not self._stop.is_set():
            try:
                if kv is None:
                    try:
                        kv = await self._js.key_value("sako_lease")
                    except Exception:
                        kv = await self._js.create_key_value(KeyValueConfig(
                            bucket="sako_lease", ttl=self.lease_seconds, history=1,
                            replicas=self.replicas))
                if self.leader:
                    revision = await kv.update(key, self.name.encode(), last=revision)
                else:
                    revision = await kv.create(key, self.name.encode())
                    self.leader = True
                    log.info("replica %s: holds the retrain lease", self.name)
            except Exception:
                self.leader = False
            if self.leader:
                await self._maybe_retrain()
                if self.snapshot_every and \
                        self.applied - self.snapshot_position >= self.snapshot_every:
                    try:
                        await self._snapshot()
                    except Exception as exc:
                        log.warning("replica %s: snapshot failed (%s)", self.name, exc)
            await asyncio.sleep(min(self.lease_seconds / 3, self.retrain_check_seconds))

    async def _maybe_retrain(self) -> None:
        if self.lag > 0:
            return  # decide on the whole log
        try:
            due = self.engine.retrain_due()
        except sako.SakoError:
            return
        if not due.due:
            return
        position = self.applied
        try:  # one entry per position, whoever held the lease then
            ack = await self._js.publish(self.subject, codec.encode_retrain(int(due.reasons)),
                                         stream=self.stream, timeout=self.publish_timeout,
                                         headers=codec.headers(codec.RETRAIN, f"retrain-{position}"))
            log.info("replica %s: retrain (%s) published at %d", self.name, due.reason, ack.seq)
            await asyncio.get_running_loop().run_in_executor(None, self.wait_applied, ack.seq, 60.0)
        except Exception as exc:
            log.warning("replica %s: retrain not published (%s)", self.name, exc)
            return
        if self.compact is not None:
            try:  # one per retrain entry, whoever publishes it
                c = await self._js.publish(
                    self.subject, codec.encode_compact(self.compact.get("keep_days", 30.0),
                                                       self.compact.get("keep_events", 100_000)),
                    stream=self.stream, timeout=self.publish_timeout,
                    headers=codec.headers(codec.COMPACT, f"compact-after-{ack.seq}"))
                log.info("replica %s: compaction published at %d", self.name, c.seq)
            except Exception as exc:
                log.warning("replica %s: compaction not published (%s)", self.name, exc)

    async def _snapshot(self) -> int:
        from . import snapshot

        loop = asyncio.get_running_loop()
        path, position = await loop.run_in_executor(None, snapshot.take, self.engine)
        try:
            await snapshot.upload(self._js, path, position, self.replicas)
        finally:
            os.unlink(path)
        self.snapshot_position = position
        log.info("replica %s: snapshot at position %d uploaded", self.name, position)
        return position

    def publish_snapshot(self, timeout: float = 300.0) -> int:
        """Upload an online backup of this replica to the object store now (the lease
        holder does it every ``snapshot_every`` entries). Returns its position."""
        self._require_connected()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop).result(timeout)

    # ------------------------------------------------------------- publisher
    @property
    def applied(self) -> int:
        """The local engine's position (0 for the moment a snapshot replaces it)."""
        try:
            return self.engine.log_position
        except sako.Misuse:  # the old engine, closed by _restore_behind
            return 0

    @property
    def lag(self) -> int:
        """Entries in the stream this replica has not applied yet."""
        return max(0, self.last_seq - self.applied)

    def status(self) -> Dict[str, Any]:
        applied = self.applied
        return {"name": self.name, "connected": self.connected, "stream": self.stream,
                "applied": applied,
                "last_seq": self.last_seq, "lag": max(0, self.last_seq - applied),
                "leader": self.leader, "stalled": self.stalled,
                "entries_applied": self.applied_count, "entries_rejected": self.rejected_count}

    def wait_applied(self, seq: int, timeout: float) -> bool:
        """Wait until the local engine has applied the entry at ``seq``."""
        deadline = time.monotonic() + timeout
        with self._applied:
            while self.applied < seq:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._applied.wait(min(left, 0.05))
        return True

    def refresh_last_seq(self, timeout: float = 1.0) -> int:
        """Ask the stream for its last sequence now (best effort)."""
        loop = self._loop
        if loop is not None and self._js is not None and self.connected:
            try:
                info = asyncio.run_coroutine_threadsafe(self._js.stream_info(self.stream),
                                                        loop).result(timeout)
                self.last_seq = max(self.last_seq, info.state.last_seq)
            except Exception:
                pass
        return self.last_seq

    def _require_connected(self) -> None:
        if self._loop is None or self._js is None or not self.connected or self._nc.is_closed:
            raise Unavailable("the replicated log (NATS JetStream) is unreachable")

    def _check_size(self, data: bytes) -> None:
        if len(data) > self.max_payload:
            raise sako.RangeError(f"the batch is {len(data)} bytes, above the entry limit "
                                  f"{self.max_payload}: send it in smaller batches")

    def publish(self, kind: str, data: bytes, msg_id: Optional[str] = None) -> int:
        """Publish one entry and return its stream sequence once JetStream has
        acknowledged it. Raises :class:`Unavailable` when NATS cannot take it."""
        self._check_size(data)
        self._require_connected()
        loop = self._loop
        assert loop is not None
        coro = self._js.publish(self.subject, data, stream=self.stream,
                                timeout=self.publish_timeout,
                                headers=codec.headers(kind, msg_id or uuid.uuid4().hex))
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            ack = fut.result(self.publish_timeout + 1.0)
        except Exception as exc:
            fut.cancel()
            raise Unavailable(f"the replicated log did not acknowledge the batch: "
                              f"{type(exc).__name__} {exc}") from None
        self.last_seq = max(self.last_seq, int(ack.seq))
        return int(ack.seq)

    def publish_many(self, entries: Sequence[Any], window: int = 32) -> List[int]:
        """Publish entries ``(kind, data, msg_id or None)`` pipelined: up to ``window``
        publishes wait for their acknowledgements at once, in the order given (so
        their stream order is that order while one publisher writes). Returns their
        stream sequences once all are acknowledged. Raises :class:`Unavailable` when
        one is not: publish the same entries again with the same message ids
        (JetStream drops those it holds already)."""
        for _, data, _ in entries:
            self._check_size(data)
        if window < 1:
            raise sako.InvalidArgument("window must be at least 1")
        self._require_connected()
        loop = self._loop
        assert loop is not None
        todo = [(kind, data, msg_id or uuid.uuid4().hex) for kind, data, msg_id in entries]

        async def run() -> List[int]:
            gate = asyncio.Semaphore(window)

            async def one(kind: str, data: bytes, msg_id: str) -> int:
                try:
                    ack = await self._js.publish(self.subject, data, stream=self.stream,
                                                 timeout=self.publish_timeout,
                                                 headers=codec.headers(kind, msg_id))
                    return int(ack.seq)
                finally:
                    gate.release()

            tasks = []
            for kind, data, msg_id in todo:
                await gate.acquire()  # bounded in flight; sent in the order given
                tasks.append(asyncio.ensure_future(one(kind, data, msg_id)))
            return list(await asyncio.gather(*tasks))

        fut = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            seqs = fut.result(self.publish_timeout * (1 + len(todo) / window) + 1.0)
        except Exception as exc:
            fut.cancel()
            raise Unavailable(f"the replicated log did not acknowledge every batch: "
                              f"{type(exc).__name__} {exc}") from None
        if seqs:
            self.last_seq = max(self.last_seq, max(seqs))
        return seqs

    # The writes, validated against the local replica first (so that a batch every
    # replica would reject never enters the log).
    def publish_events(self, users: Any, items: Any, types: Any, times: Any = None,
                       recs: Any = None, orders: Any = None, msg_id: Optional[str] = None,
                       catch_up: float = 2.0) -> int:
        self._require_connected()  # unreachable: 503 before any check
        return self.publish(codec.EVENTS, self.events_entry(users, items, types, times, recs,
                                                            orders, catch_up), msg_id)

    def publish_events_many(self, batches: Sequence[Sequence[Any]], window: int = 32,
                            msg_ids: Optional[Sequence[Optional[str]]] = None) -> List[int]:
        """:meth:`publish_events` for several batches ``(users, items, types[, times[,
        recs[, orders]]])``, each validated, then published pipelined
        (:meth:`publish_many`). Nothing is published when one fails validation."""
        self._require_connected()
        ids = list(msg_ids) if msg_ids is not None else [None] * len(batches)
        if len(ids) != len(batches):
            raise sako.InvalidArgument("msg_ids and batches differ in length")
        return self.publish_many([(codec.EVENTS, self.events_entry(*b), m)
                                  for b, m in zip(batches, ids)], window)

    def events_entry(self, users: Any, items: Any, types: Any, times: Any = None,
                     recs: Any = None, orders: Any = None, catch_up: float = 2.0) -> bytes:
        """An events entry, validated as every replica would ("now" resolved here)."""
        u = np.ascontiguousarray(users, dtype=np.int64)
        it = np.ascontiguousarray(items, dtype=np.int64)
        ty = np.ascontiguousarray(types, dtype=np.int32)
        n = len(u)
        tm = (np.zeros(n, np.int64) if times is None
              else np.array(times, dtype=np.int64, copy=True))
        tm[tm == 0] = now_ms()  # "now" is the publisher's, once, for every replica
        rc = np.zeros(n, np.int64) if recs is None else np.ascontiguousarray(recs, dtype=np.int64)
        od = None if orders is None else np.ascontiguousarray(orders, dtype=np.int64)
        if len(it) != n or len(ty) != n or len(tm) != n or len(rc) != n or (od is not None and len(od) != n):
            raise sako.InvalidArgument("event arrays differ in length")
        validate.events(u, it, ty, tm, rc, od)
        bad = validate.unknown_items(self.engine, it, self._known_items)
        if bad is not None and catch_up > 0:  # an item upserted a moment ago
            self.refresh_last_seq()
            self.wait_applied(self.last_seq, catch_up)
            bad = validate.unknown_items(self.engine, it, self._known_items)
        if bad is not None and self.engine.options.get("unknown_items", 0) in (0, "reject"):
            raise sako.NotFound(f"event [{bad}]: unknown item {int(it[bad])}")
        return codec.encode_events(u, it, ty, tm, rc, od)

    def _validated(self, check: Any, *args: Any, catch_up: float = 2.0) -> None:
        """Run a catalog check; a category not known here may have been published a
        moment ago (by another worker): catch up with the stream and check again."""
        try:
            check(self.engine, *args)
        except sako.NotFound:
            self.refresh_last_seq()
            if not self.wait_applied(self.last_seq, catch_up):
                raise
            check(self.engine, *args)

    def publish_items(self, ids: Any, category_ids: Any = None, active: Any = None,
                      added_at: Any = None, msg_id: Optional[str] = None) -> int:
        self._require_connected()  # unreachable: 503 before any check
        i = np.ascontiguousarray(ids, dtype=np.int64)
        n = len(i)
        c = np.zeros(n, np.int64) if category_ids is None else np.ascontiguousarray(category_ids, dtype=np.int64)
        a = np.ones(n, np.int32) if active is None else np.ascontiguousarray(active, dtype=np.int32)
        t = (np.zeros(n, np.int64) if added_at is None
             else np.array([x or 0 for x in added_at], dtype=np.int64))
        t[t == 0] = now_ms()
        if len(c) != n or len(a) != n or len(t) != n:
            raise sako.InvalidArgument("item arrays differ in length")
        self._validated(validate.items, i, c, a, t)
        return self.publish(codec.ITEMS, codec.encode_items(i, c, a, t), msg_id)

    def publish_categories(self, ids: Sequence[int], parent_ids: Optional[Sequence[int]] = None,
                           names: Optional[Sequence[Optional[str]]] = None,
                           msg_id: Optional[str] = None) -> int:
        self._require_connected()  # unreachable: 503 before any check
        ids = [int(x) for x in ids]
        parents = [int(x or 0) for x in parent_ids] if parent_ids is not None else [0] * len(ids)
        nm = list(names) if names is not None else [None] * len(ids)
        if len(parents) != len(ids) or len(nm) != len(ids):
            raise sako.InvalidArgument("category arrays differ in length")
        self._validated(validate.categories, ids, parents, nm)
        return self.publish(codec.CATEGORIES, codec.encode_categories(ids, parents, nm), msg_id)

    def publish_policy(self, value: Any, msg_id: Optional[str] = None) -> int:
        """The retrain policy for every replica: a :class:`sako.Policy` or a mapping of
        some of its fields (merged with the local replica's policy), validated by the
        C library on a scratch engine first."""
        import dataclasses

        self._require_connected()
        if isinstance(value, sako.Policy):
            merged = value
        else:
            names = {f.name for f in dataclasses.fields(sako.Policy)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise sako.InvalidArgument(f"policy: unknown field(s) {', '.join(unknown)}")
            merged = dataclasses.replace(self.engine.policy, **value)
        with sako.Engine(None) as scratch:
            scratch.policy = merged  # raises what every replica would
        return self.publish(codec.POLICY, codec.encode_json(dataclasses.asdict(merged)), msg_id)

    def publish_activate(self, version: int, msg_id: Optional[str] = None) -> int:
        """Activate (roll back to) a stored version on every replica."""
        self._require_connected()
        info = self.engine.version(int(version))  # NotFound as on every replica
        if info.status == "rejected":
            raise sako.InvalidArgument(f"model version {version} was rejected by its gate")
        return self.publish(codec.ACTIVATE, codec.encode_json({"version": int(version)}), msg_id)

    def publish_pin(self, version: int, pinned: bool = True, msg_id: Optional[str] = None) -> int:
        self._require_connected()
        self.engine.version(int(version))
        return self.publish(codec.PIN, codec.encode_json({"version": int(version),
                                                          "pinned": bool(pinned)}), msg_id)

    def publish_compact(self, keep_days: float = 30.0, keep_events: int = 100_000,
                        msg_id: Optional[str] = None) -> int:
        """A compaction of every replica's event log at one position of the stream
        (:meth:`sako.Engine.compact` there); the options are checked on a scratch
        engine first. Its report is in ``compact_reports[seq]`` once applied here."""
        self._require_connected()
        with sako.Engine(None) as scratch:  # raises what every replica would
            scratch.compact(keep_days=keep_days, keep_events=keep_events)
        return self.publish(codec.COMPACT, codec.encode_compact(keep_days, keep_events), msg_id)

    def publish_retrain(self, reasons: int = int(sako.RetrainReason.MANUAL),
                        msg_id: Optional[str] = None) -> int:
        self._require_connected()  # unreachable: 503 before any check
        return self.publish(codec.RETRAIN, codec.encode_retrain(reasons), msg_id)
