"""Witnesses on loopback (real ``bluecarbon-audit witness serve`` processes): the log submits
each checkpoint with a consistency proof, stores and publishes their cosignatures, and a
history an insider rewrote, or rolled back, gets no cosignature but a recorded refusal."""

from __future__ import annotations

import pytest
from bluecarbon_audit.cosignature import verify_cosignature
from bluecarbon_audit.testing import start_witness
from django.conf import settings as django_settings
from django.core.cache import cache
from rest_framework.test import APIClient

from ledger import services, witnesses
from ledger.models import Checkpoint, CheckpointCosignature, WitnessRefusal
from ledger.signing import get_signer, trusted_verifiers
from ledger.verify import VerificationError, verify_ledger
from tests.ledger.test_tamper import rewrite_history, transfer_seqs

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_witnesses(tmp_path, settings):
    """Two witnesses of our log, a policy that needs both."""
    key = get_signer().verifier().to_string()
    started = [
        start_witness(
            tmp_path / name, f"witness.example/{name}", {django_settings.LEDGER_ORIGIN: key}
        )
        for name in ("w1", "w2")
    ]
    policy = tmp_path / "witness-policy.txt"
    policy.write_text(
        "".join(f"witness {w.name.split('/')[-1]} {w.verifier_key} {w.url}\n" for w in started)
        + "group both all w1 w2\nquorum both\n"
    )
    settings.LEDGER_WITNESS_POLICY_FILE = str(policy)
    yield started
    for w in started:
        w.stop()


def transfer(world, batch, quantity: int = 1_000) -> None:
    services.credit_transfer(
        actor=world.dev,
        batch=batch.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=quantity,
    )


def test_each_checkpoint_is_cosigned_with_a_consistency_proof(world, two_witnesses):
    b = world.issue(1_000_000)
    first = services.ledger_checkpoint_issue()
    assert {o.status for o in witnesses.checkpoint_witness()} == {"cosigned"}
    for _ in range(5):
        transfer(world, b)
    second = services.ledger_checkpoint_issue()
    outcomes = witnesses.checkpoint_witness()
    assert [o.status for o in outcomes] == ["cosigned", "cosigned"]
    # The second submission carried a proof from the first size: the witness checked it.
    assert first.size < second.size
    for w in two_witnesses:
        line = CheckpointCosignature.objects.get(checkpoint=second, witness=w.name.split("/")[-1])
        verify_cosignature(w.verifier_key, second.note, line.line)
    assert witnesses.checkpoint_witness()[0].status == "already"

    report = verify_ledger(verifiers=trusted_verifiers(), require_witnesses=True)
    assert report.latest_witnessed is True
    assert report.checkpoints_witnessed == 2

    cache.clear()
    client = APIClient()
    note = client.get("/api/v1/ledger/checkpoints/latest", HTTP_ACCEPT="text/plain").content
    assert note.decode().count("\n— ") == 3  # the log's signature and two cosignatures
    page = client.get("/api/v1/ledger/checkpoints").json()["checkpoints"]
    assert page[-1]["witnessed"] == {
        "quorum": "2 of (w1, w2)",
        "met": True,
        "cosigners": ["w1", "w2"],
    }


def test_a_witness_that_is_down_leaves_the_checkpoint_short_of_the_quorum(world, two_witnesses):
    world.issue(1_000_000)
    two_witnesses[1].stop()
    services.ledger_checkpoint_issue()
    statuses = {o.witness: o.status for o in witnesses.checkpoint_witness()}
    assert statuses == {"w1": "cosigned", "w2": "unreachable"}
    report = verify_ledger(verifiers=trusted_verifiers())
    assert report.latest_witnessed is False
    with pytest.raises(VerificationError, match="not cosigned by the witness quorum"):
        verify_ledger(verifiers=trusted_verifiers(), require_witnesses=True)


