"""The verifier's walk over the entries, row by row: what ``verify.verify_ledger`` checks of
each entry (canonical bytes, seq, chain, MAC, type column), the Merkle frontier it extends and
the checkpoints it checks where it reaches their size, and the replay. Both paths use it: the
serial one for every row, the parallel one (``verify_parallel``) for every row its workers did
not prove, so both report the same first failure in the same words.

Its own module, below both ``verify`` and ``verify_parallel``, so that neither imports the
other's insides (they imported each other before).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import itertools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import connection

from . import entry_types, verify_nodes
from .core import merkle
from .core.entry import TRANSFER_BYTES, EntryError, decode_canonical_entry
from .core.note import NoteError, Verifier, checkpoint_open
from .core.replay import RegistryState, ReplayError
from .entry_auth import EntryKey, entry_key


class VerificationError(Exception):
    """The first thing found wrong. ``seq`` names the entry where it shows, if there is one."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(f"entry {seq}: {message}" if seq is not None else message)


@dataclass
class Report:
    entries: int = 0
    first_seq: int = 0
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    uncovered: int = 0  # entries after the latest checkpoint
    records: int = 0
    merkle_nodes: int = 0  # stored nodes recomputed and compared
    merkle_nodes_by_workers: bool = False  # compared by the parallel path's workers
    signer_size: int | None = None  # the tree the signer on this host last signed
    witness_quorum: str | None = None  # the witness policy's quorum, if there is a policy
    checkpoints_witnessed: int = 0  # checkpoints whose cosignatures meet it
    latest_witnessed: bool | None = None
    notes: list[str] = field(default_factory=list)
    worker_peak_rss_mb: list[float] = field(default_factory=list)  # parallel path only


Progress = Callable[[int], None]


# ---- streaming reads -----------------------------------------------------------------------


_cursor_names = itertools.count()


