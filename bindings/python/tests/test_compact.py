"""Log compaction: Engine.compact and log_stats, reopen and retrain after it equal an
engine never compacted (posterior by posterior, history by history), `sako compact`,
POST /v1/compact and its metrics, the compaction after each background retrain, and
`sako verify` on a compacted file. The files here hold out at most
COMPACT_MIN_EVENTS events at their retrain's gate (compaction keeps the larger of
that and the policy's gate_holdout_events, 50,000 by default)."""
from __future__ import annotations

import dataclasses
import random
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

import sako
from sako.service import Settings, create_app

from conftest import ITEMS, fill

USERS = range(1, 21)
T0 = 1_700_000_000_000


def _traffic(e: sako.Engine, start: int, n: int, seed: int) -> None:
    """n events from event number `start` on, a second apart, in batches of 50."""
    rng = random.Random(seed)
    evs = []
    for i in range(start, start + n):
        item = ITEMS[rng.randrange(len(ITEMS))][0]
        t = rng.choice(["impression"] * 6 + ["click", "purchase"])
        evs.append((rng.choice(USERS), item, t, T0 + i * 1000, 0, 1 + i // 7
                    if t == "purchase" else 0))
    for k in range(0, n, 50):
        e.update(evs[k:k + 50])


def _state(e: sako.Engine) -> dict:
    out: dict = {"stats": e.stats()}
    for item, _ in ITEMS:  # added_at: the wall clock of each file's upsert
        out[("item", item)] = dataclasses.replace(e.item(item), added_at=0)
    for u in USERS:
        out[("user", u)] = e.user(u)
        for item, _ in ITEMS:
            try:
                out[("user_item", u, item)] = e.user_item(u, item)
            except sako.NotFound:
                pass
    return out


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sako", *args], capture_output=True, text=True,
                          timeout=120)


def _two(tmp_path, n_before: int, n_after: int):
    """Two identical files: traffic, a retrain, more traffic."""
    paths = []
    for name in ("a.db", "b.db"):
        with sako.open(str(tmp_path / name), seed=3, decay_half_life_days=2.0) as e:
            fill(e)
            e.policy = {"gate_holdout_events": sako.COMPACT_MIN_EVENTS}
            _traffic(e, 0, n_before, 1)
            e.retrain()
            _traffic(e, n_before, n_after, 2)
        paths.append(str(tmp_path / name))
    return paths


def test_compact_then_reopen_and_retrain_equal(tmp_path):
    a, b = _two(tmp_path, 20_000, 12_000)
    with sako.open(a) as e:
        assert e.log_stats().n_events == 32_000
        r = e.compact(keep_days=0, keep_events=0)
        assert r.compact_batch == 400 and r.first_batch == 401
        assert (r.batches_removed, r.events_removed) == (400, 20_000)
        assert r.checkpoint_bytes > 0 and r.elapsed_ms >= 0
        log = e.log_stats()
        assert (log.n_batches, log.n_events, log.compacted_events) == (240, 12_000, 20_000)
        assert log.compact_batch == 400 and log.file_bytes > log.free_bytes >= 0
        # nothing more to do
        again = e.compact(keep_days=0, keep_events=0)
        assert again.batches_removed == 0 and again.compact_batch == 400
    with sako.open(a) as e, sako.open(b) as f:
        assert _state(e) == _state(f)
        e.retrain()
        f.retrain()
        assert _state(e) == _state(f)
    v = sako.verify(a)
    assert v.compact_batch == 400 and v.n_checkpoint_chunks >= 3 and v.n_batches == 240


def test_compact_arguments(engine):
    with pytest.raises(sako.InvalidArgument, match="keep_days"):
        engine.compact(keep_days=-1)
    with pytest.raises(sako.InvalidArgument, match="keep_days"):
        engine.compact(keep_days=float("nan"))
    with pytest.raises(sako.InvalidArgument, match="keep_events"):
        engine.compact(keep_events=-5)
    with pytest.raises(sako.InvalidArgument):
        engine.compact(keep_events=sako.ID_MAX + 1)
    # an in-memory engine with nothing retrained: nothing to compact
    r = engine.compact()
    assert (r.compact_batch, r.batches_removed, r.checkpoint_bytes) == (0, 0, 0)
    assert sako.COMPACT_MIN_EVENTS == 10_000


