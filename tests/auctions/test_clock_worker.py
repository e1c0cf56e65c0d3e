"""A clock auction end to end with a real Celery worker process: the test only bids and waits.
Each round's end is the worker's own timer (the ETA task ``clock.open_round`` arms for its round,
``pipeline.advance``), which closes the round, publishes its aggregate and opens the next at
once; after the final round the pipeline closes, clears and settles the auction. Every round's
close entry comes within a couple of seconds of the round's end, and the ledger verifies."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from auctions import clock
from auctions.models import Auction, Award, ClockRound, Deposit
from ledger.core.entry import decode_entry
from ledger.models import LedgerEntry
from tests.auctions.conftest import TONNE, Market
from tests.auctions.test_worker_pipeline import entries_of, state_of, wait_until

pytestmark = pytest.mark.worker

ROUND_S = 2
# A round's close entry after its end: the timer fires at the end, then the close task runs
# (two broker hops) and the next round opens in the same transaction. "About a second", with
# room for a loaded 2-core machine.
CLOSE_WITHIN_S = 2.0
DEPOSIT = 1_000_00

# Each bidder's demand (lots, exit price) by round; a bidder with no entry for a round does not
# bid in it (and demands nothing from then on). 100 lots: 180, 130, 110 lots demanded in
# rounds 1-3 (30.00, 35.00, 40.00), then 95 at 45.00, the final round. In it the demand is 110
# up to 42.00, where B's exit price brings it to 100: the clearing price.
DEMANDS: list[dict[int, tuple[int, int | None]]] = [
    {0: (40, None), 1: (40, None), 2: (40, None), 3: (40, None), 4: (20, None)},
    {0: (35, None), 1: (35, None), 2: (30, None), 3: (30, None)},
    {0: (30, None), 1: (30, None), 2: (25, None), 3: (25, None)},
    {0: (30, None), 1: (20, 4200), 2: (20, None), 3: (25, None)},
]
AWARDS = {0: 30, 1: 20, 2: 25, 3: 25}  # C dropped at 45.00, above the clearing price


def entries(auction_id: int, type: str) -> dict[int, dt.datetime]:
    """This auction's entries of ``type``, by round: their times."""
    out = {}
    for body in LedgerEntry.objects.filter(type=type).values_list("body", flat=True):
        e = decode_entry(bytes(body))
        if e.data["auction"] == auction_id:
            out[e.data["round"]] = dt.datetime.fromisoformat(e.time.replace("Z", "+00:00"))
    return out


def test_the_workers_timers_run_every_round_of_a_clock_auction_to_settlement(worker, verify_ledger):
    m = Market(bidders=5)
    a = m.auction(
        format="clock",
        quantity=100 * TONNE,
        lot_kg=TONNE,
        tick=100,
        reserve=3000,
        increments=[[0, 500]],
        round_s=ROUND_S,
        deposit_required=DEPOSIT,
        undersubscribed="cancel",
        closes_in=2.5,
    )
    for org in m.bidders:
        m.deposit(a, org, DEPOSIT)
    for number, demands in enumerate(DEMANDS, start=1):
        # The round opens when the worker closed the one before: nothing here moves it.
        wait_until(
            lambda n=number: ClockRound.objects.filter(auction=a, number=n).exists(),
            timeout=30,
            what=f"round {number}",
        )
        r = ClockRound.objects.get(auction=a, number=number)
        assert r.price == 3000 + 500 * (number - 1)
        for who, (lots, exit_price) in demands.items():
            clock.clock_bid(
                actor=m.actor(m.bidders[who]), auction=a.pk, lots=lots, exit_price=exit_price
            )
        assert timezone.now() < r.closes_at, "the bids came too late for the test's round"
        if number < len(DEMANDS):
            time.sleep(max(0.0, (r.closes_at - timezone.now()).total_seconds()))

    wait_until(lambda: state_of(a) == "settled", timeout=60, what="settlement")
    a.refresh_from_db()
    rounds = list(ClockRound.objects.filter(auction=a).order_by("number"))
    assert [(r.aggregate, r.final) for r in rounds] == [
        (180, False),
        (130, False),
        (110, False),
        (95, True),
    ]
    closes, opens = entries(a.pk, "clock.round_close"), entries(a.pk, "clock.round_open")
    assert sorted(closes) == sorted(opens) == [1, 2, 3, 4]
    for r in rounds:
        # Each round closed once, by the worker's timer, within a couple of seconds of its end;
        # the next opened in the same step, lasting round_s from then.
        late = (closes[r.number] - r.closes_at).total_seconds()
        assert 0 <= late <= CLOSE_WITHIN_S, f"round {r.number} closed {late:.3f} s late"
        if r.number < len(rounds):
            assert opens[r.number + 1] == closes[r.number]
            nxt = rounds[r.number]
            assert nxt.closes_at == nxt.opens_at + dt.timedelta(seconds=ROUND_S)
    assert entries_of(a.pk, "auction.close") == 1
    assert entries_of(a.pk, "auction.clear") == entries_of(a.pk, "auction.settle") == 1
    assert a.clearing_price == 4200
    awards = {w.bidder_id: w for w in Award.objects.filter(auction=a)}
    assert {org: w.lots for org, w in awards.items()} == {
        m.bidders[who].pk: lots for who, lots in AWARDS.items()
    }
    assert all(w.amount_due == 4200 * w.lots for w in awards.values())
    states = dict(Deposit.objects.filter(auction=a).values_list("bidder_id", "state"))
    assert states == {org.pk: "held" if org.pk in awards else "released" for org in m.bidders}
    assert Auction.objects.get(pk=a.pk).state == "settled"
    verify_ledger()
