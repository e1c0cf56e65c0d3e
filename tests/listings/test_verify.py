"""ledger_verify and the standalone verifier (``bluecarbon-audit verify``) replay the listing
board: a ledger with listings verifies with both; a changed row, a take the rules refuse
written by an insider with every key, and an escrow movement outside the listing are named."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from bluecarbon_audit.policy import Policy
from bluecarbon_audit.sources import open_source
from bluecarbon_audit.verify import Report, VerifyOptions, verify
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from ledger import services as registry
from ledger.models import LedgerEntry
from ledger.signing import trusted_verifiers
from listings import services
from listings.models import Listing, Purchase
from tests.listings.conftest import OPERATOR, TONNE

pytestmark = pytest.mark.django_db


def verify_fails(verify_ledger, *words: str) -> str:
    with pytest.raises(AssertionError) as failure:
        verify_ledger()
    message = str(failure.value)
    for word in words:
        assert word in message, message
    return message


def audit(tmp_path: Path) -> Report:
    registry.ledger_checkpoint_issue()
    call_command("ledger_export_tiles", str(tmp_path / "log"), stdout=io.StringIO())
    policy = Policy.from_flags([v.to_string() for v in trusted_verifiers()], [], None)
    return verify(open_source(str(tmp_path / "log")), VerifyOptions(policy=policy, workers=0))


def trade(board, clock) -> tuple[Listing, Listing]:
    """Two listings through every step: takes, a confirmation, defaults both ways, a
    withdrawal, an expiry."""
    a = board.listing(max_lots_per_buyer=6, min_lots=2)
    b = board.listing(lots=4, closes_at=timezone.now() + dt.timedelta(minutes=10))
    one, two, three = board.buyers
    p1 = board.take(a, one, 3)
    p2 = board.take(a, two, 6, up_to=True)
    services.purchase_confirm(actor=OPERATOR, purchase=p1.pk)
    services.purchase_default(actor=OPERATOR, purchase=p2.pk)
    board.take(a, three, 2)
    p4 = board.take(b, one, 1)
    services.listing_withdraw(actor=board.sell, listing=a.pk)
    clock(dt.timedelta(minutes=10))
    assert services.listing_expire(listing=b.pk)
    services.purchase_default(actor=OPERATOR, purchase=p4.pk)
    return a, b


def test_listings_verify_with_ledger_verify_and_the_standalone_verifier(
    board, clock, verify_ledger, tmp_path
):
    trade(board, clock)
    out = verify_ledger()
    assert "OK" in out or "ok" in out.lower()
    report = audit(tmp_path)
    assert report.ok, report.failure
    assert report.listings == {
        "listings": 2,
        "by_state": {"closed": 1, "withdrawn": 1},
        "purchases": 4,
    }


def test_a_take_of_more_than_remained_signed_by_an_insider_is_named_by_both(
    board, verify_ledger, tmp_path
):
    x = board.listing(lots=2)
    board.take(x, board.buyers[0], 2)
    buyer = board.buyers[1]
    # What an operator holding every key could append: a take the service would refuse,
    # with its rows to match.
    with transaction.atomic():
        p = Purchase.objects.create(
            listing=x,
            buyer=buyer,
            account=board.accounts[buyer.pk],
            lots=1,
            quantity=100 * TONNE,
            amount_due=1_060_000,
            entry_seq=-1,
        )
        entry = registry.ledger_append(
            type="listing.take",
            actor=OPERATOR,
            data={
                "listing": x.pk,
                "purchase": p.pk,
                "buyer": buyer.pk,
                "account": board.accounts[buyer.pk].pk,
                "lots": 1,
                "amount_due": 1_060_000,
            },
        )
        Purchase.objects.filter(pk=p.pk).update(entry_seq=entry.seq)
    verify_fails(verify_ledger, f"entry {entry.seq}", "no lots remain")
    report = audit(tmp_path)
    assert report.failure is not None
    assert report.failure.seq == entry.seq
    assert "no lots remain" in str(report.failure)


def test_escrow_moved_outside_the_listing_fails(board, verify_ledger):
    x = board.listing()
    # Code that bypassed the listing (the managed flag is the listing services' own).
    entry = registry.escrow_release(actor=OPERATOR, hold=x.hold_id, quantity=TONNE, managed=True)
    verify_fails(verify_ledger, f"entry {entry.seq}", "outside the listing")


def test_a_listings_hold_given_to_another_owner_in_the_table_is_caught(
    board, verify_ledger, escrow_owner_check_dropped
):
    x = board.listing()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_escrowhold SET owner = 'auction' WHERE id = %s", [x.hold_id])
    verify_fails(verify_ledger, f"escrow hold {x.hold_id} differs from the ledger", "owner")


def test_a_purchase_row_changed_in_the_database_is_caught(board, verify_ledger):
    x = board.listing()
    p = board.take(x, board.buyers[0], 2)
    Purchase.objects.filter(pk=p.pk).update(lots=1, quantity=100 * TONNE)
    verify_fails(verify_ledger, f"purchase {p.pk} differs from the ledger", "lots")


def test_a_listings_remaining_lots_changed_in_the_database_are_caught(board, verify_ledger):
    x = board.listing()
    board.take(x, board.buyers[0], 2)
    Listing.objects.filter(pk=x.pk).update(remaining_lots=10)
    verify_fails(verify_ledger, f"listing {x.pk} differs from the ledger", "remaining_lots")


def test_a_state_saved_mid_listing_continues(board, tmp_path):
    from bluecarbon_audit.listings import ListingState

    x = board.listing()
    board.take(x, board.buyers[0], 2)
    registry.ledger_checkpoint_issue()
    call_command("ledger_export_tiles", str(tmp_path / "log"), stdout=io.StringIO())
    state = tmp_path / "state.json"
    policy = Policy.from_flags([v.to_string() for v in trusted_verifiers()], [], None)
    options = VerifyOptions(policy=policy, workers=0, state_path=state)
    assert verify(open_source(str(tmp_path / "log")), options).ok
    services.listing_withdraw(actor=board.sell, listing=x.pk)
    registry.ledger_checkpoint_issue()
    call_command("ledger_export_tiles", str(tmp_path / "log"), stdout=io.StringIO())
    report = verify(open_source(str(tmp_path / "log")), options)
    assert report.ok, report.failure
    assert report.start > 0 and report.listings["by_state"] == {"withdrawn": 1}
    assert ListingState.from_json(None).listings == {}
    assert LedgerEntry.objects.filter(type="listing.withdraw").count() == 1
