"""The portal in a real browser (Debian's Chromium, driven by Playwright; no browser download)
against a live server on the test database, with a real Celery worker: a bidder signs in,
seals a bid in the page (to an operator-held key, or to 2 of 3 trustees) and sees its receipt
while the database holds only ciphertext; the worker closes the auction (and, once two
trustees have released their keys, opens it) and the bidder sees the result and its chart; an
auditor runs a
verification and watches it reach a green report; the Chinese interface renders. Screenshots
of the main pages go to test-artifacts/. Any console error fails the test (a CSP violation is
one)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from auctions.models import Auction, Bid
from auctions.receipts import receipt_verifiers
from ledger import services as registry
from ledger.core.note import open_note
from ledger.models import LedgerEntry, Membership, Role
from tests import factories
from tests.auctions.conftest import TONNE, Market
from tests.auctions.test_trustees import Trustees
from tests.browser import chromium, page_problems
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PASSWORD = "bluecarbon-demo-password"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def portal_url(worker: Any) -> Iterator[str]:
    """The whole site (static files from the apps, as in development) on a free port, served
    by a thread of this process on the committed test database the worker also uses.

    Not pytest-django's live_server: it would set the database up before ``worker``'s
    ``committed_db``, and the append-only triggers would then be back in place before the
    database is emptied after the test."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("localhost", StaticFilesHandler)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    try:
        yield f"http://localhost:{thread.port}"
    finally:
        thread.terminate()
        thread.join(timeout=10)


@pytest.fixture
def page(browser: Any, portal_url: str) -> Iterator[Any]:
    context = browser.new_context(base_url=portal_url, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    yield page
    context.close()
    assert problems == []


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"portal-{name}.png"), full_page=True)


def sign_in(page: Any, username: str) -> None:
    page.goto("/account/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/account/")


def make_user(org: Any, username: str) -> None:
    user = get_user_model().objects.create_user(username, f"{username}@example.org", PASSWORD)
    Membership.objects.create(user=user, organization=org)


