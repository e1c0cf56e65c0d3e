"""Ascending clock auctions: rounds at rising prices, committed demands that may not rise,
intra-round exit prices, the aggregate published each round, the final allocation by exit
prices and the tie rule, settlement through the sealed formats' steps, and a verifier that
re-runs every round from the opened bids."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from auctions import clock, services
from auctions.core import clock as clock_core
from auctions.exceptions import Conflict, Unprocessable
from auctions.models import Auction, Award, ClockBid, ClockRound
from ledger.core.entry import decode_entry
from ledger.models import LedgerEntry
from tests.auctions.conftest import TONNE

pytestmark = pytest.mark.usefixtures("verifier_path")


def clock_auction(m, *, first_round_s: float = 0.6, round_s: int = 1, **rules) -> Auction:
    fields = dict(
        format="clock",
        quantity=100 * TONNE,
        lot_kg=TONNE,
        tick=100,
        reserve=3000,
        increments=[[0, 500]],
        round_s=round_s,
        deposit_required=0,
        closes_in=first_round_s,
    )
    fields.update(rules)
    return m.auction(**fields)


def bid(m, a, org, lots, exit_price=None):
    return clock.clock_bid(actor=m.actor(org), auction=a.pk, lots=lots, exit_price=exit_price)


def end_round(a: Auction) -> bool:
    a.refresh_from_db()
    delay = (a.bidding_ends_at - timezone.now()).total_seconds()
    if delay > 0:
        time.sleep(delay + 0.01)
    return services.auction_close(auction=a.pk)


def finish(a: Auction) -> Auction:
    assert services.auction_clear(auction=a.pk)
    a.refresh_from_db()
    if a.state == Auction.State.CLEARED:
        assert services.auction_settle(auction=a.pk)
        a.refresh_from_db()
    return a


def test_rounds_rise_until_demand_fits_and_the_last_reducer_gets_the_excess(market, verify_ledger):
    m = market
    a = clock_auction(m)
    b1, b2, b3 = m.bidders
    r1 = ClockRound.objects.get(auction=a, number=1)
    assert (r1.price, r1.closes_at) == (3000, a.closes_at)
    bid(m, a, b1, 60)
    bid(m, a, b2, 50)
    bid(m, a, b3, 30)
    assert not end_round(a)  # 140 lots > 100: round 2 at 35.00
    r1.refresh_from_db()
    assert (r1.aggregate, r1.active, r1.final) == (140, 3, False)
    r2 = ClockRound.objects.get(auction=a, number=2)
    assert r2.price == 3500
    verify_ledger()  # mid-auction: the demands are commitments, checked at the end
    bid(m, a, b1, 40)  # drops 20 at the round price
    bid(m, a, b2, 20, exit_price=3300)  # drops 30 from 33.00 on
    bid(m, a, b3, 30)
    assert end_round(a)  # 90 <= 100: the final round, the auction closes
    a = finish(a)
    assert a.state == Auction.State.SETTLED
    # D(33.00) = 60 + 20 + 30 = 110 > 100; D(35.00) = 90: the clearing price is 35.00. The
    # 10 lots left go to b1, whose reduction was at 35.00 (b2's was at 33.00, below it).
    assert a.clearing_price == 3500
    awards = {w.bidder_id: w.lots for w in Award.objects.filter(auction=a)}
    assert awards == {b1.pk: 50, b2.pk: 20, b3.pk: 30}
    assert Award.objects.get(auction=a, bidder=b1).amount_due == 50 * 3500
    verify_ledger()


def test_the_activity_rule_and_exit_prices(market, refused):
    m = market
    a = clock_auction(m, first_round_s=30, cap_bp=5000)
    b1, _b2, _ = m.bidders
    with refused(Unprocessable, "round_bid_refused") as err:
        bid(m, a, b1, 51)  # the cap: 50 % of 100 lots
    assert err.value.detail["rule"] == "above_eligibility"
    with refused(Unprocessable, "round_bid_refused") as err:
        bid(m, a, b1, 10, exit_price=3000)  # no exit price in round 1
    assert err.value.detail["rule"] == "invalid_exit_price"
    first = bid(m, a, b1, 50)
    again = bid(m, a, b1, 45)  # a new version replaces it within the round
    assert (again.pk, again.version, again.lots) == (first.pk, 2, 45)
    assert ClockBid.objects.filter(auction=a).count() == 1


def test_activity_rule_refusals_in_a_later_round(market, refused):
    m = market
    a = clock_auction(m, first_round_s=0.5, round_s=60)
    b1, b2, b3 = m.bidders
    bid(m, a, b1, 60)
    bid(m, a, b2, 60)
    assert not end_round(a)
    for lots, exit_price, rule in [
        (61, None, "activity_rule"),
        (50, 3000, "invalid_exit_price"),  # not above the previous round's price
        (50, 3500, "invalid_exit_price"),  # not below this round's
        (50, 3250, "invalid_exit_price"),  # off the tick
        (60, 3200, "exit_without_reduction"),
    ]:
        with refused(Unprocessable, "round_bid_refused") as err:
            bid(m, a, b1, lots, exit_price)
        assert err.value.detail["rule"] == rule, (lots, exit_price)
    with refused(Unprocessable, "round_bid_refused") as err:
        bid(m, a, b3, 1)  # no demand in round 1: it cannot come in later
    assert err.value.detail["rule"] == "activity_rule"
    with refused(Conflict, "wrong_format"):
        services.bid_submit(actor=m.actor(b1), auction=a.pk, ciphertext=b"x" * 100)


def test_demands_stay_hidden_until_the_end_then_every_round_is_rechecked(market, verify_ledger):
    m = market
    a = clock_auction(m)
    b1, b2, _ = m.bidders
    bid(m, a, b1, 70)
    bid(m, a, b2, 70)
    for e in LedgerEntry.objects.filter(type="clock.bid"):
        data = decode_entry(bytes(e.body)).data
        assert "lots" not in data and len(data["commitment"]) == 64
    assert not end_round(a)
    close = LedgerEntry.objects.filter(type="clock.round_close").get()
    assert decode_entry(bytes(close.body)).data == {
        "active": 2,
        "aggregate": 140,
        "auction": a.pk,
        "final": False,
        "round": 1,
    }
    bid(m, a, b1, 50)
    bid(m, a, b2, 50)
    assert end_round(a)
    a = finish(a)
    reveal = decode_entry(bytes(LedgerEntry.objects.get(seq=a.revealed_seq).body)).data
    assert sorted(b["lots"] for b in reveal["clock_bids"]) == [50, 50, 70, 70]
    verify_ledger()


def test_an_insider_changing_a_round_bid_or_a_published_aggregate_is_caught(market, verify_ledger):
    from tests.auctions.test_verify_auctions import verify_fails

    m = market
    a = clock_auction(m)
    b1, b2, _ = m.bidders
    bid(m, a, b1, 70)
    bid(m, a, b2, 70)
    assert not end_round(a)
    bid(m, a, b1, 50)
    bid(m, a, b2, 50)
    assert end_round(a)
    finish(a)
    verify_ledger()
    one = ClockBid.objects.filter(auction=a).order_by("pk").first()
    ClockBid.objects.filter(pk=one.pk).update(lots=one.lots - 1)
    verify_fails(verify_ledger, f"clock bid {one.pk}", "lots")
    ClockBid.objects.filter(pk=one.pk).update(lots=one.lots)
    ClockRound.objects.filter(auction=a, number=1).update(aggregate=139)
    verify_fails(verify_ledger, "clock round", "aggregate")


def test_undersubscribed_in_round_one_follows_the_rules(market, verify_ledger):
    m = market
    a = clock_auction(m, first_round_s=0.3, undersubscribed="cancel")
    bid(m, a, m.bidders[0], 10)
    assert end_round(a)
    assert finish(a).state == Auction.State.CANCELLED
    b = clock_auction(m, first_round_s=0.3, undersubscribed="settle")
    bid(m, b, m.bidders[0], 10)
    assert end_round(b)
    b = finish(b)
    assert b.state == Auction.State.SETTLED and b.clearing_price == 3000
    assert Award.objects.get(auction=b).lots == 10
    verify_ledger()


def test_the_pure_clearing_price_is_the_lowest_that_fits():
    rules = clock_core.rules_of(
        {
            "format": "clock",
            "tick": 100,
            "lot_kg": 1000,
            "quantity": 100_000,
            "reserve": 3000,
            "increments": [[0, 500]],
            "round_s": 60,
            "cap_bp": None,
            "tie_rule": "pro_rata",
            "undersubscribed": "settle",
            "bid_guarantee": False,
        }
    )
    final = [
        clock_core.Demand(bidder=1, account=1, previous=60, lots=40, exit_price=3200),
        clock_core.Demand(bidder=2, account=2, previous=60, lots=50, exit_price=3400),
    ]
    # D(32.00) = 40 + 60 = 100 fits: the price is 32.00, no excess.
    assert clock_core.clearing_price(rules, 3500, 3000, final) == 3200
    assert rules.next_price(3000) == 3500


def test_a_round_bid_changed_before_the_end_is_caught_by_its_commitment(market, verify_ledger):
    """Before the reveal the ledger has only each round bid's commitment: the row's lots, exit
    price and salt must still open it."""
    from tests.auctions.test_verify_auctions import verify_fails

    m = market
    a = clock_auction(m, first_round_s=60)
    b = bid(m, a, m.bidders[0], 40)
    verify_ledger()
    ClockBid.objects.filter(pk=b.pk).update(lots=45)
    verify_fails(verify_ledger, f"clock bid {b.pk}", "commitment")


def test_an_insider_who_ends_a_round_early_in_the_database_is_caught(market, verify_ledger):
    """A superuser moves a round's end forward (to shut out a bidder who has not bid yet): the
    worker closes the round at once, and its close entry's time is before the round's end,
    which the ledger fixed when the round opened."""
    from tests.auctions.test_verify_auctions import verify_fails

    m = market
    a = clock_auction(m, first_round_s=30)
    b1, b2, _ = m.bidders
    bid(m, a, b1, 60)
    bid(m, a, b2, 50)
    early = timezone.now() - dt.timedelta(seconds=1)
    Auction.objects.filter(pk=a.pk).update(closes_at=early, ends_at=early)
    ClockRound.objects.filter(auction=a, number=1).update(closes_at=early)
    assert not services.auction_close(auction=a.pk)  # round 2 opens
    assert ClockRound.objects.filter(auction=a, number=2).exists()
    # The tables put back as the ledger has them: the close entry's own time gives it away.
    ClockRound.objects.filter(auction=a, number=1).update(closes_at=a.closes_at)
    verify_fails(verify_ledger, f"auction {a.pk}", "before its end")
