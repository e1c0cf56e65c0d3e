"""``/api/v1/retirements``: retiring credits, the caller's list, and the certificate, which
anyone can verify offline with nothing but the log's verifier key."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from rest_framework.test import APIClient

from ledger import services
from ledger.core import merkle
from ledger.core.entry import decode_entry
from ledger.core.note import NoteError, checkpoint_open
from ledger.models import Batch, Holding, LedgerEntry, Retirement, Role
from ledger.signing import trusted_verifiers
from tests import factories
from tests.factories import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def w(world: World) -> World:
    world.batch = world.issue(5_000_000)
    services.credit_transfer(
        actor=world.dev,
        batch=world.batch.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=3_000_000,
    )
    return world


def payload(w: World, **changes: Any) -> dict[str, Any]:
    return {
        "batch": w.batch.pk,
        "account": w.buyer_account.pk,
        "quantity": "220.5",
        "beneficiary": "Wanning Mangrove Trust",
        "purpose": "2023 operations",
        "jurisdiction": "CN-HI",
        "reason": "voluntary offset",
        **changes,
    }


def retire(w: World, client: APIClient, **changes: Any) -> Any:
    return client.post("/api/v1/retirements", payload(w, **changes), format="json")


def verify_offline(cert: dict[str, Any]) -> None:
    """What an outsider does with a certificate: raises if anything does not check out."""
    entry = cert["entry"].encode()
    leaf = merkle.leaf_hash(entry)
    assert base64.b64decode(cert["leaf_hash"]) == leaf
    assert cert["entry_sha256"] == hashlib.sha256(entry).hexdigest()
    checkpoint, _ = checkpoint_open(cert["checkpoint"], trusted_verifiers())
    proof = cert["inclusion_proof"]
    assert proof["tree_size"] == checkpoint.size
    assert base64.b64decode(proof["root"]) == checkpoint.root
    merkle.verify_inclusion(
        leaf,
        proof["leaf_index"],
        proof["tree_size"],
        [base64.b64decode(h) for h in proof["hashes"]],
        checkpoint.root,
    )
    # ... and the entry says what the certificate says.
    decoded = decode_entry(entry)
    assert decoded.type == "credit.retire"
    assert decoded.seq == cert["entry_seq"] == proof["leaf_index"]
    assert decoded.data["retirement"]["certificate"] == cert["certificate"]
    assert decoded.data["retirement"]["beneficiary"] == cert["beneficiary"]


# ---- POST ---------------------------------------------------------------------------------------


def test_a_retirement_answers_with_its_certificate_number(w, client_for):
    r = retire(w, client_for(w.buyer, "retire"))
    assert r.status_code == 201, r.json()
    body = r.json()
    retirement = Retirement.objects.get()
    assert body == {
        "id": retirement.pk,
        "certificate": retirement.certificate,
        "entry_seq": retirement.entry_seq,
        "account": w.buyer_account.pk,
        "batch": w.batch.pk,
        "batch_serial": w.batch.serial,
        "project_code": w.project.code,
        "project_name": w.project.name,
        "ecosystem": "mangrove",
        "vintage": 2021,
        "quantity": "220.500",
        "beneficiary": "Wanning Mangrove Trust",
        "purpose": "2023 operations",
        "jurisdiction": "CN-HI",
        "reason": "voluntary offset",
    }
    assert body["certificate"].startswith("BCR-")
    assert Holding.objects.get(account=w.buyer_account, batch=w.batch).tradable == 2_779_500
    assert Batch.objects.get(pk=w.batch.pk).retired == 220_500


REFUSALS = [
    ("a jurisdiction that is not ISO 3166-2", {"jurisdiction": "China"}, 400, "invalid"),
    ("a jurisdiction too long", {"jurisdiction": "CN-ZJ-XX"}, 400, "invalid"),
    ("no beneficiary", {"beneficiary": ""}, 400, "invalid"),
    ("no purpose", {"purpose": None}, 400, "invalid"),
    ("a quantity in grams", {"quantity": "0.0005"}, 400, "invalid"),
    ("an unknown batch", {"batch": 10**9}, 404, "not_found"),
    ("another organization's account", {"account": "developer"}, 404, "not_found"),
    ("more than the account holds", {"quantity": "3000.001"}, 409, "insufficient_balance"),
    ("a buffer pool", {"account": "buffer"}, 422, "buffer_account"),
]


@pytest.mark.parametrize(
    ("what", "changes", "status", "code"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_a_refused_retirement_changes_nothing(
    w, client_for, ledger_length, what, changes, status, code
):
    body = payload(w, **changes)
    body["account"] = {"developer": w.dev_account.pk, "buffer": w.buffer.pk}.get(
        body["account"], body["account"]
    )
    body = {k: v for k, v in body.items() if v is not None}
    # The buffer pool is the registry's: only its own key gets as far as the buffer rule.
    org = w.registry if changes.get("account") == "buffer" else w.buyer
    before = ledger_length()
    r = client_for(org, "retire").post("/api/v1/retirements", body, format="json")
    assert (r.status_code, r.json()["code"]) == (status, code), r.json()
    assert ledger_length() == before
    assert not Retirement.objects.exists()
    assert Batch.objects.get(pk=w.batch.pk).retired == 0


def test_retired_credits_cannot_be_retired_again(w, client_for, ledger_length):
    client = client_for(w.buyer, "retire")
    assert retire(w, client, quantity="3000").status_code == 201
    before = ledger_length()
    r = retire(w, client, quantity="1")
    assert (r.status_code, r.json()["code"]) == (409, "credits_retired")
    assert ledger_length() == before


def test_a_retried_retirement_applies_once_and_replays_its_certificate(w, client_for):
    client = client_for(w.buyer, "retire")
    first = client.post("/api/v1/retirements", payload(w), format="json", HTTP_IDEMPOTENCY_KEY="r1")
    again = client.post("/api/v1/retirements", payload(w), format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert first.status_code == again.status_code == 201
    assert again.json()["certificate"] == first.json()["certificate"]
    assert Retirement.objects.count() == 1


# ---- the certificate ----------------------------------------------------------------------------


def test_the_certificate_verifies_offline_against_a_signed_checkpoint(w, client_for):
    number = retire(w, client_for(w.buyer, "retire")).json()["certificate"]
    services.credit_transfer(  # later entries: the proof is not a trivial one
        actor=w.dev,
        batch=w.batch.pk,
        sender=w.dev_account.pk,
        recipient=w.buyer_account.pk,
        quantity=1,
    )
    checkpoint = services.ledger_checkpoint_issue()
    assert checkpoint.size == LedgerEntry.objects.count()
    # Anyone with a key reads it: retirements are public records.
    stranger = factories.organization(Role.BIDDER)
    r = client_for(stranger, "read").get(f"/api/v1/retirements/{number}")
    assert r.status_code == 200, r.json()
    cert = r.json()
    verify_offline(cert)
    assert cert["inclusion_proof"]["tree_size"] == checkpoint.size
    assert cert["checkpoint"] == checkpoint.note
    assert len(cert["inclusion_proof"]["hashes"]) > 1
    assert cert["entry_time"] == decode_entry(cert["entry"].encode()).time
    assert (cert["batch_serial"], cert["project_code"], cert["vintage"]) == (
        w.batch.serial,
        w.project.code,
        2021,
    )
    assert cert["quantity"] == "220.500"


@pytest.mark.parametrize("part", ["entry", "proof", "checkpoint", "leaf_index"])
def test_a_tampered_certificate_does_not_verify(w, client_for, part):
    number = retire(w, client_for(w.buyer, "retire")).json()["certificate"]
    services.ledger_checkpoint_issue()
    cert = client_for(w.buyer).get(f"/api/v1/retirements/{number}").json()
    if part == "entry":
        cert["entry"] = cert["entry"].replace("Wanning Mangrove Trust", "Someone Else")
        cert["leaf_hash"] = base64.b64encode(merkle.leaf_hash(cert["entry"].encode())).decode()
        cert["entry_sha256"] = hashlib.sha256(cert["entry"].encode()).hexdigest()
    elif part == "proof":
        first = base64.b64decode(cert["inclusion_proof"]["hashes"][0])
        cert["inclusion_proof"]["hashes"][0] = base64.b64encode(bytes(32 - 1) + first[-1:]).decode()
    elif part == "checkpoint":
        lines = cert["checkpoint"].split("\n")
        lines[1] = str(int(lines[1]) + 1)  # claim a bigger tree under the same signature
        cert["checkpoint"] = "\n".join(lines)
    else:
        cert["inclusion_proof"]["leaf_index"] -= 1
    with pytest.raises((merkle.ProofError, NoteError, AssertionError)):
        verify_offline(cert)


def test_a_certificate_not_yet_checkpointed_says_so(w, client_for):
    number = retire(w, client_for(w.buyer, "retire")).json()["certificate"]
    cert = client_for(w.buyer).get(f"/api/v1/retirements/{number}").json()
    assert cert["inclusion_proof"] is None
    assert cert["checkpoint"] is None
    assert base64.b64decode(cert["leaf_hash"]) == merkle.leaf_hash(cert["entry"].encode())


def test_an_unknown_certificate_is_404(w, client_for):
    r = client_for(w.buyer).get("/api/v1/retirements/BCR-1999-0000000000")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")


def test_the_printable_certificate_needs_no_key_and_escapes_what_it_prints(w, client_for):
    number = retire(
        w, client_for(w.buyer, "retire"), beneficiary="<script>alert(1)</script> Trust"
    ).json()["certificate"]
    services.ledger_checkpoint_issue()
    page = APIClient().get(f"/api/v1/retirements/{number}/certificate.html")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert number in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Trust" in html
    assert "<script>" not in html
    assert "220.500 tCO2e" in html
    assert "Signed checkpoint" in html
    assert w.batch.serial in html


def test_the_printable_page_of_an_unknown_certificate_is_an_html_404(w):
    page = APIClient().get("/api/v1/retirements/BCR-1999-0000000000/certificate.html")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
    assert b"No retirement certificate BCR-1999-0000000000" in page.content


# ---- GET the list -------------------------------------------------------------------------------


def test_the_list_shows_the_callers_retirements_with_their_entry_time(w, client_for):
    mine = retire(w, client_for(w.buyer, "retire")).json()
    services.credit_retire(
        actor=w.dev,
        batch=w.batch.pk,
        account=w.dev_account.pk,
        quantity=1,
        beneficiary="B",
        purpose="P",
        jurisdiction="CN-GD",
    )
    listed = client_for(w.buyer).get("/api/v1/retirements").json()
    assert [r["certificate"] for r in listed["results"]] == [mine["certificate"]]
    assert listed["next_after"] is None
    entry = LedgerEntry.objects.get(seq=mine["entry_seq"])
    assert listed["results"][0]["time"] == decode_entry(bytes(entry.body)).time
    operator = factories.organization(Role.OPERATOR)
    assert len(client_for(operator).get("/api/v1/retirements").json()["results"]) == 2


def test_the_list_filters_and_pages(w, client_for):
    client = client_for(w.buyer)
    made = [retire(w, client, quantity=str(n)).json()["id"] for n in range(1, 4)]
    page = client.get("/api/v1/retirements?limit=2").json()
    assert [r["id"] for r in page["results"]] == made[:2]
    rest = client.get(f"/api/v1/retirements?limit=2&after={page['next_after']}").json()
    assert ([r["id"] for r in rest["results"]], rest["next_after"]) == (made[2:], None)
    assert client.get(f"/api/v1/retirements?account={w.dev_account.pk}").json()["results"] == []
    assert len(client.get(f"/api/v1/retirements?batch={w.batch.pk}").json()["results"]) == 3
    r = client.get("/api/v1/retirements?limit=many")
    assert (r.status_code, list(r.json()["detail"])) == (400, ["limit"])
