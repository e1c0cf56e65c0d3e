"""The attacks the tamper drill makes (``ledger/drill.py``), and the insider's tools they use.

Each attack is made by one kind of insider (``Attack.who``, the actors of docs/threat-model.md):

``database``     database superuser rights and nothing else: the append-only triggers can be
                 lifted (and put back with ENABLE ALWAYS), any row written;
``application``  that, and the application's entry key (``LEDGER_ENTRY_KEY_FILE``), which every
                 web and Celery process holds: valid entry MACs;
``signing key``  that, and the log's signing key (where the checkpoint signer runs);
``operator``     everything: the database, both keys, and the signer's own state.

Each plans its change on the untouched copy (what to change, or why this ledger has nothing to
change) and makes it on a fresh copy. The copy's tables are changed to match wherever the
attacker would (a careful attacker leaves nothing but what cannot be made consistent).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import BigIntegerField, F, Value
from django.db.models.expressions import CombinedExpression

from . import selectors, services, signer, triggers
from .core import merkle
from .core.entry import ZERO_HASH, canonical_json, encode_entry, entry_hash, format_time
from .core.note import Checkpoint as CheckpointBody
from .core.note import Signer, Verifier, checkpoint_sign
from .models import (
    Account,
    Batch,
    Cancellation,
    Checkpoint,
    CheckpointCosignature,
    EscrowHold,
    EscrowHoldOwner,
    Holding,
    LedgerEntry,
    LedgerHead,
    MerkleNode,
    ProjectDocument,
    Retirement,
    TreeHead,
)

DATABASE = "database"
APPLICATION = "application"
SIGNING_KEY = "signing key"
OPERATOR = "operator"


@dataclass
class Scene:
    """The untouched copy, as the attacks see it."""

    log_key: Signer  # the log's signing key in the drill
    keys_file: Path  # the operator's verifier-keys file (the drill's copy)
    signer_state: Path  # the checkpoint signer's own state (the drill's)
    pinned: list[Verifier]  # the keys the auditor pinned
    size: int = 0  # entries
    checkpoint: int = 0  # the latest checkpoint's size (the signer signed it)
    tree: int = 0  # the stored Merkle tree's size


Step = Callable[[Scene], str]  # makes the attack on a fresh copy; says what it changed


@dataclass(frozen=True)
class Attack:
    id: str
    title: str
    who: str  # DATABASE, APPLICATION, SIGNING_KEY or OPERATOR
    claimed: tuple[str, ...]  # the mechanisms docs/threat-model.md says detect it
    # Picks the target on the untouched copy: the step that makes the attack, or why it cannot
    # be made on this ledger.
    plan: Callable[[Scene], Step | str]
    gap: str = ""  # what the threat model says of what nothing claims


# ---- the insider's tools ------------------------------------------------------------------------


def _sql(statement: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


@contextlib.contextmanager
def superuser() -> Iterator[None]:
    """The append-only triggers lifted (what the tables' owner or a superuser can do), and put
    back afterwards with ENABLE ALWAYS: the careful attacker leaves only the content to give
    them away."""
    for table in triggers.APPEND_ONLY_TABLES:
        _sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    yield
    for table in triggers.APPEND_ONLY_TABLES:
        for name in ("append_only", "no_truncate"):
            _sql(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_{name}")


def _plus(column: str, amount: int) -> CombinedExpression:
    """``column + amount`` in SQL. The amount typed bigint: left to Django, a Python int is an
    IntegerField value, which server-side binding sends as int4, silently wrapped from 2^31 kg
    on (psycopg's Int4)."""
    return F(column) + Value(amount, output_field=BigIntegerField())


def body(seq: int) -> bytes:
    return bytes(LedgerEntry.objects.values_list("body", flat=True).get(seq=seq))


def set_body(seq: int, new: bytes, *, mac: bool) -> None:
    """Entry ``seq``'s bytes replaced; with ``mac``, by an insider holding the entry key, its
    MAC made anew (without, the old MAC stays, and no longer fits)."""
    if mac:
        _sql(
            "UPDATE ledger_ledgerentry SET body = %s, mac = %s WHERE seq = %s",
            [new, services.entry_mac(seq, entry_hash(new)), seq],
        )
    else:
        _sql("UPDATE ledger_ledgerentry SET body = %s WHERE seq = %s", [new, seq])


def rechain(first: int, change: Callable[[dict[str, Any]], None], *, mac: bool) -> None:
    """Entry ``first`` changed by ``change`` (on its parsed JSON) and every later entry given
    the new ``prev``, in canonical form; the head follows. Public arithmetic: only the MACs
    (``mac``) need a key."""
    prev = entry_hash(body(first - 1)) if first else ZERO_HASH
    rows = LedgerEntry.objects.filter(seq__gte=first).order_by("seq").values_list("seq", "body")
    for seq, raw in list(rows):
        obj = json.loads(bytes(raw))
        if seq == first:
            change(obj)
        obj["prev"] = prev.hex()
        new = canonical_json(obj)
        set_body(seq, new, mac=mac)
        prev = entry_hash(new)
    LedgerHead.objects.filter(pk=1).update(last_hash=prev)


def rebuild_tree_from(seq: int) -> None:
    """The stored Merkle nodes over entries from ``seq`` on recomputed from the entries."""
    _sql('DELETE FROM ledger_merklenode WHERE ("index" + 1) << "level" > %s', [seq])
    TreeHead.objects.filter(pk=1, size__gt=seq).update(size=seq)
    services.tree_extend()


def drop_checkpoints(after: int) -> None:
    """Every checkpoint larger than ``after``, with the witnesses' cosignatures of it."""
    CheckpointCosignature.objects.filter(checkpoint__size__gt=after).delete()
    Checkpoint.objects.filter(size__gt=after).delete()


def resign_checkpoints(after: int, key: Signer) -> None:
    """Each checkpoint larger than ``after`` signed again by ``key``, over the rebuilt tree
    (its cosignatures, which no longer fit, removed)."""
    CheckpointCosignature.objects.filter(checkpoint__size__gt=after).delete()
    for cp in Checkpoint.objects.filter(size__gt=after):
        root = selectors.tree_root(cp.size)
        note = checkpoint_sign(CheckpointBody(settings.LEDGER_ORIGIN, cp.size, root), key)
        Checkpoint.objects.filter(pk=cp.pk).update(
            root=root, note=note, key_name=key.name, key_hash=key.key_hash.hex()
        )


def publish(key: Signer) -> Checkpoint:
    """A checkpoint over the whole ledger signed with ``key``, stored as the signer stores one."""
    size = LedgerHead.objects.get(pk=1).size
    services.tree_extend()
    root = selectors.tree_root(size)
    note = checkpoint_sign(CheckpointBody(settings.LEDGER_ORIGIN, size, root), key)
    return Checkpoint.objects.create(
        size=size, root=root, note=note, key_name=key.name, key_hash=key.key_hash.hex()
    )


def rewrite(
    seq: int,
    change: Callable[[dict[str, Any]], None],
    tables: Callable[[], None],
    *,
    mac: bool,
    resign_with: Signer | None = None,
    sign_with: Signer | None = None,
) -> None:
    """A consistent rewrite of history from entry ``seq``: the entry changed, the chain (and,
    with ``mac``, the MACs), the tables (``tables``) and the stored tree made to match; then
    every checkpoint over the change signed again with ``resign_with``, or those checkpoints
    deleted and one over the rewritten ledger signed with ``sign_with``."""
    with superuser():
        rechain(seq, change, mac=mac)
        tables()
        rebuild_tree_from(seq)
        if resign_with is not None:
            resign_checkpoints(seq, resign_with)
        if sign_with is not None:
            drop_checkpoints(seq)
            publish(sign_with)


# ---- the attacks --------------------------------------------------------------------------------


def _middle(scene: Scene) -> int:
    return scene.size // 2


def _plan_nothing(scene: Scene) -> Step:
    return lambda scene: "nothing"


def _plan_byte_flip(scene: Scene) -> Step:
    seq = _middle(scene)

    def step(scene: Scene) -> str:
        raw = bytearray(body(seq))
        # The last digit of the entry's time: the bytes stay a canonical entry; the hash changes.
        at = raw.index(b'Z","type"') - 1
        raw[at] = ord("1") if raw[at] != ord("1") else ord("2")
        with superuser():
            set_body(seq, bytes(raw), mac=False)
        return f"entry {seq}: one digit of its time changed"

    return step


def _plan_delete(scene: Scene) -> Step:
    seq = _middle(scene)

    def step(scene: Scene) -> str:
        with superuser():
            LedgerEntry.objects.filter(seq=seq).delete()
        return f"entry {seq} deleted"

    return step


def _plan_reorder(scene: Scene) -> Step:
    a = _middle(scene)
    b = a + 1

    def step(scene: Scene) -> str:
        with superuser():
            # The whole rows trade places (bytes, type column, MAC).
            _sql(
                "UPDATE ledger_ledgerentry e SET body = o.body, type = o.type, mac = o.mac "
                "FROM ledger_ledgerentry o WHERE (e.seq, o.seq) IN ((%s, %s), (%s, %s))",
                [a, b, b, a],
            )
        return f"entries {a} and {b} swapped (bytes, type and MAC)"

    return step


def _plan_truncate(scene: Scene) -> Step:
    first = scene.size - 3

    def step(scene: Scene) -> str:
        with superuser():
            LedgerEntry.objects.filter(seq__gte=first).delete()
        return f"entries {first}..{scene.size - 1} deleted (head and checkpoints left)"

    return step


def _forged_transfer(scene: Scene, *, mac: bool) -> Step | str:
    """A transfer nobody asked for: from the largest holding to another organization's account,
    appended with the right seq and prev, the head moved and the holdings changed to match."""
    source = (
        Holding.objects.filter(tradable__gt=0, account__kind=Account.Kind.HOLDING)
        .select_related("account")
        .order_by("-tradable", "pk")
        .first()
    )
    if source is None:
        return "no holding account holds tradable credits"
    recipient = (
        Account.objects.filter(kind=Account.Kind.HOLDING)
        .exclude(organization_id=source.account.organization_id)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if recipient is None:
        return "no other organization has a holding account"
    quantity, batch, sender = min(source.tradable, 100_000), source.batch_id, source.account_id
    last = (
        LedgerEntry.objects.filter(type="credit.transfer")
        .order_by("-seq")
        .values_list("body", flat=True)
        .first()
    )
    actor = json.loads(bytes(last))["actor"] if last is not None else "system:drill"

    def step(scene: Scene) -> str:
        head = LedgerHead.objects.get(pk=1)
        raw = encode_entry(
            seq=head.size,
            prev=bytes(head.last_hash),
            time=format_time(dt.datetime.now(dt.UTC)),
            type="credit.transfer",
            actor=actor,
            data={"batch": batch, "from": sender, "quantity": quantity, "to": recipient},
        )
        digest = entry_hash(raw)
        # Appending needs no trigger lifted: it is what the table allows.
        _sql(
            "INSERT INTO ledger_ledgerentry (seq, body, type, mac) VALUES (%s, %s, %s, %s)",
            [
                head.size,
                raw,
                "credit.transfer",
                services.entry_mac(head.size, digest) if mac else None,
            ],
        )
        LedgerHead.objects.filter(pk=1).update(size=head.size + 1, last_hash=digest)
        Holding.objects.filter(account_id=sender, batch_id=batch).update(
            tradable=_plus("tradable", -quantity)
        )
        _sql(
            "INSERT INTO ledger_holding (account_id, batch_id, tradable, escrowed) "
            "VALUES (%s, %s, %s, 0) ON CONFLICT (account_id, batch_id) "
            "DO UPDATE SET tradable = ledger_holding.tradable + EXCLUDED.tradable",
            [recipient, batch, quantity],
        )
        return (
            f"entry {head.size}: credit.transfer of {quantity} kg of batch {batch}, account "
            f"{sender} → {recipient}, actor {actor!r}, "
            + ("with a valid MAC" if mac else "no MAC")
            + "; head and holdings to match"
        )

    return step


def _plan_forged_entry(scene: Scene) -> Step | str:
    return _forged_transfer(scene, mac=False)


def _plan_forged_entry_mac(scene: Scene) -> Step | str:
    return _forged_transfer(scene, mac=True)


def _rewrite_target(
    scene: Scene,
) -> tuple[int, Callable[[dict[str, Any]], None], Callable[[], None], str]:
    """What a rewrite changes: the beneficiary of the latest signed retirement (and its
    retirement row; a retirement claimed twice), or else the actor of the last signed entry.
    (seq, the change to the entry, the change to the tables, what it is.)"""
    retirement = (
        Retirement.objects.filter(entry_seq__lt=scene.checkpoint).order_by("-entry_seq").first()
    )
    if retirement is not None:
        seq, was, now = retirement.entry_seq, retirement.beneficiary, "Someone Else Ltd"

        def beneficiary(obj: dict[str, Any]) -> None:
            obj["data"]["retirement"]["beneficiary"] = now

        def row() -> None:
            Retirement.objects.filter(entry_seq=seq).update(beneficiary=now)

        return seq, beneficiary, row, f"entry {seq}: retirement beneficiary {was!r} → {now!r}"
    seq = scene.checkpoint - 1

    def actor(obj: dict[str, Any]) -> None:
        obj["actor"] = "system:drill"

    return seq, actor, lambda: None, f"entry {seq}: actor → 'system:drill'"


def _plan_rebuild_other_key(scene: Scene) -> Step:
    seq, change, tables, what = _rewrite_target(scene)

    def step(scene: Scene) -> str:
        forger = Signer.generate(settings.LEDGER_ORIGIN)
        rewrite(seq, change, tables, mac=True, resign_with=forger)
        return f"{what}; chain, MACs, tables, tree rebuilt; checkpoints re-signed by another key"

    return step


def _plan_rewrite_real_key(scene: Scene) -> Step:
    seq, change, tables, what = _rewrite_target(scene)

    def step(scene: Scene) -> str:
        rewrite(seq, change, tables, mac=True, sign_with=scene.log_key)
        return (
            f"{what}; chain, MACs, tables, tree rebuilt; later checkpoints deleted, the "
            "rewritten ledger signed with the log's key"
        )

    return step


def _plan_rewrite_signer_reset(scene: Scene) -> Step:
    seq, change, tables, what = _rewrite_target(scene)

    def step(scene: Scene) -> str:
        rewrite(seq, change, tables, mac=True, sign_with=scene.log_key)
        latest = Checkpoint.objects.order_by("-size").first()
        assert latest is not None
        signer.signer_initialise(scene.signer_state, latest.note)
        return (
            f"{what}; rebuilt and signed as above, and the signer's state initialised anew "
            f"from the rewritten database (checkpoint {latest.size})"
        )

    return step


def _plan_extra_key(scene: Scene) -> Step:
    seq, change, tables, what = _rewrite_target(scene)

    def step(scene: Scene) -> str:
        forger = Signer.generate(settings.LEDGER_ORIGIN)
        with scene.keys_file.open("a") as fh:
            fh.write(forger.verifier().to_string() + "\n")
        rewrite(seq, change, tables, mac=True, resign_with=forger)
        return (
            f"{forger.verifier().to_string()} appended to the verifier-keys file; {what}; "
            "chain, MACs, tables, tree rebuilt; checkpoints re-signed with that key"
        )

    return step


def _plan_newest_checkpoint(scene: Scene) -> Step:
    def step(scene: Scene) -> str:
        with superuser():
            drop_checkpoints(scene.checkpoint - 1)
        return f"checkpoint {scene.checkpoint} deleted (and its cosignatures)"

    return step


def _plan_all_checkpoints(scene: Scene) -> Step:
    def step(scene: Scene) -> str:
        count = Checkpoint.objects.count()
        with superuser():
            drop_checkpoints(0)
        return f"all {count} checkpoints deleted (and their cosignatures)"

    return step


# The entries whose effect on the tables the drill can undo, for a consistent rollback.
_UNDOABLE = ("credit.transfer", "credit.retire", "credit.cancel", "document.attach")


def _undo(entry: dict[str, Any]) -> None:
    data, kind = entry["data"], entry["type"]
    if kind == "document.attach":  # its row goes with the entries (_roll_back); no balance moved
        return
    if kind == "credit.transfer":
        batch = data["batch"]
        moves = [(data["from"], data["quantity"]), (data["to"], -data["quantity"])]
    else:
        record = data["retirement" if kind == "credit.retire" else "cancellation"]
        batch, moves = record["batch"], [(record["account"], record["quantity"])]
        total = "retired" if kind == "credit.retire" else "cancelled"
        Batch.objects.filter(pk=batch).update(**{total: _plus(total, -record["quantity"])})
    for account, delta in moves:
        Holding.objects.filter(account_id=account, batch_id=batch).update(
            tradable=_plus("tradable", delta)
        )


def _rollback_plan(scene: Scene) -> tuple[int, list[dict[str, Any]]] | str:
    tail = []
    for raw in LedgerEntry.objects.order_by("-seq").values_list("body", flat=True)[:3]:
        entry = json.loads(bytes(raw))
        if entry["type"] not in _UNDOABLE:
            break
        tail.append(entry)
    if not tail:
        last = LedgerEntry.objects.order_by("-seq").values_list("type", flat=True).first()
        return (
            f"the last entry is a {last}: the drill rolls back only transfers, retirements, "
            "cancellations and documents, whose effect on the tables it can undo"
        )
    return scene.size - len(tail), tail


def _roll_back(keep: int, tail: list[dict[str, Any]]) -> None:
    with superuser():
        for entry in tail:  # newest first
            _undo(entry)
        Retirement.objects.filter(entry_seq__gte=keep).delete()
        Cancellation.objects.filter(entry_seq__gte=keep).delete()
        ProjectDocument.objects.filter(entry_seq__gte=keep).delete()
        drop_checkpoints(keep)
        LedgerEntry.objects.filter(seq__gte=keep).delete()
        rebuild_tree_from(keep)
        LedgerHead.objects.filter(pk=1).update(size=keep, last_hash=entry_hash(body(keep - 1)))


def _rollback_step(scene: Scene, *, signed: bool) -> Step | str:
    """Drop the tail of the log and put everything back to match; ``signed``: and sign a
    checkpoint at the new size with the log key, as an insider holding it would."""
    plan = _rollback_plan(scene)
    if isinstance(plan, str):
        return plan
    keep, tail = plan

    def step(scene: Scene) -> str:
        _roll_back(keep, tail)
        if not signed:
            return (
                f"entries {keep}..{scene.size - 1} "
                f"({', '.join(e['type'] for e in reversed(tail))}) removed with their "
                "checkpoints and Merkle nodes; head, holdings, batch totals and records put "
                "back to match"
            )
        if not Checkpoint.objects.filter(size=keep).exists():
            publish(scene.log_key)
        return f"rolled back to {keep} entries as above; checkpoint {keep} signed with the log key"

    return step


def _plan_rollback(scene: Scene) -> Step | str:
    return _rollback_step(scene, signed=False)


def _plan_rollback_signed(scene: Scene) -> Step | str:
    return _rollback_step(scene, signed=True)


def _plan_interior_node(scene: Scene) -> Step | str:
    if scene.tree < 4:
        return "the stored Merkle tree has fewer than 4 leaves"
    level = 2 if scene.tree >= 8 else 1
    index = 1 if scene.tree >> level >= 2 else 0

    def step(scene: Scene) -> str:
        with superuser():
            MerkleNode.objects.filter(level=level, index=index).update(
                hash=hashlib.sha256(b"drill").digest()
            )
        return f"stored Merkle node at level {level}, index {index} replaced"

    return step


def _plan_leaf_rebuilt(scene: Scene) -> Step:
    seq = min(_middle(scene), scene.tree - 1)

    def step(scene: Scene) -> str:
        def node(level: int, index: int) -> bytes:
            return bytes(
                MerkleNode.objects.values_list("hash", flat=True).get(level=level, index=index)
            )

        def put(level: int, index: int, digest: bytes) -> None:
            MerkleNode.objects.filter(level=level, index=index).update(hash=digest)

        rebuilt = 0
        with superuser():
            put(0, seq, merkle.leaf_hash(b"an entry that was never written"))
            level = 1
            # RFC 9162 §2.1.1: each stored node above the leaf is the hash of its two children.
            while ((seq >> level) + 1) << level <= scene.tree:
                index = seq >> level
                left, right = node(level - 1, 2 * index), node(level - 1, 2 * index + 1)
                put(level, index, hashlib.sha256(b"\x01" + left + right).digest())
                rebuilt += 1
                level += 1
        return f"stored leaf hash of entry {seq} replaced, the {rebuilt} nodes above it rebuilt"

    return step


def _plan_holding_row(scene: Scene) -> Step | str:
    holding = Holding.objects.filter(tradable__gt=0).order_by("pk").first()
    if holding is None:
        return "no holding has tradable credits"
    account, batch = holding.account_id, holding.batch_id

    def step(scene: Scene) -> str:
        Holding.objects.filter(account_id=account, batch_id=batch).update(
            tradable=_plus("tradable", 1_000)
        )
        return f"holding of account {account} in batch {batch}: tradable + 1,000 kg"

    return step


def _plan_escrow_owner(scene: Scene) -> Step | str:
    hold = (
        EscrowHold.objects.filter(owner=EscrowHoldOwner.AUCTION, remaining__gt=0)
        .order_by("-pk")
        .first()
    )
    if hold is None:
        return "no auction's lot is in escrow"
    pk, reference = hold.pk, hold.reference

    def step(scene: Scene) -> str:
        # The column's database check ties it to the reference: the insider drops the check.
        _sql("ALTER TABLE ledger_escrowhold DROP CONSTRAINT escrow_hold_owner_by_reference")
        EscrowHold.objects.filter(pk=pk).update(owner=EscrowHoldOwner.HOLDER)
        return (
            f"escrow hold {pk} ({reference}): its owner cleared, the check dropped (its seller "
            "could take the lot back during the auction)"
        )

    return step


def _plan_document_hash(scene: Scene) -> Step | str:
    doc = ProjectDocument.objects.order_by("-pk").first()
    if doc is None:
        return "no project has a document"
    pk, digest = doc.pk, doc.sha256

    def step(scene: Scene) -> str:
        # The insider points the row at other bytes (a report of their own, stored beside it):
        # downloads would serve those, their hash matching the row.
        forged = hashlib.sha256(b"forged report " + digest.encode()).hexdigest()
        ProjectDocument.objects.filter(pk=pk).update(sha256=forged)
        return f"document {pk}: its SHA-256 changed to another file's ({forged[:12]}...)"

    return step


NOTHING = Attack(
    "none", "nothing: the untouched copy (no mechanism may fire)", DATABASE, (), _plan_nothing
)

ATTACKS: list[Attack] = [
    Attack("byte-flip", "a byte flipped in an entry", DATABASE, ("verify",), _plan_byte_flip),
    Attack("delete", "an entry deleted", DATABASE, ("verify",), _plan_delete),
    Attack("reorder", "two entries swapped", DATABASE, ("verify",), _plan_reorder),
    Attack(
        "truncate",
        "the tail truncated (the last 3 entries deleted)",
        DATABASE,
        ("verify", "signer-state", "signer"),
        _plan_truncate,
    ),
    Attack(
        "forged-entry",
        "a forged entry at the tail, correct chain hash, holdings changed to match",
        DATABASE,
        ("verify", "signer"),
        _plan_forged_entry,
    ),
    Attack(
        "forged-entry-mac",
        "the same forged entry with a valid MAC",
        APPLICATION,
        (),
        _plan_forged_entry_mac,
        gap="Nothing can tell it from a transfer the application made: whoever holds the "
        "entry key writes entries as the application does. The log makes it permanent and "
        "public (it can no longer be removed unseen); whether it should have been written is "
        "for the people it affects to dispute.",
    ),
    Attack(
        "rebuild-other-key",
        "history rewritten consistently (chain, MACs, tables, tree), re-signed with another key",
        APPLICATION,
        ("verify", "monitor", "signer-state", "signer", "witnesses"),
        _plan_rebuild_other_key,
    ),
    Attack(
        "rewrite-real-key",
        "history rewritten consistently, signed with the log's real key",
        SIGNING_KEY,
        ("monitor", "signer-state", "signer", "witnesses"),
        _plan_rewrite_real_key,
        gap="ledger_verify from the database alone accepts it: every byte, MAC and signature "
        "is valid, and it has no earlier view to compare with.",
    ),
    Attack(
        "rewrite-signer-reset",
        "history rewritten and signed as above, the signer's state re-initialised from it",
        OPERATOR,
        ("monitor", "witnesses"),
        _plan_rewrite_signer_reset,
        gap="With the signer's state rewritten too, only views kept outside the operator's "
        "reach catch it: witnesses and monitors.",
    ),
    Attack(
        "checkpoint-newest",
        "the newest checkpoint deleted",
        DATABASE,
        ("signer-state",),
        _plan_newest_checkpoint,
        gap="The remaining checkpoints still verify; the signer puts its checkpoint back at its "
        "next run (without an alarm).",
    ),
    Attack(
        "checkpoints-all",
        "every checkpoint deleted",
        DATABASE,
        ("signer-state",),
        _plan_all_checkpoints,
        gap="ledger_verify from the database notes that no checkpoint covers the ledger, and "
        "passes.",
    ),
    Attack(
        "rollback",
        "rolled back: the last entries removed with their checkpoints, tables put back",
        DATABASE,
        ("monitor", "signer-state", "signer"),
        _plan_rollback,
        gap="A consistent shorter ledger verifies from the database alone.",
    ),
    Attack(
        "rollback-signed",
        "rolled back as above, the shorter tree signed with the log's real key",
        SIGNING_KEY,
        ("monitor", "signer-state", "signer", "witnesses"),
        _plan_rollback_signed,
        gap="A consistent shorter ledger verifies from the database alone.",
    ),
    Attack(
        "interior-node",
        "an interior Merkle node changed",
        DATABASE,
        ("verify",),
        _plan_interior_node,
    ),
    Attack(
        "leaf-rebuilt",
        "a Merkle leaf hash changed, the nodes above it rebuilt",
        DATABASE,
        ("verify", "signer"),
        _plan_leaf_rebuilt,
    ),
    Attack(
        "extra-key",
        "an extra key added to the trusted verifier-keys file, history re-signed with it",
        APPLICATION,
        ("pinned", "monitor", "signer-state", "signer", "witnesses"),
        _plan_extra_key,
        gap="Whoever trusts the keys file as it now is (ledger_verify's default) accepts the "
        "re-signed history: keys must be pinned out of band.",
    ),
    Attack("holding-row", "a holding row changed", DATABASE, ("verify",), _plan_holding_row),
    Attack(
        "escrow-owner",
        "an auction's lot made the seller's own hold in the database",
        DATABASE,
        ("verify",),
        _plan_escrow_owner,
    ),
    Attack(
        "document-hash",
        "a project document's hash changed in the database (another file served as the report)",
        DATABASE,
        ("verify",),
        _plan_document_hash,
    ),
]
