"""The English auction's live room through Django's test client: what anonymous visitors,
bidders and the seller see, a bid box whose refusals come back translated and change nothing,
the room's JSON, and the list's cards."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from auctions.models import Auction, Raise
from ledger.models import LedgerEntry
from tests.auctions.conftest import Market
from tests.auctions.test_english import bid, deposits, english_auction, run_out
from tests.portal.test_pages import user_for


@pytest.fixture
def market(db) -> Market:
    return Market()


@pytest.fixture
def room(market) -> Auction:
    """Xiangshan's lot, English, start 30.00 CNY/t, +1.00 below 100.00 and +2.00 from it, a
    free phase of 30 s and a countdown of 60 s; every bidder's deposit held."""
    a = english_auction(market, free_s=30, countdown_s=60)
    deposits(market, a)
    return a


@pytest.fixture
def first(market) -> Client:
    return user_for(market.bidders[0], "first")


@pytest.fixture
def second(market) -> Client:
    return user_for(market.bidders[1], "second")


def zh(client: Client) -> Client:
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    return client


def test_anyone_sees_the_start_price_the_lowest_bid_the_phase_and_no_bid_box(room, client):
    r = client.get(f"/auctions/{room.pk}/")
    assert r.status_code == 200
    html = r.content.decode()
    assert 'id="room"' in html and 'id="raise-form"' not in html
    assert "Start price (no bid yet)" in html
    assert re.search(r'id="room-standing"[^>]*>30\.00 CNY/t<', html)
    assert re.search(r'id="room-minimum">30\.00 CNY/t<', html)
    assert "Free phase until" in html and "each bid restarts that countdown" in html
    assert "60 s" in html
    assert "No bid yet." in html
    assert "A new sealed bid" not in html  # not the sealed formats' page
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline script"
    assert " style=" not in html


def test_the_room_shows_each_bid_with_its_paddle_a_chart_and_the_bidders_position(
    market, room, first, second
):
    b1, b2 = market.bidders[:2]
    r1 = bid(market, room, b1, 3000)
    bid(market, room, b2, 3100)
    html = first.get(f"/auctions/{room.pk}/").content.decode()
    assert "Standing price" in html and re.search(r'id="room-standing"[^>]*>31\.00 CNY/t<', html)
    assert re.search(r'id="room-minimum">32\.00 CNY/t<', html)
    assert html.count("<tr data-seq=") == 2
    assert f"<code>{r1.paddle.pseudonym[:8]}</code>" in html
    assert r1.paddle.pseudonym[8:16] not in html  # the label only
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and "bid-dot" in html
    assert "Outbid" in html and f"Your paddle: {r1.paddle.pseudonym[:8]}" in html
    assert 'id="raise-form"' in html
    html = second.get(f"/auctions/{room.pk}/").content.decode()
    assert "You are leading" in html
    # The seller follows the room and has no bid box.
    seller = user_for(market.seller, "seller")
    html = seller.get(f"/auctions/{room.pk}/").content.decode()
    assert 'id="raise-form"' not in html and "You are the seller" in html


def test_a_bid_from_the_form_stands_and_the_page_says_so(market, room, first):
    r = first.post(f"/auctions/{room.pk}/bid", {"price": "30.00", "account": ""})
    assert r.status_code == 302
    assert Raise.objects.get(auction=room).price == 3000
    html = first.get(r["Location"]).content.decode()
    assert "Your bid of 30.00 CNY/t stands" in html and "You are leading" in html


@pytest.mark.parametrize(
    ("price", "message", "chinese"),
    [
        ("30.50", "Too low: the lowest valid bid now is 31.00 CNY/t.", "当前最低有效出价为 31.00"),
        ("31.05", "The price must be a multiple of the tick, 0.10 CNY/t.", "最小报价单位"),
        ("31.001", "At most two decimals, e.g. 106.50.", "最多两位小数"),
        ("thirty", "A price per tonne as a decimal number, e.g. 106.00.", "十进制数"),
    ],
)
def test_a_refused_bid_is_said_on_the_price_field_translated_and_changes_nothing(
    market, room, first, second, price, message, chinese
):
    bid(market, room, market.bidders[1], 3000)
    before = LedgerEntry.objects.count()
    r = first.post(f"/auctions/{room.pk}/bid", {"price": price})
    assert r.status_code == 400
    html = r.content.decode()
    assert message in html and 'aria-invalid="true"' in html
    assert LedgerEntry.objects.count() == before and Raise.objects.count() == 1
    r = zh(first).post(f"/auctions/{room.pk}/bid", {"price": price})
    assert chinese in r.content.decode()
    # Asked for JSON (room.js), the same refusal, with its code and status.
    r = first.post(
        f"/auctions/{room.pk}/bid", {"price": price}, headers={"accept": "application/json"}
    )
    assert r.status_code in (400, 422) and chinese in r.json()["message"]
    assert LedgerEntry.objects.count() == before


