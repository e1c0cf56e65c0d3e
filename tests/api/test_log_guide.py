"""docs/api.md, the registry integration guide, is run: its request bodies are sent to the API
and its Python (the ledger checker and the webhook signature check) is executed against the
real endpoints. A guide that drifts from the API fails here."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from ledger import services, signing, webhooks
from ledger.core.note import Checkpoint, Signer, checkpoint_sign
from ledger.models import LedgerEntry, Methodology
from tests import factories

pytestmark = pytest.mark.django_db

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


@pytest.fixture(autouse=True)
def _fresh_throttle():
    cache.clear()  # anonymous calls share one throttle bucket across tests


def python_block(first_line: str) -> str:
    """The guide's ```python block that starts with ``first_line``."""
    for block in re.findall(r"```python\n(.*?)```", GUIDE, re.DOTALL):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"docs/api.md has no python block starting {first_line!r}")


def request_bodies() -> dict[str, list[dict[str, Any]]]:
    """Every ``curl -s $BASE/<path> ... -d '<json>'`` of the guide, by path."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path, body in re.findall(
        r"curl -s \$BASE/([a-z/0-9-]+) [^']*?-d '(.*?)'", GUIDE, re.DOTALL
    ):
        found.setdefault(path, []).append(json.loads(body))
    return found


# ---- the walk-through ------------------------------------------------------------------------


def test_the_walk_through_requests_are_accepted_as_written(world, client_for):
    """The guide's bodies, with only the ids replaced by this test's own: the registry holds
    account 9 of the guide, the buyer account 12."""
    bodies = request_bodies()
    assert {"projects", "batches", "transfers", "retirements", "cancellations", "reversals"} <= set(
        bodies
    )
    registry = client_for(world.registry)
    mine, theirs = factories.account(world.registry).pk, world.buyer_account.pk
    ids = {"sender": mine, "account": mine, "holder": mine, "recipient": theirs}

    project = dict(
        bodies["projects"][0],
        methodology=Methodology.objects.first().pk,
        developer=world.developer.pk,
    )
    r = registry.post("/api/v1/projects", project, format="json", HTTP_IDEMPOTENCY_KEY="p")
    assert r.status_code == 201, r.json()
    assert r.json()["area_ha"] == "41.5000"
    again = registry.post("/api/v1/projects", project, format="json", HTTP_IDEMPOTENCY_KEY="p")
    assert (again.status_code, again["Idempotent-Replayed"]) == (201, "true")
    project_id = r.json()["id"]

    def fill(body: dict[str, Any]) -> dict[str, Any]:
        known = {k: v for k, v in ids.items() if k in body}
        return {**body, **known, "batch": batch_id, "project": project_id}

    batch_id = None
    batch = fill(bodies["batches"][0])
    del batch["batch"]
    r = registry.post("/api/v1/batches", batch, format="json")
    assert r.status_code == 201, r.json()
    issued = r.json()
    assert (issued["issued"], issued["buffer_withheld"], issued["buffer_share"]) == (
        "220.000",
        "22.000",
        "10.00",
    )
    batch_id = issued["id"]

    r = registry.post("/api/v1/transfers", fill(bodies["transfers"][0]), format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["quantity"] == "110.000"
    entry = json.loads(bytes(LedgerEntry.objects.get(seq=r.json()["entry_seq"]).body))
    assert entry["data"] == {"batch": batch_id, "from": mine, "quantity": 110_000, "to": theirs}

    r = registry.post("/api/v1/retirements", fill(bodies["retirements"][0]), format="json")
    assert r.status_code == 201, r.json()
    assert re.fullmatch(r"BCR-\d{4}-\d{10}", r.json()["certificate"])
    assert r.json()["quantity"] == "50.000"

    r = registry.post("/api/v1/cancellations", fill(bodies["cancellations"][0]), format="json")
    assert r.status_code == 201, r.json()
    r = registry.post("/api/v1/reversals", fill(bodies["reversals"][0]), format="json")
    assert r.status_code == 201, r.json()

    r = registry.post("/api/v1/escrow-holds", fill(bodies["escrow-holds"][0]), format="json")
    assert r.status_code == 201, r.json()
    hold = r.json()
    assert (hold["quantity"], hold["remaining"]) == ("20.000", "20.000")
    release = bodies["escrow-holds/3/release"][0]
    r = registry.post(f"/api/v1/escrow-holds/{hold['id']}/release", release, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["remaining"] == "0.000"

    bulk = {"operations": [fill(op) for op in bodies["bulk"][0]["operations"]]}
    for op in bulk["operations"]:
        del op["project"]
    r = registry.post("/api/v1/bulk", bulk, format="json")
    assert r.status_code == 201, r.json()
    results = r.json()["results"]
    assert [(x["index"], x["op"]) for x in results] == [(0, "transfer"), (1, "retire")]
    assert "certificate" in results[1]

    r = client_for(world.buyer, "read").post(
        "/api/v1/webhooks", bodies["webhooks"][0], format="json"
    )
    assert r.status_code == 201, r.json()
    assert r.json()["secret"].startswith("whsec_")


def test_every_error_code_is_documented_with_the_statuses_it_is_answered_with():
    # Every app's codes, as the schema's error responses list them (each code's statuses).
    import auctions.exceptions  # noqa: F401
    import ledger.apis.errors  # noqa: F401
    import listings.exceptions  # noqa: F401
    from bluecarbon.errors import Codes

    declared = {str(code): code.statuses for code in Codes.every()}
    docs = Path(__file__).resolve().parents[2] / "docs"
    auction_guide = (docs / "auctions.md").read_text()
    listing_guide = (docs / "listings.md").read_text()
    documented: dict[str, tuple[int, ...]] = {}
    for text in (GUIDE, auction_guide, listing_guide):
        for code, statuses in re.findall(r"^\| `([a-z_]+)` \| ([0-9][0-9, ]*) \|", text, re.M):
            documented[code] = tuple(int(s) for s in statuses.split(","))
    assert documented == declared


# ---- check.py against the real endpoints -------------------------------------------------------


@pytest.fixture
def checker(world):
    """check.py from the guide, with its HTTP calls routed through the test client and the key
    it pins set to this log's."""
    b = world.issue()
    for _ in range(6):
        services.credit_transfer(
            actor=world.dev,
            batch=b.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=1000,
        )
    services.ledger_checkpoint_issue()
    http = APIClient()

    def get(path: str) -> bytes:
        r = http.get("/api/v1" + path)
        if r.status_code != 200:
            raise OSError(f"HTTP {r.status_code}: {r.content[:200]!r}")
        return r.content

    code = python_block("# check.py")
    namespace: dict[str, Any] = {"__name__": "check"}
    exec(compile(code, "docs/api.md:check.py", "exec"), namespace)
    namespace["get"] = get
    namespace["ORIGIN"] = settings.LEDGER_ORIGIN
    namespace["VKEY"] = get("/ledger/verifier-keys").decode().split()[0]
    namespace["world"], namespace["batch"] = world, b
    return namespace


