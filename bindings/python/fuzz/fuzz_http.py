"""atheris target: the service's request bodies (issue 12).

Half the inputs go to ``json_body_error`` alone and are compared with a reference
(UTF-8, ``json.loads`` with a duplicate-key check, nesting measured on the parsed
value): the middleware must accept exactly the bodies the reference accepts. The
other half are POSTed through the whole ASGI app (middleware, FastAPI's models, the
engine behind them) to one of its POST routes with one of several Content-Types: no
body may produce a 5xx, and every 4xx must carry the documented error body.

    make fuzz-python FUZZ_SECONDS=300      (atheris installed into the venv)
    .venv/bin/python bindings/python/fuzz/fuzz_http.py -runs=20000
"""
from __future__ import annotations

import json
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["sako"]):
    import sako
    from sako.service import Settings, create_app
    from sako.service.middleware import MAX_JSON_DEPTH, json_body_error

from fastapi.testclient import TestClient

ROUTES = ("/v1/events", "/v1/recommendations", "/v1/items", "/v1/categories", "/v1/policy",
          "/v1/retrain", "/v1/backup")
CONTENT_TYPES = (None, "application/json", "application/json; charset=utf-8",
                 "application/merge-patch+json", "text/plain", "application/x-www-form-urlencoded")


class _Duplicate(ValueError):
    pass


def _pairs(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def reference_accepts(body: bytes) -> bool:
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_pairs)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return _depth(value) <= MAX_JSON_DEPTH


_backups = tempfile.TemporaryDirectory(prefix="sako-fuzz-backups-")
_engine = sako.open(None, seed=5, unknown_items="reject")
_engine.upsert_categories([(1, 0, "dept"), (2, 1, "aisle")])
_engine.upsert_items([(i, 2 if i % 2 else 1) for i in range(1, 21)])
_client = TestClient(create_app(Settings(dev=True, backup_dir=_backups.name), engine=_engine),
                     raise_server_exceptions=False)


def check_body(body: bytes) -> None:
    problem = json_body_error(body)
    accepted = reference_accepts(body)
    if problem is None and not accepted:
        raise AssertionError(f"middleware accepts a body the reference refuses: {body!r}")
    if problem is not None and accepted:
        raise AssertionError(f"middleware refuses a valid body ({problem[0]}): {body!r}")
    if problem is not None:
        message, entry = problem
        assert isinstance(message, str) and message and "reason" in entry, problem


def check_app(route: str, ctype, body: bytes) -> None:
    headers = {} if ctype is None else {"Content-Type": ctype}
    response = _client.post(route, content=body, headers=headers)
    assert response.status_code < 500, (route, ctype, body, response.status_code, response.text)
    if response.status_code >= 400:
        payload = response.json()
        assert "error" in payload and "message" in payload, (route, body, payload)


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 1)
    route = ROUTES[fdp.ConsumeIntInRange(0, len(ROUTES) - 1)]
    ctype = CONTENT_TYPES[fdp.ConsumeIntInRange(0, len(CONTENT_TYPES) - 1)]
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    if mode == 0:
        check_body(body)
    else:
        check_app(route, ctype, body)


def main() -> None:
    seeds = tempfile.mkdtemp(prefix="sako-atheris-seeds-")
    examples = [b'{"events": [{"user_id": 1, "item_id": 2, "type": "click"}]}',
                b'{"user_id": 1, "k": 5}', b'{"items": [{"id": 30, "category_id": 2}]}',
                b'{"categories": [{"id": 3, "parent_id": 1, "name": "x"}]}',
                b'{"every_events": 100}', b'[]', b'{"a": {"b": [1, 2, {"c": null}]}}']
    for i, ex in enumerate(examples):
        for mode in (0, 1):
            with open(f"{seeds}/seed-{i}-{mode}", "wb") as f:
                f.write(bytes([mode, i % len(ROUTES), 1]) + ex)
    atheris.Setup(sys.argv + [seeds], TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
