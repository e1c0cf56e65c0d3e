"""The stored Merkle nodes' check on the verifier's parallel path (``ledger/verify_parallel.py``).

The serial check (``verify._check_stored_nodes``) reads every stored node after the walk and
hashes every pair again: on a large ledger that is a third of a verification, done by one
process while the others wait. On the parallel path the workers already hash every row, so each
of them also checks the stored nodes under the rows of the chunks it scans:

* it reads them (its own connection, in the verifier's snapshot: ``pg_export_snapshot``), for
  every level, the nodes whose leaves all lie in the chunk (``scan.range_levels``);
* it compares them with the tree it computes from the rows' own bytes. Equal: every one of those
  nodes is the tree's own. Not equal: it says what the serial check would have said first,
  a node missing, a node that is not the hash of the two stored below it, or (the stored nodes
  being consistent among themselves) a leaf that is not the hash of its entry.

What no chunk holds whole (the nodes above a chunk's subtrees, and any that straddle two chunks)
the verifying process checks after the walk, pair by pair over the stored nodes below, which by
then are proven (``check_between``). Together that is every stored node, each compared with the
tree of the ledger's bytes: the serial check's guarantee, with its work spread over the workers.

Pure psycopg, no Django, in the workers: they start in a tenth of a second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from bluecarbon_audit import scan
from psycopg import sql

# One row per (level, first index) range asked for: its hashes in index order, how many, and
# the lowest and highest index found (a missing node shows in the count or the ends).
_LEVELS = (
    # LATERAL: one index range scan per range (a join plans a scan of the whole table).
    "SELECT r.l, r.lo, r.hi, a.* FROM unnest(%s::integer[], %s::bigint[], %s::bigint[]) "
    "AS r(l, lo, hi) CROSS JOIN LATERAL ("
    'SELECT string_agg(n.hash, \'\'::bytea ORDER BY n."index"), count(*), min(n."index"), '
    'max(n."index") FROM ledger_merklenode n '
    'WHERE n."level" = r.l AND n."index" >= r.lo AND n."index" < r.hi) AS a'
)
_INDICES = (
    'SELECT "index" FROM ledger_merklenode WHERE "level" = %s AND "index" >= %s AND "index" < %s '
    "ORDER BY 1"
)
_MISSHAPEN = (
    'SELECT min("index") FROM ledger_merklenode WHERE "level" = %s AND "index" >= %s '
    'AND "index" < %s AND octet_length(hash) <> 32'
)

# A finding: ("missing" | "misshapen" | "changed" | "leaf", level, index). None: all is well.
Finding = tuple[str, int, int]
Range = tuple[int, int, int]  # level, first index, stop


def fetch(cursor: Any, ranges: Sequence[Range]) -> dict[Range, bytes]:
    """The stored hashes of each range, concatenated in index order; raises naming the first
    range (in the order given) that lacks a node or holds one that is not 32 bytes."""
    cursor.execute(
        _LEVELS,
        [[r[0] for r in ranges], [r[1] for r in ranges], [r[2] for r in ranges]],
    )
    found = {(int(l_), int(lo), int(hi)): row for l_, lo, hi, *row in cursor.fetchall()}
    out = {}
    for level, lo, hi in ranges:
        row = found.get((level, lo, hi))
        if row is None or row[0] is None or row[1] != hi - lo or row[2] != lo or row[3] != hi - 1:
            cursor.execute(_INDICES, [level, lo, hi])
            have = {int(i) for (i,) in cursor.fetchall()}
            raise _Missing(level, next((i for i in range(lo, hi) if i not in have), lo))
        joined = bytes(row[0])
        if len(joined) != 32 * (hi - lo):  # not a SHA-256 hash: not the tree's
            raise Misshapen(level, misshapen(cursor, level, lo, hi))
        out[(level, lo, hi)] = joined
    return out


class _Missing(Exception):
    def __init__(self, level: int, index: int) -> None:
        super().__init__(level, index)
        self.finding: Finding = ("missing", level, index)


class Misshapen(Exception):
    def __init__(self, level: int, index: int) -> None:
        super().__init__(level, index)
        self.finding: Finding = ("misshapen", level, index)


def misshapen(cursor: Any, level: int, lo: int, hi: int) -> int:
    """The first node of ``level`` in [lo, hi) whose hash is not 32 bytes."""
    cursor.execute(_MISSHAPEN, [level, lo, hi])
    return int(cursor.fetchone()[0])


def first_bad_pair(level: int, lo: int, hashes: bytes, below_lo: int, below: bytes) -> int | None:
    """The first node of ``level`` (``hashes``, from index ``lo``) that is not the hash of its
    two children among ``below`` (level - 1, from index ``below_lo``), or None."""
    sha256, one, view = hashlib.sha256, b"\x01", memoryview(below)
    start = 32 * (2 * lo - below_lo)
    count = len(hashes) // 32
    computed = b"".join(
        sha256(one + view[j : j + 64]).digest() for j in range(start, start + 64 * count, 64)
    )
    if computed == hashes:
        return None
    return lo + next(
        k for k in range(count) if computed[32 * k : 32 * k + 32] != hashes[32 * k : 32 * k + 32]
    )


# ---- in the workers -----------------------------------------------------------------------


def open_check(dsn: str, password: str | None, snapshot: str, size: int) -> scan.NodeCheck:
    """A worker's check (see ``scan.serve``) of the nodes under a chunk's rows, in the stored
    tree of ``size`` leaves, on a connection of its own in the snapshot ``snapshot``."""
    conn = psycopg.connect(dsn, password=password, autocommit=True)
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    conn.execute("SET LOCAL work_mem = '32MB'")  # each level's sort stays in memory
    conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")  # small reads, many of them
    cursor = conn.cursor()

    def check(levels: scan.Levels) -> Finding | None:
        computed = scan.trim_levels(levels, size)
        if not computed:
            return None
        ranges = [(level, lo, lo + len(h) // 32) for level, lo, h in computed]
        try:
            stored = [*fetch(cursor, ranges).values()]
        except (_Missing, Misshapen) as exc:
            return exc.finding
        if all(theirs == h for theirs, (_, _, h) in zip(stored, computed, strict=True)):
            return None
        # As the serial check: a node that is not the hash of the stored two below it first;
        # only stored nodes consistent among themselves over another leaf make a leaf finding.
        for i in range(1, len(computed)):
            level, lo, _ = computed[i]
            bad = first_bad_pair(level, lo, stored[i], computed[i - 1][1], stored[i - 1])
            if bad is not None:
                return ("changed", level, bad)
        lo, mine, theirs = computed[0][1], computed[0][2], stored[0]
        k = next(
            k
            for k in range(len(mine) // 32)
            if mine[32 * k : 32 * k + 32] != theirs[32 * k : 32 * k + 32]
        )
        return ("leaf", 0, lo + k)

    return check


# ---- in the verifying process, after the walk ---------------------------------------------


def between(chunks: Sequence[tuple[int, int]], size: int) -> list[Range]:
    """The ranges of nodes of the tree of ``size`` leaves, above the leaves, that no chunk
    (first row, stop) holds whole: by level from 1 up, left to right."""
    out = []
    level = 1
    while size >> level:
        top = size >> level
        held = []
        for a, b in chunks:
            lo, hi = -(-a >> level), min(b, size) >> level  # ceil, floor
            if lo < hi:
                held.append((lo, hi))
        pos = 0
        for lo, hi in sorted(held):
            if pos < lo:
                out.append((level, pos, lo))
            pos = max(pos, hi)
        if pos < top:
            out.append((level, pos, top))
        level += 1
    return out


def check_between(cursor: Any, chunks: Sequence[tuple[int, int]], size: int) -> Finding | None:
    """Each node no chunk held whole is the hash of the two stored below it (which are proven
    by then: the level below's are, or were held whole by a chunk)."""
    ranges = between(chunks, size)
    if not ranges:
        return None
    wanted = sorted(set(ranges) | {(level - 1, 2 * lo, 2 * hi) for level, lo, hi in ranges})
    try:
        stored = fetch(cursor, wanted)
    except (_Missing, Misshapen) as exc:
        return exc.finding
    for level, lo, hi in ranges:
        bad = first_bad_pair(
            level, lo, stored[(level, lo, hi)], 2 * lo, stored[(level - 1, 2 * lo, 2 * hi)]
        )
        if bad is not None:
            return ("changed", level, bad)
    return None


Opener = Callable[[], scan.NodeCheck]


class NodeProof:
    """What the workers found about the stored Merkle nodes under the chunks they scanned: the
    chunks (first row, stop), whether each was checked, and the first finding of each kind."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.chunks: list[tuple[int, int]] = []
        self.complete = True  # every chunk's nodes were checked
        self.node: Finding | None = None  # a node missing or changed
        self.leaf: Finding | None = None  # a leaf not the hash of its entry

    def add(self, first_seq: int, stop: int, finding: Any) -> None:
        self.chunks.append((first_seq, stop))
        if finding == "unchecked":
            self.complete = False
        elif finding is not None:
            if finding[0] == "leaf":
                self.leaf = self.leaf or finding
            else:
                self.node = self.node or finding

    def covers(self, size: int) -> bool:
        """Whether the workers checked the nodes under every leaf of a tree of ``size``."""
        return (
            self.complete
            and self.first == 0
            and (not size or bool(self.chunks))
            and (not self.chunks or self.chunks[-1][1] >= size)
        )
