"""The checkpoint signer signs only what extends the last tree it signed, from its own state
and the new entries: an insider with database rights (triggers lifted and put back) cannot get
a rewritten, rolled-back or re-rooted history signed, and what they delete comes back."""

from __future__ import annotations

import shutil

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F

from ledger import selectors, services, signer
from ledger.core.entry import entry_hash
from ledger.models import (
    Checkpoint,
    Holding,
    LedgerEntry,
    LedgerHead,
    MerkleNode,
    SignerAlarm,
    TreeHead,
)
from ledger.signing import get_signer, trusted_verifiers
from ledger.verify import verify_ledger
from tests.ledger.test_tamper import (
    bypass_triggers,
    failure,
    rewrite_history,
    transfer_seqs,
)
from tests.ledger.test_tamper import ledger as ledger

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("verifier_path")]


def more(world, n: int = 3) -> None:
    for q in range(1, n + 1):
        services.credit_transfer(
            actor=world.dev,
            batch=world.batch.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=q,
        )


def refused(match: str) -> SignerRefused:
    with pytest.raises(signer.SignerRefused, match=match) as info:
        services.ledger_checkpoint_issue()
    assert SignerAlarm.objects.filter(message=str(info.value)).exists()
    return info.value


SignerRefused = signer.SignerRefused


def test_it_signs_new_entries_from_its_own_state(ledger):
    state = signer.state_read()
    assert state is not None and state.size == LedgerEntry.objects.count()
    more(ledger)
    checkpoint = services.ledger_checkpoint_issue()
    assert checkpoint.size == LedgerEntry.objects.count() == signer.state_read().size
    assert bytes(checkpoint.root) == selectors.tree_root(checkpoint.size)
    assert services.ledger_checkpoint_issue() is None  # nothing new
    verify_ledger(verifiers=trusted_verifiers())


def test_a_rewritten_history_is_refused_even_with_the_real_key(ledger):
    """Attack 3: an entry rewritten, the chain and tree rebuilt after it, the checkpoints
    re-signed (or deleted), then the real signer asked to sign: it refuses."""
    size = rewrite_history(ledger, transfer_seqs()[0], get_signer())
    more(ledger)
    refused("history was rewritten")
    assert Checkpoint.objects.order_by("-size").first().size == size  # nothing new signed
    assert "is not stored" in str(failure())


def test_deleted_checkpoints_are_published_again_and_caught_meanwhile(ledger):
    """Attack 2: the newest checkpoints, or all of them, deleted."""
    signed = Checkpoint.objects.order_by("-size").first()
    bypass_triggers()
    Checkpoint.objects.all().delete()
    err = failure()
    assert f"latest checkpoint (size {signed.size}) is not stored" in str(err)

    services.ledger_checkpoint_issue()  # the signer puts back what it signed
    back = Checkpoint.objects.get(size=signed.size)
    assert back.note == signed.note
    assert SignerAlarm.objects.filter(message__contains="missing from the database").exists()
    verify_ledger(verifiers=trusted_verifiers())


def test_a_rollback_with_its_checkpoints_is_refused_and_caught(ledger):
    """Attack 5: the ledger truncated back to an earlier size together with its checkpoints
    and its stored tree, consistently."""
    more(ledger)  # three transfers of 1, 2 and 3 kg
    services.ledger_checkpoint_issue()
    signed = signer.state_read().size
    keep = signed - 3
    bypass_triggers()
    for account, delta in ((ledger.dev_account, 6), (ledger.buyer_account, -6)):
        Holding.objects.filter(account=account, batch=ledger.batch).update(
            tradable=F("tradable") + delta
        )
    Checkpoint.objects.all().delete()
    LedgerEntry.objects.filter(seq__gte=keep).delete()
    MerkleNode.objects.all().delete()
    TreeHead.objects.filter(pk=1).update(size=0)
    last = LedgerEntry.objects.get(seq=keep - 1)
    LedgerHead.objects.filter(pk=1).update(size=keep, last_hash=entry_hash(bytes(last.body)))
    services.tree_extend()
    err = str(failure())
    assert f"the ledger has {keep} entries, but the checkpoint signer signed {signed}" in err
    refused("a rollback")


