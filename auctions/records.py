"""How auction rows are written in ledger entries, and how the verifier reads them back: one
definition per table, shared by the services and ``ledger_verify``."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Field

from ledger.core.entry import format_time

from .core import clock as clock_rules
from .core import english as english_rules
from .core import replay
from .core.clock import commitment as clock_commitment
from .core.onboarding import applicant
from .core.parties import paddle
from .models import (
    Application,
    Auction,
    Award,
    Bid,
    Bidder,
    ClockBid,
    ClockRound,
    Deposit,
    Raise,
    TrusteeKey,
)


def b64(data: bytes | memoryview | None) -> str | None:
    return None if data is None else base64.b64encode(bytes(data)).decode()


# The rules an auction.create entry records, each held by the Auction field of its name (a
# foreign key by its id): the audit package's lists, so the entry, the verifier's replay and
# the admin's screen name the same rules.
RULE_FIELDS = replay.RULE_KEYS
ENGLISH_RULE_FIELDS = english_rules.RULE_KEYS
CLOCK_RULE_FIELDS = clock_rules.RULE_KEYS


def _rule(a: Auction, name: str) -> Any:
    field = Auction._meta.get_field(name)
    assert isinstance(field, Field)  # a column of the row, never a relation's other end
    value = getattr(a, field.attname)
    if isinstance(value, dt.datetime):
        return format_time(value)
    return list(value) if isinstance(value, list) else value


def auction_rules(a: Auction) -> dict[str, Any]:
    """The rules as recorded by auction.create (and fixed by auction.schedule)."""
    own = ENGLISH_RULE_FIELDS if a.is_english else CLOCK_RULE_FIELDS if a.is_clock else ()
    rules = {"id": a.pk} | {name: _rule(a, name) for name in (*RULE_FIELDS, *own)}
    # The rules' version (auctions/core/result.py RULES_VERSIONS). Version 1 is a record
    # without "v", as every auction created before versions has it.
    if a.rules_version != 1:
        rules["v"] = a.rules_version
    return rules


def auction_state(a: Auction) -> dict[str, Any]:
    """Everything about an auction that the ledger determines (compared by the verifier)."""
    return {
        **auction_rules(a),
        "v": a.rules_version,
        "hold": a.hold_id,
        "state": a.state,
        "public_key": b64(a.public_key),
        "private_key": b64(a.private_key),
        "book_size": a.book_size,
        "book_root": bytes(a.book_root).hex() if a.book_root is not None else None,
        "seed": bytes(a.seed).hex() if a.seed is not None else None,
        "result_sha256": a.result_sha256,
        "clearing_price": a.clearing_price,
    } | (
        {
            "standing_price": a.standing_price,
            "ends_at": format_time(a.ends_at) if a.ends_at is not None else None,
        }
        if a.is_english
        else {"ends_at": format_time(a.ends_at) if a.ends_at is not None else None}
        if a.is_clock
        else {}
    )


def public_bidder(b: Bid, a: Auction) -> int | None:
    """The bidder of a bid as the public may see it: None while the ledger names it only by
    its pseudonym (before the auction's reveal)."""
    return None if b.salt is not None and a.revealed_seq is None else b.bidder_id


def bid_state(b: Bid) -> dict[str, Any]:
    return {
        "id": b.pk,
        "auction": b.auction_id,
        "bidder": b.bidder_id,
        "account": b.account_id,
        "version": b.version,
        "commitment": b.commitment,
        "status": b.status,
        "reason": b.reason,
        "awarded_lots": b.awarded_lots,
    }


def raise_state(r: Raise, *, revealed: bool) -> dict[str, Any]:
    """An English auction's accepted bid as the replay knows it (its paddle's bidder once the
    auction's reveal named it). The paddle is recomputed from the row's bidder, account and
    salt, so a changed bidder or account shows even before the reveal."""
    p = r.paddle
    return {
        "id": r.pk,
        "auction": r.auction_id,
        "paddle": paddle(
            settings.LEDGER_ORIGIN, r.auction_id, p.bidder_id, p.account_id, bytes(p.salt)
        ),
        "bidder": p.bidder_id if revealed else None,
        "account": p.account_id if revealed else None,
        "price": r.price,
        "time": format_time(r.time),
    }


def clock_round_state(r: ClockRound) -> dict[str, Any]:
    return {
        "id": f"{r.auction_id}/{r.number}",
        "price": r.price,
        "opens_at": format_time(r.opens_at),
        "closes_at": format_time(r.closes_at),
        "aggregate": r.aggregate,
        "active": r.active,
        "final": r.final,
    }


def clock_bid_state(b: ClockBid, *, revealed: bool) -> dict[str, Any]:
    """A round bid as the replay knows it: its commitment, and what it says once revealed.
    The paddle and the commitment are recomputed from the row (as ``raise_state``'s paddle)."""
    p = b.paddle
    pseudonym = paddle(
        settings.LEDGER_ORIGIN, b.auction_id, p.bidder_id, p.account_id, bytes(p.salt)
    )
    return {
        "id": b.pk,
        "auction": b.auction_id,
        "round": b.round.number,
        "paddle": pseudonym,
        "version": b.version,
        # Recomputed from the row's lots, exit price and salt: a changed demand shows before
        # the reveal too (the ledger has the commitment since the bid was taken).
        "commitment": clock_commitment(
            settings.LEDGER_ORIGIN,
            b.auction_id,
            b.round.number,
            pseudonym,
            b.lots,
            b.exit_price,
            bytes(b.salt),
        ),
        "lots": b.lots if revealed else None,
        "exit_price": b.exit_price if revealed else None,
    }


def deposit_state(d: Deposit) -> dict[str, Any]:
    return {
        "id": d.pk,
        "auction": d.auction_id,
        "bidder": d.bidder_id,
        "amount": d.amount,
        "state": d.state,
    }


def award_state(w: Award) -> dict[str, Any]:
    return {
        "id": w.pk,
        "auction": w.auction_id,
        "bidder": w.bidder_id,
        "account": w.account_id,
        "lots": w.lots,
        "quantity": w.quantity,
        "amount_due": w.amount_due,
        "state": w.state,
    }


def bidder_state(b: Bidder) -> dict[str, Any]:
    return {"id": b.organization_id, "status": b.status}


def applicant_of(x: Application) -> str:
    """The applicant's pseudonym on the ledger (``bluecarbon_audit.auctions.onboarding``)."""
    return applicant(settings.LEDGER_ORIGIN, x.auction_id, x.bidder_id, bytes(x.salt))


def application_state(x: Application, *, revealed: bool) -> dict[str, Any]:
    """An application as the replay knows it: named by (auction, bidder) once its auction's
    reveal named the applicant, by the applicant's pseudonym before."""
    who = x.bidder_id if revealed else applicant_of(x)
    return {"id": f"{x.auction_id}/{who}", "state": x.state, "reason": x.reason}


def trustee_key_state(k: TrusteeKey) -> dict[str, Any]:
    return {
        "id": k.pk,
        "organization": k.organization_id,
        "public_key": b64(k.public_key),
        "auction": k.auction_id,
        "position": k.position,
        "private_key": b64(k.private_key),
    }
