"""Inclusion and consistency proofs: correct for every index and size pair, refused (with a
reason) for sizes the stored Merkle tree does not cover."""

from __future__ import annotations

import base64

import pytest
from django.core.cache import cache
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from ledger import services
from ledger.core import merkle
from ledger.models import Checkpoint, LedgerEntry

pytestmark = pytest.mark.django_db

INCLUSION = "/api/v1/ledger/proofs/inclusion"
CONSISTENCY = "/api/v1/ledger/proofs/consistency"


@pytest.fixture(autouse=True)
def _fresh_throttle():
    cache.clear()  # anonymous calls share one throttle bucket across tests


@pytest.fixture
def client():
    return APIClient()


def b64(items: list[str]) -> list[bytes]:
    return [base64.b64decode(h) for h in items]


def leaves() -> list[bytes]:
    bodies = LedgerEntry.objects.order_by("seq").values_list("body", flat=True)
    return [merkle.leaf_hash(bytes(b)) for b in bodies]


def grow(world, batch, times):
    for _ in range(times):
        services.credit_transfer(
            actor=world.dev,
            batch=batch.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=1000,
        )


@pytest.fixture
def checkpointed(world):
    """A ledger of 13 entries (not a power of two), all covered by a checkpoint."""
    world.batch = world.issue()
    grow(world, world.batch, 13 - LedgerEntry.objects.count())
    world.checkpoint = services.ledger_checkpoint_issue()
    assert world.checkpoint.size == 13
    return world


def test_every_entry_has_an_inclusion_proof_against_the_latest_checkpoint(checkpointed, client):
    hashes = leaves()
    root = bytes(checkpointed.checkpoint.root)
    for seq in range(13):
        r = client.get(INCLUSION, {"seq": seq})
        assert r.status_code == 200
        proof = r.json()
        assert (proof["seq"], proof["tree_size"]) == (seq, 13)
        assert base64.b64decode(proof["leaf_hash"]) == hashes[seq]
        assert base64.b64decode(proof["root"]) == root
        merkle.verify_inclusion(hashes[seq], seq, 13, b64(proof["proof"]), root)


def test_a_proof_for_one_entry_does_not_prove_another(checkpointed, client):
    hashes = leaves()
    proof = b64(client.get(INCLUSION, {"seq": 5}).json()["proof"])
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(hashes[6], 5, 13, proof, bytes(checkpointed.checkpoint.root))


def test_any_size_the_tree_covers_may_be_asked_for(checkpointed, client):
    hashes = leaves()
    for size in (1, 2, 7, 8, 12):
        r = client.get(INCLUSION, {"seq": size - 1, "tree_size": size})
        assert r.status_code == 200
        proof = r.json()
        root = merkle.root_of(hashes[:size])
        assert base64.b64decode(proof["root"]) == root
        merkle.verify_inclusion(hashes[size - 1], size - 1, size, b64(proof["proof"]), root)
        assert "immutable" in r["Cache-Control"]
    # Against "the latest checkpoint" the answer changes as the log grows: not cacheable.
    assert "immutable" not in client.get(INCLUSION, {"seq": 0}).get("Cache-Control", "")


def test_new_entries_are_provable_only_once_the_tree_covers_them(checkpointed, client):
    grow(checkpointed, checkpointed.batch, 2)
    r = client.get(INCLUSION, {"seq": 13, "tree_size": 15})
    assert r.status_code == 422
    body = r.json()
    assert body["detail"] == {"tree_size": "beyond_tree", "covered": 13}
    assert "covers 13 entries" in body["message"]
    # Against the latest checkpoint (size 13) the new entry is simply not in the tree.
    r = client.get(INCLUSION, {"seq": 13})
    assert r.status_code == 422
    assert r.json()["detail"]["seq"] == "not_in_tree"

    services.ledger_checkpoint_issue()
    proof = client.get(INCLUSION, {"seq": 13}).json()
    assert proof["tree_size"] == 15
    merkle.verify_inclusion(
        leaves()[13], 13, 15, b64(proof["proof"]), base64.b64decode(proof["root"])
    )


