"""In Debian's Chromium: the certificate prints on exactly one A4 page (with the longest
beneficiary, purpose and reason the registry takes), in both languages; an auction's result
report prints; the auction calendar renders in both languages on a 390 px screen without
sideways scrolling; no console error or CSP violation anywhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ledger import services
from ledger.models import Retirement
from tests.browser import axe_violations, page_problems
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
OVERFLOWS = "document.documentElement.scrollWidth > document.documentElement.clientWidth"


def pdf_pages(pdf: bytes) -> int:
    """Pages of a PDF as Chromium writes it: one ``/Type /Page`` object each."""
    assert pdf.startswith(b"%PDF-")
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


def printed(page: Any, name: str) -> bytes:
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4", print_background=True)
    page.emulate_media(media="screen")
    Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
    (Path(ARTIFACTS) / f"{name}.pdf").write_bytes(pdf)
    return pdf


def switch_to_chinese(page: Any) -> None:
    page.locator('form.language button[value="zh-hans"]').click()
    page.wait_for_selector("html[lang=zh-Hans]")


@pytest.fixture
def long_retirement(site: str) -> Retirement:
    from tests.factories import World

    world = World()
    b = world.issue(100_000)
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=5_000,
    )
    services.credit_retire(
        actor=world.buy,
        batch=b.pk,
        account=world.buyer_account.pk,
        quantity=2_000,
        beneficiary="宁波海岸能源有限公司 Ningbo Coastal Energy " * 7,  # 300 characters at most
        purpose="Offsetting Scope 1 emissions of the 2022 reporting year " * 5,
        jurisdiction="CN-ZJ",
        reason="Voluntary retirement of part of the lot bought at the Xiangshan auction. " * 27,
    )
    services.ledger_checkpoint_issue()
    return Retirement.objects.get()


def test_the_certificate_prints_on_one_a4_page_in_both_languages(browser, site, long_retirement):
    context = browser.new_context(base_url=site, locale="en-GB", viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    page.goto(f"/registry/certificates/{long_retirement.certificate}/")
    page.locator("#proof-status[data-result]").wait_for()  # the in-browser check still runs
    assert page.locator("#proof-status").get_attribute("data-result") == "verified"
    assert page.locator("svg.qr").is_visible()
    assert page.get_by_role("button", name="Print or save as PDF").is_visible()
    assert not page.evaluate(OVERFLOWS), "the certificate overflows a 390 px screen"
    assert axe_violations(page) == []
    page.screenshot(path=str(Path(ARTIFACTS) / "certificate-390.png"), full_page=True)
    assert pdf_pages(printed(page, "certificate-en")) == 1
    page.emulate_media(media="print")
    assert not page.locator(".cert-proof").is_visible()  # the proof stays on the screen
    assert page.locator("svg.qr").is_visible()
    page.emulate_media(media="screen")
    switch_to_chinese(page)
    assert "扫码在登记簿上打开并核验本证书" in page.content()
    assert pdf_pages(printed(page, "certificate-zh")) == 1
    context.close()
    assert problems == []


def test_the_calendar_and_a_result_report_at_390_px_in_both_languages(browser, site):
    from django.utils import timezone

    from tests.auctions.conftest import Market, run_to_settlement

    m = Market()
    done = m.auction(closes_in=0.3, tick=50, title="Xihu Port seaweed sink, cleared")
    m.bid(done, m.bidders[0], [(4000, 60)])
    m.bid(done, m.bidders[1], [(3550, 60)])
    run_to_settlement(done)
    m.auction(closes_in=3600, title="Open now, a long title that has to wrap on a phone screen")
    soon = timezone.now() + timezone.timedelta(days=40)
    m.auction(title="Opens later", opens_at=soon, closes_at=soon + timezone.timedelta(days=1))

    context = browser.new_context(base_url=site, locale="en-GB", viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    page.goto("/auctions/")
    for heading in ("Open for bids", "Upcoming", "Closed"):
        assert page.get_by_role("heading", name=heading, exact=True).count() == 1
    assert page.locator("h3.month").count() == 3
    countdown = page.locator("[data-closes-at]").first.inner_text()
    assert re.fullmatch(r"\d\d:\d\d:\d\d", countdown), countdown  # live, from site.js
    assert not page.evaluate(OVERFLOWS), "the calendar overflows a 390 px screen"
    assert axe_violations(page) == []
    page.screenshot(path=str(Path(ARTIFACTS) / "calendar-390.png"), full_page=True)
    page.get_by_role("link", name="Result report").click()
    page.wait_for_selector("#result-report")
    assert not page.evaluate(OVERFLOWS), "the report overflows a 390 px screen"
    assert axe_violations(page) == []
    page.screenshot(path=str(Path(ARTIFACTS) / "result-report-390.png"), full_page=True)
    assert page.locator("#allocation tbody tr").count() == 2
    assert pdf_pages(printed(page, "result-report-en")) == 1
    page.emulate_media(media="print")
    assert not page.locator(".report .actions").is_visible()
    assert not page.locator("header.site").is_visible()
    page.emulate_media(media="screen")
    switch_to_chinese(page)
    assert "拍卖结果报告" in page.content()
    assert not page.evaluate(OVERFLOWS)
    assert pdf_pages(printed(page, "result-report-zh")) == 1
    page.goto("/auctions/")
    assert page.get_by_role("heading", name="竞价中").count() == 1
    assert page.locator("h3.month", has_text="年").count() == 3
    assert not page.evaluate(OVERFLOWS), "the Chinese calendar overflows a 390 px screen"
    assert axe_violations(page) == []
    context.close()
    assert problems == []


def test_a_big_books_report_prints_on_a_few_pages_each_with_the_tables_header(browser, site):
    from tests.auctions.conftest import Market, run_to_settlement

    m = Market(bidders=60)
    a = m.auction(closes_in=3, title="A big book")
    for i, org in enumerate(m.bidders):
        m.bid(a, org, [(3000 + 100 * (i % 7), 1)])  # 60 lots of 100: every bidder wins
    run_to_settlement(a)
    context = browser.new_context(base_url=site, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    page.goto(f"/auctions/{a.pk}/result/")
    assert page.locator("#allocation tbody tr").count() == 60
    pages = pdf_pages(printed(page, "result-report-big"))
    assert 2 <= pages <= 4, pages
    # Each printed page starts the table again with its header row: Chromium repeats a
    # table-header-group on every page the table spans (screen media cannot show this, so the
    # rule is checked where it is written).
    page.emulate_media(media="print")
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#allocation thead')).display")
        == "table-header-group"
    )
    assert (
        page.evaluate(
            "getComputedStyle(document.querySelector('#allocation tbody tr')).breakInside"
        )
        == "avoid"
    )
    context.close()
    assert problems == []


def test_the_calendar_shows_times_in_the_readers_zone_and_utc_without_scripts(browser, site):
    """The server writes UTC (and says so); in the browser each calendar time is rewritten in the
    reader's own zone, named, in the page's language, keeping the UTC text as its title."""
    import datetime as dt

    from tests.auctions.conftest import Market

    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=60)).date()
    opens = dt.datetime.combine(day, dt.time(23, 30), tzinfo=dt.UTC)  # 07:30 the next day at +8
    Market().auction(title="Opens later", opens_at=opens, closes_at=opens + dt.timedelta(days=1))
    shanghai = opens.astimezone(dt.timezone(dt.timedelta(hours=8)))
    when = 'time[data-local="datetime"]'

    def calendar_time(**options: Any) -> tuple[str, str | None]:
        context = browser.new_context(base_url=site, viewport=PHONE, **options)
        page = context.new_page()
        problems = page_problems(page)
        page.goto("/auctions/")
        text, title = page.locator(when).inner_text(), page.locator(when).get_attribute("title")
        context.close()
        assert problems == []
        return text, title

    # Without scripts: UTC, said.
    utc_text, title = calendar_time(
        locale="en-GB", java_script_enabled=False, timezone_id="Asia/Shanghai"
    )
    assert utc_text.endswith(f"{opens.day}, {opens.year}, 23:30 UTC") and title is None, utc_text
    # A reader in Shanghai: 07:30 on the next day, the zone named; the UTC text on hover.
    text, title = calendar_time(locale="en-GB", timezone_id="Asia/Shanghai")
    assert "07:30" in text and str(shanghai.day) in text and "GMT+8" in text, text
    assert title == utc_text
    # The same in Chinese (the language cookie), in the Chinese calendar's words.
    text, _ = calendar_time(
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        extra_http_headers={"Accept-Language": "zh-Hans"},
    )
    assert f"{shanghai.month}月{shanghai.day}日" in text and "07:30" in text, text
    # A reader in London in winter: the UTC time, its zone named.
    text, _ = calendar_time(locale="en-GB", timezone_id="Europe/London")
    assert "23:30" in text and str(opens.day) in text, text
