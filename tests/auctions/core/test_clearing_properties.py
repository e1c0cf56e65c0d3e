"""Hypothesis properties of auctions.core.clearing and auctions.core.draws. Pure Python.

Auctions are drawn over every format, tie rule and undersubscription policy, with few distinct
prices so that ties at the marginal price are common, and with some malformed tiers so that
rejected bids are mixed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from auctions.core.clearing import (
    FORMATS,
    TIE_RULES,
    UNDERSUBSCRIBED,
    Checked,
    Outcome,
    Rules,
    check_bid,
    clear,
    outcome_to_json,
)
from auctions.core.draws import Draws

LOT_KGS = (1, 250, 1000, 1500, 500_000, 1_000_000, 2_340_100)
SEEDS = st.binary(min_size=32, max_size=32)


@dataclass(frozen=True)
class RawBid:
    bid: int
    bidder: int
    tiers: object
    deposit: int


@dataclass(frozen=True)
class Auction:
    rules: Rules
    raw: tuple[RawBid, ...]
    seed: bytes

    def checked(self, raw: tuple[RawBid, ...] | None = None) -> list[Checked]:
        return [
            check_bid(self.rules, bid=r.bid, bidder=r.bidder, tiers=r.tiers, deposit=r.deposit)
            for r in (self.raw if raw is None else raw)
        ]

    def clear(self) -> Outcome:
        return clear(self.rules, self.checked(), self.seed)

    def deposit_of(self, bid: int) -> int:
        return next(r.deposit for r in self.raw if r.bid == bid)


@st.composite
def rules_st(draw: st.DrawFn, formats: tuple[str, ...], max_offered: int) -> Rules:
    format = draw(st.sampled_from(formats))
    offered = 1 if format in ("first_price", "second_price") else draw(st.integers(1, max_offered))
    lot_kg = draw(st.sampled_from(LOT_KGS))
    tick = 1000 // math.gcd(lot_kg, 1000) * draw(st.integers(1, 3))  # smallest exact tick, times k
    # The smallest cap that still allows one lot: cap_lots = offered * cap_bp // 10000 >= 1.
    cap = st.none() | st.integers(-(-10_000 // offered), 10_000)
    return Rules(
        format=format,
        offered_lots=offered,
        lot_kg=lot_kg,
        tick=tick,
        reserve=tick * draw(st.integers(0, 4)),
        cap_bp=draw(cap),
        tie_rule=draw(st.sampled_from(TIE_RULES)),
        undersubscribed=draw(st.sampled_from(UNDERSUBSCRIBED)),
        bid_guarantee=draw(st.booleans()),
    )


def rarely(common: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int) -> Any:
    """``odd`` about once in ``one_in`` draws, else ``common`` (``|`` would make it one in two)."""
    return st.integers(1, one_in).flatmap(lambda k: odd if k == one_in // 2 else common)


@st.composite
def tiers_st(draw: st.DrawFn, rules: Rules, price_steps: int) -> object:
    # Prices on a small grid above the reserve so that ties are common; now and then a price
    # below the reserve, zero lots, an empty list or a non-list, so rejected bids mix in.
    step = rarely(st.integers(0, price_steps), st.just(-1), 25)
    price = step.map(lambda k: rules.reserve + k * rules.tick)
    lots = st.just(1) if rules.single_lot else st.integers(1, 12)
    tier = st.fixed_dictionaries({"price": price, "lots": rarely(lots, st.integers(0, 2), 25)})
    tiers = st.lists(tier, min_size=1, max_size=1 if rules.single_lot else 4)
    odd = st.just([]) | st.just({"price": rules.reserve, "lots": 1})
    return draw(rarely(tiers, odd, 20))


@st.composite
def auction_st(
    draw: st.DrawFn,
    formats: tuple[str, ...] = FORMATS,
    max_offered: int = 30,
    min_bids: int = 0,
    price_steps: int = 6,
) -> Auction:
    rules = draw(rules_st(formats, max_offered))
    count = draw(st.integers(min_bids, 8))
    ids = draw(st.lists(st.integers(1, 10**6), min_size=count, max_size=count, unique=True))
    top = rules.value(rules.reserve + 6 * rules.tick, 12)  # roughly the largest bid's value
    raw = []
    for index, bid_id in enumerate(ids):
        tiers = draw(tiers_st(rules, price_steps))
        deposit = draw(st.integers(0, top) | st.just(top))  # half the time enough for anything
        raw.append(RawBid(bid_id, 5000 + index, tiers, deposit))  # one bid per bidder
    return Auction(rules, tuple(raw), draw(SEEDS))


def demand_at(checked: list[Checked], price: int, *, strictly_above: bool = False) -> int:
    return sum(
        lots
        for c in checked
        if c.status == "valid"
        for p, lots in c.tiers
        if (p > price if strictly_above else p >= price)
    )


# --- Invariants --------------------------------------------------------------------------------


@given(auction_st())
def test_awarded_plus_unsold_is_the_offering_and_awards_stay_within_every_limit(a: Auction):
    rules, checked = a.rules, a.checked()
    o = clear(rules, checked, a.seed)
    counted = {c.bid: c for c in checked if c.status == "valid"}
    assert o.awarded_lots + o.unsold_lots == o.offered_lots == rules.offered_lots
    assert o.awarded_lots == sum(award.lots for award in o.awards)
    assert [award.bid for award in o.awards] == sorted({award.bid for award in o.awards})
    for award in o.awards:
        c = counted[award.bid]
        own = dict(c.tiers)
        assert type(award.lots) is int and 1 <= award.lots <= c.lots
        assert all(type(q) is int and 1 <= q <= own[p] for p, q in award.fills)
        assert award.lots == sum(q for _, q in award.fills)
        assert all(p >= rules.reserve for p, _ in award.fills)
        assert award.amount >= rules.value(rules.reserve, award.lots)  # never below the reserve
        assert rules.cap_lots is None or award.lots <= rules.cap_lots
        if rules.bid_guarantee:
            assert award.amount <= a.deposit_of(award.bid)
    if o.clearing_price is not None:
        assert o.clearing_price >= rules.reserve


@given(auction_st())
def test_every_counted_bid_respects_its_cap_and_deposit(a: Auction):
    rules = a.rules
    for raw, c in zip(a.raw, a.checked(), strict=True):
        if c.status != "valid":
            assert c.tiers == ()
            continue
        assert [p for p, _ in c.tiers] == sorted({p for p, _ in c.tiers}, reverse=True)
        assert rules.cap_lots is None or c.lots <= rules.cap_lots
        if rules.bid_guarantee:
            assert sum(rules.value(p, q) for p, q in c.tiers) <= raw.deposit
        # Trimming only removes lots, and says how many.
        assert isinstance(raw.tiers, list)
        assert c.lots + sum(n for _, n in c.trimmed) == sum(t["lots"] for t in raw.tiers)
        assert len(c.trimmed) <= 1


@given(auction_st())
def test_trimming_matches_a_lot_by_lot_walk(a: Auction):
    # Re-derive trimming one lot at a time, best price first: stop at the first lot that would
    # break the cap or the deposit (the cap named if both break there).
    rules = a.rules
    for raw, c in zip(a.raw, a.checked(), strict=True):
        if c.reason not in (None, "over_cap", "over_deposit"):
            continue
        assert isinstance(raw.tiers, list)
        ordered = sorted(raw.tiers, key=lambda t: -t["price"])
        walk: dict[int, int] = {}
        value, kept, reason = 0, 0, None
        for price in [t["price"] for t in ordered for _ in range(t["lots"])]:
            over_cap = rules.cap_lots is not None and kept + 1 > rules.cap_lots
            over_deposit = rules.bid_guarantee and value + rules.value(price, 1) > raw.deposit
            if over_cap or over_deposit:
                reason = "over_cap" if over_cap else "over_deposit"
                break
            walk[price] = walk.get(price, 0) + 1
            value, kept = value + rules.value(price, 1), kept + 1
        total = sum(t["lots"] for t in raw.tiers)
        assert c.trimmed == (((reason, total - kept),) if reason else ())
        if kept:
            assert (c.status, c.tiers) == ("valid", tuple(walk.items()))
        else:
            assert (c.status, c.reason, c.tiers) == ("rejected", reason, ())


@given(auction_st())
def test_nothing_is_lost_to_rounding(a: Auction):
    rules, o = a.rules, a.clear()
    for award in o.awards:
        own_value = sum(rules.value(p, q) for p, q in award.fills)
        if rules.format == "pay_as_bid":
            assert award.amount == own_value
        elif rules.format == "first_price":
            assert award.amount == own_value == rules.value(o.clearing_price, 1)
        else:  # uniform and second price: one price per tonne for every lot
            assert o.clearing_price is not None
            assert award.amount == rules.value(o.clearing_price, award.lots) <= own_value
    if rules.format == "uniform" and o.clearing_price is not None:
        # The sum of the parts is the value of the whole: no minor unit appears or vanishes.
        assert sum(x.amount for x in o.awards) == rules.value(o.clearing_price, o.awarded_lots)


@given(auction_st())
def test_the_marginal_price_is_where_demand_first_covers_supply(a: Auction):
    rules, checked = a.rules, a.checked()
    o = clear(rules, checked, a.seed)
    supply = rules.offered_lots
    if demand_at(checked, rules.reserve) < supply:
        assert o.undersubscribed
        if rules.undersubscribed == "cancel":
            assert (o.status, o.awards, o.unsold_lots) == ("cancelled", (), supply)
        else:
            # Everything counted is filled in full.
            assert o.awarded_lots == demand_at(checked, rules.reserve)
        return
    assert not o.undersubscribed and o.unsold_lots == 0 and o.status == "cleared"
    prices = {p for c in checked if c.status == "valid" for p, _ in c.tiers}
    marginal = max(p for p in prices if demand_at(checked, p) >= supply)
    fills = {(award.bid, p): q for award in o.awards for p, q in award.fills}
    for c in checked:
        for p, q in c.tiers if c.status == "valid" else ():
            got = fills.get((c.bid, p), 0)
            if p > marginal:
                assert got == q  # above the margin: filled in full
            elif p < marginal:
                assert got == 0  # below it: nothing
    if rules.format in ("uniform", "pay_as_bid", "first_price"):
        assert o.clearing_price == marginal
    else:
        (winner,) = o.awards
        others = [c.tiers[0][0] for c in checked if c.status == "valid" and c.bid != winner.bid]
        assert o.clearing_price == max([*others, rules.reserve])


# Few prices and many bids: large ties, with several leftover lots to draw under pro rata.
@given(auction_st(min_bids=4, price_steps=1) | auction_st())
def test_a_tie_is_split_by_its_rule(a: Auction):
    o = a.clear()
    tie = o.tie
    if tie is None:
        return
    got = {award.bid: dict(award.fills).get(tie.price, 0) for award in o.awards}
    shares = [got.get(bid, 0) for bid in tie.bids]
    assert sum(shares) == tie.remainder and len(tie.bids) >= 2
    assert list(tie.bids) == sorted(tie.bids)
    # Replaying the generator from the seed gives the recorded order: the tie is the only
    # consumer of draws, and it draws exactly as specified.
    draws = Draws(a.seed)
    if a.rules.tie_rule == "pro_rata":
        candidates = list(tie.bids)
        assert [candidates.pop(draws.below(len(candidates))) for _ in tie.order] == list(tie.order)
    else:
        order = list(tie.bids)
        for i in range(len(order) - 1, 0, -1):
            j = draws.below(i + 1)
            order[i], order[j] = order[j], order[i]
        assert order == list(tie.order)
    if a.rules.tie_rule == "pro_rata":
        base = dict(tie.base)
        assert [b for b, _ in tie.base] == list(tie.bids)
        assert len(set(tie.order)) == len(tie.order) == tie.remainder - sum(base.values())
        for bid, share in zip(tie.bids, shares, strict=True):
            assert share == base[bid] + (bid in tie.order)
    else:
        assert sorted(tie.order) == list(tie.bids) and tie.base == ()
        # Filled greedily in the drawn order: a later bid gets lots only if earlier ones are full.
        wanted = {c.bid: dict(c.tiers)[tie.price] for c in a.checked() if c.bid in tie.bids}
        left = tie.remainder
        for bid in tie.order:
            assert got.get(bid, 0) == min(wanted[bid], left)
            left -= got.get(bid, 0)


@given(auction_st())
def test_demand_covering_supply_leaves_nothing_unsold(a: Auction):
    checked = a.checked()
    o = clear(a.rules, checked, a.seed)
    if demand_at(checked, a.rules.reserve) >= a.rules.offered_lots:
        assert o.unsold_lots == 0 and o.awarded_lots == a.rules.offered_lots


# --- Determinism and symmetry ------------------------------------------------------------------


@given(auction_st())
def test_the_same_inputs_and_seed_give_the_same_outcome(a: Auction):
    first, second = a.clear(), a.clear()
    assert first == second
    assert outcome_to_json(first) == outcome_to_json(second)


@given(auction_st(), st.randoms(use_true_random=False))
def test_the_order_of_the_bids_does_not_matter(a: Auction, random: Any):
    checked = a.checked()
    shuffled = list(checked)
    random.shuffle(shuffled)
    assert clear(a.rules, shuffled, a.seed) == clear(a.rules, checked, a.seed)


# Few lots and many bids, so that most auctions have a bid that wins nothing.
@given(auction_st(formats=("uniform", "pay_as_bid"), max_offered=10, min_bids=3), st.data())
def test_raising_a_losing_bid_never_lowers_the_clearing_price(a: Auction, data: st.DataObject):
    before = a.clear()
    winners = {award.bid for award in before.awards}
    losers = [
        r
        for r, c in zip(a.raw, a.checked(), strict=True)
        if c.status == "valid" and r.bid not in winners
    ]
    assume(losers and before.clearing_price is not None)
    loser = data.draw(st.sampled_from(losers))
    assert isinstance(loser.tiers, list)
    index = data.draw(st.integers(0, len(loser.tiers) - 1))
    steps = data.draw(st.integers(1, 8))
    tiers = [dict(t) for t in loser.tiers]
    tiers[index]["price"] += steps * a.rules.tick
    assume(len({t["price"] for t in tiers}) == len(tiers))  # still no duplicate price
    raised = tuple(RawBid(r.bid, r.bidder, tiers, r.deposit) if r is loser else r for r in a.raw)
    after = clear(a.rules, a.checked(raised), a.seed)
    assert after.clearing_price is not None and after.clearing_price >= before.clearing_price


# --- Draws -------------------------------------------------------------------------------------


@given(SEEDS, st.lists(st.integers(1, 2**64), min_size=1, max_size=20))
def test_below_stays_in_range(seed: bytes, bounds: list[int]):
    draws = Draws(seed)
    for n in bounds:
        assert 0 <= draws.below(n) < n


def test_below_is_roughly_uniform():
    # Chi-square on a fixed seed, so the test is deterministic. For k buckets the statistic has
    # k - 1 degrees of freedom; each bound is far above its 99.99th percentile (about 15 for 1
    # d.f., 33 for 9, 52 for 20), so only a gross bias fails. Integer arithmetic throughout:
    # chi2 = sum((c - N/k)^2 / (N/k)) = sum((k*c - N)^2) / (k*N).
    draws = Draws(bytes(range(32)))
    for k, bound in ((2, 20), (3, 22), (7, 30), (10, 35), (21, 55)):
        total = 2000 * k
        counts = [0] * k
        for _ in range(total):
            counts[draws.below(k)] += 1
        assert sum((k * c - total) ** 2 for c in counts) < bound * k * total, (k, counts)
