"""The personal engine through the HTTP service (0.2): mode and time in recommendations,
order ids in events, GET /v1/users/{id}."""
from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

import sako
from sako.service import Settings, create_app

from conftest import ITEMS, fill

CLIENT = {"X-API-Key": "client-secret"}
KEYS = Settings(client_keys=["client-secret"], admin_keys=["admin-secret"])
T0 = 1_700_000_000_000
DAY = 86_400_000
SOURCES = {"thompson", "repeat", "affinity", "copurchase", "demand"}


@pytest.fixture
def engine():
    with sako.open(None, seed=3) as e:
        yield fill(e)


@pytest.fixture
def client(engine, monkeypatch):
    for name in ("SAKO_CLIENT_KEYS", "SAKO_ADMIN_KEYS", "SAKO_KEYS_FILE", "SAKO_DEV"):
        monkeypatch.delenv(name, raising=False)
    with TestClient(create_app(KEYS, engine=engine)) as c:
        yield c


def purchases(user, items, order, time):
    return [{"user_id": user, "item_id": it, "type": "purchase", "time": time, "order_id": order}
            for it in items]


def post_events(client, events):
    return client.post("/v1/events", json={"events": events}, headers=CLIENT)


def recommend(client, **body):
    return client.post("/v1/recommendations", json=body, headers=CLIENT)


def assert_error(r, status, error=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "message", "errors"}
    if error:
        assert body["error"] == error, body
    return body


@pytest.fixture
def shopper(client):
    """User 7 bought 100 in three orders (the first with 101)."""
    r = post_events(client, purchases(7, [100, 101], 11, T0))
    assert r.status_code == 200, r.text
    for n in (1, 2):
        assert post_events(client, purchases(7, [100], 11 + n, T0 + n * DAY)).status_code == 200
    return client


BOUGHT = {100, 101}


# ------------------------------------------------------------------ users
def test_user_state_after_three_orders(shopper):
    r = shopper.get("/v1/users/7", headers=CLIENT)
    assert r.status_code == 200, r.text
    u = r.json()
    assert list(u) == [f.name for f in dataclasses.fields(sako.UserInfo)]
    assert (u["id"], u["n_events"], u["n_baskets"], u["n_products"]) == (7, 4, 3, 2)
    assert u["personal"] is True and u["last_basket_at"] == T0 + 2 * DAY
    r = shopper.get("/v1/users/7/items/100", headers=CLIENT)
    assert r.status_code == 200, r.text
    ui = r.json()
    assert list(ui) == [f.name for f in dataclasses.fields(sako.UserItem)]
    assert (ui["item_id"], ui["n_baskets"], ui["last_bought_at"]) == (100, 3, T0 + 2 * DAY)
    assert ui["mean_gap_days"] == pytest.approx(1.0)


def test_one_order_over_two_requests_is_one_basket(client):
    post_events(client, purchases(8, [100], 77, T0))
    post_events(client, purchases(8, [102], 77, T0 + 3 * 3_600_000))
    u = client.get("/v1/users/8", headers=CLIENT).json()
    assert (u["n_baskets"], u["n_products"]) == (1, 2)


def test_unknown_user_and_product_404(shopper):
    assert_error(shopper.get("/v1/users/4242", headers=CLIENT), 404, "not_found")
    assert_error(shopper.get("/v1/users/4242/items/100", headers=CLIENT), 404, "not_found")
    assert_error(shopper.get("/v1/users/7/items/105", headers=CLIENT), 404, "not_found")


@pytest.mark.parametrize("path", ["/v1/users/0", "/v1/users/-1", "/v1/users/abc",
                                  f"/v1/users/{2**53}", "/v1/users/7/items/0"])
def test_bad_user_path_422(shopper, path):
    assert_error(shopper.get(path, headers=CLIENT), 422, "validation_error")


def test_users_need_a_client_key(shopper):
    for headers in ({}, {"X-API-Key": "nope"}):
        assert_error(shopper.get("/v1/users/7", headers=headers), 401, "unauthorized")
        assert_error(shopper.get("/v1/users/7/items/100", headers=headers), 401)
    assert shopper.get("/v1/users/7", headers={"X-API-Key": "admin-secret"}).status_code == 200


