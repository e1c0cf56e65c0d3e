"""The English auction's writes (docs/auctions-ascending.md): open bids that must beat the
standing price, a countdown each bid in the timed phase restarts, and the end, the award and
the settlement through the one pipeline of every format (the steps at the end of this module,
which ``services/formats.py`` maps the format to, are this format's part of it).

Bids serialize on the auction's row: each one's validity depends on the standing price, which
the bid before it set. The row lock is taken under the bid gate held shared (``locks``), and
closing takes the gate exclusively, so a bid racing the end either commits before the close
(and the close counts it, and its end time is the one the close checks) or waits and then sees
the auction closed: counted or refused, never both.
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
from ledger.models import Account, Organization

from . import intake, locks, records
from .core import english, parties
from .core import onboarding as onboarding_rules
from .exceptions import AuctionErrorCode as Code
from .exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from .models import Application, Auction, Bidder, Deposit, Format, Paddle, Raise, Sealing

State = Auction.State


def rules(a: Auction) -> english.Rules:
    return english.rules_of(records.auction_rules(a))


def initial_end(a: Auction) -> dt.datetime:
    """When bidding ends before any bid: the free phase's end plus one countdown."""
    return rules(a).deadline(None)


def admission(a: Auction, org: Organization) -> None:
    status = Bidder.objects.filter(organization=org).values_list("status", flat=True).first()
    application = (
        Application.objects.filter(auction=a, bidder=org).values_list("state", flat=True).first()
    )
    if not onboarding_rules.admitted(application, status):
        raise PermissionDenied(
            f"{org.handle} is not admitted to bid in auction {a.pk}"
            + (f" (its application is {application})" if application else ""),
            code=Code.NOT_APPROVED,
        )
    held = (
        Deposit.objects.filter(auction=a, bidder=org, state=Deposit.State.HELD)
        .values_list("amount", flat=True)
        .first()
        or 0
    )
    if a.deposit_required and held < a.deposit_required:
        raise Conflict(
            f"this auction needs a deposit of {a.deposit_required} (minor units); "
            f"{held} is recorded",
            code=Code.DEPOSIT_MISSING,
            detail={"required": a.deposit_required, "recorded": held},
        )


def paddle_for(a: Auction, org: Organization, account: object) -> Paddle:
    """The bidder's paddle in this auction, made at its first bid with the account the lot
    would be delivered to (the one named, or its first holding account)."""
    found = Paddle.objects.filter(auction=a, bidder=org).first()
    if account is None:
        acc_id = (
            found.account_id
            if found is not None
            else Account.objects.filter(organization=org, kind=Account.Kind.HOLDING)
            .order_by("pk")
            .values_list("pk", flat=True)
            .first()
        )
        if acc_id is None:
            raise Unprocessable("the bidder has no holding account", detail={"account": "missing"})
    else:
        acc = Account.objects.filter(
            pk=validation.object_id(account) or 0, organization=org
        ).first()
        if acc is None:
            raise NotFound(f"account {account} not found", detail={"account": "not_found"})
        if acc.kind != Account.Kind.HOLDING:
            raise Unprocessable(
                "awards are delivered to a holding account", detail={"account": "buffer"}
            )
        acc_id = acc.pk
    if found is not None:
        if found.account_id != acc_id:
            raise Conflict(
                "the account of a bidder's paddle is fixed by its first bid in the auction",
                code=Code.PADDLE_ACCOUNT,
                detail={"account": found.account_id},
            )
        return found
    salt = parties.new_salt()
    return Paddle.objects.create(
        auction=a,
        bidder=org,
        account_id=acc_id,
        salt=salt,
        pseudonym=parties.paddle(settings.LEDGER_ORIGIN, a.pk, org.pk, acc_id, salt),
    )


def _too_low_already(auction_id: int, price: int) -> None:
    """Refuse, before queueing for the auction's locks, a bid below the lowest valid bid at
    the standing price read without a lock: the standing price only rises, so such a bid can
    only be refused after the wait too. In a price war most bids are these (bench/
    english_auction.py: about 99 %), and without this each held its place in the row lock's
    queue. Anything else goes the locked way, which decides."""
    a = Auction.objects.filter(pk=auction_id, format=Format.ENGLISH, state=State.OPEN).first()
    if a is None or not isinstance(price, int) or a.ends_at is None:
        return
    standing = a.standing_price
    if timezone.now() >= a.ends_at:
        return  # the locked path says auction_closed
    r = rules(a)
    if r.refusal(price, standing) in (english.BELOW_START, english.BELOW_INCREMENT):
        minimum = r.minimum(standing)
        raise Unprocessable(
            f"the lowest bid now is {minimum} (minor units per tonne)",
            code=Code.BID_TOO_LOW,
            detail={
                "price": english.BELOW_START if standing is None else english.BELOW_INCREMENT,
                "minimum": minimum,
            },
        )


