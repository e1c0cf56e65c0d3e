"""The auction services' row locks do not block the lock a foreign key takes either (see
``tests/ledger/test_locks.py``): a bid or a deposit inserted for an auction, a receipt for a
bid, any row pointing at a bidder's organization, goes through while a transition holds it."""

from __future__ import annotations

import pytest
from django.db import connection

from auctions import locks
from tests.auctions.conftest import Market
from tests.ledger.test_locks import foreign_key_check_waits


@pytest.fixture
def market(committed_db: None) -> Market:
    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite runs one writer at a time")
    return Market(bidders=1)


def test_a_locked_auction_lets_rows_that_point_at_it_be_inserted(market):
    a = market.auction()
    assert not foreign_key_check_waits(lambda: locks.auction_lock(a.pk), "auctions_auction", a.pk)


def test_a_locked_bidder_lets_rows_that_point_at_its_organization_be_inserted(market):
    org = market.bidders[0]
    assert not foreign_key_check_waits(
        lambda: locks.bidder_lock(org.pk), "ledger_organization", org.pk
    )


def test_a_locked_bid_lets_rows_that_point_at_it_be_inserted(market):
    a = market.auction()
    bid = market.bid(a, market.bidders[0], [(3000, 1)]).bid
    assert not foreign_key_check_waits(lambda: locks.bid_lock(bid.pk), "auctions_bid", bid.pk)
