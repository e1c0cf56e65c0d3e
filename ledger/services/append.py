"""The append: every ledger entry is written here, by ``_ledger_append_many`` (``_ledger_append``
is it for one entry), through one encoder, ``entry_body``; and after the commit, the checkpoint
and webhook dispatch that follow every write are enqueued (``_checkpoint_and_webhooks_soon``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, Value
from django.utils import timezone

from .. import jobs, locks
from ..actors import Actor
from ..core.entry import TRANSFER_BYTES, encode_entry, entry_hash, format_time
from ..entry_auth import entry_key
from ..models import LedgerEntry

# An entry as written: (seq, body, type, mac), the columns of ``ledger_ledgerentry``.
EntryRow = tuple[int, bytes, str, bytes | None]


_TRANSFER_DATA = frozenset(("batch", "from", "quantity", "to"))


def entry_body(
    *, seq: int, prev: bytes, time: str, type: str, actor: str, data: dict[str, Any]
) -> bytes:
    """An entry's bytes: exactly ``encode_entry``'s (RFC 8785), for every append.

    A ``credit.transfer`` of four integers, the commonest entry, is formatted from a byte
    template instead (1.8 us against 2.3 for ``encode_entry``, best of 15 runs). Its bytes are
    used only when they are what the verifier accepts as a canonical transfer
    (``TRANSFER_BYTES``: an ASCII actor without quote or backslash, integers of at most 15
    digits, the time in ``format_time``'s form); anything else is encoded.
    ``tests/ledger/test_entry_body.py`` checks the two against each other."""
    if (
        type == "credit.transfer"
        and data.keys() == _TRANSFER_DATA
        # ints, not bools or strings (which the template would write unquoted)
        and data["batch"].__class__ is int
        and data["from"].__class__ is int
        and data["quantity"].__class__ is int
        and data["to"].__class__ is int
    ):
        body = (
            f'{{"actor":"{actor}","data":{{"batch":{data["batch"]},"from":{data["from"]},'
            f'"quantity":{data["quantity"]},"to":{data["to"]}}},"prev":"{prev.hex()}",'
            f'"seq":{seq},"time":"{time}","type":"credit.transfer","v":1}}'
        ).encode()
        if TRANSFER_BYTES.fullmatch(body) is not None:
            return body
    return encode_entry(seq=seq, prev=prev, time=time, type=type, actor=actor, data=data)


def _ledger_append(
    *,
    type: str,
    actor: Actor,
    data: dict[str, Any],
    at: dt.datetime | None = None,
    head: tuple[int, bytes] | None = None,
    also: Callable[[int], list[tuple[str, list[Any]]]] | None = None,
) -> LedgerEntry:
    """Append one entry: ``_ledger_append_many`` of one."""
    ((seq, body, _, _),) = _ledger_append_many(
        entries=[(type, data)], actor=actor, at=at, head=head, also=also
    )
    return LedgerEntry(seq=seq, body=body, type=type)


def _ledger_append_many(
    *,
    entries: list[tuple[str, dict[str, Any]]],
    actor: Actor,
    at: dt.datetime | None = None,
    head: tuple[int, bytes] | None = None,
    also: Callable[[int], list[tuple[str, list[Any]]]] | None = None,
) -> list[EntryRow]:
    """Append ``entries`` ((type, data) each), in order, all with one actor and one time: the
    only writer of ledger entries. Must run inside the caller's transaction, after its other
    locks. Returns the rows written, in order.

    ``head``: what ``locks.ledger_head_lock()`` returned to this transaction, if it already
    holds the head (saves reading it again). ``also(seq)``: the entries' own rows to write with
    them, as data-modifying statements (INSERT/UPDATE ... without RETURNING) that may name the
    first entry's seq. Every statement between locking the head and committing is time every
    other writer waits, so on PostgreSQL one entry goes in one round trip with those statements
    and the head update, and more than one by COPY (one round trip for any number), then the
    head update. Appending N entries here or one by one gives the same bytes, MACs and head
    (``tests/ledger/test_services_append.py``)."""
    if not entries:
        return []
    size, last = head or locks.ledger_head_lock()
    time = format_time(at or timezone.now())
    key = entry_key()
    label = actor.label
    rows: list[EntryRow] = []
    for seq, (type_, data) in enumerate(entries, start=size):
        body = entry_body(seq=seq, prev=last, time=time, type=type_, actor=label, data=data)
        last = entry_hash(body)
        rows.append((seq, body, type_, key.mac(last) if seq >= key.since else None))
    extra = also(size) if also is not None else []
    head_update = "UPDATE ledger_ledgerhead SET size = %s, last_hash = %s WHERE id = 1"
    new_head: list[Any] = [size + len(rows), last]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(rows) == 1:
            ctes = "".join(f", x{i} AS ({sql})" for i, (sql, _) in enumerate(extra))
            cursor.execute(
                "WITH e AS (INSERT INTO ledger_ledgerentry (seq, body, type, mac) "
                f"VALUES (%s, %s, %s, %s)){ctes} {head_update}",
                [*rows[0], *(v for _, values in extra for v in values), *new_head],
            )
        else:
            if connection.vendor == "postgresql":
                # COPY inserts only (the append-only triggers guard UPDATE, DELETE and
                # TRUNCATE). Through the driver's own cursor, so its errors are made Django's
                # here (a deadlock must be an OperationalError to be retried or answered 503,
                # ledger/apis/errors.py).
                with (
                    connection.wrap_database_errors,
                    cursor.cursor.copy(
                        "COPY ledger_ledgerentry (seq, body, type, mac) FROM STDIN"
                    ) as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(
                    "INSERT INTO ledger_ledgerentry (seq, body, type, mac) VALUES (%s, %s, %s, %s)",
                    rows,
                )
            cursor.execute(head_update, new_head)
            for sql, values in extra:
                cursor.execute(sql, values)
    # robust: the entries are committed; a broker that is down must not turn a successful write
    # into an error (a retrying client would apply it twice). Beat's backstop covers the miss.
    transaction.on_commit(_checkpoint_and_webhooks_soon, robust=True)
    return rows


def _big(n: int) -> Value:
    """An integer for an ``F() +`` update, bound as bigint: with server-side binding an untyped
    Python int goes as a 4-byte integer, and from 2^31 kg (2.1 million t) on it wrapped silently."""
    return Value(n, output_field=BigIntegerField())


def entry_mac(seq: int, digest: bytes) -> bytes | None:
    """The MAC entry ``seq`` must carry (ledger/entry_auth.py), or None before the key's
    ``since``."""
    key = entry_key()
    return key.mac(digest) if seq >= key.since else None


# The append, for other apps' services (auctions): the same function, the same transaction.
ledger_append = _ledger_append


def ledger_head_lock() -> tuple[int, bytes]:
    """Lock the ledger head now (the last lock a write takes): (size, last hash). For a service
    that must know its entry's sequence number before writing the rows that name it."""
    return locks.ledger_head_lock()


def _next_seq_locked() -> int:
    """The sequence number the next append will get; caller holds the head lock."""
    return locks.ledger_head_lock()[0]


_checkpoint_guard = threading.Lock()


_checkpoint_last_enqueued = 0.0
_dispatch_last_enqueued = 0.0


def _checkpoint_and_webhooks_soon() -> None:
    """After a commit of entries: make sure a checkpoint task runs within
    LEDGER_CHECKPOINT_INTERVAL and a webhook dispatch (which turns the new entries into
    deliveries) within WEBHOOK_DISPATCH_INTERVAL. Each process enqueues at most one of each per
    its interval, delayed by that interval, so every write is covered by tasks that start after
    it, and a burst of writes costs one checkpoint and one dispatch.

    The dispatch has its own, longer interval: its cost grows with the endpoints (it locks and
    advances every active endpoint's cursor): in a closing rush with 704 endpoints, a dispatch
    a second from each web process held the bid p99 over its target (bench/README.md)."""
    global _checkpoint_last_enqueued, _dispatch_last_enqueued
    checkpoint = settings.LEDGER_CHECKPOINT_INTERVAL
    dispatch = settings.WEBHOOK_DISPATCH_INTERVAL
    with _checkpoint_guard:
        now = time.monotonic()
        checkpoint_due = now - _checkpoint_last_enqueued >= checkpoint
        if checkpoint_due:
            _checkpoint_last_enqueued = now
        dispatch_due = now - _dispatch_last_enqueued >= dispatch
        if dispatch_due:
            _dispatch_last_enqueued = now
    if checkpoint_due:
        jobs.send(jobs.CHECKPOINT, countdown=checkpoint)
    if dispatch_due:
        jobs.send(jobs.WEBHOOKS_DISPATCH, countdown=dispatch)
