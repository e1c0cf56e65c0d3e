"""Issue 13, part 3: onboarding by API, as an exchange integrates. Its operator key with the
``onboard`` scope registers a bidder, approves or refuses applications and records, releases
and forfeits deposits; the bidder applies and withdraws with ``bid``. Every POST is idempotent
under an Idempotency-Key, every refusal a stable code that changes nothing."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from auctions.models import Application, Deposit
from ledger.models import LedgerEntry, Organization, Role
from tests import factories
from tests.auctions.conftest import Market, run_to_settlement


@pytest.fixture
def market(db) -> Market:
    return Market()


@pytest.fixture
def exchange(db) -> Organization:
    """An exchange that runs the auction house's onboarding: an operator organization."""
    return factories.organization(Role.OPERATOR)


def _bid(m: Market, a, org) -> int:
    return m.bid(a, org, [(5000, 1)]).bid_id


def test_an_exchange_onboards_a_bidder_end_to_end(market, exchange, client_for):
    m = market
    a = m.auction(deposit_required=3_000_000)
    onboard = client_for(exchange, "onboard", "read")
    r = onboard.post(
        "/api/v1/organizations",
        {"handle": "zhoushan-fisheries", "name": "Zhoushan Fisheries", "roles": ["bidder"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="org-zhoushan",
    )
    assert r.status_code == 201, r.json()
    org = r.json()
    assert org["roles"] == ["bidder"] and [x["kind"] for x in org["accounts"]] == ["holding"]
    bidder_org = Organization.objects.get(pk=org["id"])
    bidder = client_for(bidder_org, "bid", "read")

    base = f"/api/v1/auctions/{a.pk}"
    r = bidder.post(f"{base}/applications", {}, format="json")
    assert r.status_code == 201, r.json()
    assert (r.json()["bidder"], r.json()["state"]) == (org["id"], "pending")
    pending = onboard.get(f"{base}/applications?state=pending").json()
    assert [x["bidder"] for x in pending["results"]] == [org["id"]]
    assert pending["next_after"] is None

    r = onboard.post(
        f"{base}/applications/{org['id']}/approve", format="json", HTTP_IDEMPOTENCY_KEY="ap-1"
    )
    assert r.status_code == 200 and r.json()["state"] == "approved"
    r = onboard.post(
        f"{base}/deposits",
        {"bidder": org["id"], "amount": "30000.00"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="dep-1",
    )
    assert r.status_code == 200, r.json()
    assert (r.json()["amount"], r.json()["state"]) == ("30000.00", "held")
    # The bidder sees where it stands, and only its own.
    mine = bidder.get(f"{base}/applications").json()["results"]
    assert [(x["bidder"], x["state"]) for x in mine] == [(org["id"], "approved")]
    deposits = bidder.get(f"{base}/deposits").json()["results"]
    assert [(x["bidder"], x["amount"]) for x in deposits] == [(org["id"], "30000.00")]
    m.accounts[bidder_org.pk] = bidder_org.accounts.get()
    _bid(m, a, bidder_org)
    a = run_to_settlement(a)
    assert a.result["bidders"][0]["bidder"] == org["id"]


def test_an_onboarding_retry_with_its_idempotency_key_applies_once(market, exchange, client_for):
    m = market
    a = m.auction()
    b = m.bidders[0]
    onboard = client_for(exchange, "onboard")
    bidder = client_for(b, "bid")
    base = f"/api/v1/auctions/{a.pk}"
    calls = [
        (bidder, f"{base}/applications", {}),
        (onboard, f"{base}/applications/{b.pk}/refuse", {"reason": "missing KYC"}),
        (onboard, f"{base}/deposits", {"bidder": b.pk, "amount": "100.00"}),
        (onboard, f"{base}/deposits/{b.pk}/release", {"reason": "refused"}),
        (onboard, "/api/v1/organizations", {"handle": "t-1", "name": "T", "roles": ["trustee"]}),
    ]
    for n, (client, url, body) in enumerate(calls):
        first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{n}")
        assert first.status_code in (200, 201), (url, first.json())
        entries = LedgerEntry.objects.count()
        again = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{n}")
        assert (again.status_code, again.json()) == (first.status_code, first.json())
        assert again["Idempotent-Replayed"] == "true"
        assert LedgerEntry.objects.count() == entries, url
    assert Deposit.objects.get(auction=a, bidder=b).state == Deposit.State.RELEASED


def test_onboarding_needs_the_onboard_scope_and_an_operator(market, exchange, client_for):
    m = market
    a = m.auction()
    b = m.bidders[0]
    base = f"/api/v1/auctions/{a.pk}"
    client_for(b, "bid").post(f"{base}/applications", {}, format="json")
    before = LedgerEntry.objects.count()
    approve = f"{base}/applications/{b.pk}/approve"
    # An operator's key without the scope: 403 before anything runs.
    r = client_for(exchange, "read", "bid", "auction", "transfer").post(approve, format="json")
    assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
    # The scope without an operator organization: the service refuses.
    r = client_for(b, "onboard").post(approve, format="json")
    assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
    r = client_for(b, "onboard").post(
        f"{base}/deposits", {"bidder": b.pk, "amount": "1.00"}, format="json"
    )
    assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
    # Applying is a bidder's: the bid scope.
    r = client_for(m.bidders[1], "read", "onboard").post(f"{base}/applications", {}, format="json")
    assert r.status_code == 403
    assert LedgerEntry.objects.count() == before
    assert Application.objects.get().state == Application.State.PENDING


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"handle": "Upper", "name": "U", "roles": ["bidder"]}, "handle"),
        ({"handle": "ok", "name": "O", "roles": ["operator"]}, "roles"),
        ({"handle": "ok", "name": "O", "roles": []}, "roles"),
        ({"handle": "ok", "name": " ", "roles": ["trustee"]}, "name"),
    ],
)
def test_onboarding_an_organization_refuses_what_it_may_not_register(
    exchange, client_for, body, field
):
    before = LedgerEntry.objects.count()
    r = client_for(exchange, "onboard").post("/api/v1/organizations", body, format="json")
    assert (r.status_code, r.json()["code"]) == (400, "invalid")
    assert field in r.json()["detail"]
    assert LedgerEntry.objects.count() == before


