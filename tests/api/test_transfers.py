from __future__ import annotations

import pytest

from ledger import services
from ledger.models import Holding, LedgerEntry

pytestmark = pytest.mark.django_db


def test_a_registry_transfers_with_decimal_tonnes(world, client_for):
    b = world.issue(5_000_000)
    client = client_for(world.developer, "transfer")
    response = client.post(
        "/api/v1/transfers",
        {
            "batch": b.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": "2340.1",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["quantity"] == "2340.100"
    assert Holding.objects.get(account=world.buyer_account, batch=b).tradable == 2_340_100


def test_more_precision_than_a_kilogram_is_refused_with_a_code(world, client_for):
    b = world.issue()
    before = LedgerEntry.objects.count()
    response = client_for(world.developer).post(
        "/api/v1/transfers",
        {
            "batch": b.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": "1.0001",
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["detail"]["quantity"][0]["code"] == "too_precise"
    assert LedgerEntry.objects.count() == before


def test_the_same_idempotency_key_applies_once_and_replays(world, client_for):
    b = world.issue()
    client = client_for(world.developer)
    payload = {
        "batch": b.pk,
        "sender": world.dev_account.pk,
        "recipient": world.buyer_account.pk,
        "quantity": "1",
    }
    first = client.post("/api/v1/transfers", payload, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post("/api/v1/transfers", payload, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Holding.objects.get(account=world.buyer_account, batch=b).tradable == 1_000
    other = client.post(
        "/api/v1/transfers", {**payload, "quantity": "2"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


def test_a_key_without_the_transfer_scope_is_forbidden(world, client_for):
    b = world.issue()
    response = client_for(world.developer, "read").post(
        "/api/v1/transfers",
        {
            "batch": b.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": "1",
        },
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_another_organizations_account_is_not_found(world, client_for):
    b = world.issue()
    response = client_for(world.buyer).post(
        "/api/v1/transfers",
        {
            "batch": b.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": "1",
        },
        format="json",
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_no_key_is_unauthorized(world):
    from rest_framework.test import APIClient

    response = APIClient().post("/api/v1/transfers", {}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_the_transfer_list_shows_only_the_callers_transfers(world, client_for):
    from tests.factories import World

    b = world.issue(5_000_000)
    other = World()
    ob = other.issue(1_000_000)
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=1_500,
    )
    services.credit_transfer(
        actor=other.dev,
        batch=ob.pk,
        sender=other.dev_account.pk,
        recipient=other.buyer_account.pk,
        quantity=9,
    )
    listed = client_for(world.buyer).get("/api/v1/transfers").json()
    assert [(t["sender"], t["quantity"]) for t in listed["results"]] == [
        (world.dev_account.pk, "1.500")
    ]
    assert listed["next_after"] is None


def test_old_idempotency_records_expire(world, client_for):
    import datetime as dt

    from django.utils import timezone

    from ledger.models import IdempotencyRecord
    from ledger.operations import idempotency_records_expire

    b = world.issue()
    client_for(world.developer).post(
        "/api/v1/transfers",
        {
            "batch": b.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": "1",
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="old",
    )
    assert idempotency_records_expire() == 0  # kept at least 24 hours
    IdempotencyRecord.objects.update(created_at=timezone.now() - dt.timedelta(hours=49))
    assert idempotency_records_expire() == 1
