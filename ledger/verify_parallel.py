"""The verifier's parallel path on PostgreSQL: ``verify.walk_rows``'s checks, with the per-row
hashing and parsing of transfer entries done by worker processes.

Why: one CPython process spends almost all of a verification in per-row work (three SHA-256
calls, the canonical-form pattern, the transfer's numbers) and so verifies about a third as
fast as PostgreSQL streams the rows. Those checks need nothing from earlier rows but the
previous row's hash, so ``ledger.core.scan`` does them for chunks of rows in other processes.
What is sequential stays here: the chain across runs, the Merkle frontier and the checkpoints,
and replay.

How:

* The rows are read with ``COPY (SELECT seq, body, type, mac ...) TO STDOUT (FORMAT BINARY)`` inside
  the verifier's snapshot transaction, one segment of ``seq`` values per COPY. A COPY holds the
  connection until it ends, so the checkpoint and record rows a segment needs are read before
  it starts (bounded by the segment's size, like everything else held in memory).
* Chunks of raw row messages go to the workers; their results are applied in order. A run of
  proven transfers is applied in bulk: its first ``prev`` checked against the hash held here,
  its perfect subtrees pushed onto the frontier, each checkpoint checked where it falls, its
  transfers replayed. Every other row, and a run whose link to the row before does not hold,
  goes through ``walk_rows`` itself, so any failure is reported at the same entry with the same
  message as on the serial path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import mmap
import multiprocessing
import os
import queue
import tempfile
from array import array
from collections import deque
from collections.abc import Iterator
from itertools import repeat
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from psycopg import sql

from . import verify_nodes
from .core import merkle, scan
from .core.entry import decode_canonical_entry
from .core.replay import ReplayError
from .entry_auth import entry_key
from .verify_walk import VerificationError, Walk, WalkContext, reached, walk_rows

SEGMENT = 1 << 17  # seq values per COPY: bounds the record and checkpoint rows read ahead
CHUNK = 1 << 13  # rows per worker task
SLOT_BYTES = 1 << 23  # room for a chunk in the shared buffer: 8,192 rows of up to 1 KB
QUEUED_PER_WORKER = 3  # tasks in flight per worker: enough to keep it busy, bounds memory
MIN_ENTRIES = 50_000  # below this, starting the workers (~0.1 s) costs more than they save
_SHM = "/dev/shm"  # noqa: S108 (a directory for tempfile.mkstemp, see _Pool)


def workers_for(entries: int, frontier: merkle.Frontier, start_seq: int) -> int:
    """How many workers to verify ``entries`` rows from ``start_seq`` with: 0 means the serial
    path."""
    workers = int(getattr(settings, "LEDGER_VERIFY_WORKERS", 0))
    if connection.vendor != "postgresql" or workers < 1 or entries < MIN_ENTRIES:
        return 0
    # Runs are placed in the tree by their seq: that needs the tree to be as long as the chain.
    return workers if frontier.size == start_seq else 0


def walk_parallel(workers: int, walk: Walk, context: WalkContext, tree_size: int) -> list[float]:
    """``walk_rows`` over every row from ``walk.expected`` on; returns the workers' peak
    resident memory (MB). The workers also check the stored Merkle nodes (of the stored tree of
    ``tree_size`` leaves) under the rows they scan: what they found is left in ``walk.nodes``."""
    ahead = _Checkpoints(context.checkpoints, walk.next_cp)
    # The walk takes its checkpoints from the read-ahead, which this loop fills segment by segment.
    context = dataclasses.replace(context, checkpoints=ahead)
    apply = _Applier(walk, context)
    in_flight = QUEUED_PER_WORKER * workers
    # One slot more than chunks in flight: the one being filled is never being read.
    open_nodes = _node_check(tree_size)
    pool = _Pool(workers, slots=in_flight + 1, open_nodes=open_nodes)
    nodes = verify_nodes.NodeProof(walk.expected)
    if open_nodes is not None:
        walk.nodes = nodes
    finished = False
    try:
        # task, first seq, chunk (offset or bytes, size), rows
        pending: deque[tuple[int, int, int | bytes, int, int]] = deque()
        first = walk.expected  # the seq the next chunk's first row must have
        lo = walk.expected
        # Chunk k goes to slot k % (in_flight + 1): chunk k - in_flight - 1 is applied by then.
        slots = itertools.cycle(range(in_flight + 1))
        slot = next(slots)
        while (stored := _first_seq_from(lo)) is not None:
            lo, hi = stored, stored + SEGMENT
            ahead.prefetch(hi)
            for stream in context.streams.values():
                stream.prefetch(hi)
            with _copy(lo, hi) as messages:
                while (filled := messages.fill(pool.slot(slot), CHUNK)) is not None:
                    length, count = filled
                    # A row too big for a slot comes back alone, as bytes.
                    where: int | bytes = pool.offset(slot) if isinstance(length, int) else length
                    size = length if isinstance(length, int) else len(length)
                    task = pool.submit(first, where, size, ahead.splits(first, first + count))
                    pending.append((task, first, where, size, count))
                    first += count
                    slot = next(slots)
                    while len(pending) >= in_flight:
                        apply.chunk(*_chunk_of(pool, pending.popleft(), nodes))
            lo = hi
        while pending:
            apply.chunk(*_chunk_of(pool, pending.popleft(), nodes))
        finished = True
    finally:
        rss = pool.close(finished)
    return rss


def _chunk_of(
    pool: _Pool, item: tuple[int, int, int | bytes, int, int], nodes: verify_nodes.NodeProof
) -> tuple[int, bytes, list[scan.Run]]:
    task, first_seq, where, size, count = item
    runs, finding = pool.result(task)
    chunk = where if isinstance(where, bytes) else pool.read(where, size)
    nodes.add(first_seq, first_seq + count, finding)
    return first_seq, chunk, runs


def _node_check(tree_size: int) -> verify_nodes.Opener | None:
    """The workers' node check: a connection each, in this transaction's snapshot. None inside
    a savepoint (a caller's transaction around the verifier's): a snapshot cannot be exported
    from there, and what that transaction wrote is not for other connections to see; the
    verifying process then checks the nodes itself, after the walk."""
    if connection.savepoint_ids:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_export_snapshot()")
        (snapshot,) = cursor.fetchone()
    info = connection.connection.info
    return functools.partial(verify_nodes.open_check, info.dsn, info.password, snapshot, tree_size)


def _first_seq_from(lo: int) -> int | None:
    """The first stored seq at or after ``lo``: segments skip gaps (the rows say what is
    missing) and stop after the last row, wherever the head claims the ledger ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(seq) FROM ledger_ledgerentry WHERE seq >= %s", [lo])
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


