"""The Xiangshan lot by English auction, end to end with a real Celery worker process: bidders
outbid each other through the free phase into the timed phase, then bids race the end; nothing
in the test closes the auction. The worker's timer (one per auction, re-armed at each moved
end: ``pipeline.advance``) closes it at the end, and the pipeline clears and settles it. A bid
racing the end is counted (and in the result) or refused with ``auction_closed``, never both,
and the ledger verifies."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from auctions import english, selectors
from auctions.models import Auction, Award, Deposit, Raise
from ledger.core.entry import decode_entry
from ledger.exceptions import DomainError
from ledger.models import LedgerEntry
from tests.auctions.conftest import Market
from tests.auctions.test_worker_pipeline import entries_of, state_of, wait_until

pytestmark = pytest.mark.worker

LOT = 2_340_100  # kg: Xiangshan's 2,340.1 t
STEP = 100  # 1.00 CNY/t
# The close entry's time after the countdown's expiry: the timer fires at the end, then the
# close task runs (two broker hops). "About a second", with room for a loaded 2-core machine.
CLOSE_WITHIN_S = 1.5


def close_entry(auction_id: int):
    (entry,) = [
        e
        for e in (
            decode_entry(bytes(body))
            for body in LedgerEntry.objects.filter(type="auction.close").values_list(
                "body", flat=True
            )
        )
        if e.data["auction"] == auction_id
    ]
    return entry


def test_the_worker_ends_an_english_auction_that_bids_race_at_its_countdowns_expiry(
    worker, verify_ledger
):
    m = Market(bidders=8)
    now = timezone.now()
    a = m.auction(
        format="english",
        quantity=LOT,
        lot_kg=LOT,
        tick=100,
        reserve=3000,  # the start price: 30.00 CNY/t
        increments=[[0, STEP]],
        countdown_s=1,
        deposit_required=3_000_000,
        undersubscribed="cancel",
        opens_at=now - dt.timedelta(seconds=1),
        closes_in=1.5,
    )
    for org in m.bidders:
        m.deposit(a, org, 3_000_000)
    lock = threading.Lock()
    accepted: dict[int, tuple[int, int]] = {}  # bid id: (bidder, price)
    refused: list[tuple[int, str]] = []
    crashed: list[str] = []

    def attempt(org) -> str:
        """One bid at the lowest valid price as this bidder last saw it; what came of it."""
        standing = Auction.objects.filter(pk=a.pk).values_list("standing_price", flat=True)[0]
        price = 3000 if standing is None else standing + STEP
        try:
            r = english.english_bid(actor=m.actor(org), auction=a.pk, price=price)
        except DomainError as exc:
            with lock:
                refused.append((org.pk, str(exc.code)))
            return str(exc.code)
        with lock:
            accepted[r.pk] = (org.pk, price)
        return "accepted"

    def war(org, until: dt.datetime) -> None:
        # Bidding against each other as fast as they can, through the free phase and on
        # into the timed phase, where every accepted bid restarts the countdown.
        try:
            rng = random.Random(org.pk)
            while timezone.now() < until:
                attempt(org)
                time.sleep(rng.uniform(0, 0.03))
        except Exception as exc:  # a crash must fail the test, not vanish with its thread
            crashed.append(repr(exc))
        finally:
            connection.close()

    def racer(org, offset: float) -> None:
        # Waits for the end as it stands, then bids ``offset`` seconds from it: before it
        # (counted, and the end moves on) or after it (refused); at most three rounds.
        try:
            for _ in range(3):
                ends_at = Auction.objects.get(pk=a.pk).bidding_ends_at
                delay = (ends_at - timezone.now()).total_seconds() + offset
                time.sleep(max(delay, 0))
                if attempt(org) == "auction_closed":
                    return
        except Exception as exc:
            crashed.append(repr(exc))
        finally:
            connection.close()

    war_until = a.closes_at + dt.timedelta(seconds=1)
    threads = [threading.Thread(target=war, args=(b, war_until)) for b in m.bidders[:5]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    offsets = [-0.06, -0.02, 0.0, 0.02, 0.2]
    threads = [
        threading.Thread(target=racer, args=(b, offsets[i % len(offsets)]))
        for i, b in enumerate(m.bidders[3:])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # And one bid just after the end, before the worker's close can have run: refused.
    ends_at = Auction.objects.get(pk=a.pk).bidding_ends_at
    time.sleep(max(0.0, (ends_at - timezone.now()).total_seconds()) + 0.02)
    assert attempt(m.bidders[0]) == "auction_closed"
    assert crashed == []
    assert set(code for _, code in refused) <= {"auction_closed", "bid_too_low", "already_leading"}

    wait_until(lambda: state_of(a) == "settled", timeout=60, what="settlement")
    a.refresh_from_db()
    # The worker's timer closed it, once, and within about a second of the countdown's expiry.
    assert entries_of(a.pk, "auction.close") == 1
    assert entries_of(a.pk, "auction.clear") == entries_of(a.pk, "auction.settle") == 1
    close = close_entry(a.pk)
    late = (
        dt.datetime.fromisoformat(close.time.replace("Z", "+00:00")) - a.ends_at
    ).total_seconds()
    assert 0 <= late <= CLOSE_WITHIN_S, f"closed {late:.3f} s after the end"
    # Counted or refused, never both: the bids the service accepted are exactly the raises,
    # exactly the close's count and exactly the result's bids, all before the final end.
    raises = list(Raise.objects.filter(auction=a).order_by("entry_seq"))
    assert {r.pk for r in raises} == set(accepted)
    assert close.data["bids"] == len(accepted) and len(accepted) > 10
    result = selectors.auction_result(a)
    assert {row["bid"] for row in result["bids"]} == set(accepted)
    assert all(r.time < a.ends_at for r in raises)
    assert a.ends_at == raises[-1].time + dt.timedelta(seconds=1)
    # The standing price rose by the increment at every accepted bid; the last one won.
    prices = [r.price for r in raises]
    assert prices == [3000 + STEP * i for i in range(len(prices))]
    winner, price = accepted[raises[-1].pk]
    (award,) = Award.objects.filter(auction=a)
    assert (award.bidder_id, a.clearing_price) == (winner, price)
    assert award.amount_due == price * LOT // 1000
    states = dict(Deposit.objects.filter(auction=a).values_list("bidder_id", "state"))
    assert states == {org.pk: "held" if org.pk == winner else "released" for org in m.bidders}
    verify_ledger()
