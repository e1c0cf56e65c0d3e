"""The ascending clock auction's writes (docs/auctions-ascending.md §6): rounds at rising prices,
each bidder's demand per round committed on the ledger and opened at the end, the aggregate
demand and the number of active bidders published at each round's close, and the final
allocation through the one pipeline of every format (the steps at the end of this module, which
``services/formats.py`` maps the format to, are this format's part of it).

Sealing is ``operator_rounds``, labelled as such everywhere: a round bid reaches the server in
the clear (over TLS) and its entry carries only a commitment, so other bidders and the public
learn nothing of it but the round's aggregate until the auction ends; the operator sees the
bids as they arrive. The commitments bind the operator: what the reveal publishes at the end
must open them, and the verifier recomputes every round's aggregate, every activity-rule check
and the allocation from what it opens.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bluecarbon.rows import column
from ledger import services as registry
from ledger import validation
from ledger.actors import Actor
from ledger.core.entry import format_time

from . import english, intake, jobs, locks, records
from .core import clock, parties
from .exceptions import AuctionErrorCode as Code
from .exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from .models import Auction, ClockBid, ClockRound, Sealing, stored

State = Auction.State
SYSTEM = Actor.system("auctions")

_REFUSALS = {
    clock.ACTIVITY: "demand may not rise as the price rises: at most your demand in the round "
    "before",
    clock.ELIGIBILITY: "more lots than you are eligible for in the first round",
    clock.EXIT_PRICE: "an exit price lies strictly between the previous round's price and this "
    "round's, on the tick, from the second round on",
    clock.NO_REDUCTION: "an exit price is where demand drops: bid fewer lots than before",
    clock.LOTS: "lots must be a whole number of lots, 0 or more",
}


def rules(a: Auction) -> clock.Rules:
    return clock.rules_of(records.auction_rules(a))


def current_round(a: Auction) -> ClockRound | None:
    return ClockRound.objects.filter(auction=a).order_by("-number").first()


def open_round(
    a: Auction, number: int, price: int, now: dt.datetime, closes_at: dt.datetime
) -> ClockRound:
    """Round ``number`` opens at ``price`` until ``closes_at`` (``clock.round_open``)."""
    entry = registry.ledger_append(
        type="clock.round_open",
        actor=SYSTEM,
        data={
            "auction": a.pk,
            "round": number,
            "price": price,
            "closes_at": format_time(closes_at),
        },
        at=now,
    )
    r = ClockRound.objects.create(
        auction=a,
        number=number,
        price=price,
        opens_at=now,
        closes_at=closes_at,
        open_seq=entry.seq,
    )
    a.ends_at = closes_at
    a.save(update_fields=["ends_at"])
    pk = a.pk
    transaction.on_commit(lambda: jobs.send(jobs.ADVANCE, pk, eta=closes_at), robust=True)
    return r


def open_first_round(a: Auction, now: dt.datetime) -> None:
    """With ``auction.open``: round 1 at the start price, until the rules' closes_at."""
    open_round(a, 1, a.reserve, now, a.closes_at)