# ---- reading -------------------------------------------------------------------------------


@contextlib.contextmanager
def _copy(lo: int, hi: int) -> Iterator[_Messages]:
    """The row messages of entries lo <= seq < hi, in seq order, in the current transaction.
    An exception inside cancels the COPY (psycopg), so the transaction can end cleanly."""
    query = sql.SQL(
        "COPY (SELECT seq, body, type, mac FROM ledger_ledgerentry WHERE seq >= {} AND seq < {} "
        "ORDER BY seq) TO STDOUT (FORMAT BINARY)"
    ).format(sql.Literal(lo), sql.Literal(hi))
    connection.ensure_connection()
    conn = connection.connection
    with conn.cursor() as cursor, cursor.copy(query) as copy:
        yield _Messages(conn.pgconn, copy)


class _Messages:
    """Row messages read straight from libpq: psycopg's ``Copy.read`` costs as much per row as
    everything else here, so it is only used to wait when nothing is buffered yet."""

    def __init__(self, pgconn: Any, copy: psycopg.Copy) -> None:
        self._get = pgconn.get_copy_data
        self._pgconn = pgconn
        self._copy = copy
        self._started = False
        self._ended = False
        self._held: bytes | None = None

    def fill(self, slot: memoryview, rows: int) -> tuple[int | bytes, int] | None:
        """Copy up to ``rows`` row messages into ``slot``; return the bytes used and how many
        rows, or a single message too big for a slot, as bytes, and 1; None after the last."""
        if self._held is not None:  # the message that did not fit in the last slot
            message, self._held = self._held, None
            if len(message) > len(slot):
                return bytes(message), 1
            slot[: len(message)] = message
            pos, count = len(message), 1
        elif self._ended:
            return None
        else:
            pos = count = 0
        if not self._started:
            self._started = True
            first = bytes(self._copy.read())
            if not first.startswith(scan.HEADER):
                raise psycopg.DataError("COPY did not start with the binary format's header")
            first = first[len(scan.HEADER) :]
            if first == scan.TRAILER:
                self._end()
                return None
            if first:
                self._held = first
                return self.fill(slot, rows)
        get, room = self._get, len(slot)
        for _ in repeat(None, rows - count):
            length, data = get(1)  # 1: do not wait, most messages are already buffered
            if length <= 2:  # a row is at least 14 bytes; the trailer is 2
                if length == 0:
                    data = self._copy.read()  # waits for the next message
                    length = len(data)
                if length == 2 and bytes(data) == scan.TRAILER:
                    self._end()
                    break
                if length <= 2:
                    self._fail()
            if pos + length > room:
                if not count:  # bigger than a whole slot
                    return bytes(data), 1
                self._held = bytes(data)
                break
            slot[pos : pos + length] = data
            pos += length
            count += 1
        return (pos, count) if count else None

    def _end(self) -> None:
        self._ended = True
        if self._copy.read():  # takes the COPY's final result
            raise psycopg.DataError("COPY sent data after the binary format's trailer")

    def _fail(self) -> None:
        """The COPY ended without its trailer: the server reported an error."""
        message = "COPY ended early"
        while (result := self._pgconn.get_result()) is not None:
            if result.error_message:
                message = result.error_message.decode(errors="replace").strip()
        raise psycopg.OperationalError(message)


