"""Bid receipts are signed with a key of their own, published and rotated like the checkpoint
key, and the web processes that sign them never read the checkpoint key."""

from __future__ import annotations

import base64
import io
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from auctions import services
from auctions.receipts import RECEIPT_KEY, receipt_verifiers
from ledger import services as registry
from ledger.core.note import NoteError, Verifier, checkpoint_open, open_note
from ledger.models import Checkpoint
from ledger.signing import trusted_verifiers
from tests.auctions.conftest import Market
from tests.portal.test_pages import user_for

RECEIPT_KEYS = "/api/v1/auctions/receipts/verifier-keys"


@pytest.fixture
def receipt_keys(settings, tmp_path: Path) -> Path:
    """A receipt key and receipt keys file of this test's own (created on first use)."""
    settings.AUCTION_RECEIPT_KEY_FILE = tmp_path / "receipt-keys" / "receipt-signing.key"
    settings.AUCTION_RECEIPT_VERIFIER_KEYS_FILE = tmp_path / "receipt-keys" / "verifiers.txt"
    return settings.AUCTION_RECEIPT_KEY_FILE


def published(client: Client, path: str) -> list[Verifier]:
    r = client.get(path)
    assert r.status_code == 200 and r["Content-Type"] == "text/plain; charset=utf-8"
    return [Verifier.from_string(line) for line in r.content.decode().split()]


def note_of(receipt) -> str:
    return services.receipt_note(receipt, receipt.bid.auction_id, receipt.bid.bidder_id)


def test_a_receipt_is_signed_by_the_receipt_key_and_never_by_the_checkpoint_key(
    db, receipt_keys, client
):
    m = Market()
    a = m.auction()
    receipt = m.bid(a, m.bidders[0], [(5000, 2)])
    note = note_of(receipt)
    # Development generated the key on first use, owner-only, and published its verifier key.
    assert stat.S_IMODE(receipt_keys.stat().st_mode) == 0o600
    keys = published(client, RECEIPT_KEYS)
    assert keys == [RECEIPT_KEY.signer().verifier()]
    assert published(client, "/audit/receipt-verifier-keys.txt") == keys
    opened = open_note(note, keys)
    assert [v.name for v in opened.verified] == [f"{settings.LEDGER_ORIGIN}/receipts"]
    assert f"commitment {receipt.commitment}\n" in opened.text
    # The ledger's keys do not verify a receipt, and a receipt key is not among them.
    with pytest.raises(NoteError):
        open_note(note, trusted_verifiers())
    assert not set(keys) & set(published(client, "/api/v1/ledger/verifier-keys"))
    # A changed receipt does not verify.
    forged = note.replace(f"commitment {receipt.commitment}", f"commitment {'0' * 64}")
    with pytest.raises(NoteError):
        open_note(forged, keys)


def test_after_a_rotation_old_receipts_still_verify_and_new_ones_use_the_new_key(
    db, receipt_keys, client
):
    m = Market()
    a = m.auction()
    receipt = m.bid(a, m.bidders[0], [(5000, 2)])
    before = note_of(receipt)
    out = io.StringIO()
    call_command("receipt_key_rotate", stdout=out)
    old, new = (Verifier.from_string(line.split()[-1]) for line in out.getvalue().splitlines())
    assert out.getvalue().startswith("retired: ")
    assert receipt_keys.with_name(f"{receipt_keys.name}.retired-1").exists()
    keys = published(client, RECEIPT_KEYS)
    assert keys == [old, new]
    # The receipt shown again is signed by the new key; the one the bidder kept still verifies.
    after = note_of(receipt)
    assert after != before
    assert [v.key_hash for v in open_note(before, keys).verified] == [old.key_hash]
    assert [v.key_hash for v in open_note(after, keys).verified] == [new.key_hash]
    with pytest.raises(NoteError):
        open_note(after, [old])


def test_receipt_key_rotations_at_the_same_time_happen_one_after_another(receipt_keys):
    first = RECEIPT_KEY.signer().verifier()
    with ThreadPoolExecutor(4) as pool:
        rotations = list(pool.map(lambda _: RECEIPT_KEY.rotate(), range(4)))
    olds = {old.to_string() for old, _ in rotations}
    news = {new.to_string() for _, new in rotations}
    # A chain: each rotation retired the key the one before it made, and none was lost.
    assert len(news) == 4 and olds - news == {first.to_string()}
    assert news - olds == {RECEIPT_KEY.signer().verifier().to_string()}
    assert len(list(receipt_keys.parent.glob(f"{receipt_keys.name}.retired-*"))) == 4
    assert set(settings.AUCTION_RECEIPT_VERIFIER_KEYS_FILE.read_text().split()) == olds | news