@transaction.atomic
def clock_bid(
    *,
    actor: Actor,
    auction: object,
    lots: int,
    exit_price: int | None = None,
    account: object = None,
) -> ClockBid:
    """The bidder's demand in the current round: ``lots`` at the round price, or (from round 2)
    ``lots`` from ``exit_price`` on and its demand of the round before below it. A second bid in
    the same round replaces the first (a new version). Checked against the activity rule."""
    if actor.organization_id is None:
        raise PermissionDenied("bids are made by a bidder organization")
    auction_id = validation.object_id(auction) or 0
    locks.auction_share_lock(auction_id)  # the gate: a round's close waits for this bid
    a = Auction.objects.filter(pk=auction_id).first()
    if a is None:
        raise NotFound(f"auction {auction} not found", detail={"auction": "not_found"})
    now = timezone.now()
    if not a.is_clock:
        raise Conflict(f"auction {a.pk} is not a clock auction", code=Code.WRONG_FORMAT)
    if a.state in (State.DRAFT, State.SCHEDULED):
        raise Conflict(f"auction {a.pk} is not open for bids yet", code=Code.NOT_OPEN)
    r = current_round(a)
    if a.state != State.OPEN or r is None or r.close_seq is not None or now >= r.closes_at:
        raise Conflict(
            f"auction {a.pk}: the round closed at {format_time(a.bidding_ends_at)}",
            code=Code.CLOSED,
            detail={"closes_at": format_time(a.bidding_ends_at)},
        )
    org = intake.bidder_of(a, actor.organization_id)
    english.admission(a, org)
    previous_price, previous_lots = None, None
    paddle = a.paddles.filter(bidder=org).first()
    if r.number > 1:
        before = ClockRound.objects.get(auction=a, number=r.number - 1)
        previous_price = before.price
        previous_lots = (
            ClockBid.objects.filter(round=before, paddle=paddle)
            .values_list("lots", flat=True)
            .first()
            if paddle is not None
            else None
        ) or 0
    refusal = rules(a).refusal(
        round_no=r.number,
        price=r.price,
        previous_price=previous_price,
        previous_lots=previous_lots,
        lots=lots,
        exit_price=exit_price,
    )
    if refusal is not None:
        raise Unprocessable(
            _REFUSALS[refusal],
            code=Code.ROUND_BID_REFUSED,
            detail={"rule": refusal, "previous_lots": previous_lots},
        )
    paddle = english.paddle_for(a, org, account)
    salt = parties.new_salt()
    commitment = clock.commitment(
        settings.LEDGER_ORIGIN, a.pk, r.number, paddle.pseudonym, lots, exit_price, salt
    )
    found = ClockBid.objects.select_for_update().filter(round=r, paddle=paddle).first()
    # Written before the ledger head (every statement under it is time other writers wait);
    # the entry's seq goes in with the entry, in one round trip.
    if found is None:
        bid = ClockBid.objects.create(
            auction=a,
            round=r,
            paddle=paddle,
            lots=lots,
            exit_price=exit_price,
            salt=salt,
            commitment=commitment,
            entry_seq=-1,
        )
    else:
        bid = found
        bid.version += 1
        bid.lots, bid.exit_price, bid.salt, bid.commitment = lots, exit_price, salt, commitment
        bid.save(update_fields=["version", "lots", "exit_price", "salt", "commitment"])
    entry = registry.ledger_append(
        type="clock.bid",
        actor=actor,
        data={
            "auction": a.pk,
            "round": r.number,
            "bid": bid.pk,
            "version": bid.version,
            "paddle": paddle.pseudonym,
            "commitment": commitment,
        },
        at=now,
        also=lambda seq: [(_BID_ENTRY_SEQ, [seq, bid.pk])],
    )
    bid.entry_seq = entry.seq
    return bid


_BID_ENTRY_SEQ = (
    f"UPDATE {ClockBid._meta.db_table} SET {column(ClockBid, 'entry_seq')} = %s "
    f"WHERE {column(ClockBid, 'pk')} = %s"
)


def close_round(a: Auction, now: dt.datetime) -> bool:
    """The current round's end (the caller holds the gate exclusively and the row): publish its
    aggregate demand and active bidders. If demand still exceeds the supply, the next round
    opens at the next price and this returns False; otherwise this was the final round and the
    auction closes (True: the caller appends ``auction.close``)."""
    r = current_round(a)
    assert r is not None and r.close_seq is None, "an open clock auction has an open round"
    if now < r.closes_at:
        return False
    demands = list(ClockBid.objects.filter(round=r).values_list("lots", flat=True))
    aggregate = sum(demands)
    active = sum(1 for lots in demands if lots)
    final = aggregate <= a.offered_lots
    entry = registry.ledger_append(
        type="clock.round_close",
        actor=SYSTEM,
        data={
            "auction": a.pk,
            "round": r.number,
            "aggregate": aggregate,
            "active": active,
            "final": final,
        },
        at=now,
    )
    r.aggregate, r.active, r.final, r.close_seq = aggregate, active, final, entry.seq
    r.save(update_fields=["aggregate", "active", "final", "close_seq"])
    if final:
        return True
    open_round(
        a,
        r.number + 1,
        rules(a).next_price(r.price),
        now,
        now + dt.timedelta(seconds=a.round_s or 0),
    )
    return False


