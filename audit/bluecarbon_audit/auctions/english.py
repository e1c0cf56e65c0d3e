"""The English auction of a single lot (the Xiangshan format; docs/auctions-ascending.md).

Bids are open prices, not sealed: each accepted bid is a ``bid.raise`` entry carrying its price
and its bidder's paddle (a pseudonym until the end, ``parties.paddle``). The rules, fixed by
``auction.create``:

* ``reserve`` is the **start price**: the first bid must be at least it;
* ``increments`` is the table of minimum raises by price band, ``[[from, step], ...]`` with
  ``from`` ascending from 0: a bid must beat the standing price by at least the ``step`` of the
  last band whose ``from`` is at most the standing price (a fixed increment is ``[[0, step]]``);
* every price is a multiple of ``tick``, as in the sealed formats;
* bidding opens at ``opens_at``; ``closes_at`` ends the free phase and starts the timed phase;
  a bid at time ``t`` moves the end to ``max(closes_at, t) + countdown_s``, so in the timed
  phase every bid restarts the countdown; ``hard_close_at`` (optional) is an end no bid moves.

The end is therefore a function of the rules and the bid times alone (``deadline``), which the
verifier recomputes from the entries; the highest bid, which is always the last accepted one,
wins and pays its price for the lot.

Pure: no Django, no I/O. The server's services and the verifier's replay both call it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .clearing import KG_PER_TONNE, RulesError

FORMAT = "english"
MAX_BANDS = 16
MAX_COUNTDOWN_S = 86_400
MAX_PRICE = 10**12  # minor units per tonne (as the sealed formats' results)
# The rule names an English auction's record adds to the common ones.
RULE_KEYS = ("increments", "countdown_s", "hard_close_at")

# Why a bid is refused (stable codes: the API's error codes and the verifier's messages).
BELOW_START = "below_start"
BELOW_INCREMENT = "below_increment"
OFF_TICK = "off_tick"
TOO_HIGH = "price_too_high"


def _is_int(x: object) -> bool:
    return type(x) is int


def parse_time(text: str) -> dt.datetime:
    """An entry or rules time (RFC 3339 UTC with a Z, ``entry.format_time``)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Rules:
    start: int  # the record's reserve: the lowest first bid
    tick: int
    lot_kg: int
    increments: tuple[tuple[int, int], ...]
    countdown_s: int
    closes_at: dt.datetime  # the end of the free phase
    hard_close_at: dt.datetime | None

    def step_at(self, standing: int) -> int:
        """The minimum raise over a standing price: the step of its band."""
        step = self.increments[0][1]
        for low, s in self.increments:
            if standing >= low:
                step = s
        return step

    def minimum(self, standing: int | None) -> int:
        """The lowest price the next bid may have."""
        return self.start if standing is None else standing + self.step_at(standing)

    def refusal(self, price: int, standing: int | None) -> str | None:
        """Why a bid at ``price`` over ``standing`` is refused, or None if it is valid."""
        if not _is_int(price) or price > MAX_PRICE:
            return TOO_HIGH
        if price % self.tick:
            return OFF_TICK
        if price < self.minimum(standing):
            return BELOW_START if standing is None else BELOW_INCREMENT
        return None

    def deadline(self, last_bid: dt.datetime | None) -> dt.datetime:
        """When bidding ends, given the time of the last accepted bid (None: no bid yet)."""
        start = self.closes_at if last_bid is None else max(self.closes_at, last_bid)
        end = start + dt.timedelta(seconds=self.countdown_s)
        if self.hard_close_at is not None and self.hard_close_at < end:
            return self.hard_close_at
        return end

    def bidding_at(self, moment: dt.datetime, last_bid: dt.datetime | None) -> bool:
        """Whether a bid at ``moment`` is in time (the opening is the auction's state's)."""
        return moment < self.deadline(last_bid)

    def value(self, price: int) -> int:
        """What the lot costs at ``price`` per tonne, in minor units; exact by the tick rule."""
        scaled = price * self.lot_kg
        if scaled % KG_PER_TONNE:
            raise ValueError(f"the lot's value at {price} is not a whole minor unit")
        return scaled // KG_PER_TONNE