def test_a_rewritten_history_signed_with_the_real_key_is_refused_by_the_witnesses(
    world, two_witnesses, settings, tmp_path
):
    """Attack 3 against the witnesses: the operator (database and signing key) rewrites an
    entry they already cosigned and re-signs; no witness cosigns the fork."""
    b = world.issue(1_000_000)
    for _ in range(4):
        transfer(world, b)
    world.batch = b
    services.ledger_checkpoint_issue()
    witnesses.checkpoint_witness()
    cosigned = Checkpoint.objects.order_by("-size").first().size

    rewrite_history(world, transfer_seqs()[0], get_signer())  # same sizes, other roots
    transfer(world, b)
    settings.LEDGER_SIGNER_STATE_FILE = str(tmp_path / "a-new-signer.json")  # and our signer
    services.ledger_checkpoint_issue()  # is re-initialised from the rewritten database
    forged = Checkpoint.objects.order_by("-size").first()
    assert forged.size > cosigned

    outcomes = witnesses.checkpoint_witness()
    assert {o.status for o in outcomes} == {"refused"}
    assert not forged.cosignatures.exists()
    refusals = WitnessRefusal.objects.filter(size=forged.size)
    assert {r.witness for r in refusals} == {"w1", "w2"}
    assert {r.status for r in refusals} == {422}  # the proof from what they cosigned fails
    # And the cosignatures the witnesses gave the true history no longer fit its checkpoint.
    with pytest.raises(VerificationError, match=f"size {cosigned}: a witness's cosignature"):
        verify_ledger(verifiers=trusted_verifiers())


def test_a_changed_cosignature_is_named(world, two_witnesses):
    world.issue(1_000_000)
    services.ledger_checkpoint_issue()
    witnesses.checkpoint_witness()
    row = CheckpointCosignature.objects.get(witness="w1")
    prefix, _, sig = row.line.rstrip("\n").rpartition(" ")
    flipped = ("B" if sig[10] == "A" else "A").join([sig[:10], sig[11:]])
    CheckpointCosignature.objects.filter(pk=row.pk).update(line=f"{prefix} {flipped}\n")
    with pytest.raises(VerificationError, match="cosignature does not verify"):
        verify_ledger(verifiers=trusted_verifiers())


def test_a_witness_ahead_of_the_log_is_an_alarm(world, two_witnesses):
    """The ledger rolled back behind what the witnesses cosigned (attack 5): the next
    submission finds them ahead, and that is recorded and logged, not skipped."""
    b = world.issue(1_000_000)
    services.ledger_checkpoint_issue()
    transfer(world, b)
    services.ledger_checkpoint_issue()
    witnesses.checkpoint_witness()
    latest = Checkpoint.objects.order_by("-size").first()
    # What the rolled-back database shows: an older checkpoint is the latest one.
    older = Checkpoint.objects.filter(size__lt=latest.size).order_by("-size").first()
    assert older is not None
    outcomes = witnesses.checkpoint_witness(older)
    assert {o.status for o in outcomes} == {"refused"}
    assert WitnessRefusal.objects.filter(size=older.size, status=409).count() == 2


def test_the_auditors_checkpoint_page_says_who_cosigned_and_whether_that_meets_the_policy(
    world, two_witnesses
):
    from ledger.models import Role
    from tests import factories
    from tests.portal.test_pages import user_for

    world.issue(1_000_000)
    services.ledger_checkpoint_issue()
    two_witnesses[1].stop()
    witnesses.checkpoint_witness()
    auditor = user_for(factories.organization(Role.AUDITOR), "auditor")
    page = auditor.get("/audit/checkpoints/").content.decode()
    assert "2 of (w1, w2)" in page
    assert "quorum NOT met" in page and ": w1" in page
    assert "— witness.example/w1 " in page  # the note is shown with its cosignature lines


def test_a_lost_signer_state_starts_again_only_from_a_checkpoint_the_witnesses_cosigned(
    world, two_witnesses, settings, tmp_path
):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from ledger import signer

    world.issue(1_000_000)
    checkpoint = services.ledger_checkpoint_issue()
    witnesses.checkpoint_witness()
    signer.state_reset()
    settings.PRODUCTION = True
    bare = tmp_path / "bare.txt"
    bare.write_text(checkpoint.note)  # signed by the log, but with no cosignature
    with pytest.raises(CommandError, match="not cosigned by the witness quorum"):
        call_command("ledger_signer_init", "--checkpoint", str(bare))
    cosigned = tmp_path / "cosigned.txt"
    cosigned.write_text(witnesses.cosigned_note(checkpoint))
    call_command("ledger_signer_init", "--checkpoint", str(cosigned))
    assert signer.state_read().size == checkpoint.size