def close_data(a: Auction) -> dict[str, Any]:
    return {
        "auction": a.pk,
        "rounds": ClockRound.objects.filter(auction=a).count(),
        "bids": ClockBid.objects.filter(auction=a).count(),
    }


def reveal_bids(a: Auction) -> list[dict[str, Any]]:
    """Every round bid's content and salt, for ``auction.reveal`` (by bid id)."""
    return [
        {"bid": pk, "lots": lots, "exit_price": exit_price, "salt": bytes(salt).hex()}
        for pk, lots, exit_price, salt in ClockBid.objects.filter(auction=a)
        .order_by("pk")
        .values_list("pk", "lots", "exit_price", "salt")
    ]


def round_summaries(a: Auction) -> list[dict[str, Any]]:
    return [
        {"round": n, "price": p, "aggregate": agg, "active": act}
        for n, p, agg, act in ClockRound.objects.filter(auction=a)
        .order_by("number")
        .values_list("number", "price", "aggregate", "active")
    ]


def result_of(a: Auction) -> dict[str, Any]:
    """The allocation from the final round's bids and the round before's demands."""
    rounds = round_summaries(a)
    last = rounds[-1]["round"]
    final_bids = {
        paddle: (lots, exit_price)
        for paddle, lots, exit_price in ClockBid.objects.filter(
            auction=a, round__number=last
        ).values_list("paddle_id", "lots", "exit_price")
    }
    before = dict(
        ClockBid.objects.filter(auction=a, round__number=last - 1).values_list("paddle_id", "lots")
    )
    final = []
    for p in a.paddles.order_by("bidder_id"):
        lots, exit_price = final_bids.get(p.pk, (0, None))
        previous = lots if last == 1 else before.get(p.pk, 0)
        if previous == 0 and lots == 0:
            continue
        final.append(
            clock.Demand(
                bidder=p.bidder_id,
                account=p.account_id,
                previous=previous,
                lots=lots,
                exit_price=exit_price,
            )
        )
    return clock.build_result(
        record=records.auction_rules(a),
        rounds=rounds,
        final=final,
        seed=stored(a.seed, "seed"),
    )


# ---- this format's steps in the auction pipeline (services/formats.py) ---------------------


def scheduled(a: Auction) -> dict[str, Any]:
    """Committed round bids: no key; its rounds begin when it opens."""
    return {}


def opened(a: Auction, now: dt.datetime) -> None:
    """Round 1 opens with the auction."""
    open_first_round(a, now)


def bidding_over(a: Auction, now: dt.datetime) -> bool:
    """The current round closes; bidding is over only if it was the final round (else the next
    round opened)."""
    return close_round(a, now)


def close_entry(a: Auction) -> tuple[dict[str, Any], int, bytes | None]:
    """The close entry (``close_data``); the book is the round bids, with no Merkle root."""
    data = close_data(a)
    return data, data["bids"], None


def reveal_data(a: Auction) -> dict[str, Any]:
    """The reveal's own members: the bidders behind the paddles, and every round bid opened."""
    return {"paddles": english.reveal_paddles(a), "clock_bids": reveal_bids(a)}


def clearing(a: Auction) -> tuple[dict[str, Any], dict[str, Any], bytes | None]:
    """The allocation from the rounds; the bids were never sealed to a key, so none is
    published."""
    return {"sealing": Sealing.OPERATOR_ROUNDS}, result_of(a), None


def bid_outcomes(a: Auction, result: dict[str, Any]) -> None:
    """None: a clock auction's round bids have no outcome of their own; its result names the
    winners."""