# ------------------------------------------------------------- recommendations
def test_modes(shopper):
    for _ in range(5):
        r = recommend(shopper, user_id=7, k=30, mode="repeat")
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert {i["item_id"] for i in items} == BOUGHT
        assert {i["source"] for i in items} <= SOURCES - {"thompson"}
        items = recommend(shopper, user_id=7, k=30, mode="discover").json()["items"]
        assert len(items) == len(ITEMS) - len(BOUGHT)
        assert not {i["item_id"] for i in items} & BOUGHT
    items = recommend(shopper, user_id=7, k=30, mode="mixed", time=T0 + 10 * DAY).json()["items"]
    assert {i["item_id"] for i in items} == {i for i, _ in ITEMS}
    assert {i["source"] for i in items} <= SOURCES and "repeat" in {i["source"] for i in items}


def test_new_user_gets_the_population_engine(shopper):
    items = recommend(shopper, user_id=4242, k=5).json()["items"]
    assert {i["source"] for i in items} == {"thompson"}
    assert recommend(shopper, user_id=4242, k=5, mode="repeat").json()["items"] == []


@pytest.mark.parametrize("body,field", [
    ({"user_id": 7, "mode": "sideways"}, "mode"),
    ({"user_id": 7, "mode": "REPEAT"}, "mode"),
    ({"user_id": 7, "mode": 1}, "mode"),
    ({"user_id": 7, "mode": None}, "mode"),
    ({"user_id": 7, "time": -1}, "time"),
    ({"user_id": 7, "time": sako.TIME_MAX + 1}, "time"),
    ({"user_id": 7, "time": "now"}, "time"),
    ({"user_id": 7, "time": 1.5}, "time"),
])
def test_bad_mode_or_time_422(shopper, body, field):
    b = assert_error(recommend(shopper, **body), 422, "validation_error")
    assert any(e["field"] == field for e in b["errors"]), b
    if field == "mode":
        assert "mixed" in b["message"] and "discover" in b["message"], b


# -------------------------------------------------------------------- events
@pytest.mark.parametrize("order", [0, -1, 2**53, "5", 1.5, True])
def test_bad_order_id_422_names_the_entry(client, engine, order):
    events = purchases(9, [100], 5, T0) + [{**purchases(9, [101], 5, T0)[0], "order_id": order}]
    b = assert_error(post_events(client, events), 422, "validation_error")
    assert [(e["index"], e["field"]) for e in b["errors"]] == [(1, "events.1.order_id")]
    assert engine.stats().n_events == 0


def test_order_ids_reach_the_engine_only_when_given(engine):
    seen = []
    real = engine.update_arrays

    def spy(*args, **kwargs):
        seen.append(args[5] if len(args) > 5 else kwargs.get("order_ids"))
        return real(*args, **kwargs)

    engine.update_arrays = spy
    with TestClient(create_app(Settings(dev=True), engine=engine)) as c:
        assert c.post("/v1/events", json={"events": [
            {"user_id": 1, "item_id": 100, "type": "click"}]}).status_code == 200
        assert c.post("/v1/events", json={"events": [
            {"user_id": 1, "item_id": 100, "type": "purchase", "order_id": 3},
            {"user_id": 1, "item_id": 101, "type": "click"}]}).status_code == 200
    assert seen[0] is None and seen[1].tolist() == [3, 0]


def test_openapi_describes_the_new_fields(client):
    schema = client.get("/openapi.json").json()
    comps = schema["components"]["schemas"]
    assert comps["RecommendationRequest"]["properties"]["mode"]["enum"] == ["mixed", "repeat",
                                                                            "discover"]
    assert "time" in comps["RecommendationRequest"]["properties"]
    assert "order_id" in comps["EventIn"]["properties"]
    assert "/v1/users/{user_id}" in schema["paths"]
    assert "/v1/users/{user_id}/items/{item_id}" in schema["paths"]
