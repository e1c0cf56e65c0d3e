"""Schemathesis over the generated OpenAPI schema: no input makes the API answer 5xx, and every
response matches the schema it documents."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from bluecarbon.wsgi import application
from ledger import services


@pytest.fixture(autouse=True)
def _keep_the_test_connection(db):
    # Like Django's test client: the WSGI handler must not close the test's connection
    # (and its open transaction) at the end of every request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def auth_headers(world):
    """A key of the developer organization holding every scope, over a small world."""
    world.issue(2_000_000)
    services.ledger_checkpoint_issue()
    _, secret = services.apikey_create(
        organization=world.developer.pk,
        name="fuzz",
        scopes=["read", "issue", "transfer", "retire", "cancel", "audit"],
    )
    return {"Authorization": f"Bearer {secret}"}


# Loaded at import (the schema view needs no database); schemathesis' lazy fixture loader does
# not work with pytest 9.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_input_breaks_the_api_or_its_schema(case, auth_headers):
    case.call_and_validate(
        headers=auth_headers,
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
