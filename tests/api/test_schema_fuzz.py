"""Schemathesis over the generated OpenAPI schema, with every check it has: no input makes the
API answer 5xx; every answer is one the schema documents (its status, content type, headers and
body: an error's code is one its status carries); what the schema calls valid is accepted and
what it calls invalid is refused; a required header or an undocumented method is refused;
authentication is enforced where the schema requires it and nowhere else; and, over sequences
of calls, a resource created is there and a resource deleted is gone.

Each operation is fuzzed with a key holding every scope and anonymously (examples, coverage and
fuzzing phases; anonymous callers of an operation that needs a key get fewer inputs), then
sequences of calls follow the schema's links (the stateful phase). Where
a check cannot apply to an operation, ``schemathesis.toml`` beside this file relaxes it for that
operation alone and says why.

Every example and every sequence starts from the same state (``_same_start``): hypothesis
requires that the same choices give the same answers, and in a stateful run the next call is
drawn from the answers before it (a 429 instead of a 201 leaves a link with nothing to follow).
Under ``CI=true`` hypothesis' own ``ci`` profile derandomizes the run; elsewhere each run
explores anew."""

from __future__ import annotations

import base64
import ipaddress
import itertools
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig

from bluecarbon.wsgi import application
from ledger import egress, services
from ledger.models import ApiKey

# OpenAPI's "byte" is base64; schemathesis draws any bytes for it, whatever the length the
# schema gives. The one such field, a sealed bid, is 49 to 4,096 bytes (the schema: 68 to
# 5,460 characters), and drawn so.
schemathesis.openapi.format(
    "byte", st.binary(min_size=49, max_size=4095).map(lambda raw: base64.b64encode(raw).decode())
)
CONFIG = Path(__file__).with_name("schemathesis.toml").read_text()
# Loaded at import (the schema view needs no database); schemathesis' lazy fixture loader does
# not work with pytest 9.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/schema/?format=json", application, config=SchemathesisConfig.from_str(CONFIG)
)
# The same without the coverage phase, whose boundary values only the key gets past.
schema_uncovered = schemathesis.openapi.from_wsgi(
    "/api/v1/schema/?format=json",
    application,
    config=SchemathesisConfig.from_str(CONFIG + "\n[phases.coverage]\nenabled = false\n"),
)

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


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook's host is looked up at registration (ledger/egress.py). Here an IP literal is
    itself and no name resolves (accepted: each delivery would look it up again), as if the DNS
    knew none: the answer must not hang on a resolver's mood, nor the test ask one."""

    def resolve(host: str, port: int) -> list[egress.IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            raise egress.Unresolvable(f"{host} does not resolve") from None

    monkeypatch.setattr(egress, "resolve", resolve)


def _sequences() -> tuple[list[str], list[int], list[bool]]:
    """PostgreSQL's sequences and where they stand. (SQLite's are rows, rolled back with the
    rest.)"""
    if connection.vendor != "postgresql":
        return [], [], []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), last_value "
            "FROM pg_sequences WHERE schemaname = current_schema()"
        )
        rows = cursor.fetchall()
    # A sequence never used has no last_value: setval(s, 1, false) makes 1 its next value.
    return [r[0] for r in rows], [r[1] or 1 for r in rows], [r[1] is not None for r in rows]


@contextmanager
def _same_start(*, ids: bool = False) -> Iterator[None]:
    """Whatever the calls inside change is undone on the way out: the database (a savepoint)
    and the cache that counts each caller's requests against its rate. (A stateful run that
    made more than the key's 1,200 calls a minute, with more examples or on a faster machine,
    got 429s where the same choices had got 201s, which hypothesis reports as
    FlakyStrategyDefinition.) With ``ids``, PostgreSQL's sequences too, which no rollback moves
    back: the next sequence of calls would create objects under other ids, and an id it draws
    would find one or not."""
    cache.clear()
    names, values, called = _sequences() if ids else ([], [], [])
    savepoint = transaction.savepoint()
    try:
        yield
    finally:
        transaction.savepoint_rollback(savepoint)
        if names:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT setval(s.name::regclass, s.value, s.called) "
                    "FROM unnest(%s::text[], %s::bigint[], %s::bool[]) AS s(name, value, called)",
                    [names, values, called],
                )


def _key_headers(world: Any) -> dict[str, str]:
    """A key of the developer organization holding every scope, over a small world."""
    world.issue(2_000_000)
    services.ledger_checkpoint_issue()
    _, secret = services.apikey_create(
        organization=world.developer.pk, name="fuzz", scopes=ApiKey.Scope.values
    )
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def key(world) -> dict[str, str]:
    return _key_headers(world)


def _fresh_idempotency_key(case: Any) -> None:
    # A valid Idempotency-Key the generator drew again (it likes "0") would replay another
    # request's answer, or be refused as reused with another body (422): which keys were used
    # is state the generator cannot know. A key the schema calls invalid is left as drawn.
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _PRINTABLE.fullmatch(key):
        headers["Idempotency-Key"] = f"{key[:200]}~{next(_calls)}"


def _call(case: Any, headers: dict[str, str]) -> None:
    _fresh_idempotency_key(case)
    with _same_start():  # so that a failing example fails again when hypothesis replays it
        case.call_and_validate(headers=headers, checks=CHECKS_RUN)


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=HEALTH)
def test_no_input_breaks_the_api_or_its_schema(case, key):
    _call(case, key)


def _anyone_may_call(context: Any) -> bool:
    return {} in context.operation.definition.raw.get("security", [])


def _needs_a_key(context: Any) -> bool:
    return not _anyone_may_call(context)


# (exclude, not include: given include(func), schemathesis 4.32's pytest plugin collected every
# operation here)
@schema.exclude(_needs_a_key).parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=HEALTH)
def test_no_input_from_anyone_breaks_the_public_operations(case, world):
    _call(case, {})


# Without credentials the others answer 401 whatever the input (every check still runs on each
# answer): the examples and a few drawn inputs are enough, and keep the run within its budget.
# ignored_auth also probes each of them without the key once it answered 2xx with it.
@schema_uncovered.exclude(_anyone_may_call).parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=HEALTH)
def test_no_input_from_anyone_gets_past_the_operations_that_need_a_key(case, world):
    _call(case, {})


def test_sequences_of_calls_keep_to_the_schema(world):
    """The stateful phase: calls chained by the schema's links (an id one answer gives, the
    next call uses), with every check, use_after_free and ensure_resource_availability among
    them."""
    headers = _key_headers(world)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        # One scenario, one _same_start: what a scenario left behind (an endpoint over the cap,
        # an auction scheduled, ids used, calls counted against the rate) would make the next,
        # and hypothesis' replays of it, answer otherwise.
        def setup(self) -> None:
            self.started = ExitStack()
            self.started.enter_context(_same_start(ids=True))

        def teardown(self) -> None:
            self.started.close()
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
            max_examples=40, stateful_step_count=8, deadline=None, suppress_health_check=HEALTH
        )
    )