def rules_of(record: dict[str, Any]) -> Rules:
    """The English rules of an auction record; RulesError (with a stable code) if invalid.
    The record's common rules (quantity, lot, tick, reserve) are checked here too, as the
    sealed formats' ``clearing.Rules`` checks them."""
    if record.get("format") != FORMAT:
        raise RulesError("invalid_format", "not an English auction")
    tick, lot_kg, start = record["tick"], record["lot_kg"], record["reserve"]
    if not _is_int(lot_kg) or lot_kg < 1 or record["quantity"] != lot_kg:
        raise RulesError("invalid_lots", "an English auction offers its whole quantity as one lot")
    if not _is_int(tick) or tick < 1:
        raise RulesError("invalid_tick", "tick must be an integer >= 1 (minor units per tonne)")
    if (tick * lot_kg) % KG_PER_TONNE:
        raise RulesError("inexact_tick", "tick * lot_kg must be a multiple of 1000")
    if not _is_int(start) or start < 0 or start % tick or start > MAX_PRICE:
        raise RulesError("invalid_reserve", "the start price must be a multiple of tick >= 0")
    if record.get("cap_bp") is not None or record.get("bid_guarantee"):
        raise RulesError("invalid_rules", "an English auction has no bidder cap or bid guarantee")
    bands = record["increments"]
    if (
        not isinstance(bands, list)
        or not 1 <= len(bands) <= MAX_BANDS
        or not all(
            isinstance(b, list) and len(b) == 2 and _is_int(b[0]) and _is_int(b[1]) for b in bands
        )
    ):
        raise RulesError(
            "invalid_increments",
            f"increments must be 1 to {MAX_BANDS} [from, step] pairs of integers",
        )
    if bands[0][0] != 0 or any(a[0] >= b[0] for a, b in pairwise(bands)):
        raise RulesError("invalid_increments", "the increments' bands start at 0 and rise")
    if any(step < 1 or step % tick or step > MAX_PRICE for _, step in bands):
        raise RulesError("invalid_increments", "each increment is a positive multiple of tick")
    countdown = record["countdown_s"]
    if not _is_int(countdown) or not 1 <= countdown <= MAX_COUNTDOWN_S:
        raise RulesError(
            "invalid_countdown", f"countdown_s must be an integer from 1 to {MAX_COUNTDOWN_S}"
        )
    closes_at = parse_time(record["closes_at"])
    hard = record["hard_close_at"]
    hard_at = None
    if hard is not None:
        hard_at = parse_time(hard)
        if hard_at <= closes_at:
            raise RulesError("invalid_time", "the hard close must come after the free phase ends")
    return Rules(
        start=start,
        tick=tick,
        lot_kg=lot_kg,
        increments=tuple((low, step) for low, step in bands),
        countdown_s=countdown,
        closes_at=closes_at,
        hard_close_at=hard_at,
    )


@dataclass(frozen=True, slots=True)
class Raise:
    """An accepted bid as the ledger orders them; ``bidder`` and ``account`` once revealed."""

    bid: int
    price: int
    time: str
    bidder: int
    account: int


def build_result(
    *, record: dict[str, Any], bids: Sequence[Raise], deposits: dict[int, int]
) -> dict[str, Any]:
    """The result of an ended English auction: the last accepted bid wins the lot at its price.
    ``deposits``: what each bidder had held (for the report). Each bid's validity was checked
    when it was taken (and is checked again by the verifier's replay, bid by bid)."""
    rules = rules_of(record)
    last = bids[-1] if bids else None
    prices = [b.price for b in bids]
    if any(b <= a for a, b in pairwise(prices)):
        raise ValueError("accepted bids must rise")
    bidders = sorted({b.bidder for b in bids})
    if last is None:
        status = "cleared" if record["undersubscribed"] == "settle" else "cancelled"
        outcome: dict[str, Any] = {
            "status": status,
            "clearing_price": None,
            "winning_bid": None,
            "bids": 0,
            "bidders": 0,
        }
        return {"format": FORMAT, "outcome": outcome, "bidders": [], "bids": []}
    outcome = {
        "status": "cleared",
        "clearing_price": last.price,
        "winning_bid": last.bid,
        "bids": len(bids),
        "bidders": len(bidders),
    }
    highest: dict[int, Raise] = {}
    for b in bids:
        highest[b.bidder] = b
    summary = [
        {
            "bidder": bidder,
            "account": highest[bidder].account,
            "highest_bid": highest[bidder].price,
            "deposit": deposits.get(bidder, 0),
            "awarded_lots": 1 if bidder == last.bidder else 0,
            "amount": rules.value(last.price) if bidder == last.bidder else 0,
        }
        for bidder in bidders
    ]
    rows = [{"bid": b.bid, "bidder": b.bidder, "price": b.price, "time": b.time} for b in bids]
    return {"format": FORMAT, "outcome": outcome, "bidders": summary, "bids": rows}
