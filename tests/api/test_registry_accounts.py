"""GET /organization, GET and POST /accounts, GET /accounts/{id}: the caller's own things."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from ledger import services
from ledger.models import Account, LedgerEntry, Role
from tests import factories

pytestmark = pytest.mark.django_db


def account_json(account: Account) -> dict:
    return {
        "id": account.pk,
        "organization": account.organization_id,
        "kind": account.kind,
        "name": account.name,
    }


def first_error_code(response, field: str) -> str:
    body = response.json()
    assert body["code"] == "invalid", body
    assert body["message"]
    return body["detail"][field][0]["code"]


# ---- GET /organization ------------------------------------------------------------------------


def test_the_organization_is_the_callers_own_with_its_accounts_in_id_order(world, client_for):
    trading = factories.account(world.buyer, "Trading")
    r = client_for(world.buyer, "read").get("/api/v1/organization")
    assert r.status_code == 200
    assert r.json() == {
        "id": world.buyer.pk,
        "handle": world.buyer.handle,
        "name": world.buyer.name,
        "name_zh": "",
        "roles": ["bidder"],
        "accounts": [account_json(world.buyer_account), account_json(trading)],
    }


def test_a_registry_sees_its_buffer_pool_among_its_accounts(world, client_for):
    body = client_for(world.registry, "read").get("/api/v1/organization").json()
    assert body["roles"] == ["operator", "registry"]
    assert body["accounts"] == [account_json(world.buffer)]
    assert body["accounts"][0]["kind"] == "buffer"


def test_the_organization_needs_the_read_scope(world, client_for):
    r = client_for(world.buyer, "transfer").get("/api/v1/organization")
    assert r.status_code == 403
    assert r.json() == {
        "code": "permission_denied",
        "message": "This API key lacks the scope this operation needs.",
        "detail": {},
    }


def test_a_signed_in_user_of_no_organization_has_no_organization_and_opens_nothing(world):
    user = get_user_model().objects.create_user("drifter", password="x")
    client = APIClient()
    client.force_authenticate(user)
    r = client.get("/api/v1/organization")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    before = LedgerEntry.objects.count()
    r = client.post("/api/v1/accounts", {"name": "Mine"}, format="json")
    assert r.status_code == 404
    assert LedgerEntry.objects.count() == before


# ---- GET /accounts ----------------------------------------------------------------------------


def test_the_account_list_holds_only_the_callers_accounts(world, client_for):
    trading = factories.account(world.buyer, "Trading")
    r = client_for(world.buyer, "read").get("/api/v1/accounts")
    assert r.status_code == 200
    assert r.json() == {
        "results": [account_json(world.buyer_account), account_json(trading)],
        "next_after": None,
    }


def test_an_operator_key_lists_every_organizations_accounts(world, client_for):
    operator = factories.organization(Role.OPERATOR)
    ids = [a["id"] for a in client_for(operator, "read").get("/api/v1/accounts").json()["results"]]
    assert ids == sorted(Account.objects.values_list("pk", flat=True))
    assert {world.buffer.pk, world.dev_account.pk, world.buyer_account.pk} <= set(ids)


def test_the_account_list_needs_the_read_scope(world, client_for):
    assert client_for(world.buyer, "transfer").get("/api/v1/accounts").status_code == 403


# ---- POST /accounts ---------------------------------------------------------------------------


def test_a_key_opens_a_holding_account_for_its_own_organization(world, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(world.buyer, "transfer").post(
        "/api/v1/accounts", {"name": "  Trading desk  "}, format="json"
    )
    assert r.status_code == 201, r.json()
    account = Account.objects.get(pk=r.json()["id"])
    assert r.json() == {
        "id": account.pk,
        "organization": world.buyer.pk,
        "kind": "holding",
        "name": "Trading desk",
    }
    assert LedgerEntry.objects.count() == before + 1
    assert LedgerEntry.objects.order_by("-seq").first().type == "account.open"


def test_an_operator_key_opens_the_account_for_its_own_organization_too(world, client_for):
    r = client_for(world.registry, "transfer").post(
        "/api/v1/accounts", {"name": "Registry trading"}, format="json"
    )
    assert r.status_code == 201
    assert r.json()["organization"] == world.registry.pk
    assert r.json()["kind"] == "holding"


def test_the_same_idempotency_key_opens_one_account(world, client_for):
    client = client_for(world.buyer, "transfer")
    first = client.post(
        "/api/v1/accounts", {"name": "Desk"}, format="json", HTTP_IDEMPOTENCY_KEY="open-1"
    )
    again = client.post(
        "/api/v1/accounts", {"name": "Desk"}, format="json", HTTP_IDEMPOTENCY_KEY="open-1"
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Account.objects.filter(organization=world.buyer, name="Desk").count() == 1


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, "required"),
        ({"name": ""}, "blank"),
        ({"name": "   "}, "blank"),
        ({"name": "x" * 201}, "max_length"),
        ({"name": None}, "null"),
        ({"name": "a\x00b"}, "null_characters_not_allowed"),
    ],
)
def test_a_bad_account_name_is_400_with_its_code_and_opens_nothing(
    world, client_for, payload, code
):
    before = LedgerEntry.objects.count()
    r = client_for(world.buyer, "transfer").post("/api/v1/accounts", payload, format="json")
    assert r.status_code == 400
    assert first_error_code(r, "name") == code
    assert LedgerEntry.objects.count() == before


def test_a_body_that_is_not_an_object_is_400(world, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(world.buyer, "transfer").post("/api/v1/accounts", ["Desk"], format="json")
    assert r.status_code == 400
    assert first_error_code(r, "non_field_errors") == "invalid"
    assert LedgerEntry.objects.count() == before


def test_opening_an_account_needs_the_transfer_scope_not_read(world, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(world.buyer, "read", "issue").post(
        "/api/v1/accounts", {"name": "Desk"}, format="json"
    )
    assert r.status_code == 403
    assert r.json()["code"] == "permission_denied"
    assert LedgerEntry.objects.count() == before


# ---- GET /accounts/{id} -----------------------------------------------------------------------


def test_an_account_reads_back_with_its_non_zero_holdings(world, client_for):
    first = world.issue(1_000_000, year=2021)  # 20 % buffer: 800 t to the developer
    second = world.issue(2_340_100, year=2022, share_bp=0)
    services.escrow_hold(
        actor=world.dev,
        batch=second.pk,
        account=world.dev_account.pk,
        quantity=100,
        reference="lot",
    )
    services.credit_transfer(
        actor=world.dev,
        batch=first.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=800_000,
    )  # the developer's holding of the first batch is now zero: not a position
    r = client_for(world.developer, "read").get(f"/api/v1/accounts/{world.dev_account.pk}")
    assert r.status_code == 200
    held = world.dev_account.holdings.get(batch=second)
    assert r.json() == {
        **account_json(world.dev_account),
        "holdings": [
            {
                "id": held.pk,
                "account": world.dev_account.pk,
                "batch": second.pk,
                "batch_serial": second.serial,
                "tradable": "2340.000",
                "escrowed": "0.100",
            }
        ],
    }


def test_another_organizations_account_is_404_exactly_like_an_unknown_one(world, client_for):
    client = client_for(world.buyer, "read")
    foreign = client.get(f"/api/v1/accounts/{world.dev_account.pk}")
    unknown = client.get("/api/v1/accounts/999999")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["code"] == unknown.json()["code"] == "not_found"
    assert set(foreign.json()) == {"code", "message", "detail"}


def test_an_operator_key_reads_any_account(world, client_for):
    operator = factories.organization(Role.OPERATOR)
    r = client_for(operator, "read").get(f"/api/v1/accounts/{world.dev_account.pk}")
    assert r.status_code == 200
    assert r.json()["organization"] == world.developer.pk


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "1.0", "1e3", "%20", "9" * 30, "٣"])
def test_an_id_that_cannot_be_one_is_a_json_404(world, client_for, raw):
    r = client_for(world.buyer, "read").get(f"/api/v1/accounts/{raw}")
    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert r.json()["code"] == "not_found"


def test_reading_an_account_needs_the_read_scope(world, client_for):
    r = client_for(world.buyer, "transfer").get(f"/api/v1/accounts/{world.buyer_account.pk}")
    assert r.status_code == 403