@pytest.mark.parametrize("mode", ["operator_key", "trustees"])
def test_a_bidder_seals_a_bid_in_the_browser_and_sees_the_settled_result(page, mode):
    m = Market()
    board = Trustees(3, keys_each=1) if mode == "trustees" else None
    sealing_rules: dict[str, Any] = {}
    if board is not None:
        sealing_rules = {
            "sealing_mode": "trustees",
            "trustee_ids": [o.pk for o in board.orgs],
            "threshold": 2,
            "release_by": timezone.now() + dt.timedelta(seconds=180),
        }
    a = m.auction(closes_in=35, quantity=100 * TONNE, reserve=3000, **sealing_rules)
    rival = m.bidders[1]
    m.bid(a, rival, [(4000, 70)])  # a rival, sealed by the Python client
    make_user(m.bidders[0], "bidder")
    sign_in(page, "bidder")
    shot(page, "dashboard")
    page.goto("/")
    shot(page, "home")
    page.goto("/auctions/")
    shot(page, "auctions")

    page.goto(f"/auctions/{a.pk}/")
    # The page says who can open the bid, in the form and in the sealing section.
    if board is not None:
        says = "Sealed to 2 of 3 trustees: " + ", ".join(o.name for o in board.orgs) + "."
        assert page.locator("#trustees tbody tr", has_text="Not yet").count() == 3
    else:
        says = "Operator-held key: the operator can read bids before the close."
    assert page.locator("#bid-sealing").inner_text().startswith(says)
    assert page.locator("#sealing-mode").inner_text() == says
    page.locator("#tiers input[name=price]").first.fill("106.00")
    page.locator("#tiers input[name=quantity]").first.fill("60")
    page.get_by_role("button", name="Add a price").click()
    second_price = page.locator("#tiers input[name=price]").nth(1)
    second_price.fill("100.50")  # off the 1.00 tick
    page.locator("#tiers input[name=quantity]").nth(1).fill("20")
    page.get_by_role("button", name="Seal and submit").click()
    # The error is the field's own, tied to it for a screen reader; nothing was sent.
    error_id = second_price.get_attribute("aria-describedby")
    page.wait_for_selector(f"#{error_id}:has-text('multiple of the tick, 1.00')")
    assert second_price.get_attribute("aria-invalid") == "true"
    assert Bid.objects.filter(auction=a, bidder=m.bidders[0]).count() == 0
    second_price.fill("100.00")
    assert not page.locator("#cancel-amend").is_visible()  # only while amending
    page.get_by_role("button", name="Seal and submit").click()
    page.wait_for_selector("#bid-receipt:not([hidden]) #receipt-download")
    commitment = page.locator("#bid-receipt").get_attribute("data-commitment")
    # The table of the bidder's bids is refreshed in place with the new bid and its receipt.
    page.wait_for_selector(f"#my-bids code[title='{commitment}']")
    shot(page, "auction-bid-receipt")
    with page.expect_download() as download:
        page.locator("#receipt-download").click()
    note = Path(download.value.path()).read_text()
    opened = open_note(note, receipt_verifiers())  # signed by the receipt key
    assert "auction bid receipt v1\n" in opened.text
    assert f"commitment {commitment}\n" in opened.text

    # The server has the ciphertext and its commitment, and nothing of what was bid.
    bid = Bid.objects.get(auction=a, bidder=m.bidders[0])
    assert bid.commitment == commitment and bid.opened is None
    raw = bytes(bid.ciphertext)
    # Sealed as the auction's mode says: to trustees, three 81-byte share boxes before the
    # body (enc, one 256-byte padded plaintext, tag).
    assert len(raw) == (3 * 81 if board is not None else 0) + 32 + 256 + 16
    for secret in (b"10600", b"10000", b'"lots"', b"tiers"):
        assert secret not in raw
        assert secret not in bytes(LedgerEntry.objects.get(seq=bid.entry_seq).body)

    # A second bid, withdrawn (a plain form); then the first amended to a new schedule.
    page.locator("#tiers input[name=price]").first.fill("90.00")
    page.locator("#tiers input[name=quantity]").first.fill("5")
    page.get_by_role("button", name="Seal and submit").click()
    page.wait_for_selector(f"#bid-receipt:not([data-commitment='{commitment}']) #receipt-download")
    extra = Bid.objects.filter(auction=a, bidder=m.bidders[0]).exclude(pk=bid.pk).get()
    page.wait_for_selector(f"#my-bids code[title='{extra.commitment}']")
    page.locator("tr", has_text=extra.commitment[:15]).get_by_role(
        "button", name="Withdraw"
    ).click()
    page.wait_for_selector(f"text=Bid {extra.pk} withdrawn.")
    extra.refresh_from_db()
    assert extra.status == "withdrawn"
    page.locator(f"button.amend[data-bid='{bid.pk}']").click()
    assert page.locator("#cancel-amend").is_visible()
    page.locator("#tiers input[name=price]").first.fill("106.00")
    page.locator("#tiers input[name=quantity]").first.fill("60")
    page.get_by_role("button", name="Add a price").click()
    page.locator("#tiers input[name=price]").nth(1).fill("100.00")
    page.locator("#tiers input[name=quantity]").nth(1).fill("25")
    page.get_by_role("button", name="Seal and submit").click()
    page.wait_for_selector("#bid-receipt:not([hidden]):has-text('version 2')")
    bid.refresh_from_db()
    assert bid.version == 2 and bid.commitment != commitment

    # The deadline passes; the worker closes, opens (the browser's ciphertext with the
    # server's Python HPKE code; trustee-sealed, once two of the three trustees have
    # released their keys), clears and settles.
    deadline = time.monotonic() + 90
    if board is not None:
        while Auction.objects.get(pk=a.pk).state != "closing":
            assert time.monotonic() < deadline, "the worker did not close the auction"
            time.sleep(0.2)
        first, _, third = board.orgs
        board.release(a, third)
        board.release(a, first)
    while Auction.objects.get(pk=a.pk).state != "settled":
        assert time.monotonic() < deadline, "the worker did not settle the auction"
        time.sleep(0.2)
    bid.refresh_from_db()
    assert bid.status == "valid"  # it opened, and counted
    page.goto(f"/auctions/{a.pk}/")
    page.wait_for_selector("svg.chart polyline.demand")
    assert "Your allocation, explained" in page.content()
    assert page.locator("text=You were awarded 85 lots.").count() == 1  # 60 + 25, as amended
    if board is not None:
        released = page.locator("#trustees tbody tr", has_text="Released")
        assert [r.get_attribute("data-position") for r in released.all()] == ["1", "3"]
        assert "Keys released: 2 of the 2 needed" in page.locator("#trustees caption").inner_text()
    shot(page, f"auction-result-{mode}")


# Records every value the progress bar takes, from the moment the page is parsed (an init
# script runs outside the page's CSP: it is the test's, not the page's).
RECORD_PROGRESS = """
window.__progress = [];
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("run-progress");
  if (!bar) return;
  window.__progress.push(bar.value);
  new MutationObserver(() => window.__progress.push(bar.value)).observe(bar, { attributes: true });
  const set = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value").set;
  Object.defineProperty(bar, "value", {
    get() { return Number(this.getAttribute("value")); },
    set(v) { set.call(this, v); window.__progress.push(Number(v)); },
  });
});
"""


