"""Random ascending clock auctions through the services: random bidders (some without a deposit
or approval, and the seller itself), random round bids (valid, and refused by the activity rule,
the eligibility cap, exit prices outside the round's interval or off the tick, re-entry after
dropping out), amendments within a round, rounds ending on the clock every service reads
(``timezone.now``, moved as the other state machines move it) until a round's demand fits the
supply; then the clearing, settlement and each winner's payment or default.

A model kept here, written from docs/auctions-ascending.md §6 and not from the code, predicts
every bid's fate (accepted, or refused with which code and rule) and every round's close; after
each step: a refused bid changed nothing, the round price never falls and rises by its band's
step, no bidder's demand ever rises, a round is final exactly when its aggregate fits the
supply, and at the end the allocation never exceeds the supply, each winner gets at least its
demand at the clearing price and at most its demand just below it, everyone pays the clearing
price, deposits balance, and the ledger replayed from sequence 0 reproduces the live tables
(``verify_ledger``; and the standalone ``bluecarbon-audit verify`` on the exported log once an
auction has settled).

A second, pure test runs ``clock.build_result`` and ``clock.clearing_price`` against a brute
force over the tick grid."""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from itertools import pairwise
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, invariant, multiple, precondition, rule

from auctions import clock
from auctions import services as auctions
from auctions.core import clock as core
from auctions.models import Auction, Award, ClockBid, ClockRound
from ledger import services as registry
from ledger.models import LedgerEntry
from ledger.signing import get_signer, trusted_verifiers
from tests import factories
from tests.auctions.conftest import auction_snapshot
from tests.state_machine_support import (
    Market,
    SavepointMachine,
    assert_deposits_balance,
    assert_replay_reproduces_the_tables,
    assert_supply_adds_up,
    assert_the_lot_is_never_over_allocated,
    code_of,
    run,
)

OPERATOR = factories.OPERATOR
TONNE = 1000
SUPPLY = 20  # lots of 1 t
DEPOSIT = 50_000
START, TICK = 3000, 100
FIRST_S, ROUND_S = 60, 30
# A fixed step (5.00 CNY/t), or steps by band (5.00, then 10.00 from 40.00): a few rounds
# reach the second band.
INCREMENTS = [[[0, 500]], [[0, 500], [4000, 1000]]]
# Bidders 0, 1 and 2 approved with deposits; 3 approved without one (until the deposit rule
# gives it one); 4 never approved (with a deposit); 5 the seller itself.
NO_DEPOSIT, UNAPPROVED, SELLER = 3, 4, 5


def step_at(bands: list[list[int]], price: int) -> int:
    return [step for low, step in bands if price >= low][-1]


class Round:
    def __init__(self, number: int, price: int, closes_at: dt.datetime) -> None:
        self.number, self.price, self.closes_at = number, price, closes_at
        self.bids: dict[int, tuple[int, int | None]] = {}  # bidder index: (lots, exit price)
        self.closed = False


class Model:
    """What the rules say of one clock auction, from the bids this machine saw accepted."""

    def __init__(self, a: Auction, bands: list[list[int]], cap: int | None) -> None:
        self.pk = a.pk
        self.bands = bands
        self.eligible = SUPPLY if cap is None else cap
        self.rounds = [Round(1, START, a.closes_at)]
        self.closed = False  # the auction (its final round closed)
        self.undersubscribed = a.undersubscribed

    @property
    def current(self) -> Round:
        return self.rounds[-1]

    @property
    def previous(self) -> Round | None:
        return self.rounds[-2] if len(self.rounds) > 1 else None

    def demand_before(self, who: int) -> int | None:
        """The bidder's demand in the round before the current one (None in round 1): what
        it bid then, or nothing if it did not bid."""
        before = self.previous
        return None if before is None else before.bids.get(who, (0, None))[0]

    def refusal(self, who: int, lots: int, exit_price: int | None) -> str | None:
        """The rule a round bid breaks (docs §6), or None."""
        if lots < 0:
            return "invalid_lots"
        before = self.previous
        if before is None:
            if lots > self.eligible:
                return "above_eligibility"
            return None if exit_price is None else "invalid_exit_price"
        prev = self.demand_before(who) or 0
        if lots > prev:
            return "activity_rule"
        if exit_price is None:
            return None
        if not before.price < exit_price < self.current.price or exit_price % TICK:
            return "invalid_exit_price"
        if lots == prev:
            return "exit_without_reduction"
        return None

    def final_demands(self) -> dict[int, tuple[int, int, int]]:
        """Every bidder active in the final round or the one before: (previous, lots, exit)."""
        last, before = self.current, self.previous
        out = {}
        for who in set(last.bids) | set(before.bids if before else {}):
            lots, exit_price = last.bids.get(who, (0, None))
            prev = lots if before is None else before.bids.get(who, (0, None))[0]
            if prev or lots:
                out[who] = (prev, lots, last.price if exit_price is None else exit_price)
        return out


