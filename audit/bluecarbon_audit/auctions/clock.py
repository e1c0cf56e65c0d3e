"""The ascending clock auction of many lots (docs/auctions-ascending.md §6).

The auctioneer's clock announces a round price; in each round every eligible bidder submits,
hidden until the round ends, the number of lots it demands at that price, and optionally an
**exit price** inside the round (between the previous round's price and this one's), at which
its demand drops from the previous round's to the new one (an intra-round bid). The activity
rule: demand never rises as the price rises (round 1: at most the offering, or the bidder cap).
A bidder that does not bid in a round demands nothing from then on. After each round the
aggregate demand and the number of active bidders are published; while demand exceeds the
supply the price rises by the increment of its band and another round runs.

The final round allocates at the **clearing price** p*, the lowest price on the tick grid in
(previous price, round price] at which the aggregate demand fits the supply (the round price
itself in round 1). Each bidder gets its new demand if its exit price is at most p*, else its
previous demand; the supply that leaves over goes to the bidders whose reduction was exactly at
p* (they created the excess), up to what each gave up, split by the rules' tie rule (the
sealed formats': random order, or pro rata with leftover lots drawn) with the draws seeded by
the final round's close entry. Everyone pays p* per tonne.

Rules fixed by ``auction.create``: ``reserve`` is the start price (round 1's), ``increments``
the table of price steps by band (as an English auction's), ``round_s`` each round's length,
``cap_bp`` round 1's eligibility cap, ``tie_rule``, ``undersubscribed``.

Pure: no Django, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .clearing import KG_PER_TONNE, MAX_CAP_BP, RulesError, _pro_rata, _random_order
from .draws import Draws
from .english import MAX_BANDS, MAX_PRICE

FORMAT = "clock"
MAX_ROUND_S = 86_400
RULE_KEYS = ("increments", "round_s")

# Why a round bid is refused (the API's codes and the verifier's messages).
ACTIVITY = "activity_rule"  # more lots than the bidder's demand in the round before
ELIGIBILITY = "above_eligibility"  # round 1: more than the offering or the cap
EXIT_PRICE = "invalid_exit_price"  # not strictly inside the round's price interval, off tick
NO_REDUCTION = "exit_without_reduction"  # an exit price, but the same demand as before
LOTS = "invalid_lots"


def _is_int(x: object) -> bool:
    return type(x) is int


@dataclass(frozen=True, slots=True)
class Rules:
    start: int
    tick: int
    lot_kg: int
    offered_lots: int
    increments: tuple[tuple[int, int], ...]
    round_s: int
    cap_lots: int | None
    tie_rule: str
    undersubscribed: str

    def next_price(self, price: int) -> int:
        """The next round's price: this one plus the step of its band."""
        step = self.increments[0][1]
        for low, s in self.increments:
            if price >= low:
                step = s
        return price + step

    def eligible(self) -> int:
        """Round 1's most lots per bidder."""
        return self.offered_lots if self.cap_lots is None else self.cap_lots

    def refusal(
        self,
        *,
        round_no: int,
        price: int,
        previous_price: int | None,
        previous_lots: int | None,
        lots: object,
        exit_price: object,
    ) -> str | None:
        """Why a round bid is refused, or None. ``previous_lots``: the bidder's demand in the
        round before (None in round 1; 0 if it did not bid then)."""
        if not isinstance(lots, int) or isinstance(lots, bool) or not 0 <= lots <= MAX_PRICE:
            return LOTS
        if round_no == 1 or previous_lots is None:
            if lots > self.eligible():
                return ELIGIBILITY
            return None if exit_price is None else EXIT_PRICE
        if lots > previous_lots:
            return ACTIVITY
        if exit_price is None:
            return None
        if (
            not isinstance(exit_price, int)
            or isinstance(exit_price, bool)
            or previous_price is None
            or not previous_price < exit_price < price
            or exit_price % self.tick
        ):
            return EXIT_PRICE
        if lots == previous_lots:
            return NO_REDUCTION
        return None

    def value(self, price: int, lots: int) -> int:
        scaled = price * lots * self.lot_kg
        if scaled % KG_PER_TONNE:
            raise ValueError(f"{lots} lots at {price} are not a whole minor unit")
        return scaled // KG_PER_TONNE


