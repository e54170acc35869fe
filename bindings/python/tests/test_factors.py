"""The engine's matrix factorisation through the binding and the service: the mf_*
options (stored, enum names, refused values), factors_info after a retrain,
GET /v1/factors, and the service's mf settings reaching the engine."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import sako
from sako.service import Settings, create_app

from conftest import fill

ADMIN = {"X-API-Key": "admin-secret"}
CLIENT = {"X-API-Key": "client-secret"}
MF = dict(mf_factors=4, mf_iterations=5, mf_regularization=0.1, mf_alpha=2.0, mf_threads=1,
          mf_mode="on")


@pytest.fixture(autouse=True)
def no_key_env(monkeypatch):
    for name in ("SAKO_CLIENT_KEYS", "SAKO_ADMIN_KEYS", "SAKO_KEYS_FILE", "SAKO_DEV"):
        monkeypatch.delenv(name, raising=False)


def orders(engine: sako.Engine) -> None:
    """40 users, each buying 3 baskets from one of three aisles' products."""
    events = []
    for u in range(1, 41):
        for b in range(3):
            for j in range(3):
                item = 100 + (u % 3) + 3 * ((u + b + j) % 10)
                events.append({"user_id": u, "item_id": item, "type": "purchase",
                               "time": 1_700_000_000_000 + b * 86_400_000 + u,
                               "order_id": u * 10 + b + 1})
    engine.update(events)


def test_defaults_off():
    d = sako.default_options()
    assert d["mf_factors"] == 0 and d["mf_mode"] == 0 and d["mf_iterations"] == 15
    with sako.open(None, seed=1) as e:
        assert e.factors_info().factors == 0
        e.retrain()
        assert e.factors_info().factors == 0


def test_options_stored_and_named(db_path):
    with sako.open(db_path, seed=1, **MF) as e:
        o = e.options
        assert o["mf_factors"] == 4 and o["mf_mode"] == sako._sako.SAKO_MF_ON
        assert o["mf_threads"] == 1
    with sako.open(db_path, seed=1) as e:  # stored: the reopen keeps them
        assert e.options["mf_factors"] == 4 and e.options["mf_alpha"] == 2.0


@pytest.mark.parametrize("name,value", [("mf_factors", 2000), ("mf_alpha", 0.0),
                                        ("mf_mode", "sometimes"), ("mf_weight", -1.0),
                                        ("mf_cg_steps", 0)])
def test_bad_options_refused(name, value):
    with pytest.raises(sako.InvalidArgument, match=name):
        sako.open(None, **{name: value})


def test_factors_info_after_retrain():
    with sako.open(None, seed=3, **MF) as e:
        fill(e)
        orders(e)
        e.retrain()
        fi = e.factors_info()
        assert fi.factors == 4 and fi.iterations == 5 and fi.alpha == 2.0
        assert fi.n_users == 40 and fi.n_items == 30
        assert fi.last_batch == 1 and fi.n_events == 40 * 9
        assert fi.serving is True and fi.index_lists > 0 and fi.bytes > 0
        sources = {r.source for u in range(1, 41) for r in e.recommend(u, k=10)}
        assert sources <= set(sako.SOURCE_NAMES.values())
        assert sako.SOURCE_NAMES[sako._sako.SAKO_SOURCE_MF] == "mf"


def test_service_factors_route_and_settings():
    s = Settings(client_keys=["client-secret"], admin_keys=["admin-secret"], **MF)
    opts = s.engine_options()
    assert opts["mf_factors"] == 4 and opts["mf_mode"] == "on" and opts["mf_threads"] == 1
    with sako.open(None, seed=5, **opts) as e:
        fill(e)
        orders(e)
        client = TestClient(create_app(s, engine=e))
        r = client.get("/v1/factors", headers=CLIENT)
        assert r.status_code == 200 and r.json()["factors"] == 0
        assert client.get("/v1/factors").status_code == 401
        assert client.post("/v1/retrain", headers=ADMIN).status_code == 200
        body = client.get("/v1/factors", headers=CLIENT).json()
        assert body["factors"] == 4 and body["n_users"] == 40 and body["serving"] is True
        assert body["last_batch"] == 1