def test_an_auditor_runs_a_verification_and_sees_it_go_green(page, worker):
    m = Market()
    a = m.auction(closes_in=30)
    m.bid(a, m.bidders[0], [(5000, 3)])
    retirement = registry.credit_retire(
        actor=factories.OPERATOR,
        batch=m.batch.pk,
        account=m.seller_account.pk,
        quantity=2 * TONNE,
        beneficiary="Ningbo Coastal Energy",
        purpose="2025 emissions",
        jurisdiction="CN-ZJ",
    )
    make_user(factories.organization(Role.AUDITOR), "auditor")
    sign_in(page, "auditor")
    page.goto("/audit/ledger/")
    shot(page, "ledger")
    page.get_by_role("link", name="3", exact=True).click()
    page.wait_for_selector("#canonical")
    shot(page, "entry")
    page.goto(f"/auctions/{a.pk}/audit/")
    shot(page, "auction-audit")
    page.goto(f"/registry/projects/{m.batch.project.code}/")
    shot(page, "project")
    page.goto(f"/registry/certificates/{retirement.certificate}/")
    page.wait_for_selector("text=Verify it yourself")
    shot(page, "certificate")

    # No worker for a moment: the run waits, queued, and its page says so and polls.
    worker.stop()
    page.add_init_script(RECORD_PROGRESS)
    page.goto("/audit/verification/")
    page.get_by_role("button", name="Verify now").click()
    page.wait_for_selector("#run-status:has-text('Queued')")
    assert page.locator("#run-progress").get_attribute("value") == "0"
    worker.start()
    page.wait_for_selector("#report-ok", timeout=60_000)
    assert page.locator("#run-progress").get_attribute("value") == "100"
    seen = page.evaluate("window.__progress")
    # The script moved the bar from empty to full, and never back.
    assert seen[0] == 0 and seen[-1] == 100 and seen == sorted(seen), seen
    shot(page, "verification")


# Draws two different characters in the page's font: where no font has them, both come out
# as the same empty box.
GLYPHS_DIFFER = """
() => {
  const draw = (ch) => {
    const c = document.createElement("canvas");
    c.width = c.height = 40;
    const g = c.getContext("2d");
    g.font = "32px " + getComputedStyle(document.body).fontFamily;
    g.fillText(ch, 2, 34);
    return c.toDataURL();
  };
  return draw("海") !== draw("洋");
}
"""


def test_the_chinese_interface_renders(page):
    m = Market()
    a = m.auction(closes_in=60)
    m.bid(a, m.bidders[0], [(5000, 3)])
    page.goto("/")
    page.get_by_label("Language").select_option("zh-hans")
    page.get_by_role("button", name="Switch").click()
    page.wait_for_selector("html[lang=zh-Hans]")
    assert "海洋碳汇减排量" in page.content()
    assert page.evaluate(GLYPHS_DIFFER), "no font renders Chinese: apt-get install fonts-noto-cjk"
    shot(page, "home-zh")
    page.goto("/auctions/")
    assert page.get_by_role("heading", name="竞价中").count() == 1
    page.goto(f"/auctions/{a.pk}/")
    mode = page.locator("#sealing-mode").inner_text()  # "Operator-held key: the operator can..."
    assert mode.startswith("运营方持有密钥") and mode.endswith("运营方可在截止前读取出价。")
    shot(page, "auction-zh")


def tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until the focus is on ``selector``: it must be reachable with the keyboard."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused(page, selector):
            return
    raise AssertionError(f"{selector} cannot be reached with Tab in {limit} presses")


def focused(page: Any, selector: str) -> bool:
    return page.evaluate("(s) => document.activeElement.matches(s)", selector)


def test_a_bidder_signs_in_and_bids_with_the_keyboard_alone(page):
    m = Market()
    a = m.auction(closes_in=120, quantity=10 * TONNE, reserve=3000)
    make_user(m.bidders[0], "bidder")

    page.goto("/")
    page.keyboard.press("Tab")
    assert focused(page, "a.skip")  # the first stop skips the header
    page.keyboard.press("Enter")
    assert focused(page, "main")
    page.goto("/account/login/")
    assert focused(page, "input[name=username]")  # the sign-in form starts focused
    page.keyboard.type("bidder")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/account/")

    page.goto(f"/auctions/{a.pk}/")
    tab_to(page, "#tiers input[name=price]")
    page.keyboard.type("40.50")  # off the 1.00 tick
    page.keyboard.press("Tab")
    page.keyboard.type("3")
    tab_to(page, "#add-tier")
    page.keyboard.press("Enter")
    assert focused(page, "#tiers tr:nth-child(2) input[name=price]")  # the new row's price
    page.keyboard.type("35.00")
    page.keyboard.press("Tab")
    page.keyboard.type("2")
    tab_to(page, "#bid-form button[type=submit]")
    page.keyboard.press("Enter")
    # Refused before sealing; the focus goes to the input that is wrong.
    page.wait_for_selector("#tiers input[aria-invalid=true]")
    assert focused(page, "#tiers tr:nth-child(1) input[name=price]")
    assert Bid.objects.filter(auction=a).count() == 0
    page.keyboard.press("Control+A")
    page.keyboard.type("40.00")
    page.keyboard.press("Enter")  # Enter in a field submits the form
    page.wait_for_selector("#bid-receipt:not([hidden]) #receipt-download")
    assert focused(page, "#bid-receipt")  # the confirmation is where the focus is
    page.keyboard.press("Tab")
    assert focused(page, "#receipt-download")
    assert Bid.objects.filter(auction=a, bidder=m.bidders[0]).count() == 1
