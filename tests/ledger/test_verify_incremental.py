"""``ledger_verify --since-checkpoint`` and signing-key rotation."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from ledger import services, signing
from ledger.core.note import checkpoint_open
from ledger.models import Checkpoint, LedgerEntry
from ledger.signing import trusted_verifiers
from ledger.verify import VerificationError, verify_ledger

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("verifier_path")]


@pytest.fixture
def keys(settings, tmp_path):
    """A signing key and a verifier-keys file of this test's own."""
    settings.LEDGER_SIGNING_KEY_FILE = tmp_path / "keys" / "signing.key"
    settings.LEDGER_VERIFIER_KEYS_FILE = tmp_path / "keys" / "verifier-keys.txt"
    return tmp_path


def transfer(world, batch, qty=1_000):
    services.credit_transfer(
        actor=world.dev,
        batch=batch.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=qty,
    )


def test_it_verifies_only_the_new_entries_since_the_last_run(world, keys):
    state = keys / "state.json"
    b = world.issue()
    transfer(world, b)
    services.ledger_checkpoint_issue()
    full = verify_ledger(verifiers=trusted_verifiers(), state_file=state)
    for _ in range(5):
        transfer(world, b)
    services.ledger_checkpoint_issue()

    since = verify_ledger(verifiers=trusted_verifiers(), state_file=state, since_checkpoint=True)

    assert since.first_seq == full.entries
    assert since.entries == 5
    assert since.checkpoints == 1
    assert since.latest_checkpoint == LedgerEntry.objects.count()


def test_the_incremental_run_catches_a_change_to_a_new_entry(world, keys):
    state = keys / "state.json"
    b = world.issue()
    services.ledger_checkpoint_issue()
    verify_ledger(verifiers=trusted_verifiers(), state_file=state)
    transfer(world, b, 1_000)
    transfer(world, b, 2_000)
    services.ledger_checkpoint_issue()
    seq = LedgerEntry.objects.count() - 2
    from tests.ledger.test_tamper import body, bypass_triggers, restore_triggers, set_body

    bypass_triggers()
    set_body(seq, body(seq).replace(b'"quantity":1000', b'"quantity":1001'))
    restore_triggers()

    with pytest.raises(VerificationError) as info:
        verify_ledger(verifiers=trusted_verifiers(), state_file=state, since_checkpoint=True)
    assert info.value.seq == seq + 1


def test_the_incremental_run_refuses_a_log_that_did_not_only_grow(world, keys, settings):
    """An insider with the real signing key rewrites an entry the last run already verified,
    re-chains, rebuilds the tree and re-signs: a full run from scratch would pass, but the
    incremental run holds the old checkpoint, and no consistency proof links the two."""
    from tests.ledger.test_tamper import rewrite_history

    state = keys / "state.json"
    b = world.issue()
    transfer(world, b)
    seq = LedgerEntry.objects.count() - 1
    services.ledger_checkpoint_issue()
    verify_ledger(verifiers=trusted_verifiers(), state_file=state)
    transfer(world, b)
    services.ledger_checkpoint_issue()
    rewrite_history(world, seq, signing.get_signer())
    # Where the signer runs, its own state catches this already:
    with pytest.raises(VerificationError, match="is not stored"):
        verify_ledger(verifiers=trusted_verifiers())
    # An auditor elsewhere has no signer state: from scratch the rewrite is self-consistent...
    settings.LEDGER_SIGNER_STATE_FILE = str(keys / "no-signer-here.json")
    verify_ledger(verifiers=trusted_verifiers())
    # ...but the auditor's earlier run holds the old checkpoint, and no proof links the two.
    with pytest.raises(VerificationError, match="not consistent with the previously verified"):
        verify_ledger(verifiers=trusted_verifiers(), state_file=state, since_checkpoint=True)


def test_since_checkpoint_needs_an_earlier_full_run(world, keys):
    signing.get_signer()  # a key to trust (trusted_verifiers reads only the keys file)
    with pytest.raises(VerificationError, match="run a full verification first"):
        verify_ledger(
            verifiers=trusted_verifiers(), state_file=keys / "none.json", since_checkpoint=True
        )


def test_old_checkpoints_still_verify_after_a_key_rotation(world, keys):
    b = world.issue()
    first = services.ledger_checkpoint_issue()
    old_key, new_key = signing.rotate_signing_key()
    transfer(world, b)
    second = services.ledger_checkpoint_issue()

    assert first.key_hash != second.key_hash
    assert checkpoint_open(first.note, [old_key])[0].size == first.size
    assert checkpoint_open(second.note, [new_key])[0].size == second.size
    # Both keys are in the trusted file; the full verification accepts both checkpoints.
    report = verify_ledger(verifiers=trusted_verifiers())
    assert report.checkpoints == 2
    # Without the old key, the first checkpoint no longer verifies.
    with pytest.raises(VerificationError, match=f"checkpoint at size {first.size}"):
        verify_ledger(verifiers=[new_key])


def test_the_command_verifies_the_demo_data(db, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    call_command("ledger_verify", "--no-progress")
    out = capsys.readouterr().out
    assert f"OK: {LedgerEntry.objects.count()} entries" in out
    assert Checkpoint.objects.count() == 1


def test_the_state_file_is_the_owners_alone(world, keys):
    state = keys / "state.json"
    world.issue()
    services.ledger_checkpoint_issue()
    verify_ledger(verifiers=trusted_verifiers(), state_file=state)
    assert state.stat().st_mode & 0o777 == 0o600
