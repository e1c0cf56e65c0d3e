"""The parallel verifier's workers check the stored Merkle nodes under the rows they scan
(``ledger/verify_nodes.py``): on a committed ledger (the workers read it on connections of their
own, in the verifier's snapshot) they find what the serial check finds, named in the same
words. Each attack is run by both paths; chunks and segments are cut so small that chunk
boundaries fall inside subtrees at every level, where the verifying process checks the nodes
no chunk held whole."""

from __future__ import annotations

import pytest
from django.db import connection

from ledger import services, verify_parallel
from ledger.core import merkle
from ledger.models import LedgerEntry, MerkleNode, TreeHead
from ledger.signing import trusted_verifiers
from ledger.verify import VerificationError, verify_ledger
from tests import factories
from tests.ledger.test_tamper import (
    bypass_triggers,
    rebuild_nodes_from_leaves,
    restore_triggers,
    set_node,
)

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="COPY and exported snapshots: PostgreSQL only"
)


@pytest.fixture
def committed_ledger(committed_db):
    """Forty-odd committed entries under checkpoints of several sizes."""
    w = factories.World()
    b = w.issue(5_000_000)
    for i in range(40):
        services.credit_transfer(
            actor=w.dev,
            batch=b.pk,
            sender=w.dev_account.pk,
            recipient=w.buyer_account.pk,
            quantity=1_000 + i,
        )
        if i in (6, 19, 31):
            services.ledger_checkpoint_issue()
    services.ledger_checkpoint_issue()
    return w


def outcome(settings, monkeypatch, *, parallel: bool, chunk: int = 4) -> tuple[str, bool]:
    """The report or the failure, and whether the workers checked the nodes."""
    if parallel:
        settings.LEDGER_VERIFY_WORKERS = 2
        monkeypatch.setattr(verify_parallel, "MIN_ENTRIES", 0)
        monkeypatch.setattr(verify_parallel, "SEGMENT", 11)  # not a multiple of the chunk
        monkeypatch.setattr(verify_parallel, "CHUNK", chunk)
    else:
        settings.LEDGER_VERIFY_WORKERS = 0
    try:
        report = verify_ledger(verifiers=trusted_verifiers())
    except VerificationError as exc:
        return f"FAILED at {exc.seq}: {exc}", False
    return (
        f"OK {report.entries} entries, {report.merkle_nodes} nodes, {report.checkpoints} "
        f"checkpoints",
        report.merkle_nodes_by_workers,
    )


@pytest.mark.parametrize("chunk", [4, 8, 1 << 13])
def test_a_sound_tree_is_checked_by_the_workers_with_the_same_report(
    committed_ledger, settings, monkeypatch, chunk
):
    serial, by_workers = outcome(settings, monkeypatch, parallel=False)
    assert serial.startswith("OK") and not by_workers
    assert f"{MerkleNode.objects.count()} nodes" in serial
    assert outcome(settings, monkeypatch, parallel=True, chunk=chunk) == (serial, True)


def _top(size: int) -> tuple[int, int]:
    level = size.bit_length() - 1
    return level, 0


ATTACKS = {
    "leaf hash changed": lambda size: set_node(0, 13, b"\x42" * 32),
    "level 1 node changed": lambda size: set_node(1, 5, b"\x42" * 32),
    "node across chunks changed": lambda size: set_node(3, 1, b"\x42" * 32),
    "top node changed": lambda size: set_node(*_top(size), b"\x42" * 32),
    "last node of a level changed": lambda size: set_node(2, size // 4 - 1, b"\x42" * 32),
    "hash of the wrong length": lambda size: set_node(1, 7, b"\x42" * 31),
    "node deleted": lambda size: MerkleNode.objects.filter(level=2, index=3).delete(),
    "top node deleted": lambda size: MerkleNode.objects.filter(level=_top(size)[0]).delete(),
    "leaf rewritten with every node above": lambda size: (
        set_node(0, 21, merkle.leaf_hash(b"a different entry")),
        rebuild_nodes_from_leaves(),
    ),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_every_changed_node_is_named_alike_by_both_paths(
    committed_ledger, settings, monkeypatch, attack
):
    size = TreeHead.objects.get(pk=1).size
    assert size == LedgerEntry.objects.count() >= 32
    bypass_triggers()
    ATTACKS[attack](size)
    restore_triggers()
    serial, _ = outcome(settings, monkeypatch, parallel=False)
    assert serial.startswith("FAILED") and "Merkle" in serial
    for chunk in (4, 8, 1 << 13):
        assert outcome(settings, monkeypatch, parallel=True, chunk=chunk) == (serial, False)


def test_inside_a_callers_transaction_the_verifying_process_checks_the_nodes(
    committed_ledger, settings, monkeypatch
):
    """A snapshot cannot be exported from a savepoint, and the workers' connections would not
    see what the caller's transaction wrote: the serial node check runs instead."""
    from django.db import transaction

    with transaction.atomic():
        text, by_workers = outcome(settings, monkeypatch, parallel=True)
    assert text.startswith("OK") and not by_workers
