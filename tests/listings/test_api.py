"""/api/v1/listings and /api/v1/purchases: decimal strings at the edge, stable error codes,
one take per Idempotency-Key, and what each side may see."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from ledger.models import ApiKey, LedgerEntry, Role
from listings.models import Listing, Purchase
from tests import factories
from tests.api.conftest import client_for  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()  # the anonymous throttle's bucket outlives a test's transaction


def body(board, **over):
    closes = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    fields = {
        "account": board.seller_account.pk,
        "batch": board.batch.pk,
        "quantity": "2000",
        "lot_size": "100",
        "currency": "CNY",
        "price": "106.00",
        "closes_at": closes.isoformat(),
        "max_lots_per_buyer": 10,
    }
    fields.update(over)
    return fields


@pytest.fixture
def seller(board, client_for):  # noqa: F811
    return client_for(board.seller, "auction", "read")


def listed(seller, board, **over) -> dict:
    r = seller.post("/api/v1/listings", body(board, **over), format="json")
    assert r.status_code == 201, r.content
    return r.json()


def test_a_listing_is_made_with_decimal_strings_and_read_by_anyone(board, seller):
    x = listed(seller, board)
    assert x["quantity"] == "2000.000" and x["lot_size"] == "100.000"
    assert (x["lots"], x["remaining_lots"], x["state"]) == (20, 20, "open")
    assert (x["price"], x["lot_price"], x["currency"]) == ("106.00", "10600.00", "CNY")
    assert x["seconds_to_close"] > 3500
    anonymous = APIClient()
    assert anonymous.get(f"/api/v1/listings/{x['id']}").json() == {
        **x,
        "seconds_to_close": anonymous.get(f"/api/v1/listings/{x['id']}").json()["seconds_to_close"],
    }
    page = anonymous.get("/api/v1/listings", {"state": "open"}).json()
    assert [row["id"] for row in page["results"]] == [x["id"]] and page["next_after"] is None


@pytest.mark.parametrize(
    ("over", "status", "code", "field"),
    [
        ({"price": "106.001"}, 400, "invalid", "price"),
        ({"quantity": "2000.0001"}, 400, "invalid", "quantity"),
        ({"quantity": "250", "lot_size": "100"}, 400, "listing_invalid_terms", "lot_size"),
        ({"currency": "JPY", "price": "10.5"}, 400, "invalid", "price"),
        ({"max_lots_per_buyer": 0}, 400, "invalid", "max_lots_per_buyer"),
        ({"quantity": "20000"}, 409, "insufficient_balance", None),
        ({"closes_at": "2020-01-01T00:00:00Z"}, 400, "listing_invalid_time", "closes_at"),
        ({"price": 106}, 400, "invalid", "price"),
    ],
)
def test_bad_listings_are_refused_with_a_stable_code_and_nothing_written(
    board, seller, over, status, code, field
):
    before = LedgerEntry.objects.count()
    r = seller.post("/api/v1/listings", body(board, **over), format="json")
    assert r.status_code == status, r.content
    assert r.json()["code"] == code
    if field:
        assert field in r.json()["detail"], r.json()
    assert LedgerEntry.objects.count() == before
    assert not Listing.objects.exists()


def test_a_take_is_applied_once_per_idempotency_key(board, seller, client_for):  # noqa: F811
    x = listed(seller, board)
    buyer = client_for(board.buyers[0], "bid", "read")
    key = str(uuid.uuid4())
    url = f"/api/v1/listings/{x['id']}/take"
    first = buyer.post(url, {"lots": 3}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    again = buyer.post(url, {"lots": 3}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == again.status_code == 201, first.content
    assert first.json() == again.json()
    p = first.json()
    assert (p["lots"], p["quantity"], p["amount_due"], p["state"]) == (
        3,
        "300.000",
        "31800.00",
        "pending",
    )
    assert Purchase.objects.count() == 1
    assert Listing.objects.get(pk=x["id"]).remaining_lots == 17


def test_takes_are_refused_with_their_codes(board, seller, client_for):  # noqa: F811
    x = listed(seller, board, quantity="300")
    url = f"/api/v1/listings/{x['id']}/take"
    buyer = client_for(board.buyers[0], "bid")
    r = buyer.post(url, {"lots": 4}, format="json")
    assert (r.status_code, r.json()["code"]) == (409, "listing_insufficient_lots")
    assert r.json()["detail"]["remaining_lots"] == 3
    r = buyer.post(url, {"lots": 4, "up_to": True}, format="json")
    assert (r.status_code, r.json()["lots"]) == (201, 3)
    r = client_for(board.buyers[1], "bid").post(url, {"lots": 1}, format="json")
    assert (r.status_code, r.json()["code"]) == (409, "listing_insufficient_lots")
    r = client_for(board.seller, "bid").post(url, {"lots": 1}, format="json")
    assert (r.status_code, r.json()["code"]) == (422, "own_listing")
    r = buyer.post(url, {"lots": "1"}, format="json")
    assert (r.status_code, r.json()["code"]) == (400, "invalid")
    r = buyer.post("/api/v1/listings/999999/take", {"lots": 1}, format="json")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")


def test_the_seller_withdraws_and_others_cannot(board, seller, client_for):  # noqa: F811
    x = listed(seller, board)
    url = f"/api/v1/listings/{x['id']}/withdraw"
    r = client_for(board.buyers[0], "auction").post(url, {}, format="json")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = seller.post(url, {"reason": "sold elsewhere"}, format="json")
    assert (r.status_code, r.json()["state"], r.json()["remaining_lots"]) == (200, "withdrawn", 0)
    r = seller.post(url, {}, format="json")
    assert (r.status_code, r.json()["code"]) == (409, "listing_wrong_state")


def test_the_operator_confirms_and_defaults_and_each_side_sees_its_purchases(
    board,
    seller,
    client_for,  # noqa: F811
):
    x = listed(seller, board)
    url = f"/api/v1/listings/{x['id']}/take"
    one, two = (client_for(b, "bid", "read") for b in board.buyers[:2])
    p1 = one.post(url, {"lots": 2}, format="json").json()
    p2 = two.post(url, {"lots": 5}, format="json").json()
    operator = client_for(factories.organization(Role.OPERATOR), "onboard", "read")
    r = client_for(board.buyers[0], *ApiKey.Scope.values).post(
        f"/api/v1/purchases/{p1['id']}/confirm", {}, format="json"
    )
    assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
    r = operator.post(f"/api/v1/purchases/{p1['id']}/confirm", {}, format="json")
    assert (r.status_code, r.json()["state"]) == (200, "delivered")
    r = operator.post(f"/api/v1/purchases/{p2['id']}/default", {"reason": "late"}, format="json")
    assert (r.status_code, r.json()["state"]) == (200, "defaulted")
    r = operator.post(f"/api/v1/purchases/{p2['id']}/default", {}, format="json")
    assert (r.status_code, r.json()["code"]) == (409, "purchase_resolved")
    assert Listing.objects.get(pk=x["id"]).remaining_lots == 18
    mine = one.get("/api/v1/purchases").json()["results"]
    assert [p["id"] for p in mine] == [p1["id"]]
    assert one.get(f"/api/v1/purchases/{p2['id']}").status_code == 404
    sellers = client_for(board.seller, "read").get("/api/v1/purchases").json()["results"]
    assert [p["id"] for p in sellers] == [p1["id"], p2["id"]]
    assert [
        p["id"] for p in operator.get("/api/v1/purchases?state=defaulted").json()["results"]
    ] == [p2["id"]]
