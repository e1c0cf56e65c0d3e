"""Sealed-bid auction clearing: rule checks, trimming, the marginal price, ties, payments.

Pure and deterministic: no Django, no clock, no floats. The same rules, checked bids and seed
always give the same outcome, so anyone can re-run a published auction. docs/auctions-clearing.md
is the specification; this module is its reference implementation.

Units: prices are integers of minor currency units per tonne, quantities are whole lots of
``lot_kg`` kilograms, money is integers of minor units. Rules guarantee that every value is
exact (``tick * lot_kg`` is a multiple of 1,000 and every price is a multiple of ``tick``).

Invariants, checked on every outcome (``InvariantError``, which ``python -O`` does not strip):

- awarded + unsold == offered; when demand at the reserve covers the offering, unsold == 0;
- every award is whole lots, fills only the bid's own counted tiers, and stays within its
  counted lots and the per-bidder cap;
- nobody pays less than the reserve per tonne, nor more than its own bid for what it gets
  (which check_bid already bounded by the deposit when a bid guarantee applies);
- every amount is an exact ``value`` of integers; nothing is rounded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .draws import Draws

FORMATS = ("uniform", "pay_as_bid", "first_price", "second_price")
SINGLE_LOT_FORMATS = ("first_price", "second_price")
TIE_RULES = ("random_order", "pro_rata")
UNDERSUBSCRIBED = ("settle", "cancel")
MAX_TIERS = 20
MAX_CAP_BP = 10_000
KG_PER_TONNE = 1000
# Names the algorithm in every published outcome, so an auditor knows which spec to re-run.
ALGORITHM = "bluecarbon/auction-clearing/v1"

VALID = "valid"
REJECTED = "rejected"
CLEARED = "cleared"
CANCELLED = "cancelled"
OVER_CAP = "over_cap"
OVER_DEPOSIT = "over_deposit"
_TIER_KEYS = frozenset({"price", "lots"})


class RulesError(ValueError):
    """Auction rules that cannot be run. ``code`` is stable and machine readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvariantError(AssertionError):
    """The engine broke one of its own guarantees: a bug, never a property of the input."""


def _invariant(ok: bool, message: str) -> None:
    # Not `assert`: asserts vanish under `python -O`, and an auction must never settle on a
    # broken invariant.
    if not ok:
        raise InvariantError(message)


def _is_int(x: object) -> bool:
    # bool is a subclass of int; True lots or a True price is a bug upstream, not a 1.
    return type(x) is int


# --- Rules -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rules:
    format: str
    offered_lots: int
    lot_kg: int
    tick: int
    reserve: int
    cap_bp: int | None
    tie_rule: str
    undersubscribed: str
    bid_guarantee: bool

    def __post_init__(self) -> None:
        _check_format(self)
        _check_units(self)
        _check_cap(self)
        _check_policies(self)

    @property
    def single_lot(self) -> bool:
        return self.format in SINGLE_LOT_FORMATS

    @property
    def cap_lots(self) -> int | None:
        # Floor: a cap of 25 % of 10 lots is 2 lots, never 3 (a cap may only be rounded inwards).
        return None if self.cap_bp is None else self.offered_lots * self.cap_bp // MAX_CAP_BP

    def value(self, price: int, lots: int) -> int:
        """Minor units for ``lots`` lots at ``price`` per tonne; exact, never rounded."""
        if not (_is_int(price) and _is_int(lots)) or price < 0 or lots < 0:
            raise ValueError("value() needs a price >= 0 and lots >= 0, as integers")
        if price % self.tick:
            raise ValueError(f"price {price} is not a multiple of the tick {self.tick}")
        scaled = price * lots * self.lot_kg
        _invariant(scaled % KG_PER_TONNE == 0, f"value of {lots} lots at {price} is inexact")
        return scaled // KG_PER_TONNE


def _check_format(r: Rules) -> None:
    if type(r.format) is not str or r.format not in FORMATS:
        raise RulesError("invalid_format", f"format must be one of {', '.join(FORMATS)}")
    if not _is_int(r.offered_lots) or r.offered_lots < 1:
        raise RulesError("invalid_lots", "offered_lots must be an integer >= 1")
    if r.single_lot and r.offered_lots != 1:
        raise RulesError("invalid_lots", f"a {r.format} auction offers exactly one lot")


