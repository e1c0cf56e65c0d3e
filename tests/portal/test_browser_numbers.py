"""Hashes as people read them, in Debian's Chromium: shortened to their ends, the whole value
behind a disclosure that wraps on a 390 px phone, and a copy button that copies the whole value
through the clipboard API or, without it, through the fallback. The pages this helper changed
(numbers, names, hashes) have no sideways overflow at 390 px in either language, and tonnes
read as tonnes."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from ledger import services
from ledger.models import Batch, LedgerEntry, Membership, Role
from tests import factories
from tests.browser import page_problems
from tests.factories import World

pytestmark = [pytest.mark.browser]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def batch(site: str) -> Batch:
    world = World()
    b = world.issue(2_340_100)
    services.ledger_checkpoint_issue()
    return b


def context_for(browser: Any, site: str, language: str = "en", user: Any = None) -> Any:
    context = browser.new_context(base_url=site, viewport=PHONE, locale="en-GB")
    cookies = [{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": site}]
    if user is not None:
        client = Client()
        client.force_login(user)
        value = client.cookies[settings.SESSION_COOKIE_NAME].value
        cookies.append({"name": settings.SESSION_COOKIE_NAME, "value": value, "url": site})
    context.add_cookies(cookies)
    return context


def overflow(page: Any) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_a_hash_shows_its_ends_opens_in_full_and_copies_the_whole_value(browser, site, batch):
    digest = batch.verification_report_sha256
    context = context_for(browser, site)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    page.goto(f"/registry/projects/{batch.project.code}/")
    box = page.locator(".hash").first
    assert box.locator("summary code").inner_text() == f"{digest[:8]}\u2026{digest[-4:]}"
    full = box.locator(".hash-full")
    assert not full.is_visible()  # on demand only
    box.locator("summary").click()
    assert full.is_visible() and full.inner_text() == digest
    assert overflow(page) <= 0  # the whole value wraps inside a 390 px screen
    width = full.evaluate("e => e.getBoundingClientRect().right")
    assert width <= PHONE["width"]

    button = box.locator("button.copy")
    assert button.is_visible() and button.inner_text() == "Copy"
    button.click()
    page.wait_for_function("() => document.querySelector('.hash button.copy').dataset.state")
    assert button.get_attribute("data-state") == "copied"
    assert box.locator(".copy-status").inner_text() == "Copied"
    assert page.evaluate("navigator.clipboard.readText()") == digest
    assert problems == []
    context.close()


def test_without_the_clipboard_api_the_fallback_copies_the_whole_value(browser, site, batch):
    digest = batch.verification_report_sha256
    context = context_for(browser, site, "zh-hans")
    # An old browser, or a page served over plain http: no navigator.clipboard. Record what the
    # fallback hands to execCommand("copy").
    context.add_init_script(
        """
        Object.defineProperty(Navigator.prototype, "clipboard", { get: () => undefined });
        const copy = document.execCommand.bind(document);
        document.execCommand = (command, ...rest) => {
          const el = document.activeElement;
          const picked = el && "value" in el;
          window.__copied = picked ? el.value.slice(el.selectionStart, el.selectionEnd) : null;
          return copy(command, ...rest);
        };
        """
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    page.goto(f"/registry/projects/{batch.project.code}/")
    button = page.locator(".hash button.copy").first
    assert button.inner_text() == "\u590d\u5236"  # the page's language
    button.click()
    page.wait_for_function("() => document.querySelector('.hash button.copy').dataset.state")
    assert page.evaluate("window.__copied") == digest
    state = button.get_attribute("data-state")
    if state == "failed":  # execCommand refused: the whole value is opened and selected
        assert page.evaluate("String(window.getSelection())") == digest
    else:
        assert state == "copied"
    assert page.locator(".copy-buffer").count() == 0  # the text area is gone again
    assert problems == []
    context.close()


def test_the_pages_with_numbers_names_and_hashes_fit_a_phone_in_both_languages(
    browser, site, batch
):
    auditor_org = factories.organization(Role.AUDITOR)
    auditor = get_user_model().objects.create_user("auditor", "a@example.org", "pw-long-enough")
    Membership.objects.create(user=auditor, organization=auditor_org)
    seq = LedgerEntry.objects.filter(type="batch.issue").get().seq
    paths = [
        "/",
        "/registry/projects/",
        f"/registry/projects/{batch.project.code}/",
        "/registry/retirements/",
        "/audit/ledger/",
        f"/audit/ledger/{seq}/",
    ]
    for language, unit in (("en", "2,340.1 t"), ("zh-hans", "2,340.1 \u5428")):
        context = context_for(browser, site, language, auditor)
        page = context.new_page()
        page.set_default_timeout(20_000)
        problems = page_problems(page)
        for path in paths:
            page.goto(path)
            assert overflow(page) <= 0, (language, path, overflow(page))
        page.goto("/")
        assert unit in page.locator("main").inner_text()
        page.goto(f"/audit/ledger/{seq}/")
        for summary in page.locator(".hash summary").all():
            summary.click()
        assert overflow(page) <= 0, (language, "entry with every hash open")
        assert page.locator("main small.ledger-id").count() == 1  # the actor's id, for auditors
        assert problems == [], problems
        context.close()
