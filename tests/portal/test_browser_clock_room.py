"""The clock auction's room in a real browser (Debian's Chromium through Playwright), against a
live server and a real Celery worker whose timers close the rounds: two bidders, each in a
browser context of its own on a phone-sized screen, bid over two rounds; each page sees round
1 close and round 2 open (its aggregate, the new price, the form's new limits) without a
reload, and both see the clearing price and the allocation when the worker ends the auction.
Any console error fails the test (a CSP violation is one)."""

from __future__ import annotations

from typing import Any

import pytest

from auctions.models import ClockBid
from tests.auctions.conftest import Market
from tests.auctions.test_clock import clock_auction
from tests.browser import page_problems
from tests.portal import test_browser_portal as portal_tests
from tests.portal.test_browser_portal import make_user, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PHONE = {"width": 390, "height": 844}
portal_url = portal_tests.portal_url


def signed_in(browser: Any, portal_url: str, username: str) -> tuple[Any, list]:
    context = browser.new_context(base_url=portal_url, locale="en-GB", viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    sign_in(page, username)
    return page, problems


def wait_text(page: Any, selector: str, expected: str, timeout: int = 20_000) -> None:
    page.wait_for_function(
        "([s, t]) => document.querySelector(s)?.textContent.includes(t)",
        arg=[selector, expected],
        timeout=timeout,
    )


def demand(page: Any, lots: str, exit_price: str = "") -> None:
    page.get_by_label("Lots you demand at this round's price").fill(lots)
    if exit_price:
        page.get_by_label("Exit price (optional, per tonne)").fill(exit_price)
    page.get_by_role("button", name="Submit the demand").click()


def test_two_bidders_bid_over_two_rounds_and_each_page_sees_the_round_advance_without_reload(
    browser, portal_url
):
    m = Market()
    alice_org, bob_org = m.bidders[:2]
    make_user(alice_org, "alice")
    make_user(bob_org, "bob")
    # Signed in first: the rounds are short, and the first one starts with the auction.
    alice, alice_problems = signed_in(browser, portal_url, "alice")
    bob, bob_problems = signed_in(browser, portal_url, "bob")
    # 100 lots, start 30.00, +5.00 a round. Round 1 is long enough for two pages to load and
    # two demands to be typed on a loaded machine; round 2 is as short as that allows.
    a = clock_auction(m, first_round_s=8, round_s=6)
    for page in (alice, bob):
        page.goto(f"/auctions/{a.pk}/")
        assert page.locator("#room-round").inner_text() == "1"
        assert page.locator("#room-price").inner_text() == "30.00 CNY/t"

    # Round 1: a demand above the offering is refused in the page and never sent.
    demand(alice, "101")
    wait_text(alice, "#id_lots-error", "at most 100 lots (your eligibility)")
    assert (
        alice.get_by_label("Lots you demand at this round's price").get_attribute("aria-invalid")
        == "true"
    )
    assert not ClockBid.objects.filter(auction=a).exists()
    # With the keyboard: Enter in the field sends the form.
    lots = alice.get_by_label("Lots you demand at this round's price")
    lots.fill("60")
    lots.press("Enter")
    wait_text(alice, "#round-status", "Your demand in round 1: 60 lots at 30.00 CNY/t.")
    demand(bob, "60")
    wait_text(bob, "#round-status", "Your demand in round 1: 60 lots")
    wait_text(bob, "#room-position", "60 lots · version 1")

    # The worker closes round 1 (120 > 100): both pages show round 2 and round 1's numbers.
    for page in (alice, bob):
        wait_text(page, "#room-round", "2", timeout=30_000)
        wait_text(page, "#room-price", "35.00 CNY/t")
        wait_text(page, "#room-rounds tbody", "120")
        wait_text(
            page, "#room-news", "Round 1 closed: aggregate demand 120 lots, 2 active bidders."
        )
        wait_text(page, "#round-legend", "Your bid in round 2 at 35.00 CNY/t")
        assert page.locator("#room-chart svg circle.bid-dot").count() == 1
        assert page.locator("#exit-field").is_visible()
    # Round 2: more than round 1's demand is refused in the page (the activity rule).
    demand(alice, "70")
    wait_text(alice, "#id_lots-error", "Demand may not rise as the price rises: at most 60 lots")
    # An exit price off the interval is refused too; then a valid one is sent.
    alice.get_by_label("Lots you demand at this round's price").fill("40")
    alice.get_by_label("Exit price (optional, per tonne)").fill("36.00")
    alice.get_by_role("button", name="Submit the demand").click()
    wait_text(alice, "#id_exit_price-error", "strictly between 30.00 and 35.00 CNY/t")
    assert ClockBid.objects.filter(auction=a, round__number=2).count() == 0
    demand(alice, "40", "33.00")
    wait_text(alice, "#round-status", "Your demand in round 2: 40 lots from 33.00 CNY/t on")
    demand(bob, "60")
    wait_text(bob, "#round-status", "Your demand in round 2: 60 lots at 35.00 CNY/t.")
    for page in (alice, bob):  # nothing overflows sideways on a 390 px phone
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(alice, "clock-room-live")

    # Round 2's demand (100) fits the supply: it is the last. At 33.00 the demand is Alice's
    # 40 and Bob's 60 (his reduction, none, is at 35.00): 100 fits, so 33.00 clears.
    for page in (alice, bob):
        page.wait_for_selector("#room-result:not([hidden])", timeout=60_000)
        wait_text(page, "#room-result", "33.00 CNY/t", timeout=60_000)
        wait_text(page, "#room-result", alice_org.name)  # named by the close's reveal
        wait_text(page, "#room-result", bob_org.name)
        wait_text(page, "#room-news", "The auction has ended.")
        assert page.locator("#round-form").is_hidden()
    wait_text(alice, "#room-result", "40 lots for 1,320.00 CNY.")
    wait_text(bob, "#room-result", "60 lots for 1,980.00 CNY.")
    shot(bob, "clock-room-result")
    for page in (alice, bob):
        page.context.close()
    assert alice_problems == [] and bob_problems == []