def test_cli_compact_and_verify(tmp_path):
    a, _ = _two(tmp_path, 15_000, 11_000)
    r = _run("compact", a, "--keep-days", "0", "--keep-events", "0")
    assert r.returncode == 0, r.stderr
    assert "compacted up to batch 300" in r.stdout and "15000 events" in r.stdout
    r = _run("compact", a, "--keep-days", "0")
    assert r.returncode == 0 and "nothing to compact" in r.stdout
    r = _run("verify", a)
    assert r.returncode == 0, r.stderr
    assert "log checkpoint at batch 300" in r.stdout
    r = _run("compact", a, "--keep-days", "-1")
    assert r.returncode == 2 and "keep_days" in r.stderr


def test_service_compact(tmp_path):
    settings = Settings(client_keys=["ck"], admin_keys=["ak"])
    admin = {"X-API-Key": "ak"}
    with sako.open(str(tmp_path / "db.sqlite"), seed=2) as e:
        fill(e)
        e.policy = {"gate_holdout_events": sako.COMPACT_MIN_EVENTS}
        _traffic(e, 0, 12_000, 5)
        e.retrain()
        _traffic(e, 12_000, 10_500, 6)
        app = create_app(settings, engine=e)
        with TestClient(app) as c:
            assert c.post("/v1/compact", headers={"X-API-Key": "ck"}).status_code == 403
            assert c.post("/v1/compact").status_code == 401
            r = c.post("/v1/compact", headers=admin, json={"keep_days": -1})
            assert r.status_code == 422, r.text
            r = c.post("/v1/compact", headers=admin)  # defaults keep 100,000 events
            assert r.status_code == 200, r.text
            assert r.json()["batches_removed"] == 0
            r = c.post("/v1/compact", headers=admin, json={"keep_days": 0, "keep_events": 0})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["compact_batch"] == 240 and body["batches_removed"] == 240
            assert body["events_removed"] == 12_000 and body["log_events"] == 10_500
            assert body["checkpoint_bytes"] > 0 and body["file_bytes"] > 0
            m = c.get("/metrics").text
            assert 'sako_compactions_total{result="ok"} 2.0' in m
            assert "sako_log_events 10500.0" in m
            assert "sako_log_compacted_events 12000.0" in m
            assert "sako_db_file_bytes" in m and "sako_log_checkpoint_bytes" in m


def test_compact_keeps_the_gate_holdout(tmp_path):
    """Compaction leaves at least the policy's gate_holdout_events (the next retrain's
    gate scores them), above keep_events and COMPACT_MIN_EVENTS."""
    with sako.open(str(tmp_path / "db.sqlite"), seed=2) as e:
        fill(e)
        _traffic(e, 0, 30_000, 5)
        e.retrain()
        assert e.policy.gate_holdout_events == 50_000  # the default: everything stays
        assert e.compact(keep_days=0, keep_events=0).batches_removed == 0
        e.policy = {"gate_holdout_events": 15_000}
        r = e.compact(keep_days=0, keep_events=0)
        assert r.events_removed == 15_000 and e.log_stats().n_events == 15_000
        _traffic(e, 30_000, 5_000, 6)
        e.retrain()
        v = e.versions()[0]
        assert v.scored and v.holdout_events == 1_750  # 5 % of 35,000 events, after C
        assert "compact" not in v.verdict


