"""An auction's published result, built from its rules, its opened book and its seed.

The worker that clears an auction and the verifier that re-checks it both call
``build_result`` on the same inputs, the verifier with bids it reopened itself with the
published key; the ``auction.clear`` entry must carry exactly what it returns. No Django import.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import merkle
from ..entry import canonical_json
from . import clearing

RESULT_VERSION = 1  # the result of an auction whose rules have no "v" (rules version 1)
# Rules versions (the auction.create record's "v"; absent: 1) and the result each gives, whose
# "v" is the same number. Version 2 (docs/auctions.md §5): a bid whose lots the cap or the
# deposit cut out entirely is rejected with that reason, and the statistics' valid_bids and
# rejected_bids count sealed bids. An auction is recomputed by the version its rules name, so
# results published before version 2 still verify.
RULES_VERSIONS = (1, 2)
RULES_VERSION = 2  # what new auctions are created with
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


@dataclass(frozen=True, slots=True)
class Counted:
    """A bid the close entry counted, before it is opened."""

    bid: int
    bidder: int
    account: int
    commitment: str  # hex


Opening = Callable[[Counted], tuple[Any, "str | None"]]


def assemble_book(
    counted: Iterable[Counted], *, deposits: Mapping[int, int], opening: Opening
) -> list[BookBid]:
    """The book a sealed auction clears: each counted bid, in the order given (ascending bid
    id, the book root's), with the deposit its bidder holds (0 if none) and its opening as
    ``(tiers, error)``. The one assembly behind the clearing worker (openings stored as the
    bids were opened), the verifier's replay and the portal's recomputation (both reopening
    with the published key or the released trustee keys): they differ only in ``opening``
    and where ``deposits`` come from."""
    book = []
    for c in counted:
        tiers, error = opening(c)
        book.append(
            BookBid(
                bid=c.bid,
                bidder=c.bidder,
                account=c.account,
                commitment=c.commitment,
                deposit=deposits.get(c.bidder, 0),
                tiers=tiers,
                error=error,
            )
        )
    return book


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


def rules_version(record: dict[str, Any]) -> int:
    """The version of an auction record's rules: its ``v``, or 1 for a record without one."""
    version = record.get("v", 1)
    if type(version) is not int or version not in RULES_VERSIONS:
        raise clearing.RulesError("invalid_version", f"unknown rules version {version!r}")
    return version


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


def _distribute(
    rules: clearing.Rules, award: clearing.Award | None, bids: list[BookBid], price: int | None
) -> dict[int, tuple[int, int]]:
    """A bidder's award spread over its valid sealed bids: bid id -> (lots, amount). Each
    filled (price, lots) goes to the bids offering that price, lowest id first, each up to what
    it offered there; amounts follow the format's payment rule, so they add up exactly to the
    award's amount."""
    out = {b.bid: (0, 0) for b in bids}
    if award is None:
        return out
    for fill_price, fill_lots in award.fills:
        left = fill_lots
        for b in bids:  # ascending id
            offered = sum(t["lots"] for t in b.tiers if t["price"] == fill_price)
            if rules.single_lot:
                offered = min(offered, 1)
            take = min(left, offered)
            if take:
                lots, amount = out[b.bid]
                pay = fill_price
                if rules.format == "uniform":
                    # Everyone pays the clearing price; an award without one is a clearing bug.
                    if price is None:
                        raise clearing.InvariantError("uniform award without a clearing price")
                    pay = price
                out[b.bid] = (lots + take, amount + rules.value(pay, take))
                left -= take
            if not left:
                break
        if left:
            raise clearing.InvariantError(f"award of bidder {award.bidder} is not its bids'")
    if rules.single_lot:  # the winner pays what the format says, not necessarily its price
        (winner,) = [bid for bid, (lots, _) in out.items() if lots]
        out[winner] = (1, award.amount)
    if sum(amount for _, amount in out.values()) != award.amount:
        raise clearing.InvariantError(f"amounts of bidder {award.bidder} do not add up")
    return out


def build_result(
    *, record: dict[str, Any], book: Sequence[BookBid], seed: bytes, root: bytes
) -> dict[str, Any]:
    """Check every sealed bid, combine each bidder's into one demand schedule, clear, and say
    per sealed bid and per bidder what counted and what it won."""
    rules = rules_of(record)
    version = rules_version(record)
    reasons: dict[int, str | None] = {}
    by_bidder: dict[int, list[BookBid]] = {}
    for b in sorted(book, key=lambda b: b.bid):
        by_bidder.setdefault(b.bidder, []).append(b)
    combined: dict[int, clearing.Checked] = {}
    for bidder, bids in by_bidder.items():
        opened = []
        for b in bids:
            reason = b.error or _out_of_bounds(b.tiers)
            if reason is not None:
                reasons[b.bid] = reason
            else:
                opened.append((b.bid, b.tiers))
        checked = clearing.check_bidder(rules, bidder=bidder, bids=opened, deposit=bids[0].deposit)
        reasons.update(checked.reasons)
        if checked.combined is not None:
            combined[bidder] = checked.combined
            if checked.combined.status != "valid":  # trimmed to nothing: none of them counts
                for bid, reason in checked.reasons:
                    if reason is None:
                        reasons[bid] = checked.combined.reason
            elif version >= 2 and checked.combined.trimmed and not rules.single_lot:
                # Trimmed in part: a bid none of whose lots is left carries the reason itself.
                why = checked.combined.trimmed[0][0]
                kept = [b for b in bids if reasons.get(b.bid) is None]
                for bid in _cut_out(checked.combined.tiers, kept):
                    reasons[bid] = why
    outcome = clearing.clear(rules, list(combined.values()), seed)
    awards = {a.bidder: a for a in outcome.awards}
    won: dict[int, tuple[int, int]] = {}
    bidders = []
    for bidder, bids in sorted(by_bidder.items()):
        valid = [b for b in bids if reasons[b.bid] is None]
        won.update(_distribute(rules, awards.get(bidder), valid, outcome.clearing_price))
        c = combined.get(bidder)
        award = awards.get(bidder)
        winning = [b for b in valid if won[b.bid][0]]
        bidders.append(
            {
                "bidder": bidder,
                "bids": [b.bid for b in bids],
                "status": c.status if c is not None else "rejected",
                "reason": (c.reason if c is not None else "no_valid_bid"),
                "counted": [list(t) for t in c.tiers] if c is not None else [],
                "trimmed": [list(t) for t in c.trimmed] if c is not None else [],
                "awarded_lots": award.lots if award else 0,
                "amount": award.amount if award else 0,
                # The credits go to the account named by the first bid that won any.
                "account": winning[0].account if winning else None,
            }
        )
    rows = []
    for b in sorted(book, key=lambda b: b.bid):
        lots, amount = won.get(b.bid, (0, 0))
        # Commitment and account are in the bid's own entry; not repeated here.
        rows.append(
            {
                "bid": b.bid,
                "bidder": b.bidder,
                "status": "valid" if reasons[b.bid] is None else "rejected",
                "reason": reasons[b.bid],
                # What was sealed (the published bid), when it is tiers JSON can carry exactly.
                "sealed": _publishable(b.tiers),
                "awarded_lots": lots,
                "amount": amount,
            }
        )
    summary = clearing.outcome_to_json(outcome)
    if version >= 2:  # count sealed bids, not bidders' combined schedules
        summary["stats"]["valid_bids"] = sum(r["status"] == "valid" for r in rows)
        summary["stats"]["rejected_bids"] = sum(r["status"] != "valid" for r in rows)
    return {
        "v": RESULT_VERSION if version == 1 else version,
        "auction": record["id"],
        "currency": record["currency"],
        "lot_kg": record["lot_kg"],
        "book_size": len(book),
        "book_root": root.hex(),
        "seed": seed.hex(),
        "outcome": summary,
        "bidders": bidders,
        "bids": rows,
    }


def _cut_out(counted: clearing.Tiers, bids: list[BookBid]) -> list[int]:
    """The bids (valid, ascending id) none of whose lots is in the bidder's counted schedule.
    The lots counted at a price go to the bids offering it lowest id first, each up to what
    it offered there: the order awards are spread in (``_distribute``), so a bid that keeps
    no lot here is one that could win none."""
    left = dict(counted)
    out = []
    for b in bids:
        kept = 0
        for tier in b.tiers:
            take = min(tier["lots"], left.get(tier["price"], 0))
            if take:
                left[tier["price"]] -= take
                kept += take
        if not kept:
            out.append(b.bid)
    return out


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
    """The result's RFC 8785 bytes (what ``result_sha256`` hashes)."""
    return canonical_json(result)


def result_sha256(result: dict[str, Any]) -> str:
    return hashlib.sha256(result_bytes(result)).hexdigest()
