"""``manage.py ledger_export_tiles`` and ``ledger_export``, verified by the audit package: a
round trip on ledgers made through the services (an auction re-cleared from the bundle alone),
incremental exports, tampered bundles caught with the right words, and ``bluecarbon-audit
verify`` agreeing with ``manage.py ledger_verify``, on sound ledgers and on tampered ones."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from bluecarbon_audit import bundle
from bluecarbon_audit.policy import Policy
from bluecarbon_audit.sources import open_source
from bluecarbon_audit.verify import Report, VerifyOptions, verify
from django.core.management import CommandError, call_command

from ledger import services
from ledger.models import Batch, LedgerEntry
from ledger.signing import trusted_verifiers
from ledger.verify import VerificationError, verify_ledger
from tests.auctions.conftest import Market, run_to_settlement
from tests.ledger.test_tamper import bypass_triggers, restore_triggers, set_body

pytestmark = pytest.mark.django_db


def keys() -> list[str]:
    return [v.to_string() for v in trusted_verifiers()]


def audit(source: Path, **options) -> Report:
    policy = Policy.from_flags(keys(), [], None)
    return verify(open_source(str(source)), VerifyOptions(policy=policy, workers=0, **options))


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def registry(world):
    """Transfers, a retirement, an escrow hold and its release, a cancellation; checkpointed."""
    b = world.issue(2_340_100)
    for q in (1_000, 2_000, 3_000):
        services.credit_transfer(
            actor=world.dev,
            batch=b.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=q,
        )
    services.credit_retire(
        actor=world.buy,
        batch=b.pk,
        account=world.buyer_account.pk,
        quantity=500,
        beneficiary="Xiangshan County",
        purpose="offset",
        jurisdiction="CN-ZJ",
    )
    hold = services.escrow_hold(
        actor=world.dev, account=world.dev_account.pk, batch=b.pk, quantity=10_000, reference="x"
    )
    services.escrow_release(actor=world.dev, hold=hold.pk, quantity=10_000)
    services.credit_cancel(
        actor=world.dev, account=world.dev_account.pk, batch=b.pk, quantity=700, reason="export"
    )
    services.ledger_checkpoint_issue()
    world.batch = b
    return world


# ---- tile directories ----------------------------------------------------------------------------


def test_exported_tiles_verify_and_agree_with_ledger_verify(registry, tmp_path):
    out = command("ledger_export_tiles", str(tmp_path / "log"))
    size = LedgerEntry.objects.count()
    assert f"size 0 -> {size}: 1 hash tiles, 1 entry bundles" in out
    assert (
        (tmp_path / "log/checkpoint")
        .read_text()
        .startswith(f"bluecarbon.localhost/ledger\n{size}\n")
    )
    assert (tmp_path / "log/verifier-keys").read_text().split() == keys()
    report = audit(tmp_path / "log")
    assert report.ok, report.failure
    db = verify_ledger(verifiers=trusted_verifiers())
    assert report.entries == db.entries == size
    batch = Batch.objects.get()
    assert report.registry["issued_kg"] == batch.issued
    assert report.registry["retired_kg"] == batch.retired == 500
    assert report.registry["cancelled_kg"] == batch.cancelled == 700
    assert report.records == {"retirement": 1, "cancellation": 1}


def test_the_tile_export_is_incremental_and_the_auditor_continues(registry, tmp_path):
    command("ledger_export_tiles", str(tmp_path / "log"))
    state = tmp_path / "audit-state.json"
    first = audit(tmp_path / "log", state_path=state)
    assert first.ok
    before = LedgerEntry.objects.count()
    for _ in range(300):
        services.credit_transfer(
            actor=registry.dev,
            batch=registry.batch.pk,
            sender=registry.dev_account.pk,
            recipient=registry.buyer_account.pk,
            quantity=1,
        )
    services.ledger_checkpoint_issue()
    out = command("ledger_export_tiles", str(tmp_path / "log"))
    size = LedgerEntry.objects.count()
    # Level 0: the full tile 0 and the partial 1; level 1: the partial of width 1.
    assert f"size {before} -> {size}: 3 hash tiles, 2 entry bundles" in out
    assert "2 superseded partial tiles removed" in out  # tile/0/000.p/ and entries/000.p/
    assert "up to date" in command("ledger_export_tiles", str(tmp_path / "log"))
    second = audit(tmp_path / "log", state_path=state)
    assert second.ok, second.failure
    assert second.start == before and second.entries == size - before


def test_the_tile_export_refuses_before_the_first_checkpoint(world, tmp_path):
    with pytest.raises(CommandError, match="no checkpoint"):
        command("ledger_export_tiles", str(tmp_path / "log"))


# ---- export bundles ------------------------------------------------------------------------------


@pytest.fixture
def auctioned(db):
    """A settled auction, checkpointed."""
    m = Market()
    a = m.auction(closes_in=1.0)
    first, second, third = m.bidders
    m.bid(a, first, [(5000, 30)])
    m.bid(a, second, [(4000, 50), (3500, 20)])
    m.bid(a, third, [(3000, 40)])
    a = run_to_settlement(a)
    assert a.state == "settled"
    services.ledger_checkpoint_issue()
    m.auction_id = a.pk
    return m


def test_the_export_bundle_round_trip_reclears_the_auction(auctioned, tmp_path):
    out = command("ledger_export", str(tmp_path / "export.tar"))
    assert "1 auctions" in out
    with tarfile.open(tmp_path / "export.tar") as tar:
        names = tar.getnames()
        info = json.loads(tar.extractfile(f"{bundle.TOP}/{bundle.INFO}").read())
        auction = json.loads(
            tar.extractfile(f"{bundle.TOP}/auctions/{auctioned.auction_id}.json").read()
        )
    assert names[-1] == f"{bundle.TOP}/{bundle.MANIFEST}"
    assert info["format"] == bundle.FORMAT and info["size"] == LedgerEntry.objects.count()
    assert auction["state"] == "settled" and auction["private_key"]
    report = audit(tmp_path / "export.tar")
    assert report.ok, report.failure
    assert report.auctions["recleared"] == 1 and report.bundle_auctions == 1
    assert report.auctions["by_state"] == {"settled": 1}
    verify_ledger(verifiers=trusted_verifiers())  # and the registry's own verifier agrees


def test_the_installed_command_verifies_the_bundle(auctioned, tmp_path):
    command("ledger_export", str(tmp_path / "export.tar"))
    args = [sys.executable, "-m", "bluecarbon_audit", "verify", str(tmp_path / "export.tar")]
    for key in keys():
        args += ["--key", key]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "auctions: 1 (1 settled); 1 re-cleared from their revealed keys" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("OK: bluecarbon.localhost/ledger verified")


def test_a_changed_byte_in_a_bundle_is_caught_with_its_entry(registry, tmp_path):
    command("ledger_export", str(tmp_path / "export.tar"))
    seq = transfers()[2]
    data = bytearray((tmp_path / "export.tar").read_bytes())
    with tarfile.open(tmp_path / "export.tar") as tar:
        member = tar.getmember(f"{bundle.TOP}/log/tile/entries/000.p/{LedgerEntry.objects.count()}")
    entry = bytes(LedgerEntry.objects.get(seq=seq).body)
    at = data.index(entry, member.offset_data) + entry.index(b'"quantity":') + 11
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    (tmp_path / "bad.tar").write_bytes(bytes(data))
    report = audit(tmp_path / "bad.tar")
    assert report.failure is not None and report.failure.seq == seq + 1
    assert f"entry {seq} was altered, or this one was" in str(report.failure)


def test_a_changed_checkpoint_file_is_caught_by_the_manifest(registry, tmp_path):
    command("ledger_export", str(tmp_path / "export.tar"))
    with tarfile.open(tmp_path / "export.tar") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    top = tmp_path / "x" / bundle.TOP
    size = LedgerEntry.objects.count()
    (top / f"checkpoints/{size}").write_text((top / f"checkpoints/{size}").read_text() + " ")
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        for path in sorted(top.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{bundle.TOP}/{path.relative_to(top).as_posix()}")
    report = audit(tmp_path / "bad.tar")
    assert report.failure is not None and report.failure.check == "source"
    assert f"checkpoints/{size} does not match its SHA-256 in the manifest" in str(report.failure)


def test_an_export_from_a_size_continues_a_saved_state(registry, tmp_path):
    command("ledger_export", str(tmp_path / "full.tar"))
    state = tmp_path / "state.json"
    assert audit(tmp_path / "full.tar", state_path=state).ok
    size = LedgerEntry.objects.count()
    services.credit_transfer(
        actor=registry.dev,
        batch=registry.batch.pk,
        sender=registry.dev_account.pk,
        recipient=registry.buyer_account.pk,
        quantity=1,
    )
    services.ledger_checkpoint_issue()
    command("ledger_export", str(tmp_path / "delta.tar"), "--from", str(size))
    report = audit(tmp_path / "delta.tar", state_path=state)
    assert report.ok, report.failure
    assert report.start == size and report.entries == 1


# ---- agreement with ledger_verify on tampered databases ----------------------------------------


def both_fail(tmp_path: Path) -> tuple[VerificationError, Report]:
    restore_triggers()
    with pytest.raises(VerificationError) as db:
        verify_ledger(verifiers=trusted_verifiers())
    command("ledger_export_tiles", str(tmp_path / "log"))
    report = audit(tmp_path / "log")
    assert report.failure is not None, "the audit package passed a ledger ledger_verify refuses"
    return db.value, report


def transfers() -> list[int]:
    return list(LedgerEntry.objects.filter(type="credit.transfer").values_list("seq", flat=True))


def test_both_name_an_entry_changed_in_place(registry, tmp_path):
    seq = transfers()[1]
    original = bytes(LedgerEntry.objects.get(seq=seq).body)
    bypass_triggers()
    set_body(seq, original.replace(b'"quantity":2000', b'"quantity":2001'))
    db, report = both_fail(tmp_path)
    # ledger_verify may see it first by the entry's MAC (an application secret the package has
    # not); both name the entry.
    assert report.failure.seq == seq + 1
    assert f"entry {seq} was altered, or this one was" in str(report.failure)
    assert db.seq in (seq, seq + 1) and f"entry {db.seq}: " in str(db)


def test_both_name_swapped_entries(registry, tmp_path):
    a, b = transfers()[:2]
    body_a = bytes(LedgerEntry.objects.get(seq=a).body)
    body_b = bytes(LedgerEntry.objects.get(seq=b).body)
    bypass_triggers()
    set_body(a, body_b)
    set_body(b, body_a)
    db, report = both_fail(tmp_path)
    assert db.seq == report.failure.seq == a
    assert f"its bytes say seq {b}" in str(report.failure)


def test_both_refuse_a_history_re_signed_with_another_key(registry, tmp_path):
    from django.conf import settings

    from ledger.core.note import Signer
    from tests.ledger.test_tamper import rewrite_history

    forger = Signer.generate(settings.LEDGER_ORIGIN)
    rewrite_history(registry, transfers()[0], forger)
    _, report = both_fail(tmp_path)
    assert report.failure.check == "checkpoint"
    assert "signature does not verify with a trusted key" in str(report.failure)
