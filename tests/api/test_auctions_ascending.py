"""English auctions through the API, as an exchange's registry and its bidders use it: the rules
in decimal strings, open bids in and out (pseudonymous until the end), refusals with stable
codes that change nothing."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from rest_framework.test import APIClient

from auctions import services
from auctions.models import Auction, Raise
from ledger.models import LedgerEntry
from tests.api.test_auctions import _create
from tests.auctions.conftest import OPERATOR, Market


@pytest.fixture
def market(db) -> Market:
    return Market()


def _english(client, m: Market, **change):
    rules = {
        "format": "english",
        "quantity": "2340.1",
        "lot_size": "2340.1",
        "price_tick": "0.10",
        "reserve_price": "30.00",
        "bidder_cap": None,
        "increments": [{"from": "0.00", "step": "1.00"}, {"from": "100.00", "step": "2.00"}],
        "countdown_seconds": 60,
    }
    return _create(client, m, **(rules | change))


def test_an_exchange_runs_an_english_auction_through_the_api(market, client_for):
    m = market
    seller = client_for(m.seller, "auction", "read")
    r = _english(seller, m)
    assert r.status_code == 201, r.json()
    a = r.json()
    assert a["format"] == "english" and a["english"]["countdown_seconds"] == 60
    assert a["english"]["increments"] == [
        {"from": "0.00", "step": "1.00"},
        {"from": "100.00", "step": "2.00"},
    ]
    r = seller.post(f"/api/v1/auctions/{a['id']}/schedule", format="json")
    assert r.status_code == 200, r.json()
    a = r.json()
    assert a["state"] == "open" and a["sealing"] is None
    assert a["english"]["minimum_bid"] == "30.00" and a["english"]["standing_price"] is None
    for b in m.bidders:
        m.deposit(Auction.objects.get(pk=a["id"]), b, 3_000_000)
    b1, b2, _ = (client_for(b, "bid", "read") for b in m.bidders)
    url = f"/api/v1/auctions/{a['id']}/raises"
    first = b1.post(url, {"price": "30.00"}, format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["price"] == "30.00" and first.json()["bidder"] is None
    r = b2.post(url, {"price": "30.50"}, format="json")
    assert r.status_code == 422 and r.json()["code"] == "bid_too_low", r.json()
    assert r.json()["detail"]["minimum"] == 3100
    assert b2.post(url, {"price": "31.00"}, format="json").status_code == 201
    # More decimals than the currency has: an error, never a rounding.
    r = b1.post(url, {"price": "32.001"}, format="json")
    assert r.status_code == 400, r.json()
    assert Raise.objects.count() == 2
    public = APIClient()
    listed = public.get(url).json()
    assert [x["price"] for x in listed] == ["30.00", "31.00"]
    assert all(x["bidder"] is None and len(x["paddle"]) == 64 for x in listed)
    assert public.get(f"{url}?after={listed[0]['entry_seq']}").json() == listed[1:]
    detail = public.get(f"/api/v1/auctions/{a['id']}").json()
    assert detail["english"]["standing_price"] == "31.00"
    assert detail["english"]["minimum_bid"] == "32.00"


def test_a_raise_into_a_sealed_auction_or_anonymously_is_refused(market, client_for):
    m = market
    sealed = m.auction()
    m.deposit(sealed, m.bidders[0], 1)
    bidder = client_for(m.bidders[0], "bid", "read")
    before = LedgerEntry.objects.count()
    r = bidder.post(f"/api/v1/auctions/{sealed.pk}/raises", {"price": "30.00"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "wrong_format", r.json()
    assert APIClient().get(f"/api/v1/auctions/{sealed.pk}/raises").json() == []
    r = APIClient().post(f"/api/v1/auctions/{sealed.pk}/raises", {"price": "30.00"})
    assert r.status_code == 401
    assert LedgerEntry.objects.count() == before


def test_after_the_end_the_bids_name_their_bidders(market, client_for):
    m = market
    seller = client_for(m.seller, "auction", "read")
    now = dt.datetime.now(dt.UTC)
    a = _english(
        seller,
        m,
        countdown_seconds=1,
        closes_at=(now + dt.timedelta(seconds=0.5)).isoformat(),
        deposit_required="0",
    ).json()
    seller.post(f"/api/v1/auctions/{a['id']}/schedule", format="json")
    bidder = client_for(m.bidders[0], "bid", "read")
    assert (
        bidder.post(f"/api/v1/auctions/{a['id']}/raises", {"price": "40.00"}, format="json")
    ).status_code == 201
    auction = Auction.objects.get(pk=a["id"])
    time.sleep(max(0, (auction.bidding_ends_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
    assert services.auction_close(auction=auction.pk)
    assert services.auction_clear(auction=auction.pk)
    assert services.auction_settle(auction=auction.pk)
    (listed,) = APIClient().get(f"/api/v1/auctions/{a['id']}/raises").json()
    assert listed["bidder"] == m.bidders[0].pk
    result = APIClient().get(f"/api/v1/auctions/{a['id']}/result").json()
    assert result["state"] == "settled" and result["private_key"] is None
    assert result["result"]["outcome"]["clearing_price"] == 4000  # as the entry has it
    awards = auction.awards.all()
    services.award_confirm_payment(actor=OPERATOR, award=awards[0].pk)


def test_a_clock_auction_through_the_api(market, client_for):
    m = market
    seller = client_for(m.seller, "auction", "read")
    now = dt.datetime.now(dt.UTC)
    r = _create(
        seller,
        m,
        format="clock",
        quantity="100",
        lot_size="1",
        bidder_cap=None,
        increments=[{"from": "0.00", "step": "5.00"}],
        round_seconds=60,
        deposit_required="0",
        closes_at=(now + dt.timedelta(seconds=1)).isoformat(),
    )
    assert r.status_code == 201, r.json()
    a = seller.post(f"/api/v1/auctions/{r.json()['id']}/schedule", format="json").json()
    assert a["sealing"] is None and a["clock"]["round"] == 1
    assert (a["clock"]["round_price"], a["clock"]["round_open"]) == ("30.00", True)
    b1, b2, _ = (client_for(b, "bid", "read") for b in m.bidders)
    url = f"/api/v1/auctions/{a['id']}/round-bids"
    assert b1.post(url, {"lots": 70}, format="json").status_code == 201
    r = b2.post(url, {"lots": 70, "exit_price": "31.00"}, format="json")
    assert r.status_code == 422 and r.json()["code"] == "round_bid_refused", r.json()
    assert r.json()["detail"]["rule"] == "invalid_exit_price"
    assert b2.post(url, {"lots": 70}, format="json").status_code == 201
    assert [x["lots"] for x in b1.get(url).json()] == [70]  # its own, and only its own
    public = APIClient()
    (round1,) = public.get(f"/api/v1/auctions/{a['id']}/rounds").json()
    assert round1["aggregate"] is None and round1["bids"] is None  # hidden while it runs
    auction = Auction.objects.get(pk=a["id"])
    time.sleep(max(0, (auction.bidding_ends_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
    assert not services.auction_close(auction=auction.pk)  # 140 > 100 lots: round 2
    rounds = public.get(f"/api/v1/auctions/{a['id']}/rounds").json()
    assert [(x["round"], x["price"], x["aggregate"], x["active"]) for x in rounds] == [
        (1, "30.00", 140, 2),
        (2, "35.00", None, None),
    ]
    assert rounds[0]["bids"] is None  # the bids themselves only once the auction ended
    r = b1.post(url, {"lots": 80}, format="json")
    assert r.json()["detail"]["rule"] == "activity_rule", r.json()


def test_the_auction_list_reads_clock_rounds_in_one_query_per_page(
    market,
):
    """No query per clock auction on a page of auctions (its current round)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.auctions.test_clock import clock_auction

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            r = APIClient().get("/api/v1/auctions?format=clock")
        assert r.status_code == 200
        return len(captured)

    clock_auction(market, first_round_s=60)
    one = queries()
    for _ in range(3):
        clock_auction(market, first_round_s=60)
    assert queries() == one
    assert [a["clock"]["round"] for a in APIClient().get("/api/v1/auctions").json()["results"]] == [
        1,
        1,
        1,
        1,
    ]