def stream_rows(
    sql: str, params: tuple[Any, ...] = (), chunk: int = 5000
) -> Generator[tuple[Any, ...], None, None]:
    """Rows of ``sql``, fetched ``chunk`` at a time (a server-side cursor on PostgreSQL)."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        cursor = connection.connection.cursor(name=f"verify_{next(_cursor_names)}", binary=True)
        try:
            cursor.itersize = chunk
            cursor.execute(sql, params)
            # Not ``yield from``: it would close the cursor itself on GeneratorExit, unguarded.
            for row in cursor:  # noqa: UP028
                yield row
        finally:
            # Already gone if the transaction or savepoint that declared it was rolled back.
            with contextlib.suppress(psycopg.Error):
                cursor.close()
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(chunk):
                yield from rows


class RecordStream:
    """Database rows of one record table, ordered by entry sequence, matched one by one
    against the records that replay produces."""

    def __init__(
        self, name: str, model: Any, to_record: Callable[[Any], dict[str, Any]], since: int
    ) -> None:
        self.name = name
        self.rows: Generator[tuple[int, dict[str, Any]], None, None] = (
            (obj.entry_seq, to_record(obj))
            for obj in model.objects.filter(entry_seq__gte=since)
            .order_by("entry_seq", "pk")
            .iterator(chunk_size=2000)
        )
        self.ahead: collections.deque[tuple[int, dict[str, Any]] | None] = collections.deque()
        self.current = next(self.rows, None)

    def prefetch(self, until: int) -> None:
        """Read now every row for entries before ``until`` and the one after them, so that
        matching those entries reads nothing (while a COPY has the connection)."""
        last = self.ahead[-1] if self.ahead else self.current
        while last is not None and last[0] < until:
            last = next(self.rows, None)
            self.ahead.append(last)

    def _next(self) -> tuple[int, dict[str, Any]] | None:
        return self.ahead.popleft() if self.ahead else next(self.rows, None)

    def expect(self, seq: int, fields: dict[str, Any]) -> None:
        row = self.current
        if row is not None and row[0] < seq:
            raise VerificationError(f"{self.name} row has no ledger entry", row[0])
        if row is None or row[0] > seq:
            raise VerificationError(f"{self.name} recorded by the ledger is missing", seq)
        if row[1] != fields:
            raise VerificationError(
                f"{self.name} row differs from the ledger: {diff(fields, row[1])}", seq
            )
        self.current = self._next()

    def close(self) -> None:
        self.rows.close()

    def finish(self) -> None:
        if self.current is not None:
            raise VerificationError(f"{self.name} row has no ledger entry", self.current[0])


def diff(expected: dict[str, Any], actual: dict[str, Any]) -> str:
    keys = sorted(set(expected) | set(actual))
    parts = [
        f"{k}: ledger {expected.get(k)!r}, table {actual.get(k)!r}"
        for k in keys
        if expected.get(k) != actual.get(k)
    ]
    return "; ".join(parts)


# ---- the verifier --------------------------------------------------------------------------


@dataclass
class Walk:
    """Where the row-by-row checks are: the next expected seq, the hash it must name as prev,
    the next checkpoint to check and the last one checked."""

    expected: int
    prev: bytes
    next_cp: tuple[Any, ...] | None
    last_verified_cp: tuple[int, bytes] | None
    nodes: verify_nodes.NodeProof | None = None  # the parallel path's workers' node check


@dataclass(frozen=True)
class WalkContext:
    """What a walk works with and never replaces, from its first row to its last: the report it
    counts into, the state it replays into, the frontier it extends, the checkpoints after
    ``Walk.next_cp`` (by size), the record streams, the other apps' replay states, the trusted
    keys, and the progress callback. The objects change as the walk goes; the fields do not."""

    report: Report
    state: RegistryState
    frontier: merkle.Frontier
    checkpoints: Iterator[tuple[Any, ...]]
    streams: dict[str, RecordStream]
    apps: dict[str, entry_types.ReplayExtension]
    verifiers: list[Verifier]
    origin: str
    progress: Progress | None
    # Read once per verification: the parallel path calls walk_rows for every few rows.
    key: EntryKey = field(default_factory=entry_key)
    registry_types: frozenset[str] = field(default_factory=entry_types.registry_types)
    known_types: frozenset[str] = field(default_factory=entry_types.all_types)


def walk_rows(rows: Iterator[tuple[Any, ...]], walk: Walk, context: WalkContext) -> None:
    """Check, hash, push and replay ``rows`` (seq, body, type, mac), continuing from ``walk``. The
    parallel path (``verify_parallel``) calls this for every row its workers did not prove."""
    expected, prev, next_cp = walk.expected, walk.prev, walk.next_cp
    last_verified_cp = walk.last_verified_cp
    # Locals, not attribute lookups, in the loop below: it runs once per entry.
    report, state, frontier = context.report, context.state, context.frontier
    checkpoints, streams = context.checkpoints, context.streams
    apps, progress = context.apps, context.progress
    sha256, push, match = hashlib.sha256, frontier.push, TRANSFER_BYTES.fullmatch
    prev_hex = prev.hex().encode()
    registry_types, known_types, key = context.registry_types, context.known_types, context.key
    for seq, body, column_type, mac in rows:
        body = bytes(body)
        if seq != expected:
            if seq > expected:
                raise VerificationError(f"missing: the next stored entry is {seq}", expected)
            raise VerificationError("duplicate sequence number", seq)
        # Transfers are most of any real ledger: a byte pattern that only canonical transfer
        # entries match stands in for parsing them. Everything else takes the general path.
        fast = match(body)
        entry = None
        if fast is not None:
            batch, src, qty, dst, claimed_prev, claimed_seq = fast.groups()
            if int(claimed_seq) != seq or claimed_prev != prev_hex:
                chain_error(seq, int(claimed_seq), claimed_prev.decode(), prev)
            if column_type != "credit.transfer":
                type_error(seq, column_type, "credit.transfer")
        else:
            try:
                entry = decode_canonical_entry(body)
            except EntryError as exc:
                raise VerificationError(f"bytes are not a valid entry ({exc})", seq) from None
            if entry.seq != seq or entry.prev != prev:
                chain_error(seq, entry.seq, entry.prev.hex(), prev)
            if column_type != entry.type:
                type_error(seq, column_type, entry.type)
        prev = sha256(body).digest()
        prev_hex = prev.hex().encode()
        if not key.check(seq, prev, mac):
            raise VerificationError(
                "not authenticated: its MAC is missing or is not the application's (an entry "
                "written with database rights alone)",
                seq,
            )
        leaf = sha256(b"\x00")  # RFC 9162 leaf hash, without copying the body
        leaf.update(body)
        push(leaf.digest())
        # Integrity before meaning: a signed root that fails is reported as such, before any
        # disagreement the altered entry causes with the tables.
        while next_cp is not None and next_cp[0] == frontier.size:
            last_verified_cp = reached(next_cp, last_verified_cp, context)
            next_cp = next(checkpoints, None)
        expected += 1
        if progress and not expected % 1000:
            progress(1000)
        if fast is not None and state.transfer(int(batch), int(src), int(dst), int(qty)):
            continue
        try:
            entry = entry or decode_canonical_entry(body)
            if entry.type not in known_types:
                raise VerificationError(f"unknown entry type {entry.type!r}", seq)
            produced = state.apply(entry) if entry.type in registry_types else []
            # Other apps' entries, and the registry's that touch them (an auction's lot is
            # an escrow hold).
            for app in apps.values():
                app.apply(entry, state, prev)
        except ReplayError as exc:
            raise VerificationError(f"cannot be replayed: {exc}", seq) from None
        for table, fields in produced:
            streams[table].expect(seq, fields)
            report.records += 1
    walk.expected, walk.prev, walk.next_cp = expected, prev, next_cp
    walk.last_verified_cp = last_verified_cp


def chain_error(seq: int, claimed_seq: int, claimed_prev: str, prev: bytes) -> None:
    if claimed_seq != seq:
        raise VerificationError(
            f"stored at position {seq} but its bytes say seq {claimed_seq} "
            "(entries reordered or swapped)",
            seq,
        )
    blame = seq - 1 if seq else seq
    raise VerificationError(
        f"prev {claimed_prev} does not match the hash of entry {seq - 1} "
        f"({prev.hex()}): entry {blame} was altered, or this one was",
        seq,
    )


def type_error(seq: int, column: str, claimed: str) -> None:
    raise VerificationError(f"type column {column!r} does not match the entry's {claimed!r}", seq)


def check_checkpoint(
    cp: tuple[Any, ...], computed_root: bytes, verifiers: list[Verifier], origin: str
) -> tuple[int, bytes]:
    size, root, note = cp[0], bytes(cp[1]), cp[2]
    where = f"checkpoint at size {size}"
    try:
        body, _ = checkpoint_open(note, verifiers, origin=origin)
    except NoteError as exc:
        raise VerificationError(
            f"{where}: signature does not verify with a trusted key ({exc})", size - 1
        ) from None
    if body.size != size or body.root != root:
        raise VerificationError(f"{where}: signed note and stored columns disagree", size - 1)
    if computed_root != root:
        raise VerificationError(
            f"{where}: root recomputed from the entries is "
            f"{base64.b64encode(computed_root).decode()}, the signed root is "
            f"{base64.b64encode(root).decode()}: an entry up to here was changed",
            size - 1,
        )
    return size, root


class StoredTreeMark(tuple[Any, ...]):
    """Stands in the checkpoint stream at the stored Merkle tree's size: when the walk gets
    there, it records the true right edge of the tree of that size (the stored tree may lag
    the ledger; its nodes are checked against the tree they claim to be)."""

    frontier: merkle.Frontier | None = None


def reached(
    cp: tuple[Any, ...], last_verified: tuple[int, bytes] | None, context: WalkContext
) -> tuple[int, bytes] | None:
    """The walk has reached ``cp``'s size: check the checkpoint (or note the stored tree's
    true shape there). Returns the last checkpoint verified."""
    frontier = context.frontier
    if isinstance(cp, StoredTreeMark):
        cp.frontier = merkle.Frontier(frontier.size, frontier.hashes)
        return last_verified
    context.report.checkpoints += 1
    return check_checkpoint(cp, frontier.root(), context.verifiers, context.origin)
