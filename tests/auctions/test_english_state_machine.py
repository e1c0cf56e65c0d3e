"""Random English auctions (the Xiangshan format) through the services: random bidders (some
without a deposit or approval, and the seller itself), random prices around the lowest valid
one (valid, below it, off the tick), time moving through the free phase, the timed phase and
past the end (the clock every service reads, ``timezone.now``, is moved as the other state
machines move it), closes that come too early or in time, and the winner's payment or default.

A model kept here, written from the rules in docs/auctions-ascending.md and not from the code,
predicts every bid's fate (accepted, or refused with which code) and every close's; after
each step: the standing price never falls, every accepted bid beat the one before by its
band's increment, the end is the rules' end, the winner is the highest valid bid, refused bids
changed nothing, deposits balance (held, released, applied, forfeited), the lot is never
over-allocated, supply adds up, and the ledger replayed from sequence 0 reproduces the live
tables (``verify_ledger``)."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise

import pytest
from django.utils import timezone
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, invariant, multiple, precondition, rule

from auctions import english
from auctions import services as auctions
from auctions.models import Auction, Award, Raise
from ledger.models import LedgerEntry
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
DEPOSIT = 100_000
START, TICK = 3000, 10
FREE_S, COUNTDOWN_S = 60, 30
# The increments: fixed (1.00 CNY/t), or by band (1.00, then 2.00 from 32.00, 5.00 from 36.00,
# low enough that a few bids reach every band).
INCREMENTS = [[[0, 100]], [[0, 100], [3200, 200], [3600, 500]]]
# Bidders: 0 and 1 approved with deposits, 2 approved without one (until the deposit rule
# gives it one), 3 never approved (with a deposit), 4 the seller itself.
SELLER = 4


def step_at(bands: list[list[int]], standing: int) -> int:
    return [step for low, step in bands if standing >= low][-1]


class Model:
    """What the rules say of one auction, from the bids this machine saw accepted."""

    def __init__(self, a: Auction) -> None:
        self.pk = a.pk
        self.bands: list[list[int]] = a.increments
        self.closes_at = a.closes_at
        self.hard = a.hard_close_at
        self.bids: list[tuple[int, int, dt.datetime]] = []  # (bidder index, price, time)
        self.closed = False

    @property
    def standing(self) -> int | None:
        return self.bids[-1][1] if self.bids else None

    @property
    def end(self) -> dt.datetime:
        last = self.bids[-1][2] if self.bids else None
        end = max(self.closes_at, last or self.closes_at) + dt.timedelta(seconds=COUNTDOWN_S)
        return min(end, self.hard) if self.hard else end

    def minimum(self) -> int:
        s = self.standing
        return START if s is None else s + step_at(self.bands, s)


class EnglishMachine(SavepointMachine):
    auctions = Bundle("auctions")
    awards = Bundle("awards")
    # Moved only by the time_passes and run_out rules: a bid's phase is the one the machine
    # chose.
    frozen_clock = True

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[int, Model] = {}
        self.deposits: dict[tuple[int, int], int] = {}  # (auction, bidder index): recorded

    @initialize(target=auctions, bands=st.sampled_from(INCREMENTS))
    def world(self, bands):
        assert LedgerEntry.objects.count() == 0
        self.market = Market(4, unapproved={3})
        assert self.market.seller == SELLER
        self.w, self.batch, self.bidders = self.market.w, self.market.batch, self.market.bidders
        return self.create(bands, None, "cancel")  # every example has an auction from the start

    # ---- rules ------------------------------------------------------------------------------

    @rule(
        target=auctions,
        bands=st.sampled_from(INCREMENTS),
        hard=st.sampled_from([None, None, 50, 200]),  # seconds after the free phase
        undersubscribed=st.sampled_from(["settle", "cancel"]),
    )
    def create(self, bands, hard, undersubscribed):
        now = timezone.now()
        closes_at = now + dt.timedelta(seconds=FREE_S)
        a, err = self.attempt(
            auctions.auction_create,
            actor=self.w.dev,
            account=self.w.dev_account.pk,
            batch=self.batch.pk,
            title="Xihu Port seaweed sink",
            format="english",
            quantity=10 * TONNE,
            lot_kg=10 * TONNE,
            currency="CNY",
            tick=TICK,
            reserve=START,
            cap_bp=None,
            deposit_required=DEPOSIT,
            bid_guarantee=False,
            tie_rule="random_order",
            undersubscribed=undersubscribed,
            opens_at=now - dt.timedelta(seconds=1),
            closes_at=closes_at,
            increments=bands,
            countdown_s=COUNTDOWN_S,
            hard_close_at=None if hard is None else closes_at + dt.timedelta(seconds=hard),
        )
        assert err is None, err
        a = auctions.auction_schedule(actor=self.w.dev, auction=a.pk)
        assert a.state == Auction.State.OPEN
        self.models[a.pk] = Model(a)
        for who in (0, 1, 3):
            self.deposit(a.pk, who)
        return a.pk

    @rule(auction=auctions, who=st.integers(0, 3))
    def deposit(self, auction: int, who: int) -> None:
        _, err = self.attempt(
            auctions.deposit_record,
            actor=OPERATOR,
            auction=auction,
            bidder=self.bidders[who].pk,
            amount=DEPOSIT,
        )
        if err is None:
            key = (auction, who)
            self.deposits[key] = self.deposits.get(key, 0) + DEPOSIT
        else:  # only once the auction has closed
            assert self.models[auction].closed and code_of(err) == "auction_wrong_state", err

    def _expected(self, model: Model, who: int, price: int) -> str | None:
        """The code a bid must be refused with, or None: it must be accepted."""
        if model.closed or timezone.now() >= model.end:
            return "auction_closed"
        # A price below the minimum (on the tick) is refused before the locks, whoever bids
        # (auctions/english.py, _too_low_already): it could only be refused after them too.
        if price % TICK == 0 and price < model.minimum():
            return "bid_too_low"
        if who == SELLER:
            return "own_auction"
        if who == 3:
            return "bidder_not_approved"
        if self.deposits.get((model.pk, who), 0) < DEPOSIT:
            return "deposit_insufficient"
        if price % TICK:
            return "price_off_tick"
        if price < model.minimum():
            return "bid_too_low"
        if model.bids and model.bids[-1][0] == who:
            return "already_leading"
        return None

    @rule(
        auction=auctions,
        who=st.sampled_from([0, 1, 0, 1, 2, 3, SELLER]),
        # Around the lowest valid price: at it (most often), above it, below it, off the tick.
        delta=st.sampled_from([0, 0, 0, 10, 700, -10, -50, -100, -200, 5]),
    )
    def bid(self, auction: int, who: int, delta: int) -> None:
        model = self.models[auction]
        price = model.minimum() + delta
        want = self._expected(model, who, price)
        before = auction_snapshot() if want is not None else None
        r, err = self.attempt(
            english.english_bid, actor=self.market.actor(who), auction=auction, price=price
        )
        code = code_of(err)
        assert code == want, f"bid {price} by {who}: {code}, the rules say {want}"
        event(f"bid: {code or 'accepted'}")
        if r is not None:
            model.bids.append((who, price, r.time))
        else:  # a refused bid changed nothing, in any table
            assert auction_snapshot() == before

    # Most of a real auction is the lowest valid raise by the bidders who may: two more rules,
    # so that hypothesis's choice of rules (which leaves some out of each example) seldom
    # leaves them all out.
    @rule(auction=auctions, who=st.integers(0, 1))
    def bid_the_minimum(self, auction: int, who: int) -> None:
        self.bid(self._live(auction), who, 0)

    @rule(
        auction=auctions, who=st.sampled_from([0, 1, 0, 1, 2]), delta=st.sampled_from([0, 10, -50])
    )
    def outbid(self, auction: int, who: int, delta: int) -> None:
        self.bid(self._live(auction), who, delta)

    def _live(self, auction: int) -> int:
        """``auction``, or if bidding has ended there, the latest one still taking bids."""
        now = timezone.now()
        live = [pk for pk, m in self.models.items() if not m.closed and now < m.end]
        return auction if auction in live or not live else live[-1]

    @precondition(lambda self: hasattr(self, "w"))
    @rule(seconds=st.sampled_from([1, 2, 5, 10, 29, 31, 61]))
    def time_passes(self, seconds: int) -> None:
        self.skipped += dt.timedelta(seconds=seconds)

    @rule(target=awards, auction=auctions)
    def close(self, auction: int):
        """The worker's steps: close (only once bidding has ended), clear, settle."""
        model = self.models[auction]
        due = not model.closed and timezone.now() >= model.end
        assert auctions.auction_close(auction=auction) == due
        event(f"close: {'due' if due else 'early'}")
        if not due:
            return multiple()
        model.closed = True
        assert auctions.auction_clear(auction=auction)
        a = Auction.objects.get(pk=auction)
        if a.state == Auction.State.CLEARED:
            assert auctions.auction_settle(auction=auction)
        return multiple(*Award.objects.filter(auction_id=auction).values_list("pk", flat=True))

    @rule(target=awards, auction=auctions, past=st.sampled_from([0, 1, 30]))
    def run_out(self, auction: int, past: int):
        """Nobody bids until the end (and ``past`` seconds more); then the worker's steps."""
        model = self.models[auction]
        if not model.closed:
            wait = model.end - timezone.now() + dt.timedelta(seconds=past)
            self.skipped += max(wait, dt.timedelta())
        return self.close(auction)

    @rule(award=awards, paid=st.booleans())
    def award_resolve(self, award: int, paid: bool) -> None:
        self.attempt(
            auctions.award_confirm_payment if paid else auctions.award_default,
            actor=OPERATOR,
            award=award,
        )

    # ---- invariants -------------------------------------------------------------------------

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def the_price_rises_by_the_increment_and_the_end_is_the_rules(self) -> None:
        for pk, model in self.models.items():
            a = Auction.objects.get(pk=pk)
            prices = list(
                Raise.objects.filter(auction=a)
                .order_by("entry_seq")
                .values_list("price", flat=True)
            )
            assert prices == [p for _, p, _ in model.bids]
            assert not prices or prices[0] >= START
            for before, after in pairwise(prices):
                assert after >= before + step_at(model.bands, before)
            assert a.standing_price == model.standing
            assert a.bidding_ends_at == model.end

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def the_winner_is_the_highest_valid_bid(self) -> None:
        for pk, model in self.models.items():
            a = Auction.objects.get(pk=pk)
            awards = list(Award.objects.filter(auction=a))
            if a.result is None:
                assert not awards
                continue
            if not model.bids:
                assert a.clearing_price is None and not awards
                assert a.state == ("settled" if a.undersubscribed == "settle" else "cancelled")
                continue
            who, price, _ = max(model.bids, key=lambda b: b[1])
            assert a.clearing_price == price
            (award,) = awards
            assert award.bidder_id == self.bidders[who].pk
            assert award.amount_due == price * a.quantity // TONNE

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def deposits_balance(self) -> None:
        for pk in self.models:
            recorded = {
                self.bidders[who].pk: amount
                for (auction, who), amount in self.deposits.items()
                if auction == pk
            }
            assert_deposits_balance(pk, recorded)

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def the_lot_is_never_over_allocated(self) -> None:
        for pk in self.models:
            assert_the_lot_is_never_over_allocated(pk)
        assert_supply_adds_up()

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def replay_reproduces_the_tables(self) -> None:
        assert_replay_reproduces_the_tables()


@pytest.mark.django_db
def test_random_english_auctions_follow_the_rules_and_replay_to_the_live_state():
    run(EnglishMachine, steps=50)
