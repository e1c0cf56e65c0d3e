"""A portal form's write the database gives up on against concurrent ones, like the API's
(``tests/api/test_write_contention.py``, whose failure injection this uses): a deadlock's
victim is run again from the start and applied once, and what is left (a deadlock that outlasts
the retries, a busy SQLite file) answers the site's 503 page in the reader's language, with
``Retry-After``, having applied nothing: never the 500 page."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from auctions.models import Auction, Raise
from ledger.models import LedgerEntry
from tests.api.test_write_contention import _failing_appends
from tests.auctions.conftest import Market
from tests.auctions.test_english import deposits, english_auction
from tests.portal.test_pages import user_for

PAGE = {  # language: <html lang>, the title, what was done, what to do, the JSON's message
    "en": (
        "en",
        "The registry is busy",
        "nothing you sent was recorded on the ledger",
        "Try again shortly",
        "The registry is busy and recorded nothing: try again shortly.",
    ),
    "zh-hans": (
        "zh-Hans",
        "登记簿繁忙",
        "您提交的内容均未记入账本",
        "请稍后重试",
        "登记簿繁忙\uff0c未记录任何内容\uff1a请稍后重试。",
    ),
}


@pytest.fixture
def market(committed_db: None) -> Market:
    return Market()


@pytest.fixture
def room(market: Market) -> Auction:
    """An English auction open for 30 s more, every bidder's deposit held."""
    a = english_auction(market, free_s=30, countdown_s=60)
    deposits(market, a)
    return a


@pytest.fixture
def bidder(market: Market) -> Client:
    client = user_for(market.bidders[0], "first")
    client.raise_request_exception = False  # a 500 is an answer to check, not to re-raise
    return client


def _post_bid(client: Client, room: Auction, language: str = "en", **headers: str):
    client.cookies["django_language"] = language
    return client.post(f"/auctions/{room.pk}/bid", {"price": "30.00"}, headers=headers)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_deadlock_that_outlasts_the_retries_answers_the_503_page_and_applies_nothing(
    room, bidder, language
):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's deadlock error")
    lang, title, nothing, again, message = PAGE[language]
    before = LedgerEntry.objects.count()
    with _failing_appends(times=None):
        r = _post_bid(bidder, room, language)
        # The room's script asks for JSON: the same answer, in the shape of its refusals.
        asked = _post_bid(bidder, room, language, accept="application/json")
    assert r.status_code == 503, r.content[:300]
    assert r["Retry-After"] == "1"
    assert r["Content-Type"] == "text/html; charset=utf-8"
    html = r.content.decode()
    assert f'<html lang="{lang}">' in html
    assert f"<h1>{title}</h1>" in html
    assert nothing in html and again in html
    assert "portal/site.css" in html  # the site's error frame (_error_bare.html)
    for leak in ("Traceback", "deadlock", "OperationalError", "40P01"):
        assert leak not in html
    assert asked.status_code == 503
    assert asked["Retry-After"] == "1"
    assert asked.json() == {
        "code": "service_unavailable",
        "message": message,
        "detail": {"retry_after": 1},
    }
    assert LedgerEntry.objects.count() == before
    assert not Raise.objects.exists()
    # Sent again once the database lets it through, the bid stands (once).
    r = _post_bid(bidder, room, language)
    assert r.status_code == 302, r.content[:300]
    assert Raise.objects.get(auction=room).price == 3000
    assert LedgerEntry.objects.count() == before + 1


def test_a_deadlock_victim_is_run_again_from_the_start_and_the_bid_applied_once(
    room, bidder, caplog
):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's deadlock error")
    caplog.set_level(logging.INFO, logger="bluecarbon.contention")
    before = LedgerEntry.objects.count()
    with _failing_appends(times=1):
        r = _post_bid(bidder, room)
        with connection.cursor() as c:
            c.execute("SELECT last_value FROM test_failed_appends")
            assert c.fetchone()[0] == 2  # the first attempt and the one run again appended
    assert r.status_code == 302, r.content[:300]
    retries = [x.getMessage() for x in caplog.records if x.name == "bluecarbon.contention"]
    assert len(retries) == 1 and "deadlock detected" in retries[0], retries
    assert LedgerEntry.objects.count() == before + 1
    assert Raise.objects.get(auction=room).price == 3000
    html = bidder.get(r["Location"]).content.decode()
    assert "Your bid of 30.00 CNY/t stands" in html


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_busy_sqlite_database_answers_the_503_page_and_applies_nothing(room, bidder, language):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database lock")
    lang, title, nothing, again, _ = PAGE[language]
    before = LedgerEntry.objects.count()
    other = connection.copy()
    try:
        with other.cursor() as c:  # another writer holds the database's write lock
            c.execute("BEGIN IMMEDIATE")
        with connection.cursor() as c:
            c.execute("PRAGMA busy_timeout = 200")
        try:
            r = _post_bid(bidder, room, language)
        finally:
            with connection.cursor() as c:
                c.execute("PRAGMA busy_timeout = 30000")
    finally:
        other.close()
    assert r.status_code == 503, r.content[:300]
    assert r["Retry-After"] == "1"
    html = r.content.decode()
    assert f'<html lang="{lang}">' in html
    assert f"<h1>{title}</h1>" in html and nothing in html and again in html
    assert LedgerEntry.objects.count() == before
    assert not Raise.objects.exists()


def test_the_503_page_renders_without_a_request_or_the_database(db):
    """The database may be why it is shown: like the 500 page, it reads nothing of it."""
    with CaptureQueriesContext(connection) as queries, translation.override("zh-hans"):
        html = render_to_string("503.html")
    assert '<html lang="zh-Hans">' in html and "登记簿繁忙" in html
    assert len(queries) == 0
