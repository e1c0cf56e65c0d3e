"""Idempotency keys belong to the organization, not to the API key that sent them: a retry
sent with a rotated key replays; another organization's same key is its own. A key that is not
printable ASCII is refused with a message saying so."""

from __future__ import annotations

import importlib

from django.apps import apps

from ledger import services
from ledger.models import ApiKey, Holding, IdempotencyRecord, LedgerEntry


def transfer(world, b, quantity: str = "1") -> dict:
    return {
        "batch": b.pk,
        "sender": world.dev_account.pk,
        "recipient": world.buyer_account.pk,
        "quantity": quantity,
    }


def test_a_retry_with_a_rotated_key_of_the_same_organization_replays(world, client_for):
    b = world.issue()
    old = client_for(world.developer, "transfer")
    first = old.post(
        "/api/v1/transfers", transfer(world, b), format="json", HTTP_IDEMPOTENCY_KEY="t-1"
    )
    assert first.status_code == 201
    services.apikey_revoke(prefix=ApiKey.objects.order_by("-pk").first().prefix)
    before = LedgerEntry.objects.count()

    rotated = client_for(world.developer, "transfer")
    again = rotated.post(
        "/api/v1/transfers", transfer(world, b), format="json", HTTP_IDEMPOTENCY_KEY="t-1"
    )
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert LedgerEntry.objects.count() == before
    assert Holding.objects.get(account=world.buyer_account, batch=b).tradable == 1_000
    other = rotated.post(
        "/api/v1/transfers", transfer(world, b, "2"), format="json", HTTP_IDEMPOTENCY_KEY="t-1"
    )
    assert other.json()["code"] == "idempotency_key_reused"


def test_another_organization_with_the_same_key_is_not_a_replay(world, client_for):
    b = world.issue()
    dev = client_for(world.developer, "transfer")
    r = dev.post(
        "/api/v1/transfers", transfer(world, b), format="json", HTTP_IDEMPOTENCY_KEY="same"
    )
    assert r.status_code == 201
    buyer = client_for(world.buyer, "transfer")
    back = {
        "batch": b.pk,
        "sender": world.buyer_account.pk,
        "recipient": world.dev_account.pk,
        "quantity": "1",
    }
    r = buyer.post("/api/v1/transfers", back, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert r.status_code == 201
    assert "Idempotent-Replayed" not in r
    assert set(IdempotencyRecord.objects.values_list("owner", flat=True)) == {
        f"org:{world.developer.pk}",
        f"org:{world.buyer.pk}",
    }


def test_a_key_that_is_not_ascii_is_refused_saying_so(world, client_for):
    b = world.issue()
    client = client_for(world.developer, "transfer")
    before = LedgerEntry.objects.count()
    for key in ("überweisung-1", "转账-1", "t\u200b1", "t\t1"):
        r = client.post(
            "/api/v1/transfers", transfer(world, b), format="json", HTTP_IDEMPOTENCY_KEY=key
        )
        assert r.status_code == 400, key
        body = r.json()
        assert body["detail"] == {"Idempotency-Key": "not_ascii"}
        assert "ASCII" in body["message"]
    assert LedgerEntry.objects.count() == before
    r = client.post(
        "/api/v1/transfers",
        transfer(world, b),
        format="json",
        HTTP_IDEMPOTENCY_KEY="Order #42/a b~",
    )
    assert r.status_code == 201


def test_the_migration_moves_records_of_api_keys_to_their_organization(world):
    migration = importlib.import_module("ledger.migrations.0011_idempotency_owner_organization")
    k1, _ = services.apikey_create(organization=world.developer.pk, name="a", scopes=["read"])
    k2, _ = services.apikey_create(organization=world.developer.pk, name="b", scopes=["read"])

    def record(owner: str, key: str) -> IdempotencyRecord:
        return IdempotencyRecord.objects.create(
            owner=owner, key=key, request_sha256="0" * 64, status_code=201, response={}
        )

    only = record(f"apikey:{k1.prefix}", "x")
    older = record(f"apikey:{k1.prefix}", "both")
    newer = record(f"apikey:{k2.prefix}", "both")
    user = record("user:7", "x")
    migration.to_organization(apps, None)

    owner = {r.pk: r.owner for r in IdempotencyRecord.objects.all()}
    org = f"org:{world.developer.pk}"
    assert owner[only.pk] == org
    assert owner[newer.pk] == org  # the latest of two keys' records with one Idempotency-Key
    assert owner[older.pk] == f"apikey:{k1.prefix}"  # left to expire
    assert owner[user.pk] == "user:7"
    migration.to_api_key(apps, None)
    assert IdempotencyRecord.objects.get(pk=only.pk).owner == f"apikey:{k1.prefix}"
