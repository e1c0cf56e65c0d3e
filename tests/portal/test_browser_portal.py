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
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from auctions.models import Auction, Bid
from auctions.receipts import receipt_verifiers
from ledger import services as registry
from ledger.core.note import open_note
from ledger.models import LedgerEntry, Membership, Role
from portal.numbers import money_text
from tests import factories
from tests.auctions.conftest import TONNE, Market
from tests.auctions.test_trustees import Trustees
from tests.browser import page_problems, served
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PASSWORD = "bluecarbon-demo-password"


@pytest.fixture
def portal_url(worker: Any) -> Iterator[str]:
    """The whole site (static files from the apps, as in development) on a free port, served
    by a thread of this process on the committed test database the worker also uses.

    Not pytest-django's live_server: it would set the database up before ``worker``'s
    ``committed_db``, and the append-only triggers would then be back in place before the
    database is emptied after the test."""
    with served() as url:
        yield url


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


def review_and_seal(page: Any) -> None:
    """The bid form's two steps: review what would be sealed, then seal and submit it."""
    page.get_by_role("button", name="Review the bid").click()
    page.wait_for_selector("#bid-confirm:not([hidden]) #confirm-cost")
    page.get_by_role("button", name="Seal and submit").click()


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
    page.get_by_role("button", name="Review the bid").click()
    # The error is the field's own, tied to it for a screen reader; nothing was sent.
    error_id = second_price.get_attribute("aria-describedby")
    page.wait_for_selector(f"#{error_id}:has-text('multiple of the tick, 1.00')")
    assert second_price.get_attribute("aria-invalid") == "true"
    assert Bid.objects.filter(auction=a, bidder=m.bidders[0]).count() == 0
    second_price.fill("100.00")
    assert not page.locator("#cancel-amend").is_visible()  # only while amending
    review_and_seal(page)
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
    review_and_seal(page)
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
    review_and_seal(page)
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
    # One action: the language's own name is its button.
    page.get_by_role("button", name="简体中文").click()
    page.wait_for_selector("html[lang=zh-Hans]")
    assert page.url.endswith("/")  # back on the page it was switched from
    assert page.get_by_role("button", name="English").count() == 1
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


def focused(page: Any, selector: str, wait: float = 5.0) -> bool:
    """Whether the focus is on ``selector``, waiting up to ``wait`` seconds for it to get
    there: autofocus and a script's focus() land after the load event, late on a loaded
    machine (CI once found the sign-in form not yet focused)."""
    try:
        page.wait_for_function(
            "(s) => document.activeElement && document.activeElement.matches(s)",
            arg=selector,
            timeout=wait * 1000,
        )
    except Exception:
        return False
    return True


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
    tab_to(page, "#bid-review")
    page.keyboard.press("Enter")
    # Refused before sealing; the focus goes to the input that is wrong.
    page.wait_for_selector("#tiers input[aria-invalid=true]")
    assert focused(page, "#tiers tr:nth-child(1) input[name=price]")
    assert Bid.objects.filter(auction=a).count() == 0
    page.keyboard.press("Control+A")
    page.keyboard.type("40.00")
    page.keyboard.press("Enter")  # Enter in a field submits the form: to the confirmation
    page.wait_for_selector("#bid-confirm:not([hidden])")
    assert focused(page, "#confirm-h")  # the summary of what is about to be sealed
    assert Bid.objects.filter(auction=a).count() == 0
    page.keyboard.press("Tab")
    assert focused(page, "#confirm-seal")
    page.keyboard.press("Enter")
    page.wait_for_selector("#bid-receipt:not([hidden]) #receipt-download")
    assert focused(page, "#bid-receipt")  # the confirmation is where the focus is
    page.keyboard.press("Tab")
    assert focused(page, "#receipt-download")
    assert Bid.objects.filter(auction=a, bidder=m.bidders[0]).count() == 1


