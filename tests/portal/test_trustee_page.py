"""Issue 13, part 1: a trustee releases its auction key in the portal after the close. Only a
trustee's members see the page, and only their organization's auctions; there is no form
before the close; a wrong key is refused with nothing on the ledger; the right one is the
``auction.key_release`` entry, and the k-th moves the auction on as the API's release does. The
key is never logged, echoed back or cached."""

from __future__ import annotations

import base64
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from bluecarbon_audit.auctions import trustee_keys
from bluecarbon_audit.cli import main as audit_main
from bluecarbon_audit.trustee import State as TrusteeState
from bluecarbon_audit.trustee import TrusteeDir
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from auctions import jobs, services, trustees
from auctions.models import Auction, TrusteeKey
from ledger.models import LedgerEntry, Role
from tests import factories
from tests.auctions.conftest import Market, verify_ledger, wait_for_close  # noqa: F401
from tests.auctions.test_trustees import Trustees, bid_all, open_and_clear, trustee_auction
from tests.portal.test_pages import user_for

State = Auction.State


@pytest.fixture
def market(db: None) -> Market:
    return Market()


@pytest.fixture
def board(db: None) -> Trustees:
    return Trustees(3)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _releases(a: Auction) -> int:
    return LedgerEntry.objects.filter(type="auction.key_release").count()


def _closed(market: Market, board: Trustees, **rules: Any) -> Auction:
    a = trustee_auction(market, board, **rules)
    bid_all(market, a)
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    a.refresh_from_db()
    assert a.state == State.CLOSING
    return a


def test_only_members_of_a_trustee_see_the_page_and_only_their_auctions(market, board):
    a = trustee_auction(market, board, closes_in=30)
    other_board = Trustees(2)
    b = trustee_auction(market, other_board, k=1, closes_in=30)
    page = user_for(board.orgs[0], "trustee1")
    r = page.get("/account/trustee/")
    assert r.status_code == 200
    html = r.content.decode()
    assert f'data-auction="{a.pk}"' in html and f'data-auction="{b.pk}"' not in html
    row = _text(re.search(rf'<tr data-auction="{a.pk}">.*?</tr>', html, re.S).group(0))  # type: ignore[union-attr]
    assert "Open" in row and "registered, position 1" in row and "0 of 2" in row
    assert a.release_by.strftime("%Y-%m-%d %H:%M") in row
    # One unused key is left of the two each registered (the auction took one).
    assert "1 unused key is registered" in _text(html)
    # Another trustee's auction is a 404, as if it did not exist.
    assert page.get(f"/account/trustee/auctions/{b.pk}/").status_code == 404
    # A bidder, an auditor, and no one signed in do not get the page.
    assert user_for(market.bidders[0], "bidder").get("/account/trustee/").status_code == 403
    auditor = user_for(factories.organization(Role.AUDITOR), "auditor")
    assert auditor.get(f"/account/trustee/auctions/{a.pk}/").status_code == 403
    assert Client().get("/account/trustee/").status_code == 302
    # The dashboard links the page for a trustee's members, and only for them.
    assert 'id="trustee-link"' in page.get("/account/").content.decode()
    assert 'id="trustee-link"' not in auditor.get("/account/").content.decode()


def test_before_the_close_there_is_no_form_and_the_service_refuses_a_key_anyway(market, board):
    a = trustee_auction(market, board, closes_in=30)
    page = user_for(board.orgs[0], "trustee1")
    html = page.get(f"/account/trustee/auctions/{a.pk}/").content.decode()
    assert 'id="release-waiting"' in html
    assert 'name="private_key"' not in html and 'enctype="multipart/form-data"' not in html
    # A key posted anyway (a crafted request) is refused by the service: nothing released.
    right = _b64(board.private(a, board.orgs[0]))
    r = page.post(f"/account/trustee/auctions/{a.pk}/", {"private_key": right})
    assert r.status_code == 409
    assert "has not closed" in r.content.decode()
    assert _releases(a) == 0 and TrusteeKey.objects.get(auction=a, position=1).private_key is None