def rules_of(record: dict[str, Any]) -> Rules:
    """The clock rules of an auction record; RulesError (with a stable code) if invalid."""
    if record.get("format") != FORMAT:
        raise RulesError("invalid_format", "not a clock auction")
    tick, lot_kg, start, quantity = (
        record["tick"],
        record["lot_kg"],
        record["reserve"],
        record["quantity"],
    )
    if not _is_int(lot_kg) or lot_kg < 1 or not _is_int(quantity) or quantity % lot_kg:
        raise RulesError("invalid_lots", "the quantity must be a whole number of lots")
    if not _is_int(tick) or tick < 1:
        raise RulesError("invalid_tick", "tick must be an integer >= 1 (minor units per tonne)")
    if (tick * lot_kg) % KG_PER_TONNE:
        raise RulesError("inexact_tick", "tick * lot_kg must be a multiple of 1000")
    if not _is_int(start) or start < 0 or start % tick or start > MAX_PRICE:
        raise RulesError("invalid_reserve", "the start price must be a multiple of tick >= 0")
    if record.get("bid_guarantee"):
        raise RulesError("invalid_rules", "a clock auction has no bid guarantee")
    bands = record["increments"]
    if (
        not isinstance(bands, list)
        or not 1 <= len(bands) <= MAX_BANDS
        or not all(
            isinstance(b, list) and len(b) == 2 and _is_int(b[0]) and _is_int(b[1]) for b in bands
        )
        or bands[0][0] != 0
        or any(a[0] >= b[0] for a, b in pairwise(bands))
        or any(step < 1 or step % tick or step > MAX_PRICE for _, step in bands)
    ):
        raise RulesError(
            "invalid_increments",
            "increments are 1 to 16 [from, step] bands from 0, rising, steps multiples of tick",
        )
    round_s = record["round_s"]
    if not _is_int(round_s) or not 1 <= round_s <= MAX_ROUND_S:
        raise RulesError("invalid_round", f"round_s must be an integer from 1 to {MAX_ROUND_S}")
    offered = quantity // lot_kg
    cap_bp = record.get("cap_bp")
    cap = None
    if cap_bp is not None:
        if not _is_int(cap_bp) or not 1 <= cap_bp <= MAX_CAP_BP:
            raise RulesError("invalid_cap", "cap_bp must be from 1 to 10000")
        cap = offered * cap_bp // MAX_CAP_BP
        if cap < 1:
            raise RulesError("cap_below_one_lot", "the cap must allow at least one lot")
    if record["tie_rule"] not in ("random_order", "pro_rata"):
        raise RulesError("invalid_tie_rule", "tie_rule is random_order or pro_rata")
    if record["undersubscribed"] not in ("settle", "cancel"):
        raise RulesError("invalid_policy", "undersubscribed is settle or cancel")
    return Rules(
        start=start,
        tick=tick,
        lot_kg=lot_kg,
        offered_lots=offered,
        increments=tuple((low, step) for low, step in bands),
        round_s=round_s,
        cap_lots=cap,
        tie_rule=record["tie_rule"],
        undersubscribed=record["undersubscribed"],
    )