def _check_units(r: Rules) -> None:
    if not _is_int(r.lot_kg) or r.lot_kg < 1:
        raise RulesError("invalid_lot_kg", "lot_kg must be an integer >= 1")
    if not _is_int(r.tick) or r.tick < 1:
        raise RulesError("invalid_tick", "tick must be an integer >= 1 (minor units per tonne)")
    if (r.tick * r.lot_kg) % KG_PER_TONNE:
        # Otherwise a lot at some valid price would be worth a fraction of a minor unit.
        raise RulesError("inexact_tick", "tick * lot_kg must be a multiple of 1000")
    if not _is_int(r.reserve) or r.reserve < 0:
        raise RulesError("invalid_reserve", "reserve must be an integer >= 0")
    if r.reserve % r.tick:
        raise RulesError("reserve_off_tick", "reserve must be a multiple of tick")


def _check_cap(r: Rules) -> None:
    if r.cap_bp is None:
        return
    if not _is_int(r.cap_bp) or not 1 <= r.cap_bp <= MAX_CAP_BP:
        raise RulesError("invalid_cap", "cap_bp must be None or an integer from 1 to 10000")
    if r.cap_lots == 0:
        # Every bid would be trimmed to nothing: refuse the auction before anyone posts a deposit.
        raise RulesError("cap_below_one_lot", "the cap allows less than one lot per bidder")


def _check_policies(r: Rules) -> None:
    if type(r.tie_rule) is not str or r.tie_rule not in TIE_RULES:
        raise RulesError("invalid_tie_rule", f"tie_rule must be one of {', '.join(TIE_RULES)}")
    if type(r.undersubscribed) is not str or r.undersubscribed not in UNDERSUBSCRIBED:
        raise RulesError(
            "invalid_undersubscribed",
            f"undersubscribed must be one of {', '.join(UNDERSUBSCRIBED)}",
        )
    if type(r.bid_guarantee) is not bool:
        raise RulesError("invalid_bid_guarantee", "bid_guarantee must be True or False")


# --- Bid checks and trimming -------------------------------------------------------------------

Tiers = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Checked:
    bid: int
    bidder: int
    status: str
    reason: str | None
    tiers: Tiers
    trimmed: tuple[tuple[str, int], ...]

    @property
    def lots(self) -> int:
        return sum(lots for _, lots in self.tiers)


def check_bid(rules: Rules, *, bid: int, bidder: int, tiers: object, deposit: int) -> Checked:
    """Check one decrypted bid against the rules and trim it to the cap and the deposit."""
    if not (_is_int(bid) and _is_int(bidder)):
        raise TypeError("bid and bidder ids must be integers")
    if not _is_int(deposit) or deposit < 0:
        raise ValueError("deposit must be an integer >= 0 (minor units)")
    parsed = _parse_tiers(tiers)
    reason = "malformed_tiers" if parsed is None else _rejection(rules, parsed)
    if parsed is None or reason is not None:
        return Checked(bid, bidder, REJECTED, reason, (), ())
    ordered = sorted(parsed, reverse=True)  # prices are distinct here, so this is by price
    kept, trimmed = _trim(rules, ordered, deposit)
    if not kept:
        return Checked(bid, bidder, REJECTED, trimmed[0][0], (), trimmed)
    return Checked(bid, bidder, VALID, None, kept, trimmed)


@dataclass(frozen=True, slots=True)
class BidderBids:
    """A bidder's sealed bids checked one by one, and what counts of them together."""

    reasons: tuple[tuple[int, str | None], ...]  # (bid id, rejection code or None), by id
    combined: Checked | None  # None when no sealed bid of the bidder is well-formed


