"""Retirements (with a certificate that verifies offline), cancellations, reversals."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from ledger import services
from ledger.core import merkle
from ledger.core.note import checkpoint_open
from ledger.models import LedgerEntry
from ledger.signing import trusted_verifiers
from tests.factories import sha

pytestmark = pytest.mark.django_db


@pytest.fixture
def held(world):
    b = world.issue(5_000_000)
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=3_000_000,
    )
    world.batch = b
    return world


def retire(client, w, quantity="220.5", **extra):
    return client.post(
        "/api/v1/retirements",
        {
            "batch": w.batch.pk,
            "account": w.buyer_account.pk,
            "quantity": quantity,
            "beneficiary": "Wanning Mangrove Trust",
            "purpose": "2023 operations",
            "jurisdiction": "CN-HI",
            **extra,
        },
        format="json",
    )


def test_a_retirement_returns_its_certificate_and_it_verifies_offline(held, client_for):
    client = client_for(held.buyer, "retire", "read")
    r = retire(client, held)
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["quantity"] == "220.500"
    assert body["certificate"].startswith("BCR-")
    services.ledger_checkpoint_issue()

    cert = (
        client_for(held.developer, "read").get(f"/api/v1/retirements/{body['certificate']}").json()
    )
    entry = cert["entry"].encode()
    leaf = merkle.leaf_hash(entry)
    assert base64.b64decode(cert["leaf_hash"]) == leaf
    checkpoint, _ = checkpoint_open(cert["checkpoint"], trusted_verifiers())
    proof = cert["inclusion_proof"]
    merkle.verify_inclusion(
        leaf,
        proof["leaf_index"],
        proof["tree_size"],
        [base64.b64decode(h) for h in proof["hashes"]],
        checkpoint.root,
    )
    assert proof["tree_size"] == checkpoint.size

    page = APIClient().get(f"/api/v1/retirements/{body['certificate']}/certificate.html")
    assert page.status_code == 200
    assert b"Wanning Mangrove Trust" in page.content
    assert page["Content-Type"].startswith("text/html")


def test_retiring_more_than_the_balance_is_409_and_changes_nothing(held, client_for):
    before = LedgerEntry.objects.count()
    r = retire(client_for(held.buyer, "retire"), held, quantity="3000.001")
    assert r.status_code == 409
    assert r.json()["code"] == "insufficient_balance"
    assert LedgerEntry.objects.count() == before


def test_a_bad_jurisdiction_is_400(held, client_for):
    r = retire(client_for(held.buyer, "retire"), held, jurisdiction="China")
    assert r.status_code == 400


def test_an_unknown_certificate_is_404(held, client_for):
    assert client_for(held.buyer).get("/api/v1/retirements/BCR-1999-0").status_code == 404


def test_a_cancellation_needs_a_reason(held, client_for):
    client = client_for(held.buyer, "cancel", "read")
    payload = {"batch": held.batch.pk, "account": held.buyer_account.pk, "quantity": "1"}
    r = client.post("/api/v1/cancellations", payload, format="json")
    assert r.status_code == 400
    assert r.json()["detail"] == {
        "reason": [{"code": "required", "message": "This field is required."}]
    }
    r = client.post(
        "/api/v1/cancellations",
        {**payload, "reason": "exported", "destination": "Verra"},
        format="json",
    )
    assert r.status_code == 201
    listed = client.get("/api/v1/cancellations").json()["results"]
    assert [c["quantity"] for c in listed] == ["1.000"]
    assert client_for(held.developer).get("/api/v1/cancellations").json()["results"] == []


def test_a_reversal_cancels_buffer_credits(held, client_for):
    client = client_for(held.registry, "issue", "read")
    r = client.post(
        "/api/v1/reversals",
        {
            "project": held.project.pk,
            "quantity": "100",
            "evidence_sha256": sha("storm"),
            "description": "Typhoon damage",
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    assert client.get("/api/v1/reversals").json()["results"][0]["quantity"] == "100.000"
    other = client_for(held.buyer, "issue").post(
        "/api/v1/reversals",
        {
            "project": held.project.pk,
            "quantity": "1",
            "evidence_sha256": sha("x"),
            "description": "not mine",
        },
        format="json",
    )
    assert other.status_code == 404
