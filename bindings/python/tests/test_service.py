"""The HTTP service through its ASGI app (no network)."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import sako
from sako.service import KeyRing, Settings, create_app
from sako.service.routers.recommendations import RecIdGenerator

from conftest import ITEMS, fill

CLIENT = {"X-API-Key": "client-secret"}
ADMIN = {"X-API-Key": "admin-secret"}


@pytest.fixture
def engine():
    with sako.open(None, seed=3) as e:
        yield fill(e)


KEYS = Settings(client_keys=["client-secret"], admin_keys=["admin-secret"])
DEV = Settings(dev=True)


@pytest.fixture(autouse=True)
def no_key_env(monkeypatch):
    for name in ("SAKO_CLIENT_KEYS", "SAKO_ADMIN_KEYS", "SAKO_KEYS_FILE", "SAKO_DEV"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def client(engine):
    app = create_app(KEYS, engine=engine)
    with TestClient(app) as c:
        yield c


def post_raw(c, url, body: bytes, headers=CLIENT):
    return c.post(url, content=body, headers={**headers, "content-type": "application/json"})


def assert_error(r, status, error=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "message", "errors"}
    if error:
        assert body["error"] == error, body
    return body


# ------------------------------------------------------------------- happy paths
def test_recommend(client):
    r = client.post("/v1/recommendations", json={"user_id": 1, "k": 5}, headers=CLIENT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 5
    assert {i["source"] for i in body["items"]} == {"thompson"}
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert 0 < body["recommendation_id"] < 2**53


def test_recommendation_ids_unique(client):
    ids = {client.post("/v1/recommendations", json={"user_id": 1, "k": 1}, headers=CLIENT)
           .json()["recommendation_id"] for _ in range(50)}
    assert len(ids) == 50
    gen = RecIdGenerator()
    many = [gen() for _ in range(10_000)]
    assert len(set(many)) == 10_000 and many == sorted(many)


def test_recommend_filters(client):
    r = client.post("/v1/recommendations", headers=CLIENT,
                    json={"user_id": 0, "k": 100, "category_id": 2, "exclude": [101], "recent": [104]})
    assert r.status_code == 200
    got = {i["item_id"] for i in r.json()["items"]}
    assert got == {i for i, c in ITEMS if c == 2} - {101}
    r = client.post("/v1/recommendations", json={"user_id": 1, "k": 0}, headers=CLIENT)
    assert r.json()["items"] == []


def test_events_then_item(client, engine):
    rec = client.post("/v1/recommendations", json={"user_id": 9, "k": 1}, headers=CLIENT).json()
    item = rec["items"][0]["item_id"]
    r = client.post("/v1/events", headers=CLIENT, json={"events": [
        {"user_id": 9, "item_id": item, "type": "impression", "rec_id": rec["recommendation_id"]},
        {"user_id": 9, "item_id": item, "type": "click", "time": 1_700_000_000_000},
        {"user_id": 9, "item_id": item, "type": "purchase"},
    ]})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 3}
    info = client.get(f"/v1/items/{item}", headers=CLIENT).json()
    assert info["clicks"] == 1 and info["purchases"] == 1 and info["impressions"] == 1
    assert 0 < info["posterior_mean"] < 1
    assert client.post("/v1/events", json={"events": []}, headers=CLIENT).json() == {"accepted": 0}


def test_catalog_admin(client):
    r = client.put("/v1/categories", headers=ADMIN, json={"categories": [
        {"id": 50, "name": "Drinks"}, {"id": 51, "parent_id": 50, "name": "Water"}]})
    assert r.status_code == 200 and r.json() == {"upserted": 2}
    r = client.put("/v1/items", headers=ADMIN, json={"items": [
        {"id": 900, "category_id": 51}, {"id": 901, "category_id": 51, "active": False}]})
    assert r.status_code == 200 and r.json() == {"upserted": 2}
    assert client.get("/v1/items/901", headers=CLIENT).json()["active"] is False
    r = client.post("/v1/recommendations", json={"user_id": 1, "k": 10, "category_id": 51}, headers=CLIENT)
    assert [i["item_id"] for i in r.json()["items"]] == [900]
    prior = client.get("/v1/categories/51/prior", headers=CLIENT).json()
    assert 0 < prior["prior_mean"] < 1


def test_retrain_stats_health_metrics(client):
    v = client.get("/v1/stats", headers=CLIENT).json()["model_version"]
    r = client.post("/v1/retrain", headers=ADMIN)
    assert r.status_code == 200 and r.json()["model_version"] > v
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["version"] == sako.__version__
    client.post("/v1/events", json={"events": [{"user_id": 1, "item_id": 100, "type": "click"}]},
                headers=CLIENT)
    text = client.get("/metrics").text
    assert 'sako_http_requests_total{method="POST",route="/v1/retrain",status="200"}' in text
    assert "sako_http_request_duration_seconds_bucket" in text
    assert 'sako_events_ingested_total{type="click"} 1.0' in text
    assert "sako_model_version" in text and "sako_catalog_items 30.0" in text


def test_openapi_docs(client):
    schema = client.get("/openapi.json").json()
    assert "/v1/recommendations" in schema["paths"]
    assert "X-API-Key" in json.dumps(schema["components"]["securitySchemes"])
    assert client.get("/docs").status_code == 200


# -------------------------------------------------------------------------- auth
@pytest.mark.parametrize("method,url,body", [
    ("post", "/v1/recommendations", {"user_id": 1}),
    ("post", "/v1/events", {"events": []}),
    ("get", "/v1/items/100", None),
    ("get", "/v1/stats", None),
    ("put", "/v1/items", {"items": []}),
    ("post", "/v1/retrain", None),
])
def test_no_or_wrong_key_is_401(client, method, url, body):
    for headers in ({}, {"X-API-Key": "nope"}, {"X-API-Key": ""}):
        r = getattr(client, method)(url, headers=headers, **({"json": body} if body is not None else {}))
        assert_error(r, 401, "unauthorized")
        assert r.headers.get("www-authenticate") == "ApiKey"


@pytest.mark.parametrize("method,url,body", [
    ("put", "/v1/categories", {"categories": [{"id": 70}]}),
    ("put", "/v1/items", {"items": [{"id": 700}]}),
    ("post", "/v1/retrain", None),
])
def test_client_key_on_admin_route_is_403(client, method, url, body):
    r = getattr(client, method)(url, headers=CLIENT, **({"json": body} if body is not None else {}))
    assert_error(r, 403, "forbidden")


def test_admin_key_works_on_client_routes(client):
    assert client.post("/v1/recommendations", json={"user_id": 1}, headers=ADMIN).status_code == 200


def test_refuses_to_start_without_keys(engine):
    with pytest.raises(RuntimeError, match="no API key"):
        create_app(engine=engine)
    app = create_app(DEV, engine=engine)
    with TestClient(app) as c:
        assert c.post("/v1/retrain").status_code == 200  # dev, no key: admin


def test_keys_from_env_and_file(tmp_path):
    import hashlib

    f = tmp_path / "keys"
    hashed = "sha256:" + hashlib.sha256(b"hashed-admin").hexdigest()
    f.write_text(f"# comment\nclient: file-client\nadmin:{hashed}\n")
    ring = KeyRing.from_sources(str(f), env={"SAKO_CLIENT_KEYS": "a, b", "SAKO_ADMIN_KEYS": "c"})
    assert ring.role("a") == "client" and ring.role("b") == "client"
    assert ring.role("c") == "admin" and ring.role("file-client") == "client"
    assert ring.role("hashed-admin") == "admin"
    assert ring.role("x") is None and ring.role(None) is None
    bad = tmp_path / "bad"
    bad.write_text("root:123\n")
    with pytest.raises(ValueError):
        KeyRing.from_sources(str(bad), env={})


# --------------------------------------------------------------------- bad input
@pytest.mark.parametrize("body,field", [
    ({"user_id": 1, "k": -1}, "k"),
    ({"user_id": 1, "k": 1001}, "k"),
    ({"user_id": 1, "k": 10**30}, "k"),
    ({"user_id": 1, "k": "5"}, "k"),
    ({"user_id": 1, "k": 5.5}, "k"),
    ({"user_id": 1, "k": True}, "k"),
    ({"user_id": -1}, "user_id"),
    ({"user_id": 2**53}, "user_id"),
    ({"user_id": None}, "user_id"),
    ({}, "user_id"),
    ({"user_id": 1, "exclude": [0]}, "exclude.0"),
    ({"user_id": 1, "exclude": list(range(1, 10_002))}, "exclude"),
    ({"user_id": 1, "category_id": 0}, "category_id"),
    ({"user_id": 1, "surprise": 1}, "surprise"),
])
def test_recommend_bad_input_422(client, body, field):
    b = assert_error(client.post("/v1/recommendations", json=body, headers=CLIENT), 422,
                     "validation_error")
    assert any(e["field"] == field for e in b["errors"]), b


def test_unknown_category_422(client):
    b = assert_error(client.post("/v1/recommendations", json={"user_id": 1, "category_id": 4242},
                                 headers=CLIENT), 422, "not_found")
    assert "4242" in b["message"]


def test_nan_and_malformed_json(client):
    b = assert_error(post_raw(client, "/v1/recommendations", b'{"user_id": 1, "k": NaN}'), 422)
    assert b["errors"][0]["field"] == "k"
    assert_error(post_raw(client, "/v1/recommendations", b'{"user_id": NaN}'), 422)
    assert_error(post_raw(client, "/v1/recommendations", b'{"user_id": Infinity}'), 422)
    assert_error(post_raw(client, "/v1/recommendations", b'{"user_id": 1,'), 400, "malformed_json")
    assert_error(post_raw(client, "/v1/recommendations", b"\xff\xfe"), 400, "malformed_json")
    assert_error(post_raw(client, "/v1/events", b'[1, 2]'), 422)
    assert_error(post_raw(client, "/v1/events", b'{"events": {"a": 1}}'), 422)
    ev = b'{"events": [{"user_id": 1, "item_id": 100, "type": "click", "time": NaN}]}'
    assert_error(post_raw(client, "/v1/events", ev), 422)


def test_events_bad_entries_named(client, engine):
    r = client.post("/v1/events", headers=CLIENT, json={"events": [
        {"user_id": 1, "item_id": 100, "type": "click"},
        {"user_id": 1, "item_id": 100, "type": "view"},
        {"user_id": 0, "item_id": 100, "type": "click"},
        {"user_id": 1, "item_id": 100, "type": "click", "time": -5},
    ]})
    b = assert_error(r, 422, "validation_error")
    assert {e["index"] for e in b["errors"]} == {1, 2, 3}
    assert engine.stats().n_events == 0


def test_events_unknown_items_422_with_index(client, engine):
    r = client.post("/v1/events", headers=CLIENT, json={"events": [
        {"user_id": 1, "item_id": 100, "type": "click"},
        {"user_id": 1, "item_id": 777777, "type": "click"},
        {"user_id": 1, "item_id": 101, "type": "click"},
        {"user_id": 1, "item_id": 888888, "type": "cart"},
    ]})
    b = assert_error(r, 422, "unknown_item")
    assert [e["index"] for e in b["errors"]] == [1, 3]
    assert engine.stats().n_events == 0  # all or nothing


def test_oversized_batch_and_body(client):
    ev = {"user_id": 1, "item_id": 100, "type": "click"}
    b = assert_error(client.post("/v1/events", json={"events": [ev] * 10_001}, headers=CLIENT), 422)
    assert b["errors"][0]["field"] == "events"
    big = b'{"events": [' + b" " * (4 * 1024 * 1024) + b"]}"
    assert_error(post_raw(client, "/v1/events", big), 413, "payload_too_large")

    def chunks():
        yield b'{"events": ['
        for _ in range(600):
            yield b" " * 8192
        yield b"]}"
    r = client.post("/v1/events", content=chunks(), headers={**CLIENT, "content-type": "application/json"})
    assert_error(r, 413)


def test_catalog_bad_input(client):
    assert_error(client.put("/v1/categories", headers=ADMIN, json={"categories": [{"id": 60, "parent_id": 4242}]}), 422, "not_found")
    assert_error(client.put("/v1/categories", headers=ADMIN, json={"categories": [{"id": 60, "name": "x" * 300}]}), 422)
    assert_error(client.put("/v1/categories", headers=ADMIN, json={"categories": [{"id": 60, "name": "a\u0000b"}]}), 422)
    assert_error(client.put("/v1/categories", headers=ADMIN, json={"categories": [{"id": 60}, {"id": 60}]}), 422)
    assert_error(client.put("/v1/items", headers=ADMIN, json={"items": [{"id": 1, "category_id": 4242}]}), 422, "not_found")
    assert_error(client.put("/v1/items", headers=ADMIN, json={"items": [{"id": 1, "active": "yes"}]}), 422)
    assert_error(client.get("/v1/items/0", headers=CLIENT), 422)
    assert_error(client.get("/v1/items/abc", headers=CLIENT), 422)
    assert_error(client.get(f"/v1/items/{2**63}", headers=CLIENT), 422)
    assert_error(client.get("/v1/items/424242", headers=CLIENT), 404, "not_found")
    assert_error(client.get("/v1/categories/4242/prior", headers=CLIENT), 404)


def test_busy_is_503_with_retry_after(tmp_path):
    import sqlite3

    p = str(tmp_path / "busy.db")
    with sako.open(p, busy_timeout_ms=10) as e:
        fill(e)
        app = create_app(DEV, engine=e)
        con = sqlite3.connect(p, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        try:
            with TestClient(app) as c:
                r = c.post("/v1/events", json={"events": [{"user_id": 1, "item_id": 100, "type": "click"}]})
                assert_error(r, 503, "busy")
                assert r.headers["retry-after"] == "1"
        finally:
            con.execute("ROLLBACK")
            con.close()


def test_closed_engine_is_503_not_500(engine):
    app = create_app(DEV, engine=engine)
    with TestClient(app) as c:
        engine.close()
        assert_error(c.post("/v1/recommendations", json={"user_id": 1}), 503, "unavailable")


def test_lifespan_opens_seeds_and_closes(tmp_path):
    p = str(tmp_path / "var" / "demo.db")
    app = create_app(Settings(db=p, dev=True, seed=1))
    with TestClient(app) as c:
        s = c.get("/v1/stats").json()
        assert s["n_items"] == 3000 and s["n_categories"] > 30
        eng = app.state.engine
    assert eng.closed


# -------------------------------------------------------- recommendation_id in events
def _event(item, **extra):
    return {"events": [{"user_id": 9, "item_id": item, "type": "click", **extra}]}


def test_events_take_recommendation_id(client, engine):
    rec = client.post("/v1/recommendations", json={"user_id": 9, "k": 1}, headers=CLIENT).json()
    item = rec["items"][0]["item_id"]
    r = client.post("/v1/events", headers=CLIENT,
                    json=_event(item, recommendation_id=rec["recommendation_id"]))
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1} and "deprecation" not in r.headers


def test_events_rec_id_still_accepted_deprecated(client):
    r = client.post("/v1/events", headers=CLIENT, json=_event(100, rec_id=12345))
    assert r.status_code == 200, r.text
    assert r.headers["deprecation"] == "true"
    r = client.post("/v1/events", headers=CLIENT,
                    json=_event(100, rec_id=12345, recommendation_id=12345))
    assert r.status_code == 200
    b = assert_error(client.post("/v1/events", headers=CLIENT,
                                 json=_event(100, rec_id=1, recommendation_id=2)),
                     422, "validation_error")
    assert b["errors"][0]["index"] == 0
    schema = client.get("/openapi.json").json()["components"]["schemas"]["EventIn"]
    assert schema["properties"]["rec_id"]["deprecated"] is True
    assert "recommendation_id" in schema["properties"]


def test_recommendation_id_reaches_the_engine(engine):
    """The id is passed positionally, so it works whatever the engine calls the field."""
    seen = {}
    real = engine.update_arrays

    def spy(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        return real(*args, **kwargs)

    engine.update_arrays = spy
    with TestClient(create_app(DEV, engine=engine)) as c:
        assert c.post("/v1/events", json=_event(100, recommendation_id=77)).status_code == 200
    assert seen["kwargs"] == {} and seen["args"][4].tolist() == [77]


# ------------------------------------------------------------- errors, schemas, settings
def test_engine_errors_map_by_code():
    from sako.service.errors import STATUS_OF_CODE, from_sako_error

    assert set(STATUS_OF_CODE) == set(sako.ERRORS)
    for code, cls in sako.ERRORS.items():
        assert from_sako_error(cls("x")) == STATUS_OF_CODE[code]

    class Renamed(sako.Busy):  # the class name plays no part
        pass
    assert from_sako_error(Renamed("x")) == (503, "busy")
    unknown = sako.SakoError("new code")
    unknown.code = -999
    assert from_sako_error(unknown) == (500, "internal")


def test_item_and_stats_answers_follow_the_dataclasses(client):
    import dataclasses

    item = client.get("/v1/items/100", headers=CLIENT).json()
    assert list(item) == [f.name for f in dataclasses.fields(sako.ItemInfo)] + ["posterior_mean"]
    stats = client.get("/v1/stats", headers=CLIENT).json()
    assert list(stats) == [f.name for f in dataclasses.fields(sako.Stats)]


def test_create_app_reads_settings_from_environment(tmp_path, monkeypatch):
    """`uvicorn --factory sako.service:create_app` must see keys given in the environment."""
    monkeypatch.setenv("SAKO_CLIENT_KEYS", "env-client, other")
    monkeypatch.setenv("SAKO_ADMIN_KEYS", "env-admin")
    monkeypatch.setenv("SAKO_DB", str(tmp_path / "env.db"))
    monkeypatch.setenv("SAKO_DEMO", "false")
    monkeypatch.setenv("SAKO_SEED", "5")
    app = create_app()
    assert "env-client" not in repr(app.state.settings)  # keys are secrets
    with TestClient(app) as c:
        assert c.get("/v1/stats", headers={"X-API-Key": "env-client"}).json()["n_items"] == 0
        assert c.post("/v1/retrain", headers={"X-API-Key": "other"}).status_code == 403
        assert c.post("/v1/retrain", headers={"X-API-Key": "env-admin"}).status_code == 200
    assert (tmp_path / "env.db").exists()


def test_settings_keys_file_and_cli(tmp_path, monkeypatch):
    from sako.service.settings import parse

    f = tmp_path / "keys"
    f.write_text("client: from-file\nadmin: admin-file\n")
    monkeypatch.setenv("SAKO_PORT", "9001")
    monkeypatch.setenv("SAKO_CLIENT_KEYS", "from-env")
    s = parse(["--keys-file", str(f), "--no-demo", "--recommend-in", "loop", "--seed", "3"])
    assert (s.port, s.demo, s.inline_recommend, s.seed) == (9001, False, True, 3)
    assert parse(["--port", "9002"]).port == 9002  # the flag wins over the environment
    ring = s.keyring()
    assert ring.role("from-env") == "client" and ring.role("from-file") == "client"
    assert ring.role("admin-file") == "admin"
    with pytest.raises(SystemExit):
        parse(["--client-keys", "x"])  # keys are never flags


# ------------------------------------------------- request bodies (issue 12, item 7)

EVENT = {"user_id": 1, "item_id": 100, "type": "click"}


def test_invalid_utf8_is_malformed_json(client, engine):
    before = engine.stats().n_events
    # Valid JSON structure, one byte that is not UTF-8 inside a string.
    body = b'{"events": [{"user_id": 1, "item_id": 100, "type": "cl\xe9ck"}]}'
    b = assert_error(post_raw(client, "/v1/events", body), 400, "malformed_json")
    assert "UTF-8" in b["message"]
    assert b["errors"][0]["index"] == body.index(b"\xe9")
    assert_error(post_raw(client, "/v1/recommendations", b'{"user_id": 1, "x": "\xc3"}'),
                 400, "malformed_json")
    assert engine.stats().n_events == before


def test_deep_nesting_is_malformed_json(client):
    for depth in (65, 1000, 100000):
        body = b'{"user_id": ' + b"[" * depth + b"]" * depth + b"}"
        b = assert_error(post_raw(client, "/v1/recommendations", body), 400, "malformed_json")
        assert "nested" in b["message"]
    # Brackets inside strings are not nesting; 64 levels are allowed through (and then
    # refused by the schema, 422, as any wrong type).
    body = json.dumps({"user_id": 1, "exclude": [], "x": "[" * 500}).encode()
    assert_error(post_raw(client, "/v1/recommendations", body), 422, "validation_error")
    body = b'{"user_id": ' + b"[" * 63 + b"]" * 63 + b"}"
    assert_error(post_raw(client, "/v1/recommendations", body), 422, "validation_error")


def test_duplicate_keys_refused(client, engine):
    before = engine.stats().n_events
    body = b'{"events": [' + json.dumps(EVENT).encode() + b'], "events": []}'
    b = assert_error(post_raw(client, "/v1/events", body), 400, "malformed_json")
    assert "'events'" in b["message"]
    assert b["errors"][0]["field"] == "events"
    # Inside a nested object too, naming that key.
    body = b'{"events": [{"user_id": 1, "item_id": 100, "item_id": 101, "type": "click"}]}'
    b = assert_error(post_raw(client, "/v1/events", body), 400, "malformed_json")
    assert b["errors"][0]["field"] == "item_id"
    assert engine.stats().n_events == before
    # Same key in two different objects is fine.
    body = json.dumps({"events": [EVENT, EVENT]}).encode()
    assert post_raw(client, "/v1/events", body).json() == {"accepted": 2}


def test_content_type(client, engine):
    before = engine.stats().n_events
    body = json.dumps({"events": [EVENT]}).encode()
    # No Content-Type: the body is taken as JSON.
    r = client.post("/v1/events", content=body, headers=CLIENT)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1}
    # JSON with parameters or a +json type: accepted.
    for ctype in ("application/json; charset=utf-8", "application/vnd.sako+json"):
        r = client.post("/v1/events", content=body, headers={**CLIENT, "content-type": ctype})
        assert r.status_code == 200, (ctype, r.text)
    # Anything else: 415, saying what to send.
    for ctype in ("text/plain", "application/x-www-form-urlencoded"):
        b = assert_error(client.post("/v1/events", content=body,
                                     headers={**CLIENT, "content-type": ctype}),
                         415, "unsupported_media_type")
        assert "application/json" in b["message"]
    assert engine.stats().n_events == before + 3
