"""The auction calendar (open, upcoming, past, by month, in both languages), its iCalendar
feed, and each format's result report as a page and as CSV with the same figures."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone
from icalendar import Calendar

from auctions.models import Auction
from ledger.models import Organization
from tests.auctions.conftest import TONNE, Market, run_to_settlement
from tests.auctions.test_clock import bid as clock_bid
from tests.auctions.test_clock import clock_auction, end_round, finish
from tests.auctions.test_english import bid as english_bid
from tests.auctions.test_english import deposits, english_auction, run_out


@pytest.fixture
def market(db) -> Market:
    return Market()


def zh(client: Client) -> Client:
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    return client


def sealed(m: Market, fmt: str, **rules) -> Auction:
    a = m.auction(format=fmt, closes_in=0.3, tick=50, title=f"Sealed {fmt} lot", **rules)
    m.bid(a, m.bidders[0], [(4000, 60)] if fmt in ("uniform", "pay_as_bid") else [(4000, 1)])
    m.bid(a, m.bidders[1], [(3550, 60)] if fmt in ("uniform", "pay_as_bid") else [(3550, 1)])
    return run_to_settlement(a)


def english(m: Market) -> Auction:
    a = english_auction(m, title="English lot")
    deposits(m, a)
    english_bid(m, a, m.bidders[0], 3000, account=m.accounts[m.bidders[0].pk].pk)
    english_bid(m, a, m.bidders[1], 3100, account=m.accounts[m.bidders[1].pk].pk)
    return run_out(a)


def clock(m: Market) -> Auction:
    a = clock_auction(m, first_round_s=0.3, title="Clock lot")
    clock_bid(m, a, m.bidders[0], 60)
    clock_bid(m, a, m.bidders[1], 30)
    end_round(a)
    return finish(a)


def table(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, table_id
    return [
        [
            unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


def read_csv(client: Client, a: Auction) -> list[dict[str, str]]:
    r = client.get(f"/auctions/{a.pk}/result.csv")
    assert r.status_code == 200
    assert r["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in r["Content-Disposition"]
    text = b"".join(r.streaming_content).decode("utf-8-sig")
    assert "\r\n" in text
    return list(csv.DictReader(io.StringIO(text)))


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


@pytest.fixture
def calendar_market(market) -> dict[str, Auction]:
    now = timezone.now()
    later = dict(opens_at=now + dt.timedelta(days=45), closes_at=now + dt.timedelta(days=46))
    return {
        "past": sealed(market, "uniform"),
        "open": market.auction(closes_in=3600, title="Open now"),
        "upcoming": market.auction(title="Opens later", **later),
    }


def section(html: str, heading_id: str) -> str:
    return re.search(rf'<h2 id="{heading_id}">.*?</section>', html, re.S).group(0)


def test_the_calendar_lists_open_upcoming_and_past_auctions_by_month(calendar_market, client):
    html = client.get("/auctions/").content.decode()
    opened, upcoming, past = (section(html, h) for h in ("open-h", "up-h", "closed-h"))
    a = calendar_market["open"]
    assert "Open now" in opened and "Opens later" not in opened
    assert f'data-closes-at="{a.closes_at.isoformat()}"' in opened  # the countdown
    month = f"{a.closes_at:%B %Y}"
    assert re.search(rf'<h3 class="month"><time datetime="{a.closes_at:%Y-%m}">{month}<', opened)
    assert "Closes</span>" in opened and f"{a.closes_at:%a}" in opened
    up = calendar_market["upcoming"]
    assert (
        "Opens later" in upcoming
        and f'datetime="{up.opens_at:%Y-%m}">{up.opens_at:%B %Y}<' in upcoming
    )
    assert "Opens</span>" in upcoming
    done = calendar_market["past"]
    assert "Sealed uniform lot" in past and "Bidding ended</span>" in past
    assert f'href="/auctions/{done.pk}/result/"' in past
    assert f'href="/auctions/{done.pk}/result.csv"' in past
    # Only an auction with a published result has a report.
    assert html.count("/result/") == 1
    assert 'href="/auctions/calendar.ics"' in html
    assert "<h4><a " in opened  # the cards' titles are below their month's heading


def test_the_calendar_speaks_chinese_with_chinese_dates(calendar_market, client):
    html = zh(client).get("/auctions/").content.decode()
    up = calendar_market["upcoming"]
    assert f">{up.opens_at.year}年{up.opens_at.month}月<" in html
    assert f"{up.opens_at.year}年{up.opens_at.month}月{up.opens_at.day}日" in html
    for words in (
        "竞价中",
        "即将开始",
        "截止",
        "竞价结束",
        "结果报告",
        "订阅即将开始和正在竞价的拍卖",
    ):
        assert words in html, words


def test_the_ics_feed_lists_upcoming_and_open_auctions_as_rfc_5545_events(calendar_market, client):
    r = client.get("/auctions/calendar.ics")
    assert r.status_code == 200 and r["Content-Type"] == "text/calendar; charset=utf-8"
    raw = r.content
    lines = raw.split(b"\r\n")
    assert lines[0] == b"BEGIN:VCALENDAR" and lines[-2] == b"END:VCALENDAR" and lines[-1] == b""
    assert all(len(line) <= 75 for line in lines)  # RFC 5545 §3.1: folded at 75 octets
    cal = Calendar.from_ical(raw)
    assert str(cal["VERSION"]) == "2.0" and cal["PRODID"]
    events = {str(e["SUMMARY"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {"Open now", "Opens later"}  # nothing that has ended
    for title, key in (("Open now", "open"), ("Opens later", "upcoming")):
        a, e = calendar_market[key], events[title]
        assert str(e["UID"]) == f"auction-{a.pk}@bluecarbon.localhost"
        assert e.decoded("DTSTART") == a.opens_at.replace(microsecond=0)
        assert e.decoded("DTEND") == a.closes_at.replace(microsecond=0)
        assert str(e["URL"]) == f"http://testserver/auctions/{a.pk}/"
        assert e.get("DTSTAMP") is not None
    # The feed takes the page's filters.
    assert b"BEGIN:VEVENT" not in client.get("/auctions/calendar.ics?format=clock").content


def report_and_csv(client: Client, a: Auction) -> tuple[str, list[dict[str, str]]]:
    r = client.get(f"/auctions/{a.pk}/result/")
    assert r.status_code == 200
    return r.content.decode(), read_csv(client, a)


def fact(html: str, fact_id: str) -> str:
    found = re.search(rf'<dd [^>]*\bid="{fact_id}"[^>]*>(.*?)</dd>', html, re.S)
    assert found, fact_id
    return unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def same_figures(html: str, rows: list[dict[str, str]], a: Auction) -> None:
    """The page's allocation is the CSV's, row by row, and so are the result's figures."""
    cur = a.currency
    cells = table(html, "allocation")
    assert len(cells) == len(rows)
    for cell, row in zip(cells, rows, strict=True):
        lots, tonnes, amount = cell[-3:]
        assert cell[0] == row["winner_name"]
        assert int(lots) == int(row["winner_lots"])
        assert number(tonnes) == Decimal(row["winner_quantity [t]"])
        assert number(amount) == Decimal(row[f"winner_amount [{cur}]"])
        if a.is_english or a.is_clock:
            assert cell[1] == row["winner_paddle"]
    first = rows[0]
    price = fact(html, "clearing-price").split()[0]
    assert number(price) == Decimal(first[f"clearing_price [{cur}/t]"])
    assert re.fullmatch(r"\d+\.\d{2}", first[f"clearing_price [{cur}/t]"])  # two decimals
    awarded = re.search(r"\(([\d,.]+) t\)", fact(html, "awarded")).group(1)
    assert number(awarded) == Decimal(first["awarded [t]"])
    unsold = re.search(r"\(([\d,.]+) t\)", fact(html, "unsold")).group(1)
    assert number(unsold) == Decimal(first["unsold [t]"])
    assert fact(html, "bidders") == first["bidders"] and fact(html, "bids") == first["bids"]
    assert fact(html, "result-hash") == first["result_sha256"] == a.result_sha256
    assert f"ledger entry {a.result_seq} (auction.clear)" in fact(html, "result-entry")
    assert first["result_entry"] == str(a.result_seq)
    total = sum(Decimal(r[f"winner_amount [{cur}]"]) for r in rows)
    assert number(fact(html, "total").split()[0]) == total


