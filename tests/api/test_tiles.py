"""The log as C2SP tlog-tiles under /api/v1/ledger/tlog/, and proof files: what is served is what
the audit package reads and verifies (its own reader, through the test client), with the cache
headers tlog-tiles asks for; paths are refused unless canonical; an entry over 65,535 bytes is
served in the u32 bundle form only (docs/ledger-format.md §8)."""

from __future__ import annotations

import pytest
from bluecarbon_audit import merkle
from bluecarbon_audit.policy import Policy
from bluecarbon_audit.proof import TlogProof, proof_verify
from bluecarbon_audit.sources import Source
from bluecarbon_audit.tiles import ENTRIES_U32, TileRef, decode_bundle, decode_tile
from bluecarbon_audit.verify import VerifyOptions, verify
from django.test import Client

from ledger import services
from ledger.apis.auth import ALL_SCOPES
from ledger.bulk import bulk_apply
from ledger.models import LedgerEntry
from ledger.signing import trusted_verifiers
from tests.factories import project

pytestmark = pytest.mark.django_db

PREFIX = "/api/v1/ledger/tlog/"


class ClientSource(Source):
    """The audit package's view of the log, fetched through Django's test client."""

    description = "test client"

    def __init__(self, client: Client) -> None:
        self.client = client

    def read(self, name: str) -> bytes | None:
        response = self.client.get(PREFIX + name)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, (name, response.status_code)
        return b"".join(response) if response.streaming else response.content


def grow(world, count: int) -> None:
    """``count`` more entries: transfers of 1 kg, applied in one bulk call."""
    if not hasattr(world, "batch"):
        world.batch = world.issue()
    batch = world.batch
    ops = [
        {
            "op": "transfer",
            "batch": batch.pk,
            "sender": world.dev_account.pk,
            "recipient": world.buyer_account.pk,
            "quantity": "0.001",
        }
        for _ in range(count)
    ]
    bulk_apply(actor=world.dev, scopes=ALL_SCOPES, operations=ops)


@pytest.fixture
def log(world):
    """A ledger of 600 entries, all under a checkpoint."""
    grow(world, 600 - LedgerEntry.objects.count() - 1)  # the batch issue is one entry
    checkpoint = services.ledger_checkpoint_issue()
    assert checkpoint is not None and checkpoint.size == 600
    return world


def policy() -> Policy:
    return Policy.from_flags([v.to_string() for v in trusted_verifiers()], [], None)


def test_the_served_tiles_verify_with_the_audit_package(log, client):
    report = verify(ClientSource(client), VerifyOptions(policy=policy(), workers=0))
    assert report.ok, report.failure
    assert report.size == 600 and report.entries == 600
    assert report.bundles == 3 and report.tiles == 4  # 2 full + 1 partial, 1 level-1 partial
    assert report.registry["batches"] == 1


def test_tiles_are_the_stored_merkle_nodes_and_bundles_the_entries(log, client):
    bodies = [bytes(b) for b in LedgerEntry.objects.order_by("seq").values_list("body", flat=True)]
    leaves = [merkle.leaf_hash(b) for b in bodies]
    tile = decode_tile(client.get(PREFIX + "tile/0/001").content, 256)
    assert tile == leaves[256:512]
    level1 = decode_tile(client.get(PREFIX + "tile/1/000.p/2").content, 2)
    assert level1 == [merkle.root_of(leaves[:256]), merkle.root_of(leaves[256:512])]
    bundle = client.get(PREFIX + "tile/entries/002.p/88", HTTP_ACCEPT_ENCODING="identity")
    assert decode_bundle(bundle.content, 88) == bodies[512:]
    # A narrower partial tile of a size the log had is served too (a client holding an
    # older checkpoint asks for it).
    assert decode_tile(client.get(PREFIX + "tile/0/002.p/5").content, 5) == leaves[512:517]


