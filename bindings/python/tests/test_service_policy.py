"""The retrain policy through the service: the background task runs due retrains (in a
worker thread, one at a time, failures recorded and survived), GET/PUT /v1/policy, the
manual retrain's record, the metrics."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

import sako
from sako.service import Settings, create_app

from conftest import fill

ADMIN = {"X-API-Key": "admin-secret"}
CLIENT = {"X-API-Key": "client-secret"}


@pytest.fixture(autouse=True)
def no_key_env(monkeypatch):
    for name in ("SAKO_CLIENT_KEYS", "SAKO_ADMIN_KEYS", "SAKO_KEYS_FILE", "SAKO_DEV"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def engine():
    with sako.open(None, seed=5) as e:
        yield fill(e)


def make_client(engine, **settings):
    s = Settings(client_keys=["client-secret"], admin_keys=["admin-secret"], **settings)
    return TestClient(create_app(s, engine=engine))


@pytest.fixture
def client(engine):
    with make_client(engine, policy_check_seconds=0.05) as c:
        yield c


def events(n, type_="impression"):
    return {"events": [{"user_id": 1 + i % 3, "item_id": 100 + i % 30, "type": type_}
                       for i in range(n)]}


def wait_for(pred, timeout=10.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_background_retrain_when_due(client):
    v0 = client.get("/v1/stats", headers=CLIENT).json()["model_version"]
    r = client.put("/v1/policy", json={"every_events": 5}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["policy"]["every_events"] == 5
    client.post("/v1/events", json=events(4), headers=CLIENT)
    time.sleep(0.3)  # several checks: 4 < 5, nothing due
    body = client.get("/v1/policy", headers=ADMIN).json()
    assert body["last_retrain"] is None and body["status"]["events_since"] == 4
    assert body["background"]["enabled"] and body["background"]["checks"] >= 1
    client.post("/v1/events", json=events(1), headers=CLIENT)
    last = wait_for(lambda: client.get("/v1/policy", headers=ADMIN).json()["last_retrain"])
    assert last["reason"] == "events" and last["outcome"] == "ok" and last["error"] is None
    assert last["duration_seconds"] >= 0 and last["finished_at"] >= last["started_at"]
    assert last["model_version"] == v0 + 1
    body = client.get("/v1/policy", headers=ADMIN).json()
    assert not body["status"]["due"] and body["status"]["events_since"] == 0
    assert client.get("/v1/stats", headers=CLIENT).json()["model_version"] == v0 + 1
    text = client.get("/metrics").text
    assert 'sako_retrains_total{outcome="ok",reason="events"} 1.0' in text
    assert 'sako_last_retrain_timestamp_seconds{outcome="ok",reason="events"}' in text
    assert "sako_last_retrain_duration_seconds" in text and "sako_retrain_due 0.0" in text
    assert f"sako_model_version {float(v0 + 1)}" in text


def test_manual_retrain_recorded(client):
    r = client.post("/v1/retrain", headers=ADMIN)
    assert r.status_code == 200
    last = client.get("/v1/policy", headers=ADMIN).json()["last_retrain"]
    assert last["reason"] == "manual" and last["outcome"] == "ok"
    assert last["model_version"] == r.json()["model_version"]
    assert 'sako_retrains_total{outcome="ok",reason="manual"} 1.0' in client.get("/metrics").text


def test_status_route_shape_and_roles(client):
    body = client.get("/v1/policy", headers=ADMIN).json()
    assert set(body) == {"policy", "status", "last_retrain", "running", "background"}
    assert body["policy"] == sako.Policy().as_dict()
    assert set(body["status"]) >= {"due", "reasons", "reason", "events_since", "seconds_since",
                                   "retrained_at", "baseline_conversion", "baseline_impressions",
                                   "recent_conversion", "recent_impressions"}
    assert client.get("/v1/policy", headers=CLIENT).status_code == 403
    assert client.put("/v1/policy", json={}, headers=CLIENT).status_code == 403
    assert client.get("/v1/policy").status_code == 401


def test_drift_status_through_the_service(client):
    client.put("/v1/policy", json={"drift_fraction": 0.5, "drift_window": 32,
                                   "drift_min_impressions": 20}, headers=ADMIN)
    rec = {"events": [{"user_id": 1, "item_id": 100 + i % 30, "type": t, "recommendation_id": 1 + i}
                      for i in range(32) for t in ("impression", "click")]}
    client.post("/v1/events", json=rec, headers=CLIENT)
    s = client.get("/v1/policy", headers=ADMIN).json()["status"]
    assert s["baseline_impressions"] == 32 and s["baseline_conversion"] == pytest.approx(0.7)


@pytest.mark.parametrize("body, status, field", [
    ({"drift_fraction": 1.0}, 422, "drift_fraction"),
    ({"drift_fraction": -0.5}, 422, "drift_fraction"),
    ({"drift_window": 0}, 422, "drift_window"),
    ({"every_events": -1}, 422, "every_events"),
    ({"every_events": "5"}, 422, "every_events"),
    ({"every_seconds": 1.5}, 422, "every_seconds"),
    ({"every_events": 2**53}, 422, "every_events"),
    ({"unknown": 1}, 422, "unknown"),
    ({"drift_window": 10, "drift_min_impressions": 20}, 422, None),
    ({"drift_min_impressions": 30_000}, 422, "drift_min_impressions"),  # above the stored window
    ([1, 2], 422, None),
])
def test_bad_put_bodies(client, body, status, field):
    before = client.get("/v1/policy", headers=ADMIN).json()["policy"]
    r = client.put("/v1/policy", json=body, headers=ADMIN)
    assert r.status_code == status, r.text
    b = r.json()
    assert b["error"] in ("validation_error", "invalid_policy") and b["message"]
    if field:
        assert any(e["field"] == field for e in b["errors"]), b
        assert field in b["message"]
    assert client.get("/v1/policy", headers=ADMIN).json()["policy"] == before


def test_malformed_put_is_400(client):
    r = client.put("/v1/policy", content=b"{nope", headers={**ADMIN, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "malformed_json"


def test_failing_retrain_is_recorded_and_survived(engine, monkeypatch):
    calls = []

    def boom(reasons):
        calls.append(reasons)
        raise sako.IOFailure("disk full (test)")

    # the service's retrains go through Engine.retrain_for (reasons: the policy's bits)
    monkeypatch.setattr(engine, "retrain_for", boom)
    with make_client(engine, policy_check_seconds=0.05) as c:
        c.put("/v1/policy", json={"every_events": 1}, headers=ADMIN)
        c.post("/v1/events", json=events(1), headers=CLIENT)
        last = wait_for(lambda: c.get("/v1/policy", headers=ADMIN).json()["last_retrain"])
        assert last["outcome"] == "error" and "disk full" in last["error"]
        assert last["reason"] == "events"
        assert calls[0] == int(sako.RetrainReason.EVENTS)  # not MANUAL: a pin holds it back
        wait_for(lambda: len(calls) >= 2)  # the next check tries again; the service lives on
        assert c.post("/v1/recommendations", json={"user_id": 1, "k": 3},
                      headers=CLIENT).status_code == 200
        assert c.post("/v1/retrain", headers=ADMIN).status_code == 503
        assert 'sako_retrains_total{outcome="error",reason="events"}' in c.get("/metrics").text


def test_retrains_off_the_loop_one_at_a_time(engine, monkeypatch):
    real = engine.retrain_for
    lock = threading.Lock()
    state = {"now": 0, "max": 0, "on_loop": 0, "n": 0}

    def slow(reasons):
        try:
            asyncio.get_running_loop()
            state["on_loop"] += 1
        except RuntimeError:
            pass
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
            state["n"] += 1
        return real(reasons)

    monkeypatch.setattr(engine, "retrain_for", slow)
    with make_client(engine, policy_check_seconds=0.02) as c:
        c.put("/v1/policy", json={"every_events": 1}, headers=ADMIN)
        c.post("/v1/events", json=events(1), headers=CLIENT)
        threads = [threading.Thread(target=lambda: c.post("/v1/retrain", headers=ADMIN))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_for(lambda: state["n"] >= 4)
    assert state["max"] == 1 and state["on_loop"] == 0


def test_background_can_be_turned_off(engine):
    with make_client(engine, auto_retrain=False) as c:
        c.put("/v1/policy", json={"every_events": 1}, headers=ADMIN)
        c.post("/v1/events", json=events(2), headers=CLIENT)
        time.sleep(0.2)
        body = c.get("/v1/policy", headers=ADMIN).json()
        assert body["status"]["due"] and body["last_retrain"] is None
        assert not body["background"]["enabled"]
        assert "sako_retrain_due 1.0" in c.get("/metrics").text