def test_a_uniform_price_report_and_its_csv_say_the_same(market, client):
    a = sealed(market, "uniform")
    html, rows = report_and_csv(client, a)
    same_figures(html, rows, a)
    # 60 lots at 40.00 to the first bidder in full, 40 of 60 at 35.50 to the second, both at
    # the clearing price 35.50.
    assert [(r["winner_lots"], r["winner_amount [CNY]"]) for r in rows] == [
        ("60", "2130.00"),
        ("40", "1420.00"),
    ]
    assert rows[0]["clearing_price [CNY/t]"] == "35.50"
    assert rows[0]["winner_name"] == market.bidders[0].name
    assert rows[0]["bids"] == "2" and rows[0]["bidders"] == "2"
    assert "every winner pays the clearing price per tonne" in html
    assert list(rows[0]) == [
        "auction", "title", "format", "state", "status", "project", "batch", "vintage",
        "currency", "lot_size [t]", "offered [t]", "clearing_price [CNY/t]", "awarded [t]",
        "unsold [t]", "bidders", "bids", "rounds", "result_sha256", "result_entry",
        "published_at", "winner_bidder", "winner_name", "winner_name_zh", "winner_paddle",
        "winner_lots",
        "winner_quantity [t]", "winner_amount [CNY]",
    ]  # fmt: skip


