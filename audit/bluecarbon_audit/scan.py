"""Runs of ledger rows proven at once, for the parallel verifier (``ledger/verify_parallel.py``).

The parallel verifier reads the entries table as PostgreSQL ``COPY (SELECT seq, body, type,
mac ...) TO STDOUT (FORMAT BINARY)`` row messages and hands chunks of consecutive messages to worker
processes running ``serve``. For every maximal run of rows that are canonical
``credit.transfer`` entries in the expected order, ``scan_chunk`` proves what the serial loop
(``ledger.verify_walk.walk_rows``) checks row by row:

* the framing: four columns, an 8-byte ``seq``, the body, the type ``credit.transfer`` and a
  32-byte MAC;
* the MAC is the operator's (``entry.entry_mac`` under the key given), when a key is given;
* the ``seq`` column and the ``seq`` in the bytes are both the expected one;
* the bytes are exactly what ``TRANSFER_BYTES`` accepts, i.e. the RFC 8785 form of a
  version-1 transfer entry;
* each ``prev`` is the SHA-256 of the row before (for the run's first row the claim is
  returned, for the caller to compare with the hash it holds);

and computes what the serial loop derives from those rows: the chain hash of the last row,
the RFC 9162 leaves folded into perfect subtrees (split wherever the caller has a checkpoint,
so it can check each signed root), and each transfer's (batch, from, to, quantity) for replay.
Every row that is not such a transfer, or fails any check, is in no run: the caller gives it
to the serial loop, which checks it and reports the first problem exactly as it always has.

Pure: no Django, so worker processes start fast and auditors can reuse it.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import multiprocessing.queues
import re
import struct
import traceback
from array import array
from collections.abc import Callable, Sequence
from itertools import chain, pairwise
from typing import Any, NamedTuple

from .entry import DIGITS_TO_ZERO, TIME_SHAPE, TRANSFER_LOOSE, EntryMacs
from .merkle import aligned_node_ids, perfect_root

# COPY BINARY: an 11-byte signature, 32-bit flags (0: no OIDs) and a 32-bit header extension
# length (0) before the first row; a 16-bit -1 after the last. PostgreSQL sends each row as one
# CopyData message: a 16-bit column count, then per column a 32-bit length and the bytes.
HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_SEQ_COLUMN = struct.Struct(">iq")

# ``TRANSFER_LOOSE`` (``TRANSFER_BYTES`` with ``prev`` and ``time`` loosened, as the runs are
# checked for them as a whole) inside the row's framing.
_ROW = re.compile(
    rb"\x00\x04\x00\x00\x00\x08(.{8})(.{4})("  # 4 columns; seq (8 bytes); body length, body
    + TRANSFER_LOOSE
    + rb")\x00\x00\x00\x0fcredit\.transfer"  # the type column, 15 bytes
    + rb"\x00\x00\x00\x20(?P<mac>.{32})",  # the MAC column, 32 bytes (not NULL)
    re.DOTALL,
)


class Run(NamedTuple):
    """Consecutive rows proven to be canonical transfers in order (see the module docstring)."""

    start: int  # the seq of its first row (the expected one: the chunk's first_seq + index)
    offsets: bytes  # array("I"): where each row's message starts in the chunk
    end: int  # where the message after its last row starts
    first_prev: bytes  # the 64 hex digits its first row claims as prev
    last_hash: bytes  # SHA-256 of its last row's bytes: the next row's prev
    pieces: list[tuple[int, bytes]]  # (level, perfect_root) over its leaves, left to right
    moves: bytes  # array("q"): batch, from, to, quantity of each row


def row_end(chunk: bytes, pos: int) -> int:
    """Where the row message starting at ``pos`` ends, by its own column lengths."""
    (columns,) = _INT16.unpack_from(chunk, pos)
    pos += 2
    for _ in range(columns):
        (length,) = _INT32.unpack_from(chunk, pos)
        pos += 4 + max(length, 0)  # -1 is NULL, no bytes
    if pos > len(chunk):
        raise ValueError("COPY row message runs past the end of its chunk")
    return pos


def parse_row(chunk: bytes, pos: int) -> tuple[tuple[int, bytes, str, bytes | None], int]:
    """The (seq, body, type, mac) of the row message at ``pos``, as the serial loop takes them
    from a cursor, and where the next message starts."""
    (columns,) = _INT16.unpack_from(chunk, pos)
    length, seq = _SEQ_COLUMN.unpack_from(chunk, pos + 2)
    if columns != 4 or length != 8:
        raise ValueError("COPY row is not (seq bigint, body bytea, type varchar, mac bytea)")
    pos += 14
    fields: list[bytes | None] = []
    for i in range(3):
        (length,) = _INT32.unpack_from(chunk, pos)
        if length == -1 and i == 2:  # a NULL MAC
            fields.append(None)
            pos += 4
            continue
        if length < 0 or pos + 4 + length > len(chunk):
            raise ValueError("COPY row has a NULL or truncated column")
        fields.append(chunk[pos + 4 : pos + 4 + length])
        pos += 4 + length
    body, type_, mac = fields
    assert body is not None and type_ is not None
    return (seq, body, type_.decode(), mac), pos


def scan_chunk(
    first_seq: int, chunk: bytes, splits: Sequence[int] = (), mac_key: bytes | None = None
) -> list[Run]:
    """The runs in ``chunk`` (row messages, concatenated), whose first row is expected to be
    entry ``first_seq``. ``splits`` are tree sizes (checkpoints) that must fall between pieces.
    With ``mac_key``, a row's MAC must be ``entry_mac(mac_key, its hash)`` to be proven.
    """
    return scan_chunk_leaves(first_seq, chunk, splits, mac_key)[0]


def scan_chunk_leaves(
    first_seq: int, chunk: bytes, splits: Sequence[int] = (), mac_key: bytes | None = None
) -> tuple[list[Run], Levels | None]:
    """``scan_chunk``, and every node of the RFC 9162 tree that lies wholly under the chunk's
    rows, transfers or not (``range_levels``; None if a row's framing is broken: the serial
    loop reports that row)."""
    macs = _macs(mac_key) if mac_key is not None else None
    try:
        return _scan(first_seq, chunk, splits, careful=False, macs=macs)
    except (_Misframed, struct.error, ValueError):
        # Framed by the lengths alone, a row that fooled the pattern is just another row.
        try:
            return _scan(first_seq, chunk, splits, careful=True, macs=macs)
        except (struct.error, ValueError):
            return _scan(first_seq, chunk, splits, careful=True, macs=macs, leaves=False)


@functools.lru_cache(maxsize=4)
def _macs(key: bytes) -> EntryMacs:
    return EntryMacs(key)


# Per level from 0 up: (level, index of the first node, the nodes' hashes concatenated).
Levels = list[tuple[int, int, bytes]]


def range_levels(first: int, leaves: Sequence[bytes], size: int) -> Levels:
    """Every node of the RFC 9162 tree of ``size`` leaves whose leaves all lie among
    ``leaves`` (the leaf hashes of entries ``first``, ``first`` + 1, ...): per level from 0 up,
    (level, index of its first such node, their hashes concatenated in index order). The
    parallel verifier compares them with the stored nodes."""
    lo, hi = first, min(first + len(leaves), size)
    if hi <= lo:
        return []
    level_hashes = list(leaves[: hi - lo])
    out = [(0, lo, b"".join(level_hashes))]
    sha256, level = hashlib.sha256, 0
    while True:
        up_lo, up_hi = (lo + 1) >> 1, hi >> 1
        if up_hi <= up_lo:
            return out
        skip = 2 * up_lo - lo  # 1 when the level's first node is a right child
        pairs = iter(level_hashes[skip : skip + 2 * (up_hi - up_lo)])
        level_hashes = [sha256(b"\x01" + a + b).digest() for a, b in zip(pairs, pairs, strict=True)]
        level, lo, hi = level + 1, up_lo, up_hi
        out.append((level, lo, b"".join(level_hashes)))


def trim_levels(levels: Levels, size: int) -> Levels:
    """Of ``levels``, the nodes that are in the tree of ``size`` leaves too."""
    out = []
    for level, lo, hashes in levels:
        keep = min(len(hashes) // 32, (size >> level) - lo)
        if keep <= 0:
            break
        out.append((level, lo, hashes[: 32 * keep]))
    return out


class _Misframed(Exception):
    """A body's length column disagrees with what the pattern matched (the bytes contain what
    looks like the end of a row): frame every row by its lengths instead."""


def _scan(
    first_seq: int,
    chunk: bytes,
    splits: Sequence[int],
    careful: bool,
    macs: EntryMacs | None,
    leaves: bool = True,
) -> tuple[list[Run], Levels | None]:
    match = _ROW.match
    runs: list[tuple[int, list[tuple[bytes, ...]], array[int], int]] = []
    groups: list[tuple[bytes, ...]] = []
    offsets = array("I")
    bodies: list[bytes | None] = []  # None: a row framed by its lengths alone
    pos, seq, end = 0, first_seq, len(chunk)
    while pos < end:
        found = match(chunk, pos)
        if found is not None and careful and _body_length(found) != len(found.group(3)):
            found = None
        if found is None:
            if groups:
                runs.append((seq - len(groups), groups, offsets, pos))
                groups, offsets = [], array("I")
            if leaves:
                (_, body, _, _), pos = parse_row(chunk, pos)
                bodies.append(body)
            else:
                pos = row_end(chunk, pos)
                bodies.append(None)
        else:
            row = found.groups()
            groups.append(row)
            bodies.append(row[2])
            offsets.append(pos)
            pos = found.end()
        seq += 1
    if groups:
        runs.append((seq - len(groups), groups, offsets, pos))
    # RFC 9162 §2.1.1 leaf hashes of every row: the runs' subtrees and the stored nodes' check.
    sha256 = hashlib.sha256
    hashes = [b"" if body is None else sha256(b"\x00" + body).digest() for body in bodies]
    # Every node under the chunk's rows: the runs' subtrees are among them.
    levels = range_levels(first_seq, hashes, first_seq + len(hashes)) if leaves else None
    proven: list[Run] = []
    for start, run_groups, run_offsets, run_end in runs:
        i = start - first_seq
        run_leaves = hashes[i : i + len(run_groups)]
        proven += _prove(start, run_groups, run_offsets, run_end, splits, macs, run_leaves, levels)
    return proven, levels


def _body_length(found: re.Match[bytes]) -> int:
    return int(_INT32.unpack(found.group(2))[0])


def _prove(
    start: int,
    groups: list[tuple[bytes, ...]],
    offsets: array[int],
    end: int,
    splits: Sequence[int],
    macs: EntryMacs | None,
    leaves: list[bytes],
    levels: Levels | None = None,
) -> list[Run]:
    """Runs of the rows whose messages matched _ROW (``end``: where the last one ends), whose
    leaf hashes are ``leaves``; their subtrees' roots are taken from ``levels`` if given."""
    if not groups:
        return []
    seq_columns, lengths, bodies, batches, srcs, qtys, dsts, prevs, seqs, times, mac_column = zip(
        *groups, strict=True
    )
    n = len(bodies)
    if b"".join(lengths) != struct.pack(f">{n}i", *map(len, bodies)):
        raise _Misframed
    sha256 = hashlib.sha256
    hashes = [sha256(body).digest() for body in bodies]
    proven = (
        b"".join(seq_columns) == struct.pack(f">{n}q", *range(start, start + n))
        and list(map(int, seqs)) == list(range(start, start + n))
        and b"".join(prevs[1:]) == b"".join(hashes[:-1]).hex().encode()
        and b"".join(times).translate(DIGITS_TO_ZERO) == TIME_SHAPE * n
        and (macs is None or macs.many(hashes) == list(mac_column))
    )
    if not proven:
        # Leave the first row that fails out (the serial loop will judge it); prove the rest.
        bad = next(i for i in range(n) if not _row_proven(start + i, groups[i], hashes, i, macs))
        return _prove(
            start, groups[:bad], offsets[:bad], offsets[bad], splits, macs, leaves[:bad], levels
        ) + _prove(
            start + bad + 1,
            groups[bad + 1 :],
            offsets[bad + 1 :],
            end,
            splits,
            macs,
            leaves[bad + 1 :],
            levels,
        )
    # The leaves folded into the perfect subtrees between the checkpoints.
    cuts = [start, *sorted(s for s in splits if start < s < start + n), start + n]
    pieces: list[tuple[int, bytes]] = []
    for a, b in pairwise(cuts):
        for level, index in aligned_node_ids(a, b):
            if levels is not None:  # computed already, for every subtree under the chunk
                _, lo, joined = levels[level]
                pieces.append((level, joined[32 * (index - lo) : 32 * (index - lo + 1)]))
            else:
                first = (index << level) - start
                pieces.append((level, perfect_root(leaves[first : first + (1 << level)])))
    moves = array("q", map(int, chain.from_iterable(zip(batches, srcs, dsts, qtys, strict=True))))
    return [Run(start, offsets.tobytes(), end, prevs[0], hashes[-1], pieces, moves.tobytes())]


