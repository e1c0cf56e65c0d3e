"""Someone with superuser access to the database bypasses the append-only triggers and edits
the ledger. ``ledger_verify`` must fail on every kind of edit and say where."""

from __future__ import annotations

import json

import pytest
import rfc8785
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.utils import timezone

from ledger import services, triggers
from ledger.core import merkle
from ledger.core.entry import ZERO_HASH, entry_hash
from ledger.core.note import Checkpoint as CheckpointBody
from ledger.core.note import Signer, checkpoint_sign
from ledger.models import Checkpoint, Holding, LedgerEntry, LedgerHead, MerkleNode, TreeHead
from ledger.signing import trusted_verifiers
from ledger.verify import VerificationError, verify_ledger

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("verifier_path")]


@pytest.fixture
def ledger(world):
    """About twenty entries, a signed checkpoint over all of them."""
    b = world.issue(2_340_100)
    for q in (1_000, 2_000, 3_000, 4_000):
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
    services.ledger_checkpoint_issue()
    world.batch = b
    return world


def bypass_triggers() -> None:
    """What a superuser can do. The test's transaction rolls it back afterwards."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in triggers.APPEND_ONLY_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    else:
        triggers.uninstall(connection)


def restore_triggers() -> None:
    """The careful attacker puts the triggers back, so only the content can give them away."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Deleted checkpoints leave deferred foreign-key checks (their cosignatures) that
            # ALTER TABLE will not run past: check them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in triggers.APPEND_ONLY_TABLES:
                for name in ("append_only", "no_truncate"):
                    cursor.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_{name}")
    elif not triggers.installed(connection):
        triggers.install(connection)


def body(seq: int) -> bytes:
    return bytes(LedgerEntry.objects.get(seq=seq).body)


def set_body(seq: int, new: bytes, *, with_entry_key: bool = True) -> None:
    """Replace an entry's bytes. By default as an insider who also holds the application's
    entry key (its MAC made anew), so that the other mechanisms are what is tested; with
    ``with_entry_key=False``, as a database insider alone (the MAC left as it was)."""
    from ledger.services import entry_mac

    with connection.cursor() as cursor:
        if with_entry_key:
            cursor.execute(
                "UPDATE ledger_ledgerentry SET body = %s, mac = %s WHERE seq = %s",
                [new, entry_mac(seq, entry_hash(new)), seq],
            )
        else:
            cursor.execute("UPDATE ledger_ledgerentry SET body = %s WHERE seq = %s", [new, seq])


def failure() -> VerificationError:
    restore_triggers()
    with pytest.raises(VerificationError) as info:
        verify_ledger(verifiers=trusted_verifiers())
    return info.value


def transfer_seqs() -> list[int]:
    return list(LedgerEntry.objects.filter(type="credit.transfer").values_list("seq", flat=True))


def test_an_untouched_ledger_verifies(ledger):
    report = verify_ledger(verifiers=trusted_verifiers())
    assert report.entries == LedgerEntry.objects.count()
    assert report.checkpoints == 1


def test_the_append_only_triggers_refuse_update_delete_and_truncate(ledger):
    from django.db import DatabaseError, transaction

    statements = [
        "UPDATE ledger_ledgerentry SET type = 'x' WHERE seq = 0",
        "DELETE FROM ledger_ledgerentry WHERE seq = 0",
        "UPDATE ledger_checkpoint SET note = 'x'",
        "DELETE FROM ledger_merklenode",
    ]
    if connection.vendor == "postgresql":
        statements += [
            "TRUNCATE ledger_ledgerentry",
            "TRUNCATE ledger_checkpoint CASCADE",  # its cosignatures reference it
            # replica mode disables ordinary triggers, not ENABLE ALWAYS ones
            "SET LOCAL session_replication_role = replica; "
            "DELETE FROM ledger_ledgerentry WHERE seq = 0",
        ]
    else:
        statements += ["DELETE FROM ledger_ledgerentry"]
    for sql in statements:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            for part in sql.split("; "):
                cursor.execute(part)
    assert LedgerEntry.objects.count() > 0
    assert LedgerEntry.objects.filter(type="x").count() == 0


def test_a_flipped_byte_is_named_by_the_entry_after_it(ledger):
    seq = transfer_seqs()[1]
    original = body(seq)
    tampered = original.replace(b'"quantity":2000', b'"quantity":2001')
    assert tampered != original
    bypass_triggers()
    set_body(seq, tampered)
    err = failure()
    assert err.seq == seq + 1
    assert f"entry {seq} was altered" in str(err)