def demand_at(p: int, demands: dict[int, tuple[int, int, int]]) -> dict[int, int]:
    """Each bidder's demand at price p inside the final round's interval."""
    return {who: lots if p >= ex else prev for who, (prev, lots, ex) in demands.items()}


class ClockMachine(SavepointMachine):
    awards = Bundle("awards")
    # Moved only by the rules here: a bid lands in the round the machine chose.
    frozen_clock = True

    def __init__(self) -> None:
        super().__init__()
        self.deposits: dict[int, int] = {}  # bidder index: recorded
        self.standalone_checked = False

    @initialize(
        bands=st.sampled_from(INCREMENTS),
        cap_bp=st.sampled_from([None, None, 5000]),
        undersubscribed=st.sampled_from(["settle", "cancel"]),
        tie_rule=st.sampled_from(["random_order", "pro_rata"]),
        opening=st.lists(st.integers(4, 12), min_size=3, max_size=3),
    )
    def world(self, bands, cap_bp, undersubscribed, tie_rule, opening):
        assert LedgerEntry.objects.count() == 0
        get_signer()  # on a fresh machine, the development key and the trusted keys file
        self.market = Market(5, unapproved={UNAPPROVED})
        assert self.market.seller == SELLER
        self.w, batch, self.bidders = self.market.w, self.market.batch, self.market.bidders
        now = timezone.now()
        a = auctions.auction_create(
            actor=self.w.dev,
            account=self.w.dev_account.pk,
            batch=batch.pk,
            title="Xiangshan seaweed sink, in lots",
            format="clock",
            quantity=SUPPLY * TONNE,
            lot_kg=TONNE,
            currency="CNY",
            tick=TICK,
            reserve=START,
            cap_bp=cap_bp,
            deposit_required=DEPOSIT,
            bid_guarantee=False,
            tie_rule=tie_rule,
            undersubscribed=undersubscribed,
            opens_at=now - dt.timedelta(seconds=1),
            closes_at=now + dt.timedelta(seconds=FIRST_S),
            increments=bands,
            round_s=ROUND_S,
        )
        a = auctions.auction_schedule(actor=self.w.dev, auction=a.pk)
        assert a.state == Auction.State.OPEN
        self.rules = clock.rules(a)
        self.m = Model(a, bands, None if cap_bp is None else SUPPLY * cap_bp // 10_000)
        for who in (0, 1, 2, UNAPPROVED):
            self.deposit(who)
        # Round 1's demands, most often more than the supply: the rules below amend them, and
        # the rounds go on while the bidders keep bidding.
        for who, lots in enumerate(opening):
            self._bid(who, min(lots, self.m.eligible), None)

    # ---- rules ------------------------------------------------------------------------------

    @rule(who=st.integers(0, 4))
    def deposit(self, who: int) -> None:
        _, err = self.attempt(
            auctions.deposit_record,
            actor=OPERATOR,
            auction=self.m.pk,
            bidder=self.bidders[who].pk,
            amount=DEPOSIT,
        )
        if err is None:
            self.deposits[who] = self.deposits.get(who, 0) + DEPOSIT
        else:  # only once the auction has closed
            assert self.m.closed and code_of(err) == "auction_wrong_state", err

    def _expected(self, who: int, lots: int, exit_price: int | None) -> str | None:
        """``code`` or ``round_bid_refused:rule`` a bid must be refused with, or None."""
        m = self.m
        if m.closed or timezone.now() >= m.current.closes_at:
            return "auction_closed"
        if who == SELLER:
            return "own_auction"
        if who == UNAPPROVED:
            return "bidder_not_approved"
        if self.deposits.get(who, 0) < DEPOSIT:
            return "deposit_insufficient"
        broken = m.refusal(who, lots, exit_price)
        return None if broken is None else f"round_bid_refused:{broken}"

    def _bid(self, who: int, lots: int, exit_price: int | None) -> None:
        want = self._expected(who, lots, exit_price)
        before = self._tables() if want is not None else None
        b, err = self.attempt(
            clock.clock_bid,
            actor=self.market.actor(who),
            auction=self.m.pk,
            lots=lots,
            exit_price=exit_price,
        )
        got = code_of(err)
        if err is not None and got == "round_bid_refused":
            got += f":{err.detail['rule']}"
        assert got == want, f"bid {lots} lots, exit {exit_price} by {who}: {got}, rules: {want}"
        event(f"bid: {got or 'accepted'}")
        if b is None:  # a refused bid changed nothing, in any table
            assert self._tables() == before
            return
        r = self.m.current
        amended = who in r.bids
        r.bids[who] = (lots, exit_price)
        assert (b.round.number, b.lots, b.exit_price) == (r.number, lots, exit_price)
        if amended:
            event("bid: amended within its round")
            assert b.version > 1

    def _exit(self, how: str, offset: int) -> int | None:
        before, price = self.m.previous, self.m.current.price
        low = before.price if before is not None else price - step_at(self.m.bands, price)
        inside = max(1, (price - low) // TICK - 1)
        return {
            "none": None,
            "inside": low + TICK * (1 + offset % inside),
            "at_previous": low,
            "at_round": price,
            "off_tick": low + TICK // 2,
        }[how]

    @precondition(lambda self: not self.m.closed)
    @rule(
        who=st.sampled_from([0, 1, 2, 0, 1, 2, NO_DEPOSIT, UNAPPROVED, SELLER]),
        change=st.sampled_from(
            ["same", "less", "less", "zero", "one_more", "more", "negative", "rejoin"]
        ),
        amount=st.integers(1, 12),
        how=st.sampled_from(["none", "none", "inside", "inside", "at_previous", "at_round"]),
        offset=st.integers(0, 20),
    )
    def bid(self, who: int, change: str, amount: int, how: str, offset: int) -> None:
        """Any bid: valid, or breaking any of the rules."""
        prev = self.m.demand_before(who)
        base = self.m.eligible if prev is None else prev
        lots = {
            "same": base,
            "less": max(0, base - amount),
            "zero": 0,
            "one_more": base + 1,  # the activity rule's edge
            "more": base + amount,
            "negative": -amount,
            "rejoin": 1 + amount % 2,  # after dropping out (prev 0): the activity rule
        }[change]
        self._bid(who, lots, self._exit(how, offset))

    @precondition(lambda self: not self.m.closed)
    @rule(
        who=st.integers(0, 2),
        share=st.sampled_from([0, 25, 50, 80, 100, 100]),
        with_exit=st.booleans(),
        offset=st.integers(0, 20),
    )
    def bid_sensibly(self, who: int, share: int, with_exit: bool, offset: int) -> None:
        """A bid the rules accept, most of the time: a share of the demand before (round 1:
        of the eligibility), with an exit price inside the round when it is a reduction."""
        prev = self.m.demand_before(who)
        base = min(self.m.eligible, 12) if prev is None else prev
        lots = base * share // 100
        exit_price = None
        if with_exit and prev is not None and lots < prev:
            exit_price = self._exit("inside", offset)
        self._bid(who, lots, exit_price)

    @precondition(lambda self: not self.m.closed)
    @rule(who=st.integers(0, 2), data=st.data())
    def amend(self, who: int, data) -> None:
        """A second bid in the same round by a bidder that bid in it: it replaces the first."""
        r = self.m.current
        if who not in r.bids:
            return
        prev = self.m.demand_before(who)
        top = self.m.eligible if prev is None else prev
        self._bid(who, data.draw(st.integers(0, top)), None)

    @precondition(lambda self: not self.m.closed)
    @rule(
        shares=st.lists(st.sampled_from([50, 80, 90, 100, 100, 100]), min_size=3, max_size=3),
        exits=st.lists(st.booleans(), min_size=3, max_size=3),
        offset=st.integers(0, 20),
    )
    def everyone_bids(self, shares: list[int], exits: list[bool], offset: int) -> None:
        """The admitted bidders each bid in this round, as bidders who stay in do."""
        for who, (share, with_exit) in enumerate(zip(shares, exits, strict=True)):
            self.bid_sensibly(who, share, with_exit, offset + who)

    @rule(who=st.sampled_from([0, 1, NO_DEPOSIT, SELLER]), lots=st.integers(0, 3))
    def bid_late(self, who: int, lots: int) -> None:
        """A bid after the final round: refused, whoever makes it."""
        if not self.m.closed:
            return
        self._bid(who, lots, None)

    @precondition(lambda self: not self.m.closed)
    @rule(off_tick=st.integers(1, TICK - 1))
    def bid_off_tick(self, off_tick: int) -> None:
        before = self.m.previous
        if before is None:
            return
        prev = self.m.demand_before(0) or 0
        self._bid(0, max(0, prev - 1), before.price + off_tick)

    @rule(seconds=st.sampled_from([1, 5, 10, 29, 31, 61]))
    def time_passes(self, seconds: int) -> None:
        self.skipped += dt.timedelta(seconds=seconds)

    @precondition(lambda self: not self.m.closed)
    @rule(target=awards, early=st.sampled_from([False, False, False, True]))
    def round_ends(self, early: bool):
        """The worker's steps at the end of a round (or too early: nothing happens): the
        round's close; after the final one, the auction's close, clearing and settlement."""
        m = self.m
        r = m.current
        if not early and not m.closed:
            left = r.closes_at - timezone.now()
            if left > dt.timedelta():
                self.skipped += left + dt.timedelta(milliseconds=1)
        due = not m.closed and timezone.now() >= r.closes_at
        before = self._tables()
        closed = auctions.auction_close(auction=m.pk)
        if not due:
            event("round_ends: too early")
            assert not closed
            assert self._tables() == before
            return multiple()
        aggregate = sum(lots for lots, _ in r.bids.values())
        final = aggregate <= SUPPLY
        assert closed == final
        row = ClockRound.objects.get(auction_id=m.pk, number=r.number)
        assert (row.aggregate, row.active, row.final) == (
            aggregate,
            sum(1 for lots, _ in r.bids.values() if lots),
            final,
        )
        r.closed = True
        if not final:
            nxt = ClockRound.objects.get(auction_id=m.pk, number=r.number + 1)
            assert nxt.price == r.price + step_at(m.bands, r.price)
            assert nxt.opens_at >= r.closes_at
            assert nxt.closes_at == nxt.opens_at + dt.timedelta(seconds=ROUND_S)
            m.rounds.append(Round(nxt.number, nxt.price, nxt.closes_at))
            event(f"round_ends: round {r.number} closed, demand {aggregate} > {SUPPLY}")
            return multiple()
        m.closed = True
        event(f"round_ends: final round {r.number}")
        assert auctions.auction_clear(auction=m.pk)
        a = Auction.objects.get(pk=m.pk)
        if a.state == Auction.State.CLEARED:
            assert auctions.auction_settle(auction=m.pk)
            a.refresh_from_db()
        event(f"outcome: {a.state}")
        self.the_allocation_is_the_rules()
        self._standalone_verify()
        return multiple(*Award.objects.filter(auction_id=m.pk).values_list("pk", flat=True))

    # Most of an auction is bidders staying in and rounds ending: one more rule for it, so
    # that hypothesis's choice of rules (which leaves some out of each example) seldom leaves
    # it out, and auctions run several rounds.
    @precondition(lambda self: not self.m.closed)
    @rule(
        target=awards,
        shares=st.lists(st.sampled_from([70, 90, 100, 100, 100]), min_size=3, max_size=3),
        exits=st.lists(st.booleans(), min_size=3, max_size=3),
        offset=st.integers(0, 20),
    )
    def round_ends_after_bids(self, shares: list[int], exits: list[bool], offset: int):
        """The admitted bidders that have not bid in this round yet do (a share of their
        demand before); then the round ends."""
        if timezone.now() < self.m.current.closes_at:
            for who, (share, with_exit) in enumerate(zip(shares, exits, strict=True)):
                if who not in self.m.current.bids:
                    self.bid_sensibly(who, share, with_exit, offset + who)
        return self.round_ends(False)

    @rule(award=awards, paid=st.booleans())
    def award_resolve(self, award: int, paid: bool) -> None:
        _, err = self.attempt(
            auctions.award_confirm_payment if paid else auctions.award_default,
            actor=OPERATOR,
            award=award,
        )
        assert err is None or code_of(err) == "award_resolved", err

    # ---- checks -----------------------------------------------------------------------------

    def _tables(self) -> dict[str, Any]:
        state = auction_snapshot()
        for model in (ClockRound, ClockBid):
            state[model.__name__] = [
                {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()}
                for row in model.objects.order_by("pk").values()
            ]
        return state

    def the_allocation_is_the_rules(self) -> None:
        m = self.m
        a = Auction.objects.get(pk=m.pk)
        awards = {w.bidder_id: w for w in Award.objects.filter(auction=a)}
        last = m.current
        demands = m.final_demands()
        assert sum(w.lots for w in awards.values()) <= SUPPLY
        if last.number == 1:
            demanded = sum(lots for lots, _ in last.bids.values())
            if demanded < SUPPLY and m.undersubscribed == "cancel":
                assert a.state == Auction.State.CANCELLED and not awards
                return
            if demanded == 0:
                assert a.clearing_price is None and not awards
                return
            p_star = START
        else:
            # The lowest price on the tick grid in (previous price, round price] where the
            # demand fits the supply.
            low = m.previous.price
            grid = range(low + TICK, last.price + 1, TICK)
            p_star = next(p for p in grid if sum(demand_at(p, demands).values()) <= SUPPLY)
            # Just below it the demand exceeded the supply (or it was the round before's):
            # the supply is sold out.
            assert sum(w.lots for w in awards.values()) == SUPPLY
        assert a.clearing_price == p_star
        at = demand_at(p_star, demands)
        below = demand_at(p_star - TICK, demands) if last.number > 1 else at
        by_org = {self.bidders[who].pk: who for who in demands}
        assert set(awards) <= set(by_org)
        for org, who in by_org.items():
            got = awards[org].lots if org in awards else 0
            assert at[who] <= got <= below[who], (who, at[who], got, below[who])
        for w in awards.values():
            assert w.amount_due == p_star * w.lots * TONNE // TONNE
            assert w.quantity == w.lots * TONNE

    def _standalone_verify(self) -> None:
        """``bluecarbon-audit verify`` on the exported tiles alone: no database, no server."""
        from bluecarbon_audit.policy import Policy
        from bluecarbon_audit.sources import open_source
        from bluecarbon_audit.verify import VerifyOptions, verify

        registry.ledger_checkpoint_issue()
        with tempfile.TemporaryDirectory() as tmp:
            call_command("ledger_export_tiles", f"{tmp}/log", stdout=io.StringIO())
            policy = Policy.from_flags([v.to_string() for v in trusted_verifiers()], [], None)
            report = verify(open_source(f"{tmp}/log"), VerifyOptions(policy=policy, workers=0))
        assert report.ok, report.failure

    @invariant()
    def the_price_rises_by_the_step_and_demand_never_rises(self) -> None:
        if not hasattr(self, "m"):
            return
        rows = list(ClockRound.objects.filter(auction_id=self.m.pk).order_by("number"))
        assert [(r.number, r.price) for r in rows] == [(r.number, r.price) for r in self.m.rounds]
        assert rows[0].price == START
        for before, after in pairwise(rows):
            assert after.price == before.price + step_at(self.m.bands, before.price)
            assert before.final is False and before.close_seq is not None
        # Each bidder's demand, round by round (no bid: nothing), never rises.
        demand: dict[int, list[int]] = {}
        for number, paddle, lots in ClockBid.objects.filter(auction_id=self.m.pk).values_list(
            "round__number", "paddle__bidder_id", "lots"
        ):
            demand.setdefault(paddle, [0] * len(rows))[number - 1] = lots
        for org, lots in demand.items():
            for before, after in pairwise(lots):
                assert after <= before, (org, lots)
        # The tables hold the bids the model accepted, and nothing else.
        model = {
            (r.number, self.bidders[who].pk): bid
            for r in self.m.rounds
            for who, bid in r.bids.items()
        }
        live = {
            (number, org): (lots, exit_price)
            for number, org, lots, exit_price in ClockBid.objects.filter(
                auction_id=self.m.pk
            ).values_list("round__number", "paddle__bidder_id", "lots", "exit_price")
        }
        assert live == model

    @invariant()
    def a_round_is_final_exactly_when_its_demand_fits(self) -> None:
        if not hasattr(self, "m"):
            return
        for r in ClockRound.objects.filter(auction_id=self.m.pk):
            if r.close_seq is None:
                assert r.final is None and r.aggregate is None
                continue
            lots = list(ClockBid.objects.filter(round=r).values_list("lots", flat=True))
            assert r.aggregate == sum(lots)
            assert r.active == sum(1 for n in lots if n)
            assert r.final == (r.aggregate <= SUPPLY)

    @invariant()
    def deposits_balance(self) -> None:
        if not hasattr(self, "m"):
            return
        recorded = {self.bidders[who].pk: amount for who, amount in self.deposits.items()}
        assert_deposits_balance(self.m.pk, recorded)

    @invariant()
    def the_supply_is_never_over_allocated(self) -> None:
        if not hasattr(self, "m"):
            return
        assert_the_lot_is_never_over_allocated(self.m.pk)
        assert_supply_adds_up()

    @invariant()
    def replay_reproduces_the_tables(self) -> None:
        if hasattr(self, "m"):
            assert_replay_reproduces_the_tables()


@pytest.mark.django_db
def test_random_clock_auctions_follow_the_rules_and_replay_to_the_live_state():
    run(ClockMachine, steps=60)


# ---- the pure core against a brute force ---------------------------------------------------


def _record(offered: int, tie_rule: str, bands: list[list[int]]) -> dict[str, Any]:
    return {
        "format": "clock",
        "tick": TICK,
        "lot_kg": TONNE,
        "quantity": offered * TONNE,
        "reserve": START,
        "increments": bands,
        "round_s": 60,
        "cap_bp": None,
        "tie_rule": tie_rule,
        "undersubscribed": "settle",
        "bid_guarantee": False,
    }


@st.composite
def final_rounds(draw):
    """A final round: the offering, the price before and the round's, and per bidder its
    demand in the round before, its lots now and its exit price (or none), such that the round
    before's demand exceeded the supply and this round's fits it."""
    bands = draw(st.sampled_from([*INCREMENTS, [[0, 1000], [5000, 300]]]))
    offered = draw(st.integers(1, 60))
    previous_price = draw(st.integers(START // TICK, 80)) * TICK
    price = previous_price + step_at(bands, previous_price)
    n = draw(st.integers(1, 7))
    bidders = []
    for i in range(n):
        prev = draw(st.integers(0, offered + 5))
        lots = draw(st.integers(0, prev))
        exit_price = None
        if lots < prev and price - previous_price > TICK and draw(st.booleans()):
            exit_price = draw(st.integers(previous_price // TICK + 1, price // TICK - 1)) * TICK
        bidders.append(
            core.Demand(
                bidder=10 + i, account=100 + i, previous=prev, lots=lots, exit_price=exit_price
            )
        )
    assume(sum(d.previous for d in bidders) > offered >= sum(d.lots for d in bidders))
    return bands, offered, previous_price, price, bidders


def _brute_demand(p: int, price: int, d: core.Demand) -> int:
    return d.lots if p >= (d.exit_price or price) else d.previous


@settings(max_examples=400, deadline=None)
@given(
    round_=final_rounds(),
    tie_rule=st.sampled_from(["random_order", "pro_rata"]),
    seed=st.binary(min_size=32, max_size=32),
)
def test_the_clearing_price_and_allocation_are_the_brute_force_ones(round_, tie_rule, seed):
    bands, offered, previous_price, price, final = round_
    record = _record(offered, tie_rule, bands)
    rules = core.rules_of(record)
    grid = range(previous_price + TICK, price + 1, TICK)
    demand = {p: sum(_brute_demand(p, price, d) for d in final) for p in grid}
    p_star = min(p for p in grid if demand[p] <= offered)
    assert core.clearing_price(rules, price, previous_price, final) == p_star
    rounds = [
        {
            "round": 4,
            "price": previous_price,
            "aggregate": sum(d.previous for d in final),
            "active": n,
        }
        for n in [sum(1 for d in final if d.previous)]
    ] + [{"round": 5, "price": price, "aggregate": sum(d.lots for d in final), "active": 0}]
    result = core.build_result(record=record, rounds=rounds, final=final, seed=seed)
    out = result["outcome"]
    assert out["status"] == "cleared" and out["clearing_price"] == p_star
    got = {b["bidder"]: b["awarded_lots"] for b in result["bidders"]}
    below = p_star - TICK  # at or below the previous round's price: the demand before
    for d in final:
        lots = got.get(d.bidder, 0)
        at, just_below = _brute_demand(p_star, price, d), _brute_demand(below, price, d)
        assert at <= lots <= just_below, (d, lots)
        if (d.exit_price or price) != p_star:
            assert lots == at  # only those who reduced exactly at p* share the excess
    # The demand just below p* exceeded the supply, so the supply is sold out.
    assert sum(got.values()) == out["awarded_lots"] == offered
    assert out["unsold_lots"] == 0
    for b in result["bidders"]:
        assert b["awarded_lots"] > 0
        assert b["amount"] == p_star * b["awarded_lots"]  # lots of 1 t
        assert b["account"] == b["bidder"] + 90
    assert result["rounds"] == rounds
    # The same inputs and draws give the same result.
    assert core.build_result(record=record, rounds=rounds, final=final, seed=seed) == result


@settings(max_examples=100, deadline=None)
@given(
    offered=st.integers(1, 40),
    lots=st.lists(st.integers(0, 12), min_size=1, max_size=5),
    undersubscribed=st.sampled_from(["settle", "cancel"]),
)
def test_a_first_round_that_fits_sells_what_is_demanded_at_the_start_price(
    offered, lots, undersubscribed
):
    assume(sum(lots) <= offered)
    record = {**_record(offered, "pro_rata", [[0, 500]]), "undersubscribed": undersubscribed}
    final = [
        core.Demand(bidder=i + 1, account=i + 1, previous=n, lots=n, exit_price=None)
        for i, n in enumerate(lots)
        if n
    ]
    rounds = [{"round": 1, "price": START, "aggregate": sum(lots), "active": len(final)}]
    result = core.build_result(record=record, rounds=rounds, final=final, seed=b"\0" * 32)
    out = result["outcome"]
    if sum(lots) < offered and undersubscribed == "cancel":
        assert out["status"] == "cancelled" and result["bidders"] == []
        return
    if not final:
        assert out["clearing_price"] is None and result["bidders"] == []
        return
    assert out["clearing_price"] == START
    assert {b["bidder"]: b["awarded_lots"] for b in result["bidders"]} == {
        d.bidder: d.lots for d in final
    }
    assert out["unsold_lots"] == offered - sum(lots)
