"""An auction's published result, built from its rules, its opened book and its seed.

The worker that clears an auction and the verifier that re-checks it both call
``build_result`` on the same inputs, the verifier with bids it reopened itself with the
published key; the ``auction.clear`` entry must carry exactly what it returns. No Django import.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from ledger.core import merkle

from . import clearing

RESULT_VERSION = 1
# Bounds that keep every number of a result exact in JSON (below 2**53) whatever a bid says.
MAX_PRICE = 10**12  # minor units per tonne
MAX_LOTS = 10**12


@dataclass(frozen=True, slots=True)
class BookBid:
    """One counted bid as opened: ``tiers`` from its plaintext, or ``error`` if it did not
    open (a sealing reason such as ``unreadable``)."""

    bid: int
    bidder: int
    account: int
    commitment: str  # hex
    deposit: int  # minor units recorded for this bidder (0 if none)
    tiers: Any = None
    error: str | None = None


def rules_of(record: dict[str, Any]) -> clearing.Rules:
    """The clearing rules of an auction record (``auctions.records.auction_rules``)."""
    return clearing.Rules(
        format=record["format"],
        offered_lots=record["quantity"] // record["lot_kg"],
        lot_kg=record["lot_kg"],
        tick=record["tick"],
        reserve=record["reserve"],
        cap_bp=record["cap_bp"],
        tie_rule=record["tie_rule"],
        undersubscribed=record["undersubscribed"],
        bid_guarantee=record["bid_guarantee"],
    )


def book_root(commitments: Iterable[bytes]) -> tuple[int, bytes]:
    """(count, RFC 9162 root) of the counted commitments, in ascending bid id order; each leaf
    is the 32-byte commitment (leaf hash SHA-256(0x00 || commitment))."""
    frontier = merkle.Frontier()
    for c in commitments:
        frontier.push(merkle.leaf_hash(c))
    return frontier.size, frontier.root()


def _out_of_bounds(tiers: Any) -> str | None:
    if not isinstance(tiers, list):
        return None  # check_bid names the malformation
    for tier in tiers:
        if not isinstance(tier, dict):
            return None
        price, lots = tier.get("price"), tier.get("lots")
        if type(price) is int and price > MAX_PRICE:
            return "invalid_price"
        if type(lots) is int and lots > MAX_LOTS:
            return "invalid_lots"
    return None


def check_book(rules: clearing.Rules, book: Sequence[BookBid]) -> list[clearing.Checked]:
    checked = []
    for b in sorted(book, key=lambda b: b.bid):
        reason = b.error or _out_of_bounds(b.tiers)
        if reason is not None:
            checked.append(
                clearing.Checked(
                    bid=b.bid,
                    bidder=b.bidder,
                    status="rejected",
                    reason=reason,
                    tiers=(),
                    trimmed=(),
                )
            )
        else:
            checked.append(
                clearing.check_bid(
                    rules, bid=b.bid, bidder=b.bidder, tiers=b.tiers, deposit=b.deposit
                )
            )
    return checked


def build_result(
    *, record: dict[str, Any], book: Sequence[BookBid], seed: bytes, root: bytes
) -> dict[str, Any]:
    rules = rules_of(record)
    checked = check_book(rules, book)
    outcome = clearing.clear(rules, checked, seed)
    awards = {a.bid: a for a in outcome.awards}
    by_bid = {b.bid: b for b in book}
    bids = []
    for c in checked:
        src = by_bid[c.bid]
        award = awards.get(c.bid)
        bids.append(
            {
                "bid": c.bid,
                "bidder": c.bidder,
                "account": src.account,
                "commitment": src.commitment,
                "status": c.status,
                "reason": c.reason,
                # What was sealed (the published bid), when it is tiers JSON can carry exactly.
                "sealed": _publishable(src.tiers),
                "counted": [list(t) for t in c.tiers],
                "trimmed": [list(t) for t in c.trimmed],
                "awarded_lots": award.lots if award else 0,
                "amount": award.amount if award else 0,
            }
        )
    return {
        "v": RESULT_VERSION,
        "auction": record["id"],
        "currency": record["currency"],
        "lot_kg": record["lot_kg"],
        "book_size": len(book),
        "book_root": root.hex(),
        "seed": seed.hex(),
        "outcome": clearing.outcome_to_json(outcome),
        "bids": bids,
    }


def _publishable(tiers: Any) -> list[list[int]] | None:
    """``[[price, lots], ...]`` if the sealed tiers are a short list of exactly
    ``{"price": int, "lots": int}`` with JSON-exact values, else None (the reason says why)."""
    if not isinstance(tiers, list) or len(tiers) > 4 * clearing.MAX_TIERS:
        return None
    out = []
    for t in tiers:
        if type(t) is not dict or t.keys() != {"price", "lots"}:
            return None
        price, lots = t["price"], t["lots"]
        if type(price) is not int or type(lots) is not int:
            return None
        if not (-MAX_PRICE <= price <= MAX_PRICE and -MAX_LOTS <= lots <= MAX_LOTS):
            return None
        out.append([price, lots])
    return out


def result_bytes(result: dict[str, Any]) -> bytes:
    return rfc8785.dumps(result)


def result_sha256(result: dict[str, Any]) -> str:
    return hashlib.sha256(result_bytes(result)).hexdigest()
