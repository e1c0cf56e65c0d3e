"""The listing pages through Django's test client: the public board, a listing's page with a
take form for a signed-in buyer and a withdraw button for the seller, the buyer's purchases;
the CSP and no inline script; Chinese."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ledger.models import LedgerEntry, Membership
from listings.models import Listing, Purchase

PASSWORD = "a-long-test-password"
pytestmark = pytest.mark.django_db


def user_for(org, name: str) -> Client:
    user = get_user_model().objects.create_user(name, f"{name}@example.org", PASSWORD)
    Membership.objects.create(user=user, organization=org)
    client = Client()
    client.force_login(user)
    return client


def no_inline_script(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert " style=" not in html and "<style" not in html
    assert not re.search(r"\son[a-z]+=", html)


def test_the_board_and_a_listing_are_public_with_a_csp(board, client):
    x = board.listing()
    r = client.get("/listings/")
    assert r.status_code == 200 and "Content-Security-Policy" in r
    html = r.content.decode()
    no_inline_script(html)
    assert f"/listings/{x.pk}/" in html and "106.00 CNY/t" in html
    r = client.get(f"/listings/{x.pk}/")
    html = r.content.decode()
    assert r.status_code == 200
    no_inline_script(html)
    assert "Sign in to take lots." in html and 'name="lots"' not in html
    assert client.get("/listings/999999/").status_code == 404


def test_a_buyer_takes_lots_through_the_form_and_sees_its_purchase(board):
    x = board.listing()
    buyer = user_for(board.buyers[0], "buyer")
    html = buyer.get(f"/listings/{x.pk}/").content.decode()
    assert 'name="lots"' in html and 'name="up_to"' in html
    account = board.accounts[board.buyers[0].pk].pk
    r = buyer.post(f"/listings/{x.pk}/take", {"lots": "3", "account": str(account)})
    assert r.status_code == 302 and r["Location"] == "/account/purchases/"
    p = Purchase.objects.get()
    assert (p.lots, p.buyer_id, p.account_id) == (3, board.buyers[0].pk, account)
    html = buyer.get("/account/purchases/").content.decode()
    assert "31,800.00 CNY" in html and "Awaiting payment" in html
    assert f'href="/listings/{x.pk}/"' in html


def test_a_refused_take_says_why_on_the_field_and_changes_nothing(board):
    x = board.listing(lots=2)
    buyer = user_for(board.buyers[0], "buyer")
    before = LedgerEntry.objects.count()
    account = str(board.accounts[board.buyers[0].pk].pk)
    r = buyer.post(f"/listings/{x.pk}/take", {"lots": "3", "account": account})
    assert r.status_code == 400
    assert "2 lots remain, 3 asked" in r.content.decode()
    r = buyer.post(f"/listings/{x.pk}/take", {"lots": "x", "account": account})
    assert r.status_code == 400
    assert LedgerEntry.objects.count() == before and not Purchase.objects.exists()


def test_the_seller_withdraws_and_a_buyer_cannot(board):
    x = board.listing()
    seller = user_for(board.seller, "seller")
    buyer = user_for(board.buyers[0], "buyer")
    html = seller.get(f"/listings/{x.pk}/").content.decode()
    assert "Withdraw the unsold lots" in html and 'name="lots"' not in html
    assert "Withdraw the unsold lots" not in buyer.get(f"/listings/{x.pk}/").content.decode()
    buyer.post(f"/listings/{x.pk}/withdraw")
    assert Listing.objects.get(pk=x.pk).state == "open"
    r = seller.post(f"/listings/{x.pk}/withdraw")
    assert r.status_code == 302
    assert Listing.objects.get(pk=x.pk).state == "withdrawn"
    assert seller.get(f"/listings/{x.pk}/withdraw").status_code == 405


def test_the_listing_pages_say_everything_in_chinese(board):
    x = board.listing()
    buyer = user_for(board.buyers[0], "buyer")
    buyer.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    for path in ("/listings/", f"/listings/{x.pk}/", "/account/purchases/"):
        html = buyer.get(path).content.decode()
        assert 'lang="zh-Hans"' in html
        assert "挂牌" in html, path
        main = html.split('<main id="main"', 1)[1].split("</main>", 1)[0]
        text = re.sub(r"<[^>]+>", " ", main)
        for english in ("Take lots", "Listed now", "Remaining", "My purchases", "Per buyer"):
            assert english not in text, (path, english)
