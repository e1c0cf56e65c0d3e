"""The same Idempotency-Key sent twice in parallel applies once."""

from __future__ import annotations

import threading

from django.db import connection, connections
from rest_framework.test import APIClient

from ledger import services
from ledger.models import Holding, IdempotencyRecord, LedgerEntry
from tests.factories import World


def test_two_parallel_requests_with_one_key_apply_once(committed_db):
    world = World()
    b = world.issue(5_000_000)
    _, secret = services.apikey_create(
        organization=world.developer.pk, name="k", scopes=["transfer"]
    )
    payload = {
        "batch": b.pk,
        "sender": world.dev_account.pk,
        "recipient": world.buyer_account.pk,
        "quantity": "7",
    }
    before = LedgerEntry.objects.count()
    barrier = threading.Barrier(4)
    results: list[tuple[int, dict]] = []

    def send() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        barrier.wait()
        try:
            r = client.post(
                "/api/v1/transfers", payload, format="json", HTTP_IDEMPOTENCY_KEY="parallel-1"
            )
            results.append((r.status_code, r.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert len(results) == 4
    statuses = sorted(code for code, _ in results)
    # Every caller either got the one response (201, first or replayed) or was told the first
    # is still in progress (409); none applied a second transfer.
    assert set(statuses) <= {201, 409}, results
    assert 201 in statuses
    created = {body["entry_seq"] for code, body in results if code == 201}
    assert len(created) == 1
    assert LedgerEntry.objects.count() == before + 1
    assert Holding.objects.get(account=world.buyer_account, batch=b).tradable == 7_000
    assert IdempotencyRecord.objects.filter(key="parallel-1").count() == 1
    connection.close()
