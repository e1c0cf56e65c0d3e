"""The operator's desk: approving bidders, recording deposits, confirming payments and
declaring defaults through the admin, each by its service (one ledger entry, and the ledger
verifies); the sealed private key appears on no admin page."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model

from auctions import keys
from auctions.models import Auction, Award, Bidder, Deposit
from ledger.models import LedgerEntry, Role
from tests import factories, two_factor
from tests.auctions.conftest import TONNE, run_to_settlement


@pytest.fixture
def desk(client, db):
    user = get_user_model().objects.create_superuser("operator", "op@example.org", "pw-123456")
    return two_factor.force_login(client, user)  # the admin asks for a verified session


def _action(desk, model: str, action: str, ids: list[int]):
    return desk.post(
        f"/admin/auctions/{model}/",
        {"action": action, "index": 0, "_selected_action": [str(i) for i in ids]},
        follow=True,
    )


def test_an_operator_approves_a_bidder_with_the_add_form(desk, market, verify_ledger):
    org = factories.organization(Role.BIDDER)
    before = LedgerEntry.objects.count()
    r = desk.post("/admin/auctions/bidder/add/", {"organization": org.pk}, follow=True)
    assert r.status_code == 200
    assert Bidder.objects.get(organization=org).status == "approved"
    assert LedgerEntry.objects.count() == before + 1
    _action(desk, "bidder", "suspend_bidders", [Bidder.objects.get(organization=org).pk])
    assert Bidder.objects.get(organization=org).status == "suspended"
    verify_ledger()


def test_a_deposit_is_recorded_in_the_auctions_currency_or_refused(desk, market, verify_ledger):
    a = market.auction()
    b1 = market.bidders[0]
    r = desk.post(
        "/admin/auctions/deposit/add/",
        {"auction": a.pk, "bidder": b1.pk, "amount_text": "30000.00"},
        follow=True,
    )
    assert r.status_code == 200
    assert Deposit.objects.get(auction=a, bidder=b1).amount == 3_000_000
    before = LedgerEntry.objects.count()
    r = desk.post(
        "/admin/auctions/deposit/add/",
        {"auction": a.pk, "bidder": b1.pk, "amount_text": "1.005"},  # finer than a fen
    )
    assert r.status_code == 200 and b"at most 2 decimal places" in r.content
    assert LedgerEntry.objects.count() == before
    verify_ledger()


def test_payments_are_confirmed_and_defaults_declared_by_action(desk, market, verify_ledger):
    a = market.auction(closes_in=1, quantity=20 * TONNE)
    b1, b2, _ = market.bidders
    market.bid(a, b1, [(5000, 10)])
    market.bid(a, b2, [(4000, 10)])
    run_to_settlement(a)
    w1, w2 = Award.objects.filter(auction=a).order_by("bidder_id")
    _action(desk, "award", "confirm_payment", [w1.pk])
    _action(desk, "award", "declare_default", [w2.pk])
    r = _action(desk, "award", "confirm_payment", [w2.pk])  # already resolved: refused, shown
    assert b"ward_resolved: award" in r.content and b"already defaulted" in r.content
    assert dict(Award.objects.filter(auction=a).values_list("pk", "state")) == {
        w1.pk: "delivered",
        w2.pk: "defaulted",
    }
    verify_ledger()


def test_no_admin_page_shows_the_sealed_private_key(desk, market):
    a = market.auction(closes_in=1)
    market.bid(a, market.bidders[0], [(5000, 1)])
    sealed = bytes(Auction.objects.get(pk=a.pk).private_key_sealed)
    private = keys.open_private_key(a.pk, sealed)
    secrets = [base64.b64encode(x) for x in (sealed, private)] + [sealed.hex().encode()]
    pages = ["/admin/auctions/auction/", f"/admin/auctions/auction/{a.pk}/change/"]
    for page in pages:
        body = desk.get(page).content
        assert all(s not in body for s in secrets), page
        assert b"not published" in body or page.endswith("auction/")
    run_to_settlement(a)
    body = desk.get(f"/admin/auctions/auction/{a.pk}/change/").content
    assert base64.b64encode(private) in body  # published with the result: shown now
    assert base64.b64encode(sealed) not in body


def test_an_open_auction_is_cancelled_by_the_operator(desk, market, verify_ledger):
    a = market.auction()
    _action(desk, "auction", "cancel_auctions", [a.pk])
    a.refresh_from_db()
    assert a.state == "cancelled"
    assert a.hold.remaining == 0
    verify_ledger()


def test_an_operator_approves_applications_by_action(desk, market, verify_ledger):
    from auctions import onboarding
    from auctions.models import Application

    a = market.auction()
    b1, b2, _ = market.bidders
    for b in (b1, b2):
        onboarding.application_submit(actor=market.actor(b), auction=a.pk)
    first = Application.objects.get(bidder=b1)
    _action(desk, "application", "approve_applications", [first.pk])
    r = _action(desk, "application", "approve_applications", [first.pk])  # again: refused
    assert b"pplication_wrong_state: the application is approved" in r.content
    assert dict(Application.objects.values_list("bidder_id", "state")) == {
        b1.pk: "approved",
        b2.pk: "pending",
    }
    assert desk.get(f"/admin/auctions/application/{first.pk}/change/").status_code == 200
    verify_ledger()
