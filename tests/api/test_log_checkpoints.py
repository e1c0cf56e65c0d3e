"""Signed checkpoints and verifier keys, served exactly as stored."""

from __future__ import annotations

import base64

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from ledger import services, signing
from ledger.core.note import Verifier, checkpoint_open
from ledger.models import Checkpoint

pytestmark = pytest.mark.django_db

LATEST = "/api/v1/ledger/checkpoints/latest"
CHECKPOINTS = "/api/v1/ledger/checkpoints"
KEYS = "/api/v1/ledger/verifier-keys"


@pytest.fixture(autouse=True)
def _fresh_throttle():
    cache.clear()  # anonymous calls share one throttle bucket across tests


@pytest.fixture
def client():
    return APIClient()


def grow(world, batch, times=1):
    for _ in range(times):
        services.credit_transfer(
            actor=world.dev,
            batch=batch.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=1000,
        )


@pytest.fixture
def three_checkpoints(world):
    """Checkpoints at three sizes, oldest first."""
    world.batch = world.issue()
    made = [services.ledger_checkpoint_issue()]
    for _ in range(2):
        grow(world, world.batch, 2)
        made.append(services.ledger_checkpoint_issue())
    return made


def published_keys(client) -> list[Verifier]:
    return [Verifier.from_string(line) for line in client.get(KEYS).content.decode().splitlines()]


def test_before_any_checkpoint_latest_is_a_json_404(world, client):
    r = client.get(LATEST)
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


def test_latest_is_the_newest_note_byte_for_byte_as_text(three_checkpoints, client):
    r = client.get(LATEST)
    assert r.status_code == 200
    assert r["Content-Type"] == "text/plain; charset=utf-8"
    assert r.content.decode() == three_checkpoints[-1].note
    assert "immutable" not in r.get("Cache-Control", "")


def test_a_client_that_accepts_only_text_gets_the_note_and_its_errors(world, client):
    # A note client (Go's sumdb/note, curl -H 'Accept: text/plain') must not get 406.
    assert client.get(LATEST, HTTP_ACCEPT="text/plain").status_code == 404
    services.ledger_checkpoint_issue()
    r = client.get(LATEST, HTTP_ACCEPT="text/plain")
    assert r.status_code == 200
    assert r.content.decode() == Checkpoint.objects.get().note
    assert client.get(KEYS, HTTP_ACCEPT="text/plain").status_code == 200
    assert client.get(f"{CHECKPOINTS}/999", HTTP_ACCEPT="text/plain").status_code == 404


def test_each_size_keeps_its_own_note_for_good(three_checkpoints, client):
    for checkpoint in three_checkpoints:
        r = client.get(f"{CHECKPOINTS}/{checkpoint.size}")
        assert r.status_code == 200
        assert r.content.decode() == checkpoint.note
        assert r["Content-Type"].startswith("text/plain")
        assert "immutable" in r["Cache-Control"]


@pytest.mark.parametrize("size", ["0", "2", "999999", str(2**62), str(2**80), "-1", "x", "٣"])
def test_a_size_without_a_checkpoint_is_a_json_404(three_checkpoints, client, size):
    if size == "2":
        assert not Checkpoint.objects.filter(size=2).exists()
    r = client.get(f"{CHECKPOINTS}/{size}")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


def test_the_list_gives_every_checkpoint_with_its_root_and_key(three_checkpoints, client):
    page = client.get(CHECKPOINTS).json()
    assert page["next_after"] is None
    assert [c["size"] for c in page["checkpoints"]] == [c.size for c in three_checkpoints]
    signer = signing.get_signer()
    for item, checkpoint in zip(page["checkpoints"], three_checkpoints, strict=True):
        assert base64.b64decode(item["root"]) == bytes(checkpoint.root)
        assert item["note"] == checkpoint.note
        assert (item["key_name"], item["key_hash"]) == (signer.name, signer.key_hash.hex())
        assert item["created_at"].endswith("Z")
        opened, _ = checkpoint_open(item["note"], published_keys(client))
        assert (opened.size, opened.root) == (item["size"], bytes(checkpoint.root))