def test_a_flipped_byte_in_the_last_entry_breaks_the_signed_root(ledger):
    last = LedgerEntry.objects.count() - 1
    original = body(last)
    bypass_triggers()
    set_body(last, original.replace(b"Xiangshan", b"Xiangshen"))
    err = failure()
    assert err.seq == last
    assert "checkpoint" in str(err) and "root" in str(err)


def test_a_deleted_entry_is_named(ledger):
    seq = transfer_seqs()[2]
    bypass_triggers()
    LedgerEntry.objects.filter(seq=seq).delete()
    err = failure()
    assert err.seq == seq
    assert "missing" in str(err)


def test_a_dropped_tail_is_caught_by_the_checkpoint(ledger):
    size = LedgerEntry.objects.count()
    bypass_triggers()
    LedgerEntry.objects.filter(seq__gte=size - 3).delete()
    err = failure()
    assert f"checkpoint at size {size}" in str(err)
    assert f"ends at {size - 3}" in str(err)


def test_swapped_entries_are_named(ledger):
    a, b = transfer_seqs()[:2]
    body_a, body_b = body(a), body(b)
    bypass_triggers()
    set_body(a, body_b)
    set_body(b, body_a)
    err = failure()
    assert err.seq == a
    assert f"its bytes say seq {b}" in str(err)


def rewrite_history(world, seq: int, signer: Signer) -> int:
    """Change transfer ``seq`` from its quantity to 100,000 kg, fix the holdings to match,
    re-chain every later entry, rebuild the Merkle tree and re-sign every checkpoint with
    ``signer``. Returns the size of the last checkpoint."""
    bypass_triggers()
    entry = LedgerEntry.objects.get(seq=seq)
    old = json.loads(bytes(entry.body))["data"]
    delta = 100_000 - old["quantity"]
    prev = ZERO_HASH
    frontier = merkle.Frontier()
    roots = {}
    for e in LedgerEntry.objects.order_by("seq"):
        obj = json.loads(bytes(e.body))
        obj["prev"] = prev.hex()
        if e.seq == seq:
            obj["data"]["quantity"] = 100_000
        new = rfc8785.dumps(obj)
        set_body(e.seq, new)
        prev = entry_hash(new)
        frontier.append(merkle.leaf_hash(new))
        roots[frontier.size] = frontier.root()
    for account, sign in ((old["from"], -1), (old["to"], 1)):
        h = Holding.objects.get(account_id=account, batch_id=old["batch"])
        Holding.objects.filter(pk=h.pk).update(tradable=h.tradable + sign * delta)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_ledgerhead SET last_hash = %s", [prev])
    MerkleNode.objects.all().delete()
    TreeHead.objects.update(size=0)
    services.tree_extend()
    for cp in Checkpoint.objects.all():
        note = checkpoint_sign(
            CheckpointBody(settings.LEDGER_ORIGIN, cp.size, roots[cp.size]), signer
        )
        Checkpoint.objects.filter(pk=cp.pk).update(root=roots[cp.size], note=note)
    restore_triggers()
    return Checkpoint.objects.order_by("-size").first().size


def test_a_rebuilt_consistent_chain_without_the_signing_key_is_caught(ledger):
    """The attacker changes history (a transfer of 1,000 kg becomes 100,000 kg, and the
    holdings to match), re-chains every later entry, rebuilds the Merkle tree, and re-signs the
    checkpoint with a key of their own: everything is consistent except the signature."""
    forger = Signer.generate(settings.LEDGER_ORIGIN)
    size = rewrite_history(ledger, transfer_seqs()[0], forger)

    err = failure()
    assert err.seq == size - 1
    assert "signature does not verify with a trusted key" in str(err)
    # With the forger's key trusted (attack 7, an extra trusted key), the signer's own state
    # still stands in the way: the checkpoint it signed is not the one stored.
    with pytest.raises(
        VerificationError, match=r"signer.s latest checkpoint \(size \d+\) is not stored"
    ):
        verify_ledger(verifiers=[forger.verifier()])