def test_production_never_generates_a_receipt_key_and_the_command_creates_the_first(
    settings, receipt_keys
):
    settings.PRODUCTION = True
    with pytest.raises(ImproperlyConfigured, match="AUCTION_RECEIPT_KEY_FILE"):
        RECEIPT_KEY.signer()
    assert not receipt_keys.exists()
    out = io.StringIO()
    call_command("receipt_key_rotate", stdout=out)
    assert out.getvalue().startswith(f"created: {receipt_keys}\n")
    created = Verifier.from_string(out.getvalue().split()[-1])
    assert RECEIPT_KEY.signer().verifier() == created
    assert receipt_verifiers() == [created]
    assert stat.S_IMODE(receipt_keys.stat().st_mode) == 0o600
    call_command("receipt_key_rotate", stdout=io.StringIO())  # now a rotation
    assert len(receipt_verifiers()) == 2


@pytest.mark.parametrize("checkpoint_key", ["missing", "unreadable"])
def test_web_requests_never_read_the_checkpoint_key(
    worker, settings, tmp_path, receipt_keys, checkpoint_key
):
    """Bids in and receipts out through the API and the portal, and every verifier-key list,
    in a process whose checkpoint key is missing (development would generate one the moment
    anything asked for it) or unreadable (a directory): no request reads it. The checkpoints
    are signed by the worker, which holds the key."""
    key = tmp_path / "no-checkpoint-key-here" / "ledger-signing.key"
    if checkpoint_key == "unreadable":
        key.mkdir(parents=True)
    settings.LEDGER_SIGNING_KEY_FILE = key

    m = Market()
    a = m.auction()
    bidder = m.bidders[0]
    _, secret = registry.apikey_create(organization=bidder.pk, name="k", scopes=["bid", "read"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    sealed = base64.b64encode(m.seal(a, bidder, [(5000, 2)])).decode()
    r = api.post(f"/api/v1/auctions/{a.pk}/bids", {"ciphertext": sealed}, format="json")
    assert r.status_code == 201, r.content
    bid = r.json()
    sealed = base64.b64encode(m.seal(a, bidder, [(5100, 2)])).decode()
    r = api.put(f"/api/v1/auctions/{a.pk}/bids/{bid['id']}", {"ciphertext": sealed}, format="json")
    assert r.status_code == 200, r.content
    mine = api.get(f"/api/v1/auctions/{a.pk}/bids/mine").json()["results"]
    notes = [x["note"] for x in mine[0]["receipts"]]
    portal = user_for(bidder, "bidder")
    assert portal.get(f"/auctions/{a.pk}/").status_code == 200
    notes.append(portal.get(f"/auctions/{a.pk}/bids/{bid['id']}/receipt-v2.txt").content.decode())
    receipt_keys_published = published(api, RECEIPT_KEYS)
    for note in [bid["receipts"][0]["note"], *notes]:
        open_note(note, receipt_keys_published)

    # The worker signs a checkpoint over the bids with its key; every list of the ledger's keys
    # the web serves has it, read from the verifier-keys file alone.
    seq = r.json()["entry_seq"]
    deadline = time.monotonic() + 60
    while not Checkpoint.objects.filter(size__gt=seq).exists():
        assert time.monotonic() < deadline, "the worker signed no checkpoint over the bids"
        time.sleep(0.1)
    checkpoint = Checkpoint.objects.filter(size__gt=seq).order_by("size").first()
    assert checkpoint is not None
    for path in [
        "/api/v1/ledger/verifier-keys",
        "/api/v1/ledger/tlog/verifier-keys",
        "/ledger/verifier-keys",
        "/audit/verifier-keys.txt",
    ]:
        r = portal.get(path)
        assert r.status_code == 200, path
        keys = [Verifier.from_string(line) for line in r.content.decode().split()]
        checkpoint_open(checkpoint.note, keys)

    # Nothing read the key, nor made one: development would have generated it at this path.
    assert not key.exists() if checkpoint_key == "missing" else not any(key.iterdir())


@pytest.mark.parametrize("by_trustees", [False, True])
def test_a_sealed_bid_loads_no_field_one_query_at_a_time(market, monkeypatch, by_trustees):
    """The intake's rows are read by raw statements and built with ``loaded``: a field left out
    was loaded later by a query of its own (``refresh_from_db``): three per bid before (the
    auction's sealing, the bid's reason and awarded lots), a third of a bid's CPU."""
    from django.db.models import Model

    from tests.auctions.test_trustees import Trustees, trustee_auction

    a = trustee_auction(market, Trustees(3)) if by_trustees else market.auction(closes_in=60)

    def refused(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} loaded {kwargs.get('fields')} on its own")

    monkeypatch.setattr(Model, "refresh_from_db", refused)
    receipt = market.bid(a, market.bidders[0], [(3000, 10)])
    assert receipt.bid.reason == "" and receipt.bid.awarded_lots is None