def test_the_list_pages_by_size(three_checkpoints, client):
    sizes = [c.size for c in three_checkpoints]
    first = client.get(CHECKPOINTS, {"limit": 2}).json()
    assert [c["size"] for c in first["checkpoints"]] == sizes[:2]
    assert first["next_after"] == sizes[1]
    rest = client.get(CHECKPOINTS, {"after": first["next_after"], "limit": 2}).json()
    assert [c["size"] for c in rest["checkpoints"]] == sizes[2:]
    assert rest["next_after"] is None
    exactly = client.get(CHECKPOINTS, {"after": sizes[0], "limit": 2}).json()
    assert [c["size"] for c in exactly["checkpoints"]] == sizes[1:]
    assert exactly["next_after"] is None  # a full page, but nothing follows


@pytest.mark.parametrize(
    "params", [{"after": "-1"}, {"after": "a"}, {"limit": "0"}, {"limit": "1001"}]
)
def test_bad_list_parameters_are_400(three_checkpoints, client, params):
    r = client.get(CHECKPOINTS, params)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_field"


def test_the_published_keys_verify_the_notes_and_nothing_else(three_checkpoints, client):
    r = client.get(KEYS)
    assert r["Content-Type"] == "text/plain; charset=utf-8"
    keys = published_keys(client)
    assert signing.get_signer().verifier() in keys
    checkpoint, _ = checkpoint_open(client.get(LATEST).content.decode(), keys)
    assert checkpoint.size == three_checkpoints[-1].size
    # The same note with its size changed must not verify: the keys are what make it evidence.
    forged = (
        client.get(LATEST)
        .content.decode()
        .replace(f"\n{checkpoint.size}\n", f"\n{checkpoint.size + 1}\n", 1)
    )
    with pytest.raises(ValueError, match="invalid signature"):
        checkpoint_open(forged, keys)


@pytest.fixture
def own_keys(settings, tmp_path):
    """A signing key and verifier-keys file of this test's own, so rotating is harmless."""
    settings.LEDGER_SIGNING_KEY_FILE = tmp_path / "keys" / "signing.key"
    settings.LEDGER_VERIFIER_KEYS_FILE = tmp_path / "keys" / "verifier-keys.txt"


def test_after_a_key_rotation_both_keys_are_published_and_old_notes_still_verify(
    world, own_keys, client
):
    b = world.issue()
    before = services.ledger_checkpoint_issue()
    old, new = signing.rotate_signing_key()
    grow(world, b)
    after = services.ledger_checkpoint_issue()
    assert (before.key_hash, after.key_hash) == (old.key_hash.hex(), new.key_hash.hex())

    keys = published_keys(client)
    assert old in keys and new in keys
    for checkpoint in (before, after):
        note = client.get(f"{CHECKPOINTS}/{checkpoint.size}").content.decode()
        opened, signed = checkpoint_open(note, keys)
        assert opened.size == checkpoint.size
        assert [s.key_hash for s in signed.verified] == [bytes.fromhex(checkpoint.key_hash)]


def test_rotations_run_at_the_same_time_happen_one_after_another(own_keys, settings):
    from concurrent.futures import ThreadPoolExecutor

    first = signing.get_signer().verifier()
    with ThreadPoolExecutor(4) as pool:
        rotations = list(pool.map(lambda _: signing.rotate_signing_key(), range(4)))
    # A chain: each rotation retired the key the one before it made, and none was lost.
    olds = {old.to_string() for old, _ in rotations}
    news = {new.to_string() for _, new in rotations}
    assert len(news) == 4 and first.to_string() in olds
    assert olds - news == {first.to_string()} and len(news - olds) == 1
    current = signing.get_signer().verifier().to_string()
    assert news - olds == {current}
    key = settings.LEDGER_SIGNING_KEY_FILE
    retired = sorted(key.parent.glob(f"{key.name}.retired-*"))
    assert len(retired) == 4
    trusted = settings.LEDGER_VERIFIER_KEYS_FILE.read_text().split()
    assert set(trusted) == olds | news