# The stores of the browser's record of what it sealed, as the page's script keeps them: what
# an intruder reading this browser's storage would find (the test's script, not the page's).
READ_STORE = """
async () => {
  const db = await new Promise((ok, no) => {
    const q = indexedDB.open("bluecarbon-sealed-bids");
    q.onsuccess = () => ok(q.result);
    q.onerror = () => no(q.error);
  });
  const all = (store) => new Promise((ok) => {
    const q = db.transaction(store).objectStore(store).getAll();
    q.onsuccess = () => ok(q.result);
  });
  const records = (await all("records")).map((r) => ({
    fields: Object.keys(r).sort(),
    ct: Array.from(new Uint8Array(r.ct)),
  }));
  const keys = (await all("keys")).map((k) => ({
    org: k.org,
    extractable: k.key.extractable,
    algorithm: k.key.algorithm.name,
    length: k.key.algorithm.length,
  }));
  db.close();
  return { records, keys };
}
"""

EXPORT_PASSPHRASE = "tidal flats at Xiangshan 2026"
Q = "\N{RIGHT SINGLE QUOTATION MARK}"  # the catalog's apostrophe


def open_export(data: bytes, passphrase: str) -> dict[str, Any]:
    """An export file opened as docs/portal.md ("The export file") specifies it, with
    ``cryptography`` only."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    assert data[:8] == b"BCBIDREC" and data[8] == 1
    iterations = int.from_bytes(data[9:13], "big")
    salt, iv = data[13:29], data[29:41]
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase.encode())
    return json.loads(AESGCM(key).decrypt(iv, data[41:], data[:41]))


def make_export(payload: dict[str, Any], passphrase: str) -> bytes:
    """An export file written from the specification, as another client would."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    salt, iv, iterations = os.urandom(16), os.urandom(12), 600_000
    head = b"BCBIDREC" + bytes([1]) + iterations.to_bytes(4, "big") + salt + iv
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase.encode())
    return head + AESGCM(key).encrypt(iv, json.dumps(payload).encode(), head)


def sealed_rows(page: Any) -> dict[tuple[int, int], tuple[str, str, str, str]]:
    """The "What you sealed" table: (bid, version) -> (tiers, lots, cost, state)."""
    rows = {}
    for row in page.locator("#sealed-table tbody tr").all():
        cells = [c.inner_text() for c in row.locator("td").all()]
        key = (int(row.get_attribute("data-bid")), int(row.get_attribute("data-version") or 0))
        state = row.get_attribute("data-state")
        rows[key] = (cells[2], cells[3], cells[4], state) if len(cells) == 6 else (cells[2], state)
    return rows


