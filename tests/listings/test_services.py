"""The listing services: list (lots into escrow), take (first come, whole lots), confirm
(delivery versus payment), default, withdraw, expire; each an entry, and the ledger verifies."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from bluecarbon.errors import CommonCode
from ledger import services as registry
from ledger.exceptions import ErrorCode
from ledger.models import EscrowHold, EscrowHoldOwner, LedgerEntry, Role
from listings import services
from listings.exceptions import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from listings.exceptions import ListingErrorCode as Code
from listings.models import Listing, Purchase
from tests import factories
from tests.listings.conftest import OPERATOR, TONNE

pytestmark = pytest.mark.django_db


def types_since(seq: int) -> list[str]:
    return list(
        LedgerEntry.objects.filter(seq__gte=seq).order_by("seq").values_list("type", flat=True)
    )


def test_listing_moves_the_lots_into_a_listing_hold_at_once(board, verify_ledger):
    before = LedgerEntry.objects.count()
    x = board.listing()
    assert types_since(before) == ["escrow.hold", "listing.create"]
    hold = EscrowHold.objects.get(pk=x.hold_id)
    assert hold.reference == f"listing:{x.pk}"
    assert hold.remaining == 10 * 100 * TONNE
    assert board.held(board.seller_account) == (9_000 * TONNE, 1_000 * TONNE)
    assert (x.state, x.remaining_lots, x.created_seq, x.state_seq) == (
        "open",
        10,
        before + 1,
        before + 1,
    )
    verify_ledger()


def test_a_take_is_a_pending_purchase_and_its_lots_stay_in_escrow(board, verify_ledger):
    x = board.listing()
    buyer = board.buyers[0]
    p = board.take(x, buyer, 3)
    x.refresh_from_db()
    assert (p.lots, p.quantity, p.amount_due, p.state) == (3, 300 * TONNE, 3_180_000, "pending")
    assert p.account_id == board.accounts[buyer.pk].pk
    assert x.remaining_lots == 7
    assert EscrowHold.objects.get(pk=x.hold_id).remaining == 1_000 * TONNE
    assert board.held(board.accounts[buyer.pk]) == (0, 0)
    verify_ledger()


def test_confirming_the_payment_delivers_from_escrow(board, verify_ledger):
    x = board.listing()
    buyer = board.buyers[0]
    p = board.take(x, buyer, 3)
    before = LedgerEntry.objects.count()
    p = services.purchase_confirm(actor=OPERATOR, purchase=p.pk)
    assert types_since(before) == ["escrow.deliver", "listing.purchase_confirm"]
    assert (p.state, p.resolved_seq) == ("delivered", before + 1)
    assert board.held(board.accounts[buyer.pk]) == (300 * TONNE, 0)
    assert EscrowHold.objects.get(pk=x.hold_id).remaining == 700 * TONNE
    verify_ledger()


def test_a_default_while_listed_returns_the_lots_to_the_listing(board, verify_ledger):
    x = board.listing()
    p = board.take(x, board.buyers[0], 10)
    before = LedgerEntry.objects.count()
    services.purchase_default(actor=OPERATOR, purchase=p.pk)
    assert types_since(before) == ["listing.purchase_default"]
    x.refresh_from_db()
    assert x.remaining_lots == 10
    board.take(x, board.buyers[1], 10)  # another buyer takes them
    verify_ledger()


def test_a_default_after_the_withdrawal_returns_the_lots_to_the_seller(board, verify_ledger):
    x = board.listing()
    p = board.take(x, board.buyers[0], 4)
    services.listing_withdraw(actor=board.sell, listing=x.pk)
    assert board.held(board.seller_account) == (9_600 * TONNE, 400 * TONNE)
    before = LedgerEntry.objects.count()
    services.purchase_default(actor=OPERATOR, purchase=p.pk, reason="no payment in 5 days")
    assert types_since(before) == ["escrow.release", "listing.purchase_default"]
    assert board.held(board.seller_account) == (10_000 * TONNE, 0)
    verify_ledger()


def test_withdrawing_releases_what_is_unsold_and_pending_purchases_stand(board, verify_ledger):
    x = board.listing()
    p = board.take(x, board.buyers[0], 2)
    before = LedgerEntry.objects.count()
    x = services.listing_withdraw(actor=board.sell, listing=x.pk, reason="sold elsewhere")
    assert types_since(before) == ["escrow.release", "listing.withdraw"]
    assert (x.state, x.remaining_lots) == ("withdrawn", 0)
    assert board.held(board.seller_account) == (9_800 * TONNE, 200 * TONNE)
    services.purchase_confirm(actor=OPERATOR, purchase=p.pk)
    assert board.held(board.accounts[board.buyers[0].pk]) == (200 * TONNE, 0)
    assert EscrowHold.objects.get(pk=x.hold_id).remaining == 0
    verify_ledger()


def test_a_sold_out_listing_withdrawn_moves_nothing(board, verify_ledger):
    x = board.listing(lots=2)
    board.take(x, board.buyers[0], 2)
    before = LedgerEntry.objects.count()
    services.listing_withdraw(actor=board.sell, listing=x.pk)
    assert types_since(before) == ["listing.withdraw"]
    verify_ledger()


def test_the_listing_expires_at_its_closing_time_once(board, clock, verify_ledger):
    x = board.listing()
    board.take(x, board.buyers[0], 1)
    assert services.listing_expire(listing=x.pk) is False  # not due
    assert services.listings_due() == []
    clock(dt.timedelta(hours=1))
    assert services.listings_due() == [x.pk]
    before = LedgerEntry.objects.count()
    assert services.listing_expire(listing=x.pk) is True
    assert services.listing_expire(listing=x.pk) is False  # run twice: nothing more
    assert types_since(before) == ["escrow.release", "listing.expire"]
    x.refresh_from_db()
    assert (x.state, x.remaining_lots) == ("closed", 0)
    assert board.held(board.seller_account) == (9_900 * TONNE, 100 * TONNE)
    verify_ledger()


def test_up_to_takes_what_remains_and_a_plain_take_is_all_or_nothing(board, refused):
    x = board.listing(lots=5)
    board.take(x, board.buyers[0], 3)
    with refused(Conflict, Code.INSUFFICIENT_LOTS) as err:
        board.take(x, board.buyers[1], 3)
    assert err.value.detail["remaining_lots"] == 2
    p = board.take(x, board.buyers[1], 3, up_to=True)
    assert p.lots == 2
    with refused(Conflict, Code.INSUFFICIENT_LOTS):
        board.take(x, board.buyers[2], 1, up_to=True)  # sold out


def test_the_per_buyer_cap_counts_pending_and_delivered_lots(board, refused):
    x = board.listing(max_lots_per_buyer=4)
    buyer = board.buyers[0]
    p = board.take(x, buyer, 3)
    services.purchase_confirm(actor=OPERATOR, purchase=p.pk)
    with refused(Conflict, Code.BUYER_CAP):
        board.take(x, buyer, 2)
    assert board.take(x, buyer, 5, up_to=True).lots == 1
    with refused(Conflict, Code.BUYER_CAP):
        board.take(x, buyer, 1, up_to=True)
    assert board.take(x, board.buyers[1], 4).lots == 4


def test_the_minimum_take_holds_but_for_the_last_lots(board, refused):
    x = board.listing(lots=5, min_lots=2)
    with refused(Unprocessable, Code.BELOW_MINIMUM):
        board.take(x, board.buyers[0], 1)
    board.take(x, board.buyers[0], 4)
    assert board.take(x, board.buyers[1], 1).lots == 1  # the last lot


@pytest.mark.parametrize(
    ("terms", "code", "detail"),
    [
        ({"lots": 0}, Code.INVALID_TERMS, "quantity"),
        ({"lot_kg": 0}, Code.INVALID_TERMS, "lot_size"),
        ({"price": 0}, Code.INVALID_TERMS, "price"),
        ({"lot_kg": 1, "price": 10601}, Code.INVALID_TERMS, "inexact_price"),
        ({"currency": "XXX"}, Code.INVALID_TERMS, "currency"),
        ({"min_lots": 11}, Code.INVALID_TERMS, "min_lots"),
        ({"min_lots": 3, "max_lots_per_buyer": 2}, Code.INVALID_TERMS, "max_lots_per_buyer"),
        ({"lots": True}, Code.INVALID_TERMS, "quantity"),
    ],
)
def test_bad_terms_are_refused_with_a_stable_code(board, refused, terms, code, detail):
    with refused(InvalidInput, code) as err:
        board.listing(**terms)
    assert detail in err.value.detail


def test_bad_times_are_refused(board, refused):
    now = dt.datetime.now(dt.UTC)
    with refused(InvalidInput, Code.INVALID_TIME):
        board.listing(opens_at=now, closes_at=now)
    with refused(InvalidInput, Code.INVALID_TIME):
        board.listing(opens_at=now - dt.timedelta(hours=2), closes_at=now - dt.timedelta(hours=1))
    with refused(InvalidInput, Code.INVALID_TIME):
        board.listing(closes_at=dt.datetime(2100, 1, 1))  # no time zone


def test_listing_more_than_is_held_or_from_another_account_is_refused(board, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE):
        board.listing(lots=101)
    stranger = board.buyers[0]
    with refused(NotFound, CommonCode.NOT_FOUND):
        board.listing(actor=board.actor(stranger))
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):
        board.listing(actor=OPERATOR, account=board.world.buffer.pk)


def test_takes_outside_the_window_or_by_the_seller_are_refused(board, clock, refused):
    now = dt.datetime.now(dt.UTC)
    later = board.listing(opens_at=now + dt.timedelta(minutes=5))
    with refused(Conflict, Code.NOT_OPEN):
        board.take(later, board.buyers[0], 1)
    x = board.listing()
    with refused(Unprocessable, Code.OWN_LISTING):
        services.listing_take(actor=board.sell, listing=x.pk, lots=1)
    with refused(NotFound, CommonCode.NOT_FOUND):
        board.take(x, board.buyers[0], 1, account=board.seller_account.pk)
    developer = factories.organization(Role.DEVELOPER)
    factories.account(developer)
    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        board.take(x, developer, 1)
    with refused(InvalidInput, CommonCode.INVALID_FIELD):
        board.take(x, board.buyers[0], 0)
    clock(dt.timedelta(hours=1))
    with refused(Conflict, Code.CLOSED):
        board.take(x, board.buyers[0], 1)  # past the closing time, not expired yet


def test_a_withdrawn_listing_takes_nothing_and_is_not_withdrawn_twice(board, refused):
    x = board.listing()
    services.listing_withdraw(actor=board.sell, listing=x.pk)
    with refused(Conflict, Code.CLOSED):
        board.take(x, board.buyers[0], 1)
    with refused(Conflict, Code.WRONG_STATE):
        services.listing_withdraw(actor=board.sell, listing=x.pk)
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.listing_withdraw(actor=board.actor(board.buyers[0]), listing=x.pk)


def test_only_operators_settle_and_each_purchase_once(board, refused):
    x = board.listing()
    p = board.take(x, board.buyers[0], 1)
    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        services.purchase_confirm(actor=board.actor(board.buyers[0]), purchase=p.pk)
    services.purchase_confirm(actor=OPERATOR, purchase=p.pk)
    with refused(Conflict, Code.PURCHASE_RESOLVED):
        services.purchase_default(actor=OPERATOR, purchase=p.pk)
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.purchase_confirm(actor=OPERATOR, purchase=10**9)


def test_a_listings_hold_moves_only_through_the_listing(board, refused):
    x = board.listing()
    assert EscrowHold.objects.get(pk=x.hold_id).owner == EscrowHoldOwner.LISTING
    with refused(Conflict, ErrorCode.MANAGED_HOLD):
        registry.escrow_release(actor=board.sell, hold=x.hold_id, quantity=TONNE)
    with refused(Conflict, ErrorCode.MANAGED_HOLD):
        registry.escrow_hold(
            actor=board.sell,
            batch=board.batch.pk,
            account=board.seller_account.pk,
            quantity=TONNE,
            reference="listing:999",
        )


def test_the_database_refuses_an_oversold_listing(board):
    x = board.listing()
    from django.db import IntegrityError

    with pytest.raises(IntegrityError), transaction.atomic():
        Listing.objects.filter(pk=x.pk).update(remaining_lots=11)
    with pytest.raises(IntegrityError), transaction.atomic():
        Listing.objects.filter(pk=x.pk).update(remaining_lots=-1)
    assert Purchase.objects.count() == 0