def test_the_standing_bidder_and_a_bidder_without_a_deposit_are_refused_in_words(
    market, room, first
):
    bid(market, room, market.bidders[0], 3000)
    r = first.post(
        f"/auctions/{room.pk}/bid", {"price": "40.00"}, headers={"accept": "application/json"}
    )
    assert r.status_code == 409
    assert r.json() == {
        "code": "already_leading",
        "message": "Your bid is the standing bid already: wait to be outbid.",
    }
    other = english_auction(market, free_s=30, countdown_s=60)  # no deposit held
    r = first.post(f"/auctions/{other.pk}/bid", {"price": "30.00"})
    assert r.status_code == 400
    assert "This auction needs a deposit of 30,000.00 CNY before you bid" in r.content.decode()


def test_signing_in_is_needed_to_bid(room, client):
    r = client.post(f"/auctions/{room.pk}/bid", {"price": "30.00"})
    assert r.status_code == 302 and "/account/login/" in r["Location"]
    assert not Raise.objects.exists()


def test_the_json_gives_the_numbers_the_server_time_and_the_bids_after_a_sequence(
    market, room, client, first
):
    b1, b2 = market.bidders[:2]
    r1 = bid(market, room, b1, 3000)
    s = client.get(f"/auctions/{room.pk}/room.json").json()
    assert s["state"] == "open" and s["phase"] == "free"
    assert (s["standing"], s["standing_text"], s["minimum"], s["minimum_text"]) == (
        3000,
        "30.00",
        3100,
        "31.00",
    )
    assert s["bids"] == 1 and s["last_seq"] == r1.entry_seq and s["position"] is None
    assert s["server_time"].endswith("Z") and s["chart"].startswith("<svg")
    r2 = bid(market, room, b2, 10_000)
    s = first.get(f"/auctions/{room.pk}/room.json", {"after": r1.entry_seq}).json()
    assert s["rows"].count("<tr") == 1 and f'data-seq="{r2.entry_seq}"' in s["rows"]
    assert s["minimum_text"] == "102.00"  # the band from 100.00 steps by 2.00
    assert s["position"]["code"] == "outbid"
    assert s["result"] is None and s["final"] is False
    s = client.get(f"/auctions/{room.pk}/room.json", {"after": r2.entry_seq}).json()
    assert s["rows"] == "" and s["chart"] is None  # nothing new: a small answer
    assert client.get("/auctions/999999/room.json").status_code == 404


def test_the_json_of_a_sealed_auction_is_not_found(market, client):
    a = market.auction()
    assert client.get(f"/auctions/{a.pk}/room.json").status_code == 404
    assert client.get(f"/auctions/{a.pk}/").status_code == 200  # its own page


def test_after_the_end_the_room_shows_the_hammer_the_winner_and_the_lots_value(market, client):
    a = english_auction(market, free_s=0.3, countdown_s=1)
    deposits(market, a)
    bid(market, a, market.bidders[0], 3000)
    top = bid(market, a, market.bidders[1], 10_600)
    a = run_out(a)
    html = client.get(f"/auctions/{a.pk}/").content.decode()
    assert "Hammer price" in html and "106.00 CNY/t" in html
    assert f"<code>{top.paddle.pseudonym[:8]}</code> · {market.bidders[1].name}" in html
    # 106.00 CNY/t x 2,340.1 t: Xiangshan's hammer.
    assert "248,050.60 CNY" in html and "2,340.1 t at the hammer price" in html
    s = client.get(f"/auctions/{a.pk}/room.json").json()
    assert s["final"] is True and market.bidders[1].name in s["result"]
    assert 'id="raise-form"' not in html
    winner = user_for(market.bidders[1], "winner").get(f"/auctions/{a.pk}/").content.decode()
    assert "You won" in winner and 'id="raise-form"' not in winner
    loser = user_for(market.bidders[0], "loser").get(f"/auctions/{a.pk}/").content.decode()
    assert "Outbid" in loser


def test_the_list_shows_the_format_the_standing_price_and_the_time_left(market, room, client):
    bid(market, room, market.bidders[0], 4500)
    html = client.get("/auctions/").content.decode()
    assert "Single lot, English (ascending open bids)" in html
    assert "Standing price" in html and "45.00 CNY/t" in html and "Time left" in html
    assert "Open prices, pseudonymous bidders" in html  # who can read the bids: everyone
    html = zh(client).get("/auctions/").content.decode()
    assert "英式" in html and "价格公开\uff0c竞买人以号牌匿名" in html


def test_the_room_says_everything_in_chinese(market, room, first):
    bid(market, room, market.bidders[1], 3000)
    html = zh(first).get(f"/auctions/{room.pk}/").content.decode()
    assert "实时竞价室" in html and "当前最高价" in html
    found = re.search(r'<span id="i18n-room" hidden(.*?)></span>', html, re.S)
    assert found
    messages = re.findall(r'data-([\w-]+)="([^"]*)"', found.group(1))
    assert len(messages) > 10
    untranslated = [name for name, t in messages if not re.search("[\u4e00-\u9fff]", t)]
    assert untranslated == []