@transaction.atomic
def english_bid(*, actor: Actor, auction: object, price: int, account: object = None) -> Raise:
    """An open bid of ``price`` (minor units per tonne) in an English auction: accepted only
    if it beats the standing price by the rules' increment while bidding is open; it then
    stands, and in the timed phase restarts the countdown."""
    if actor.organization_id is None:
        raise PermissionDenied("bids are made by a bidder organization")
    auction_id = validation.object_id(auction) or 0
    _too_low_already(auction_id, price)
    locks.auction_share_lock(auction_id)  # the bid gate, shared: closing waits for this bid
    a = Auction.objects.select_for_update(of=("self",), no_key=True).filter(pk=auction_id).first()
    if a is None:
        raise NotFound(f"auction {auction} not found", detail={"auction": "not_found"})
    now = timezone.now()  # under the row lock: bids are ordered, and their times with them
    if not a.is_english:
        raise Conflict(f"auction {a.pk} takes sealed bids, not open ones", code=Code.WRONG_FORMAT)
    intake.refuse_unless_taking_bids(a, now, a.bidding_ends_at)
    org = intake.bidder_of(a, actor.organization_id)
    admission(a, org)
    r = rules(a)
    refusal = r.refusal(price, a.standing_price)
    if refusal is not None:
        minimum = r.minimum(a.standing_price)
        if refusal == english.OFF_TICK:
            raise Unprocessable(
                f"the price must be a multiple of the tick ({a.tick} minor units per tonne)",
                code=Code.PRICE_OFF_TICK,
                detail={"price": refusal, "tick": a.tick},
            )
        raise Unprocessable(
            f"the lowest bid now is {minimum} (minor units per tonne)",
            code=Code.BID_TOO_LOW,
            detail={"price": refusal, "minimum": minimum},
        )
    leading = (
        Raise.objects.filter(auction=a).order_by("-price").values_list("paddle__bidder", flat=True)
    ).first()
    if leading == org.pk:
        raise Conflict("your bid is already the standing bid", code=Code.ALREADY_LEADING)
    paddle = paddle_for(a, org, account)
    bid = Raise.objects.create(auction=a, paddle=paddle, price=price, time=now, entry_seq=-1)
    ends_at = r.deadline(now)
    # Before the ledger head: every statement under it is time every other writer waits. A new
    # end needs no timer of its own: the one pending at the old end re-arms itself at the new
    # one (pipeline.advance), so each auction has one timer at a time.
    a.standing_price, a.ends_at = price, ends_at
    a.save(update_fields=["standing_price", "ends_at"])
    entry = registry.ledger_append(
        type="bid.raise",
        actor=actor,
        data={
            "auction": a.pk,
            "bid": bid.pk,
            "paddle": paddle.pseudonym,
            "price": price,
            "ends_at": format_time(ends_at),
        },
        at=now,
        also=lambda seq: [(_RAISE_ENTRY_SEQ, [seq, bid.pk])],
    )
    bid.entry_seq = entry.seq
    return bid


# The bid's entry seq, written with its entry in one round trip (ledger_append's ``also``).
_RAISE_ENTRY_SEQ = (
    f"UPDATE {Raise._meta.db_table} SET {column(Raise, 'entry_seq')} = %s "
    f"WHERE {column(Raise, 'pk')} = %s"
)


def close_data(a: Auction) -> dict[str, Any]:
    """The English auction's close entry: how many bids it took, the standing price and the
    end they gave (the verifier recomputes all three)."""
    count = Raise.objects.filter(auction=a).count()
    return {
        "auction": a.pk,
        "bids": count,
        "standing_price": a.standing_price,
        "ends_at": format_time(a.bidding_ends_at),
    }


def reveal_paddles(a: Auction) -> list[dict[str, Any]]:
    """Who is behind each paddle, for ``auction.reveal``: bidder, account and salt."""
    return [
        {"bidder": bidder, "account": account, "salt": bytes(salt).hex()}
        for bidder, account, salt in Paddle.objects.filter(auction=a)
        .order_by("bidder_id")
        .values_list("bidder_id", "account_id", "salt")
    ]


def result_of(a: Auction) -> dict[str, Any]:
    """The English result from the accepted bids (english.build_result)."""
    deposits = dict(
        Deposit.objects.filter(auction=a, state=Deposit.State.HELD).values_list(
            "bidder_id", "amount"
        )
    )
    bids = [
        english.Raise(bid=pk, price=price, time=format_time(time), bidder=bidder, account=account)
        for pk, price, time, bidder, account in Raise.objects.filter(auction=a)
        .order_by("entry_seq")
        .values_list("pk", "price", "time", "paddle__bidder_id", "paddle__account_id")
    ]
    return english.build_result(record=records.auction_rules(a), bids=bids, deposits=deposits)


# ---- this format's steps in the auction pipeline (services/formats.py) ---------------------


def scheduled(a: Auction) -> dict[str, Any]:
    """Open bids: no key. Bidding ends one countdown after the free phase, until bids move it."""
    a.ends_at = initial_end(a)
    return {}


def opened(a: Auction, now: dt.datetime) -> None:
    """Nothing begins with the opening: bids are taken as they come until the end."""


def bidding_over(a: Auction, now: dt.datetime) -> bool:
    """Bidding ends at the auction's end (moved by the bids), which has come."""
    return True


def close_entry(a: Auction) -> tuple[dict[str, Any], int, bytes | None]:
    """The close entry (``close_data``); the book is the bids taken, with no Merkle root."""
    data = close_data(a)
    return data, data["bids"], None


def reveal_data(a: Auction) -> dict[str, Any]:
    """The reveal's own member: the bidders behind the paddles."""
    return {"paddles": reveal_paddles(a)}


def clearing(a: Auction) -> tuple[dict[str, Any], dict[str, Any], bytes | None]:
    """The result from the accepted bids; the prices were open, so no key is published."""
    return {"sealing": Sealing.OPEN}, result_of(a), None


def bid_outcomes(a: Auction, result: dict[str, Any]) -> None:
    """None: an English auction's bids have no outcome of their own; its result names the
    winner."""
