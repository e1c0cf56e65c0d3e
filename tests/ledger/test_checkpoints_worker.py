"""Checkpoints are signed by a real Celery worker shortly after writes, batched."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ledger import selectors, services, signing
from ledger.core.note import checkpoint_open
from ledger.models import Checkpoint, LedgerEntry
from ledger.services import append
from ledger.signing import trusted_verifiers
from tests.factories import World


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _transfer(world: World, batch) -> None:
    services.credit_transfer(
        actor=world.dev,
        batch=batch.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=1_000,
    )


def test_a_worker_signs_a_checkpoint_covering_every_write_soon_after_it(worker):
    world = World()
    b = world.issue(5_000_000)
    started = time.monotonic()
    for _ in range(40):
        _transfer(world, b)
    size = LedgerEntry.objects.count()

    assert _wait_for(lambda: Checkpoint.objects.filter(size=size).exists()), worker.log()[-2000:]
    elapsed = time.monotonic() - started
    # Batched: about one per interval (1 s), not one per write.
    assert Checkpoint.objects.count() <= elapsed + 2
    checkpoint = Checkpoint.objects.get(size=size)
    body, _ = checkpoint_open(checkpoint.note, trusted_verifiers(), origin=None)
    assert body.size == size
    assert body.root == selectors.tree_root(size)


@pytest.fixture
def own_keys_worker(celery_worker_process, committed_db, settings, tmp_path):
    """A worker of its own whose signing key and verifier-keys file are this test's, shared
    with this process (as an operator's processes share the key files)."""
    from tests.conftest import ARTIFACTS
    from tests.worker import own_worker

    paths = {
        "LEDGER_SIGNING_KEY_FILE": tmp_path / "keys" / "ledger-signing.key",
        "LEDGER_VERIFIER_KEYS_FILE": tmp_path / "keys" / "verifier-keys.txt",
    }
    for name, path in paths.items():
        setattr(settings, name, path)
    signing.get_signer()  # the key exists before the worker starts
    with own_worker(ARTIFACTS, {k: str(v) for k, v in paths.items()}) as worker:
        yield worker


def test_a_running_worker_signs_with_the_new_key_after_a_rotation(own_keys_worker):
    """``ledger_key_rotate`` runs in a process of its own: the worker must not go on signing
    with the key it read at start-up."""
    world = World()
    b = world.issue(5_000_000)

    def checkpoint_after_a_write() -> Checkpoint:
        append._checkpoint_last_enqueued = 0.0  # this process's enqueue throttle
        _transfer(world, b)
        size = LedgerEntry.objects.count()
        found = _wait_for(lambda: Checkpoint.objects.filter(size=size).exists())
        assert found, own_keys_worker.log()[-2000:]
        return Checkpoint.objects.get(size=size)

    before = checkpoint_after_a_write()
    old, new = signing.rotate_signing_key()
    assert before.key_hash == old.key_hash.hex()
    after = checkpoint_after_a_write()
    assert after.key_hash == new.key_hash.hex() != old.key_hash.hex()
    # Both notes verify with the published keys; the retired key is kept, not deleted.
    for checkpoint in (before, after):
        checkpoint_open(checkpoint.note, trusted_verifiers(), origin=None)
    key_file = own_keys_worker.env["LEDGER_SIGNING_KEY_FILE"]
    assert Path(key_file).with_name("ledger-signing.key.retired-1").exists()


@pytest.fixture
def no_worker_queue(committed_db):
    """What this test's writes enqueue goes to queues no worker reads: the only checkpointer
    is the one the test runs."""
    from bluecarbon import queues
    from tests.worker import routed

    with routed(queues.isolated(f"nobody-{time.monotonic_ns()}")):
        yield


def test_a_checkpoint_that_waited_through_a_rotation_is_signed_with_the_new_key(
    no_worker_queue, settings, tmp_path
):
    """The race behind a CI failure: a checkpoint task that started before a rotation signed,
    after it, entries written after it, with the retired key. Here the task waits on the tree
    head's lock (held by this test, as another checkpointer would hold it) while the key is
    rotated; what it signs once it has the lock must carry the new key."""
    import threading

    from django.db import connection, transaction

    from ledger import locks

    settings.LEDGER_SIGNING_KEY_FILE = tmp_path / "keys" / "ledger-signing.key"
    settings.LEDGER_VERIFIER_KEYS_FILE = tmp_path / "keys" / "verifier-keys.txt"
    world = World()
    b = world.issue(5_000_000)
    signing.get_signer()

    # A task an earlier test left with the session's worker may take the lock first and sign
    # with its own key; then this one finds nothing to sign, and the test writes again.
    for _ in range(3):
        _transfer(world, b)
        signed: list[Checkpoint | None] = []

        def checkpointer(signed: list[Checkpoint | None] = signed) -> None:
            try:
                signed.append(services.ledger_checkpoint_issue())
            finally:
                connection.close()

        with transaction.atomic():
            locks.tree_head_lock()
            thread = threading.Thread(target=checkpointer)
            thread.start()
            time.sleep(1.0)  # the task is past its start and waiting for the lock
            assert thread.is_alive()
            old, new = signing.rotate_signing_key()
        thread.join(timeout=60)
        assert signed, "the checkpointer raised"
        if signed[0] is not None:
            break
    else:
        pytest.fail("another process signed every attempt's checkpoint first")

    assert signed[0].key_hash == new.key_hash.hex() != old.key_hash.hex()