def test_onboarding_refusals_are_stable_codes_through_the_api(market, exchange, client_for):
    m = market
    a = m.auction()
    b, c, _ = m.bidders
    onboard = client_for(exchange, "onboard")
    base = f"/api/v1/auctions/{a.pk}"
    client_for(b, "bid").post(f"{base}/applications", {}, format="json")
    m.deposit(a, b, 50_000)
    cases = [
        # (client, url, body, status, code)
        (onboard, f"{base}/applications/{c.pk}/approve", {}, 404, "not_found"),
        (onboard, f"{base}/applications/{b.pk}/refuse", {}, 400, "invalid"),
        (onboard, f"{base}/deposits", {"bidder": b.pk, "amount": "0.001"}, 400, "invalid"),
        (onboard, f"{base}/deposits", {"bidder": b.pk, "amount": "1"}, 200, None),
        (onboard, f"{base}/deposits/{c.pk}/release", {"reason": "x"}, 404, "not_found"),
        (
            onboard,
            "/api/v1/auctions/999999/deposits",
            {"bidder": b.pk, "amount": "1"},
            404,
            "not_found",
        ),
        (client_for(c, "bid"), f"{base}/applications/{b.pk}/withdraw", {}, 404, "not_found"),
        (client_for(b, "bid"), f"{base}/applications", {}, 409, "application_wrong_state"),
    ]
    for client, url, body, status, code in cases:
        before = LedgerEntry.objects.count()
        r = client.post(url, body, format="json")
        assert r.status_code == status, (url, r.json())
        if code is not None:
            assert r.json()["code"] == code, (url, r.json())
            assert LedgerEntry.objects.count() == before, url
    onboard.post(f"{base}/applications/{b.pk}/approve", format="json")
    _bid(m, a, b)
    before = LedgerEntry.objects.count()
    r = onboard.post(f"{base}/deposits/{b.pk}/forfeit", {"reason": "breach"}, format="json")
    assert (r.status_code, r.json()["code"]) == (409, "bids_standing")
    assert r.json()["detail"] == {"standing": 1}
    r = client_for(b, "bid").post(f"{base}/applications/{b.pk}/withdraw", format="json")
    assert (r.status_code, r.json()["code"]) == (409, "bids_standing")
    r = onboard.post(f"{base}/applications/{b.pk}/approve", format="json")
    assert (r.status_code, r.json()["code"]) == (409, "application_wrong_state")
    assert r.json()["detail"] == {"state": "approved"}
    assert LedgerEntry.objects.count() == before


