"""The parallel verifier (``ledger/verify_parallel.py``) reports exactly what the serial one
does: the same report on a sound ledger, the same first failure, in the same words, on a
tampered one. PostgreSQL only (it reads with COPY)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from ledger import services, verify_parallel
from ledger.models import LedgerEntry
from ledger.signing import trusted_verifiers
from ledger.verify import VerificationError, verify_ledger
from tests.ledger.test_tamper import body, bypass_triggers, restore_triggers, set_body

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY: PostgreSQL only"),
]


@pytest.fixture
def busy_ledger(world):
    """Transfers to new and existing holdings, a retirement, and checkpoints at several sizes,
    so runs start, end and split everywhere in tiny chunks."""
    b = world.issue(5_000_000)
    for i in range(24):
        services.credit_transfer(
            actor=world.dev,
            batch=b.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=1_000 + i,
        )
        if i == 9:
            services.credit_retire(
                actor=world.buy,
                batch=b.pk,
                account=world.buyer_account.pk,
                quantity=500,
                beneficiary="Xiangshan County",
                purpose="offset",
                jurisdiction="CN-ZJ",
            )
        if i in (4, 13, 20):
            services.ledger_checkpoint_issue()
    services.ledger_checkpoint_issue()
    return world


def outcome(settings, monkeypatch, parallel: bool) -> str:
    if parallel:
        settings.LEDGER_VERIFY_WORKERS = 2
        monkeypatch.setattr(verify_parallel, "MIN_ENTRIES", 0)
        monkeypatch.setattr(verify_parallel, "SEGMENT", 11)
        monkeypatch.setattr(verify_parallel, "CHUNK", 4)
    else:
        settings.LEDGER_VERIFY_WORKERS = 0
    try:
        report = verify_ledger(verifiers=trusted_verifiers())
    except VerificationError as exc:
        return f"FAILED at {exc.seq}: {exc}"
    assert bool(report.worker_peak_rss_mb) == parallel
    return (
        f"OK {report.entries} entries, {report.checkpoints} checkpoints, {report.records} "
        f"records, latest {report.latest_checkpoint}, {report.notes}"
    )


@pytest.mark.parametrize("slot_bytes", [verify_parallel.SLOT_BYTES, 400])
def test_a_sound_ledger_gets_the_same_report(busy_ledger, settings, monkeypatch, slot_bytes):
    """Also with slots so small that chunks end early and bigger rows go alone, by value."""
    serial = outcome(settings, monkeypatch, parallel=False)
    assert serial.startswith("OK")
    monkeypatch.setattr(verify_parallel, "SLOT_BYTES", slot_bytes)
    assert outcome(settings, monkeypatch, parallel=True) == serial


@pytest.mark.slow
def test_every_altered_entry_fails_the_same_way(busy_ledger, settings, monkeypatch):
    seqs = list(LedgerEntry.objects.order_by("seq").values_list("seq", flat=True))
    for seq in seqs:
        original = body(seq)
        for tampered in (
            original.replace(b'"v":1}', b'"v":2}'),  # no longer a valid version-1 entry
            original.replace(b"000", b"001", 1),  # a changed amount, id or hash digit
        ):
            if tampered == original:
                continue
            with transaction.atomic():
                bypass_triggers()
                set_body(seq, tampered)
                restore_triggers()
                serial = outcome(settings, monkeypatch, parallel=False)
                assert serial.startswith("FAILED"), (seq, tampered)
                assert outcome(settings, monkeypatch, parallel=True) == serial, (seq, tampered)
                transaction.set_rollback(True)