class _Checkpoints:
    """The checkpoint rows, read ahead one segment at a time (``prefetch``), as the iterator
    ``walk_rows`` takes them from; also the sizes each chunk's runs must be split at."""

    def __init__(self, rows: Iterator[tuple[Any, ...]], lookahead: tuple[Any, ...] | None):
        self._rows = rows
        self._ahead: deque[tuple[Any, ...] | None] = deque()
        self._last = lookahead  # the last row read; None once there are no more
        self._sizes: deque[int] = deque([] if lookahead is None else [lookahead[0]])

    def prefetch(self, until: int) -> None:
        """Read every checkpoint of size <= until, and the next one."""
        while self._last is not None and self._last[0] <= until:
            self._last = next(self._rows, None)
            self._ahead.append(self._last)
            if self._last is not None:
                self._sizes.append(self._last[0])

    def splits(self, first: int, stop: int) -> list[int]:
        """The sizes first < size < stop, for the chunk of rows first..stop-1 (chunks come in
        order, so sizes before ``stop`` are never asked for again)."""
        found = []
        while self._sizes and self._sizes[0] < stop:
            size = self._sizes.popleft()
            if size > first:
                found.append(size)
        return found

    def __iter__(self) -> _Checkpoints:
        return self

    def __next__(self) -> tuple[Any, ...]:
        row = self._ahead.popleft() if self._ahead else next(self._rows, None)
        if row is None:
            raise StopIteration
        return row


# ---- the workers ---------------------------------------------------------------------------


class _Pool:
    """Worker processes running ``scan.serve``, fed through one task queue."""

    def __init__(self, workers: int, slots: int, open_nodes: verify_nodes.Opener | None) -> None:
        # The chunks' shared buffer: a file both sides map, in memory where /dev/shm exists.
        # mkstemp creates it exclusively, mode 0600, so no other user can read or swap it.
        shm = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None
        fd, self._path = tempfile.mkstemp(prefix="ledger-verify-", dir=shm)
        try:
            os.ftruncate(fd, SLOT_BYTES * slots)
            self._map = mmap.mmap(fd, SLOT_BYTES * slots)
        finally:
            os.close(fd)
        self._view = memoryview(self._map)
        # Spawned, not forked: this process holds a database connection and maybe threads.
        context = multiprocessing.get_context("spawn")
        self._tasks: Any = context.Queue()
        self._results: Any = context.Queue()
        self._processes = [
            context.Process(
                target=scan.serve,
                # The entry key goes to our own child processes only (a pipe, never a file).
                args=(self._tasks, self._results, self._path, entry_key().key, open_nodes),
                name=f"ledger-verify-{i}",
                daemon=True,  # never outlives this process
            )
            for i in range(workers)
        ]
        for process in self._processes:
            process.start()
        self._keys = itertools.count()
        self._done: dict[int, tuple[list[scan.Run], Any]] = {}

    def slot(self, i: int) -> memoryview:
        return self._view[SLOT_BYTES * i : SLOT_BYTES * (i + 1)]

    def offset(self, i: int) -> int:
        return SLOT_BYTES * i

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self._view[offset : offset + size])

    def submit(self, first_seq: int, where: int | bytes, size: int, splits: list[int]) -> int:
        key = next(self._keys)
        self._tasks.put((key, first_seq, where, size, splits))
        return key

    def result(self, key: int) -> tuple[list[scan.Run], Any]:
        """The chunk's runs and what the worker found about its stored nodes."""
        while key not in self._done:
            done, runs, error, finding = self._get()
            if error is not None:
                raise RuntimeError(f"a verification worker failed:\n{error}")
            self._done[done] = (runs, finding)
        return self._done.pop(key)

    def _get(self) -> tuple[Any, Any, str | None, Any]:
        while True:
            try:
                return self._results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in self._processes if not p.is_alive()]
                if dead:
                    # A negative exit code is the signal that ended it (-9: killed, e.g. by
                    # the kernel's out-of-memory killer).
                    codes = ", ".join(f"{p.name}: exit code {p.exitcode}" for p in dead)
                    raise RuntimeError(
                        f"a verification worker exited unexpectedly ({codes})"
                    ) from None

    def close(self, finished: bool) -> list[float]:
        """Stop the workers; after a clean finish, return their peak resident memory."""
        rss: list[float] = []
        try:
            if finished:
                for _ in self._processes:
                    self._tasks.put(None)
                while len(rss) < len(self._processes):
                    key, value, _, _ = self._get()
                    if key is None:
                        rss.append(value)
        finally:
            for process in self._processes:
                if not finished:
                    process.terminate()  # queued chunks are of no use after a failure
                process.join(timeout=10)
            for q in (self._tasks, self._results):
                q.cancel_join_thread()
                q.close()
            self._view.release()
            self._map.close()
            os.unlink(self._path)
        return rss