def test_a_changed_balance_row_is_named(ledger):
    Holding.objects.filter(account=ledger.buyer_account, batch=ledger.batch).update(
        tradable=999_999
    )
    err = failure()
    assert f"holding of account {ledger.buyer_account.pk} in batch {ledger.batch.pk}" in str(err)
    assert "999999" in str(err)


def test_disabled_triggers_fail_verification(ledger):
    bypass_triggers()
    with pytest.raises(VerificationError, match="append-only triggers are missing"):
        verify_ledger(verifiers=trusted_verifiers())


def test_ledger_verify_exits_non_zero_and_names_the_entry(ledger, capsys):
    seq = transfer_seqs()[2]
    bypass_triggers()
    LedgerEntry.objects.filter(seq=seq).delete()
    restore_triggers()
    with pytest.raises(SystemExit) as info:
        call_command("ledger_verify", "--no-progress")
    assert info.value.code == 1
    assert f"FAILED: entry {seq}: missing" in capsys.readouterr().err


def test_a_re_encoded_entry_that_is_not_canonical_is_named(ledger):
    """Same value, same chain, other bytes (pretty-printed): the format itself is checked."""
    bypass_triggers()
    last = LedgerEntry.objects.count() - 1
    pretty = json.dumps(json.loads(body(last)), indent=2, ensure_ascii=False).encode()
    set_body(last, pretty)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_ledgerhead SET last_hash = %s", [entry_hash(pretty)])
    err = failure()
    assert err.seq == last
    assert "RFC 8785" in str(err)


@pytest.mark.parametrize(
    "spelling, said",
    [
        (b',"v":1.0}', "RFC 8785"),  # orjson writes 1.0 where RFC 8785 writes 1
        (b',"v":1e0}', "RFC 8785"),
        (b',"v":true}', "version"),  # true == 1 in Python
    ],
)
def test_another_spelling_of_the_version_is_named(ledger, spelling, said):
    """An insider holding the entry key rewrites the last entry's version as another JSON
    value equal to 1 in Python, MAC and head made anew: the format check names it (it passed
    the fast canonical check before 1c723e8)."""
    bypass_triggers()
    last = LedgerEntry.objects.count() - 1
    forged = body(last).replace(b',"v":1}', spelling)
    assert forged != body(last)
    set_body(last, forged)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_ledgerhead SET last_hash = %s", [entry_hash(forged)])
    err = failure()
    assert err.seq == last
    assert said in str(err)


# ---- the stored Merkle tree: every node is checked, whatever the stored tree's size ----------


def set_node(level: int, index: int, digest: bytes) -> None:
    MerkleNode.objects.filter(level=level, index=index).update(hash=digest)


def rebuild_nodes_from_leaves() -> None:
    """The careful attacker's move after changing a leaf hash: every node above it recomputed,
    so each node is the hash of its children again."""
    size = TreeHead.objects.get(pk=1).size
    leaves = dict(MerkleNode.objects.filter(level=0).values_list("index", "hash"))
    frontier = merkle.Frontier()
    for i in range(size):
        for level, index, digest in frontier.append(bytes(leaves[i])):
            if level:
                set_node(level, index, digest)


def test_a_changed_interior_node_is_named_by_level_and_index(ledger):
    assert TreeHead.objects.get(pk=1).size >= 8  # level 2 has two nodes
    bypass_triggers()
    set_node(2, 1, b"\x42" * 32)
    err = failure()
    assert "stored Merkle node at level 2, index 1 is not the hash of the two nodes below it" in (
        str(err)
    )


def test_a_changed_leaf_hash_with_the_nodes_above_rebuilt_is_named(ledger):
    seq = transfer_seqs()[1]
    bypass_triggers()
    set_node(0, seq, merkle.leaf_hash(b"a different entry"))
    rebuild_nodes_from_leaves()
    err = failure()
    assert f"stored Merkle leaf (level 0, index {seq}) is not the hash of entry {seq}" in str(err)
    assert err.seq == seq


def test_a_deleted_node_and_an_extra_node_are_named(ledger):
    bypass_triggers()
    MerkleNode.objects.filter(level=1, index=3).delete()
    assert "stored Merkle node at level 1, index 3 is missing" in str(failure())

    bypass_triggers()
    size = TreeHead.objects.get(pk=1).size
    MerkleNode.objects.create(level=1, index=3, hash=b"\x00" * 32)  # put a wrong one back
    MerkleNode.objects.create(level=0, index=size, hash=merkle.leaf_hash(b"x"))
    assert f"stored Merkle node at level 0, index {size} lies outside" in str(failure())


