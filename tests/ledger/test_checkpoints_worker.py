"""Checkpoints are signed by a real Celery worker shortly after writes, batched."""

from __future__ import annotations

import time

from ledger import services
from ledger.core.note import checkpoint_open
from ledger.models import Checkpoint, LedgerEntry
from ledger.signing import trusted_verifiers
from tests.factories import World


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_worker_signs_a_checkpoint_covering_every_write_soon_after_it(worker):
    world = World()
    b = world.issue(5_000_000)
    started = time.monotonic()
    for _ in range(40):
        services.credit_transfer(
            actor=world.dev,
            batch=b.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=1_000,
        )
    size = LedgerEntry.objects.count()

    assert _wait_for(lambda: Checkpoint.objects.filter(size=size).exists()), worker.log()[-2000:]
    elapsed = time.monotonic() - started
    # Batched: about one per interval (1 s), not one per write.
    assert Checkpoint.objects.count() <= elapsed + 2
    checkpoint = Checkpoint.objects.get(size=size)
    body, _ = checkpoint_open(checkpoint.note, trusted_verifiers(), origin=None)
    assert body.size == size
    assert body.root == services.tree_root(size)