def test_a_wrong_key_is_refused_with_nothing_on_the_ledger(market, board, caplog):
    caplog.set_level(logging.DEBUG)
    a = _closed(market, board)
    page = user_for(board.orgs[0], "trustee1")
    form = page.get(f"/account/trustee/auctions/{a.pk}/")
    assert "no-store" in form["Cache-Control"]
    html = form.content.decode()
    assert 'name="private_key"' in html and 'autocomplete="off"' in html
    assert "csrfmiddlewaretoken" in html
    size = LedgerEntry.objects.count()
    # Another of this trustee's keys: a real key, but not the one of this auction.
    wrong = _b64(trustee_key(board, board.orgs[0], 1))
    r = page.post(f"/account/trustee/auctions/{a.pk}/", {"private_key": wrong})
    assert r.status_code == 422 and "no-store" in r["Cache-Control"]
    body = r.content.decode()
    assert "not the private key of the public key registered" in body
    assert wrong not in body and wrong not in caplog.text
    assert LedgerEntry.objects.count() == size
    # Not base64, both a key and a file, neither: refused on the form, nothing written.
    r = page.post(f"/account/trustee/auctions/{a.pk}/", {"private_key": "not a key"})
    assert r.status_code == 400 and "not a trustee private key" in r.content.decode()
    long = wrong * 7
    r = page.post(f"/account/trustee/auctions/{a.pk}/", {"private_key": long})
    assert r.status_code == 400 and 'id="release-error"' in r.content.decode()
    assert wrong not in r.content.decode()
    r = page.post(f"/account/trustee/auctions/{a.pk}/", {"private_key": ""})
    assert r.status_code == 400 and "Paste your private key" in r.content.decode()
    r = page.post(
        f"/account/trustee/auctions/{a.pk}/",
        {"private_key": wrong, "key_file": SimpleUploadedFile("k.txt", wrong.encode())},
    )
    assert r.status_code == 400 and "not both" in r.content.decode()
    r = page.post(
        f"/account/trustee/auctions/{a.pk}/",
        {"key_file": SimpleUploadedFile("k.bin", b"\xff" * 2000)},
    )
    assert r.status_code == 400 and "does not hold a trustee private key" in r.content.decode()
    assert LedgerEntry.objects.count() == size
    # In Chinese.
    page.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    r = page.post(f"/account/trustee/auctions/{a.pk}/", {"private_key": wrong})
    assert r.status_code == 422 and "未释放任何密钥" in r.content.decode()


def trustee_key(board: Trustees, org: Any, index: int) -> bytes:
    return trustee_keys.private_key(board.seeds[org.pk], index)