def test_a_stored_tree_that_lags_the_ledger_is_checked_too(ledger):
    """Entries written after the last checkpoint are not in the stored tree yet; the nodes it
    has are still every one of them checked (before, only a tree of the ledger's size was)."""
    services.credit_transfer(
        actor=ledger.dev,
        batch=ledger.batch.pk,
        sender=ledger.dev_account.pk,
        recipient=ledger.buyer_account.pk,
        quantity=7,
    )
    assert TreeHead.objects.get(pk=1).size < LedgerEntry.objects.count()
    report = verify_ledger(verifiers=trusted_verifiers())
    assert report.merkle_nodes == MerkleNode.objects.count() > 0

    bypass_triggers()
    set_node(2, 0, b"\x42" * 32)
    assert "stored Merkle node at level 2, index 0 is not the hash" in str(failure())


def test_a_shrunk_stored_tree_is_caught_by_an_incremental_run(ledger, tmp_path):
    state = tmp_path / "verify-state.json"
    verify_ledger(verifiers=trusted_verifiers(), state_file=state)
    bypass_triggers()
    TreeHead.objects.filter(pk=1).update(size=3)
    restore_triggers()
    with pytest.raises(VerificationError, match=r"fewer than the \d+ verified before"):
        verify_ledger(verifiers=trusted_verifiers(), state_file=state, since_checkpoint=True)


# ---- entries written with database rights alone (no application entry key) -------------------


def forge_tail_transfer(world, quantity: int = 77) -> int:
    """Attack 4: a transfer appended at the tail with a correct chain hash, the holdings
    changed to match, the ledger head moved: everything but the entry's MAC, which needs the
    application's key."""
    from ledger.core.entry import encode_entry, format_time

    bypass_triggers()
    head = LedgerHead.objects.get(pk=1)
    seq = head.size
    body = encode_entry(
        seq=seq,
        prev=bytes(head.last_hash),
        time=format_time(timezone.now()),
        type="credit.transfer",
        actor=world.dev.label,
        data={
            "batch": world.batch.pk,
            "from": world.dev_account.pk,
            "quantity": quantity,
            "to": world.buyer_account.pk,
        },
    )
    LedgerEntry.objects.create(seq=seq, body=body, type="credit.transfer")  # no MAC
    LedgerHead.objects.filter(pk=1).update(size=seq + 1, last_hash=entry_hash(body))
    for account, delta in ((world.dev_account, -quantity), (world.buyer_account, quantity)):
        Holding.objects.filter(account=account, batch=world.batch).update(
            tradable=F("tradable") + delta
        )
    restore_triggers()
    return seq


def test_a_forged_entry_at_the_tail_is_named_and_never_signed(ledger):
    seq = forge_tail_transfer(ledger)
    err = failure()
    assert err.seq == seq
    assert "not authenticated: its MAC is missing" in str(err)

    from ledger.signer import SignerRefused

    with pytest.raises(SignerRefused, match=f"entry {seq} is not authenticated"):
        services.ledger_checkpoint_issue()
    assert Checkpoint.objects.order_by("-size").first().size <= seq


def test_a_rewritten_entry_without_the_entry_key_is_named_at_that_entry(ledger):
    seq = transfer_seqs()[1]
    obj = json.loads(body(seq))
    obj["data"]["quantity"] += 1
    bypass_triggers()
    set_body(seq, rfc8785.dumps(obj), with_entry_key=False)
    err = failure()
    assert err.seq == seq
    assert "not authenticated" in str(err)


@pytest.mark.parametrize("column_levels", [1, 2, 3])
def test_the_stored_tree_is_checked_alike_in_columns_of_any_width(
    ledger, monkeypatch, column_levels
):
    """The check reads the tree in perfect subtrees of 2^16 leaves; with narrow ones the same
    ledger has many, a partial last one and levels above them all, and every node still counts
    (and a changed one above the columns is still named)."""
    from ledger import verify

    monkeypatch.setattr(verify, "_COLUMN_LEVELS", column_levels)
    report = verify_ledger(verifiers=trusted_verifiers())
    assert report.merkle_nodes == MerkleNode.objects.count()
    bypass_triggers()
    set_node(3, 0, b"\x42" * 32)
    assert "stored Merkle node at level 3, index 0 is not the hash" in str(failure())
