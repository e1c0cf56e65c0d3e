"""Full verification of the ledger against itself, its signed checkpoints and the live tables.

``verify_ledger`` streams every entry once, in sequence order, and for each:

1. re-hashes the stored bytes (never trusting a stored hash) and checks the sequence number and
   the link to the previous entry's hash;
2. appends the leaf to a Merkle frontier; when the frontier reaches the size of a stored
   checkpoint, checks the checkpoint's root and its Ed25519 signature against trusted keys;
3. replays the entry into a fresh ``RegistryState`` and matches the records it produces
   (retirements, cancellations, reversals, projects' documents) against the database rows,
   also streamed.

At the end it compares the replayed organizations, accounts, methodologies, projects, batches,
holdings and escrow holds with the live tables, and checks the supply invariant. Memory holds
the frontier (log n hashes) and the replayed state, which grows with the number of accounts and
batches, never with the number of entries.

Everything is read in one snapshot (REPEATABLE READ on PostgreSQL, one read transaction on
SQLite), so verification can run while the registry takes writes.

On PostgreSQL, a ledger of ``verify_parallel.MIN_ENTRIES`` or more is read with COPY and the
per-row checks of transfer entries are spread over ``LEDGER_VERIFY_WORKERS`` processes
(``verify_parallel``); every other row still goes through ``walk_rows``, so both paths report
the same first failure in the same words.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bluecarbon_audit.cosignature import CosignatureError
from bluecarbon_audit.policy import Policy
from bluecarbon_audit.tiledir import write_atomic
from django.conf import settings
from django.db import connection, transaction

from . import (
    entry_types,
    records,
    selectors,
    signer,
    triggers,
    verify_nodes,
    verify_parallel,
    witnesses,
)
from .core import merkle
from .core.entry import ZERO_HASH
from .core.note import NoteError, Verifier, checkpoint_open
from .core.replay import RegistryState, ReplayError
from .models import (
    Account,
    Batch,
    Cancellation,
    Checkpoint,
    EscrowHold,
    EscrowHoldOwner,
    Holding,
    LedgerHead,
    MerkleNode,
    Methodology,
    Organization,
    Project,
    ProjectDocument,
    Retirement,
    Reversal,
    TreeHead,
)
from .signer import SignerState
from .verify_walk import (
    Progress,
    RecordStream,
    Report,
    StoredTreeMark,
    VerificationError,
    Walk,
    WalkContext,
    diff,
    stream_rows,
    walk_rows,
)

__all__ = ["Progress", "Report", "VerificationError", "verify_ledger"]

STATE_FORMAT = 2  # 2: with the auction house's state


def _fresh_apps() -> dict[str, entry_types.ReplayExtension]:
    origin = settings.LEDGER_ORIGIN
    return {e.app: e.replay(origin) for e in entry_types.extensions() if e.replay is not None}


def _apps_from_json(data: dict[str, Any]) -> dict[str, entry_types.ReplayExtension]:
    apps: dict[str, entry_types.ReplayExtension] = {}
    for e in entry_types.extensions():
        if e.replay_from_json is None or e.app not in data:
            raise VerificationError(f"the saved state has no replay state for {e.app}")
        apps[e.app] = e.replay_from_json(data[e.app], settings.LEDGER_ORIGIN)
    return apps


@dataclass
class _Start:
    seq: int = 0
    prev: bytes = ZERO_HASH
    frontier: merkle.Frontier = field(default_factory=merkle.Frontier)
    state: RegistryState = field(default_factory=RegistryState)
    # Each app's replay state for its own entries (entry_types.extensions()), by app name.
    apps: dict[str, entry_types.ReplayExtension] = field(default_factory=lambda: _fresh_apps())
    checkpoint: tuple[int, bytes] | None = None  # (size, root) verified before
    tree_mark: StoredTreeMark | None = None  # where the stored Merkle tree ends (this run)


def verify_ledger(
    *,
    verifiers: list[Verifier],
    origin: str | None = None,
    state_file: Path | None = None,
    since_checkpoint: bool = False,
    progress: Progress | None = None,
    witness_policy: Policy | None = None,
    require_witnesses: bool = False,
    on_total: Callable[[int], None] | None = None,
) -> Report:
    """Verify everything; raise ``VerificationError`` naming the first problem found."""
    origin = origin or settings.LEDGER_ORIGIN
    if not triggers.installed(connection):
        raise VerificationError(
            "the append-only triggers are missing or disabled: the database no longer refuses "
            "changes to ledger rows"
        )
    if not verifiers:
        raise VerificationError("no trusted verifier keys: cannot check checkpoint signatures")
    # Read before the snapshot: the signer stores a checkpoint's row before its state, so
    # whatever this state says signed is in the snapshot taken after it.
    signer_state = _signer_state()
    outermost = not connection.in_atomic_block
    with _read_transaction(outermost):
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        start = _load_state(state_file) if since_checkpoint else _Start()
        report = _verify(start, verifiers, origin, progress, on_total)
        _check_signer_state(signer_state, report)
        _check_witnesses(witness_policy or witnesses.policy(), require_witnesses, report)
        if state_file is not None:
            _save_state(state_file, report, start)
    return report


@contextlib.contextmanager
def _read_transaction(outermost: bool) -> Iterator[None]:
    """One snapshot for the whole run. SQLite's connections begin IMMEDIATE (writers take the
    write lock up front), which for a verification would keep every writer waiting until it
    ends: a DEFERRED transaction that only reads takes no write lock, and in WAL mode it still
    reads one snapshot while writers go on."""
    sqlite: Any = connection  # transaction_mode is the SQLite backend's own attribute
    mode = getattr(sqlite, "transaction_mode", None)
    deferred = connection.vendor == "sqlite" and outermost and mode is not None
    if deferred:
        sqlite.transaction_mode = "DEFERRED"
    try:
        with transaction.atomic():
            if deferred:
                sqlite.transaction_mode = mode  # only this BEGIN was deferred
            yield
    finally:
        if deferred:
            sqlite.transaction_mode = mode


def _verify(
    start: _Start,
    verifiers: list[Verifier],
    origin: str,
    progress: Progress | None,
    on_total: Callable[[int], None] | None,
) -> Report:
    head = LedgerHead.objects.filter(pk=1).first()
    head_size = head.size if head else 0
    if on_total:
        on_total(max(head_size - start.seq, 0))
    report = Report(first_seq=start.seq)

    if start.checkpoint is not None:
        _check_earlier_checkpoints(start, verifiers, origin)
    # Every stream is closed before the transaction that declared its cursor ends.
    with contextlib.ExitStack() as closing:
        checkpoints: Generator[tuple[Any, ...], None, None] = stream_rows(
            "SELECT size, root, note FROM ledger_checkpoint WHERE size > %s ORDER BY size",
            (start.seq,),
            chunk=500,
        )
        closing.callback(checkpoints.close)
        next_cp = next(checkpoints, None)
        if next_cp is not None and start.checkpoint is not None:
            # Incremental mode: the log must have only grown since the checkpoint we trusted.
            _check_consistency(start.checkpoint, next_cp, verifiers, origin)
        # The walk also stops where the stored Merkle tree ends, to learn the true root there.
        start.tree_mark = mark = _stored_tree_mark(start, head_size)
        if mark.frontier is None:
            checkpoints = _with_mark(next_cp, checkpoints, mark)
            next_cp = next(checkpoints, None)
        streams = {
            name: RecordStream(name, model, to_record, start.seq)
            for name, model, to_record in (
                ("retirement", Retirement, records.retirement_record),
                ("cancellation", Cancellation, records.cancellation_record),
                ("reversal", Reversal, records.reversal_record),
                ("document", ProjectDocument, records.document_row),
            )
        }
        for stream in streams.values():
            closing.callback(stream.close)
        walk = Walk(start.seq, start.prev, next_cp, start.checkpoint)
        context = WalkContext(
            report=report,
            state=start.state,
            frontier=start.frontier,
            checkpoints=checkpoints,
            streams=streams,
            apps=start.apps,
            verifiers=verifiers,
            origin=origin,
            progress=progress,
        )
        _walk_entries(walk, context, max(head_size - start.seq, 0), tree_size=int(mark[0]))
        return _finish_rows(start, walk, context, head)


def _walk_entries(walk: Walk, context: WalkContext, entries: int, tree_size: int) -> None:
    """Every row from ``walk.expected`` on: by the parallel path if it pays, else serially."""
    workers = verify_parallel.workers_for(entries, context.frontier, walk.expected)
    if workers:
        rss = verify_parallel.walk_parallel(workers, walk, context, tree_size)
        context.report.worker_peak_rss_mb = rss
        return
    rows: Generator[tuple[Any, ...], None, None] = stream_rows(
        "SELECT seq, body, type, mac FROM ledger_ledgerentry WHERE seq >= %s ORDER BY seq",
        (walk.expected,),
    )
    try:
        walk_rows(rows, walk, context)
    finally:
        # Close server-side cursors now, inside the transaction that declared them.
        rows.close()


def _finish_rows(
    start: _Start, walk: Walk, context: WalkContext, head: LedgerHead | None
) -> Report:
    """The checks after the last row: tail, head, records, tables, supply, stored tree."""
    report, state, frontier = context.report, context.state, context.frontier
    expected, prev, next_cp = walk.expected, walk.prev, walk.next_cp
    last_verified_cp = walk.last_verified_cp
    if context.progress and (expected - start.seq) % 1000:
        context.progress((expected - start.seq) % 1000)

    report.entries = expected - start.seq
    if next_cp is not None:
        raise VerificationError(
            f"checkpoint at size {next_cp[0]} but the ledger ends at {expected}: "
            "entries were removed from the end"
        )
    head_size = head.size if head else 0
    if head_size != expected or (head is not None and bytes(head.last_hash) != prev):
        raise VerificationError(
            f"ledger head says {head_size} entries, the ledger has {expected}"
            if head_size != expected
            else "ledger head's last hash does not match the last entry"
        )
    for stream in context.streams.values():
        stream.finish()
    try:
        for app in start.apps.values():
            app.finish()
    except ReplayError as exc:
        raise VerificationError(f"cannot be replayed: {exc}") from None
    _compare_tables(state)
    for ext in entry_types.extensions():
        if ext.compare_tables is not None:
            report.notes.extend(
                ext.compare_tables(start.apps[ext.app], _compare_rows, VerificationError) or []
            )
    problems = state.supply_violations()
    if problems:
        raise VerificationError("supply invariant broken: " + "; ".join(problems[:5]))
    assert start.tree_mark is not None
    _check_stored_nodes(start.tree_mark, report, walk.nodes)

    report.latest_checkpoint = last_verified_cp[0] if last_verified_cp else None
    report.uncovered = expected - (report.latest_checkpoint or 0)
    if expected and last_verified_cp is None:
        report.notes.append("no signed checkpoint covers any entry yet")
    start.seq, start.prev, start.frontier, start.state = expected, prev, frontier, state
    start.checkpoint = last_verified_cp
    return report


def _check_consistency(
    trusted: tuple[int, bytes], cp: tuple[Any, ...], verifiers: list[Verifier], origin: str
) -> None:
    size, root, note = cp[0], bytes(cp[1]), cp[2]
    try:
        body, _ = checkpoint_open(note, verifiers, origin=origin)
        if body.root != root or body.size != size:
            raise VerificationError(f"checkpoint at size {size}: note and columns disagree")
        proof = selectors.consistency_proof(trusted[0], size)
        merkle.verify_consistency(trusted[0], size, trusted[1], root, proof)
    except (NoteError, merkle.ProofError, LookupError) as exc:
        raise VerificationError(
            f"checkpoint at size {size} is not consistent with the previously verified "
            f"checkpoint at size {trusted[0]}: {exc}"
        ) from None


def _check_earlier_checkpoints(start: _Start, verifiers: list[Verifier], origin: str) -> None:
    """Checkpoints signed after the last run, for sizes that run had already covered."""
    assert start.checkpoint is not None
    rows = stream_rows(
        "SELECT size, root, note FROM ledger_checkpoint WHERE size > %s AND size <= %s "
        "ORDER BY size",
        (start.checkpoint[0], start.seq),
    )
    with contextlib.closing(rows):  # closed inside the transaction that declared it
        for size, root, note in rows:
            _check_consistency(start.checkpoint, (size, root, note), verifiers, origin)


def _stored_tree_mark(start: _Start, ledger_size: int) -> StoredTreeMark:
    tree = TreeHead.objects.filter(pk=1).first()
    size = tree.size if tree else 0
    if size > ledger_size:
        raise VerificationError(
            f"stored Merkle tree covers {size} entries, the ledger has {ledger_size}"
        )
    if size < start.seq:
        raise VerificationError(
            f"stored Merkle tree covers {size} entries, fewer than the {start.seq} verified "
            "before: stored nodes were removed"
        )
    mark = StoredTreeMark((size, None, None))
    if size == start.seq:  # known already: the walk starts there
        mark.frontier = merkle.Frontier(start.frontier.size, start.frontier.hashes)
    return mark


def _with_mark(
    first: tuple[Any, ...] | None,
    rows: Iterator[tuple[Any, ...]],
    mark: StoredTreeMark,
) -> Generator[tuple[Any, ...], None, None]:
    """``first`` and ``rows`` (checkpoints by size) with ``mark`` after those of its size."""
    placed = False
    for row in itertools.chain([first] if first is not None else [], rows):
        if not placed and row[0] > mark[0]:
            placed = True
            yield mark
        yield row
    if not placed:
        yield mark


def _signer_state() -> SignerState | None:
    try:
        return signer.state_read()
    except (OSError, ValueError, signer.SignerRefused) as exc:
        raise VerificationError(f"the checkpoint signer's state cannot be read: {exc}") from None


def _check_witnesses(policy: Policy | None, require: bool, report: Report) -> None:
    """Which checkpoints the witnesses' cosignatures make valid under the policy (the verifier's
    own copy of the witness keys): every stored cosignature line by a witness of the policy
    must verify. With ``require``, the latest checkpoint must meet the quorum."""
    if policy is None:
        if require:
            raise VerificationError("witnesses are required, but no witness policy is given")
        return
    report.witness_quorum = policy.describe_quorum()
    latest = None
    for checkpoint in Checkpoint.objects.prefetch_related("cosignatures").order_by("size"):
        try:
            found = witnesses.witnessed(checkpoint, policy)
        except CosignatureError as exc:
            raise VerificationError(
                f"checkpoint at size {checkpoint.size}: a witness's cosignature does not verify "
                f"({exc})",
                checkpoint.size - 1,
            ) from None
        assert found is not None
        report.checkpoints_witnessed += found.quorum_met
        latest = (checkpoint.size, found.quorum_met)
    report.latest_witnessed = latest[1] if latest else None
    if require and latest is not None and not latest[1]:
        raise VerificationError(
            f"the latest checkpoint (size {latest[0]}) is not cosigned by the witness quorum "
            f"({report.witness_quorum})"
        )


def _check_signer_state(state: SignerState | None, report: Report) -> None:
    """Where the checkpoint signer runs on this host, its own record of the last tree it signed
    (ledger/signer.py) is the one thing here the database cannot rewrite: the ledger must reach
    that size and the signed checkpoint must be stored. Catches a rollback of the ledger with
    its checkpoints, and deleted checkpoints, that the remaining ones cannot show."""
    size = report.first_seq + report.entries
    if state is None:
        report.notes.append(
            f"no checkpoint-signer state at {signer.state_path()}: the ledger's size and "
            "latest checkpoint were not compared with what the signer signed"
        )
        return
    if size < state.size:
        raise VerificationError(
            f"the ledger has {size} entries, but the checkpoint signer signed {state.size}: "
            "entries were removed from the end (a rollback)"
        )
    if (
        state.size
        and not Checkpoint.objects.filter(size=state.size, root=state.edge.root()).exists()
    ):
        raise VerificationError(
            f"the checkpoint signer's latest checkpoint (size {state.size}) is not stored: "
            "checkpoints were deleted or replaced",
            state.size - 1,
        )
    report.signer_size = state.size


_COLUMN_LEVELS = 16  # the stored tree is checked in perfect subtrees of 2^16 leaves at a time


def _stored_level(level: int, first: int, stop: int) -> bytes:
    """The hashes of nodes first..stop-1 of ``level``, concatenated in index order. A missing
    or misplaced node raises, named by its level and index."""
    if stop <= first:
        return b""
    if connection.vendor == "postgresql":
        # The database concatenates (string_agg): no Python runs per node.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT string_agg(hash, ''::bytea ORDER BY \"index\"), count(*), "
                'min("index"), max("index") FROM ledger_merklenode '
                'WHERE "level" = %s AND "index" >= %s AND "index" < %s',
                [level, first, stop],
            )
            joined, n, low, high = cursor.fetchone()
        chunk = bytes(joined or b"")
        if n != stop - first or low != first or high != stop - 1:
            _name_missing(level, first, stop)
        if len(chunk) != 32 * n:
            with connection.cursor() as cursor:
                _raise_node_finding(
                    ("misshapen", level, verify_nodes.misshapen(cursor, level, first, stop))
                )
        return chunk
    seen = bytearray()
    rows = stream_rows(
        'SELECT "index", "hash" FROM ledger_merklenode WHERE "level" = %s AND "index" >= %s '
        'AND "index" < %s ORDER BY 1',
        (level, first, stop),
    )
    with contextlib.closing(rows):
        for index, digest in rows:
            if index != first + len(seen) // 32:
                break
            if len(digest) != 32:
                _raise_node_finding(("misshapen", level, index))
            seen += bytes(digest)
    if len(seen) != 32 * (stop - first):
        _name_missing(level, first + len(seen) // 32, stop)
    return bytes(seen)


def _name_missing(level: int, first: int, stop: int) -> None:
    have = set(
        MerkleNode.objects.filter(level=level, index__gte=first, index__lt=stop).values_list(
            "index", flat=True
        )
    )
    missing = next((i for i in range(first, stop) if i not in have), first)
    raise VerificationError(f"stored Merkle node at level {level}, index {missing} is missing")


def _check_pairs(level: int, first: int, below: bytes, hashes: bytes) -> None:
    """Nodes first.. of ``level`` (``hashes``) are each the hash of their two children, the
    nodes 2*first.. of the level below (``below``)."""
    sha256, one, view = hashlib.sha256, b"\x01", memoryview(below)
    count = len(hashes) // 32
    computed = b"".join(sha256(one + view[j : j + 64]).digest() for j in range(0, 64 * count, 64))
    if computed != hashes:
        i = next(
            k
            for k in range(count)
            if computed[32 * k : 32 * k + 32] != hashes[32 * k : 32 * k + 32]
        )
        raise VerificationError(
            f"stored Merkle node at level {level}, index {first + i} is not the hash of the "
            "two nodes below it: it was changed"
        )


def _check_stored_nodes(
    mark: StoredTreeMark, report: Report, proof: verify_nodes.NodeProof | None = None
) -> None:
    """Every stored Merkle node, whatever the stored tree's size: each level holds exactly the
    perfect subtrees of the stored size, every node above the leaves is the hash of the two
    below it (RFC 9162 §2.1.1), and the stored right edge is the true one, so (but for a
    SHA-256 collision) every stored leaf hash is the true one too. The first wrong node is named
    by level and index. The stored nodes serve every proof the API hands out."""
    size = int(mark[0])
    edge: dict[tuple[int, int], bytes] = {}  # the stored right edge (frontier nodes)
    # Nothing beyond the stored tree: no node at an index its level does not have.
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT "level", "index" FROM ledger_merklenode '
            'WHERE "index" >= (CAST(%s AS bigint) >> CAST("level" AS integer)) LIMIT 1',
            [size],
        )
        extra = cursor.fetchone()
    if extra is not None:
        raise VerificationError(
            f"stored Merkle node at level {extra[0]}, index {extra[1]} lies outside the stored "
            f"tree of {size} entries"
        )
    if proof is not None and proof.covers(size):
        # The workers compared the nodes under their chunks with the tree of the rows' bytes
        # (ledger/verify_nodes.py); what no chunk held whole is checked here.
        with connection.cursor() as cursor:
            finding = proof.node or verify_nodes.check_between(cursor, proof.chunks, size)
        finding = finding or proof.leaf
        if finding is not None:
            _raise_node_finding(finding)
        report.merkle_nodes += 2 * size - size.bit_count()  # every node of the stored tree
        report.merkle_nodes_by_workers = True
        return
    # Column by column: the nodes of one perfect subtree of 2^16 leaves (or the tree's last,
    # partial one) level by level, so memory stays a few MB whatever the size; then the levels
    # above, from the columns' roots up.
    width = 1 << _COLUMN_LEVELS
    for column in range(0, size, width):
        below = b""
        for level in range(_COLUMN_LEVELS + 1):
            first, stop = column >> level, min((column + width) >> level, size >> level)
            if stop <= first:
                break
            hashes = _stored_level(level, first, stop)
            if level:
                _check_pairs(level, first, below, hashes)
            if (size >> level) & 1 and stop == size >> level:
                edge[(level, stop - 1)] = hashes[-32:]
            report.merkle_nodes += stop - first
            below = hashes
    level = _COLUMN_LEVELS + 1
    below = _stored_level(_COLUMN_LEVELS, 0, size >> _COLUMN_LEVELS)
    while size >> level:
        count = size >> level
        hashes = _stored_level(level, 0, count)
        _check_pairs(level, 0, below, hashes)
        if count & 1:
            edge[(level, count - 1)] = hashes[-32:]
        report.merkle_nodes += count
        below = hashes
        level += 1
    if size == 0:
        return
    assert mark.frontier is not None, "the walk passed the stored tree's size"
    stored = merkle.Frontier.from_nodes(size, lambda lv, ix: edge[(lv, ix)])
    if stored.root() == mark.frontier.root():
        return
    # Consistent nodes over wrong leaves: find the subtree on the right edge, then the leaf.
    first, stop = 0, size
    for (lv, ix), want in zip(merkle.frontier_node_ids(size), mark.frontier.hashes, strict=True):
        if edge[(lv, ix)] != want:
            first, stop = ix << lv, (ix + 1) << lv
            break
    leaves = stream_rows(
        "SELECT e.seq, e.body, n.hash FROM ledger_ledgerentry e JOIN ledger_merklenode n "
        'ON n."level" = 0 AND n."index" = e.seq WHERE e.seq >= %s AND e.seq < %s ORDER BY 1',
        (first, stop),
    )
    with contextlib.closing(leaves):
        for seq, body, digest in leaves:
            if merkle.leaf_hash(bytes(body)) != bytes(digest):
                raise VerificationError(
                    f"stored Merkle leaf (level 0, index {seq}) is not the hash of entry {seq}: "
                    "it and the nodes above it were rewritten",
                    seq,
                )
    raise VerificationError(f"stored Merkle tree's root is wrong under leaves {first}..{stop - 1}")


def _raise_node_finding(finding: verify_nodes.Finding) -> None:
    kind, level, index = finding
    if kind == "missing":
        raise VerificationError(f"stored Merkle node at level {level}, index {index} is missing")
    if kind == "misshapen":
        raise VerificationError(
            f"stored Merkle node at level {level}, index {index} is not a 32-byte hash"
        )
    if kind == "changed":
        raise VerificationError(
            f"stored Merkle node at level {level}, index {index} is not the hash of the two "
            "nodes below it: it was changed"
        )
    raise VerificationError(
        f"stored Merkle leaf (level 0, index {index}) is not the hash of entry {index}: it and "
        "the nodes above it were rewritten",
        index,
    )


def _compare_rows(
    name: str, expected: dict[int, dict[str, Any]], rows: Generator[dict[str, Any], None, None]
) -> None:
    try:
        seen = 0
        for row in rows:
            key = row.pop("id")
            want = expected.get(key)
            if want is None:
                raise VerificationError(f"{name} {key} exists in the table but not in the ledger")
            if want != row:
                raise VerificationError(f"{name} {key} differs from the ledger: {diff(want, row)}")
            seen += 1
    finally:
        rows.close()  # inside the transaction that declared its server-side cursor
    if seen != len(expected):
        missing = sorted(set(expected))[:5]
        raise VerificationError(f"{name} rows missing from the table (ledger has {missing}...)")


def _holds_with_owners(holds: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The replayed holds with the owner each one's reference gives it, as ``escrow_hold`` set
    it: the column is in no entry, so a row whose owner was changed in the table shows here."""
    rows = {}
    for key, h in holds.items():
        ref = h["reference"]
        # The replay takes a reference as written; one that is not text gives no owner, and
        # the comparison names the row.
        rows[key] = {**h, "owner": EscrowHoldOwner.of(ref).value if isinstance(ref, str) else None}
    return rows


