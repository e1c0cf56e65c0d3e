"""The public log, checked the way an outsider would: follow the feed, re-hash, verify the
checkpoint signature with the published keys, recompute the root, check proofs."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from rest_framework.test import APIClient

from ledger import services
from ledger.core import merkle
from ledger.core.note import Verifier, checkpoint_open

pytestmark = pytest.mark.django_db


def b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def busy(world):
    b = world.issue(5_000_000)
    for q in range(1, 6):
        services.credit_transfer(
            actor=world.dev,
            batch=b.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=q * 1000,
        )
    services.ledger_checkpoint_issue()
    world.batch = b
    return world


def follow_feed(client, limit=4):
    entries, after = [], -1
    while True:
        page = client.get("/api/v1/ledger/entries", {"after": after, "limit": limit}).json()
        entries += page["entries"]
        if page["next_after"] is None:
            return entries, page["tree_size"]
        after = page["next_after"]


def test_an_outsider_verifies_the_log_from_the_public_api_alone(busy, client):
    entries, size = follow_feed(client)
    assert [e["seq"] for e in entries] == list(range(size))
    frontier, prev = merkle.Frontier(), bytes(32)
    for e in entries:
        raw = e["canonical"].encode()
        assert json.loads(raw)["prev"] == prev.hex()
        assert hashlib.sha256(raw).hexdigest() == e["entry_sha256"]
        assert merkle.leaf_hash(raw).hex() == e["leaf_hash"]
        frontier.append(merkle.leaf_hash(raw))
        prev = hashlib.sha256(raw).digest()

    keys = [
        Verifier.from_string(line)
        for line in client.get("/api/v1/ledger/verifier-keys").content.decode().split()
    ]
    note = client.get("/api/v1/ledger/checkpoints/latest")
    assert note["Content-Type"].startswith("text/plain")
    checkpoint, _ = checkpoint_open(note.content.decode(), keys)
    assert checkpoint.size == size
    assert checkpoint.root == frontier.root()

    proof = client.get("/api/v1/ledger/proofs/inclusion", {"seq": 3}).json()
    assert proof["tree_size"] == size
    merkle.verify_inclusion(
        b64(proof["leaf_hash"]), 3, size, [b64(h) for h in proof["proof"]], checkpoint.root
    )
    assert b64(proof["leaf_hash"]).hex() == entries[3]["leaf_hash"]

    # The log grows; the new checkpoint must be consistent with the old one.
    services.credit_transfer(
        actor=busy.dev,
        batch=busy.batch.pk,
        sender=busy.dev_account.pk,
        recipient=busy.buyer_account.pk,
        quantity=1,
    )
    services.ledger_checkpoint_issue()
    newer, _ = checkpoint_open(
        client.get("/api/v1/ledger/checkpoints/latest").content.decode(), keys
    )
    assert newer.size == size + 1
    c = client.get(
        "/api/v1/ledger/proofs/consistency", {"first": size, "second": newer.size}
    ).json()
    merkle.verify_consistency(
        size, newer.size, checkpoint.root, newer.root, [b64(h) for h in c["proof"]]
    )
    old = client.get(f"/api/v1/ledger/checkpoints/{size}")
    assert old.content.decode() == note.content.decode()


def test_the_feed_filters_by_type_and_pages_stably(busy, client):
    page = client.get("/api/v1/ledger/entries", {"type": "credit.transfer", "limit": 2}).json()
    assert [e["type"] for e in page["entries"]] == ["credit.transfer"] * 2
    rest = client.get(
        "/api/v1/ledger/entries", {"type": "credit.transfer", "after": page["next_after"]}
    ).json()
    assert len(page["entries"]) + len(rest["entries"]) == 5
    assert rest["next_after"] is None


@pytest.mark.parametrize(
    "params", [{"after": "x"}, {"limit": 0}, {"limit": 1001}, {"type": "nope"}, {"after": "-2"}]
)
def test_bad_feed_parameters_are_400(busy, client, params):
    r = client.get("/api/v1/ledger/entries", params)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_field"


def test_proofs_beyond_the_checkpointed_tree_are_refused(busy, client):
    size = services.tree_extend()
    r = client.get("/api/v1/ledger/proofs/inclusion", {"seq": size, "tree_size": size})
    assert r.status_code == 422
    r = client.get("/api/v1/ledger/proofs/inclusion", {"seq": 0, "tree_size": size + 5})
    assert r.status_code == 422
    r = client.get("/api/v1/ledger/proofs/consistency", {"first": 3, "second": 2})
    assert r.status_code == 400
    r = client.get("/api/v1/ledger/proofs/consistency", {"first": 0, "second": 2})
    assert r.status_code == 400


def test_unknown_entries_and_checkpoints_are_404(busy, client):
    assert client.get("/api/v1/ledger/entries/999999").status_code == 404
    assert client.get(f"/api/v1/ledger/entries/{2**70}").status_code == 404
    assert client.get("/api/v1/ledger/checkpoints/999999").status_code == 404
    listing = client.get("/api/v1/ledger/checkpoints").json()
    assert [c["size"] for c in listing["checkpoints"]] == [services.tree_extend()]
