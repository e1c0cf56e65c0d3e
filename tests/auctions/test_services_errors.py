"""Bad input and wrong moments: each refused with a stable code, changing nothing (every
registry, auction and ledger table as before, and the ledger still verifies)."""

from __future__ import annotations

import base64
import datetime as dt
import os

import pytest
from django.utils import timezone

from auctions import services
from auctions.exceptions import AuctionErrorCode as Code
from auctions.exceptions import Conflict, InvalidInput, NotFound, PermissionDenied, Unprocessable
from auctions.models import Auction
from ledger import services as registry
from ledger.exceptions import CommonCode, ErrorCode
from ledger.models import Account, EscrowHold, EscrowHoldOwner
from tests import factories
from tests.auctions.conftest import OPERATOR, TONNE, run_to_settlement

NOW = timezone.now


@pytest.mark.parametrize(
    ("change", "cls", "code"),
    [
        ({"format": "english"}, InvalidInput, Code.INVALID_RULES),
        ({"quantity": 0}, InvalidInput, Code.INVALID_RULES),
        ({"quantity": -5}, InvalidInput, Code.INVALID_RULES),
        ({"quantity": 100_500}, InvalidInput, Code.INVALID_RULES),  # not whole lots of 1 t
        ({"quantity": True}, InvalidInput, Code.INVALID_RULES),
        ({"quantity": "100"}, InvalidInput, Code.INVALID_RULES),
        ({"lot_kg": 0}, InvalidInput, Code.INVALID_RULES),
        ({"format": "first_price"}, InvalidInput, Code.INVALID_RULES),  # lot != quantity
        ({"currency": "XAU"}, InvalidInput, Code.INVALID_RULES),
        ({"tick": 0}, InvalidInput, Code.INVALID_RULES),
        ({"tick": 1, "lot_kg": 500, "quantity": 1000}, InvalidInput, Code.INVALID_RULES),
        ({"reserve": 3050}, InvalidInput, Code.INVALID_RULES),  # off the 1.00 tick
        ({"reserve": -100}, InvalidInput, Code.INVALID_RULES),
        ({"cap_bp": 0}, InvalidInput, Code.INVALID_RULES),
        ({"cap_bp": 10_001}, InvalidInput, Code.INVALID_RULES),
        ({"cap_bp": 50, "quantity": 10 * TONNE}, InvalidInput, Code.INVALID_RULES),  # < 1 lot
        ({"deposit_required": -1}, InvalidInput, Code.INVALID_RULES),
        ({"tie_rule": "coin"}, InvalidInput, Code.INVALID_RULES),
        ({"undersubscribed": "shrug"}, InvalidInput, Code.INVALID_RULES),
        ({"bid_guarantee": "yes"}, InvalidInput, Code.INVALID_RULES),
        ({"title": " "}, InvalidInput, CommonCode.INVALID_FIELD),
        ({"closes_at": "soon"}, InvalidInput, Code.INVALID_TIME),
        ({"opens_at": dt.datetime(2030, 1, 1)}, InvalidInput, Code.INVALID_TIME),  # naive
        ({"account": 10**9}, NotFound, CommonCode.NOT_FOUND),
        ({"batch": 10**9}, NotFound, CommonCode.NOT_FOUND),
    ],
)
def test_bad_auction_rules_are_refused(market, refused, change, cls, code):
    with refused(cls, code):
        market.auction(schedule=False, **change)


def test_an_auction_must_close_after_it_opens_and_in_the_future(market, refused):
    now = NOW()
    with refused(InvalidInput, Code.INVALID_TIME):
        market.auction(schedule=False, opens_at=now, closes_at=now)
    with refused(InvalidInput, Code.INVALID_TIME):
        market.auction(
            schedule=False,
            opens_at=now - dt.timedelta(hours=2),
            closes_at=now - dt.timedelta(hours=1),
        )


def test_another_organizations_holding_or_a_buffer_pool_cannot_be_auctioned(market, refused):
    stranger = factories.organization()
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.auction_create(actor=factories.actor_for(stranger), **market.rules())
    buffer = Account.objects.get(organization=market.world.registry, kind="buffer")
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):  # even for an operator
        services.auction_create(actor=OPERATOR, **market.rules(account=buffer.pk))


