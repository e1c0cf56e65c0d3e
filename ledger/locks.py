"""Every row lock the ledger's services take, in one place and one order.

The order is: auction -> bidder -> bid -> project -> batch -> holdings (ascending pk) ->
escrow hold -> ledger head. (The first three are the auctions app's, in
``auctions/locks.py``: an auction service takes them before calling any registry service.)
Every service takes what it needs in that order, so two writers never wait on each other in a
cycle. The ledger head comes last and is held only for the append itself, which keeps the one
serialized section of every write as short as it can be.

Every lock is ``FOR NO KEY UPDATE``, never ``FOR UPDATE``. Inserting a row that points at
another (a holding, an escrow hold or a retirement at its batch and account, a bid at its
auction) makes PostgreSQL take ``FOR KEY SHARE`` on the row pointed at, at the insert: later
than the order above would place it. ``FOR UPDATE`` conflicts with that lock and ``FOR NO KEY
UPDATE`` does not, so the foreign-key lock never waits and has no place in the order (no
service deletes these rows or changes a column a unique index covers while holding them, which
would need ``FOR UPDATE``). With ``FOR UPDATE`` on the batch, a retirement (batch, then
holding) and an escrow hold (holding, then its row pointing at the batch) deadlocked: 86 of 96
mixed writes on one holding answered 500 (issue 14, tests/api/test_write_contention.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from bluecarbon.rows import RawInsert, loaded

from .models import Batch, EscrowHold, Holding, LedgerHead, Organization, Project, TreeHead


def organization_lock(organization_id: int) -> None:
    # Serializes an organization's webhook registrations, so two cannot both find room under
    # the cap on its endpoints. Taken alone (no other lock in that transaction), so it has no
    # place to keep in the order (the auctions app takes it as the bidder's row).
    Organization.objects.select_for_update(no_key=True).filter(pk=organization_id).values_list(
        "pk"
    ).first()


def project_lock(project_id: int) -> Project | None:
    # Serializes issuances per project, so two overlapping monitoring periods cannot both pass
    # the overlap check.
    return Project.objects.select_for_update(no_key=True).filter(pk=project_id).first()


def batch_lock(batch_id: int) -> Batch | None:
    return Batch.objects.select_for_update(no_key=True).filter(pk=batch_id).first()


def _for_update() -> str:
    # SQLite has no row locks: its immediate transactions already hold the database lock.
    return " FOR NO KEY UPDATE" if connection.features.has_select_for_update else ""


def _holding_rows(wanted: list[tuple[int, int]]) -> list[tuple[int, int, int, int, int]]:
    pairs = ", ".join(["(%s, %s)"] * len(wanted))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, account_id, batch_id, tradable, escrowed FROM ledger_holding "
            f"WHERE (account_id, batch_id) IN ({pairs}) ORDER BY id" + _for_update(),
            [v for pair in wanted for v in pair],
        )
        return cursor.fetchall()


def holdings_lock(
    pairs: Iterable[tuple[int, int]], *, create: bool = True
) -> dict[tuple[int, int], Holding]:
    """Lock (creating empty ones first, unless ``create`` is false) the holdings for these
    (account, batch) pairs.

    Raw SQL: this is on every transfer's path, and the ORM's query compilation cost more than
    the database work (see bench/transfer_throughput.py)."""
    wanted = sorted(set(pairs))
    rows = _holding_rows(wanted)
    if create and len(rows) < len(wanted):
        missing = sorted(set(wanted) - {(a, b) for _, a, b, _, _ in rows})
        with connection.cursor() as cursor:
            cursor.execute(
                _HOLDING_INSERT.sql(rows=len(missing)), [v for pair in missing for v in pair]
            )
        rows = _holding_rows(wanted)
    return {
        (a, b): loaded(Holding, pk=i, account_id=a, batch_id=b, tradable=t, escrowed=e)
        for i, a, b, t, e in rows
    }


# ON CONFLICT DO NOTHING: two transfers into a new holding must not race on its creation; the
# loser waits for the winner's row and then locks it.
_HOLDING_INSERT = RawInsert(
    Holding,
    ["account", "batch", "tradable", "escrowed"],
    literals={"tradable": "0", "escrowed": "0"},
    suffix="ON CONFLICT DO NOTHING",
)


def holdings_save(*holdings: Holding) -> None:
    """Write the balances of locked holdings back, in one statement."""
    if not holdings:
        return
    cases = " ".join(["WHEN %s THEN %s"] * len(holdings))
    ids = [h.pk for h in holdings]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE ledger_holding SET tradable = CASE id {cases} END, "
            f"escrowed = CASE id {cases} END WHERE id IN ({', '.join(['%s'] * len(ids))})",
            [v for h in holdings for v in (h.pk, h.tradable)]
            + [v for h in holdings for v in (h.pk, h.escrowed)]
            + ids,
        )


def escrow_hold_lock(hold_id: int) -> EscrowHold | None:
    return EscrowHold.objects.select_for_update(no_key=True).filter(pk=hold_id).first()


def ledger_head_lock() -> tuple[int, bytes]:
    """Lock the head; returns (size, last entry hash).

    The one serialization point of all writes: the chain has one order, and it is the order in
    which transactions changed the derived tables."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT size, last_hash FROM ledger_ledgerhead WHERE id = 1" + _for_update())
        row = cursor.fetchone()
    if row is None:
        LedgerHead.objects.bulk_create([LedgerHead(pk=1)], ignore_conflicts=True)
        return ledger_head_lock()
    return row[0], bytes(row[1])


def tree_head_lock() -> TreeHead:
    # One checkpointer at a time extends the stored Merkle tree.
    head = TreeHead.objects.select_for_update(no_key=True).filter(pk=1).first()
    if head is None:
        TreeHead.objects.bulk_create([TreeHead(pk=1)], ignore_conflicts=True)
        head = TreeHead.objects.select_for_update(no_key=True).get(pk=1)
    return head
