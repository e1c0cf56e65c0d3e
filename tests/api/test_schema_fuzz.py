"""Schemathesis over the generated OpenAPI schema, with every check it has: no input makes the
API answer 5xx; every answer is one the schema documents (its status, content type, headers and
body: an error's code is one its status carries); what the schema calls valid is accepted and
what it calls invalid is refused; a required header or an undocumented method is refused;
authentication is enforced where the schema requires it and nowhere else; and, over sequences
of calls, a resource created is there and a resource deleted is gone.

Each operation is fuzzed with a key holding every scope and anonymously (examples, coverage and
fuzzing phases), then sequences of calls follow the schema's links (the stateful phase). Where
a check cannot apply to an operation, ``schemathesis.toml`` beside this file relaxes it for that
operation alone and says why."""

from __future__ import annotations

import base64
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig

from bluecarbon.wsgi import application
from ledger import services
from ledger.models import ApiKey

# OpenAPI's "byte" is base64; schemathesis draws any bytes for it, whatever the length the
# schema gives. The one such field, a sealed bid, is 49 to 4,096 bytes (the schema: 68 to
# 5,460 characters), and drawn so.
schemathesis.openapi.format(
    "byte", st.binary(min_size=49, max_size=4095).map(lambda raw: base64.b64encode(raw).decode())
)
CONFIG = SchemathesisConfig.from_path(str(Path(__file__).with_name("schemathesis.toml")))
# Loaded at import (the schema view needs no database); schemathesis' lazy fixture loader does
# not work with pytest 9.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application, config=CONFIG)

# Every check schemathesis has (14 in 4.32). One of them, object_level_authorization, checks
# nothing with the one identity it is given here (it needs several, described in a WFC auth
# file); tests/api/test_authz_matrix.py checks every operation across organizations instead.
CHECKS_RUN = [check for check in CHECKS.get_all() if not isinstance(check, type)]
assert len(CHECKS_RUN) >= 14, [check.__name__ for check in CHECKS_RUN]
HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture]
_PRINTABLE = re.compile(r"[ -~]{1,255}")
_calls = itertools.count()


@pytest.fixture(autouse=True)
def _keep_the_test_connection(db):
    # Like Django's test client: the WSGI handler must not close the test's connection
    # (and its open transaction) at the end of every request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _key_headers(world: Any) -> dict[str, str]:
    """A key of the developer organization holding every scope, over a small world."""
    world.issue(2_000_000)
    services.ledger_checkpoint_issue()
    _, secret = services.apikey_create(
        organization=world.developer.pk, name="fuzz", scopes=ApiKey.Scope.values
    )
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(params=["key", "anonymous"])
def caller(request, world) -> dict[str, str]:
    """The headers of who calls: a key with every scope, or nobody (no credentials at all)."""
    return _key_headers(world) if request.param == "key" else {}


def _fresh_idempotency_key(case: Any) -> None:
    # A valid Idempotency-Key the generator drew again (it likes "0") would replay another
    # request's answer, or be refused as reused with another body (422): which keys were used
    # is state the generator cannot know. A key the schema calls invalid is left as drawn.
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _PRINTABLE.fullmatch(key):
        headers["Idempotency-Key"] = f"{key[:200]}~{next(_calls)}"


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=HEALTH)
def test_no_input_breaks_the_api_or_its_schema(case, caller):
    _fresh_idempotency_key(case)
    case.call_and_validate(headers=caller, checks=CHECKS_RUN)


def test_sequences_of_calls_keep_to_the_schema(world):
    """The stateful phase: calls chained by the schema's links (an id one answer gives, the
    next call uses), with every check, use_after_free and ensure_resource_availability among
    them."""
    headers = _key_headers(world)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        # Each scenario starts from the same database: what one left behind (an endpoint
        # over the cap, an auction scheduled) would make the next, and its replay, differ.
        def setup(self) -> None:
            self.savepoint = transaction.savepoint()

        def teardown(self) -> None:
            transaction.savepoint_rollback(self.savepoint)
            super().teardown()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            _fresh_idempotency_key(case)
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(
                response,
                checks=CHECKS_RUN,
                headers=kwargs.get("headers"),
                transport_kwargs=kwargs,
                recorder=self.recorder,
            )

    Workflow.run(
        settings=settings(
            max_examples=40,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=[*HEALTH, HealthCheck.filter_too_much],
        )
    )