def _compare_tables(state: RegistryState) -> None:
    tables: list[tuple[str, dict[int, dict[str, Any]], Any, Callable[[Any], dict[str, Any]]]] = [
        ("organization", state.organizations, Organization, records.organization_record),
        ("account", state.accounts, Account, records.account_record),
        ("methodology", state.methodologies, Methodology, records.methodology_record),
        ("project", state.projects, Project, records.project_record),
        ("batch", state.batches, Batch, records.batch_state),
        ("escrow hold", _holds_with_owners(state.holds), EscrowHold, records.escrow_hold_row),
    ]
    for name, expected, model, to_record in tables:
        _compare_rows(name, expected, (to_record(obj) for obj in model.objects.iterator()))

    expected_holdings = {k: v for k, v in state.holdings.items() if v != [0, 0]}
    holdings = (
        row
        for row in Holding.objects.values_list(
            "account_id", "batch_id", "tradable", "escrowed"
        ).iterator(chunk_size=5000)
    )
    seen = 0
    try:
        for account, batch, tradable, escrowed in holdings:
            if tradable == 0 and escrowed == 0:
                continue
            want = expected_holdings.get((account, batch))
            if want != [tradable, escrowed]:
                raise VerificationError(
                    f"holding of account {account} in batch {batch}: table says tradable "
                    f"{tradable}, escrowed {escrowed}; the ledger says "
                    + (f"tradable {want[0]}, escrowed {want[1]}" if want else "nothing")
                )
            seen += 1
    finally:
        holdings.close()
    if seen != len(expected_holdings):
        present = set(
            Holding.objects.exclude(tradable=0, escrowed=0).values_list("account_id", "batch_id")
        )
        missing = sorted(set(expected_holdings) - present)[:3]
        raise VerificationError(f"holdings missing from the table: (account, batch) {missing}")


