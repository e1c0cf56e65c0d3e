"""``/api/v1/cancellations`` and ``/api/v1/reversals``: credits taken out of circulation
without an offset claim, and losses of stored carbon compensated from the buffer pool."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import services
from ledger.models import Batch, Cancellation, Holding, LedgerEntry, Reversal, Role
from tests import factories
from tests.factories import World, sha

pytestmark = pytest.mark.django_db


@pytest.fixture
def w(world: World) -> World:
    world.batch = world.issue(5_000_000)  # developer 4,000 t; the registry's buffer 1,000 t
    return world


def cancel_payload(w: World, **changes: Any) -> dict[str, Any]:
    return {
        "batch": w.batch.pk,
        "account": w.dev_account.pk,
        "quantity": "12.5",
        "reason": "exported to Verra",
        "destination": "Verra VCS",
        **changes,
    }


def reversal_payload(w: World, **changes: Any) -> dict[str, Any]:
    return {
        "project": w.project.pk,
        "quantity": "150",
        "evidence_sha256": sha("drone survey after typhoon Talim"),
        "description": "Typhoon Talim destroyed 12 ha of planted mangrove",
        **changes,
    }


# ---- cancellations ------------------------------------------------------------------------------


def test_a_cancellation_takes_credits_out_for_good(w, client_for):
    r = client_for(w.developer, "cancel").post(
        "/api/v1/cancellations", cancel_payload(w), format="json"
    )
    assert r.status_code == 201, r.json()
    c = Cancellation.objects.get()
    assert r.json() == {
        "id": c.pk,
        "entry_seq": c.entry_seq,
        "account": w.dev_account.pk,
        "batch": w.batch.pk,
        "quantity": "12.500",
        "reason": "exported to Verra",
        "destination": "Verra VCS",
    }
    assert LedgerEntry.objects.get(seq=c.entry_seq).type == "credit.cancel"
    assert Batch.objects.get(pk=w.batch.pk).cancelled == 12_500
    assert Holding.objects.get(account=w.dev_account, batch=w.batch).tradable == 3_987_500


def test_the_destination_is_optional(w, client_for):
    body = cancel_payload(w)
    del body["destination"]
    r = client_for(w.developer, "cancel").post("/api/v1/cancellations", body, format="json")
    assert r.status_code == 201
    assert r.json()["destination"] == ""


REFUSALS = [
    ("no reason", {"reason": None}, 400, "invalid"),
    ("a blank reason", {"reason": "   "}, 400, "invalid"),
    ("a reason too long", {"reason": "x" * 2001}, 400, "invalid"),
    ("a too precise quantity", {"quantity": "1.2345"}, 400, "invalid"),
    ("an unknown batch", {"batch": 10**9}, 404, "not_found"),
    ("another organization's account", {"account": "buyer"}, 404, "not_found"),
    ("more than the account holds", {"quantity": "4000.001"}, 409, "insufficient_balance"),
]


@pytest.mark.parametrize(
    ("what", "changes", "status", "code"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_a_refused_cancellation_changes_nothing(
    w, client_for, ledger_length, what, changes, status, code
):
    body = cancel_payload(w, **changes)
    if body["account"] == "buyer":
        body["account"] = w.buyer_account.pk
    body = {k: v for k, v in body.items() if v is not None}
    before = ledger_length()
    r = client_for(w.developer, "cancel").post("/api/v1/cancellations", body, format="json")
    assert (r.status_code, r.json()["code"]) == (status, code), r.json()
    assert ledger_length() == before
    assert not Cancellation.objects.exists()


def test_a_key_without_the_cancel_scope_is_403(w, client_for, ledger_length):
    before = ledger_length()
    r = client_for(w.developer, "read", "retire", "transfer").post(
        "/api/v1/cancellations", cancel_payload(w), format="json"
    )
    assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
    assert ledger_length() == before


def test_the_list_shows_the_callers_cancellations_and_pages(w, client_for):
    client = client_for(w.developer)
    made = [
        client.post(
            "/api/v1/cancellations", cancel_payload(w, quantity=str(n)), format="json"
        ).json()
        for n in (1, 2, 3)
    ]
    page = client.get("/api/v1/cancellations?limit=2").json()
    assert [c["quantity"] for c in page["results"]] == ["1.000", "2.000"]
    assert page["results"][0]["time"].endswith("Z")
    rest = client.get(f"/api/v1/cancellations?after={page['next_after']}").json()
    assert ([c["id"] for c in rest["results"]], rest["next_after"]) == ([made[2]["id"]], None)
    assert client_for(w.buyer).get("/api/v1/cancellations").json()["results"] == []
    assert client.get("/api/v1/cancellations?batch=-3").status_code == 400


# ---- reversals ----------------------------------------------------------------------------------


def test_the_projects_registry_records_a_reversal_paid_from_its_buffer_pool(w, client_for):
    r = client_for(w.registry, "issue").post(
        "/api/v1/reversals", reversal_payload(w), format="json"
    )
    assert r.status_code == 201, r.json()
    reversal = Reversal.objects.get()
    body = r.json()
    assert body["id"] == reversal.pk
    assert body["entry_seq"] == reversal.entry_seq
    assert (body["project"], body["quantity"]) == (w.project.pk, "150.000")
    assert body["buffer_cancellations"] == [{"batch": w.batch.pk, "quantity": "150.000"}]
    assert body["time"].endswith("Z")
    assert LedgerEntry.objects.get(seq=reversal.entry_seq).type == "reversal.record"
    assert Holding.objects.get(account=w.buffer, batch=w.batch).tradable == 850_000


def test_reversals_are_public_registry_data(w, client_for):
    services.reversal_record(
        actor=factories.OPERATOR,
        project=w.project.pk,
        quantity=150_000,
        evidence_sha256=sha("survey"),
        description="Storm",
    )
    stranger = factories.organization(Role.BIDDER)
    listed = client_for(stranger, "read").get("/api/v1/reversals").json()
    assert [r["quantity"] for r in listed["results"]] == ["150.000"]
    assert listed["next_after"] is None
    other = factories.project(w.registry, w.developer)
    by_project = client_for(stranger).get(f"/api/v1/reversals?project={other.pk}").json()
    assert by_project["results"] == []


REVERSAL_REFUSALS = [
    ("evidence that is not a SHA-256", {"evidence_sha256": "abc"}, 400, "invalid"),
    ("no description", {"description": ""}, 400, "invalid"),
    ("a quantity of zero", {"quantity": "0"}, 400, "invalid"),
    ("an unknown project", {"project": 10**9}, 404, "not_found"),
    ("more than the buffer pool holds", {"quantity": "1000.001"}, 409, "insufficient_buffer"),
]


@pytest.mark.parametrize(
    ("what", "changes", "status", "code"),
    REVERSAL_REFUSALS,
    ids=[r[0] for r in REVERSAL_REFUSALS],
)
def test_a_refused_reversal_changes_nothing(
    w, client_for, ledger_length, what, changes, status, code
):
    before = ledger_length()
    r = client_for(w.registry, "issue").post(
        "/api/v1/reversals", reversal_payload(w, **changes), format="json"
    )
    assert (r.status_code, r.json()["code"]) == (status, code), r.json()
    assert ledger_length() == before
    assert not Reversal.objects.exists()
    assert Holding.objects.get(account=w.buffer, batch=w.batch).tradable == 1_000_000


def test_only_the_projects_registry_or_an_operator_records_a_reversal(w, client_for, ledger_length):
    other_registry = factories.organization(Role.REGISTRY)
    before = ledger_length()
    for org in (w.developer, other_registry):
        r = client_for(org, "issue").post("/api/v1/reversals", reversal_payload(w), format="json")
        assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert ledger_length() == before
    operator = factories.organization(Role.OPERATOR)
    r = client_for(operator, "issue").post("/api/v1/reversals", reversal_payload(w), format="json")
    assert r.status_code == 201