def test_the_guides_checker_proves_every_entry_against_the_signed_checkpoint(checker):
    size = LedgerEntry.objects.count()
    for seq in range(size):
        entry = checker["check_entry"](seq)
        assert entry["seq"] == seq


def test_the_guides_checker_refuses_an_entry_that_was_changed(checker):
    real_get = checker["get"]
    seq = LedgerEntry.objects.filter(type="credit.transfer").first().seq

    def tampered(path: str) -> bytes:
        content = real_get(path)
        if path == f"/ledger/entries/{seq}":
            content = content.replace(b'\\"quantity\\":1000', b'\\"quantity\\":1001')
        return content

    checker["get"] = tampered
    with pytest.raises(ValueError, match=f"entry {seq} is not in the signed tree"):
        checker["check_entry"](seq)


def test_the_guides_checker_refuses_a_checkpoint_the_pinned_key_did_not_sign(checker):
    real_get = checker["get"]
    impostor = Signer.generate(settings.LEDGER_ORIGIN)
    size = LedgerEntry.objects.count()
    forged = checkpoint_sign(Checkpoint(settings.LEDGER_ORIGIN, size, bytes(32)), impostor)
    checker["get"] = lambda path: (
        forged.encode() if path == "/ledger/checkpoints/latest" else real_get(path)
    )
    with pytest.raises(ValueError, match="not a checkpoint of this log"):
        checker["check_entry"](0)
    checker["ORIGIN"] = "another.example/log"
    checker["get"] = real_get
    with pytest.raises(ValueError, match="not a checkpoint of this log"):
        checker["check_entry"](0)


