"""Auction test fixtures: a market (a seller with credits, approved bidders with deposits), a
Python HPKE client to seal bids, and the check that a refused write changed nothing."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from auctions import services, trustees
from auctions.core import sealing
from auctions.models import (
    Application,
    Auction,
    Award,
    Bid,
    Bidder,
    BidReceipt,
    Deposit,
    Paddle,
    Raise,
)
from ledger.actors import Actor
from ledger.exceptions import DomainError
from ledger.models import LedgerEntry, Role
from tests import factories
from tests.ledger.conftest import STATUS, snapshot, verifier_path, verify_ledger  # noqa: F401

OPERATOR = factories.OPERATOR
TONNE = 1000


class Market:
    """A registry, a seller holding 10,000 t of one batch, and bidders (approved, with accounts
    and users)."""

    def __init__(self, bidders: int = 3) -> None:
        self.world = factories.World()
        self.seller = self.world.developer
        self.seller_account = self.world.dev_account
        self.batch = self.world.issue(10_000 * TONNE, share_bp=0)
        self.sell = self.world.dev
        self.bidders = []
        self.accounts = {}
        for _ in range(bidders):
            org = factories.organization(Role.BIDDER)
            self.accounts[org.pk] = factories.account(org)
            services.bidder_approve(actor=OPERATOR, organization=org.pk)
            self.bidders.append(org)

    def actor(self, org: Any) -> Actor:
        return factories.actor_for(org)

    def auction(self, *, schedule: bool = True, closes_in: float = 30, **rules: Any) -> Auction:
        a = services.auction_create(actor=self.sell, **self.rules(closes_in=closes_in, **rules))
        if schedule:
            a = services.auction_schedule(actor=self.sell, auction=a.pk)
        return a

    def rules(self, *, closes_in: float = 30, **rules: Any) -> dict[str, Any]:
        """auction_create's arguments for 100 t of the seller's batch in lots of 1 t, uniform
        price, reserve 30.00 CNY/t, open from a second ago; ``rules`` override any."""
        now = timezone.now()
        fields: dict[str, Any] = dict(
            account=self.seller_account.pk,
            batch=self.batch.pk,
            title="Xihu Port seaweed sink",
            format="uniform",
            quantity=100 * TONNE,
            lot_kg=TONNE,
            currency="CNY",
            tick=100,
            reserve=3000,
            cap_bp=None,
            deposit_required=0,
            bid_guarantee=False,
            tie_rule="random_order",
            undersubscribed="settle",
            opens_at=now - dt.timedelta(seconds=1),
            closes_at=now + dt.timedelta(seconds=closes_in),
        )
        fields.update(rules)
        return fields

    def seal(self, a: Auction, bidder: Any, tiers: list[tuple[int, int]]) -> bytes:
        if a.by_trustees:
            return sealing.seal_threshold(
                trustee_keys=[bytes(k.public_key) for k in trustees.auction_keys(a)],
                threshold=a.threshold or 0,
                origin=settings.LEDGER_ORIGIN,
                auction=a.pk,
                bidder=bidder.pk,
                tiers=[{"price": p, "lots": n} for p, n in tiers],
            )
        return sealing.seal(
            public_key=bytes(a.public_key),
            origin=settings.LEDGER_ORIGIN,
            auction=a.pk,
            bidder=bidder.pk,
            tiers=[{"price": p, "lots": n} for p, n in tiers],
        )

    def bid(self, a: Auction, bidder: Any, tiers: list[tuple[int, int]]) -> BidReceipt:
        return services.bid_submit(
            actor=self.actor(bidder), auction=a.pk, ciphertext=self.seal(a, bidder, tiers)
        )

    def deposit(self, a: Auction, bidder: Any, amount: int) -> Deposit:
        return services.deposit_record(
            actor=OPERATOR, auction=a.pk, bidder=bidder.pk, amount=amount
        )


def wait_for_close(a: Auction) -> None:
    delay = (a.closes_at - timezone.now()).total_seconds()
    if delay > 0:
        time.sleep(delay + 0.01)


def run_to_settlement(a: Auction) -> Auction:
    """Close, open, clear and settle in this process (the worker's steps, without a worker)."""
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    services.auction_bids_open(auction=a.pk, first=0, last=2**62)
    services.auction_clear(auction=a.pk)
    a.refresh_from_db()
    if a.state == Auction.State.CLEARED:
        services.auction_settle(auction=a.pk)
        a.refresh_from_db()
    return a


@pytest.fixture
def market(db: None) -> Market:
    return Market()


_AUCTION_TABLES = (Auction, Bid, BidReceipt, Bidder, Deposit, Award, Application, Paddle, Raise)


def auction_snapshot() -> dict[str, list[dict[str, Any]]]:
    state = snapshot()
    for model in _AUCTION_TABLES:
        state[model.__name__] = [
            {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()}
            for row in model.objects.order_by("pk").values()
        ]
    return state


@pytest.fixture
def refused(verify_ledger) -> Callable[..., Any]:  # noqa: F811
    """``with refused(Conflict, "code") as err: <a write>``: exactly that error class, code and
    HTTP status; every registry, auction and ledger table as before; the ledger verifies."""

    @contextmanager
    def check(cls: type[DomainError], code: str) -> Iterator[Any]:
        before = auction_snapshot()
        entries = LedgerEntry.objects.count()
        with pytest.raises(DomainError) as err:
            yield err
        assert type(err.value) is cls, f"{type(err.value).__name__}: {err.value}"
        assert str(err.value.code) == str(code), f"{err.value.code!r}: {err.value}"
        assert err.value.status_code == STATUS[cls]
        assert err.value.message
        assert LedgerEntry.objects.count() == entries
        after = auction_snapshot()
        for table in before:
            assert after[table] == before[table], f"{table} changed"
        verify_ledger()

    return check
