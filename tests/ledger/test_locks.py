"""No row lock a service takes blocks the lock a foreign key takes: inserting a row that points
at a locked one (an escrow hold at its batch, a holding at its account) goes through at once.

That lock is what PostgreSQL's foreign-key check runs for each inserted row,
``SELECT 1 FROM ONLY <table> x WHERE id = $1 FOR KEY SHARE OF x``; it comes at the insert,
wherever that falls in a write, so it has no place in ``locks.py``'s order and must never wait.
With ``FOR UPDATE`` on the batch it did, and a retirement (batch, then holding) and an escrow
hold (holding, then its row pointing at the batch) deadlocked."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import OperationalError, connection, transaction

from ledger import locks, services
from tests import factories


def foreign_key_check_waits(lock: Callable[[], object], table: str, pk: int) -> bool:
    """Whether another session's foreign-key check on ``table``'s row ``pk`` waits while this
    one holds ``lock()``."""
    other = connection.copy()
    try:
        with transaction.atomic():
            lock()
            with other.cursor() as c:
                c.execute("SET lock_timeout = '300ms'")
                try:
                    c.execute(
                        f"SELECT 1 FROM ONLY {table} x WHERE id = %s FOR KEY SHARE OF x", [pk]
                    )
                except OperationalError as exc:
                    assert getattr(exc.__cause__, "sqlstate", None) == "55P03"  # lock_timeout
                    return True
                assert c.fetchone() == (1,)  # the row is there: the check locked it
                return False
    finally:
        other.close()


@pytest.fixture
def pg(committed_db: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite runs one writer at a time")


def test_a_locked_batch_lets_rows_that_point_at_it_be_inserted(pg):
    b = factories.World().issue()
    assert not foreign_key_check_waits(lambda: locks.batch_lock(b.pk), "ledger_batch", b.pk)


def test_a_locked_project_lets_rows_that_point_at_it_be_inserted(pg):
    p = factories.World().project
    assert not foreign_key_check_waits(lambda: locks.project_lock(p.pk), "ledger_project", p.pk)


def test_a_locked_escrow_hold_lets_rows_that_point_at_it_be_inserted(pg):
    w = factories.World()
    b = w.issue()
    hold = services.escrow_hold(
        actor=w.dev, batch=b.pk, account=w.dev_account.pk, quantity=1000, reference="lot"
    )
    assert not foreign_key_check_waits(
        lambda: locks.escrow_hold_lock(hold.pk), "ledger_escrowhold", hold.pk
    )


def test_a_locked_holding_lets_rows_that_point_at_it_be_inserted(pg):
    w = factories.World()
    b = w.issue()
    pair = (w.dev_account.pk, b.pk)
    h = locks.holdings_lock([pair])[pair]
    assert not foreign_key_check_waits(lambda: locks.holdings_lock([pair]), "ledger_holding", h.pk)


def test_the_check_itself_waits_for_a_lock_that_conflicts(pg):
    # The probe can fail: FOR UPDATE, what the batch lock was, makes it wait.
    b = factories.World().issue()

    def for_update() -> None:
        with connection.cursor() as c:
            c.execute("SELECT 1 FROM ledger_batch WHERE id = %s FOR UPDATE", [b.pk])

    assert foreign_key_check_waits(for_update, "ledger_batch", b.pk)