def check_bidder(
    rules: Rules, *, bidder: int, bids: Sequence[tuple[int, object]], deposit: int
) -> BidderBids:
    """Check every sealed bid of one bidder, then combine the well-formed ones into one
    bidder bid and trim that to the cap and the deposit, which limit a bidder, not a bid.

    Combining adds lots offered at the same price (a bidder's bids are one demand schedule, as
    RGGI and EU auctions treat several bids of one bidder). In a single-lot auction only the
    bidder's highest price can matter, so the combination is that price for the one lot. The
    combined bid takes the lowest id among the bidder's well-formed bids: ids stay unique and
    the canonical order (ties) stays a function of the ledger."""
    if not _is_int(bidder):
        raise TypeError("bidder ids must be integers")
    if not _is_int(deposit) or deposit < 0:
        raise ValueError("deposit must be an integer >= 0 (minor units)")
    reasons: list[tuple[int, str | None]] = []
    lots_at: dict[int, int] = {}
    first: int | None = None
    for bid, tiers in sorted(bids, key=lambda b: b[0]):
        if not _is_int(bid):
            raise TypeError("bid ids must be integers")
        parsed = _parse_tiers(tiers)
        reason = "malformed_tiers" if parsed is None else _rejection(rules, parsed)
        reasons.append((bid, reason))
        if parsed is None or reason is not None:
            continue
        first = bid if first is None else first
        for price, lots in parsed:
            lots_at[price] = lots_at.get(price, 0) + lots
    if first is None:
        return BidderBids(tuple(reasons), None)
    if rules.single_lot:
        lots_at = {max(lots_at): 1}
    ordered = sorted(lots_at.items(), reverse=True)
    kept, trimmed = _trim(rules, ordered, deposit)
    if not kept:
        return BidderBids(
            tuple(reasons), Checked(first, bidder, REJECTED, trimmed[0][0], (), trimmed)
        )
    return BidderBids(tuple(reasons), Checked(first, bidder, VALID, None, kept, trimmed))


def _parse_tiers(tiers: object) -> list[tuple[int, int]] | None:
    """The (price, lots) pairs of a JSON list of ``{"price": int, "lots": int}``, else None."""
    if type(tiers) is not list:
        return None
    parsed = []
    for tier in tiers:
        if type(tier) is not dict or tier.keys() != _TIER_KEYS:
            return None
        price, lots = tier["price"], tier["lots"]
        if not (_is_int(price) and _is_int(lots)):
            return None
        parsed.append((price, lots))
    return parsed


def _rejection(rules: Rules, tiers: list[tuple[int, int]]) -> str | None:
    # Code by code, each over every tier: the reported code does not depend on tier order.
    if not tiers:
        return "no_tiers"
    if len(tiers) > MAX_TIERS:
        return "too_many_tiers"
    per_tier: tuple[tuple[str, Callable[[int, int], bool]], ...] = (
        ("invalid_lots", lambda price, lots: lots < 1),
        ("invalid_price", lambda price, lots: price < 0),
        ("off_tick", lambda price, lots: price % rules.tick != 0),
        ("below_reserve", lambda price, lots: price < rules.reserve),
    )
    for code, fails in per_tier:
        if any(fails(price, lots) for price, lots in tiers):
            return code
    if len({price for price, _ in tiers}) != len(tiers):
        return "duplicate_price"
    if rules.single_lot and (len(tiers) != 1 or tiers[0][1] != 1):
        return "not_single_lot"
    return None


