"""Two-factor sign-in in a real browser (Debian's Chromium through Playwright) on a phone-sized
screen: an operator's first sign-in leads to enrolment, the page shows the QR code and the key,
the first code (computed from the key on the page, RFC 6238) turns it on and the recovery codes
appear once; signing in again goes through the code step. No console error, no CSP violation,
no sideways scrolling."""

from __future__ import annotations

import re
from base64 import b32decode
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import TOTP

from ledger.models import Membership, Role
from tests import factories
from tests.portal import test_browser_portal as portal_tests
from tests.portal.test_browser_portal import PASSWORD, shot

pytestmark = [pytest.mark.browser, pytest.mark.worker]

# The portal's browser tests' fixtures: one Chromium per module, the site on a free port.
portal_url = portal_tests.portal_url
page = portal_tests.page


def no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, page.url


def password_step(page: Any, username: str) -> None:
    page.goto("/account/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_an_operator_enrols_on_a_phone_and_signs_in_again_through_the_code_step(page):
    user = get_user_model().objects.create_user("op", "op@example.org", PASSWORD)
    Membership.objects.create(user=user, organization=factories.organization(Role.OPERATOR))
    page.set_viewport_size({"width": 390, "height": 844})

    password_step(page, "op")
    page.wait_for_url("**/account/two-factor/**")
    page.goto("/audit/ledger/")  # nothing else until enrolled
    page.wait_for_url("**/account/two-factor/")
    assert page.locator("figure.qr svg").is_visible()
    no_sideways_scroll(page)
    shot(page, "two-factor-enrol-phone")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    totp = TOTP(b32decode(secret))
    page.get_by_label("Code").fill(f"{totp.token():06d}")
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    codes = page.locator("ol.recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", c) for c in codes)
    no_sideways_scroll(page)
    page.get_by_role("link", name="I have kept them: continue").click()
    page.goto("/audit/ledger/")
    assert page.get_by_role("heading", level=1).inner_text()  # the ledger, not enrolment
    assert "/account/two-factor/" not in page.url

    page.get_by_role("button", name="Sign out").click()
    password_step(page, "op")
    page.wait_for_url("**/account/login/code/")
    no_sideways_scroll(page)
    page.get_by_label("Code").fill("123456")  # wrong
    page.get_by_role("button", name="Sign in").click()
    assert "not valid" in page.locator("#id_code-error").inner_text()
    page.wait_for_timeout(1100)  # django-otp's wait after a failure
    page.get_by_label("Code").fill(codes[0])  # the phone is elsewhere: a recovery code
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/account/")
    assert "9 are left" in page.locator("ul.messages").inner_text()
    page.goto("/audit/ledger/")
    assert page.url.endswith("/audit/ledger/")