def test_scheduling_needs_a_draft_and_the_credits(market, refused):
    a = market.auction(schedule=False, quantity=20_000 * TONNE)  # more than the seller holds
    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE):
        services.auction_schedule(actor=market.sell, auction=a.pk)
    b = market.auction()
    with refused(Conflict, Code.WRONG_STATE):
        services.auction_schedule(actor=market.sell, auction=b.pk)
    c = market.auction(schedule=False)
    stranger = factories.actor_for(factories.organization())
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.auction_schedule(actor=stranger, auction=c.pk)
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.auction_schedule(actor=market.sell, auction=10**9)


def test_bids_need_an_open_auction_an_approved_bidder_and_the_deposit(market, refused):
    m = market
    b1, b2, _ = m.bidders
    later = m.auction(opens_at=NOW() + dt.timedelta(hours=1), closes_in=7200)
    assert later.state == Auction.State.SCHEDULED
    with refused(Conflict, Code.NOT_OPEN):
        m.bid(later, b1, [(5000, 1)])

    a = m.auction(deposit_required=3_000_000)
    with refused(Conflict, Code.DEPOSIT_MISSING):
        m.bid(a, b1, [(5000, 1)])
    m.deposit(a, b1, 2_000_000)
    with refused(Conflict, Code.DEPOSIT_MISSING):  # 20,000.00 of 30,000.00
        m.bid(a, b1, [(5000, 1)])
    m.deposit(a, b1, 1_000_000)  # a top-up
    m.bid(a, b1, [(5000, 1)])

    outsider = factories.organization(factories.Role.BIDDER)
    factories.account(outsider)
    m.deposit(a, outsider, 3_000_000)
    with refused(PermissionDenied, Code.NOT_APPROVED):
        m.bid(a, outsider, [(5000, 1)])
    services.bidder_suspend(actor=OPERATOR, organization=b2.pk)
    m.deposit(a, b2, 3_000_000)
    with refused(PermissionDenied, Code.NOT_APPROVED):
        m.bid(a, b2, [(5000, 1)])
    with refused(Unprocessable, Code.OWN_AUCTION):
        m.bid(a, m.seller, [(5000, 1)])


def test_bids_are_amended_or_withdrawn_by_their_bidder_while_they_stand(market, refused):
    m = market
    b1, b2, _ = m.bidders
    a = m.auction()
    first = m.bid(a, b1, [(5000, 1)]).bid
    second = m.bid(a, b1, [(4900, 3)]).bid  # several bids: one demand schedule
    assert first.pk != second.pk
    sealed = m.seal(a, b1, [(5000, 2)])
    with refused(NotFound, CommonCode.NOT_FOUND):  # someone else's bid is as good as missing
        services.bid_amend(actor=m.actor(b2), auction=a.pk, bid=first.pk, ciphertext=sealed)
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.bid_withdraw(actor=m.actor(b1), auction=a.pk, bid=10**9)
    services.bid_amend(actor=m.actor(b1), auction=a.pk, bid=first.pk, ciphertext=sealed)
    with refused(Conflict, Code.DUPLICATE_CIPHERTEXT):  # the same bytes twice are one bid
        services.bid_submit(actor=m.actor(b1), auction=a.pk, ciphertext=sealed)
    with refused(Conflict, Code.DUPLICATE_CIPHERTEXT):
        services.bid_amend(actor=m.actor(b1), auction=a.pk, bid=second.pk, ciphertext=sealed)
    services.bid_withdraw(actor=m.actor(b1), auction=a.pk, bid=second.pk)
    with refused(Conflict, Code.BID_WITHDRAWN):
        services.bid_withdraw(actor=m.actor(b1), auction=a.pk, bid=second.pk)
    with refused(Conflict, Code.BID_WITHDRAWN):
        services.bid_amend(
            actor=m.actor(b1), auction=a.pk, bid=second.pk, ciphertext=m.seal(a, b1, [(1, 1)])
        )


def test_a_bidder_has_a_bounded_number_of_standing_bids(market, refused, settings):
    m = market
    b1 = m.bidders[0]
    a = m.auction()
    settings.AUCTION_MAX_BIDS_PER_BIDDER = 3
    for price in (5000, 4900, 4800):
        m.bid(a, b1, [(price, 1)])
    with refused(Conflict, Code.TOO_MANY_BIDS):
        m.bid(a, b1, [(4700, 1)])


