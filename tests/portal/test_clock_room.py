"""The clock auction's room through Django's test client: what anonymous visitors, bidders and
the seller see, a bid form whose refusals (each rule of the activity rule and the shared codes)
come back translated and change nothing, the room's JSON, the result, and the list's cards."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from auctions.models import Auction, ClockBid
from ledger.models import LedgerEntry
from tests.auctions.conftest import Market, wait_for_close
from tests.auctions.test_clock import bid, clock_auction, end_round, finish
from tests.portal.test_pages import user_for

RULES = {"activity_rule", "above_eligibility", "invalid_exit_price", "exit_without_reduction"}


@pytest.fixture
def market(db) -> Market:
    return Market()


@pytest.fixture
def room(market) -> Auction:
    """100 lots of 1 t, start 30.00 CNY/t, +5.00 a round, round 1 for 30 s."""
    return clock_auction(market, first_round_s=30, round_s=60)


@pytest.fixture
def second_round(market) -> Auction:
    """Round 1 ran: the first two bidders demanded 60 lots each (120 > 100), the third
    nothing; round 2 runs at 35.00 for 60 s."""
    a = clock_auction(market, first_round_s=0.5, round_s=60)
    b1, b2, _ = market.bidders
    bid(market, a, b1, 60)
    bid(market, a, b2, 60)
    assert not end_round(a)
    a.refresh_from_db()
    return a


@pytest.fixture
def first(market) -> Client:
    return user_for(market.bidders[0], "first")


def zh(client: Client) -> Client:
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    return client


def json_post(client: Client, a: Auction, **fields) -> tuple[int, dict]:
    r = client.post(f"/auctions/{a.pk}/round-bid", fields, headers={"accept": "application/json"})
    return r.status_code, r.json()


def test_anyone_sees_the_round_its_price_the_sealing_and_no_bid_form(room, client):
    r = client.get(f"/auctions/{room.pk}/")
    assert r.status_code == 200
    html = r.content.decode()
    assert 'id="clock-room"' in html and 'id="round-form"' not in html
    assert re.search(r'id="room-round">1<', html)
    assert re.search(r'id="room-price">30\.00 CNY/t<', html)
    assert re.search(r'id="room-next">35\.00 CNY/t<', html)
    assert "+5.00 CNY/t if demand still exceeds the supply" in html
    assert "Round bids are hidden from other bidders until the auction ends; the operator " in html
    assert "(operator_rounds)" in html
    assert "Round 1 takes bids until" in html
    assert 'data-round="1"' in html and "running" in html  # the round's row
    assert "A new sealed bid" not in html  # not the sealed formats' page
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline script"
    assert " style=" not in html
    assert 'id="room-position"' not in html


def test_a_bidder_sees_its_demands_and_a_form_and_the_seller_only_follows(
    market, second_round, first
):
    a = second_round
    html = first.get(f"/auctions/{a.pk}/").content.decode()
    assert 'id="round-form"' in html and 'name="round" id="round-number" value="2"' in html
    assert "Your bid in round 2 at 35.00 CNY/t" in html
    assert "At most 60 lots: your demand in the round before" in html
    assert "strictly between 30.00 and 35.00 CNY/t, on the tick of 1.00" in html
    position = re.search(r'<section id="room-position".*?</section>', html, re.S).group(0)
    assert "Round 1</dt><dd>60 lots" in position and "no bid yet" in position
    assert "You have not bid in round 2" in position and "Active" in position
    # The rounds so far: round 1's aggregate and active bidders, and the chart.
    assert re.search(
        r'data-round="1"><th scope="row">1</th><td class="num">30\.00</td>'
        r'<td class="num">120</td><td class="num">2</td>',
        html,
    )
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and "rounds-chart-title" in html
    bid(market, a, market.bidders[0], 40, exit_price=3300)
    position = first.get(f"/auctions/{a.pk}/").content.decode()
    assert "40 lots · from the exit price 33.00 CNY/t on · version 1" in position
    # The third bidder demanded nothing in round 1: it is no longer active.
    third = user_for(market.bidders[2], "third").get(f"/auctions/{a.pk}/").content.decode()
    assert "No longer active" in third
    seller = user_for(market.seller, "seller").get(f"/auctions/{a.pk}/").content.decode()
    assert 'id="round-form"' not in seller and "You are the seller" in seller


def test_a_demand_from_the_form_is_placed_and_the_page_says_so(market, room, first):
    r = first.post(f"/auctions/{room.pk}/round-bid", {"round": "1", "lots": "60"})
    assert r.status_code == 302
    b = ClockBid.objects.get(auction=room)
    assert (b.lots, b.exit_price, b.version) == (60, None, 1)
    html = first.get(r["Location"]).content.decode()
    assert "Your demand in round 1: 60 lots at 30.00 CNY/t." in html
    assert "hidden from other bidders until the end" in html
    assert "Round 1</dt><dd>60 lots · version 1" in html
    # A second bid in the round replaces the first.
    status, body = json_post(first, room, round="1", lots="55")
    assert status == 201 and "55 lots" in body["message"]
    assert ClockBid.objects.get(auction=room).version == 2


@pytest.mark.parametrize(
    ("fields", "code", "field", "message", "chinese"),
    [
        (
            {"lots": "61"},
            "activity_rule",
            "lots",
            "Demand may not rise as the price rises: at most 60 lots",
            "需求不得随价格上升而增加",
        ),
        (
            {"lots": "50", "exit_price": "30.00"},
            "invalid_exit_price",
            "exit_price",
            "An exit price lies strictly between 30.00 and 35.00 CNY/t, on the tick of 1.00.",
            "退出价须严格介于 30.00 与 35.00",
        ),
        (
            {"lots": "50", "exit_price": "32.50"},
            "invalid_exit_price",
            "exit_price",
            "An exit price lies strictly between 30.00 and 35.00 CNY/t",
            "退出价须严格介于",
        ),
        (
            {"lots": "60", "exit_price": "33.00"},
            "exit_without_reduction",
            "lots",
            "An exit price is where your demand drops: bid fewer than your 60 lots",
            "退出价是您需求减少之处",
        ),
        ({"lots": "-1"}, "invalid", "lots", "Lots are a whole number, 0 or more.", "整数"),
        (
            {"lots": "10", "exit_price": "thirty"},
            "invalid",
            "exit_price",
            "A price per tonne as a decimal number, e.g. 106.00.",
            "十进制数",
        ),
        (
            {"lots": "10", "round": "1"},
            "round_changed",
            "lots",
            "The round changed while you were bidding: round 2 is open at 35.00 CNY/t.",
            "轮次已变更",
        ),
    ],
)
def test_a_refused_round_bid_is_said_on_its_field_translated_and_changes_nothing(
    market, second_round, first, fields, code, field, message, chinese
):
    a = second_round
    fields = {"round": "2", **fields}
    before = LedgerEntry.objects.count(), list(ClockBid.objects.values_list("pk", "version"))
    r = first.post(f"/auctions/{a.pk}/round-bid", fields)
    assert r.status_code == 400
    html = r.content.decode()
    assert message in html
    error = re.search(rf'id="id_{field}-error" role="alert">([^<]*)<', html)
    assert error and message[:30] in error.group(1)
    assert 'aria-invalid="true"' in html
    assert 'name="round" id="round-number" value="2"' in html  # a new try goes to round 2
    status, body = json_post(first, a, **fields)
    assert status in (400, 409, 422)
    if code in RULES:
        assert (body["code"], body["rule"]) == ("round_bid_refused", code)
    else:
        assert body["code"] == code
    assert body["field"] == field and message in body["message"]
    status, body = json_post(zh(first), a, **fields)
    assert chinese in body["message"]
    assert (
        LedgerEntry.objects.count(),
        list(ClockBid.objects.values_list("pk", "version")),
    ) == before


def test_round_one_refuses_more_than_the_eligibility_and_any_exit_price(market, first):
    a = clock_auction(market, first_round_s=30, cap_bp=5000)  # at most 50 lots
    entries = LedgerEntry.objects.count()
    status, body = json_post(first, a, round="1", lots="51")
    assert (status, body["rule"], body["field"]) == (422, "above_eligibility", "lots")
    assert body["message"] == (
        "In the first round you may demand at most 50 lots (your eligibility)."
    )
    status, body = json_post(first, a, round="1", lots="10", exit_price="31.00")
    assert (body["rule"], body["field"]) == ("invalid_exit_price", "exit_price")
    assert body["message"] == "There is no exit price in the first round."
    html = first.get(f"/auctions/{a.pk}/").content.decode()
    assert "At most 50 lots in the first round (your eligibility)." in html
    assert re.search(r'<p class="field" id="exit-field" hidden>', html)
    assert LedgerEntry.objects.count() == entries and not ClockBid.objects.exists()


def test_the_shared_refusals_are_said_in_words(market, second_round, first):
    a = second_round
    third = user_for(market.bidders[2], "third")
    status, body = json_post(third, a, round="2", lots="1")  # nothing in round 1
    assert (body["rule"], status) == ("activity_rule", 422)
    assert "at most 0 lots" in body["message"]
    other = clock_auction(market, first_round_s=30, deposit_required=100_000)
    status, body = json_post(first, other, round="1", lots="1")
    assert (status, body["code"]) == (409, "deposit_insufficient")
    assert body["message"].startswith("This auction needs a deposit of 1,000.00 CNY")
    # The seller's organization has no bidder role: it has no form and the service says no.
    seller = user_for(market.seller, "seller")
    status, body = json_post(seller, a, round="2", lots="1")
    assert body["code"] in ("own_auction", "bidder_not_approved", "permission_denied")
    assert body["message"] and "_" not in body["message"]
    assert not ClockBid.objects.filter(auction=other).exists()


def test_a_round_that_ended_refuses_the_bid_as_closed(market, first):
    a = clock_auction(market, first_round_s=0.3, round_s=60)
    wait_for_close(a)
    status, body = json_post(first, a, round="1", lots="10")
    assert (status, body["code"]) == (409, "auction_closed")
    assert body["message"] == "This round has closed: bid again in the next round, if there is one."
    s = first.get(f"/auctions/{a.pk}/clock.json").json()
    assert s["phase"] == "ending"


def test_signing_in_is_needed_to_bid(room, client):
    r = client.post(f"/auctions/{room.pk}/round-bid", {"round": "1", "lots": "10"})
    assert r.status_code == 302 and "/account/login/" in r["Location"]
    assert not ClockBid.objects.exists()


def test_the_json_gives_the_round_the_server_time_and_new_rounds_after_a_sequence(
    market, second_round, client, first
):
    a = second_round
    s = client.get(f"/auctions/{a.pk}/clock.json").json()
    assert (s["state"], s["phase"], s["round"], s["price"], s["price_text"]) == (
        "open",
        "running",
        2,
        3500,
        "35.00",
    )
    assert s["previous_price"] == 3000 and s["next_price_text"] == "40.00"
    assert s["server_time"].endswith("Z") and s["closes_at"].endswith("Z")
    assert s["rows"].count("<tr") == 2 and s["chart"].startswith("<svg")
    assert s["announce"] == (
        "Round 2 is open at 35.00 CNY/t. Round 1 closed: aggregate demand 120 lots, "
        "2 active bidders."
    )
    assert s["position"] is None and s["result"] is None and s["final"] is False
    # Nothing new after the version it gave: no rows, no chart (a small answer).
    again = client.get(f"/auctions/{a.pk}/clock.json", {"after": s["version"]}).json()
    assert again["rows"] is None and again["chart"] is None
    mine = first.get(f"/auctions/{a.pk}/clock.json").json()["position"]
    assert (mine["code"], mine["most"], mine["previous"]) == ("missing", 60, 60)
    assert "You have not bid in round 2" in mine["html"]
    # Another bidder's demand in this round is nowhere in what the public gets.
    bid(market, a, market.bidders[1], 37)
    s = client.get(f"/auctions/{a.pk}/clock.json").json()
    # (Times are left out of the search: "02:37:05" is not a demand.)
    public = re.sub(r"\d\d:\d\d(:\d\d)?", "", s["rows"] + s["phase_text"] + s["announce"])
    assert "37" not in public
    html = client.get(f"/auctions/{a.pk}/").content.decode()
    assert ">37<" not in html and "37 lots" not in html
    assert client.get("/auctions/999999/clock.json").status_code == 404
    sealed = market.auction()
    assert client.get(f"/auctions/{sealed.pk}/clock.json").status_code == 404
    assert client.get(f"/auctions/{sealed.pk}/").status_code == 200  # its own page


def test_after_the_end_the_room_shows_the_clearing_price_the_allocation_and_the_unsold(
    market, client
):
    m = market
    a = clock_auction(m, first_round_s=0.5, round_s=1)
    b1, b2, b3 = m.bidders
    bid(m, a, b1, 60)
    bid(m, a, b2, 50)
    bid(m, a, b3, 30)
    assert not end_round(a)
    bid(m, a, b1, 40)
    bid(m, a, b2, 20, exit_price=3300)
    bid(m, a, b3, 30)
    assert end_round(a)
    a = finish(a)  # docs/auctions-ascending.md §6's worked example: A 50, B 20, C 30 at 35.00
    html = client.get(f"/auctions/{a.pk}/").content.decode()
    result = re.search(r'<section id="room-result".*?</section>', html, re.S).group(0)
    assert "Clearing price" in result and "35.00 CNY/t" in result
    assert "Unsold lots</dt><dd>0" in result
    for org, lots, amount in ((b1, 50, "1,750.00"), (b2, 20, "700.00"), (b3, 30, "1,050.00")):
        assert re.search(
            rf"<td>{re.escape(org.name)}</td><td class=\"num\">{lots}</td>"
            rf"<td class=\"num\">{lots}</td><td class=\"num\">{amount}</td>",
            result,
        ), org.name
    assert 'id="round-form"' not in html and "final" in html
    s = client.get(f"/auctions/{a.pk}/clock.json").json()
    assert s["final"] is True and s["phase"] == "over" and b1.name in s["result"]
    assert s["announce"] == "The auction has ended."
    winner = user_for(b2, "winner").get(f"/auctions/{a.pk}/").content.decode()
    assert "You won" in winner and "20 lots for 700.00 CNY." in winner
    html = zh(client).get(f"/auctions/{a.pk}/").content.decode()
    assert "成交价" in html and "未售出" in html


def test_an_undersubscribed_cancelled_auction_says_the_lots_stay_with_the_seller(market, client):
    a = clock_auction(market, first_round_s=0.3, undersubscribed="cancel")
    bid(market, a, market.bidders[0], 10)
    assert end_round(a)
    a = finish(a)
    assert a.state == Auction.State.CANCELLED
    html = client.get(f"/auctions/{a.pk}/").content.decode()
    assert "the auction is cancelled and the lots stay with the seller" in html


def test_the_list_shows_the_format_the_round_and_its_price(market, second_round, client):
    html = client.get("/auctions/").content.decode()
    assert "Multi-unit, ascending clock in rounds" in html
    card = re.search(r"<article class=\"card\">.*?</article>", html, re.S).group(0)
    assert "Round</dt><dd>2</dd>" in card and "Round price</dt><dd>35.00 CNY/t" in card
    assert "Round ends in" in card
    assert "Round bids: the operator sees them" in card  # operator_rounds, said up front
    html = zh(client).get("/auctions/").content.decode()
    assert "时钟" in html and "本轮价格" in html and "轮次报价\uff1a运营方可见" in html


def test_the_room_says_everything_in_chinese(market, second_round, first):
    html = zh(first).get(f"/auctions/{second_round.pk}/").content.decode()
    for words in ("轮次", "本轮价格", "总需求", "活跃竞买人", "退出价", "本轮剩余时间"):
        assert words in html, words
    found = re.search(r'<span id="i18n-room" hidden(.*?)></span>', html, re.S)
    assert found
    messages = re.findall(r'data-([\w-]+)="([^"]*)"', found.group(1))
    assert len(messages) > 15
    untranslated = [name for name, t in messages if not re.search("[\u4e00-\u9fff]", t)]
    assert untranslated == []
