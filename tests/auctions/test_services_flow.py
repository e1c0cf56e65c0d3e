"""An auction from draft to delivered credits, through the services, checked against the
ledger's own replay after every stage."""

from __future__ import annotations

import pytest

from auctions import services
from auctions.models import Auction, Award, Bid, Deposit
from ledger.models import EscrowHold, Holding
from tests.auctions.conftest import OPERATOR, TONNE, run_to_settlement

# Both verifiers (serial, and on PostgreSQL the parallel one) must recompute every auction.
pytestmark = pytest.mark.usefixtures("verifier_path")


def tradable(account, batch) -> int:
    h = Holding.objects.filter(account=account, batch=batch).first()
    return h.tradable if h else 0


def test_a_uniform_price_auction_clears_settles_and_delivers(market, verify_ledger):
    a = market.auction(quantity=100 * TONNE, reserve=3000, closes_in=1.5)
    assert a.state == Auction.State.OPEN
    assert tradable(market.seller_account, market.batch) == 9_900 * TONNE
    assert EscrowHold.objects.get(pk=a.hold_id).remaining == 100 * TONNE
    b1, b2, b3 = market.bidders
    # 60 lots at 110.00, 30 more at 100.00; 50 at 105.00; 40 at 100.00 (tie at 100.00).
    market.bid(a, b1, [(11000, 60), (10000, 30)])
    market.bid(a, b2, [(10500, 50)])
    market.bid(a, b3, [(10000, 40)])
    verify_ledger()

    a = run_to_settlement(a)
    assert a.state == Auction.State.SETTLED
    # Demand at 105.00 is 110 lots >= 100: the clearing price is 105.00. b1 gets 60 (above),
    # b2's 50 at 105.00 share the remaining 40.
    assert a.clearing_price == 10500
    awards = {w.bidder_id: w for w in Award.objects.filter(auction=a)}
    assert {k: w.lots for k, w in awards.items()} == {b1.pk: 60, b2.pk: 40}
    assert awards[b1.pk].amount_due == 60 * 10500  # 60 t at 105.00 CNY/t, in fen
    assert Bid.objects.get(bidder=b3).awarded_lots == 0
    assert a.private_key is not None and a.result_sha256
    verify_ledger()

    services.award_confirm_payment(actor=OPERATOR, award=awards[b1.pk].pk)
    services.award_default(actor=OPERATOR, award=awards[b2.pk].pk)
    assert tradable(market.accounts[b1.pk], market.batch) == 60 * TONNE
    assert tradable(market.seller_account, market.batch) == 9_940 * TONNE
    assert EscrowHold.objects.get(pk=a.hold_id).remaining == 0
    verify_ledger()


def test_deposits_are_released_applied_and_forfeited(market, verify_ledger):
    a = market.auction(deposit_required=3_000_000, closes_in=1.5)
    b1, b2, b3 = market.bidders
    for b in market.bidders:
        market.deposit(a, b, 3_000_000)
    market.bid(a, b1, [(11000, 50)])
    market.bid(a, b2, [(10500, 50)])
    market.bid(a, b3, [(3000, 10)])
    a = run_to_settlement(a)
    states = dict(Deposit.objects.filter(auction=a).values_list("bidder_id", "state"))
    assert states == {b1.pk: "held", b2.pk: "held", b3.pk: "released"}
    w1, w2 = Award.objects.filter(auction=a).order_by("bidder_id")
    services.award_confirm_payment(actor=OPERATOR, award=w1.pk)
    services.award_default(actor=OPERATOR, award=w2.pk)
    states = dict(Deposit.objects.filter(auction=a).values_list("bidder_id", "state"))
    assert states == {b1.pk: "applied", b2.pk: "forfeited", b3.pk: "released"}
    verify_ledger()
