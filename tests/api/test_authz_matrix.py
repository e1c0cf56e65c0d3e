"""Who may call what, for every operation in the generated schema.

The table is written by hand (it is the specification); a test fails if the schema has an
operation the table does not cover, so a new endpoint cannot ship without its row."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ledger import services
from ledger.models import ApiKey, Role
from tests import factories

pytestmark = pytest.mark.django_db

PUBLIC = None
ANY_KEY = "any key"
# (method, path) -> the scope it needs, or PUBLIC.
MATRIX: dict[tuple[str, str], str | None] = {
    ("GET", "/api/v1/accounts"): "read",
    ("POST", "/api/v1/accounts"): "transfer",
    ("GET", "/api/v1/batches"): "read",
    ("POST", "/api/v1/batches"): "issue",
    ("GET", "/api/v1/batches/{id}"): "read",
    ("GET", "/api/v1/cancellations"): "read",
    ("POST", "/api/v1/cancellations"): "cancel",
    ("GET", "/api/v1/holdings"): "read",
    ("GET", "/api/v1/ledger/checkpoints"): PUBLIC,
    ("GET", "/api/v1/ledger/checkpoints/{size}"): PUBLIC,
    ("GET", "/api/v1/ledger/checkpoints/latest"): PUBLIC,
    ("GET", "/api/v1/ledger/entries"): PUBLIC,
    ("GET", "/api/v1/ledger/entries/{seq}"): PUBLIC,
    ("GET", "/api/v1/ledger/proofs/consistency"): PUBLIC,
    ("GET", "/api/v1/ledger/proofs/inclusion"): PUBLIC,
    ("GET", "/api/v1/ledger/verifier-keys"): PUBLIC,
    ("GET", "/api/v1/methodologies"): "read",
    ("GET", "/api/v1/organization"): "read",
    ("GET", "/api/v1/projects"): "read",
    ("POST", "/api/v1/projects"): "issue",
    ("GET", "/api/v1/projects/{id}"): "read",
    ("PATCH", "/api/v1/projects/{id}"): "issue",
    ("GET", "/api/v1/retirements"): "read",
    ("POST", "/api/v1/retirements"): "retire",
    ("GET", "/api/v1/retirements/{certificate}"): "read",
    ("GET", "/api/v1/retirements/{certificate}/certificate.html"): PUBLIC,
    ("GET", "/api/v1/reversals"): "read",
    ("POST", "/api/v1/reversals"): "issue",
    ("POST", "/api/v1/transfers"): "transfer",
    ("GET", "/api/v1/transfers"): "read",
    # Any key: each operation inside is checked against its own scope (tests/api/test_bulk.py).
    ("POST", "/api/v1/bulk"): ANY_KEY,
    ("GET", "/api/v1/webhooks"): "read",
    ("POST", "/api/v1/webhooks"): "read",
    ("DELETE", "/api/v1/webhooks/{id}"): "read",
    ("GET", "/api/v1/webhooks/{id}/deliveries"): "read",
    ("POST", "/api/v1/webhooks/{id}/replay"): "read",
}


def schema_operations() -> set[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}


def test_every_operation_in_the_schema_has_a_row():
    assert schema_operations() == set(MATRIX)


@pytest.fixture
def urls(world):
    b = world.issue(2_000_000)
    r = services.credit_retire(
        actor=factories.OPERATOR,
        batch=b.pk,
        account=world.dev_account.pk,
        quantity=1000,
        beneficiary="x",
        purpose="y",
        jurisdiction="CN-GD",
    )
    services.ledger_checkpoint_issue()
    values = {
        "{id}": str(world.project.pk),
        "{size}": "1",
        "{seq}": "0",
        "{certificate}": r.certificate,
    }

    def fill(path: str, method: str) -> str:
        if path.startswith("/api/v1/batches/"):
            return path.replace("{id}", str(b.pk))
        for k, v in values.items():
            path = path.replace(k, v)
        return path

    return fill


def call(client: APIClient, method: str, url: str):
    return (
        getattr(client, method.lower())(url, {}, format="json")
        if method != "GET"
        else client.get(url)
    )


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_anonymous_callers_get_401_except_on_public_operations(urls, method, path):
    status = call(APIClient(), method, urls(path, method)).status_code
    if MATRIX[(method, path)] is PUBLIC:
        assert status not in (401, 403), status
    else:
        assert status == 401


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_a_key_without_the_scope_is_forbidden_and_with_it_is_let_in(
    world, urls, client_for, method, path
):
    scope = MATRIX[(method, path)]
    if scope is PUBLIC or scope == ANY_KEY:
        return
    others = [s for s in ApiKey.Scope.values if s != scope]
    assert call(client_for(world.registry, *others), method, urls(path, method)).status_code == 403
    assert call(client_for(world.registry, scope), method, urls(path, method)).status_code not in (
        401,
        403,
    )


def test_another_organizations_objects_are_404_not_403(world, client_for):
    b = world.issue()
    stranger = factories.organization(Role.BIDDER)
    client = client_for(stranger)
    r = client.post(
        "/api/v1/transfers",
        {
            "batch": b.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": "1",
        },
        format="json",
    )
    assert r.status_code == 404
    assert client.get("/api/v1/holdings").json()["results"] == []
    assert client.get("/api/v1/accounts").json()["results"] == []


def test_an_operator_key_acts_for_other_organizations(world, client_for):
    b = world.issue()
    operator = factories.organization(Role.OPERATOR)
    r = client_for(operator, "transfer").post(
        "/api/v1/transfers",
        {
            "batch": b.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": "1",
        },
        format="json",
    )
    assert r.status_code == 201
    assert len(client_for(operator).get("/api/v1/accounts").json()["results"]) >= 3


def test_an_auditor_reads_but_cannot_move_credits(world, client_for):
    b = world.issue()
    auditor = factories.organization(Role.AUDITOR)
    client = client_for(auditor, "read", "audit")
    assert client.get("/api/v1/ledger/entries").status_code == 200
    assert client.get("/api/v1/batches").status_code == 200
    r = client.post(
        "/api/v1/transfers",
        {
            "batch": b.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": "1",
        },
        format="json",
    )
    assert r.status_code == 403
