"""The checkpoint signer: it signs only trees that extend the last tree it signed.

The database is not trusted here. The signer keeps its own state beside its key, outside the
database: the size of the last tree it signed, that tree's right edge (the compact range of
RFC 9162 perfect subtrees), the hash of its last entry, and the note it signed. To sign a
larger tree it reads only the entries after that size, checks that they continue the hash chain
it holds (sequence numbers, ``prev``, canonical bytes), extends its own right edge and signs the
root it computed itself. Stored Merkle nodes and earlier entries are never input to a signature;
they are read only to raise the alarm when the database no longer holds the history it signed
(a rollback, a rewrite, a stored tree with another root).

Someone with database rights alone can then not get a rewritten history signed: the signer
refuses, loudly (an ERROR log line, a ``SignerAlarm`` row that the admin, the auditor pages and
the health check show, and a refusal at every later run until an operator looks). Entries forged
at the tail, which do continue the chain, are the entry authentication's to catch (see
``docs/threat-model.md``).

The state file is written atomically (write, fsync, rename, fsync the directory) and read under
an exclusive lock, so one signing runs at a time on a host. Losing it means re-initialising
(``manage.py ledger_signer_init``), an explicit, logged step: from a checkpoint the operator
supplies (and, once witnesses run, one they cosigned), checked against the entries; in
development, when no state exists, from the database's latest checkpoint, with a WARNING.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bluecarbon_audit.tiledir import write_atomic
from django.conf import settings
from django.db import IntegrityError, transaction

from . import selectors
from .core import merkle
from .core.entry import ZERO_HASH, EntryError, decode_canonical_entry, entry_hash
from .core.note import Checkpoint as CheckpointBody
from .core.note import NoteError, checkpoint_open, checkpoint_sign
from .entry_auth import entry_key
from .models import Checkpoint, LedgerEntry, LedgerHead, SignerAlarm, TreeHead
from .signing import get_signer, trusted_verifiers
from .witnesses import policy

log = logging.getLogger(__name__)

STATE_FORMAT = "bluecarbon-signer-state/v1"
READ_BATCH = 5000


class SignerRefused(Exception):
    """The database does not extend what the signer signed: nothing is signed."""


@dataclass
class SignerState:
    origin: str
    size: int
    edge: merkle.Frontier
    last_hash: bytes
    note: str | None  # the last note signed, to publish again if its row went missing
    key: tuple[str, str] | None = None  # its key's name and key hash (hex)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "origin": self.origin,
            "size": self.size,
            "edge": [h.hex() for h in self.edge.hashes],
            "last_hash": self.last_hash.hex(),
            "note": self.note,
            "key": list(self.key) if self.key else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignerState:
        if data.get("format") != STATE_FORMAT:
            raise SignerRefused(f"signer state of unknown format {data.get('format')!r}")
        size = int(data["size"])
        return cls(
            origin=data["origin"],
            size=size,
            edge=merkle.Frontier(size, [bytes.fromhex(h) for h in data["edge"]]),
            last_hash=bytes.fromhex(data["last_hash"]),
            note=data.get("note"),
            key=(data["key"][0], data["key"][1]) if data.get("key") else None,
        )


def state_path() -> Path:
    configured = settings.LEDGER_SIGNER_STATE_FILE
    if configured:
        return Path(configured)
    return Path(settings.LEDGER_SIGNING_KEY_FILE).with_name("signer-state.json")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One signer at a time on this host (the lock file sits beside the state)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read(path: Path) -> SignerState | None:
    try:
        return SignerState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def _write(path: Path, state: SignerState) -> None:
    """Atomically (a crash leaves the old state or the new one, never half of one), owner-only
    (mkstemp's mode 0600), and durably: the rename itself is synced too."""
    write_atomic(path, json.dumps(state.to_json(), separators=(",", ":")).encode())
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def state_read() -> SignerState | None:
    """The signer's state on this host, if there is one (for ``ledger_verify``)."""
    return _read(state_path())


def state_reset(path: Path | None = None) -> None:
    """Forget the state (tests whose database is emptied under a running signer)."""
    path = path or state_path()
    with _locked(path):
        path.unlink(missing_ok=True)


def _entries(first: int, stop: int) -> Iterator[tuple[int, bytes, bytes | None]]:
    """Rows (seq, body, mac) with seq in [first, stop), in order, a batch at a time."""
    while first < stop:
        rows = list(
            LedgerEntry.objects.filter(seq__gte=first, seq__lt=stop)
            .order_by("seq")
            .values_list("seq", "body", "mac")[:READ_BATCH]
        )
        if not rows:
            return
        for seq, body, mac in rows:
            yield seq, bytes(body), None if mac is None else bytes(mac)
        first = rows[-1][0] + 1


def _extend(state: SignerState, stop: int) -> tuple[merkle.Frontier, bytes]:
    """The right edge and last hash after entries state.size..stop-1, which must continue the
    chain the state holds. Only these entries are read."""
    edge = state.edge.copy()
    last = state.last_hash
    expected = state.size
    key = entry_key()
    for seq, body, mac in _entries(state.size, stop):
        if seq != expected:
            raise SignerRefused(f"entry {expected} is missing (the next stored is {seq})")
        try:
            entry = decode_canonical_entry(body)
        except EntryError as exc:
            raise SignerRefused(f"entry {seq} is not a canonical entry: {exc}") from None
        if entry.seq != seq or entry.prev != last:
            raise SignerRefused(
                f"entry {seq} does not continue the chain the signer holds (its prev is "
                f"{entry.prev.hex()[:16]}…, the signer's last hash {last.hex()[:16]}…)"
            )
        digest = entry_hash(body)
        if not key.check(seq, digest, mac):
            raise SignerRefused(
                f"entry {seq} is not authenticated: its MAC is missing or is not the application's "
                "(an entry written with database rights alone)"
            )
        edge.push(merkle.leaf_hash(body))
        last = digest
        expected += 1
    if expected != stop:
        raise SignerRefused(f"entry {expected} is missing (the ledger head says {stop})")
    return edge, last


def _check_database_holds(state: SignerState, head_size: int) -> None:
    """The alarms: the database must still hold the history the signer signed."""
    if head_size < state.size:
        raise SignerRefused(
            f"the database's ledger has {head_size} entries, fewer than the {state.size} the "
            "signer signed: a rollback"
        )
    if state.size:
        row = LedgerEntry.objects.filter(seq=state.size - 1).values_list("body", flat=True)
        body = row.first()
        if body is None or entry_hash(bytes(body)) != state.last_hash:
            raise SignerRefused(
                f"entry {state.size - 1}, the last one signed, is not the one the signer "
                "signed: history was rewritten"
            )
    tree = TreeHead.objects.filter(pk=1).first()
    if tree is not None and state.size and tree.size >= state.size:
        try:
            stored = selectors.tree_root(state.size)
        except LookupError:
            stored = None
        if stored != state.edge.root():
            raise SignerRefused(
                f"the stored Merkle tree's root at size {state.size} is not the root the "
                "signer signed: stored nodes were changed"
            )


def _publish(size: int, root: bytes, note: str, key: tuple[str, str]) -> Checkpoint | None:
    """Store a signed note, unless a row of that size is there already (then it must be it)."""
    with transaction.atomic():
        existing = Checkpoint.objects.filter(size=size).first()
        if existing is None:
            try:
                with transaction.atomic():
                    return Checkpoint.objects.create(
                        size=size, root=root, note=note, key_name=key[0], key_hash=key[1]
                    )
            except IntegrityError:
                # Another signer process (with a state file of its own: another host, or a
                # test process beside the worker) stored this size between our look and our
                # insert; its insert committed first. The same root is the same checkpoint.
                existing = Checkpoint.objects.get(size=size)
        if bytes(existing.root) != root:
            raise SignerRefused(
                f"the stored checkpoint at size {size} has another root than the signer's"
            )
        return None


def _alarm(exc: SignerRefused) -> None:
    log.error("checkpoint signer REFUSED to sign: %s", exc)
    with contextlib.suppress(Exception):  # the alarm must not hide the refusal
        SignerAlarm.objects.create(message=str(exc)[:2000])


def checkpoint_sign_new(up_to: int | None = None) -> Checkpoint | None:
    """Sign a checkpoint over every committed entry (the first ``up_to`` of them, if given: the
    size the stored tree reached, so that the tree serves every proof of the checkpoint), if
    there are new ones. Idempotent."""
    path = state_path()
    with _locked(path):
        try:
            state = _read(path) or _initialise_unattended(path)
            if state.origin != settings.LEDGER_ORIGIN:
                raise SignerRefused(f"signer state is for {state.origin}, not this ledger")
            latest = Checkpoint.objects.order_by("-size").values_list("size", flat=True).first()
            if state.note and state.key and (latest is None or latest < state.size):
                # Signed, but its row is gone: the row is stored before the state, so it was
                # deleted. It goes back, whatever else the database now says, so that a
                # verifier sees it; and the deletion is an alarm.
                _publish(state.size, state.edge.root(), state.note, state.key)
                _alarm(
                    SignerRefused(
                        f"the checkpoint of size {state.size} the signer signed was missing "
                        "from the database (deleted): stored again"
                    )
                )
            head = LedgerHead.objects.filter(pk=1).first()
            head_size = head.size if head else 0
            _check_database_holds(state, head_size)
            size = head_size if up_to is None else min(head_size, up_to)
            if size <= state.size:
                return None
            edge, last = _extend(state, size)
        except SignerRefused as exc:
            _alarm(exc)
            raise
        root = edge.root()
        # The key is read now, after the tree it signs is fixed: an entry committed after a
        # rotation can only be signed by the new key.
        signer = get_signer()
        note = checkpoint_sign(CheckpointBody(settings.LEDGER_ORIGIN, size, root), signer)
        key = (signer.name, signer.key_hash.hex())
        # The row first, then the state: what the state says signed is always stored (a
        # verifier compares them), and a crash between the two only repeats this signature.
        checkpoint = _publish(size, root, note, key)
        _write(path, SignerState(settings.LEDGER_ORIGIN, size, edge, last, note, key))
        return checkpoint


def _initialise_unattended(path: Path) -> SignerState:
    """No state: a new ledger starts empty; anything else needs an operator, except in
    development, where the database's latest checkpoint is taken (said in a WARNING)."""
    head = LedgerHead.objects.filter(pk=1).first()
    if (head.size if head else 0) == 0 and not Checkpoint.objects.exists():
        state = SignerState(settings.LEDGER_ORIGIN, 0, merkle.Frontier(), ZERO_HASH, None)
        _write(path, state)
        log.info("checkpoint signer: new state for an empty ledger at %s", path)
        return state
    if settings.PRODUCTION:
        raise SignerRefused(
            f"no signer state at {path} and the ledger is not empty: run "
            "`manage.py ledger_signer_init` with the latest checkpoint you trust"
        )
    latest = Checkpoint.objects.order_by("-size").values_list("note", flat=True).first()
    state = signer_initialise(path, latest, development=True)
    log.warning(
        "checkpoint signer: DEVELOPMENT re-initialisation of %s from the database's checkpoint "
        "at size %d (production requires `manage.py ledger_signer_init`)",
        path,
        state.size,
    )
    return state


def signer_initialise(path: Path, note: str | None, *, development: bool = False) -> SignerState:
    """The signer's state at a checkpoint someone vouches for (``note``): the entries up to its
    size are read and must hash to its root, which must verify with a trusted key. Without a
    note, only an empty ledger (or, ``development``, whatever the database holds). Used by
    ``manage.py ledger_signer_init`` and, in development, when the state is missing."""
    if note is None and not development and LedgerEntry.objects.exists():
        raise SignerRefused(
            "the ledger is not empty: name the checkpoint to start from (--checkpoint), the "
            "latest one an auditor or the witnesses hold"
        )

    size, root, key = 0, merkle.Frontier().root(), None
    if note is not None:
        try:
            body, opened = checkpoint_open(note, trusted_verifiers(), origin=settings.LEDGER_ORIGIN)
        except NoteError as exc:
            raise SignerRefused(
                f"the checkpoint does not verify with a trusted key: {exc}"
            ) from None
        size, root = body.size, body.root
        key = (opened.verified[0].name, opened.verified[0].key_hash.hex())
        witness_policy = policy()
        # Where witnesses run, the checkpoint to start from is one they vouched for, not one
        # the database (or whoever writes it) offers.
        if (
            witness_policy is not None
            and not development
            and not witness_policy.witnessed(note).quorum_met
        ):
            raise SignerRefused(
                "the checkpoint is not cosigned by the witness quorum "
                f"({witness_policy.describe_quorum()}): give the cosigned note, e.g. the "
                "witnesses' latest or GET /api/v1/ledger/checkpoints/latest"
            )
    empty = SignerState(settings.LEDGER_ORIGIN, 0, merkle.Frontier(), ZERO_HASH, None)
    edge, last = _extend(empty, size)
    if size and edge.root() != root:
        raise SignerRefused(
            f"the entries up to size {size} do not hash to the checkpoint's root: the database "
            "does not hold the history that checkpoint signed"
        )
    state = SignerState(settings.LEDGER_ORIGIN, size, edge, last, note, key)
    _write(path, state)
    return state
