"""Every page type of the portal, in Debian's Chromium, on the demo registry (``seed_demo``): as
the public, a bidder, an auditor, an operator and a trustee, in English and in Chinese, on a
390 px phone and on a desktop. Each page must answer 200 in its language, pass axe-core (vendored,
``tests/vendor/axe-core``) with no violation of WCAG 2.x A/AA or of Deque's best practices,
not scroll sideways (a wide table scrolls inside its own box), and log no console error and no
CSP violation.

The pages are data: one ``Page`` line each in ``PAGES`` below. A page whose path needs an id
names it in braces; ``_ids`` reads it from the demo. A summary of the sweep (pages, loads,
violations) goes to ``$TEST_ARTIFACTS/sweep-<role>.json``."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from auctions.models import Auction, Format
from ledger.models import Batch, LedgerEntry, Project, Retirement
from listings.models import Listing
from portal import services as portal_services
from tests import two_factor
from tests.browser import (
    AXE,
    axe_violations,
    horizontal_overflow,
    overflowing,
    page_problems,
    served,
)
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser]

ANYONE = ("anonymous", "bidder")  # a public page, read signed out and as a bidder (its forms)
AUDIT = ("auditor", "operator")

# The demo's users for each role (``seed_demo``), None for no one signed in.
USERS = {
    "anonymous": None,
    "bidder": "bidder1",
    "auditor": "auditor",
    "operator": "admin",
    "trustee": "trustee",  # a member of the demo trustee that abstains
    "registrar": "registrar",  # a member of the demo registry (not an operator)
}
LANGUAGES = {"en": "en", "zh-hans": "zh-Hans"}  # Django's code -> the page's <html lang>
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}


@dataclass(frozen=True)
class Page:
    name: str
    path: str  # "{key}" is filled from the demo by _ids
    roles: tuple[str, ...]


PAGES = [
    Page("home", "/", (*ANYONE, "operator")),
    Page("projects", "/registry/projects/", ANYONE),
    Page("project", "/registry/projects/{project}/", (*ANYONE, "auditor", "registrar")),
    Page(
        "document attach",
        "/registry/projects/{project}/documents/attach/",
        ("registrar", "operator"),
    ),
    Page("projects, searched", "/registry/projects/?q=mangrove&ecosystem=mangrove", ("anonymous",)),
    Page("project map", "/registry/map/", ANYONE),
    Page("statistics", "/registry/statistics/", ANYONE),
    Page("batches", "/registry/batches/", ANYONE),
    Page("batch", "/registry/batches/{batch}/", (*ANYONE, "auditor")),
    Page("retirements", "/registry/retirements/", ANYONE),
    Page("certificate", "/registry/certificates/{certificate}/", ANYONE),
    Page("auctions", "/auctions/", ANYONE),
    Page("auction: sealed, open", "/auctions/{sealed_open}/", ANYONE),
    Page("auction: sealed, settled", "/auctions/{sealed_settled}/", ANYONE),
    Page("auction: second price, upcoming", "/auctions/{second_price}/", ANYONE),
    Page("auction: English, settled", "/auctions/{english}/", ANYONE),
    Page("auction: clock, open", "/auctions/{clock}/", ANYONE),
    Page("auction result report", "/auctions/{sealed_settled}/result/", ANYONE),
    Page("auction result report: English", "/auctions/{english}/result/", ("anonymous",)),
    Page("auction audit: sealed", "/auctions/{sealed_settled}/audit/", AUDIT),
    Page("auction audit: English", "/auctions/{english}/audit/", ("auditor",)),
    Page("listings", "/listings/", ANYONE),
    Page("listing", "/listings/{listing}/", ANYONE),
    Page("purchases", "/account/purchases/", ("bidder",)),
    Page("dashboard", "/account/", ("bidder", "auditor", "trustee", "registrar")),
    Page("trustee's auctions", "/account/trustee/", ("trustee",)),
    Page("trustee's key: open auction", "/account/trustee/auctions/{sealed_open}/", ("trustee",)),
    Page("retire", "/account/retire/", ("bidder",)),
    Page("two-factor sign-in", "/account/two-factor/", ("bidder",)),
    Page("sign in", "/account/login/", ("anonymous",)),
    Page("sign up", "/account/signup/", ("anonymous",)),
    Page("ledger", "/audit/ledger/", AUDIT),
    Page("ledger, filtered", "/audit/ledger/?type=credit.retire", ("auditor",)),
    Page("ledger entry", "/audit/ledger/{seq}/", AUDIT),
    Page("checkpoints", "/audit/checkpoints/", AUDIT),
    Page("verification", "/audit/verification/", AUDIT),
    Page("verification run", "/audit/verification/{run}/", ("auditor",)),
    Page("not found", "/registry/projects/NO-SUCH-PROJECT/", ("anonymous", "auditor")),
]
STATUS = {"not found": 404}


def _ids() -> dict[str, Any]:
    """The demo's ids that the pages' paths name."""
    auctions = Auction.objects.order_by("pk")
    settled = auctions.filter(format=Format.UNIFORM, result__isnull=False).first()
    retirement = Retirement.objects.order_by("pk").first()
    assert settled is not None and retirement is not None, "the demo changed: adjust _ids"
    run, _ = portal_services.verification_request(
        user=get_user_model().objects.get(username=USERS["auditor"])
    )
    return {
        "project": Project.objects.order_by("pk").first().code,  # type: ignore[union-attr]
        "batch": Batch.objects.order_by("pk").first().serial,  # type: ignore[union-attr]
        "certificate": retirement.certificate,
        "sealed_settled": settled.pk,
        "sealed_open": auctions.filter(format=Format.UNIFORM, result__isnull=True).first().pk,  # type: ignore[union-attr]
        "second_price": auctions.get(format=Format.SECOND_PRICE).pk,
        "english": auctions.get(format=Format.ENGLISH).pk,
        "clock": auctions.get(format=Format.CLOCK).pk,
        "listing": Listing.objects.order_by("pk").first().pk,  # type: ignore[union-attr]
        "seq": LedgerEntry.objects.filter(type="credit.retire").order_by("seq").first().seq,  # type: ignore[union-attr]
        "run": run.pk,
    }


@pytest.fixture
def demo_site(committed_db: None) -> Iterator[str]:
    """The demo registry, served by a thread of this process (as test_browser_certificate's
    ``site``)."""
    call_command("seed_demo", password="sweep-password-1", stdout=io.StringIO())
    with served() as url:
        yield url


def _session_cookie(username: str, url: str) -> dict[str, str]:
    # Signed in as the portal's code step leaves an operator (``seed_demo`` enrols ``admin``):
    # without it the gate logs the session out and the operator's sweep read the sign-in page.
    client = two_factor.force_login(Client(), get_user_model().objects.get(username=username))
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return {"name": settings.SESSION_COOKIE_NAME, "value": value, "url": url}


def sweep(browser: Any, site: str, role: str) -> tuple[list[str], dict[str, Any]]:
    """Every page of ``role`` in every language at every width: the problems found, and the
    numbers for the summary."""
    ids = _ids()
    pages = [p for p in PAGES if role in p.roles]
    failures: list[str] = []
    violations: dict[str, int] = {}
    loads = 0
    for language, lang_attr in LANGUAGES.items():
        for width_name, (width, height) in WIDTHS.items():
            context = browser.new_context(
                base_url=site, viewport={"width": width, "height": height}, locale="en-GB"
            )
            cookies = [{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": site}]
            username = USERS[role]
            if username is not None:
                cookies.append(_session_cookie(username, site))
            context.add_cookies(cookies)
            page = context.new_page()
            page.set_default_timeout(20_000)
            problems = page_problems(page)
            # A resource that failed, by its address (Chromium's console only says "Failed to
            # load resource", which the page's own expected 404 says too).
            failed: list[str] = []
            page.on(
                "response",
                lambda r, failed=failed: (
                    failed.append(f"{r.status} {r.url}")
                    if r.status >= 400 and r.request.resource_type != "document"
                    else None
                ),
            )
            for p in pages:
                where = f"{p.name} ({p.path.format(**ids)}) as {role}, {language}, {width_name}"
                problems.clear()
                failed.clear()
                response = page.goto(p.path.format(**ids), wait_until="load")
                loads += 1
                expected = STATUS.get(p.name, 200)
                if response is None or response.status != expected:
                    got = response.status if response else None
                    failures.append(f"{where}: status {got}, expected {expected}")
                    continue
                landed = urlsplit(page.url).path
                if landed != urlsplit(p.path.format(**ids)).path:
                    # A redirect (to the sign-in or the code step): not the page meant.
                    failures.append(f"{where}: landed on {landed}")
                    continue
                if page.get_attribute("html", "lang") != lang_attr:
                    failures.append(f"{where}: <html lang> is not {lang_attr}")
                if overflow := horizontal_overflow(page):
                    failures.append(
                        f"{where}: the page scrolls sideways by {overflow} px: {overflowing(page)}"
                    )
                for v in axe_violations(page):
                    violations[v["id"]] = violations.get(v["id"], 0) + 1
                    failures.append(
                        f"{where}: axe {v['id']} ({v['impact']}): {v['help']}: {v['nodes'][:3]}"
                    )
                failures.extend(
                    f"{where}: {problem}"
                    for problem in problems
                    if "Failed to load resource" not in problem
                )
                failures.extend(f"{where}: resource failed: {f}" for f in failed)
            context.close()
    summary = {
        "role": role,
        "pages": len(pages),
        "languages": len(LANGUAGES),
        "widths": len(WIDTHS),
        "loads": loads,
        "violations_by_rule": violations,
        "failures": failures,
    }
    return failures, summary


@pytest.mark.parametrize("role", list(USERS))
def test_every_page_is_accessible_fits_a_phone_and_logs_no_error(browser, demo_site, role):
    failures, summary = sweep(browser, demo_site, role)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"sweep-{role}.json").write_text(json.dumps(summary, indent=2))
    assert failures == [], "\n".join(failures)


def test_the_sweep_covers_every_role_and_the_vendored_axe_is_4_14_1():
    assert {r for p in PAGES for r in p.roles} == set(USERS)
    assert AXE.read_text()[:20].startswith("/*! axe v4.14.1")
    assert (Path(AXE).parent / "LICENSE").read_text().startswith("Mozilla Public License")


def test_axe_finds_a_violation_when_there_is_one(browser):
    """The check can fail: a page with an unlabelled input and an image without alt."""
    context = browser.new_context()
    page = context.new_page()
    page.set_content(
        '<html lang="en"><head><title>t</title></head><body><main><h1>t</h1>'
        '<input type="text"><img src="data:,"></main></body></html>'
    )
    found = {v["id"] for v in axe_violations(page)}
    context.close()
    assert {"label", "image-alt"} <= found