# ---- applying the workers' results ---------------------------------------------------------


class _Applier:
    """Applies one chunk's runs, and ``walk_rows`` to every row between them."""

    def __init__(self, walk: Walk, context: WalkContext) -> None:
        self.walk, self.context = walk, context

    def chunk(self, first_seq: int, chunk: bytes, runs: list[scan.Run]) -> None:
        walk, frontier, pos = self.walk, self.context.frontier, 0
        if walk.expected != first_seq:
            raise RuntimeError(f"chunk of entry {first_seq} applied at entry {walk.expected}")
        for run in runs:
            offsets = array("I")
            offsets.frombytes(run.offsets)
            if pos < offsets[0]:
                self.serial(chunk, pos, offsets[0])
            if (
                run.start == walk.expected == frontier.size
                and run.first_prev == walk.prev.hex().encode()
            ):
                self.run(chunk, run, offsets)
            else:  # the serial loop says what is wrong with its first row
                self.serial(chunk, offsets[0], run.end)
            pos = run.end
        if pos < len(chunk):
            self.serial(chunk, pos, len(chunk))

    def serial(self, chunk: bytes, pos: int, end: int) -> None:
        rows = []
        while pos < end:
            row, pos = scan.parse_row(chunk, pos)
            rows.append(row)
        walk_rows(iter(rows), self.walk, self.context)

    def run(self, chunk: bytes, run: scan.Run, offsets: array[int]) -> None:
        """What ``walk_rows`` does for each of the run's rows once its checks have passed:
        push the leaf, check a checkpoint of that size, replay the transfer."""
        walk, context, start, count = self.walk, self.context, run.start, len(offsets)
        frontier = context.frontier
        moves = array("q")
        moves.frombytes(run.moves)
        replayed = 0
        for level, root in run.pieces:
            cp = walk.next_cp
            if cp is not None and frontier.size < cp[0] < frontier.size + (1 << level):
                raise RuntimeError(f"checkpoint at size {cp[0]} falls inside a worker's subtree")
            frontier.push_subtree(level, root)
            if cp is None or cp[0] != frontier.size:
                continue
            # Integrity before meaning, as in walk_rows: the checkpoint is checked after the
            # rows before its last one are replayed, and before that one is.
            last = frontier.size - 1 - start
            self.replay(chunk, run, offsets, moves, replayed, last)
            replayed = last
            while walk.next_cp is not None and walk.next_cp[0] == frontier.size:
                walk.last_verified_cp = reached(walk.next_cp, walk.last_verified_cp, context)
                walk.next_cp = next(context.checkpoints, None)
        self.replay(chunk, run, offsets, moves, replayed, count)
        walk.expected, walk.prev = start + count, run.last_hash
        if context.progress and (thousands := (start + count) // 1000 - start // 1000):
            context.progress(1000 * thousands)

    def replay(
        self,
        chunk: bytes,
        run: scan.Run,
        offsets: array[int],
        moves: array[int],
        i: int,
        stop: int,
    ) -> None:
        """Replay the run's rows i..stop-1: in bulk while they are plain transfers between
        existing holdings, each other one as ``walk_rows`` replays it."""
        state, streams, report = self.context.state, self.context.streams, self.context.report
        while i < stop:
            i += state.transfers(moves, i, stop)
            if i == stop:
                return
            seq = run.start + i
            (_, body, _, _), _ = scan.parse_row(chunk, offsets[i])
            try:
                produced = state.apply(decode_canonical_entry(body))
            except ReplayError as exc:
                raise VerificationError(f"cannot be replayed: {exc}", seq) from None
            for table, fields in produced:
                streams[table].expect(seq, fields)
                report.records += 1
            i += 1
