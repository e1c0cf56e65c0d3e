"""The English auction's live room in a real browser (Debian's Chromium through Playwright),
against a live server and a real Celery worker: two bidders, each in a browser context of its
own and on a phone-sized screen, outbid each other; each page sees the other's bid, the new
lowest valid bid and its own position arrive without a reload, and both see the result when
the worker ends the auction. Any console error fails the test (a CSP violation is one)."""

from __future__ import annotations

from typing import Any

import pytest

from auctions.models import Raise
from tests.auctions.conftest import Market
from tests.auctions.test_english import deposits, english_auction
from tests.browser import page_problems
from tests.portal import test_browser_portal as portal_tests
from tests.portal.test_browser_portal import make_user, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PHONE = {"width": 390, "height": 844}
# The portal's browser tests' fixtures: one Chromium per module, the site on a free port.
portal_url = portal_tests.portal_url


def room_page(browser: Any, portal_url: str, username: str, auction: int) -> tuple[Any, list]:
    context = browser.new_context(base_url=portal_url, locale="en-GB", viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    sign_in(page, username)
    page.goto(f"/auctions/{auction}/")
    return page, problems


def text(page: Any, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def wait_text(page: Any, selector: str, expected: str) -> None:
    page.wait_for_function(
        "([s, t]) => document.querySelector(s)?.textContent.includes(t)",
        arg=[selector, expected],
    )


def test_two_bidders_outbid_each_other_and_each_page_sees_the_other_s_bid_without_reload(
    browser, portal_url
):
    m = Market()
    # A free phase long enough for both to sign in, then 15 s without a higher bid ends it.
    a = english_auction(m, free_s=15, countdown_s=15)
    deposits(m, a)
    alice_org, bob_org = m.bidders[:2]
    make_user(alice_org, "alice")
    make_user(bob_org, "bob")
    alice, alice_problems = room_page(browser, portal_url, "alice", a.pk)
    bob, bob_problems = room_page(browser, portal_url, "bob", a.pk)
    assert text(alice, "#room-standing") == "30.00 CNY/t"
    assert "You have not bid yet" in text(bob, "#room-position")

    # Below the lowest valid bid: refused in the page, said on the field, nothing sent.
    price = alice.get_by_label("Your bid (per tonne)")
    price.fill("29.00")
    alice.get_by_role("button", name="Place the bid").click()
    wait_text(alice, "#id_price-error", "Too low: the lowest valid bid now is 30.00 CNY/t.")
    assert price.get_attribute("aria-invalid") == "true"
    assert not Raise.objects.filter(auction=a).exists()

    # With the keyboard: "Minimum bid" fills the box, Enter in the field sends it.
    alice.get_by_role("button", name="Minimum bid").focus()
    alice.keyboard.press("Enter")
    assert price.input_value() == "30.00"
    price.press("Enter")
    wait_text(alice, "#raise-status", "Your bid of 30.00 CNY/t stands")
    wait_text(alice, "#room-position", "You are leading")

    # Bob's page shows Alice's bid, the new minimum and her paddle, without a reload.
    paddle = Raise.objects.get(auction=a).paddle.label
    wait_text(bob, "#room-standing", "30.00 CNY/t")
    wait_text(bob, "#room-minimum", "31.00 CNY/t")
    wait_text(bob, "#room-bids tbody", paddle)
    assert text(bob, "#room-count") == "1"
    bob.get_by_role("button", name="+1 step").click()  # one step above the minimum
    assert bob.get_by_label("Your bid (per tonne)").input_value() == "32.00"
    bob.get_by_role("button", name="Place the bid").click()
    wait_text(bob, "#raise-status", "Your bid of 32.00 CNY/t stands")

    # Alice sees that she is outbid, and bids again.
    wait_text(alice, "#room-position", "Outbid")
    wait_text(alice, "#room-minimum", "33.00 CNY/t")
    alice.get_by_role("button", name="Minimum bid").click()
    alice.get_by_role("button", name="Place the bid").click()
    wait_text(alice, "#raise-status", "Your bid of 33.00 CNY/t stands")
    wait_text(bob, "#room-position", "Outbid")
    wait_text(bob, "#room-standing", "33.00 CNY/t")
    assert bob.locator("#room-bids tbody tr").count() == 3
    assert bob.locator("#room-chart svg circle.bid-dot").count() == 3
    assert [r.price for r in Raise.objects.filter(auction=a).order_by("entry_seq")] == [
        3000,
        3200,
        3300,
    ]
    for page in (alice, bob):  # nothing overflows sideways on a 390 px phone
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(bob, "room-live")

    # The countdown runs out; the worker closes and clears it; both pages show the result.
    for page in (alice, bob):
        page.wait_for_selector("#room-result:not([hidden])", timeout=60_000)
        wait_text(page, "#room-result", "Hammer price")
        wait_text(page, "#room-result", "33.00 CNY/t")
        wait_text(page, "#room-result", alice_org.name)  # named by the close's reveal
    assert bob.locator("#raise-form").is_hidden()
    shot(alice, "room-result")
    for page in (alice, bob):
        page.context.close()
    assert alice_problems == [] and bob_problems == []
