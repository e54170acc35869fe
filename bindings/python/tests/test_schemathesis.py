"""Property-based fuzzing of the HTTP API from its OpenAPI schema: no request shape may
produce a 5xx. Bounded (max_examples per operation) to keep the suite fast."""
from __future__ import annotations

import tempfile

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

import sako  # noqa: E402
from sako.service import Settings, create_app  # noqa: E402

from conftest import fill  # noqa: E402

_engine = fill(sako.open(None, seed=9, unknown_items="reject"))
# POST /v1/backup writes its files here, not beside the default database path
_backups = tempfile.TemporaryDirectory(prefix="sako-schemathesis-backups-")
app = create_app(Settings(dev=True, backup_dir=_backups.name), engine=_engine)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
    if response.status_code >= 400 and case.path != "/metrics":
        body = response.json()
        assert "error" in body and "message" in body