def test_pay_as_bid_and_second_price_reports(market, client):
    a = sealed(market, "pay_as_bid")
    html, rows = report_and_csv(client, a)
    same_figures(html, rows, a)
    assert [r["winner_amount [CNY]"] for r in rows] == ["2400.00", "1420.00"]  # own prices
    assert "Each winner pays its own bid prices" in html
    a = sealed(market, "second_price", quantity=TONNE, lot_kg=TONNE)
    html, rows = report_and_csv(client, a)
    same_figures(html, rows, a)
    assert len(rows) == 1 and rows[0]["winner_amount [CNY]"] == "35.50"


def test_english_and_clock_reports_name_paddles_and_winners_after_the_reveal(market, client):
    a = english(market)
    html, rows = report_and_csv(client, a)
    same_figures(html, rows, a)
    assert rows[0]["winner_name"] == market.bidders[1].name
    assert rows[0]["clearing_price [CNY/t]"] == "31.00" and "Hammer price" in html
    assert rows[0]["winner_amount [CNY]"] == "72543.10"  # 2,340.1 t at 31.00
    a = clock(market)
    html, rows = report_and_csv(client, a)
    same_figures(html, rows, a)
    assert [r["winner_lots"] for r in rows] == ["60", "30"]
    assert rows[0]["rounds"] == "1" and fact(html, "rounds") == "1"


def test_an_auction_without_a_result_has_no_report(calendar_market, client):
    for key in ("open", "upcoming"):
        pk = calendar_market[key].pk
        assert client.get(f"/auctions/{pk}/result/").status_code == 404
        assert client.get(f"/auctions/{pk}/result.csv").status_code == 404


def test_the_report_prints_in_chinese(market, client):
    a = sealed(market, "uniform")
    html = zh(client).get(f"/auctions/{a.pk}/result/").content.decode()
    for words in ("拍卖结果报告", "成交价", "中标人", "结果哈希", "打印或另存为 PDF"):
        assert words in html, words
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None and " style=" not in html


def test_a_winner_with_a_chinese_name_is_named_in_chinese_on_chinese_pages(market, client):
    a = sealed(market, "uniform")
    winner = market.bidders[0]
    Organization.objects.filter(pk=winner.pk).update(name_zh="宁波海岸能源")
    html = zh(client).get(f"/auctions/{a.pk}/result/").content.decode()
    assert table(html, "allocation")[0][0] == "宁波海岸能源"
    rows = read_csv(client, a)
    # The CSV has both, each in its column, whatever the page's language.
    assert (rows[0]["winner_name"], rows[0]["winner_name_zh"]) == (winner.name, "宁波海岸能源")
    assert rows[1]["winner_name_zh"] == ""  # the registrar gave none
