"""Every row lock the ledger's services take, in one place and one order.

The order is: project -> batch -> holdings (ascending pk) -> escrow hold -> ledger head.
Every service takes what it needs in that order, so two writers never wait on each other in a
cycle. The ledger head comes last and is held only for the append itself, which keeps the one
serialized section of every write as short as it can be.
"""

from __future__ import annotations

from collections.abc import Iterable

from .models import Batch, EscrowHold, Holding, LedgerHead, Project, TreeHead


def project_lock(project_id: int) -> Project | None:
    # Serializes issuances per project, so two overlapping monitoring periods cannot both pass
    # the overlap check.
    return Project.objects.select_for_update().filter(pk=project_id).first()


def batch_lock(batch_id: int) -> Batch | None:
    return Batch.objects.select_for_update().filter(pk=batch_id).first()


def holdings_lock(pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Holding]:
    """Lock (creating empty ones first) the holdings for these (account, batch) pairs."""
    wanted = sorted(set(pairs))
    # ON CONFLICT DO NOTHING: two transfers into a new holding must not race on its creation.
    Holding.objects.bulk_create(
        [Holding(account_id=a, batch_id=b) for a, b in wanted], ignore_conflicts=True
    )
    query = Holding.objects.none()
    for a, b in wanted:
        query = query | Holding.objects.filter(account_id=a, batch_id=b)
    rows = query.order_by("pk").select_for_update()
    return {(h.account_id, h.batch_id): h for h in rows}


def escrow_hold_lock(hold_id: int) -> EscrowHold | None:
    return EscrowHold.objects.select_for_update().filter(pk=hold_id).first()


def ledger_head_lock() -> LedgerHead:
    # The one serialization point of all writes: the chain has one order, and it is the order
    # in which transactions changed the derived tables.
    head = LedgerHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        LedgerHead.objects.bulk_create([LedgerHead(pk=1)], ignore_conflicts=True)
        head = LedgerHead.objects.select_for_update().get(pk=1)
    return head


def tree_head_lock() -> TreeHead:
    # One checkpointer at a time extends the stored Merkle tree.
    head = TreeHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        TreeHead.objects.bulk_create([TreeHead(pk=1)], ignore_conflicts=True)
        head = TreeHead.objects.select_for_update().get(pk=1)
    return head
