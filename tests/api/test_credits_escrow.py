"""``/api/v1/escrow-holds``: putting credits on hold (what auctions do with a lot), reading
holds, releasing them; every refusal changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import services
from ledger.models import EscrowHold, Holding, LedgerEntry, Role
from tests import factories
from tests.factories import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def w(world: World) -> World:
    world.batch = world.issue(5_000_000)  # the developer holds 4,000 t
    return world


def hold_payload(w: World, **changes: Any) -> dict[str, Any]:
    return {
        "batch": w.batch.pk,
        "account": w.dev_account.pk,
        "quantity": "2340.1",
        "reference": "Xiangshan lot 1",
        **changes,
    }


def balances(w: World) -> tuple[int, int]:
    h = Holding.objects.get(account=w.dev_account, batch=w.batch)
    return h.tradable, h.escrowed


def a_hold(w: World, kg: int = 100_000) -> EscrowHold:
    return services.escrow_hold(
        actor=w.dev, batch=w.batch.pk, account=w.dev_account.pk, quantity=kg, reference="lot"
    )


def test_a_hold_moves_credits_from_tradable_to_escrowed_and_names_its_entry(w, client_for):
    r = client_for(w.developer, "transfer").post(
        "/api/v1/escrow-holds", hold_payload(w), format="json"
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    hold = EscrowHold.objects.get()
    assert body == {
        "id": hold.pk,
        "account": w.dev_account.pk,
        "batch": w.batch.pk,
        "quantity": "2340.100",
        "remaining": "2340.100",
        "reference": "Xiangshan lot 1",
        "entry_seq": LedgerEntry.objects.order_by("-seq").first().seq,
    }
    assert LedgerEntry.objects.get(seq=body["entry_seq"]).type == "escrow.hold"
    assert balances(w) == (4_000_000 - 2_340_100, 2_340_100)


HOLD_REFUSALS = [
    ("no reference", {"reference": ""}, 400, "invalid"),
    ("a too precise quantity", {"quantity": "0.0001"}, 400, "invalid"),
    ("an unknown batch", {"batch": 10**9}, 404, "not_found"),
    ("an unknown account", {"account": 10**9}, 404, "not_found"),
    ("more than is tradable", {"quantity": "4000.001"}, 409, "insufficient_balance"),
]


@pytest.mark.parametrize(
    ("what", "changes", "status", "code"), HOLD_REFUSALS, ids=[r[0] for r in HOLD_REFUSALS]
)
def test_a_refused_hold_changes_nothing(w, client_for, ledger_length, what, changes, status, code):
    before = ledger_length()
    r = client_for(w.developer, "transfer").post(
        "/api/v1/escrow-holds", hold_payload(w, **changes), format="json"
    )
    assert (r.status_code, r.json()["code"]) == (status, code), r.json()
    assert ledger_length() == before
    assert balances(w) == (4_000_000, 0)
    assert not EscrowHold.objects.exists()


def test_another_organizations_account_is_not_found_and_a_buffer_pool_is_never_held(
    w, client_for, ledger_length
):
    before = ledger_length()
    r = client_for(w.buyer).post("/api/v1/escrow-holds", hold_payload(w), format="json")
    assert (r.status_code, r.json()["detail"]) == (404, {"account": "not_found"})
    # The registry acts for everyone (it is an operator), but buffer credits stay put.
    r = client_for(w.registry).post(
        "/api/v1/escrow-holds", hold_payload(w, account=w.buffer.pk), format="json"
    )
    assert (r.status_code, r.json()["code"]) == (422, "buffer_account")
    assert ledger_length() == before


def test_holds_are_listed_and_read_only_by_their_organization(w, client_for):
    hold = a_hold(w)
    mine = client_for(w.developer).get("/api/v1/escrow-holds").json()
    assert [h["id"] for h in mine["results"]] == [hold.pk]
    assert mine["next_after"] is None
    one = client_for(w.developer).get(f"/api/v1/escrow-holds/{hold.pk}")
    assert one.status_code == 200
    assert one.json()["remaining"] == "100.000"

    stranger = client_for(w.buyer)
    assert stranger.get("/api/v1/escrow-holds").json()["results"] == []
    foreign = stranger.get(f"/api/v1/escrow-holds/{hold.pk}")
    missing = stranger.get("/api/v1/escrow-holds/999999")
    # A foreign hold reads exactly like a missing one.
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == {
        "code": "not_found",
        "message": f"escrow hold {hold.pk} not found",
        "detail": {},
    }
    assert missing.json()["message"] == "escrow hold 999999 not found"


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "1.5", str(2**63), "٣"])
def test_an_id_that_cannot_be_one_is_a_json_404(w, client_for, raw):
    r = client_for(w.developer).get(f"/api/v1/escrow-holds/{raw}")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


def test_the_hold_list_filters_and_pages(w, client_for):
    second = w.issue(1_000_000, year=2022)
    holds = [a_hold(w, 1_000 * n) for n in range(1, 4)]
    other = services.escrow_hold(
        actor=w.dev, batch=second.pk, account=w.dev_account.pk, quantity=1, reference="x"
    )
    client = client_for(w.developer)
    page = client.get("/api/v1/escrow-holds?limit=2").json()
    assert [h["id"] for h in page["results"]] == [holds[0].pk, holds[1].pk]
    rest = client.get(f"/api/v1/escrow-holds?limit=2&after={page['next_after']}").json()
    assert [h["id"] for h in rest["results"]] == [holds[2].pk, other.pk]
    assert rest["next_after"] is None
    by_batch = client.get(f"/api/v1/escrow-holds?batch={second.pk}").json()
    assert [h["id"] for h in by_batch["results"]] == [other.pk]
    assert client.get("/api/v1/escrow-holds?account=x").status_code == 400


def test_a_release_returns_credits_to_tradable(w, client_for):
    hold = a_hold(w)
    r = client_for(w.developer, "transfer").post(
        f"/api/v1/escrow-holds/{hold.pk}/release", {"quantity": "40"}, format="json"
    )
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["id"], body["released"], body["remaining"]) == (hold.pk, "40.000", "60.000")
    assert LedgerEntry.objects.get(seq=body["entry_seq"]).type == "escrow.release"
    assert balances(w) == (4_000_000 - 60_000, 60_000)


def test_releasing_more_than_remains_is_409_and_changes_nothing(w, client_for, ledger_length):
    hold = a_hold(w)
    before = ledger_length()
    r = client_for(w.developer).post(
        f"/api/v1/escrow-holds/{hold.pk}/release", {"quantity": "100.001"}, format="json"
    )
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_balance")
    assert r.json()["detail"] == {"remaining": 100_000, "requested": 100_001}
    assert ledger_length() == before
    assert balances(w) == (3_900_000, 100_000)


@pytest.mark.parametrize(
    ("who", "url", "body", "status"),
    [
        ("buyer", "/api/v1/escrow-holds/{pk}/release", {"quantity": "1"}, 404),
        ("developer", "/api/v1/escrow-holds/999999/release", {"quantity": "1"}, 404),
        ("developer", "/api/v1/escrow-holds/abc/release", {"quantity": "1"}, 404),
        ("developer", "/api/v1/escrow-holds/{pk}/release", {"quantity": "0"}, 400),
        ("developer", "/api/v1/escrow-holds/{pk}/release", {}, 400),
    ],
)
def test_a_refused_release_changes_nothing(w, client_for, ledger_length, who, url, body, status):
    hold = a_hold(w)
    before = ledger_length()
    r = client_for(getattr(w, who)).post(url.format(pk=hold.pk), body, format="json")
    assert r.status_code == status, r.json()
    assert ledger_length() == before
    assert balances(w) == (3_900_000, 100_000)


def test_an_operator_releases_anyones_hold(w, client_for):
    hold = a_hold(w)
    operator = factories.organization(Role.OPERATOR)
    r = client_for(operator, "transfer").post(
        f"/api/v1/escrow-holds/{hold.pk}/release", {"quantity": "100"}, format="json"
    )
    assert r.status_code == 200
    assert r.json()["remaining"] == "0.000"


def test_a_retried_release_applies_once(w, client_for):
    hold = a_hold(w)
    client = client_for(w.developer)
    url = f"/api/v1/escrow-holds/{hold.pk}/release"
    first = client.post(url, {"quantity": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="rel-1")
    again = client.post(url, {"quantity": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="rel-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert EscrowHold.objects.get().remaining == 90_000