def test_lists_are_pages_and_an_operator_sees_every_applicant(market, exchange, client_for):
    m = market
    a = m.auction()
    for b in m.bidders:
        client_for(b, "bid").post(f"/api/v1/auctions/{a.pk}/applications", {}, format="json")
        m.deposit(a, b, 10_000)
    onboard = client_for(exchange, "read")
    page = onboard.get(f"/api/v1/auctions/{a.pk}/applications?limit=2").json()
    assert len(page["results"]) == 2 and page["next_after"] is not None
    rest = onboard.get(
        f"/api/v1/auctions/{a.pk}/applications?limit=2&after={page['next_after']}"
    ).json()
    assert len(rest["results"]) == 1 and rest["next_after"] is None
    assert len(onboard.get(f"/api/v1/auctions/{a.pk}/deposits").json()["results"]) == 3
    r = onboard.get(f"/api/v1/auctions/{a.pk}/deposits?state=lost")
    assert r.status_code == 400 and "state" in r.json()["detail"]
    stranger = client_for(factories.organization(Role.BIDDER), "read")
    assert stranger.get(f"/api/v1/auctions/{a.pk}/applications").json()["results"] == []
    assert stranger.get(f"/api/v1/auctions/{a.pk}/deposits").json()["results"] == []
    assert APIClient().get(f"/api/v1/auctions/{a.pk}/deposits").status_code == 401


def test_the_guides_onboarding_requests_are_accepted_as_written(market, exchange, client_for):
    """docs/api.md's onboarding bodies, with only the ids replaced by this test's own."""
    from tests.api.test_log_guide import request_bodies

    bodies = request_bodies()
    m = market
    a = m.auction()
    onboard = client_for(exchange, "onboard", "read")
    r = onboard.post("/api/v1/organizations", bodies["organizations"][0], format="json")
    assert r.status_code == 201, r.json()
    org = Organization.objects.get(pk=r.json()["id"])
    r = client_for(org, "bid").post(
        f"/api/v1/auctions/{a.pk}/applications",
        bodies["auctions/3/applications"][0],
        format="json",
    )
    assert (r.status_code, r.json()["state"]) == (201, "pending")
    deposit = {**bodies["auctions/3/deposits"][0], "bidder": org.pk}
    r = onboard.post(f"/api/v1/auctions/{a.pk}/deposits", deposit, format="json")
    assert (r.status_code, r.json()["amount"]) == (200, "30000.00")


def test_an_exchange_suspends_and_reapproves_a_bidder_by_api(market, exchange, client_for):
    """The standing approval (``bidder.status``): suspended, a bidder bids nowhere, whatever its
    applications; approved again, it bids. Each change is one entry; a repeat is none."""
    from auctions.exceptions import PermissionDenied
    from auctions.models import Bidder

    m = market
    a = m.auction()
    org = m.bidders[0]
    onboard = client_for(exchange, "onboard", "read")
    url = f"/api/v1/organizations/{org.pk}/bidder"
    head = LedgerEntry.objects.count()
    r = onboard.post(f"{url}/suspend", format="json", HTTP_IDEMPOTENCY_KEY="sus-1")
    assert r.status_code == 200, r.json()
    assert (r.json()["organization"], r.json()["status"]) == (org.pk, "suspended")
    entry = LedgerEntry.objects.get(seq=r.json()["entry_seq"])
    assert entry.type == "bidder.status" and LedgerEntry.objects.count() == head + 1
    with pytest.raises(PermissionDenied) as refused:
        _bid(m, a, org)
    assert refused.value.code == "bidder_not_approved"
    # The same request again is the same answer; suspending again appends nothing.
    again = onboard.post(f"{url}/suspend", format="json", HTTP_IDEMPOTENCY_KEY="sus-1")
    assert again.json() == r.json()
    onboard.post(f"{url}/suspend", format="json", HTTP_IDEMPOTENCY_KEY="sus-2")
    assert LedgerEntry.objects.count() == head + 1
    r = onboard.post(f"{url}/approve", format="json", HTTP_IDEMPOTENCY_KEY="ap-1")
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert Bidder.objects.get(organization=org).status == "approved"
    _bid(m, a, org)


def test_bidder_status_by_api_is_the_operators_and_names_what_is_wrong(
    market, exchange, client_for
):
    m = market
    org = m.bidders[0]
    # The bidder itself, even with the onboard scope, is not an operator: 403, nothing written.
    own = client_for(org, "onboard", "read")
    head = LedgerEntry.objects.count()
    r = own.post(f"/api/v1/organizations/{org.pk}/bidder/approve", format="json")
    assert r.status_code == 403, r.json()
    onboard = client_for(exchange, "onboard", "read")
    r = onboard.post(f"/api/v1/organizations/{exchange.pk}/bidder/approve", format="json")
    assert (r.status_code, r.json()["code"]) == (422, "bidder_not_approved")
    assert "does not have the bidder role" in r.json()["message"]
    r = onboard.post("/api/v1/organizations/999999/bidder/suspend", format="json")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = onboard.post("/api/v1/organizations/x/bidder/suspend", format="json")
    assert r.status_code in (400, 404) and "code" in r.json()
    assert LedgerEntry.objects.count() == head
