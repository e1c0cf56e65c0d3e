"""NOT PRODUCT CODE: a benchmark candidate, to size what ``credit_transfer`` could cost.

Same checks and the same ledger entry as ``ledger.services.credit_transfer``, but 7 SQL
statements instead of 14 (both accounts and the batch in one query; holdings locked with one
``SELECT ... FOR UPDATE`` and inserted only when missing; one ``UPDATE`` for both holdings; entry
INSERT and head UPDATE in one statement; no savepoint), raw SQL instead of ORM query compilation,
and no ``FOR UPDATE`` on the batch row (a transfer does not change the batch;
``BENCH_BATCH_LOCK=1`` puts that lock back, to measure it). Error messages are abbreviated.

    .venv/bin/python bench/transfer_throughput.py \
        --transfer-fn candidates.lean_transfer:credit_transfer
"""

from __future__ import annotations

import os

from django.db import connection, transaction
from django.utils import timezone

from ledger.actors import Actor
from ledger.core.entry import encode_entry, entry_hash, format_time
from ledger.exceptions import Conflict, ErrorCode, NotFound, Unprocessable
from ledger.services import append, checks

BATCH_LOCK = os.environ.get("BENCH_BATCH_LOCK") == "1"

_LOCK_HOLDINGS = (
    "SELECT id, account_id, tradable FROM ledger_holding WHERE batch_id = %s "
    "AND account_id IN (%s, %s) ORDER BY id FOR UPDATE"
)


def credit_transfer(
    *, actor: Actor, batch: int, sender: int, recipient: int, quantity: int
) -> None:
    quantity = checks._kg(quantity)
    if sender == recipient:
        raise Unprocessable("same account", code=ErrorCode.TRANSFER_TO_SELF)
    with transaction.atomic(savepoint=False), connection.cursor() as c:
        c.execute(
            "SELECT 'a', id, kind, organization_id FROM ledger_account WHERE id IN (%s, %s) "
            "UNION ALL SELECT 'b', id, NULL, NULL FROM ledger_batch WHERE id = %s",
            [sender, recipient, batch],
        )
        found = {(t, i): (k, o) for t, i, k, o in c.fetchall()}
        src, dst = found.get(("a", sender)), found.get(("a", recipient))
        if src is None or not actor.may_act_for(src[1]):
            raise NotFound(f"sender {sender} not found")
        if dst is None:
            raise NotFound(f"recipient {recipient} not found")
        if "buffer" in (src[0], dst[0]):
            raise Unprocessable("buffer pool", code=ErrorCode.BUFFER_ACCOUNT)
        if ("b", batch) not in found:
            raise NotFound(f"batch {batch} not found")
        if BATCH_LOCK:  # what credit_transfer does today (locks.batch_lock)
            c.execute("SELECT id FROM ledger_batch WHERE id = %s FOR UPDATE", [batch])
        c.execute(_LOCK_HOLDINGS, [batch, sender, recipient])
        rows = c.fetchall()
        if len(rows) < 2:
            c.execute(
                "INSERT INTO ledger_holding (account_id, batch_id, tradable, escrowed) "
                "VALUES (%s, %s, 0, 0), (%s, %s, 0, 0) ON CONFLICT DO NOTHING",
                [min(sender, recipient), batch, max(sender, recipient), batch],
            )
            c.execute(_LOCK_HOLDINGS, [batch, sender, recipient])
            rows = c.fetchall()
        held = {a: (i, t) for i, a, t in rows}
        if held[sender][1] < quantity:
            raise Conflict("insufficient balance", code=ErrorCode.INSUFFICIENT_BALANCE)
        c.execute(
            "UPDATE ledger_holding SET tradable = tradable + "
            "CASE WHEN id = %s THEN %s ELSE %s END WHERE id IN (%s, %s)",
            [held[sender][0], -quantity, quantity, held[sender][0], held[recipient][0]],
        )
        c.execute("SELECT size, last_hash FROM ledger_ledgerhead WHERE id = 1 FOR UPDATE")
        size, last = c.fetchone()
        body = encode_entry(
            seq=size,
            prev=bytes(last),
            time=format_time(timezone.now()),
            type="credit.transfer",
            actor=actor.label,
            data={"batch": batch, "from": sender, "to": recipient, "quantity": quantity},
        )
        c.execute(
            "WITH e AS (INSERT INTO ledger_ledgerentry (seq, body, type) VALUES (%s, %s, %s)) "
            "UPDATE ledger_ledgerhead SET size = %s, last_hash = %s WHERE id = 1",
            [size, body, "credit.transfer", size + 1, entry_hash(body)],
        )
        transaction.on_commit(append._checkpoint_and_webhooks_soon)