def _trim(
    rules: Rules, tiers: list[tuple[int, int]], deposit: int
) -> tuple[Tiers, tuple[tuple[str, int], ...]]:
    """Keep the longest run of lots, best price first, within the cap and the deposit.

    Both limits only grow along the walk (lots and value are cumulative), so the first lot that
    breaks either ends it: the rest of that tier and every lower tier are dropped, and all the
    dropped lots are put down to the limit that broke first (the cap, if both break at the same
    lot). So ``trimmed`` holds at most one reason.
    """
    lots_room = rules.cap_lots
    money_room = deposit if rules.bid_guarantee else None
    kept: list[tuple[int, int]] = []
    for index, (price, lots) in enumerate(tiers):
        by_cap = lots if lots_room is None else min(lots, lots_room)
        unit = rules.value(price, 1)  # value is linear in lots, since it is always exact
        by_money = lots if money_room is None or unit == 0 else min(lots, money_room // unit)
        fit = min(by_cap, by_money)
        if fit:
            kept.append((price, fit))
            lots_room = None if lots_room is None else lots_room - fit
            money_room = None if money_room is None else money_room - fit * unit
        if fit < lots:
            removed = lots - fit + sum(q for _, q in tiers[index + 1 :])
            reason = OVER_CAP if by_cap <= by_money else OVER_DEPOSIT
            return tuple(kept), ((reason, removed),)
    return tuple(kept), ()


# --- Outcome -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Award:
    bid: int
    bidder: int
    lots: int
    amount: int
    fills: Tiers


@dataclass(frozen=True, slots=True)
class Tie:
    price: int
    remainder: int
    bids: tuple[int, ...]
    order: tuple[int, ...]
    base: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Stats:
    valid_bids: int
    rejected_bids: int
    bidders: int
    winners: int
    demand_lots: int
    bid_to_cover: str
    hhi: int | None
    price_low: int | None
    price_high: int | None


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    undersubscribed: bool
    clearing_price: int | None
    offered_lots: int
    awarded_lots: int
    unsold_lots: int
    awards: tuple[Award, ...]
    tie: Tie | None
    stats: Stats


# bid id -> (price, lots filled) per tier, price descending, lots > 0
Fills = dict[int, Tiers]


def clear(rules: Rules, bids: Sequence[Checked], seed: bytes) -> Outcome:
    """Clear an auction. ``seed`` is the SHA-256 of the ledger entry that closed bidding."""
    draws = Draws(seed)  # built up front so a bad seed fails even when no tie needs it
    valid = _valid_bids(rules, bids)
    supply = rules.offered_lots
    demand = sum(c.lots for c in valid)
    # Every counted price is >= reserve, so all of the demand is demand at the reserve.
    undersubscribed = demand < supply
    tie: Tie | None = None
    if undersubscribed and rules.undersubscribed == "cancel":
        outcome = _cancelled(rules, bids, valid)
    else:
        if undersubscribed:
            fills, marginal = {c.bid: c.tiers for c in valid}, None
        else:
            fills, marginal, tie = _allocate(rules, valid, draws)
        awards, price = _price(rules, valid, fills, marginal)
        outcome = _outcome(rules, bids, valid, awards, price, tie, undersubscribed)
    _check_outcome(rules, valid, outcome)
    return outcome


def _valid_bids(rules: Rules, bids: Sequence[Checked]) -> list[Checked]:
    """The valid bids in canonical order (ascending bid id), after re-checking their shape."""
    seen_bids: set[int] = set()
    seen_bidders: set[int] = set()
    valid = []
    for c in bids:
        if type(c) is not Checked:
            raise TypeError("clear() takes the Checked results of check_bid")
        if c.bid in seen_bids:
            raise ValueError(f"bid id {c.bid} appears twice")
        seen_bids.add(c.bid)
        if c.status == REJECTED and c.reason is not None and c.tiers == ():
            continue
        if c.status != VALID or c.reason is not None or not _counted_ok(rules, c.tiers):
            raise ValueError(f"bid {c.bid} is not something check_bid produces for these rules")
        # Caps and deposits are per bidder but checked per bid: two bids from one bidder could
        # jointly exceed either, so the caller must keep only each bidder's last bid.
        if c.bidder in seen_bidders:
            raise ValueError(f"bidder {c.bidder} has more than one valid bid")
        seen_bidders.add(c.bidder)
        valid.append(c)
    return sorted(valid, key=lambda c: c.bid)


def _counted_ok(rules: Rules, tiers: Tiers) -> bool:
    prices = [price for price, _ in tiers]
    cap = rules.cap_lots
    return (
        bool(tiers)
        and all(_is_int(p) and _is_int(q) and q >= 1 and p >= rules.reserve for p, q in tiers)
        and all(p % rules.tick == 0 for p in prices)
        and all(a > b for a, b in pairwise(prices))
        and (cap is None or sum(q for _, q in tiers) <= cap)
        and (not rules.single_lot or (len(tiers) == 1 and tiers[0][1] == 1))
    )


def _allocate(rules: Rules, valid: list[Checked], draws: Draws) -> tuple[Fills, int, Tie | None]:
    """Fill from the highest price down; split the marginal price's tiers by the tie rule."""
    supply = rules.offered_lots
    at_price: dict[int, list[tuple[int, int]]] = {}  # price -> [(bid, lots)], ascending bid id
    for c in valid:
        for price, lots in c.tiers:
            at_price.setdefault(price, []).append((c.bid, lots))
    above = 0  # D(> p) while walking p downwards
    for marginal in sorted(at_price, reverse=True):
        tied = at_price[marginal]
        if above + sum(lots for _, lots in tied) >= supply:
            break
        above += sum(lots for _, lots in tied)
    else:  # pragma: no cover - the caller only allocates when demand covers supply
        raise InvariantError("no marginal price although demand covers supply")
    remainder = supply - above
    shares, tie = _split_tie(rules, marginal, remainder, tied, draws)
    fills: Fills = {}
    for c in valid:
        got = [(p, q) for p, q in c.tiers if p > marginal]
        if shares.get(c.bid):
            got.append((marginal, shares[c.bid]))
        if got:
            fills[c.bid] = tuple(got)
    return fills, marginal, tie


def _split_tie(
    rules: Rules, price: int, remainder: int, tied: list[tuple[int, int]], draws: Draws
) -> tuple[dict[int, int], Tie | None]:
    """Lots for each tied tier at the marginal price (tied is in ascending bid id order)."""
    wanted = sum(lots for _, lots in tied)
    _invariant(1 <= remainder <= wanted, "the remainder must fit the tied demand")
    if wanted == remainder:
        return dict(tied), None
    if len(tied) == 1:  # one tier partly filled: both rules give it the whole remainder
        return {tied[0][0]: remainder}, None
    if rules.tie_rule == "random_order":
        return _random_order(price, remainder, tied, draws)
    return _pro_rata(price, remainder, tied, draws)


def _random_order(
    price: int, remainder: int, tied: list[tuple[int, int]], draws: Draws
) -> tuple[dict[int, int], Tie]:
    order = [bid for bid, _ in tied]
    for i in range(len(order) - 1, 0, -1):  # Fisher-Yates (Knuth, TAOCP vol. 2, 3.4.2 P)
        j = draws.below(i + 1)
        order[i], order[j] = order[j], order[i]
    wanted = dict(tied)
    shares, left = {}, remainder
    for bid in order:
        shares[bid] = min(wanted[bid], left)
        left -= shares[bid]
    tie = Tie(price, remainder, tuple(b for b, _ in tied), tuple(order), ())
    return shares, tie


def _pro_rata(
    price: int, remainder: int, tied: list[tuple[int, int]], draws: Draws
) -> tuple[dict[int, int], Tie]:
    wanted = sum(lots for _, lots in tied)
    # Rounded down, so the base shares never exceed the remainder; as remainder < wanted, each
    # base share is below its tier's lots and so can take one more lot.
    shares = {bid: remainder * lots // wanted for bid, lots in tied}
    base = tuple(shares.items())
    leftover = remainder - sum(shares.values())
    _invariant(0 <= leftover < len(tied), "pro-rata leftover must be below the tied tiers")
    candidates = [bid for bid, _ in tied]
    drawn = []
    for _ in range(leftover):  # one lot each, without replacement
        drawn.append(candidates.pop(draws.below(len(candidates))))
        shares[drawn[-1]] += 1
    tie = Tie(price, remainder, tuple(b for b, _ in tied), tuple(drawn), base)
    return shares, tie


def _price(
    rules: Rules, valid: list[Checked], fills: Fills, marginal: int | None
) -> tuple[tuple[Award, ...], int | None]:
    """Awards with their amounts, and the published clearing price.

    ``marginal`` is None for an undersubscribed auction that settles (every tier filled).
    """
    bidder = {c.bid: c.bidder for c in valid}
    if not fills:
        return (), None
    if rules.format == "uniform":
        unit = rules.reserve if marginal is None else marginal
        amounts = {bid: rules.value(unit, _lots(f)) for bid, f in fills.items()}
        price = unit
    elif rules.format == "pay_as_bid":
        amounts = {bid: _own_value(rules, f) for bid, f in fills.items()}
        lowest = min(p for f in fills.values() for p, _ in f)
        price = lowest if marginal is None else marginal
    elif rules.format == "first_price":
        (winner,) = fills
        price = fills[winner][0][0]
        amounts = {winner: rules.value(price, 1)}
    else:  # second_price (Vickrey)
        (winner,) = fills
        others = [c.tiers[0][0] for c in valid if c.bid != winner]
        price = max([*others, rules.reserve])  # a tie at the top pays the tied price
        amounts = {winner: rules.value(price, 1)}
    awards = tuple(
        Award(bid, bidder[bid], _lots(fills[bid]), amounts[bid], fills[bid])
        for bid in sorted(fills)
    )
    return awards, price


def _lots(tiers: Tiers) -> int:
    return sum(lots for _, lots in tiers)


def _own_value(rules: Rules, tiers: Tiers) -> int:
    return sum(rules.value(price, lots) for price, lots in tiers)


def _cancelled(rules: Rules, bids: Sequence[Checked], valid: list[Checked]) -> Outcome:
    stats = _stats(rules, bids, valid, ())
    return Outcome(
        CANCELLED, True, None, rules.offered_lots, 0, rules.offered_lots, (), None, stats
    )


def _outcome(
    rules: Rules,
    bids: Sequence[Checked],
    valid: list[Checked],
    awards: tuple[Award, ...],
    price: int | None,
    tie: Tie | None,
    undersubscribed: bool,
) -> Outcome:
    awarded = sum(a.lots for a in awards)
    return Outcome(
        status=CLEARED,
        undersubscribed=undersubscribed,
        clearing_price=price,
        offered_lots=rules.offered_lots,
        awarded_lots=awarded,
        unsold_lots=rules.offered_lots - awarded,
        awards=awards,
        tie=tie,
        stats=_stats(rules, bids, valid, awards),
    )


def _stats(
    rules: Rules, bids: Sequence[Checked], valid: list[Checked], awards: tuple[Award, ...]
) -> Stats:
    demand = sum(c.lots for c in valid)
    prices = [price for c in valid for price, _ in c.tiers]
    per_bidder: dict[int, int] = {}
    for a in awards:
        per_bidder[a.bidder] = per_bidder.get(a.bidder, 0) + a.lots
    return Stats(
        valid_bids=len(valid),
        rejected_bids=len(bids) - len(valid),
        bidders=len({c.bidder for c in valid}),
        winners=len(per_bidder),
        demand_lots=demand,
        bid_to_cover=_ratio(demand, rules.offered_lots),
        hhi=_hhi(list(per_bidder.values())),
        price_low=min(prices, default=None),
        price_high=max(prices, default=None),
    )


def _ratio(numerator: int, denominator: int) -> str:
    """numerator / denominator truncated (not rounded) to two decimals: 47/20 -> "2.35"."""
    hundredths = numerator * 100 // denominator
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def _hhi(lots: list[int]) -> int | None:
    """Herfindahl-Hirschman index on percentage shares (0..10000), rounded down."""
    total = sum(lots)
    if not total:
        return None
    return 10_000 * sum(a * a for a in lots) // (total * total)


def _check_outcome(rules: Rules, valid: list[Checked], o: Outcome) -> None:
    counted = {c.bid: c for c in valid}
    _invariant(o.awarded_lots + o.unsold_lots == o.offered_lots, "awarded + unsold != offered")
    _invariant(0 <= o.awarded_lots <= o.offered_lots == rules.offered_lots, "lots out of range")
    _invariant(o.awarded_lots == sum(a.lots for a in o.awards), "awarded_lots != sum of awards")
    if o.stats.demand_lots >= o.offered_lots:
        _invariant(o.unsold_lots == 0, "demand covers the offering but lots are unsold")
    if o.status == CANCELLED:
        _invariant(not o.awards and o.clearing_price is None, "a cancelled auction awards")
    _invariant((o.clearing_price is None) == (not o.awards), "clearing price without awards")
    ids = [a.bid for a in o.awards]
    _invariant(ids == sorted(set(ids)), "awards must be unique and sorted by bid id")
    for a in o.awards:
        _check_award(rules, counted[a.bid], a, o.clearing_price)


def _check_award(rules: Rules, c: Checked, a: Award, clearing_price: int | None) -> None:
    own = dict(c.tiers)
    _invariant(a.bidder == c.bidder and a.lots >= 1, f"bid {a.bid}: bad award")
    _invariant(a.lots == _lots(a.fills) <= c.lots, f"bid {a.bid}: more lots than counted")
    _invariant(
        all(_is_int(q) and 1 <= q <= own.get(p, 0) for p, q in a.fills),
        f"bid {a.bid}: a fill is not within one of the bid's tiers",
    )
    cap = rules.cap_lots
    _invariant(cap is None or a.lots <= cap, f"bid {a.bid}: award above the cap")
    _invariant(
        rules.value(rules.reserve, a.lots) <= a.amount <= _own_value(rules, a.fills),
        f"bid {a.bid}: pays below the reserve or above its own bid",
    )
    _invariant(
        clearing_price is not None and clearing_price >= rules.reserve,
        "clearing price below the reserve",
    )


# --- JSON --------------------------------------------------------------------------------------


def _pairs(tiers: Tiers) -> list[dict[str, int]]:
    return [{"price": price, "lots": lots} for price, lots in tiers]


def outcome_to_json(o: Outcome) -> dict[str, Any]:
    """The outcome as plain JSON values (ints, strings, bools, None, lists, dicts) with stable
    member names, ready for an RFC 8785 ledger entry."""
    tie = None
    if o.tie is not None:
        tie = {
            "price": o.tie.price,
            "remainder": o.tie.remainder,
            "bids": list(o.tie.bids),
            "order": list(o.tie.order),
            "base": [{"bid": bid, "lots": lots} for bid, lots in o.tie.base],
        }
    s = o.stats
    return {
        "algorithm": ALGORITHM,
        "status": o.status,
        "undersubscribed": o.undersubscribed,
        "clearing_price": o.clearing_price,
        "offered_lots": o.offered_lots,
        "awarded_lots": o.awarded_lots,
        "unsold_lots": o.unsold_lots,
        "awards": [
            {
                "bid": a.bid,
                "bidder": a.bidder,
                "lots": a.lots,
                "amount": a.amount,
                "fills": _pairs(a.fills),
            }
            for a in o.awards
        ],
        "tie": tie,
        "stats": {
            "valid_bids": s.valid_bids,
            "rejected_bids": s.rejected_bids,
            "bidders": s.bidders,
            "winners": s.winners,
            "demand_lots": s.demand_lots,
            "bid_to_cover": s.bid_to_cover,
            "hhi": s.hhi,
            "price_low": s.price_low,
            "price_high": s.price_high,
        },
    }


def rules_to_json(rules: Rules) -> dict[str, Any]:
    """The rules as JSON values, for the ledger entry that opens or clears an auction."""
    return {
        "format": rules.format,
        "offered_lots": rules.offered_lots,
        "lot_kg": rules.lot_kg,
        "tick": rules.tick,
        "reserve": rules.reserve,
        "cap_bp": rules.cap_bp,
        "tie_rule": rules.tie_rule,
        "undersubscribed": rules.undersubscribed,
        "bid_guarantee": rules.bid_guarantee,
    }


def checked_to_json(c: Checked) -> dict[str, Any]:
    """One checked bid as JSON values, so a clearing entry records exactly what was counted."""
    return {
        "bid": c.bid,
        "bidder": c.bidder,
        "status": c.status,
        "reason": c.reason,
        "tiers": _pairs(c.tiers),
        "trimmed": [{"reason": reason, "lots": lots} for reason, lots in c.trimmed],
    }