def test_the_kth_release_in_the_portal_moves_the_auction_on_and_the_entry_is_shown(
    market,
    board,
    monkeypatch,
    django_capture_on_commit_callbacks,
    caplog,
    verify_ledger,  # noqa: F811
):
    sent: list[tuple[str, tuple[object, ...]]] = []
    monkeypatch.setattr(jobs, "send", lambda name, *args, eta=None: sent.append((name, args)))
    caplog.set_level(logging.DEBUG)
    a = _closed(market, board)
    first, second, _ = board.orgs
    keys = {org.pk: _b64(board.private(a, org)) for org in board.orgs}
    # The first trustee pastes its key.
    page = user_for(first, "trustee1")
    with django_capture_on_commit_callbacks(execute=True):
        r = page.post(f"/account/trustee/auctions/{a.pk}/", {"private_key": keys[first.pk]})
    assert r.status_code == 302 and r["Location"] == f"/account/trustee/auctions/{a.pk}/"
    assert "no-store" in r["Cache-Control"]
    assert sent == []  # 1 of 2: nothing moves yet
    entry = LedgerEntry.objects.filter(type="auction.key_release").get()
    assert TrusteeKey.objects.get(auction=a, organization=first).released_seq == entry.seq
    shown = page.get(r["Location"])
    assert "no-store" in shown["Cache-Control"]
    html = shown.content.decode()
    assert 'id="release-entry"' in html and f">{entry.seq}</a>" in html
    assert "auction.key_release" in html and "1 of the 2 needed" in _text(html)
    assert 'name="private_key"' not in html  # released: no form again
    # The second uploads the file that holds its key (a line of base64 and a newline).
    page2 = user_for(second, "trustee2")
    upload = SimpleUploadedFile("auction-key.txt", keys[second.pk].encode() + b"\n")
    with django_capture_on_commit_callbacks(execute=True):
        r = page2.post(f"/account/trustee/auctions/{a.pk}/", {"key_file": upload})
    assert r.status_code == 302
    assert sent == [(jobs.ADVANCE, (a.pk,))]  # the k-th release: the opening is kicked, once
    assert trustees.released_count(a) == 2
    # The workers' steps, as the API's release leads to them.
    a = open_and_clear(a)
    assert a.state == State.CLEARED
    assert services.auction_settle(auction=a.pk)
    verify_ledger()
    # Never in a log, a response, or the session.
    for key in (keys[first.pk], keys[second.pk]):
        assert key not in caplog.text
        assert key not in html
        for client in (page, page2):
            assert key not in str(dict(client.session))
    assert "Released" in page.get("/account/trustee/").content.decode()


def test_a_bidder_or_another_trustee_cannot_release_for_a_trustee(market, board):
    a = _closed(market, board)
    owner = board.orgs[0]
    key = _b64(board.private(a, owner))
    outsider = Trustees(1)  # a trustee of other auctions only
    size = LedgerEntry.objects.count()
    url = f"/account/trustee/auctions/{a.pk}/"
    # A bidder of the auction, with the trustee's real key: not a trustee.
    assert user_for(market.bidders[0], "bidder").post(url, {"private_key": key}).status_code == 403
    # A trustee of this auction posting another trustee's key: it is not its own key.
    r = user_for(board.orgs[1], "trustee2").post(url, {"private_key": key})
    assert r.status_code == 422
    # A trustee of other auctions only: not found.
    r = user_for(outsider.orgs[0], "outsider").post(url, {"private_key": key})
    assert r.status_code == 404
    assert LedgerEntry.objects.count() == size
    assert trustees.released_count(a) == 0
    # Without the CSRF token, the trustee itself is refused.
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = user_for(owner, "trustee1").cookies
    assert strict.post(url, {"private_key": key}).status_code == 403
    assert trustees.released_count(a) == 0


def test_the_file_the_trustee_program_writes_is_what_the_form_takes(market, board, tmp_path):
    """``bluecarbon-audit trustee key DIR --public-key … --out FILE`` on the trustee's machine,
    then that file uploaded here: one format on both sides."""
    a = _closed(market, board)
    org = board.orgs[2]
    directory = Path(tmp_path / "trustee")
    directory.mkdir(mode=0o700)
    fd = os.open(directory / "seed", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(board.seeds[org.pk].hex() + "\n")
    TrusteeDir(directory).save(TrusteeState())
    page = user_for(org, "trustee3")
    html = page.get(f"/account/trustee/auctions/{a.pk}/").content.decode()
    public = re.search(r'<code id="public-key">([^<]+)</code>', html).group(1)  # type: ignore[union-attr]
    key_file = tmp_path / "auction-key.txt"
    args = ["trustee", "key", str(directory), "--public-key", public, "--out", str(key_file)]
    assert audit_main(args) == 0
    with key_file.open("rb") as fh:
        r = page.post(f"/account/trustee/auctions/{a.pk}/", {"key_file": fh})
    assert r.status_code == 302
    assert TrusteeKey.objects.get(auction=a, organization=org).released_seq is not None
