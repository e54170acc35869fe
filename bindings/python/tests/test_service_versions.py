"""Model versions through the service: GET /v1/versions(/{n}), POST .../activate,
PUT .../pin (admin), the retrain's answer with its version and gate, the metrics."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sako.service import Settings, create_app

from versions_world import B, A, challenger_world, champion_world, holdout, open_world

ADMIN = {"X-API-Key": "admin-secret"}
CLIENT = {"X-API-Key": "client-secret"}


@pytest.fixture(autouse=True)
def no_key_env(monkeypatch):
    for name in ("SAKO_CLIENT_KEYS", "SAKO_ADMIN_KEYS", "SAKO_KEYS_FILE", "SAKO_DEV"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def engine(tmp_path):
    e = open_world(str(tmp_path / "svc.db"))
    champion_world(e)
    yield e
    e.close()


@pytest.fixture
def client(engine):
    s = Settings(client_keys=["client-secret"], admin_keys=["admin-secret"])
    with TestClient(create_app(s, engine=engine)) as c:
        yield c


def test_retrain_answers_with_version_and_gate(client, engine):
    r = client.post("/v1/retrain", headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gate"] == "activated" and body["version"]["version"] == 1
    assert body["model_version"] == 1 and body["version"]["status"] == "active"
    challenger_world(engine)
    holdout(engine, A)
    r = client.post("/v1/retrain", headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gate"] == "rejected" and body["version"]["status"] == "rejected"
    assert body["version"]["verdict"].startswith("rejected: NDCG@20")
    assert body["version"]["scored"] is True
    last = client.get("/v1/policy", headers=ADMIN).json()["last_retrain"]
    assert last["version"] == 2 and last["gate"] == "rejected"
    assert last["verdict"].startswith("rejected")
    text = client.get("/metrics").text
    assert 'sako_gate_total{result="rejected"} 1.0' in text
    assert 'sako_gate_total{result="activated"} 1.0' in text
    assert "sako_active_model_version 1.0" in text


def test_list_get_activate_pin(client, engine):
    assert client.get("/v1/versions", headers=ADMIN).json() == {"active": None, "versions": []}
    client.post("/v1/retrain", headers=ADMIN)
    challenger_world(engine)
    holdout(engine, B)
    client.post("/v1/retrain", headers=ADMIN)
    body = client.get("/v1/versions", headers=ADMIN).json()
    assert body["active"] == 2
    assert [v["version"] for v in body["versions"]] == [2, 1]
    assert body["versions"][1]["status"] == "inactive"
    v1 = client.get("/v1/versions/1", headers=ADMIN).json()
    assert v1["version"] == 1 and v1["reasons"] == ["manual"] and "options" in v1
    r = client.post("/v1/versions/1/activate", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert client.get("/v1/versions", headers=ADMIN).json()["active"] == 1
    r = client.put("/v1/versions/1/pin", json={"pinned": True}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["pinned"] is True
    assert "sako_active_model_version 1.0" in client.get("/metrics").text


def test_client_mistakes_are_4xx(client, engine):
    client.post("/v1/retrain", headers=ADMIN)
    challenger_world(engine)
    holdout(engine, A)
    client.post("/v1/retrain", headers=ADMIN)  # version 2: rejected
    r = client.get("/v1/versions/99", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "unknown_version"
    r = client.post("/v1/versions/99/activate", headers=ADMIN)
    assert r.status_code == 404
    r = client.post("/v1/versions/2/activate", headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"] == "version_rejected"
    assert "rejected" in r.json()["message"]
    assert client.get("/v1/versions/0", headers=ADMIN).status_code == 422
    assert client.put("/v1/versions/1/pin", json={"pinned": "maybe"},
                      headers=ADMIN).status_code == 422
    assert client.put("/v1/versions/1/pin", json={}, headers=ADMIN).status_code == 422
    # admin routes
    assert client.get("/v1/versions", headers=CLIENT).status_code == 403
    assert client.post("/v1/versions/1/activate", headers=CLIENT).status_code == 403
    assert client.get("/v1/versions").status_code == 401
    r = client.put("/v1/policy", json={"keep_versions": 0}, headers=ADMIN)
    assert r.status_code == 422


def test_policy_carries_gate_fields(client):
    r = client.put("/v1/policy", json={"gate_margin": 0.02, "keep_versions": 4}, headers=ADMIN)
    assert r.status_code == 200, r.text
    p = r.json()["policy"]
    assert p["gate_margin"] == 0.02 and p["keep_versions"] == 4
