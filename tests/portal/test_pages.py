"""The portal's pages through Django's test client: who sees what, forms that refuse bad input
on the field it concerns and change nothing, the CSP, no inline script, translations, and list
pages whose query count does not grow with their rows."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from auctions.receipts import receipt_verifiers
from ledger.actors import Actor
from ledger.core.entry import decode_entry
from ledger.core.note import open_note
from ledger.exceptions import PermissionDenied
from ledger.models import LedgerEntry, Membership, Retirement, Role
from portal import selectors as portal_selectors
from portal import services as portal_services
from portal.models import SignupRequest, VerificationRun
from tests import factories, two_factor
from tests.auctions.conftest import OPERATOR, TONNE, Market, run_to_settlement

PASSWORD = "a-long-test-password"


def user_for(org, name: str, **extra) -> Client:
    user = get_user_model().objects.create_user(name, f"{name}@example.org", PASSWORD, **extra)
    if org is not None:
        Membership.objects.create(user=user, organization=org)
    return two_factor.force_login(Client(), user)  # an operator enrolled and verified


@pytest.fixture
def market(db) -> Market:
    return Market()


@pytest.fixture
def bidder(market) -> Client:
    return user_for(market.bidders[0], "bidder")


@pytest.fixture
def auditor(db) -> Client:
    return user_for(factories.organization(Role.AUDITOR), "auditor")


PUBLIC = ["/", "/registry/projects/", "/registry/retirements/", "/auctions/", "/account/login/"]


@pytest.mark.parametrize("path", PUBLIC)
def test_public_pages_render_with_a_csp_and_no_inline_script(market, client, path):
    r = client.get(path)
    assert r.status_code == 200
    csp = r["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    html = r.content.decode()
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline script"
    assert " style=" not in html and "<style" not in html, "inline style"
    assert 'lang="en"' in html


def test_a_project_page_shows_its_batches(market, client):
    r = client.get(f"/registry/projects/{market.world.project.code}/")
    assert r.status_code == 200
    assert market.batch.serial in r.content.decode()
    assert client.get("/registry/projects/NOPE/").status_code == 404


def test_audit_pages_are_for_auditors(market, client, bidder, auditor):
    for path in [
        "/audit/ledger/",
        "/audit/ledger/0/",
        "/audit/checkpoints/",
        "/audit/verification/",
    ]:
        assert client.get(path).status_code == 302  # to the sign-in page
        assert bidder.get(path).status_code == 403
        assert auditor.get(path).status_code == 200, path


def test_the_entry_page_shows_bytes_hashes_and_an_inclusion_proof(market, auditor):
    from ledger import services as registry

    registry.ledger_checkpoint_issue()
    r = auditor.get("/audit/ledger/3/")
    html = r.content.decode()
    body = bytes(LedgerEntry.objects.get(seq=3).body).decode()
    assert body.replace('"', "&quot;") in html
    assert "The proof leads from this entry" in html


def test_the_ledger_explorer_filters_by_type_account_and_batch(market, auditor):
    r = auditor.get("/audit/ledger/", {"type": "bidder.status"})
    assert r.content.decode().count("bidder.status</td>") == 3
    r = auditor.get("/audit/ledger/", {"batch": market.batch.pk})
    assert "batch.issue</td>" in r.content.decode()
    r = auditor.get("/audit/ledger/", {"account": "x", "type": "bidder.status"})
    html = r.content.decode()
    assert r.status_code == 200 and 'id="id_account-error"' in html  # said on its field
    assert html.count("bidder.status</td>") == 3  # and the valid filter still applies


def test_the_ledger_explorer_filters_by_time(market, auditor):
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)

    def shown(**query) -> int:
        html = auditor.get("/audit/ledger/", query).content.decode()
        return len(re.findall(r'<td class="num"><a href="/audit/ledger/\d+/">', html))

    everything = shown()
    assert everything > 0
    assert shown(since=today.isoformat(), until=today.isoformat()) == everything
    assert shown(since=(today + day).isoformat()) == 0
    assert shown(until=(today - day).isoformat()) == 0
    # The search for a time lands on the first entry at or after it.
    times = [
        decode_entry(bytes(b)).time for b in LedgerEntry.objects.values_list("body", flat=True)
    ]
    for seq in (0, len(times) // 2, len(times) - 1):
        assert portal_selectors.seq_at(times[seq]) == times.index(times[seq])
    assert portal_selectors.seq_at("9999-12-31T00:00:00.000000Z") == len(times)


def test_list_pages_query_count_does_not_grow_with_their_rows(
    market, client, bidder, auditor, django_assert_max_num_queries
):
    m = market

    def counts() -> dict[str, int]:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        out = {}
        for who, path in [
            (client, "/"),
            (client, "/registry/projects/"),
            (client, "/registry/retirements/"),
            (client, "/auctions/"),
            (bidder, "/account/"),
            (auditor, "/audit/ledger/"),
            (auditor, "/audit/checkpoints/"),
        ]:
            with CaptureQueriesContext(connection) as q:
                assert who.get(path).status_code == 200
            out[path] = len(q.captured_queries)
        return out

    def grow() -> None:
        a = m.auction()
        for b in m.bidders:
            m.bid(a, b, [(5000, 1)])
        p = factories.project(m.world.registry, m.world.developer)
        factories.batch(p, 1_000_000, holder=m.accounts[m.bidders[0].pk])
        services_retire(m)

    grow()
    before = counts()
    for _ in range(3):
        grow()
    assert counts() == before


def services_retire(m: Market) -> None:
    from ledger import services as registry

    registry.credit_retire(
        actor=factories.OPERATOR,
        batch=m.batch.pk,
        account=m.seller_account.pk,
        quantity=TONNE,
        beneficiary="Ningbo",
        purpose="offset",
        jurisdiction="CN-ZJ",
    )


def test_retiring_through_the_form_makes_a_certificate(market, client):
    m = market
    seller = user_for(m.seller, "seller")
    holding = f"{m.seller_account.pk}:{m.batch.pk}"
    before = LedgerEntry.objects.count()
    r = seller.post(
        "/account/retire/",
        {
            "holding": holding,
            "quantity": "1.0005",
            "beneficiary": "B",
            "purpose": "P",
            "jurisdiction": "CN-ZJ",
        },
    )
    html = r.content.decode()
    assert r.status_code == 200 and 'aria-invalid="true"' in html
    assert "at most three decimals (one kilogram)" in html  # in words, in tonnes
    assert LedgerEntry.objects.count() == before
    r = seller.post(
        "/account/retire/",
        {
            "holding": holding,
            "quantity": "2.5",
            "beneficiary": "Ningbo Coastal Energy",
            "purpose": "2023 emissions",
            "jurisdiction": "CN-ZJ",
        },
    )
    retirement = Retirement.objects.get()
    assert r.status_code == 302 and retirement.certificate in r["Location"]
    page = client.get(r["Location"])
    assert page.status_code == 200 and "Ningbo Coastal Energy" in page.content.decode()


def test_a_bidder_sees_its_bids_downloads_a_receipt_and_withdraws(market, bidder):
    m = market
    a = m.auction()
    receipt = m.bid(a, m.bidders[0], [(5000, 2)])
    r = bidder.get(f"/auctions/{a.pk}/")
    html = r.content.decode()
    assert 'id="bid-form"' in html and "Sealing a bid needs JavaScript" in html
    note = bidder.get(f"/auctions/{a.pk}/bids/{receipt.bid_id}/receipt-v1.txt").content.decode()
    opened = open_note(note, receipt_verifiers())
    assert f"commitment {receipt.commitment}\n" in opened.text
    other = user_for(m.bidders[1], "other")
    assert other.get(f"/auctions/{a.pk}/bids/{receipt.bid_id}/receipt-v1.txt").status_code == 404
    r = bidder.post(f"/auctions/{a.pk}/bids/{receipt.bid_id}/withdraw")
    assert r.status_code == 302
    assert a.bids.get().status == "withdrawn"


def test_after_settlement_the_page_explains_the_allocation_and_the_audit_recomputes(
    market, auditor
):
    m = market
    a = m.auction(closes_in=1.2, quantity=10 * TONNE, cap_bp=6000)  # at most 6 of the 10 lots
    b1, b2, b3 = m.bidders
    m.bid(a, b1, [(6000, 6)])
    m.bid(a, b2, [(5000, 6)])
    m.bid(a, b3, [(7000, 9)])  # 3 lots over the cap
    m.bid(a, b3, [(4050, 1)])  # off the 1.00 tick
    run_to_settlement(a)
    html = user_for(b1, "partly").get(f"/auctions/{a.pk}/").content.decode()
    assert "<svg" in html and 'class="demand"' in html
    assert "Your allocation, explained" in html and "You were awarded 4 lots." in html
    assert "60.00: 6" in html  # the tiers as sealed
    html = user_for(b3, "capped").get(f"/auctions/{a.pk}/").content.decode()
    assert "You were awarded 6 lots." in html
    assert "3 lots were trimmed: over the bidder&#x27;s cap." in html
    assert "Rejected: a price off the tick" in html
    r = auditor.get(f"/auctions/{a.pk}/audit/")
    assert 'id="recompute-ok"' in r.content.decode()


def test_a_sign_up_waits_for_an_operator_and_then_bids(db, client):
    r = client.post(
        "/account/signup/",
        {
            "organization_name": "Xiamen Blue Fund",
            "handle": "xiamen-blue",
            "username": "xm",
            "email": "xm@example.org",
            "password": "a-long-password-1",
        },
    )
    assert r.status_code == 302
    assert "Awaiting approval" in client.get("/account/").content.decode()
    before = LedgerEntry.objects.count()
    assert before == 0  # nothing on the ledger before approval
    req = SignupRequest.objects.get()
    org = portal_services.signup_approve(actor=OPERATOR, request=req.pk)
    assert org.has_role(Role.BIDDER) and org.bidder.status == "approved"
    assert LedgerEntry.objects.count() > before
    assert "Approved" in client.get("/account/").content.decode()


SIGNUP = {
    "organization_name": "Xiamen Blue Fund",
    "handle": "xiamen-blue",
    "username": "xm",
    "email": "xm@example.org",
    "password": "a-long-password-1",
}


def test_a_sign_up_is_refused_a_weak_password_and_a_live_handle_but_not_a_rejected_one(db, client):
    for weak in ("xiamen-blue-1", "password123", "12345678901"):
        r = client.post(
            "/account/signup/", {**SIGNUP, "password": weak, "username": "xiamen-blue-1"}
        )
        assert r.status_code == 200 and 'id="id_password-error"' in r.content.decode(), weak
    assert not get_user_model().objects.exists() and not SignupRequest.objects.exists()

    assert client.post("/account/signup/", SIGNUP).status_code == 302
    other = Client()
    r = other.post("/account/signup/", {**SIGNUP, "username": "xm2", "email": "b@example.org"})
    assert r.status_code == 200 and 'id="id_handle-error"' in r.content.decode()
    with pytest.raises(PermissionDenied):
        portal_services.signup_reject(
            actor=Actor.for_user(get_user_model().objects.get()), request=1
        )
    assert portal_services.signup_reject(actor=OPERATOR, request=SignupRequest.objects.get().pk)
    r = other.post("/account/signup/", {**SIGNUP, "username": "xm2", "email": "b@example.org"})
    assert r.status_code == 302  # a rejected request's handle is free again
    assert LedgerEntry.objects.count() == 0


def test_sign_in_is_rate_limited_per_address_and_user_name(db, client):
    get_user_model().objects.create_user("target", "t@example.org", PASSWORD)
    for _ in range(10):
        r = client.post("/account/login/", {"username": "target", "password": "guess"})
        assert r.status_code == 200  # the form again, with its error
    r = client.post("/account/login/", {"username": "target", "password": PASSWORD})
    assert r.status_code == 429  # even the right password, for now
    assert "Too many attempts" in r.content.decode()
    r = client.post("/account/login/", {"username": "someone-else", "password": "guess"})
    assert r.status_code == 200  # another name from here is not locked out
    r = client.post("/admin/login/", {"username": "target", "password": "guess"})
    assert r.status_code == 429  # the admin's sign-in counts the same guesses


def test_an_id_too_large_for_the_database_is_a_404(market, bidder, auditor):
    huge = "9" * 25
    assert bidder.get(f"/auctions/{huge}/").status_code == 404
    assert bidder.get(f"/auctions/1/bids/{huge}/receipt-v1.txt").status_code == 404
    assert auditor.get(f"/audit/ledger/{huge}/").status_code == 404


def test_a_verification_run_reports_progress_and_its_result(market, auditor):
    r = auditor.post("/audit/verification/start")
    run = VerificationRun.objects.get()
    assert r.status_code == 302 and str(run.pk) in r["Location"]
    again = auditor.post("/audit/verification/start")  # pressed twice: the same run
    assert again["Location"] == r["Location"] and VerificationRun.objects.count() == 1
    portal_services.verification_run(run=run.pk)  # what the worker's task does
    status = auditor.get(f"/audit/verification/{run.pk}/status").json()
    assert status["status"] == "ok" and status["done"] == status["total"] == status["entries"] > 0
    assert 'id="report-ok"' in auditor.get(f"/audit/verification/{run.pk}/").content.decode()
    assert portal_services.verification_run(run=run.pk) is None  # claimed once


def test_the_chinese_interface_renders(market, client):
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    html = client.get("/auctions/").content.decode()
    assert 'lang="zh-Hans"' in html
    assert "竞价中" in html and "拍卖" in html
    html = client.get("/").content.decode()
    assert "海洋碳汇减排量" in html
    services_retire(market)
    number = Retirement.objects.get().certificate
    html = client.get(f"/registry/certificates/{number}/").content.decode()
    assert f"注销证书 {number}" in html and "自行验证" in html


def test_the_bid_form_and_the_sealed_record_say_everything_in_chinese(market, bidder):
    a = market.auction()
    html = bidder.get(f"/auctions/{a.pk}/").content.decode()
    # The form refuses a bid over the cap itself: it says so, not that lots would be trimmed.
    assert "it is refused here and not sent" in html and "would be trimmed" not in html
    bidder.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    html = bidder.get(f"/auctions/{a.pk}/").content.decode()
    assert "导出到其他设备" in html and "从其他设备导入" in html
    for block in ("i18n", "i18n-sealed"):  # the scripts' messages, as data-* attributes
        found = re.search(rf'<span id="{block}" hidden(.*?)></span>', html, re.S)
        assert found, block
        messages = re.findall(r'data-([\w-]+)="([^"]*)"', found.group(1))
        assert len(messages) > 20
        english = [name for name, text in messages if not re.search("[\u4e00-\u9fff]", text)]
        assert english == [], block


def test_the_audit_page_recomputes_an_auction_sealed_to_trustees_and_hides_bidders_before_the_close(
    market, auditor
):
    from auctions import services as auction_services
    from tests.auctions.test_trustees import Trustees, trustee_auction

    board = Trustees(3)
    a = trustee_auction(market, board, closes_in=1.2)
    b1, b2 = market.bidders[:2]
    market.bid(a, b1, [(6000, 60)])
    market.bid(a, b2, [(5000, 60)])
    html = auditor.get(f"/auctions/{a.pk}/audit/").content.decode()
    assert "sealed until the close" in html
    assert b1.name not in html.split("Commitments", 1)[1]
    from tests.auctions.conftest import wait_for_close

    wait_for_close(a)
    assert auction_services.auction_close(auction=a.pk)
    board.release(a, board.orgs[1])
    board.release(a, board.orgs[2])
    auction_services.auction_bids_open(auction=a.pk, first=0, last=2**62)
    assert auction_services.auction_clear(auction=a.pk)
    html = auditor.get(f"/auctions/{a.pk}/audit/").content.decode()
    assert 'id="recompute-ok"' in html
    # After the reveal the bidder is named, and an auditor sees its id beside the name.
    assert f'{b1.name} <small class="ledger-id">#{b1.pk}</small>' in html


def test_each_auction_card_says_who_can_read_its_bids(market, client):
    """The list says, before anyone opens an auction, who can read its bids: k of n trustees,
    or the operator's own key (operators can read them before the close)."""
    from tests.auctions.test_trustees import Trustees, trustee_auction

    operator_held = market.auction(closes_in=3600, title="Operator-held lot")
    trustees = trustee_auction(market, Trustees(3), closes_in=3600, title="Trustee lot")
    html = client.get("/auctions/").content.decode()
    cards = {
        title: card
        for card in re.findall(r'<article class="card">.*?</article>', html, re.S)
        for title in [re.search(r"<h4><a [^>]*>([^<]*)</a>", card)[1]]
    }
    assert "Sealed: 2 of 3 trustees" in cards[trustees.title]
    assert "Sealed: operator-held key" in cards[operator_held.title]
    assert "trustees" not in cards[operator_held.title]
    zh = client.get("/auctions/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "密封\uff1a3 位受托人中任意 2 位" in zh and "密封\uff1a运营方持有密钥" in zh
