"""Listing test fixtures: a board (a seller holding credits, buyers with accounts), a clock the
services read that tests move forward, and the check that a refused write changed nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.utils import timezone

from bluecarbon.errors import Codes
from ledger.actors import Actor
from ledger.exceptions import DomainError
from ledger.models import Holding, LedgerEntry, Role
from listings import services
from listings.models import Listing, Purchase
from tests import factories
from tests.ledger.conftest import STATUS, snapshot, verify_ledger  # noqa: F401

OPERATOR = factories.OPERATOR
TONNE = 1000


class Board:
    """A registry, a seller holding 10,000 t of one batch, and buyers with holding accounts."""

    def __init__(self, buyers: int = 3) -> None:
        self.world = factories.World()
        self.seller = self.world.developer
        self.seller_account = self.world.dev_account
        self.batch = self.world.issue(10_000 * TONNE, share_bp=0)
        self.sell = self.world.dev
        self.buyers = []
        self.accounts = {}
        for _ in range(buyers):
            org = factories.organization(Role.BIDDER)
            self.accounts[org.pk] = factories.account(org)
            self.buyers.append(org)

    def actor(self, org: Any) -> Actor:
        return factories.actor_for(org)

    def listing(self, **terms: Any) -> Listing:
        now = timezone.now()
        fields: dict[str, Any] = dict(
            actor=self.sell,
            account=self.seller_account.pk,
            batch=self.batch.pk,
            lots=10,
            lot_kg=100 * TONNE,
            currency="CNY",
            price=10600,  # 106.00 CNY/t
            opens_at=now - dt.timedelta(seconds=1),
            closes_at=now + dt.timedelta(hours=1),
        )
        fields.update(terms)
        return services.listing_create(**fields)

    def take(self, listing: Listing, buyer: Any, lots: int, **kw: Any) -> Purchase:
        return services.listing_take(actor=self.actor(buyer), listing=listing.pk, lots=lots, **kw)

    def held(self, account: Any) -> tuple[int, int]:
        h = Holding.objects.filter(account=account, batch=self.batch).first()
        return (h.tradable, h.escrowed) if h else (0, 0)


@pytest.fixture
def board(db: None) -> Board:
    return Board()


@pytest.fixture
def clock(monkeypatch) -> Callable[[dt.timedelta], None]:
    """``clock(timedelta)`` moves the time every service reads forward (nobody waits for a
    listing to close)."""
    skipped = [dt.timedelta()]
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + skipped[0])

    def forward(by: dt.timedelta) -> None:
        skipped[0] += by

    return forward


def listing_snapshot() -> dict[str, Any]:
    state: dict[str, Any] = snapshot()
    for model in (Listing, Purchase):
        state[model.__name__] = list(model.objects.order_by("pk").values())
    return state


@pytest.fixture
def refused(verify_ledger) -> Callable[..., Any]:  # noqa: F811 (the fixture above)
    """``with refused(Conflict, Code.X) as err: <a write>``: exactly that error, its status, and
    nothing changed (registry and listing tables, ledger); the ledger still verifies."""

    @contextmanager
    def check(cls: type[DomainError], code: Codes) -> Iterator[Any]:
        before = listing_snapshot()
        entries = LedgerEntry.objects.count()
        with pytest.raises(DomainError) as err:
            yield err
        assert type(err.value) is cls, f"{type(err.value).__name__}: {err.value}"
        assert err.value.code == code, f"{err.value.code!r}: {err.value}"
        assert err.value.status_code == STATUS[cls]
        assert err.value.message
        assert LedgerEntry.objects.count() == entries
        after = listing_snapshot()
        for table in before:
            assert after[table] == before[table], f"{table} changed"
        verify_ledger()

    return check