def max_cost(tiers: list[tuple[int, int]], lot_kg: int) -> str:
    """The sum of price * lots * lot size in tonnes, in CNY with its decimals: the page's
    total."""
    return money_text(sum(price * lots * lot_kg // 1000 for price, lots in tiers), "CNY")


def test_a_bidder_sees_what_it_sealed_and_carries_the_record_to_another_device(
    browser, portal_url, page
):
    m = Market()
    bidder = m.bidders[0]
    # 40 lots of 2.5 t, a cap of 25 % (10 lots), a bid guarantee on a deposit of 3,000.00 CNY.
    lot_kg = 2500
    a = m.auction(
        closes_in=600,
        quantity=100 * TONNE,
        lot_kg=lot_kg,
        reserve=3000,
        cap_bp=2500,
        deposit_required=300_000,
        bid_guarantee=True,
    )
    m.deposit(a, bidder, 300_000)
    make_user(bidder, "bidder")
    sent: list[tuple[str, str, bytes]] = []
    page.on("request", lambda r: sent.append((r.method, r.url, r.post_data_buffer or b"")))

    sign_in(page, "bidder")
    page.goto(f"/auctions/{a.pk}/")
    page.wait_for_selector("#sealed-records:has-text('Nothing recorded on this device')")

    def fill(*tiers: tuple[str, str]) -> None:
        while page.locator("#tiers tr").count() < len(tiers):
            page.get_by_role("button", name="Add a price").click()
        for i, (price, quantity) in enumerate(tiers):
            page.locator("#tiers input[name=price]").nth(i).fill(price)
            page.locator("#tiers input[name=quantity]").nth(i).fill(quantity)

    # Over the cap on its own (6 + 5 = 11 lots): refused in the page, and it says so.
    fill(("106.00", "15"), ("100.00", "12.5"))
    page.get_by_role("button", name="Review the bid").click()
    errors = page.locator("#bid-errors")
    errors.filter(has_text="The cap is 10 lots").wait_for()
    assert errors.inner_text() == (
        "The cap is 10 lots for one bidder and this bid has 11: it is refused here and not "
        "sent. Bid for 10 lots or fewer."
    )
    assert not page.locator("#bid-confirm").is_visible()

    # Within it: the confirmation shows the tiers, the total and the deposit and cap.
    fill(("106.00", "15"), ("100.00", "10"))
    page.get_by_role("button", name="Review the bid").click()
    page.wait_for_selector("#bid-confirm:not([hidden]) #confirm-cost")
    first = [(10600, 6), (10000, 4)]
    assert page.locator("#confirm-cost").inner_text() == f"{max_cost(first, lot_kg)} CNY"
    assert page.locator("#confirm-cost").inner_text() == "2,590.00 CNY"
    assert page.locator("#confirm-lots").inner_text() == "10"
    assert page.locator("#confirm-total").inner_text() == (
        "Total maximum cost, if every lot you bid for is won at your prices: 2,590.00 CNY"
    )
    assert page.locator("#confirm-tiers tbody tr").all_inner_texts() == [
        "106.00\t6\t15\t1,590.00",
        "100.00\t4\t10\t1,000.00",
    ]
    assert page.locator("#confirm-tiers tfoot tr").inner_text() == "Total\t10\t25\t2,590.00"
    assert page.locator("#confirm-deposit").inner_text() == (
        f"Your recorded deposit, 3,000.00 CNY, covers this bid{Q}s maximum cost (the rules{Q} bid "
        "guarantee)."
    )
    assert page.locator("#confirm-cap").inner_text() == (
        "The cap is 10 lots for one bidder; this bid has 10, within it."
    )
    assert not [r for r in sent if "/bids" in r[1]]  # nothing sent before the confirmation
    # An edit withdraws the confirmation: what is sealed is what was confirmed.
    page.locator("#tiers input[name=quantity]").nth(1).fill("7.5")
    assert not page.locator("#bid-confirm").is_visible()
    fill(("106.00", "15"), ("100.00", "10"))
    review_and_seal(page)
    page.wait_for_selector("#bid-receipt:not([hidden]) #receipt-download")
    bid1 = Bid.objects.get(auction=a, bidder=bidder)
    page.wait_for_selector(f"#sealed-table tr[data-bid='{bid1.pk}'][data-state=counts]")
    assert sealed_rows(page) == {
        (bid1.pk, 1): ("106.00: 6; 100.00: 4", "10 (25 t)", "2,590.00 CNY", "counts")
    }

    # A second bid: with the first (recorded here), the bidder is over the cap and the deposit,
    # and the confirmation says what the clearing does with that: trims, lowest prices first.
    fill(("104.00", "5"))
    page.get_by_role("button", name="Review the bid").click()
    page.wait_for_selector("#bid-confirm:not([hidden]) #confirm-cost")
    second = [(10400, 2)]
    assert page.locator("#confirm-cost").inner_text() == f"{max_cost(second, lot_kg)} CNY"
    both = max_cost(first + second, lot_kg)
    assert both == "3,110.00"
    assert page.locator("#confirm-deposit").inner_text() == (
        "Your recorded deposit, 3,000.00 CNY, covers this bid, but not together with your other "
        f"standing bids recorded on this device: {both} CNY in all. Your bids count together: "
        "at the clearing your lowest-priced lots beyond the deposit will not count, and a bid "
        "left with no lot is rejected."
    )
    assert page.locator("#confirm-cap").inner_text() == (
        "The cap is 10 lots for one bidder; this bid has 2 and your other standing bids "
        "recorded on this device have 10: 12 in all, 2 over the cap. Your bids count together: at "
        "the clearing the lowest-priced lots beyond the cap (2) will not count, and a bid left "
        "with no lot is rejected."
    )
    shot(page, "auction-bid-confirm")
    page.get_by_role("button", name="Seal and submit").click()
    page.wait_for_selector(f"#sealed-table tr:not([data-bid='{bid1.pk}'])[data-state=counts]")
    bid2 = Bid.objects.filter(auction=a, bidder=bidder).exclude(pk=bid1.pk).get()

    # Withdrawn, then the first amended: the table marks which version counts.
    row = page.locator(f"#my-bids tr[data-bid='{bid2.pk}']")
    row.get_by_role("button", name="Withdraw").click()
    page.wait_for_selector(f"text=Bid {bid2.pk} withdrawn.")
    page.locator(f"button.amend[data-bid='{bid1.pk}']").click()
    fill(("106.00", "25"))
    page.get_by_role("button", name="Review the bid").click()
    page.wait_for_selector(f"#confirm-h:has-text('Check the new version of bid {bid1.pk}')")
    # The amended bid's old version and the withdrawn bid no longer count.
    assert page.locator("#confirm-cap").inner_text().endswith("this bid has 10, within it.")
    page.get_by_role("button", name="Seal and submit").click()
    page.wait_for_selector(f"#sealed-table tr[data-bid='{bid1.pk}'][data-version='2']")
    mine = {
        (bid1.pk, 1): ("106.00: 6; 100.00: 4", "10 (25 t)", "2,590.00 CNY", "amended"),
        (bid2.pk, 1): ("104.00: 2", "2 (5 t)", "520.00 CNY", "withdrawn"),
        (bid1.pk, 2): ("106.00: 10", "10 (25 t)", "2,650.00 CNY", "counts"),
    }
    assert sealed_rows(page) == mine
    states = page.locator("#sealed-table td.sealed-state").all_inner_texts()
    assert states == ["Amended: version 2 counts", "This version counts", "Withdrawn"]

    # What the browser stores is ciphertext under a key it will not export.
    stored = page.evaluate(READ_STORE)
    assert stored["keys"] == [
        {"org": bidder.pk, "extractable": False, "algorithm": "AES-GCM", "length": 256}
    ]
    assert len(stored["records"]) == 3
    for record in stored["records"]:
        assert record["fields"] == [
            "auction", "bid", "commitment", "ct", "id", "iv", "org", "version"
        ]  # fmt: skip
        assert b"tiers" not in bytes(record["ct"]) and b"10600" not in bytes(record["ct"])

    # Export under a passphrase (a short one is refused).
    page.locator("#export-pass").fill("too short")
    page.locator("#export-pass-again").fill("too short")
    page.get_by_role("button", name="Encrypt and export").click()
    page.wait_for_selector("#export-errors:has-text('at least 12 characters')")
    page.locator("#export-pass").fill(EXPORT_PASSPHRASE)
    page.locator("#export-pass-again").fill(EXPORT_PASSPHRASE)
    page.get_by_role("button", name="Encrypt and export").click()
    page.wait_for_selector("#export-result:has-text('Records encrypted: 3.')")
    with page.expect_download() as download:
        page.locator("#export-download").click()
    assert download.value.suggested_filename.endswith(".bcbids")
    exported = Path(download.value.path()).read_bytes()
    assert int.from_bytes(exported[9:13], "big") == 600_000
    for secret in (b"10600", b"10400", b"tiers", b'"lots"'):
        assert secret not in exported
    payload = open_export(exported, EXPORT_PASSPHRASE)  # the documented format, byte for byte
    assert payload["format"] == "bluecarbon/sealed-bids/v1"
    assert (payload["origin"], payload["bidder"]) == (settings.LEDGER_ORIGIN, bidder.pk)
    assert {(r["bid"], r["version"]): r["tiers"] for r in payload["records"]} == {
        (bid1.pk, 1): [{"price": 10600, "lots": 6}, {"price": 10000, "lots": 4}],
        (bid2.pk, 1): [{"price": 10400, "lots": 2}],
        (bid1.pk, 2): [{"price": 10600, "lots": 10}],
    }
    bid1.refresh_from_db()
    assert [r["commitment"] for r in payload["records"] if r["bid"] == bid1.pk][-1] == (
        bid1.commitment
    )

    # Another device: a fresh browser, signed in as the same user, has no record...
    other = browser.new_context(base_url=portal_url, locale="en-GB")
    device = other.new_page()
    device.set_default_timeout(20_000)
    problems = page_problems(device)
    device.on("request", lambda r: sent.append((r.method, r.url, r.post_data_buffer or b"")))
    try:
        sign_in(device, "bidder")
        device.goto(f"/auctions/{a.pk}/")
        device.wait_for_selector(f"#sealed-table tr[data-bid='{bid1.pk}'][data-state=missing]")
        assert "106.00" not in device.locator("#sealed-records").inner_text()

        def import_file(data: bytes, passphrase: str) -> None:
            upload = {"name": "bids.bcbids", "mimeType": "application/octet-stream", "buffer": data}
            device.locator("#import-file").set_input_files(files=[upload])
            device.locator("#import-pass").fill(passphrase)
            device.get_by_role("button", name="Decrypt and import").click()

        # ...a wrong passphrase and an altered file are refused, and nothing is imported...
        refused = "The passphrase is wrong, or the file was altered: nothing was imported."
        import_file(exported, "not the passphrase at all")
        device.wait_for_selector(f"#import-errors:has-text('{refused}')")
        assert device.locator("#import-pass").get_attribute("aria-invalid") == "true"
        altered = bytearray(exported)
        altered[60] ^= 1
        device.locator("#import-errors").evaluate("e => e.textContent = ''")
        import_file(bytes(altered), EXPORT_PASSPHRASE)
        device.wait_for_selector(f"#import-errors:has-text('{refused}')")
        import_file(b"not an export file at all, just some bytes here", EXPORT_PASSPHRASE)
        device.wait_for_selector("#import-errors:has-text('not a sealed-bid export file')")
        assert device.evaluate(READ_STORE)["records"] == []

        # ...and the right one brings the prices and lots, as on the first device.
        import_file(exported, EXPORT_PASSPHRASE)
        device.wait_for_selector(
            "#import-result:has-text('Records imported: 3; already on this device: 0.')"
        )
        device.wait_for_selector(f"#sealed-table tr[data-bid='{bid1.pk}'][data-state=counts]")
        assert sealed_rows(device) == mine
        assert device.locator("#import-errors").inner_text() == ""
        # Merged: the same file again adds nothing; a file another client wrote from the
        # specification adds a record of a commitment the registry does not list, marked so.
        import_file(exported, EXPORT_PASSPHRASE)
        device.wait_for_selector(
            "#import-result:has-text('Records imported: 0; already on this device: 3.')"
        )
        stray = {
            "auction": a.pk,
            "bid": bid1.pk,
            "version": 2,
            "commitment": "ab" * 32,
            "tiers": [{"price": 20000, "lots": 1}],
            "currency": "CNY",
            "lot_kg": lot_kg,
            "account": None,
            "sealed_at": "2026-01-01T00:00:00Z",
        }
        forged = make_export({**payload, "records": [stray]}, "another passphrase here")
        import_file(forged, "another passphrase here")
        device.wait_for_selector(
            "#import-result:has-text('Records imported: 1; already on this device: 0.')"
        )
        device.wait_for_selector("#sealed-table tr[data-state=unlisted]")
        unlisted = device.locator("#sealed-table tr[data-state=unlisted] td.sealed-state")
        assert unlisted.inner_text() == (
            "Not listed by the registry: no version of your bids has this commitment"
        )
        # Another organization's file is not this bidder's record.
        theirs = make_export({**payload, "bidder": m.bidders[1].pk}, "another passphrase here")
        import_file(theirs, "another passphrase here")
        device.wait_for_selector(f"#import-errors:has-text('another organization{Q}s records')")
        shot(device, "auction-sealed-imported")
    finally:
        other.close()
    assert problems == []

    # Nothing the pages sent carried a price, a tier or the passphrase: only ciphertext.
    bids_sent = [r for r in sent if r[0] in ("POST", "PUT") and "/api/v1/auctions/" in r[1]]
    assert len(bids_sent) == 3  # two submissions and one amendment, each a sealed ciphertext
    for method, url, body in sent:
        for secret in (
            b"10600", b"10400", b"10000", b"106.00", b"104.00", b"100.00", b"tiers",
            b'"lots"', b'"price"', EXPORT_PASSPHRASE.encode(), b"too short",
        ):  # fmt: skip
            assert secret not in body and secret.decode() not in url, (method, url, secret)
