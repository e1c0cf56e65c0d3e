"""A portal form's write the database gives up on against concurrent ones, like the API's
(``tests/api/test_write_contention.py``, whose failure injection this uses): a deadlock's
victim is run again from the start and applied once, and what is left (a deadlock that outlasts
the retries, a busy SQLite file) answers the site's 503 page in the reader's language, with
``Retry-After``, having applied nothing: never the 500 page."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from auctions.models import Auction, Raise
from bluecarbon.contention import ATTEMPTS
from ledger.models import LedgerEntry, Organization
from portal import services as portal_services
from portal.models import SignupRequest
from tests import two_factor
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


@contextmanager
def _failing_organization(handle: str) -> Iterator[None]:
    """Registering the organization ``handle`` fails with PostgreSQL's deadlock error (SQLSTATE
    40P01) every time, raised by the database in its INSERT; other organizations register.

    The count of tries is a sequence: ``nextval`` is not undone by the rollback it causes."""
    with connection.cursor() as c:
        c.execute("CREATE SEQUENCE test_failed_registrations")
        c.execute(
            "CREATE FUNCTION test_fail_registration() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN PERFORM nextval('test_failed_registrations'); "
            "RAISE EXCEPTION 'deadlock detected (injected by the test)' "
            "USING ERRCODE = 'deadlock_detected'; END $$"
        )
        c.execute(
            "CREATE TRIGGER test_fail_registration BEFORE INSERT ON ledger_organization "
            f"FOR EACH ROW WHEN (NEW.handle = '{handle}') "
            "EXECUTE FUNCTION test_fail_registration()"
        )
    try:
        yield
    finally:
        with connection.cursor() as c:
            c.execute("DROP TRIGGER test_fail_registration ON ledger_organization")
            c.execute("DROP FUNCTION test_fail_registration()")
            c.execute("DROP SEQUENCE test_failed_registrations")


def test_an_approval_the_database_gives_up_on_stops_the_admin_action_and_keeps_those_before_it(
    committed_db, caplog
):
    """Each approval commits alone: the 503 page ("nothing was recorded") would be wrong about
    the ones before. The action says which request it stopped at and how many it approved."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's deadlock error")
    caplog.set_level(logging.INFO, logger="bluecarbon.contention")
    for handle in ("ningbo-blue", "xiamen-blue", "zhoushan-blue"):
        portal_services.signup_request(
            username=handle,
            password="a-long-password-1",
            email=f"{handle}@example.org",
            organization_name=f"{handle} fund",
            handle=handle,
        )
    # The action takes them in the changelist's order (the model's: newest first).
    first, second, third = SignupRequest.objects.all()
    operator = get_user_model().objects.create_superuser("operator", "op@example.org", "pw-123456")
    desk = two_factor.force_login(Client(), operator)  # the admin asks for a verified session
    desk.raise_request_exception = False  # a 500 is an answer to check, not to re-raise
    with _failing_organization(second.handle):
        r = desk.post(
            "/admin/portal/signuprequest/",
            {
                "action": "approve",
                "index": 0,
                "_selected_action": [str(x.pk) for x in (first, second, third)],
            },
        )
        with connection.cursor() as c:
            c.execute("SELECT last_value FROM test_failed_registrations")
            assert c.fetchone()[0] == ATTEMPTS  # the second's every attempt, and no more
    # Not the 503 page (nor the 500 page): back to the list, which says what happened.
    assert r.status_code == 302, r.content[:300]
    assert r["Location"] == "/admin/portal/signuprequest/"
    assert [(m.level, m.message) for m in get_messages(r.wsgi_request)] == [
        (
            messages.ERROR,
            f"{second.handle}: the registry is busy and recorded nothing for it (nor for the "
            "requests after it): approve them again shortly.",
        ),
        (messages.INFO, "1 request(s) approved."),
    ]
    retries = [x.getMessage() for x in caplog.records if x.name == "bluecarbon.contention"]
    assert len(retries) == ATTEMPTS - 1 and "deadlock detected" in retries[0], retries
    # The first stands, committed before the second was tried; the third was not tried.
    statuses = dict(SignupRequest.objects.values_list("handle", "status"))
    assert statuses == {
        first.handle: SignupRequest.Status.APPROVED,
        second.handle: SignupRequest.Status.PENDING,
        third.handle: SignupRequest.Status.PENDING,
    }
    assert list(Organization.objects.values_list("handle", flat=True)) == [first.handle]
    assert Organization.objects.get(handle=first.handle).bidder.status == "approved"


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