@pytest.mark.parametrize(
    ("params", "status", "field", "reason"),
    [
        ({}, 400, "seq", "required"),
        ({"seq": "x"}, 400, "seq", "invalid"),
        ({"seq": "-1"}, 400, "seq", "out_of_range"),
        ({"seq": "0", "tree_size": "0"}, 400, "tree_size", "out_of_range"),
        ({"seq": "0", "tree_size": "1.0"}, 400, "tree_size", "invalid"),
        ({"seq": "13", "tree_size": "13"}, 422, "seq", "not_in_tree"),
        ({"seq": "99"}, 422, "seq", "not_in_tree"),
        ({"seq": "0", "tree_size": "14"}, 422, "tree_size", "beyond_tree"),
        ({"seq": "0", "tree_size": str(2**62)}, 422, "tree_size", "beyond_tree"),
    ],
)
def test_inclusion_requests_that_cannot_be_answered_say_why(
    checkpointed, client, params, status, field, reason
):
    r = client.get(INCLUSION, params)
    assert r.status_code == status
    assert r.json()["detail"][field] == reason


def test_without_a_checkpoint_the_tree_size_must_be_given(world, client):
    services.tree_extend()
    assert not Checkpoint.objects.exists()
    r = client.get(INCLUSION, {"seq": 0})
    assert r.status_code == 422
    assert r.json()["detail"] == {"tree_size": "no_checkpoint"}
    assert client.get(INCLUSION, {"seq": 0, "tree_size": 3}).status_code == 200


def test_every_pair_of_sizes_has_a_consistency_proof(checkpointed, client):
    hashes = leaves()
    for first in range(1, 14):
        for second in range(first, 14):
            r = client.get(CONSISTENCY, {"first": first, "second": second})
            assert r.status_code == 200
            c = r.json()
            first_root, second_root = b64([c["first_root"], c["second_root"]])
            assert first_root == merkle.root_of(hashes[:first])
            assert second_root == merkle.root_of(hashes[:second])
            merkle.verify_consistency(first, second, first_root, second_root, b64(c["proof"]))
    assert client.get(CONSISTENCY, {"first": 4, "second": 4}).json()["proof"] == []


def test_a_consistency_proof_does_not_bind_a_different_old_root(checkpointed, client):
    c = client.get(CONSISTENCY, {"first": 5, "second": 13}).json()
    wrong = merkle.root_of(leaves()[1:6])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(5, 13, wrong, base64.b64decode(c["second_root"]), b64(c["proof"]))


@pytest.mark.parametrize(
    ("params", "status", "field", "reason"),
    [
        ({}, 400, "first", "required"),
        ({"first": "1"}, 400, "second", "required"),
        ({"first": "0", "second": "5"}, 400, "first", "out_of_range"),
        ({"first": "6", "second": "5"}, 400, "first", "out_of_range"),
        ({"first": "a", "second": "5"}, 400, "first", "invalid"),
        ({"first": "1", "second": "14"}, 422, "second", "beyond_tree"),
        ({"first": "14", "second": "14"}, 422, "second", "beyond_tree"),
    ],
)
def test_consistency_requests_that_cannot_be_answered_say_why(
    checkpointed, client, params, status, field, reason
):
    r = client.get(CONSISTENCY, params)
    assert r.status_code == status
    assert r.json()["detail"][field] == reason


def test_the_openapi_schema_describes_exactly_what_the_proofs_send(checkpointed, client):
    schema = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    inclusion = client.get(INCLUSION, {"seq": 1}).json()
    consistency = client.get(CONSISTENCY, {"first": 2, "second": 9}).json()
    for body, name in ((inclusion, "InclusionProof"), (consistency, "ConsistencyProof")):
        assert set(body) == set(schema[name]["properties"]) == set(schema[name]["required"])
