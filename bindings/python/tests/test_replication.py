"""Replicated mode (issue 11): the follower's idempotence, the 503 path, and the
convergence test: three replica processes on a three-node JetStream cluster take
concurrent ingest while a replica and a NATS node are killed with SIGKILL and
restarted; at the end every replica's posteriors and users are bit-identical to one
engine fed the acknowledged entries in stream order, with no acknowledged event lost
and none applied twice."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

import sako
from sako.replication import Replica, Unavailable, codec
from sako.replication import natsserver

pytest.importorskip("nats")
needs_nats = pytest.mark.skipif(natsserver.binary() is None,
                                reason="nats-server is not installed (Debian package nats-server; "
                                       "tests/install-deps.sh installs it)")
T0 = 1_700_000_000_000


def _catalog(pub: Replica) -> None:
    pub.wait_applied(pub.publish_categories([1, 2, 3], [0, 1, 1], ["dept", "a", "b"]), 10)
    ids = np.arange(1, 61)
    pub.wait_applied(pub.publish_items(ids, 2 + ids % 2, np.ones(60, np.int32),
                                       T0 - ids), 10)


def test_follower_entries_are_idempotent(tmp_path):
    """Each entry applied twice (a redelivery, a restart) changes nothing the second
    time; a bad entry is rejected and consumed alike on every replica."""
    entries = [(1, codec.CATEGORIES, codec.encode_categories([1, 2], [0, 1], ["d", "a"])),
               (2, codec.ITEMS, codec.encode_items(np.array([5, 6]), np.array([2, 2]),
                                                   np.array([1, 1]), np.array([T0, T0]))),
               (4, codec.EVENTS, codec.encode_events(np.array([1, 2]), np.array([5, 6]),
                                                     np.array([0, 3]), np.array([T0 + 1, T0 + 2]))),
               (5, codec.EVENTS, codec.encode_events(np.array([1]), np.array([99]),
                                                     np.array([1]), np.array([T0 + 3]))),
               (7, codec.RETRAIN, codec.encode_retrain(8))]
    with sako.Engine(str(tmp_path / "a.db"), durability="off") as a:
        outs = [codec.apply(a, p, k, d).outcome for p, k, d in entries]
        assert outs == ["applied", "applied", "applied", "rejected", "applied"]
        before = (a.stats(), a.item(5), a.item(6), a.user(2))
        assert [codec.apply(a, p, k, d).outcome for p, k, d in entries] == ["skipped"] * 5
        assert (a.stats(), a.item(5), a.item(6), a.user(2)) == before
        assert a.log_position == 7
    with sako.Engine(str(tmp_path / "a.db"), durability="off") as a:  # a restart
        assert a.log_position == 7
        assert [codec.apply(a, p, k, d).outcome for p, k, d in entries] == ["skipped"] * 5
        assert (a.stats(), a.item(5), a.item(6), a.user(2)) == before
        a.backup(str(tmp_path / "snap.db"))  # a snapshot carries its position
    with sako.Engine(str(tmp_path / "snap.db"), durability="off") as b:
        assert b.log_position == 7
        assert (b.stats(), b.item(5), b.item(6), b.user(2)) == before
        more = codec.encode_events(np.array([3]), np.array([6]), np.array([3]), np.array([T0 + 9]))
        assert codec.apply(b, 7, codec.EVENTS, more).outcome == "skipped"
        assert codec.apply(b, 9, codec.EVENTS, more).outcome == "applied"


def _run_entries():
    """A run of entries as the follower hands them over: events, a batch that fails
    validation in the middle (an unknown item), more events, an item, events on it."""
    rnd = np.random.default_rng(8)
    out = [(1, codec.CATEGORIES, codec.encode_categories([1, 2], [0, 1], ["d", "a"])),
           (2, codec.ITEMS, codec.encode_items(np.arange(1, 61), np.full(60, 2), np.ones(60),
                                               np.full(60, T0)))]
    for b in range(12):
        items = rnd.integers(1, 61, 30)
        if b == 5:
            items[17] = 999  # unknown: rejected whole, its position consumed
        out.append((3 + b, codec.EVENTS, codec.encode_events(
            rnd.integers(1, 31, 30), items, rnd.choice([0, 1, 3], 30),
            T0 + 100 * b + np.arange(30))))
    out.append((20, codec.ITEMS, codec.encode_items(np.array([999]), np.array([2]),
                                                    np.array([1]), np.array([T0]))))
    out.append((22, codec.EVENTS, codec.encode_events(np.array([1]), np.array([999]),
                                                      np.array([3]), np.array([T0 + 5000]))))
    return out


def test_a_run_is_applied_as_its_entries_one_by_one(tmp_path):
    """The follower hands a run of received entries to the engine at once: the
    outcomes, positions and state are those of the entries applied one by one (the
    invalid batch in the middle rejected alone), and a replica killed between two
    entries of a run holds exactly the entries before the kill and ends the same."""
    entries = _run_entries()
    with sako.Engine(None) as ref:
        outs = [codec.apply(ref, p, k, d).outcome for p, k, d in entries]
        assert outs.count("rejected") == 1 and outs[7] == "rejected"
        with sako.Engine(str(tmp_path / "a.db"), durability="off") as a:
            seen = []
            r = Replica(a, "nats://127.0.0.1:1", on_applied=seen.append)
            r._apply_run(entries)
            assert seen == [p for p, _, _ in entries]
            assert (r.applied_count, r.rejected_count) == (outs.count("applied"), 1)
            assert a.log_position == 22 and _log_state(a)[1:] == _log_state(ref)[1:]
        # killed (SIGKILL) once the entry at 11 is applied, in the middle of the run
        db = str(tmp_path / "b.db")
        code = (f"import os, signal, sys\n"
                f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
                f"import sako, test_replication as t\n"
                f"from sako.replication import Replica\n"
                f"e = sako.Engine({db!r}, durability='normal')\n"
                f"def hit(seq):\n"
                f"    if seq == 11:\n"
                f"        os.kill(os.getpid(), signal.SIGKILL)\n"
                f"Replica(e, 'nats://127.0.0.1:1', on_applied=hit)._apply_run(t._run_entries())\n")
        p = subprocess.run([sys.executable, "-c", code], timeout=120,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert p.returncode == -signal.SIGKILL
        with sako.Engine(db) as b:
            assert b.log_position == 11
            assert b.stats().n_events == sum(len(codec.decode_events(d)) for q, k, d in entries
                                             if k == codec.EVENTS and q <= 11 and q != 8)
            r = Replica(b, "nats://127.0.0.1:1")
            r._apply_run(entries)  # read again from the stream: the first ones skip
            assert (r.applied_count, r.rejected_count) == (5, 0)
            assert b.log_position == 22 and _log_state(b)[1:] == _log_state(ref)[1:]


def test_writes_503_and_reads_go_on_when_nats_is_unreachable(tmp_path):
    from fastapi.testclient import TestClient

    from sako.service import Settings, create_app

    port = natsserver.free_ports(1)[0]  # nothing listens there
    s = Settings(db=str(tmp_path / "r.db"), replicate=f"nats://127.0.0.1:{port}",
                 admin_keys="adm", client_keys="cli")
    with TestClient(create_app(s)) as c:
        h = {"X-API-Key": "adm"}
        r = c.post("/v1/events", headers=h, json={"events": [
            {"user_id": 1, "item_id": 1, "type": "click"}]})
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        assert r.json()["error"] == "log_unavailable"
        r = c.put("/v1/items", headers=h, json={"items": [{"id": 1}]})
        assert r.status_code == 503
        assert c.get("/v1/stats", headers=h).status_code == 200
        assert c.post("/v1/recommendations", headers=h, json={"user_id": 1, "k": 3}).status_code == 200
        health = c.get("/healthz").json()
        assert health["replication"]["connected"] is False
        m = c.get("/metrics", headers=h).text
        assert "sako_replication_lag" in m and "sako_replication_connected 0" in m


def test_app_factory_reads_keys_from_the_environment(monkeypatch, tmp_path):
    """uvicorn --factory sako.service:create_app: the keys come from SAKO_*."""
    from fastapi.testclient import TestClient

    from sako.service import create_app

    monkeypatch.setenv("SAKO_CLIENT_KEYS", "k1,k2")
    monkeypatch.setenv("SAKO_ADMIN_KEYS", "k3")
    monkeypatch.setenv("SAKO_DB", str(tmp_path / "f.db"))
    with TestClient(create_app()) as c:
        assert c.get("/v1/stats", headers={"X-API-Key": "k2"}).status_code == 200
        assert c.get("/v1/stats", headers={"X-API-Key": "nope"}).status_code == 401


def _stream_entries(urls, stream="SAKO"):
    """Every entry of the stream in order: (seq, kind, data)."""
    import nats
    from nats.js.api import DeliverPolicy

    async def read():
        nc = await nats.connect(servers=urls)
        js = nc.jetstream()
        last = (await js.stream_info(stream)).state.last_seq
        sub = await js.subscribe("sako.log", stream=stream, ordered_consumer=True,
                                 deliver_policy=DeliverPolicy.ALL)
        out = []
        while not out or out[-1][0] < last:
            m = await sub.next_msg(timeout=10)
            out.append((m.metadata.sequence.stream, (m.headers or {}).get(codec.KIND_HEADER),
                        m.data))
        await nc.close()
        return out

    return asyncio.run(read())


def _bits(record):
    """Every field, floats as their bytes: equal means bit-identical."""
    return tuple(np.float64(v).tobytes() if isinstance(v, float) else v
                 for v in dataclasses.astuple(record))


def _status(path):
    try:
        with open(path) as f:
            a, b = f.read().split()
        return int(a), int(b)
    except (OSError, ValueError):
        return -1, -1


@needs_nats
def test_convergence_under_kills(tmp_path):
    rounds = int(os.environ.get("SAKO_CONVERGE_BATCHES", "60"))
    clients = int(os.environ.get("SAKO_CONVERGE_CLIENTS", "4"))
    kills = int(os.environ.get("SAKO_CONVERGE_KILLS", "2"))
    # ingest lasts about as long as the kills take (each 1 to 3 s)
    pace = float(os.environ.get("SAKO_CONVERGE_PACE", str(kills * 2.0 / rounds)))
    rng = random.Random(11)
    with natsserver.Cluster(str(tmp_path / "nats"), 3) as cluster:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        dbs = [str(tmp_path / f"r{i}.db") for i in range(3)]
        status = [str(tmp_path / f"r{i}.status") for i in range(3)]
        urls = ",".join(cluster.urls)

        def spawn(i):
            return subprocess.Popen([sys.executable, "-m", "sako.replication.follow", dbs[i], urls,
                                     status[i]], env=env)

        procs = [spawn(i) for i in range(3)]
        with sako.Engine(None) as pe, Replica(pe, cluster.urls, retrain_check_seconds=0) as pub:
            assert pub._ready.wait(20)
            _catalog(pub)
            acked = {}  # seq -> events
            retries = [0]
            lock = threading.Lock()

            def client(c):
                r = random.Random(c)
                for b in range(rounds):
                    n = r.randint(5, 40)
                    users = np.array([r.randint(1, 30) for _ in range(n)])
                    items = np.array([r.randint(1, 60) for _ in range(n)])
                    types = np.array([r.choice((0, 0, 0, 1, 2, 3)) for _ in range(n)])
                    times = T0 + 1000 * (c * rounds + b) + np.arange(n)
                    mid = f"c{c}-b{b}"
                    for attempt in range(200):
                        try:
                            seq = pub.publish_events(users, items, types, times, msg_id=mid)
                            break
                        except Unavailable:
                            with lock:
                                retries[0] += 1
                            time.sleep(0.1)  # retried with the same id: de-duplicated
                    else:
                        raise AssertionError(f"{mid} never acknowledged")
                    with lock:
                        assert seq not in acked or acked[seq] == n
                        acked[seq] = n
                    if b == rounds // 2 and c == 0:
                        for attempt in range(200):  # retried alike: stored once
                            try:
                                pub.publish_retrain(8, msg_id="manual-retrain")
                                pub.publish_compact(0.0, 0, msg_id="compact")  # after it
                                break
                            except Unavailable:
                                time.sleep(0.1)
                    time.sleep(pace * r.random() * 2)

            threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
            for t in threads:
                t.start()
            killed = {"replica": 0, "nats": 0}
            for k in range(kills):
                if not any(t.is_alive() for t in threads):
                    break  # kill only while clients write
                time.sleep(0.5 + rng.random())
                victim = rng.randrange(3)
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait()
                killed["replica"] += 1
                node = rng.randrange(3)
                cluster.kill_node(node)
                killed["nats"] += 1
                time.sleep(0.5 + rng.random())
                procs[victim] = spawn(victim)
                cluster.start_node(node)
            for t in threads:
                t.join(120)
            last = pub.refresh_last_seq()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(_status(s)[0] < last for s in status):
                time.sleep(0.2)
            assert all(_status(s)[0] >= last for s in status), [_status(s) for s in status]
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        entries = _stream_entries(cluster.urls)
    # The reference: one engine fed the stream in order.
    ref = sako.Engine(None)
    for seq, kind, data in entries:
        codec.apply(ref, seq, kind, data)
    in_stream = {seq: len(codec.decode_events(d)) for seq, k, d in entries if k == codec.EVENTS}
    lost = [s for s in acked if s not in in_stream]
    assert not lost
    assert sum(acked.values()) == sum(in_stream.values())  # no batch twice in the log
    n_events = ref.stats().n_events
    assert n_events == sum(acked.values())
    assert sum(k == codec.COMPACT for _, k, _ in entries) == 1
    log = ref.log_stats()
    for db in dbs:
        with sako.Engine(db) as e:
            got = e.log_stats()  # the same compaction point and log on every replica
            assert (got.compact_batch, got.n_batches, got.n_events, got.compacted_events) == \
                (log.compact_batch, log.n_batches, log.n_events, log.compacted_events)
            assert e.log_position == entries[-1][0]
            assert e.stats().n_events == n_events  # none applied twice
            assert e.stats().model_version == ref.stats().model_version == 1
            for i in range(1, 61):
                assert _bits(e.item(i)) == _bits(ref.item(i)), i
            for u in range(1, 31):
                try:
                    assert _bits(e.user(u)) == _bits(ref.user(u)), u
                except sako.NotFound:
                    with pytest.raises(sako.NotFound):
                        ref.user(u)
    print(f"convergence: {len(acked)} batches, {n_events} events acknowledged, "
          f"kills: {killed['replica']} replicas, {killed['nats']} NATS nodes; "
          f"{retries[0]} publishes retried after 'unavailable'; lost 0, twice 0; "
          f"{len(entries)} entries in the stream; compaction removed "
          f"{log.compacted_events} events")


@needs_nats
def test_service_in_replicated_mode(tmp_path):
    """Two workers on one stream: writes through either are read back at once on the
    worker that took them and reach the other; the policy, retrains (manual and the
    lease holder's), activation and pins travel in the log; lag in /healthz."""
    from fastapi.testclient import TestClient

    from sako.service import Settings, create_app

    with natsserver.Cluster(str(tmp_path / "nats"), 1) as cluster:
        def settings(i):
            return Settings(db=str(tmp_path / f"w{i}.db"), replicate=cluster.urls[0],
                            admin_keys="adm", policy_check_seconds=0.2, replicate_replicas=1)

        h = {"X-API-Key": "adm"}
        with TestClient(create_app(settings(1))) as a, TestClient(create_app(settings(2))) as b:
            for c in (a, b):  # both connected before the first write
                deadline = time.monotonic() + 20
                while not c.get("/healthz").json()["replication"]["connected"]:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            r = a.put("/v1/categories", headers=h, json={"categories": [
                {"id": 1, "name": "dept"}, {"id": 2, "parent_id": 1, "name": "aisle"}]})
            assert r.status_code == 200, r.text
            r = b.put("/v1/items", headers=h, json={"items": [
                {"id": i, "category_id": 2} for i in range(1, 21)]})
            assert r.status_code == 200, r.text  # b waited for the categories a published
            r = a.post("/v1/events", headers=h, json={"events": [
                {"user_id": u, "item_id": 1 + u % 20, "type": "click"} for u in range(1, 41)]})
            assert r.status_code == 200, r.text
            assert a.get("/v1/items/2", headers=h).json()["clicks"] == 2  # read your write
            r = a.post("/v1/events", headers=h, json={"events": [
                {"user_id": 1, "item_id": 999, "type": "click"}]})
            assert r.status_code == 422 and r.json()["error"] == "unknown_item"
            r = b.put("/v1/policy", headers=h, json={"every_events": 60, "gate_margin": 1.0})
            assert r.status_code == 200, r.text
            r = a.post("/v1/events", headers=h, json={"events": [
                {"user_id": u, "item_id": 1 + u % 20, "type": "impression"}
                for u in range(1, 41)]})
            assert r.status_code == 200
            # 80 events since the start: the lease holder publishes a retrain
            deadline = time.monotonic() + 30
            while a.get("/v1/stats", headers=h).json()["model_version"] < 1:
                assert time.monotonic() < deadline, a.get("/healthz").json()
                time.sleep(0.2)
            assert b.post("/v1/retrain", headers=h).status_code == 200
            r = a.put("/v1/versions/1/pin", headers=h, json={"pinned": True})
            assert r.status_code == 200 and r.json()["pinned"]
            r = b.post("/v1/versions/1/activate", headers=h)
            assert r.status_code == 200, r.text
            for c in (a, b):
                deadline = time.monotonic() + 20
                while c.get("/healthz").json()["replication"]["lag"] > 0:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            sa, sb = a.get("/v1/stats", headers=h).json(), b.get("/v1/stats", headers=h).json()
            assert sa == sb and sa["model_version"] >= 2
            assert a.get("/v1/versions/1", headers=h).json()["status"] == "active"
            assert b.get("/v1/versions/1", headers=h).json()["pinned"]
            assert a.get("/v1/policy", headers=h).json()["policy"]["every_events"] == 60
            for i in range(1, 21):
                assert a.get(f"/v1/items/{i}", headers=h).json() == \
                    b.get(f"/v1/items/{i}", headers=h).json()
            assert a.get("/readyz").status_code == 200
            assert "sako_replication_lag 0" in a.get("/metrics", headers=h).text
            leaders = [c.get("/healthz").json()["replication"]["leader"] for c in (a, b)]
            assert sorted(leaders) == [False, True]
            # the lease holder's retrain was followed by its compaction (auto-compact)
            done = [sorted(c.app.state.replica.compact_reports) for c in (a, b)]
            assert done[0] == done[1] and len(done[0]) == 1, done
            # compaction travels in the log (nothing to fold on so short a log)
            r = b.post("/v1/compact", headers=h, json={"keep_days": 0, "keep_events": 0})
            assert r.status_code == 200 and r.json()["batches_removed"] == 0, r.text
            assert b.post("/v1/compact", headers=h,
                          json={"keep_days": -1}).status_code == 422
            # replicas run without an fsync per batch unless told (the stream is durable)
            assert [c.app.state.engine.options["durability"] for c in (a, b)] == [1, 1]


def _small_stream(urls, max_msgs=40):
    """The stream, created by hand to keep only its last ``max_msgs`` entries."""
    import nats as nats_mod
    from nats.js.api import StorageType, StreamConfig

    async def create():
        nc = await nats_mod.connect(servers=urls)
        await nc.jetstream().add_stream(StreamConfig(
            name="SAKO", subjects=["sako.log"], storage=StorageType.FILE, max_msgs=max_msgs))
        await nc.close()

    asyncio.run(create())


@needs_nats
def test_snapshot_and_tail_when_retention_dropped_the_start(tmp_path):
    """A stream that keeps only its last 40 entries: a new replica restores the
    latest snapshot and reads the tail; without one it stalls, saying why."""
    from sako.replication import snapshot

    with natsserver.Cluster(str(tmp_path / "nats"), 1) as cluster:
        _small_stream(cluster.urls)
        with sako.Engine(str(tmp_path / "a.db")) as a, \
                Replica(a, cluster.urls, retrain_check_seconds=0) as ra:
            assert ra._ready.wait(20)
            _catalog(ra)
            rnd = random.Random(3)

            def batches(k):
                for b in range(k):
                    n = rnd.randint(5, 20)
                    seq = ra.publish_events([rnd.randint(1, 30) for _ in range(n)],
                                            [rnd.randint(1, 60) for _ in range(n)],
                                            [rnd.choice((0, 1, 3)) for _ in range(n)],
                                            T0 + 1000 * b + np.arange(n))
                return seq

            batches(80)
            assert ra.wait_applied(ra.refresh_last_seq(), 10)
            assert ra.publish_snapshot() == a.log_position
            last = batches(25)  # the tail after the snapshot, still in the stream
            assert ra.wait_applied(last, 10)
            first, end = snapshot.stream_bounds(cluster.urls)
            assert first > 1 and end == last

            # Without the snapshot a new replica cannot follow: it says so.
            with sako.Engine(str(tmp_path / "c.db")) as c, \
                    Replica(c, cluster.urls, retrain_check_seconds=0,
                            restore_when_behind=False) as rc:
                deadline = time.monotonic() + 10
                while rc.status()["stalled"] is None:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                assert c.log_position == 0 and c.stats().n_events == 0
            # With it: restore, then the tail.
            b_path = str(tmp_path / "b.db")
            assert snapshot.prepare(cluster.urls, b_path) is not None
            with sako.Engine(b_path) as b, Replica(b, cluster.urls, retrain_check_seconds=0) as rb:
                assert rb.wait_applied(last, 20), rb.status()
                assert rb.status()["stalled"] is None
                assert _bits(b.stats()) == _bits(a.stats())
                for i in range(1, 61):
                    assert _bits(b.item(i)) == _bits(a.item(i)), i
            # A file the stream has left behind is kept aside and replaced.
            c_path = str(tmp_path / "c.db")
            assert snapshot.prepare(cluster.urls, c_path) is not None
            assert any(f.startswith("c.db.behind-") for f in os.listdir(tmp_path))


def _log_state(e):
    """What a compaction changes, and every item and user bit for bit."""
    log = e.log_stats()
    return ((log.compact_batch, log.first_batch, log.n_batches, log.n_events,
             log.compacted_events, e.log_position, e.stats().n_events),
            [_bits(e.item(i)) for i in range(1, 61)],
            [_bits(e.user(u)) for u in range(1, 31)])


def _compact_entries():
    """A policy whose gate holds out 1,000 events (so that the log can be compacted),
    a catalog, 12,000 events, a retrain, 2,000 more events, a compaction."""
    rnd = np.random.default_rng(5)
    policy = dataclasses.replace(sako.Policy(), gate_holdout_events=1000)
    out = [(1, codec.POLICY, codec.encode_json(dataclasses.asdict(policy))),
           (2, codec.CATEGORIES, codec.encode_categories([1, 2, 3], [0, 1, 1], ["d", "a", "b"])),
           (3, codec.ITEMS, codec.encode_items(np.arange(1, 61), 2 + np.arange(1, 61) % 2,
                                               np.ones(60), T0 - np.arange(1, 61)))]
    for b in range(70):
        if b == 60:
            out.append((len(out) + 1, codec.RETRAIN, codec.encode_retrain(8)))
        out.append((len(out) + 1, codec.EVENTS, codec.encode_events(
            rnd.integers(1, 31, 200), rnd.integers(1, 61, 200), rnd.choice([0, 0, 1, 3], 200),
            T0 + 200 * b + np.arange(200))))
    out.append((len(out) + 1, codec.COMPACT, codec.encode_compact(0.0, 0)))
    return out


def test_compaction_entry_is_idempotent(tmp_path):
    """A compaction entry compacts like Engine.compact; a replica killed after the
    compaction but before its position was stored compacts again at restart and ends
    the same; applied again it is skipped."""
    entries = _compact_entries()
    reports = {}
    with sako.Engine(str(tmp_path / "a.db"), durability="off") as a, \
            sako.Engine(str(tmp_path / "b.db"), durability="off") as b:
        for p, k, d in entries[:-1]:
            assert codec.apply(a, p, k, d).outcome == "applied"
            assert codec.apply(b, p, k, d).outcome == "applied"
        p, k, d = entries[-1]
        assert codec.apply(a, p, k, d, reports).outcome == "applied"
        assert reports[p].batches_removed > 0 and reports[p].events_removed >= 2000
        assert a.log_stats().n_events == a.stats().n_events - reports[p].events_removed
        b.compact(keep_days=0.0, keep_events=0)  # done, then killed before the position
        assert b.log_position == p - 1
        assert codec.apply(b, p, k, d).outcome == "applied"  # again: nothing more
        assert _log_state(b) == _log_state(a)
        assert codec.apply(a, p, k, d).outcome == "skipped"
        bad = codec.encode_json({"keep_days": -1.0, "keep_events": 0})
        assert codec.apply(a, p + 1, codec.COMPACT, bad).outcome == "rejected"
        assert a.log_position == p + 1
        with pytest.raises(codec.Malformed):
            codec.apply(a, p + 2, codec.COMPACT, b'{"keep_days": "x", "keep_events": 0}')


@needs_nats
def test_compaction_through_the_stream(tmp_path):
    """Convergence, small: an admin's compaction published into the stream is applied
    at one position by every replica, a late one included (it replays it), and all
    end bit-identical with the same log; pipelined publishes keep their order and are
    de-duplicated by their message ids."""
    from sako.service.replicated import ReplicatedEngine

    entries = _compact_entries()
    with natsserver.Cluster(str(tmp_path / "nats"), 1) as cluster:
        engines = [sako.Engine(str(tmp_path / f"r{i}.db"), durability="normal") for i in range(3)]
        reps = [Replica(e, cluster.urls, retrain_check_seconds=0).start() for e in engines[:2]]
        try:
            assert reps[0]._ready.wait(20)
            pub = reps[0]
            for p, k, d in entries[:3]:
                assert pub.publish(k, d) == p
            events = [(k, d, f"e{p}") for p, k, d in entries[3:-1] if k == codec.EVENTS]
            first = entries[3:-1]
            seqs = pub.publish_many([(k, d, f"e{p}") for p, k, d in first[:61]], window=16)
            assert seqs == [p for p, _, _ in first[:61]]  # in the order given
            # the same ids again: JetStream drops them, the sequences come back
            assert pub.publish_many([(k, d, f"e{p}") for p, k, d in first[:5]], window=4) == seqs[:5]
            seqs = pub.publish_many([(k, d, f"e{p}") for p, k, d in first[61:]], window=16)
            assert seqs == [p for p, _, _ in first[61:]]
            assert len(events) == 70
            for r in reps:
                assert r.wait_applied(seqs[-1], 60), r.status()
            report = ReplicatedEngine(engines[0], pub, 30.0).compact(keep_days=0.0, keep_events=0)
            assert report.batches_removed > 0
            position = entries[-1][0]
            assert engines[0].log_position == position
            reps.append(Replica(engines[2], cluster.urls, retrain_check_seconds=0).start())
            for r in reps:
                assert r.wait_applied(position, 60), r.status()
            assert [r.compact_reports[position].batches_removed for r in reps] == \
                [report.batches_removed] * 3
            with pytest.raises(sako.InvalidArgument):  # checked before it is published
                pub.publish_compact(keep_days=-1.0)
        finally:
            for r in reps:
                r.stop()
        with sako.Engine(None) as ref:  # one engine fed the stream in order
            for p, k, d in entries:
                codec.apply(ref, p, k, d)
            states = [_log_state(e) for e in engines]
            assert states[0] == states[1] == states[2]
            assert states[0][1:] == _log_state(ref)[1:]
        for e in engines:
            e.close()


@needs_nats
def test_replica_behind_retention_restores_a_snapshot_while_running(tmp_path):
    """A running replica whose next entry the stream's retention has dropped replaces
    its engine by the latest snapshot (the old file kept aside) and goes on, without a
    restart: then bit-identical to the replica that kept up."""
    with natsserver.Cluster(str(tmp_path / "nats"), 1) as cluster:
        _small_stream(cluster.urls)
        away, swapped = threading.Event(), []
        b0 = sako.Engine(str(tmp_path / "b.db"))
        rb = Replica(b0, cluster.urls, retrain_check_seconds=0, on_engine=swapped.append)
        plain_run = rb._apply_run

        def lost_for_a_while(run):  # the first hand-off waits, then its consumer is lost
            if not away.is_set():
                away.wait(60)
                raise ConnectionError("consumer lost")
            plain_run(run)

        rb._apply_run = lost_for_a_while
        with sako.Engine(str(tmp_path / "a.db")) as a, \
                Replica(a, cluster.urls, retrain_check_seconds=0) as ra:
            rb.start()
            try:
                assert ra._ready.wait(20)
                _catalog(ra)
                rnd = random.Random(4)
                batches = [([rnd.randint(1, 30) for _ in range(10)],
                            [rnd.randint(1, 60) for _ in range(10)],
                            [rnd.choice((0, 1, 3)) for _ in range(10)],
                            T0 + 1000 * k + np.arange(10)) for k in range(105)]
                ra.publish_events_many(batches[:80])
                assert ra.wait_applied(ra.refresh_last_seq(), 20)
                assert ra.publish_snapshot() == a.log_position
                last = ra.publish_events_many(batches[80:])[-1]
                assert ra.wait_applied(last, 20)
                assert b0.log_position == 0
                away.set()
                assert rb.wait_applied(last, 30), rb.status()
                assert swapped == [rb.engine] and rb.engine is not b0 and b0.closed
                assert rb.status()["stalled"] is None
                assert rb.engine.path == str(tmp_path / "b.db")
                assert any(f.startswith("b.db.behind-") for f in os.listdir(tmp_path))
                assert _bits(rb.engine.stats()) == _bits(a.stats())
                for i in range(1, 61):
                    assert _bits(rb.engine.item(i)) == _bits(a.item(i)), i
            finally:
                rb.stop()
                rb.engine.close()


@needs_nats
def test_sako_serve_workers(tmp_path):
    """`sako serve --replicate URL --workers 2`: two processes on one port, each a
    replica with its own file; a write through the port reaches both; SIGTERM stops
    them all."""
    import json
    import urllib.request

    with natsserver.Cluster(str(tmp_path / "nats"), 1) as cluster:
        port = natsserver.free_ports(1)[0]
        db = str(tmp_path / "var" / "sako.db")
        env = {**os.environ, "SAKO_ADMIN_KEYS": "adm"}
        sako_bin = os.path.join(os.path.dirname(sys.executable), "sako")
        p = subprocess.Popen([sako_bin, "serve", "--replicate", cluster.urls[0], "--workers", "2",
                              "--db", db, "--port", str(port), "--log-level", "warning",
                              "--replicate-replicas", "1"], env=env)
        try:
            def call(method, path, body=None):
                req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                             data=json.dumps(body).encode() if body else None,
                                             headers={"X-API-Key": "adm",
                                                      "Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=10) as r:
                    return json.load(r)

            names = set()
            deadline = time.monotonic() + 90
            while len(names) < 2:  # both workers answer on the one port
                assert time.monotonic() < deadline, names
                try:
                    rep = call("GET", "/healthz")["replication"]
                    if rep["connected"]:
                        names.add(rep["name"])
                except OSError:
                    time.sleep(0.2)
            call("PUT", "/v1/categories", {"categories": [{"id": 1, "name": "d"}]})
            call("PUT", "/v1/items", {"items": [{"id": 7, "category_id": 1}]})
            seen = set()
            deadline = time.monotonic() + 30
            while len(seen) < 2:
                assert time.monotonic() < deadline, seen
                h = call("GET", "/healthz")
                if h["n_items"] == 1 and h["replication"]["lag"] == 0:
                    seen.add(h["replication"]["name"])
            assert os.path.exists(str(tmp_path / "var" / "sako-1.db"))
            assert os.path.exists(str(tmp_path / "var" / "sako-2.db"))
        finally:
            p.send_signal(signal.SIGTERM)
            assert p.wait(60) == 0