def _service_with_log(tmp_path, **settings):
    """A file engine with 20,000 events and a small gate holdout, and its client."""
    e = sako.open(str(tmp_path / "db.sqlite"), seed=2)
    fill(e)
    e.policy = {"gate_holdout_events": sako.COMPACT_MIN_EVENTS}
    _traffic(e, 0, 20_000, 5)
    s = Settings(client_keys=["ck"], admin_keys=["ak"], policy_check_seconds=0.05, **settings)
    return e, TestClient(create_app(s, engine=e))


def _wait_for(pred, timeout=20.0):
    import time
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_service_compacts_after_a_background_retrain(tmp_path):
    admin = {"X-API-Key": "ak"}
    e, client = _service_with_log(tmp_path, compact_keep_days=0, compact_keep_events=0)
    with e, client as c:
        assert e.log_stats().compacted_events == 0
        r = c.put("/v1/policy", json={"every_events": 1}, headers=admin)
        assert r.status_code == 200, r.text
        c.post("/v1/events", json={"events": [{"user_id": 1, "item_id": ITEMS[0][0],
                                               "type": "impression"}]},
               headers={"X-API-Key": "ck"})
        bg = _wait_for(lambda: c.get("/v1/policy", headers=admin).json()["background"]
                       ["last_compaction"])
        assert c.get("/v1/policy", headers=admin).json()["background"]["auto_compact"]
        assert bg["outcome"] == "ok" and bg["error"] is None
        assert bg["events_removed"] > 0 and bg["compact_batch"] > 0
        log = e.log_stats()
        assert log.compacted_events >= bg["events_removed"]
        assert log.n_events >= sako.COMPACT_MIN_EVENTS  # the gate's holdout stays
        m = c.get("/metrics").text
        assert 'sako_compactions_total{result="ok"}' in m
        assert 'sako_compactions_total{result="failed"}' not in m


def test_service_auto_compact_off(tmp_path):
    admin = {"X-API-Key": "ak"}
    e, client = _service_with_log(tmp_path, auto_compact=False)
    with e, client as c:
        c.put("/v1/policy", json={"every_events": 1}, headers=admin)
        c.post("/v1/events", json={"events": [{"user_id": 1, "item_id": ITEMS[0][0],
                                               "type": "impression"}]},
               headers={"X-API-Key": "ck"})
        _wait_for(lambda: c.get("/v1/policy", headers=admin).json()["last_retrain"])
        body = c.get("/v1/policy", headers=admin).json()["background"]
        assert not body["auto_compact"] and body["last_compaction"] is None
        assert e.log_stats().compacted_events == 0


def test_service_failed_compaction_is_logged_not_raised(tmp_path, monkeypatch, caplog):
    admin = {"X-API-Key": "ak"}
    e, client = _service_with_log(tmp_path, compact_keep_days=0, compact_keep_events=0)
    calls = []

    def boom(**kwargs):
        calls.append(kwargs)
        raise sako.IOFailure("disk full (test)")

    monkeypatch.setattr(e, "compact", boom)
    with e, client as c, caplog.at_level("ERROR", logger="sako.service"):
        c.put("/v1/policy", json={"every_events": 1}, headers=admin)
        c.post("/v1/events", json={"events": [{"user_id": 1, "item_id": ITEMS[0][0],
                                               "type": "impression"}]},
               headers={"X-API-Key": "ck"})
        bg = _wait_for(lambda: c.get("/v1/policy", headers=admin).json()["background"]
                       ["last_compaction"])
        assert bg["outcome"] == "error" and "disk full" in bg["error"]
        assert calls[0] == {"keep_days": 0.0, "keep_events": 0}
        body = c.get("/v1/policy", headers=admin).json()
        assert body["last_retrain"]["outcome"] == "ok"  # the retrain itself succeeded
        assert body["background"]["last_check_error"] is None  # not raised into the task
        assert 'sako_compactions_total{result="failed"} 1.0' in c.get("/metrics").text
        assert c.post("/v1/recommendations", json={"user_id": 1, "k": 3},
                      headers={"X-API-Key": "ck"}).status_code == 200
        assert any("compaction after a retrain failed" in r.getMessage() for r in caplog.records)
