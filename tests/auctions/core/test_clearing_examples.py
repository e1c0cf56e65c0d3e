"""Worked examples for auctions.core.clearing, each derived by hand from docs/auctions-clearing.md.

Pure Python (no Django). Random tie-breaks use two seeds whose words are pinned in
test_draws.py (no word is rejected for the small n used here):

- zero seed: w0 = 13910146962208090060, w1 = 2683893851452638222, so
  w0 % 2 = 0, w0 % 3 = 1, w0 % 4 = 0, w1 % 2 = 0, w1 % 3 = 0;
- counting seed (00 01 .. 1f): w0 = 15693486912419363648, w1 = 2305203211034354770, so
  w0 % 3 = 2, w1 % 2 = 0.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import rfc8785

from auctions.core.clearing import (
    MAX_TIERS,
    Award,
    Checked,
    Rules,
    RulesError,
    Tie,
    check_bid,
    checked_to_json,
    clear,
    outcome_to_json,
    rules_to_json,
)

ZERO_SEED = bytes(32)
COUNTING_SEED = bytes(range(32))
PLENTY = 10**15  # a deposit no bid here reaches


def make_rules(**overrides: Any) -> Rules:
    fields: dict[str, Any] = {
        "format": "uniform",
        "offered_lots": 10,
        "lot_kg": 1_000_000,  # lots of 1,000 t, as RGGI and California-Quebec
        "tick": 1,
        "reserve": 0,
        "cap_bp": None,
        "tie_rule": "random_order",
        "undersubscribed": "settle",
        "bid_guarantee": False,
    }
    fields.update(overrides)
    return Rules(**fields)


def tiers_json(*tiers: tuple[int, int]) -> list[dict[str, int]]:
    return [{"price": price, "lots": lots} for price, lots in tiers]


def bid(
    rules: Rules, bid_id: int, *tiers: tuple[int, int], deposit: int = PLENTY, bidder: int = 0
) -> Checked:
    """A checked bid; the bidder id defaults to bid id + 1000."""
    return check_bid(
        rules,
        bid=bid_id,
        bidder=bidder or bid_id + 1000,
        tiers=tiers_json(*tiers),
        deposit=deposit,
    )


def lots_by_bid(awards: tuple[Award, ...]) -> dict[int, int]:
    return {a.bid: a.lots for a in awards}


# --- Uniform price -----------------------------------------------------------------------------


def test_rggi_style_uniform_price_with_a_25_percent_cap():
    # 20 lots of 1,000 t, reserve 2.50/t, cap 25 % -> cap_lots = 20 * 2500 // 10000 = 5.
    rules = make_rules(offered_lots=20, reserve=250, cap_bp=2500)
    bids = [
        bid(rules, 1, (700, 4), (650, 4)),  # 4 + 1 counted: 3 lots over the cap
        bid(rules, 2, (680, 3)),
        bid(rules, 3, (660, 5), (600, 5)),  # the whole 600 tier is over the cap
        bid(rules, 4, (650, 5)),
        bid(rules, 5, (300, 2), (640, 6)),  # sorted: 640 x 6 -> 5, then 300 dropped (1 + 2)
        bid(rules, 6, (200, 3)),  # below the reserve
    ]
    assert bids[0].tiers == ((700, 4), (650, 1)) and bids[0].trimmed == (("over_cap", 3),)
    assert bids[2].tiers == ((660, 5),) and bids[2].trimmed == (("over_cap", 5),)
    assert bids[4].tiers == ((640, 5),) and bids[4].trimmed == (("over_cap", 3),)
    assert (bids[5].status, bids[5].reason) == ("rejected", "below_reserve")
    # Counted demand: D(700) = 4, D(680) = 7, D(660) = 12, D(650) = 18, D(640) = 23 >= 20.
    # P = 640; the tiers above fill (18 lots); R = 2 goes to the only tier at 640 (bid 5).
    # Without the cap, bid 1's 650 tier would count 4 and D(650) = 21 would clear at 650.
    o = clear(rules, bids, ZERO_SEED)
    assert (o.status, o.undersubscribed, o.clearing_price) == ("cleared", False, 640)
    assert lots_by_bid(o.awards) == {1: 5, 2: 3, 3: 5, 4: 5, 5: 2}
    assert o.tie is None
    # Everyone pays 6.40/t: a lot of 1,000 t is 640,000 minor units.
    assert {a.bid: a.amount for a in o.awards} == {
        1: 3_200_000,
        2: 1_920_000,
        3: 3_200_000,
        4: 3_200_000,
        5: 1_280_000,
    }
    assert o.awards[0].fills == ((700, 4), (650, 1))
    assert (o.awarded_lots, o.unsold_lots) == (20, 0)
    s = o.stats
    assert (s.valid_bids, s.rejected_bids, s.bidders, s.winners) == (5, 1, 5, 5)
    # 23 / 20 = 1.15; HHI = 10000 * (25 + 9 + 25 + 25 + 4) // 20**2 = 2200.
    assert (s.demand_lots, s.bid_to_cover, s.hhi) == (23, "1.15", 2200)
    assert (s.price_low, s.price_high) == (640, 700)


def test_eu_style_random_order_tie_gives_the_last_filled_bid_the_remainder():
    # 10 lots of 500 t, prices in cents, no reserve.
    rules = make_rules(lot_kg=500_000)
    bids = [
        bid(rules, 11, (8000, 4)),
        bid(rules, 12, (7950, 3)),
        bid(rules, 13, (7950, 2)),
        bid(rules, 14, (7950, 4)),
        bid(rules, 15, (7900, 5)),
    ]
    # D(8000) = 4, D(7950) = 13 >= 10: P = 7950, R = 6, tied [12, 13, 14] wanting 9.
    # Fisher-Yates: i = 2, j = below(3) = w0 % 3 = 1 -> [12, 14, 13];
    #               i = 1, j = below(2) = w1 % 2 = 0 -> [14, 12, 13].
    # Fill in that order: 14 gets 4 (2 left), 12 gets the remaining 2, 13 gets none.
    o = clear(rules, bids, ZERO_SEED)
    assert o.clearing_price == 7950
    assert o.tie == Tie(price=7950, remainder=6, bids=(12, 13, 14), order=(14, 12, 13), base=())
    assert lots_by_bid(o.awards) == {11: 4, 12: 2, 14: 4}
    # value(7950, 1) = 7950 * 500_000 // 1000 = 3_975_000 (79.50 EUR/t * 500 t).
    assert {a.bid: a.amount for a in o.awards} == {11: 15_900_000, 12: 7_950_000, 14: 15_900_000}
    assert o.awards[1].fills == ((7950, 2),)


def test_california_quebec_pro_rata_tie_hands_out_leftover_lots_by_draw():
    rules = make_rules(reserve=2404, tie_rule="pro_rata", bid_guarantee=True)
    bids = [
        bid(rules, 21, (3000, 6)),
        bid(rules, 22, (2900, 2), (2800, 3)),
        bid(rules, 23, (2900, 2)),
        bid(rules, 24, (2900, 5)),
    ]
    # D(3000) = 6, D(2900) = 15 >= 10: P = 2900, R = 4, tied Q = 2 + 2 + 5 = 9.
    # Base shares 4*2//9 = 0, 4*2//9 = 0, 4*5//9 = 2; leftover 4 - 2 = 2 lots, one each.
    # Counting seed: draw 1: below(3) = w0 % 3 = 2 -> bid 24 (candidates now [22, 23]);
    # draw 2: below(2) = w1 % 2 = 0 -> bid 22. Bid 23 is tied but gets nothing.
    o = clear(rules, bids, COUNTING_SEED)
    assert o.tie == Tie(
        price=2900, remainder=4, bids=(22, 23, 24), order=(24, 22), base=((22, 0), (23, 0), (24, 2))
    )
    assert lots_by_bid(o.awards) == {21: 6, 22: 1, 24: 3}
    # Everyone pays 29.00/t: 2,900,000 a lot. Bid 22's 2800 tier is not reached.
    assert {a.bid: a.amount for a in o.awards} == {21: 17_400_000, 22: 2_900_000, 24: 8_700_000}
    assert o.awards[1].fills == ((2900, 1),)
    assert (o.awarded_lots, o.unsold_lots, o.stats.winners) == (10, 0, 3)


def test_a_tie_of_exactly_the_remainder_needs_no_draw():
    rules = make_rules(offered_lots=5, tie_rule="pro_rata")
    o = clear(rules, [bid(rules, 1, (100, 2)), bid(rules, 2, (100, 3))], ZERO_SEED)
    assert o.tie is None and lots_by_bid(o.awards) == {1: 2, 2: 3}


def test_a_pro_rata_tie_without_leftover_records_the_shares_and_draws_nothing():
    # R = 4 of Q = 8: shares 4*4//8 = 2 and 2; no leftover, so order is empty.
    rules = make_rules(offered_lots=4, tie_rule="pro_rata")
    o = clear(rules, [bid(rules, 1, (100, 4)), bid(rules, 2, (100, 4))], ZERO_SEED)
    assert o.tie == Tie(100, 4, (1, 2), (), ((1, 2), (2, 2)))
    assert lots_by_bid(o.awards) == {1: 2, 2: 2}


def test_a_single_tier_at_the_margin_is_partly_filled_without_a_tie():
    rules = make_rules(offered_lots=5)
    o = clear(rules, [bid(rules, 1, (200, 2)), bid(rules, 2, (100, 9))], ZERO_SEED)
    assert o.tie is None and lots_by_bid(o.awards) == {1: 2, 2: 3} and o.clearing_price == 100


# --- Undersubscribed ---------------------------------------------------------------------------


def undersubscribed_bids(rules: Rules) -> list[Checked]:
    # 3 + 4 = 7 lots against 10 offered, both above the reserve of 20.00.
    return [bid(rules, 1, (2500, 3)), bid(rules, 2, (2100, 4))]


def test_an_undersubscribed_uniform_auction_settles_everyone_at_the_reserve():
    rules = make_rules(reserve=2000, undersubscribed="settle")
    o = clear(rules, undersubscribed_bids(rules), ZERO_SEED)
    assert (o.status, o.undersubscribed, o.clearing_price) == ("cleared", True, 2000)
    assert (o.awarded_lots, o.unsold_lots) == (7, 3)
    # 2,000,000 a lot at the reserve, whatever was bid.
    assert {a.bid: a.amount for a in o.awards} == {1: 6_000_000, 2: 8_000_000}
    assert o.stats.bid_to_cover == "0.70"


def test_an_undersubscribed_pay_as_bid_auction_settles_each_at_its_own_prices():
    rules = make_rules(format="pay_as_bid", reserve=2000)
    o = clear(rules, undersubscribed_bids(rules), ZERO_SEED)
    # The published price is the lowest filled price.
    assert (o.undersubscribed, o.clearing_price) == (True, 2100)
    assert {a.bid: a.amount for a in o.awards} == {1: 7_500_000, 2: 8_400_000}


def test_an_undersubscribed_auction_with_the_cancel_policy_awards_nothing():
    rules = make_rules(reserve=2000, undersubscribed="cancel")
    o = clear(rules, undersubscribed_bids(rules), ZERO_SEED)
    assert (o.status, o.undersubscribed, o.clearing_price) == ("cancelled", True, None)
    assert (o.awards, o.tie, o.awarded_lots, o.unsold_lots) == ((), None, 0, 10)
    # The statistics still describe the bids.
    assert (o.stats.bidders, o.stats.demand_lots, o.stats.winners, o.stats.hhi) == (2, 7, 0, None)


def test_an_auction_without_bids_clears_with_nothing_awarded():
    rules = make_rules(reserve=2000)
    o = clear(rules, [], ZERO_SEED)
    assert (o.status, o.undersubscribed, o.clearing_price, o.unsold_lots) == (
        "cleared",
        True,
        None,
        10,
    )
    assert (o.stats.bid_to_cover, o.stats.price_low, o.stats.price_high) == ("0.00", None, None)


def test_bid_to_cover_and_hhi_are_truncated_not_rounded():
    rules = make_rules(offered_lots=3)
    o = clear(rules, [bid(rules, 1, (100, 1)), bid(rules, 2, (90, 1))], ZERO_SEED)
    # 2 / 3 = 0.666.. -> "0.66"; shares 1 and 1 of 2 -> HHI 10000 * 2 // 4 = 5000.
    assert (o.stats.bid_to_cover, o.stats.hhi) == ("0.66", 5000)
    o = clear(rules, [bid(rules, 1, (100, 2)), bid(rules, 2, (90, 3))], ZERO_SEED)
    # 5 / 3 = 1.666.. -> "1.66"; awards 2 and 1 -> HHI 10000 * (4 + 1) // 9 = 5555 (5555.5..).
    assert (o.stats.bid_to_cover, o.stats.hhi) == ("1.66", 5555)


# --- Pay as bid --------------------------------------------------------------------------------


def test_pay_as_bid_charges_each_filled_lot_its_own_price():
    # 6 lots of 1 t, tick 0.10, reserve 50.00.
    rules = make_rules(format="pay_as_bid", offered_lots=6, lot_kg=1000, tick=10, reserve=5000)
    bids = [
        bid(rules, 31, (6000, 2), (5500, 2)),
        bid(rules, 32, (5800, 3)),
        bid(rules, 33, (5200, 3)),
    ]
    # D(6000) = 2, D(5800) = 5, D(5500) = 7 >= 6: P = 5500, R = 1 to bid 31's 5500 tier.
    o = clear(rules, bids, ZERO_SEED)
    assert o.clearing_price == 5500
    assert lots_by_bid(o.awards) == {31: 3, 32: 3}
    # 31: 2 * 6000 + 1 * 5500 = 17,500; 32: 3 * 5800 = 17,400 (a lot is 1 t).
    assert [(a.bid, a.amount, a.fills) for a in o.awards] == [
        (31, 17_500, ((6000, 2), (5500, 1))),
        (32, 17_400, ((5800, 3),)),
    ]


# --- Single lot --------------------------------------------------------------------------------


def single(format: str, **overrides: Any) -> Rules:
    # One lot of 10 t, tick 1.00, reserve 10.00.
    fields: dict[str, Any] = {"offered_lots": 1, "lot_kg": 10_000, "tick": 100, "reserve": 1000}
    return make_rules(format=format, **{**fields, **overrides})


def test_first_price_winner_pays_its_own_bid():
    rules = single("first_price")
    bids = [
        bid(rules, 41, (12000, 1)),
        bid(rules, 42, (15000, 1)),
        bid(rules, 43, (14900, 1)),
        bid(rules, 44, (900, 1)),
    ]
    o = clear(rules, bids, ZERO_SEED)
    assert o.clearing_price == 15000
    # 150.00/t * 10 t = 1,500.00
    assert o.awards == (Award(42, 1042, 1, 150_000, ((15000, 1),)),)
    assert (o.stats.valid_bids, o.stats.rejected_bids, o.stats.hhi) == (3, 1, 10000)


def test_second_price_winner_pays_the_runner_up():
    rules = single("second_price")
    bids = [bid(rules, 51, (12000, 1)), bid(rules, 52, (15000, 1)), bid(rules, 53, (14900, 1))]
    o = clear(rules, bids, ZERO_SEED)
    assert o.clearing_price == 14900
    assert o.awards == (Award(52, 1052, 1, 149_000, ((15000, 1),)),)


def test_second_price_with_a_single_bid_pays_the_reserve():
    rules = single("second_price")
    o = clear(rules, [bid(rules, 52, (15000, 1))], ZERO_SEED)
    assert o.clearing_price == 1000
    assert o.awards == (Award(52, 1052, 1, 10_000, ((15000, 1),)),)
    assert o.undersubscribed is False


def test_a_tie_at_the_top_of_a_single_lot_auction():
    bids_at = [(61, (15000, 1)), (62, (15000, 1)), (63, (14000, 1))]
    # random_order: [61, 62]; i = 1, j = below(2) = w0 % 2 = 0 -> [62, 61]: 62 wins.
    rules = single("second_price", tie_rule="random_order")
    o = clear(rules, [bid(rules, i, t) for i, t in bids_at], ZERO_SEED)
    assert (o.awards[0].bid, o.tie.order if o.tie else None) == (62, (62, 61))
    # The runner-up is the other tied bid, so the winner pays the tied price.
    assert (o.clearing_price, o.awards[0].amount) == (15000, 150_000)
    # pro_rata: both base shares 1*1//2 = 0; one leftover lot: below(2) = 0 -> 61 wins.
    rules = single("first_price", tie_rule="pro_rata")
    o = clear(rules, [bid(rules, i, t) for i, t in bids_at], ZERO_SEED)
    assert o.tie == Tie(15000, 1, (61, 62), (61,), ((61, 0), (62, 0)))
    assert (o.awards[0].bid, o.clearing_price) == (61, 15000)


def test_a_single_lot_auction_without_valid_bids():
    rules = single("first_price")
    o = clear(rules, [bid(rules, 1, (900, 1))], ZERO_SEED)
    assert (o.status, o.awards, o.unsold_lots, o.clearing_price) == ("cleared", (), 1, None)
    cancelled = clear(single("first_price", undersubscribed="cancel"), [], ZERO_SEED)
    assert cancelled.status == "cancelled"


def test_xiangshan_seaweed_sink_sold_as_one_lot_at_106_cny():
    # 2,340.1 t in one lot; prices in fen (0.01 CNY) per tonne, tick 1.00, start 30.00.
    # The 30,000 CNY deposit was a participation deposit, not a bid guarantee: the lot is worth
    # far more, so bid_guarantee is off.
    fields = {"lot_kg": 2_340_100, "tick": 100, "reserve": 3000}
    first = single("first_price", **fields)
    o = clear(first, [bid(first, 1, (10600, 1)), bid(first, 2, (10500, 1))], ZERO_SEED)
    # 10600 * 2_340_100 // 1000 = 24_805_060 fen = 248,050.60 CNY.
    assert (o.clearing_price, o.awards[0].amount) == (10600, 24_805_060)
    assert first.value(10600, 1) == 24_805_060
    # As a Vickrey auction, a winner bidding 110.00 pays the runner-up's 106.00.
    second = single("second_price", **fields)
    o = clear(second, [bid(second, 1, (11000, 1)), bid(second, 2, (10600, 1))], ZERO_SEED)
    assert (o.awards[0].bid, o.clearing_price, o.awards[0].amount) == (1, 10600, 24_805_060)


# --- Trimming ----------------------------------------------------------------------------------


def test_deposit_trimming_keeps_the_lots_the_deposit_covers_best_price_first():
    rules = make_rules(bid_guarantee=True)
    # A lot at 30.00/t is 3,000,000; four of them 12,000,000, leaving 8,000,000 of the deposit:
    # 8,000,000 // 2,900,000 = 2 lots at 29.00, so 2 of that tier's 4 are trimmed.
    c = bid(rules, 1, (2900, 4), (3000, 4), deposit=20_000_000)
    assert (c.status, c.tiers, c.trimmed) == (
        "valid",
        ((3000, 4), (2900, 2)),
        (("over_deposit", 2),),
    )
    assert rules.value(3000, 4) + rules.value(2900, 2) == 17_800_000


def test_a_bid_whose_first_lot_exceeds_the_deposit_is_rejected():
    rules = make_rules(bid_guarantee=True)
    c = bid(rules, 1, (3000, 4), (2900, 4), deposit=2_999_999)
    assert (c.status, c.reason, c.tiers, c.trimmed) == (
        "rejected",
        "over_deposit",
        (),
        (("over_deposit", 8),),
    )


def test_the_deposit_is_ignored_without_a_bid_guarantee():
    rules = make_rules(bid_guarantee=False)
    c = bid(rules, 1, (3000, 4), deposit=0)
    assert (c.status, c.tiers, c.trimmed) == ("valid", ((3000, 4),), ())


@pytest.mark.parametrize(
    ("deposit", "kept", "trimmed"),
    [
        # cap_lots = 3; deposit room 6 lots: the cap binds first and takes all 5 dropped lots.
        (18_000_000, ((3000, 3),), (("over_cap", 5),)),
        # deposit room 1 lot: the deposit binds first, at the second lot.
        (5_000_000, ((3000, 1),), (("over_deposit", 7),)),
        # both allow exactly 3 lots: they break at the same lot, and the cap is named.
        (9_000_000, ((3000, 3),), (("over_cap", 5),)),
    ],
)
def test_when_both_limits_bind_the_lots_go_to_the_one_that_binds_first(
    deposit: int, kept: tuple[tuple[int, int], ...], trimmed: tuple[tuple[str, int], ...]
):
    rules = make_rules(cap_bp=3000, bid_guarantee=True)
    c = bid(rules, 1, (3000, 4), (2900, 4), deposit=deposit)
    assert (c.tiers, c.trimmed) == (kept, trimmed)


def test_a_cap_filled_exactly_by_one_tier_drops_the_next_tier_as_over_cap():
    rules = make_rules(cap_bp=3000)
    c = bid(rules, 1, (3000, 3), (2900, 4))
    assert (c.tiers, c.trimmed) == (((3000, 3),), (("over_cap", 4),))


def test_a_price_of_zero_never_uses_up_the_deposit():
    rules = make_rules(bid_guarantee=True)
    c = bid(rules, 1, (0, 7), deposit=0)
    assert (c.status, c.tiers) == ("valid", ((0, 7),))


# --- Rejections --------------------------------------------------------------------------------

REJECTION_RULES = make_rules(tick=100, reserve=1000, cap_bp=5000)


@pytest.mark.parametrize(
    ("tiers", "code"),
    [
        ({"price": 1000, "lots": 1}, "malformed_tiers"),  # not a list
        (({"price": 1000, "lots": 1},), "malformed_tiers"),  # a tuple is not JSON
        (None, "malformed_tiers"),
        ("[]", "malformed_tiers"),
        ([[1000, 1]], "malformed_tiers"),
        ([{"price": 1000}], "malformed_tiers"),
        ([{"price": 1000, "lots": 1, "note": "x"}], "malformed_tiers"),
        ([{"price": 1000.0, "lots": 1}], "malformed_tiers"),
        ([{"price": 1000, "lots": True}], "malformed_tiers"),
        ([{"price": "1000", "lots": 1}], "malformed_tiers"),
        ([], "no_tiers"),
        (tiers_json(*[(1000 + 100 * k, 1) for k in range(MAX_TIERS + 1)]), "too_many_tiers"),
        (tiers_json((1000, 0)), "invalid_lots"),
        (tiers_json((1100, 1), (1000, -2)), "invalid_lots"),
        (tiers_json((-100, 1)), "invalid_price"),
        (tiers_json((1050, 1)), "off_tick"),
        (tiers_json((900, 1)), "below_reserve"),
        (tiers_json((1000, 1), (1000, 2)), "duplicate_price"),
    ],
)
def test_it_rejects_a_bid(tiers: object, code: str):
    c = check_bid(REJECTION_RULES, bid=1, bidder=2, tiers=tiers, deposit=PLENTY)
    assert (c.status, c.reason, c.tiers, c.trimmed) == ("rejected", code, (), ())


def test_twenty_tiers_are_allowed():
    tiers = tiers_json(*[(1000 + 100 * k, 1) for k in range(MAX_TIERS)])
    assert check_bid(REJECTION_RULES, bid=1, bidder=2, tiers=tiers, deposit=0).status == "valid"


@pytest.mark.parametrize("tiers", [((15000, 1), (14000, 1)), ((15000, 2),)])
def test_a_single_lot_bid_must_be_one_tier_of_one_lot(tiers: tuple[tuple[int, int], ...]):
    c = bid(single("first_price"), 1, *tiers)
    assert (c.status, c.reason) == ("rejected", "not_single_lot")


@pytest.mark.parametrize(
    ("tiers", "code"),
    [
        # Every tier is checked for a code before the next code is tried, so tier order does
        # not change the answer.
        (((-100, 1), (1000, 0)), "invalid_lots"),
        (((1050, 1), (-100, 1)), "invalid_price"),
        (((1050, 1), (1050, 1)), "off_tick"),
        (((900, 1), (900, 1)), "below_reserve"),
        (tuple((1000, 0) for _ in range(MAX_TIERS + 1)), "too_many_tiers"),
    ],
)
def test_it_reports_the_first_failing_code_in_the_documented_order(
    tiers: tuple[tuple[int, int], ...], code: str
):
    assert bid(REJECTION_RULES, 1, *tiers).reason == code


def test_it_rejects_as_over_cap_when_a_cap_leaves_nothing():
    # Rules refuse a cap below one lot (cap_below_one_lot), so no valid Rules can produce this;
    # check_bid must still reject rather than count a bid over the cap if handed such rules.
    rules = make_rules(cap_bp=1000)
    object.__setattr__(rules, "cap_bp", 1)  # bypass the frozen dataclass: cap_lots is now 0
    assert rules.cap_lots == 0
    c = bid(rules, 1, (100, 2), (90, 1))
    assert (c.status, c.reason, c.tiers, c.trimmed) == (
        "rejected",
        "over_cap",
        (),
        (("over_cap", 3),),
    )


# --- Rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"format": "dutch"}, "invalid_format"),
        ({"format": None}, "invalid_format"),
        ({"offered_lots": 0}, "invalid_lots"),
        ({"offered_lots": True}, "invalid_lots"),
        ({"offered_lots": 10.0}, "invalid_lots"),
        ({"format": "first_price", "offered_lots": 2}, "invalid_lots"),
        ({"format": "second_price", "offered_lots": 2}, "invalid_lots"),
        ({"lot_kg": 0}, "invalid_lot_kg"),
        ({"lot_kg": "1000"}, "invalid_lot_kg"),
        ({"tick": 0}, "invalid_tick"),
        ({"tick": True}, "invalid_tick"),
        ({"lot_kg": 1500, "tick": 1}, "inexact_tick"),  # 1 * 1500 % 1000 = 500
        ({"lot_kg": 2_340_100, "tick": 1}, "inexact_tick"),  # Xiangshan needs tick 10 or more
        ({"reserve": -1}, "invalid_reserve"),
        ({"reserve": False}, "invalid_reserve"),
        ({"tick": 100, "reserve": 3050}, "reserve_off_tick"),
        ({"cap_bp": 0}, "invalid_cap"),
        ({"cap_bp": 10001}, "invalid_cap"),
        ({"cap_bp": True}, "invalid_cap"),
        ({"offered_lots": 3, "cap_bp": 2500}, "cap_below_one_lot"),  # 3 * 2500 // 10000 = 0
        ({"format": "first_price", "offered_lots": 1, "cap_bp": 5000}, "cap_below_one_lot"),
        ({"tie_rule": "first_come"}, "invalid_tie_rule"),
        ({"undersubscribed": "extend"}, "invalid_undersubscribed"),
        ({"bid_guarantee": 1}, "invalid_bid_guarantee"),
        ({"bid_guarantee": None}, "invalid_bid_guarantee"),
    ],
)
def test_it_refuses_rules(overrides: dict[str, Any], code: str):
    with pytest.raises(RulesError) as caught:
        make_rules(**overrides)
    assert caught.value.code == code


def test_cap_lots_rounds_down():
    assert make_rules(offered_lots=10, cap_bp=2500).cap_lots == 2
    assert make_rules(offered_lots=20, cap_bp=2500).cap_lots == 5
    assert make_rules(cap_bp=None).cap_lots is None


def test_value_is_exact_and_refuses_off_tick_prices():
    rules = make_rules(lot_kg=500, tick=2)  # 2 * 500 = 1000: exact
    assert rules.value(4, 3) == 6  # 4 * 3 * 500 / 1000
    with pytest.raises(ValueError):
        rules.value(3, 1)


# --- What clear() refuses, and JSON ------------------------------------------------------------


def test_clear_refuses_two_valid_bids_from_one_bidder():
    rules = make_rules()
    bids = [bid(rules, 1, (100, 1), bidder=7), bid(rules, 2, (90, 1), bidder=7)]
    with pytest.raises(ValueError, match="more than one valid bid"):
        clear(rules, bids, ZERO_SEED)


def test_clear_refuses_a_repeated_bid_id_and_a_bid_that_breaks_the_rules():
    rules = make_rules(cap_bp=5000)
    with pytest.raises(ValueError, match="twice"):
        clear(rules, [bid(rules, 1, (100, 1)), bid(rules, 1, (90, 1), bidder=9)], ZERO_SEED)
    forged = Checked(1, 2, "valid", None, ((100, 6),), ())  # above the cap of 5
    with pytest.raises(ValueError, match="not something check_bid produces"):
        clear(rules, [forged], ZERO_SEED)
    with pytest.raises(ValueError):
        clear(rules, [], bytes(31))


def test_outcome_json_is_plain_and_canonicalizes():
    rules = make_rules(offered_lots=4, tie_rule="pro_rata")
    bids = [bid(rules, 1, (100, 3)), bid(rules, 2, (100, 2)), bid(rules, 3, (50, 9))]
    o = clear(rules, bids, ZERO_SEED)
    # R = 4 of Q = 5: base 4*3//5 = 2 and 4*2//5 = 1, one leftover: below(2) = 0 -> bid 1.
    assert outcome_to_json(o) == {
        "algorithm": "bluecarbon/auction-clearing/v1",
        "status": "cleared",
        "undersubscribed": False,
        "clearing_price": 100,
        "offered_lots": 4,
        "awarded_lots": 4,
        "unsold_lots": 0,
        "awards": [
            {
                "bid": 1,
                "bidder": 1001,
                "lots": 3,
                "amount": 300_000,
                "fills": [{"price": 100, "lots": 3}],
            },
            {
                "bid": 2,
                "bidder": 1002,
                "lots": 1,
                "amount": 100_000,
                "fills": [{"price": 100, "lots": 1}],
            },
        ],
        "tie": {
            "price": 100,
            "remainder": 4,
            "bids": [1, 2],
            "order": [1],
            "base": [{"bid": 1, "lots": 2}, {"bid": 2, "lots": 1}],
        },
        "stats": {
            "valid_bids": 3,
            "rejected_bids": 0,
            "bidders": 3,
            "winners": 2,
            "demand_lots": 14,
            "bid_to_cover": "3.50",
            "hhi": 6250,  # 10000 * (9 + 1) // 16
            "price_low": 50,
            "price_high": 100,
        },
    }
    assert rfc8785.dumps(outcome_to_json(o))  # only JSON types, all integers in range
    assert rfc8785.dumps(
        {"rules": rules_to_json(rules), "bids": [checked_to_json(b) for b in bids]}
    )


def test_checked_to_json_names_the_trimmed_lots():
    rules = make_rules(cap_bp=3000)
    assert checked_to_json(bid(rules, 1, (3000, 4))) == {
        "bid": 1,
        "bidder": 1001,
        "status": "valid",
        "reason": None,
        "tiers": [{"price": 3000, "lots": 3}],
        "trimmed": [{"reason": "over_cap", "lots": 1}],
    }


def test_rules_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_rules().tick = 5  # type: ignore[misc]