# ---- incremental state -------------------------------------------------------------------


def _save_state(path: Path, report: Report, end: _Start) -> None:
    """What the next ``--since-checkpoint`` run starts from. It is the verifier's own record
    of what it has checked, so keep it where the registry's operators cannot write."""
    payload = {
        "format": STATE_FORMAT,
        "origin": settings.LEDGER_ORIGIN,
        "size": end.seq,
        "prev": end.prev.hex(),
        "frontier": [h.hex() for h in end.frontier.hashes],
        "checkpoint": [end.checkpoint[0], end.checkpoint[1].hex()] if end.checkpoint else None,
        "state": end.state.to_json(),
        **{name: app.to_json() for name, app in end.apps.items()},
    }
    # Owner-only (mkstemp's mode 0600), synced, renamed into place.
    write_atomic(path, json.dumps(payload, separators=(",", ":")).encode())


def _load_state(path: Path | None) -> _Start:
    if path is None or not path.exists():
        raise VerificationError(
            "--since-checkpoint needs the state saved by an earlier full verification "
            f"({path}); run a full verification first"
        )
    data = json.loads(path.read_text())
    if data.get("format") != STATE_FORMAT or data.get("origin") != settings.LEDGER_ORIGIN:
        raise VerificationError(f"{path} is not a verification state for this ledger")
    frontier = merkle.Frontier(data["size"], [bytes.fromhex(h) for h in data["frontier"]])
    cp = data["checkpoint"]
    return _Start(
        seq=data["size"],
        prev=bytes.fromhex(data["prev"]),
        frontier=frontier,
        state=RegistryState.from_json(data["state"]),
        apps=_apps_from_json(data),
        checkpoint=(cp[0], bytes.fromhex(cp[1])) if cp else None,
    )