def test_the_guides_checker_accepts_growth_and_refuses_a_rewritten_history(checker):
    get = checker["get"]
    old = get("/ledger/checkpoints/latest").decode()
    world, b = checker["world"], checker["batch"]
    for _ in range(3):
        services.credit_transfer(
            actor=world.dev,
            batch=b.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=1000,
        )
    services.ledger_checkpoint_issue()
    new = get("/ledger/checkpoints/latest").decode()
    assert new != old
    checker["check_growth"](old, new)
    checker["check_growth"](old, old)

    # A log that signed another root for the old size: the proof no longer fits.
    signer = signing.get_signer()
    size = int(old.split("\n")[1])
    rewritten = checkpoint_sign(Checkpoint(settings.LEDGER_ORIGIN, size, bytes(32)), signer)
    with pytest.raises(ValueError, match="not consistent"):
        checker["check_growth"](rewritten, new)


def test_the_guides_follower_walks_the_whole_chain(checker):
    entries = list(checker["follow"]())
    assert [e["seq"] for e in entries] == list(range(LedgerEntry.objects.count()))
    last = entries[-1]
    world, b = checker["world"], checker["batch"]
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=1000,
    )
    head = LedgerEntry.objects.get(seq=last["seq"])
    more = list(checker["follow"](last["seq"], hashlib.sha256(bytes(head.body)).hexdigest()))
    assert [e["type"] for e in more] == ["credit.transfer"]
    with pytest.raises(ValueError, match="chain breaks"):
        list(checker["follow"](last["seq"], "0" * 64))


def test_a_retirement_certificate_checks_out_offline_with_the_guides_functions(checker, client_for):
    world, b = checker["world"], checker["batch"]
    r = client_for(world.developer, "retire").post(
        "/api/v1/retirements",
        {
            "batch": b.pk,
            "account": world.dev_account.pk,
            "quantity": "1.5",
            "beneficiary": "Wanning City",
            "purpose": "2023 operations",
            "jurisdiction": "CN-HI",
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    services.ledger_checkpoint_issue()
    certificate = client_for(world.buyer, "read").get(
        f"/api/v1/retirements/{r.json()['certificate']}"
    )
    assert certificate.status_code == 200, certificate.json()
    c = certificate.json()
    size, root = checker["open_checkpoint"](c["checkpoint"])
    proof = c["inclusion_proof"]
    assert (proof["tree_size"], proof["leaf_index"]) == (size, c["entry_seq"])
    leaf = checker["H"](b"\x00" + c["entry"].encode())
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    assert checker["root_from_inclusion"](leaf, proof["leaf_index"], size, hashes) == root
    wrong = checker["H"](b"\x00" + c["entry"].replace("1500", "1501").encode())
    assert checker["root_from_inclusion"](wrong, proof["leaf_index"], size, hashes) != root


# ---- the webhook signature check ---------------------------------------------------------------


def test_the_guides_webhook_check_accepts_what_we_sign_and_nothing_else():
    namespace: dict[str, Any] = {"__name__": "verify_webhook"}
    exec(python_block("# verify_webhook.py"), namespace)
    verify = namespace["verify_webhook"]
    secret, body = "whsec_test", b'{"id":1,"seq":7}'
    now = int(time.time())
    header = webhooks.sign(secret, now, body)
    assert header.startswith(f"t={now},v1=")
    assert verify(secret, header, body)
    assert webhooks.SIGNATURE_HEADER in GUIDE and webhooks.DELIVERY_HEADER in GUIDE
    assert not verify(secret, header, body + b" ")
    assert not verify("whsec_other", header, body)
    assert not verify(secret, webhooks.sign(secret, now - 3600, body), body)
    assert not verify(secret, "garbage", body)
    assert not verify(secret, f"t={now}", body)
