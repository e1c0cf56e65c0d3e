"""A listing in a real browser (Chromium through Playwright, as tests/portal's browser tests):
a buyer signs in and takes lots with the keyboard alone, and the board, the listing and the
purchases fit a 390 px phone without scrolling sideways. Any console error (a CSP violation is
one) fails it."""

from __future__ import annotations

from typing import Any

import pytest

from listings.models import Purchase
from tests.listings.conftest import Board
from tests.portal.conftest import browser  # noqa: F401 (a fixture)
from tests.portal.test_browser_portal import (  # noqa: F401 (fixtures)
    PASSWORD,
    make_user,
    page,
    portal_url,
    shot,
)

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def focused(tab: Any, selector: str) -> bool:
    return bool(
        tab.evaluate(
            "(s) => !!document.activeElement && document.activeElement.matches(s)", selector
        )
    )


def tab_to(tab: Any, selector: str, limit: int = 60) -> None:
    for _ in range(limit):
        tab.keyboard.press("Tab")
        if focused(tab, selector):
            return
    raise AssertionError(f"{selector} cannot be reached with Tab in {limit} presses")


def test_a_buyer_takes_lots_with_the_keyboard_on_a_phone(page):  # noqa: F811
    board = Board()
    x = board.listing(lots=5)
    make_user(board.buyers[0], "buyer")
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto("/account/login/")
    page.wait_for_function("() => document.activeElement.name === 'username'")
    page.keyboard.type("buyer")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/account/")

    for path in ("/listings/", f"/listings/{x.pk}/"):
        page.goto(path)
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 390, (path, wide)
    shot(page, "listing-phone")

    tab_to(page, "input[name=lots]")
    page.keyboard.type("7")
    tab_to(page, "input[name=up_to]")
    page.keyboard.press("Space")  # take what remains: 5 of the 7 asked
    tab_to(page, "form[action$='/take'] button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/account/purchases/")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    p = Purchase.objects.get()
    assert (p.lots, p.buyer_id) == (5, board.buyers[0].pk)
    assert "Awaiting payment" in page.content()