def test_cache_headers_full_tiles_forever_the_rest_briefly(log, client):
    full = client.get(PREFIX + "tile/0/000")
    assert full.status_code == 200
    assert full["Content-Type"] == "application/octet-stream"
    assert full["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get(PREFIX + "tile/entries/001")["Cache-Control"].endswith("immutable")
    for path in ("tile/0/002.p/88", "tile/entries/002.p/88", "checkpoint"):
        assert client.get(PREFIX + path)["Cache-Control"] == "public, max-age=5", path
    checkpoint = client.get(PREFIX + "checkpoint")
    assert checkpoint["Content-Type"] == "text/plain; charset=utf-8"
    assert checkpoint.content.decode().startswith("bluecarbon.localhost/ledger\n600\n")


def test_entry_bundles_are_gzipped_for_clients_that_ask(log, client):
    plain = client.get(PREFIX + "tile/entries/000", HTTP_ACCEPT_ENCODING="identity")
    zipped = client.get(PREFIX + "tile/entries/000", HTTP_ACCEPT_ENCODING="gzip")
    assert zipped["Content-Encoding"] == "gzip"
    assert len(zipped.content) < len(plain.content) / 3
    import gzip

    assert gzip.decompress(zipped.content) == plain.content


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1",
        "tile/0/x000/001",
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/00/000",
        "tile/0/003",  # beyond the tree
        "tile/0/002",  # not full yet
        "tile/0/002.p/89",
        "tile/2/000.p/1",
        "tile/entries/003",
        "tile/entries-u32/000",  # it holds no large entry: served at tile/entries/000 only
        "tile/data/000",
    ],
)
def test_paths_that_name_no_tile_of_the_log_are_404_in_the_error_shape(log, client, path):
    response = client.get(PREFIX + path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_no_key_is_needed_and_nothing_is_throttled(log, client, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1/hour", "apikey": "1/hour"},
    }
    for _ in range(5):
        assert client.get(PREFIX + "tile/0/000").status_code == 200


def test_an_entry_over_65535_bytes_is_served_in_the_u32_form(world, client):
    ring = [[f"110.{i:05d}", f"21.{i:05d}"] for i in range(3000)]
    ring.append(ring[0])
    project(world.registry, world.developer, location={"type": "Polygon", "coordinates": [ring]})
    big = LedgerEntry.objects.order_by("-seq").first()
    assert len(bytes(big.body)) > 65_535
    services.ledger_checkpoint_issue()
    size = LedgerEntry.objects.count()
    ref = TileRef(ENTRIES_U32, 0, size)
    response = client.get(PREFIX + ref.path)
    assert response.status_code == 200
    entries = decode_bundle(
        b"".join(response) if response.streaming else response.content, size, ENTRIES_U32
    )
    assert entries[big.seq] == bytes(big.body)
    standard = client.get(PREFIX + f"tile/entries/000.p/{size}")
    assert standard.status_code == 404
    assert "is served as tile/entries-u32/000.p/" in standard.json()["message"]
    report = verify(ClientSource(client), VerifyOptions(policy=policy(), workers=0))
    assert report.ok and report.u32_bundles == 1


def test_verifier_keys_and_the_witness_policy_are_published_beside_the_tiles(
    log, client, settings, tmp_path
):
    keys = client.get(PREFIX + "verifier-keys").content.decode().split()
    assert keys == [v.to_string() for v in trusted_verifiers()]
    none = client.get(PREFIX + "witness-policy")
    assert none.status_code == 200 and none.content == b""  # no policy: nothing to pin
    policy_file = tmp_path / "policy"
    policy_file.write_text(f"log {keys[0]}\nquorum none\n")
    settings.LEDGER_WITNESS_POLICY_FILE = str(policy_file)
    assert client.get(PREFIX + "witness-policy").content.decode() == policy_file.read_text()


# ---- proof files -------------------------------------------------------------------------------


def test_an_entry_downloads_as_a_tlog_proof_that_the_package_verifies(log, client):
    response = client.get("/api/v1/ledger/entries/300/proof", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert 'filename="bluecarbon-ledger-300.tlog-proof"' in response["Content-Disposition"]
    text = response.content.decode()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    proof = TlogProof.parse(text)
    assert proof.index == 300
    assert proof.extra == bytes(LedgerEntry.objects.get(seq=300).body)
    verified = proof_verify(proof, policy=policy())
    assert verified.checkpoint.size == 600 and verified.entry.type == "credit.transfer"


def test_a_proof_file_needs_a_checkpoint_covering_the_entry(log, client):
    grow(log, 1)
    response = client.get("/api/v1/ledger/entries/600/proof")
    assert response.status_code == 422
    assert "no signed checkpoint covers entry 600 yet" in response.json()["message"]
    assert client.get("/api/v1/ledger/entries/601/proof").status_code == 404
    assert client.get("/api/v1/ledger/entries/-1/proof").status_code == 404
