"""Random sequences of listing operations (list, take, confirm, default, withdraw, expire; random
buyers, lots and clock) through the services. After every step: never oversold, each
listing's escrow holds exactly its unsold and pending lots, each buyer holds exactly what its
confirmed purchases delivered, supply adds up, and the ledger replayed from sequence 0
reproduces the live tables (``verify_ledger``); a refused operation leaves the ledger as it was."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, invariant, multiple, precondition, rule

from ledger import services as registry
from ledger.models import EscrowHold, Holding, LedgerEntry
from listings import services
from listings.models import Listing, Purchase
from tests import factories
from tests.state_machine_support import (
    Market,
    SavepointMachine,
    assert_replay_reproduces_the_tables,
    assert_supply_adds_up,
    run,
)

OPERATOR = factories.OPERATOR
TONNE = 1000


class ListingMachine(SavepointMachine):
    listings = Bundle("listings")
    purchases = Bundle("purchases")

    @initialize()
    def world(self) -> None:
        assert LedgerEntry.objects.count() == 0
        # Buyers need no approval: a take only needs the buyer role.
        self.market = Market(3, approve=False)
        self.w, self.batch, self.buyers = self.market.w, self.market.batch, self.market.bidders

    @precondition(lambda self: hasattr(self, "w"))
    @rule(
        target=listings,
        lots=st.integers(1, 12),
        lot_t=st.sampled_from([1, 10, 25]),
        cap=st.one_of(st.none(), st.integers(1, 6)),
        min_lots=st.sampled_from([1, 1, 1, 2, 3]),
        delay=st.sampled_from([0, 0, 0, 60]),
        minutes=st.integers(5, 120),
    )
    def create(self, lots, lot_t, cap, min_lots, delay, minutes):
        now = timezone.now()
        x, _ = self.attempt(
            services.listing_create,
            actor=self.w.dev,
            account=self.w.dev_account.pk,
            batch=self.batch.pk,
            lots=lots,
            lot_kg=lot_t * TONNE,
            currency="CNY",
            price=10600,
            opens_at=now + dt.timedelta(seconds=delay),
            closes_at=now + dt.timedelta(minutes=minutes),
            max_lots_per_buyer=cap,
            min_lots=min_lots,
        )
        return x.pk if x else multiple()

    @rule(
        target=purchases,
        listing=listings,
        buyer=st.sampled_from([0, 1, 2, 0, 1, 2, 3]),  # 3: the seller itself
        lots=st.integers(1, 5),
        up_to=st.booleans(),
    )
    def take(self, listing, buyer, lots, up_to):
        p, _ = self.attempt(
            services.listing_take,
            actor=self.market.actor(buyer),
            listing=listing,
            lots=lots,
            up_to=up_to,
        )
        return p.pk if p else multiple()

    # Takes are most of what a board sees: two more rules, so that hypothesis's choice of
    # rules (which leaves some out of each example) seldom leaves every take out.
    @rule(target=purchases, listing=listings, buyer=st.integers(0, 2), lots=st.integers(1, 3))
    def take_exactly(self, listing, buyer, lots):
        return self.take(listing, buyer, lots, False)

    @rule(target=purchases, listing=listings, buyer=st.integers(0, 2))
    def take_up_to_many(self, listing, buyer):
        return self.take(listing, buyer, 100, True)

    @rule(purchase=purchases, paid=st.booleans())
    def resolve(self, purchase, paid):
        self.attempt(
            services.purchase_confirm if paid else services.purchase_default,
            actor=OPERATOR,
            purchase=purchase,
        )

    @rule(listing=listings, by_seller=st.booleans())
    def withdraw(self, listing, by_seller):
        actor = self.w.dev if by_seller else factories.actor_for(self.buyers[0])
        self.attempt(services.listing_withdraw, actor=actor, listing=listing)

    @precondition(lambda self: hasattr(self, "w"))
    @rule(minutes=st.sampled_from([1, 10, 121]))
    def time_passes(self, minutes):
        self.skipped += dt.timedelta(minutes=minutes)

    @precondition(lambda self: hasattr(self, "w"))
    @rule()
    def sweep(self):
        for pk in services.listings_due():
            with transaction.atomic():
                assert services.listing_expire(listing=pk)
        assert services.listings_due() == []

    @precondition(lambda self: hasattr(self, "w"))
    @rule()
    def checkpoint(self) -> None:
        registry.ledger_checkpoint_issue()

    # ---- invariants -------------------------------------------------------------------

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def never_oversold_and_escrow_balances(self) -> None:
        for x in Listing.objects.all():
            pending = sum(
                Purchase.objects.filter(listing=x, state="pending").values_list("lots", flat=True)
            )
            live = sum(
                Purchase.objects.filter(listing=x)
                .exclude(state="defaulted")
                .values_list("lots", flat=True)
            )
            assert x.remaining_lots >= 0 and live + x.remaining_lots <= x.lots
            if x.state == "open":
                assert live + x.remaining_lots == x.lots
            else:
                assert x.remaining_lots == 0
            unsold = x.remaining_lots if x.state == "open" else 0
            held = EscrowHold.objects.get(pk=x.hold_id).remaining
            assert held == (unsold + pending) * x.lot_kg
            if x.max_lots_per_buyer is not None:
                for buyer in self.buyers:
                    bought = Purchase.objects.filter(listing=x, buyer=buyer).exclude(
                        state="defaulted"
                    )
                    assert sum(bought.values_list("lots", flat=True)) <= x.max_lots_per_buyer

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def deliveries_are_the_confirmed_purchases(self) -> None:
        for buyer in self.buyers:
            held = sum(
                h.tradable + h.escrowed for h in Holding.objects.filter(account__organization=buyer)
            )
            delivered = Purchase.objects.filter(buyer=buyer, state="delivered")
            assert held == sum(delivered.values_list("quantity", flat=True))

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def supply_adds_up(self) -> None:
        assert_supply_adds_up()

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def replay_reproduces_the_tables(self) -> None:
        assert_replay_reproduces_the_tables()


@pytest.mark.django_db
def test_random_listing_sequences_replay_to_the_live_state():
    run(ListingMachine, steps=30)