def test_a_changed_stored_tree_is_refused(ledger):
    """The signer reads the stored tree's right edge at the size it signed, only to raise
    this: what it signs never comes from there."""
    bypass_triggers()
    MerkleNode.objects.filter(level=3, index=0).update(hash=b"\x07" * 32)
    more(ledger)
    refused("stored Merkle tree's root at size")


def test_a_crash_between_the_row_and_the_state_signs_nothing_twice(ledger, tmp_path):
    path = signer.state_path()
    shutil.copy(path, tmp_path / "before.json")
    more(ledger)
    first = services.ledger_checkpoint_issue()
    shutil.copy(tmp_path / "before.json", path)  # the state write never happened
    assert services.ledger_checkpoint_issue() is None  # same tree: the stored row stands
    assert signer.state_read().size == first.size
    assert Checkpoint.objects.filter(size=first.size).count() == 1


def test_a_lost_state_needs_an_operator_in_production(ledger, settings, tmp_path):
    latest = Checkpoint.objects.order_by("-size").first()
    signer.state_reset()
    settings.PRODUCTION = True
    more(ledger)
    refused("run `manage.py ledger_signer_init`")

    with pytest.raises(CommandError, match="name the checkpoint to start from"):
        call_command("ledger_signer_init")
    note = tmp_path / "checkpoint.txt"
    note.write_text(latest.note)
    call_command("ledger_signer_init", "--checkpoint", str(note))
    assert signer.state_read().size == latest.size
    assert services.ledger_checkpoint_issue().size == LedgerEntry.objects.count()


def test_init_refuses_a_checkpoint_the_entries_do_not_match(ledger, tmp_path):
    latest = Checkpoint.objects.order_by("-size").first()
    size = rewrite_history(ledger, transfer_seqs()[1], get_signer())
    assert size == latest.size
    signer.state_reset()
    note = tmp_path / "checkpoint.txt"
    note.write_text(latest.note)  # the one the auditor kept, from before the rewrite
    with pytest.raises(CommandError, match="do not hash to the checkpoint's root"):
        call_command("ledger_signer_init", "--checkpoint", str(note))


def test_verification_without_a_signer_state_says_so(ledger, settings, tmp_path):
    settings.LEDGER_SIGNER_STATE_FILE = str(tmp_path / "elsewhere.json")
    report = verify_ledger(verifiers=trusted_verifiers())
    assert report.signer_size is None
    assert any("no checkpoint-signer state" in n for n in report.notes)


def test_a_healthy_signer_raises_no_alarm(ledger):
    more(ledger)
    services.ledger_checkpoint_issue()
    assert not SignerAlarm.objects.exists()


def test_an_insider_who_deletes_the_alarm_gets_it_back_at_the_next_run(ledger):
    """The alarm rows are in the database an insider writes; the refusal is not: deleting the
    alarm changes nothing, the next signing run refuses and records it again."""
    bypass_triggers()
    MerkleNode.objects.filter(level=3, index=0).update(hash=b"\x07" * 32)
    more(ledger)
    refused("stored Merkle tree's root at size")
    SignerAlarm.objects.all().delete()
    refused("stored Merkle tree's root at size")


def test_a_checkpoint_never_outruns_the_stored_tree_that_serves_its_proofs(world):
    """Entries committed between the tree's extension and the signature wait for the next
    checkpoint: a checkpoint larger than the stored tree made every proof at its size a
    LookupError (the certificate page answered 500 until the next checkpoint)."""
    from ledger.signer import checkpoint_sign_new

    b = world.issue(1_000_000)
    size = services.tree_extend()
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=5,
    )
    checkpoint = checkpoint_sign_new(up_to=size)
    assert checkpoint is not None and checkpoint.size == size < selectors.ledger_size()
    selectors.inclusion_proof(size - 1, checkpoint.size)  # served from the stored tree
    later = services.ledger_checkpoint_issue()
    assert later is not None and later.size == selectors.ledger_size()
