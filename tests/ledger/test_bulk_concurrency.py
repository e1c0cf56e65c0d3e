"""Bulk requests running next to each other and next to single transfers, really committed:
none waits on another in a cycle (``bulk_apply`` locks in ``locks.py``'s order, the ledger head
last, like every service), none is lost, and the ledger verifies."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections, transaction

from ledger import services
from ledger.actors import Actor
from ledger.apis.auth import ALL_SCOPES
from ledger.bulk import bulk_apply
from ledger.models import Batch, Holding, LedgerEntry
from ledger.signing import trusted_verifiers
from ledger.verify import verify_ledger
from tests import factories


def _in_thread(work: Callable[[], None], failures: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connections.close_all()

    return threading.Thread(target=run)


@pytest.mark.slow
def test_bulk_requests_and_single_transfers_never_deadlock(committed_db):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite runs one writer at a time")
    w = factories.World()
    actor = Actor(f"org:{w.registry.handle}", w.registry.pk, True)
    accounts = [w.dev_account.pk, w.buyer_account.pk] + [
        factories.account(w.buyer, f"extra {i}").pk for i in range(3)
    ]
    batches = [w.issue(10**9, year=2020 + i).pk for i in range(2)]
    for b in batches:
        for a in accounts[1:]:
            services.credit_transfer(
                actor=actor, batch=b, sender=accounts[0], recipient=a, quantity=10**7
            )
    before = LedgerEntry.objects.count()

    def bulk_worker(seed: int) -> Callable[[], None]:
        def work() -> None:
            rng = random.Random(seed)
            for _ in range(6):
                ops = []
                for i in range(150):
                    sender, recipient = rng.sample(accounts, 2)
                    batch = rng.choice(batches)
                    if i % 50 == 0:  # a single-service operation between transfer runs
                        ops.append({"op": "cancel", "batch": batch, "account": sender,
                                    "quantity": "0.001", "reason": "export"})  # fmt: skip
                    else:
                        ops.append({"op": "transfer", "batch": batch, "sender": sender,
                                    "recipient": recipient, "quantity": "0.001"})  # fmt: skip
                with transaction.atomic(durable=True):
                    bulk_apply(actor=actor, scopes=ALL_SCOPES, operations=ops)

        return work

    def single_worker() -> None:
        rng = random.Random(99)
        for _ in range(150):
            sender, recipient = rng.sample(accounts, 2)
            with transaction.atomic(durable=True):
                services.credit_transfer(
                    actor=actor,
                    batch=rng.choice(batches),
                    sender=sender,
                    recipient=recipient,
                    quantity=1,
                )

    failures: list[BaseException] = []
    threads = [_in_thread(bulk_worker(seed), failures) for seed in range(3)]
    threads.append(_in_thread(single_worker, failures))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer is stuck"
    assert failures == []
    assert LedgerEntry.objects.count() == before + 3 * 6 * 150 + 150
    for b in batches:
        held = sum(Holding.objects.filter(batch_id=b).values_list("tradable", flat=True))
        assert held + Batch.objects.get(pk=b).cancelled == 10**9
    verify_ledger(verifiers=trusted_verifiers())
