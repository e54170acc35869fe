"""Stateful HTTP fuzzing: Schemathesis chains calls along the links it infers from the
OpenAPI schema (a recommendation's item_id into GET /v1/items/{item_id}, a user's id
into POST /v1/events and POST /v1/recommendations, ...), so requests reach ids that
exist instead of 404s. No sequence may produce a 5xx, and every 4xx carries the
documented error body. Bounded by max_examples and the step count (about 20 s here)."""
from __future__ import annotations

import tempfile

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

import sako  # noqa: E402
from sako.service import Settings, create_app  # noqa: E402

from conftest import fill  # noqa: E402

_engine = fill(sako.open(None, seed=11, unknown_items="reject"))
_backups = tempfile.TemporaryDirectory(prefix="sako-stateful-backups-")
app = create_app(Settings(dev=True, backup_dir=_backups.name), engine=_engine)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)

# The links this test depends on: without them it would be a stateless run again.
WANTED_LINKS = ("POST /v1/recommendations -> 200", "GET /v1/users/{user_id} -> 200")


class Workflow(schema.as_state_machine()):  # type: ignore[misc]
    def validate_response(self, response, case, *args, **kwargs):  # noqa: D401
        assert response.status_code < 500, (case.method, case.path, case.body, response.text)
        if response.status_code >= 400 and case.path != "/metrics":
            body = response.json()
            assert "error" in body and "message" in body, (case.method, case.path, body)


def test_links_inferred():
    names = set(Workflow.bundles)
    for link in WANTED_LINKS:
        assert link in names, sorted(names)


TestStatefulLinks = Workflow.TestCase
TestStatefulLinks.settings = settings(max_examples=40, stateful_step_count=8, deadline=None,
                                      suppress_health_check=list(HealthCheck))
