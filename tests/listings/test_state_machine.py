"""Random sequences of listing operations (list, take, confirm, default, withdraw, expire; random
buyers, lots and clock) through the services. After every step: never oversold, each
listing's escrow holds exactly its unsold and pending lots, each buyer holds exactly what its
confirmed purchases delivered, supply adds up, and the ledger replayed from sequence 0
reproduces the live tables (``verify_ledger``); a refused operation leaves the ledger as it was."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from ledger import services as registry
from ledger import signer
from ledger.exceptions import DomainError
from ledger.models import Batch, EscrowHold, Holding, LedgerEntry, Role
from ledger.signing import trusted_verifiers
from ledger.verify import verify_ledger
from listings import services
from listings.models import Listing, Purchase
from tests import factories

OPERATOR = factories.OPERATOR
TONNE = 1000


class ListingMachine(RuleBasedStateMachine):
    listings = Bundle("listings")
    purchases = Bundle("purchases")

    def __init__(self) -> None:
        super().__init__()
        signer.state_reset()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.skipped = dt.timedelta()
        real_now = timezone.now
        self._clock = mock.patch.object(timezone, "now", lambda: real_now() + self.skipped)
        self._clock.start()

    def teardown(self) -> None:
        self._clock.stop()
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize()
    def world(self) -> None:
        assert LedgerEntry.objects.count() == 0
        self.w = factories.World()
        self.batch = self.w.issue(1_000 * TONNE, share_bp=0)
        self.buyers = []
        for _ in range(3):
            org = factories.organization(Role.BIDDER)
            factories.account(org)
            self.buyers.append(org)

    def _attempt(self, fn, **kwargs):
        before = LedgerEntry.objects.count()
        try:
            with transaction.atomic():
                result = fn(**kwargs)
        except DomainError:
            assert LedgerEntry.objects.count() == before, "a refused operation wrote the ledger"
            return None
        return result

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
        x = self._attempt(
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
        actor = self.w.dev if buyer == 3 else factories.actor_for(self.buyers[buyer])
        p = self._attempt(
            services.listing_take, actor=actor, listing=listing, lots=lots, up_to=up_to
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
        self._attempt(
            services.purchase_confirm if paid else services.purchase_default,
            actor=OPERATOR,
            purchase=purchase,
        )

    @rule(listing=listings, by_seller=st.booleans())
    def withdraw(self, listing, by_seller):
        actor = self.w.dev if by_seller else factories.actor_for(self.buyers[0])
        self._attempt(services.listing_withdraw, actor=actor, listing=listing)

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
        for b in Batch.objects.all():
            held = sum(h.tradable + h.escrowed for h in Holding.objects.filter(batch=b))
            assert held + b.retired + b.cancelled == b.issued

    @precondition(lambda self: hasattr(self, "w"))
    @invariant()
    def replay_reproduces_the_tables(self) -> None:
        verify_ledger(verifiers=trusted_verifiers())


@pytest.mark.django_db
def test_random_listing_sequences_replay_to_the_live_state():
    ListingMachine.TestCase.settings = settings(
        max_examples=25,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    ListingMachine.TestCase().runTest()
