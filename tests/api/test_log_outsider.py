"""The public log, checked the way an outsider would, from the public API alone: follow the
feed from the start, re-hash every entry and follow the chain, verify the latest checkpoint's
signature with the published keys, recompute its root from the leaves, check an inclusion
proof; then let the log grow and check a consistency proof between the two checkpoints."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from ledger import services
from ledger.core import merkle
from ledger.core.note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    checkpoint_open,
    checkpoint_sign,
)

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture(autouse=True)
def _fresh_throttle():
    cache.clear()  # anonymous calls share one throttle bucket across tests


class Outsider:
    """Knows nothing but the API's URLs (and, here, trusts the keys it publishes)."""

    def __init__(self) -> None:
        self.http = APIClient()

    def get(self, path: str, **params: object) -> bytes:
        r = self.http.get(API + path, params)
        assert r.status_code == 200, (path, r.status_code, r.content[:300])
        return r.content

    def json(self, path: str, **params: object) -> dict:
        return json.loads(self.get(path, **params))

    def follow(self, page_size: int = 5) -> list[dict]:
        entries, after = [], -1
        while True:
            page = self.json("/ledger/entries", after=after, limit=page_size)
            entries += page["entries"]
            if page["next_after"] is None:
                return entries
            after = page["next_after"]

    def keys(self) -> list[Verifier]:
        return [Verifier.from_string(k) for k in self.get("/ledger/verifier-keys").decode().split()]


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def check_chain(entries: list[dict]) -> merkle.Frontier:
    """Every entry re-hashed from its exact bytes and linked to the one before; returns the
    Merkle frontier of their leaves."""
    frontier, prev = merkle.Frontier(), bytes(32)
    for seq, item in enumerate(entries):
        raw = item["canonical"].encode()
        body = json.loads(raw)
        assert (item["seq"], body["seq"]) == (seq, seq)
        assert body["prev"] == prev.hex(), f"the chain breaks at entry {seq}"
        prev = hashlib.sha256(raw).digest()
        assert item["entry_sha256"] == prev.hex()
        leaf = merkle.leaf_hash(raw)
        assert item["leaf_hash"] == leaf.hex()
        frontier.append(leaf)
    return frontier


def write_something(world, batch, quantity=1000):
    services.credit_transfer(
        actor=world.dev,
        batch=batch.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=quantity,
    )


@pytest.fixture
def registry_at_work(world):
    world.batch = world.issue(5_000_000)
    for q in range(1, 8):
        write_something(world, world.batch, q * 1000)
    services.credit_retire(
        actor=world.buy,
        batch=world.batch.pk,
        account=world.buyer_account.pk,
        quantity=2000,
        beneficiary="Ningbo Coastal Energy",
        purpose="2024 operations",
        jurisdiction="CN-ZJ",
    )
    services.ledger_checkpoint_issue()
    return world


def test_an_outsider_verifies_the_log_from_the_public_api_alone(registry_at_work):
    outsider = Outsider()

    # 1. The whole feed, from the start: every entry's bytes hash to its chain link.
    entries = outsider.follow()
    frontier = check_chain(entries)
    assert entries[-1]["type"] == "credit.retire"

    # 2. The latest checkpoint is signed by a published key, names this log, and commits to
    #    exactly the leaves the feed gave.
    keys = outsider.keys()
    note = outsider.get("/ledger/checkpoints/latest").decode()
    checkpoint, _ = checkpoint_open(note, keys, origin=settings.LEDGER_ORIGIN)
    assert checkpoint.size == len(entries) == frontier.size
    assert checkpoint.root == frontier.root()

    # 3. One entry (the retirement) is in that tree, by its proof alone.
    seq = len(entries) - 1
    proof = outsider.json("/ledger/proofs/inclusion", seq=seq)
    assert proof["tree_size"] == checkpoint.size
    leaf = merkle.leaf_hash(entries[seq]["canonical"].encode())
    assert b64(proof["leaf_hash"]) == leaf
    merkle.verify_inclusion(
        leaf, seq, checkpoint.size, list(map(b64, proof["proof"])), checkpoint.root
    )

    # 4. The log grows; the new checkpoint extends the old one.
    for _ in range(3):
        write_something(registry_at_work, registry_at_work.batch)
    services.ledger_checkpoint_issue()
    newer, _ = checkpoint_open(
        outsider.get("/ledger/checkpoints/latest").decode(), keys, origin=settings.LEDGER_ORIGIN
    )
    assert newer.size == checkpoint.size + 3
    c = outsider.json("/ledger/proofs/consistency", first=checkpoint.size, second=newer.size)
    merkle.verify_consistency(
        checkpoint.size, newer.size, checkpoint.root, newer.root, list(map(b64, c["proof"]))
    )
    # ... and the feed's new entries continue the same chain up to the new root.
    grown = outsider.follow()
    assert grown[: len(entries)] == entries
    assert check_chain(grown).root() == newer.root

    # 5. The old checkpoint is still served, byte for byte.
    assert outsider.get(f"/ledger/checkpoints/{checkpoint.size}").decode() == note


def test_the_outsider_notices_an_entry_that_is_not_what_was_signed(registry_at_work):
    outsider = Outsider()
    entries = outsider.follow()
    checkpoint, _ = checkpoint_open(
        outsider.get("/ledger/checkpoints/latest").decode(), outsider.keys()
    )
    # The first transfer (1 t): what a tamperer would change is its quantity.
    seq = next(e["seq"] for e in entries if e["type"] == "credit.transfer")
    altered = entries[seq]["canonical"].replace('"quantity":1000', '"quantity":9000')
    assert altered != entries[seq]["canonical"]
    proof = list(map(b64, outsider.json("/ledger/proofs/inclusion", seq=seq)["proof"]))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(
            merkle.leaf_hash(altered.encode()), seq, checkpoint.size, proof, checkpoint.root
        )
    # A tamperer who also fixes the entry's own hashes still breaks the next entry's link.
    entries[seq] = {
        **entries[seq],
        "canonical": altered,
        "entry_sha256": hashlib.sha256(altered.encode()).hexdigest(),
        "leaf_hash": merkle.leaf_hash(altered.encode()).hex(),
    }
    with pytest.raises(AssertionError, match=f"chain breaks at entry {seq + 1}"):
        check_chain(entries)


def test_a_checkpoint_signed_by_a_key_the_log_does_not_publish_is_refused(registry_at_work):
    outsider = Outsider()
    genuine, _ = checkpoint_open(
        outsider.get("/ledger/checkpoints/latest").decode(), outsider.keys()
    )
    impostor = Signer.generate(settings.LEDGER_ORIGIN)
    forged = checkpoint_sign(Checkpoint(settings.LEDGER_ORIGIN, genuine.size, bytes(32)), impostor)
    with pytest.raises(NoteError):
        checkpoint_open(forged, outsider.keys())