@pytest.mark.parametrize(
    "ciphertext",
    [
        b"",
        b"x" * 48,  # no room for a plaintext
        os.urandom(5000),  # larger than any bid
        "not base64!",
        base64.b64encode(b"x" * 10).decode(),
        None,
    ],
    ids=["empty", "too-short", "too-long", "not-base64", "short-base64", "missing"],
)
def test_a_malformed_ciphertext_is_refused_at_intake(market, refused, ciphertext):
    a = market.auction()
    with refused(InvalidInput, Code.MALFORMED_CIPHERTEXT):
        services.bid_submit(
            actor=market.actor(market.bidders[0]), auction=a.pk, ciphertext=ciphertext
        )


def test_awards_go_to_the_bidders_own_holding_account(market, refused):
    a = market.auction()
    b1, b2, _ = market.bidders
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.bid_submit(
            actor=market.actor(b1),
            auction=a.pk,
            ciphertext=market.seal(a, b1, [(5000, 1)]),
            account=market.accounts[b2.pk].pk,
        )


def test_only_operators_record_deposits_before_the_close(market, refused):
    a = market.auction(closes_in=1)
    b1 = market.bidders[0]
    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        services.deposit_record(actor=market.sell, auction=a.pk, bidder=b1.pk, amount=100)
    with refused(InvalidInput, Code.INVALID_RULES):
        services.deposit_record(actor=OPERATOR, auction=a.pk, bidder=b1.pk, amount=0)
    run_to_settlement(a)
    with refused(Conflict, Code.WRONG_STATE):
        services.deposit_record(actor=OPERATOR, auction=a.pk, bidder=b1.pk, amount=100)


def test_a_lot_under_auction_moves_only_through_the_auction(market, refused):
    a = market.auction()
    assert EscrowHold.objects.get(pk=a.hold_id).owner == EscrowHoldOwner.AUCTION
    with refused(Conflict, ErrorCode.MANAGED_HOLD):
        registry.escrow_release(actor=market.sell, hold=a.hold_id, quantity=1)
    with refused(Conflict, ErrorCode.MANAGED_HOLD):
        registry.escrow_deliver(
            actor=OPERATOR,
            hold=a.hold_id,
            recipient=market.accounts[market.bidders[0].pk].pk,
            quantity=1,
        )
    with refused(Conflict, ErrorCode.MANAGED_HOLD):
        registry.escrow_hold(
            actor=market.sell,
            batch=market.batch.pk,
            account=market.seller_account.pk,
            quantity=1,
            reference=f"auction:{a.pk}",
        )


def test_a_seller_cancels_before_opening_an_operator_while_open(market, refused, verify_ledger):
    later = market.auction(opens_at=NOW() + dt.timedelta(hours=1), closes_in=7200)
    with refused(InvalidInput, CommonCode.INVALID_FIELD):
        services.auction_cancel(actor=market.sell, auction=later.pk, reason=" ")
    services.auction_cancel(actor=market.sell, auction=later.pk, reason="withdrawn")
    a = market.auction()
    market.deposit(a, market.bidders[0], 500)
    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        services.auction_cancel(actor=market.sell, auction=a.pk, reason="changed my mind")
    services.auction_cancel(actor=OPERATOR, auction=a.pk, reason="market halted")
    a.refresh_from_db()
    assert a.state == Auction.State.CANCELLED
    assert a.deposits.get().state == "released"
    assert a.hold.remaining == 0
    with refused(Conflict, Code.WRONG_STATE):
        services.auction_cancel(actor=OPERATOR, auction=a.pk, reason="again")
    verify_ledger()


def test_a_resolved_award_cannot_be_resolved_again(market, refused):
    a = market.auction(closes_in=1)
    market.bid(a, market.bidders[0], [(5000, 10)])
    run_to_settlement(a)
    award = a.awards.get()
    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        services.award_confirm_payment(actor=market.sell, award=award.pk)
    services.award_confirm_payment(actor=OPERATOR, award=award.pk)
    with refused(Conflict, Code.AWARD_RESOLVED):
        services.award_default(actor=OPERATOR, award=award.pk)
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.award_default(actor=OPERATOR, award=10**9)