def _row_proven(
    seq: int, row: tuple[bytes, ...], hashes: list[bytes], i: int, macs: EntryMacs | None
) -> bool:
    """One row of ``_prove``'s checks (to find the first that fails)."""
    seq_column, _, _, _, _, _, _, prev, claimed_seq, time, mac = row
    return (
        seq_column == seq.to_bytes(8, "big", signed=True)
        and int(claimed_seq) == seq
        and (i == 0 or prev == hashes[i - 1].hex().encode())
        and time.translate(DIGITS_TO_ZERO) == TIME_SHAPE
        and (macs is None or macs(hashes[i]) == mac)
    )


# ---- the worker process ----------------------------------------------------------------------

# (key, first_seq, where, length, splits): the chunk is ``length`` bytes at offset ``where`` of
# the shared buffer file, or, if ``where`` is bytes, those bytes (a row too big for a slot).
Task = tuple[int, int, "int | bytes", int, list[int]]


# What a worker says about the stored Merkle nodes under a chunk's rows (``serve``'s
# ``open_nodes``): None when they are all the tree's own, else a finding the caller reports.
NodeCheck = Callable[[Levels], Any]


def serve(
    tasks: multiprocessing.queues.Queue[Any],
    results: multiprocessing.queues.Queue[Any],
    buffer_path: str,
    mac_key: bytes | None = None,
    open_nodes: Callable[[], NodeCheck] | None = None,
) -> None:
    """A worker process: scan chunks until told to stop (``None``), then report its peak
    resident memory. A failure is sent back as a traceback, never swallowed. With
    ``open_nodes`` (called once, in the worker), each chunk's leaf hashes also go to the
    check it returns, and its finding comes back with the runs ("unchecked" when the chunk's
    rows could not all be framed).

    Chunks arrive in a file both processes map (a few slots of a few MB): passing them through
    the queue would copy every byte four more times, which costs as much as scanning them."""
    check = open_nodes() if open_nodes is not None else None
    with open(buffer_path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as m:
        while (task := tasks.get()) is not None:
            key, first_seq, where, length, splits = task
            try:
                # A copy: the slot is reused once the caller has applied this chunk's runs.
                chunk = where if isinstance(where, bytes) else m[where : where + length]
                runs, levels = scan_chunk_leaves(first_seq, chunk, splits, mac_key)
                finding = None
                if check is not None:
                    finding = "unchecked" if levels is None else check(levels)
                results.put((key, runs, None, finding))
            except Exception:
                results.put((key, None, traceback.format_exc(), None))
    results.put((None, peak_rss_mb(), None, None))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM on Linux), in MB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # Unix only, and needed only where /proc is not (macOS): kept here

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