def commitment(
    origin: str,
    auction: int,
    round_no: int,
    paddle: str,
    lots: int,
    exit_price: int | None,
    salt: bytes,
) -> str:
    """A round bid's commitment on the ledger, opened by the round's close: lowercase hex
    SHA-256 of ``bluecarbon/clock-bid/v1`` LF origin LF auction LF round LF paddle LF lots LF
    exit price (``-`` if none) LF salt (hex)."""
    text = "\n".join(
        [
            "bluecarbon/clock-bid/v1",
            origin,
            str(auction),
            str(round_no),
            paddle,
            str(lots),
            "-" if exit_price is None else str(exit_price),
            salt.hex(),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Demand:
    """A bidder's bid in the final round, with its demand in the round before."""

    bidder: int
    account: int
    previous: int  # lots in the round before (the round-1 demand itself in round 1)
    lots: int
    exit_price: int | None


def aggregate(demands: Sequence[tuple[int, int | None]]) -> int:
    """A round's published aggregate demand: the sum of the lots bid at the round price."""
    return sum(lots for lots, _ in demands)


def clearing_price(
    rules: Rules, price: int, previous_price: int | None, final: Sequence[Demand]
) -> int:
    """The lowest price in (previous price, price] at which demand fits the supply."""
    if previous_price is None:
        return price
    candidates = sorted({price, *(d.exit_price for d in final if d.exit_price is not None)})
    for c in candidates:
        if _demand_at(c, price, final) <= rules.offered_lots:
            return c
    raise ValueError("the final round's demand at its price exceeds the supply")


def _demand_at(p: int, price: int, final: Sequence[Demand]) -> int:
    return sum(d.lots if p >= (d.exit_price or price) else d.previous for d in final)


def build_result(
    *,
    record: dict[str, Any],
    rounds: Sequence[dict[str, Any]],
    final: Sequence[Demand],
    seed: bytes,
) -> dict[str, Any]:
    """The result of a clock auction whose last round's demand fit the supply. ``rounds``: each
    round's published summary (round, price, aggregate, active), in order; ``final``: every
    bidder active in the last round or the one before, with its demands."""
    rules = rules_of(record)
    last = rounds[-1]
    price, round_no = last["price"], last["round"]
    previous_price = rounds[-2]["price"] if len(rounds) > 1 else None
    demanded = sum(d.lots for d in final)
    if round_no > 1 and any(d.previous < d.lots for d in final):
        raise ValueError("demand rose in the final round")
    if demanded > rules.offered_lots:
        raise ValueError("the final round's demand exceeds the supply")
    # Undersubscribed at the start price: as the rules say (cancel, or sell what is demanded).
    cancel = round_no == 1 and demanded < rules.offered_lots and rules.undersubscribed == "cancel"
    if cancel or (demanded == 0 and round_no == 1):
        status = "cancelled" if cancel else "cleared"
        return {
            "format": FORMAT,
            "outcome": {
                "status": status,
                "clearing_price": None,
                "rounds": round_no,
                "awarded_lots": 0,
                "unsold_lots": rules.offered_lots,
                "tie": None,
            },
            "bidders": [],
            "rounds": list(rounds),
        }
    p = clearing_price(rules, price, previous_price, final)
    exit_of = {d.bidder: (d.exit_price or price) for d in final}
    base = {d.bidder: (d.lots if p >= exit_of[d.bidder] else d.previous) for d in final}
    left = rules.offered_lots - sum(base.values())
    tie = None
    if round_no > 1 and left > 0:
        # Those whose reduction is at p* made the excess: they get it back, up to what each
        # gave up, by the tie rule.
        tied = sorted(
            (d.bidder, d.previous - d.lots)
            for d in final
            if exit_of[d.bidder] == p and d.previous > d.lots
        )
        wanted = sum(n for _, n in tied)
        share = min(left, wanted)
        if tied and share:
            draws = Draws(seed)
            if share == wanted or len(tied) == 1:
                extra = dict(tied) if share == wanted else {tied[0][0]: share}
            elif rules.tie_rule == "random_order":
                extra, t = _random_order(p, share, tied, draws)
                tie = {"price": p, "lots": share, "order": list(t.order)}
            else:
                extra, t = _pro_rata(p, share, tied, draws)
                tie = {"price": p, "lots": share, "drawn": list(t.order)}
            for bidder, n in extra.items():
                base[bidder] += n
    awarded = sum(base.values())
    if awarded > rules.offered_lots:
        raise ValueError("over-allocated")
    accounts = {d.bidder: d.account for d in final}
    bidders = [
        {
            "bidder": bidder,
            "account": accounts[bidder],
            "awarded_lots": lots,
            "amount": rules.value(p, lots),
        }
        for bidder, lots in sorted(base.items())
        if lots
    ]
    return {
        "format": FORMAT,
        "outcome": {
            "status": "cleared",
            "clearing_price": p,
            "rounds": round_no,
            "awarded_lots": awarded,
            "unsold_lots": rules.offered_lots - awarded,
            "tie": tie,
        },
        "bidders": bidders,
        "rounds": list(rounds),
    }
