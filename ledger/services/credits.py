"""Moving credits: transfers (one, or a set of them at once: ``credit_transfer_many``),
retirements, cancellations, and reversals, which cancel from the buffer pool.
"""

from __future__ import annotations

from typing import TypedDict

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from .. import locks, records, validation
from ..actors import Actor
from ..exceptions import Conflict, DomainError, ErrorCode, InvalidInput, NotFound, Unprocessable
from ..models import Account, Batch, Cancellation, LedgerEntry, Retirement, Reversal
from .append import EntryRow, _big, _ledger_append, _ledger_append_many, _next_seq_locked
from .checks import _account, _jurisdiction, _kg, _sha256


def _batch(batch_id: object, *, lock: bool = True) -> Batch:
    """The batch, locked when the caller changes its totals (retire, cancel)."""
    key = validation.object_id(batch_id)
    if key is None:
        b = None
    elif lock:
        b = locks.batch_lock(key)
    else:
        b = Batch.objects.filter(pk=key).first()
    if b is None:
        raise NotFound(f"batch {batch_id} not found", detail={"batch": "not_found"})
    return b


def _check_tradable(account: Account, batch: Batch, tradable: int, quantity: int) -> None:
    if tradable >= quantity:
        return
    gone = (
        Retirement.objects.filter(account=account, batch=batch).exists()
        or Cancellation.objects.filter(account=account, batch=batch).exists()
    )
    if tradable == 0 and gone:
        raise Conflict(
            f"account {account.pk} holds no tradable credits of {batch.serial}: its credits "
            "of this batch were retired or cancelled, and those never move again",
            code=ErrorCode.CREDITS_RETIRED,
        )
    raise Conflict(
        f"account {account.pk} has {tradable} kg tradable of {batch.serial}, {quantity} needed",
        code=ErrorCode.INSUFFICIENT_BALANCE,
        detail={"tradable": tradable, "requested": quantity},
    )


def _sender(actor: Actor, account_id: object, field: str = "sender") -> Account:
    account = _account(account_id, actor, field)
    if account.kind == Account.Kind.BUFFER:
        raise Unprocessable(
            "buffer-pool credits only leave the pool through a reversal",
            code=ErrorCode.BUFFER_ACCOUNT,
        )
    return account


class Transfer(TypedDict):
    """One transfer of ``credit_transfer_many``: ``credit_transfer``'s arguments."""

    batch: int
    sender: int
    recipient: int
    quantity: int


def credit_transfer(
    *, actor: Actor, batch: int, sender: int, recipient: int, quantity: int
) -> LedgerEntry:
    """Move tradable credits between two accounts: ``credit_transfer_many`` of one.

    The registry's hottest write. Inside a caller's transaction it takes no savepoint (two
    round trips of ten): every check runs before the first write, so a refusal leaves the
    caller's transaction untouched, and after the first write only a database error can stop
    it, which aborts the whole transaction anyway."""
    one: Transfer = {"batch": batch, "sender": sender, "recipient": recipient, "quantity": quantity}
    try:
        if connection.in_atomic_block:
            ((seq, body, type_, _),) = _credit_transfers(actor, [one])
        else:
            with transaction.atomic():
                ((seq, body, type_, _),) = _credit_transfers(actor, [one])
    except _TransferRefused as refused:
        raise refused.error from None
    return LedgerEntry(seq=seq, body=body, type=type_)


def credit_transfer_many(*, actor: Actor, transfers: list[Transfer]) -> list[int]:
    """Apply ``transfers`` in order, exactly as ``credit_transfer`` called once for each would
    (same checks, same refusal, same balances, same entries), all or nothing, in a handful of
    statements whatever their number: the accounts and batches read at once, every holding
    locked at once (in id order), balances checked in order in memory, holdings written in one
    UPDATE, the entries appended together (``_ledger_append_many``, one time for all). Returns
    their entries' sequence numbers. A refusal is the error ``credit_transfer`` would raise for
    the first transfer it refuses, with that transfer's position in ``detail["index"]``; then
    nothing is written. Like ``credit_transfer``, it takes no savepoint inside a caller's
    transaction."""
    try:
        if connection.in_atomic_block:
            rows = _credit_transfers(actor, transfers)
        else:
            with transaction.atomic():
                rows = _credit_transfers(actor, transfers)
    except _TransferRefused as refused:
        refused.error.detail = {**refused.error.detail, "index": refused.index}
        raise refused.error from None
    return [row[0] for row in rows]


class _TransferRefused(Exception):
    """Which transfer of a set was refused, and why."""

    def __init__(self, index: int, error: DomainError) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


def _credit_transfers(actor: Actor, transfers: list[Transfer]) -> list[EntryRow]:
    """The checks of each transfer in order, then the writes; raises ``_TransferRefused`` for
    the first refused (nothing written). The checks go in three passes over the whole set (the
    input, the parties, the balances), each stopping at the first refusal: a transfer is
    refused by a later pass only if no earlier transfer is refused by any, which is the order
    of checking them one at a time."""
    refusal: _TransferRefused | None = None
    checked: list[tuple[int, int | None, int | None, int | None]] = []
    for index, t in enumerate(transfers):
        try:
            quantity = _kg(t["quantity"])
            if t["sender"] == t["recipient"]:
                raise Unprocessable(
                    "sender and recipient are the same account", code=ErrorCode.TRANSFER_TO_SELF
                )
        except DomainError as exc:
            refusal = _TransferRefused(index, exc)
            break
        checked.append(
            (
                quantity,
                validation.object_id(t["sender"]),
                validation.object_id(t["recipient"]),
                validation.object_id(t["batch"]),
            )
        )

    moves: list[tuple[int, int, int, int]] = []  # (quantity, sender, recipient, batch)
    accounts, batches = _transfer_parties(
        {a for _, src, dst, _ in checked for a in (src, dst)}, {b for *_, b in checked}
    )
    for index, (quantity, src, dst, b) in enumerate(checked):
        try:
            moves.append(
                (quantity, *_check_parties(actor, accounts, batches, transfers[index], src, dst, b))
            )
        except DomainError as exc:
            refusal = _TransferRefused(index, exc)
            break

    # No lock on the batch row: a transfer does not change it, and locking it would make every
    # transfer of one batch wait for the others.
    pairs = sorted({(a, b) for _, src, dst, b in moves for a in (src, dst)})
    held = locks.holdings_lock(pairs, create=False) if pairs else {}
    start = {pair: h.tradable for pair, h in held.items()}
    balance = dict(start)
    for index, (quantity, src, dst, b) in enumerate(moves):
        tradable = balance.get((src, b), 0)
        if tradable < quantity:  # refuse before writing anything, even an empty holding
            try:
                _check_tradable(
                    Account.objects.get(pk=src), Batch.objects.get(pk=b), tradable, quantity
                )
            except DomainError as exc:
                raise _TransferRefused(index, exc) from None
        balance[(src, b)] = tradable - quantity
        balance[(dst, b)] = balance.get((dst, b), 0) + quantity
    if refusal is not None:
        raise refusal
    if not moves:
        return []

    if len(held) < len(pairs):  # a recipient's first credits of a batch: its holding is new
        held = locks.holdings_lock(pairs)
    for pair, h in held.items():
        # A new holding may have been made, and credited, by another transfer since we
        # looked: add to its row as it is now (the rows locked above cannot have changed).
        h.tradable += balance[pair] - start.get(pair, 0)
    locks.holdings_save(*held.values())
    return _ledger_append_many(
        entries=[
            ("credit.transfer", {"batch": b, "from": src, "to": dst, "quantity": quantity})
            for quantity, src, dst, b in moves
        ],
        actor=actor,
    )


def _transfer_parties(
    account_ids: set[int | None], batch_ids: set[int | None]
) -> tuple[dict[int, tuple[str, int]], set[int]]:
    """Every account ((kind, organization) by id) and batch a set of transfers names, in one
    query: this is the hottest path in the registry. Ids that cannot be ids are looked up as 0,
    which names nothing."""
    a_ids = sorted(i if i is not None else 0 for i in account_ids)
    b_ids = sorted(i if i is not None else 0 for i in batch_ids)
    if not a_ids:
        return {}, set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'a', id, kind, organization_id FROM ledger_account WHERE id IN "
            f"({', '.join(['%s'] * len(a_ids))}) UNION ALL SELECT 'b', id, NULL, NULL "
            f"FROM ledger_batch WHERE id IN ({', '.join(['%s'] * len(b_ids))})",
            [*a_ids, *b_ids],
        )
        found = cursor.fetchall()
    accounts = {i: (kind, org) for t, i, kind, org in found if t == "a"}
    return accounts, {i for t, i, _, _ in found if t == "b"}


def _check_parties(
    actor: Actor,
    accounts: dict[int, tuple[str, int]],
    batches: set[int],
    given: Transfer,
    src: int | None,
    dst: int | None,
    batch: int | None,
) -> tuple[int, int, int]:
    """A transfer's sender, recipient and batch, checked in ``credit_transfer``'s order."""
    sender = accounts.get(src) if src is not None else None
    recipient = accounts.get(dst) if dst is not None else None
    # A foreign sender is reported exactly like a missing one: no existence leak.
    if sender is None or not actor.may_act_for(sender[1]):
        raise NotFound(f"sender {given['sender']} not found", detail={"sender": "not_found"})
    if recipient is None:
        raise NotFound(
            f"recipient {given['recipient']} not found", detail={"recipient": "not_found"}
        )
    if sender[0] == Account.Kind.BUFFER:
        raise Unprocessable(
            "buffer-pool credits only leave the pool through a reversal",
            code=ErrorCode.BUFFER_ACCOUNT,
        )
    if recipient[0] == Account.Kind.BUFFER:
        raise Unprocessable(
            "credits cannot be transferred into a buffer pool", code=ErrorCode.BUFFER_ACCOUNT
        )
    if batch is None or batch not in batches:
        raise NotFound(f"batch {given['batch']} not found", detail={"batch": "not_found"})
    assert src is not None and dst is not None  # found above
    return src, dst, batch


def _out_of_circulation(
    actor: Actor, account: object, batch: object, quantity: int, total: str
) -> tuple[Account, Batch, int]:
    """Take ``quantity`` tradable credits out of the actor's holding for good, into the batch's
    ``total`` (retired or cancelled), under the batch's and the holding's locks. Returns the
    account, the batch and the sequence number the entry will get (the head is locked now)."""
    acc = _sender(actor, account, "account")
    b = _batch(batch)
    h = locks.holdings_lock([(acc.pk, b.pk)])[(acc.pk, b.pk)]
    _check_tradable(acc, b, h.tradable, quantity)
    h.tradable -= quantity
    h.save(update_fields=["tradable"])
    Batch.objects.filter(pk=b.pk).update(**{total: F(total) + _big(quantity)})
    return acc, b, _next_seq_locked()


@transaction.atomic
def credit_retire(
    *,
    actor: Actor,
    batch: int,
    account: int,
    quantity: int,
    beneficiary: str,
    purpose: str,
    jurisdiction: str,
    reason: str = "",
) -> Retirement:
    quantity = _kg(quantity)
    fields = {
        "beneficiary": validation.text(beneficiary, "beneficiary", max_length=300),
        "purpose": validation.text(purpose, "purpose", max_length=300),
        "jurisdiction": _jurisdiction(jurisdiction),
        "reason": validation.text(reason, "reason", max_length=2000, required=False),
    }
    acc, b, seq = _out_of_circulation(actor, account, batch, quantity, "retired")
    now = timezone.now()  # one instant for the certificate's year and the entry's time
    certificate = f"BCR-{now:%Y}-{seq:010d}"
    retirement = Retirement.objects.create(
        entry_seq=seq, certificate=certificate, account=acc, batch=b, quantity=quantity, **fields
    )
    _ledger_append(
        type="credit.retire",
        actor=actor,
        data={"retirement": records.retirement_record(retirement)},
        at=now,
    )
    return retirement


@transaction.atomic
def credit_cancel(
    *, actor: Actor, batch: int, account: int, quantity: int, reason: str, destination: str = ""
) -> Cancellation:
    quantity = _kg(quantity)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput(
            "a cancellation needs a reason (e.g. exported to another registry)",
            detail={"reason": "required"},
        )
    reason = validation.text(reason, "reason", max_length=2000)
    destination = validation.text(destination, "destination", max_length=200, required=False)
    acc, b, seq = _out_of_circulation(actor, account, batch, quantity, "cancelled")
    cancellation = Cancellation.objects.create(
        entry_seq=seq,
        account=acc,
        batch=b,
        quantity=quantity,
        reason=reason,
        destination=destination,
    )
    _ledger_append(
        type="credit.cancel",
        actor=actor,
        data={"cancellation": records.cancellation_record(cancellation)},
    )
    return cancellation


@transaction.atomic
def reversal_record(
    *, actor: Actor, project: int, quantity: int, evidence_sha256: str, description: str
) -> Reversal:
    """Record a loss of stored carbon and cancel as much from the registry's buffer pool:
    first from this project's batches, then from the others, oldest batch first."""
    quantity = _kg(quantity)
    evidence = _sha256(evidence_sha256, "evidence_sha256")
    description = validation.text(description, "description", max_length=5000)
    p = locks.project_lock(pid) if (pid := validation.object_id(project)) is not None else None
    if p is None or not actor.may_act_for(p.registry_id):
        raise NotFound(f"project {project} not found")
    buffer = Account.objects.filter(organization_id=p.registry_id, kind=Account.Kind.BUFFER).first()
    if buffer is None:
        raise Unprocessable("the registry has no buffer pool", code=ErrorCode.BUFFER_ACCOUNT)
    candidates = list(
        buffer.holdings.filter(tradable__gt=0).select_related("batch").order_by("batch_id")
    )
    candidates.sort(key=lambda h: (h.batch.project_id != p.pk, h.batch_id))
    plan: list[tuple[int, int]] = []
    left = quantity
    for h in candidates:
        if left == 0:
            break
        take = min(left, h.tradable)
        plan.append((h.batch_id, take))
        left -= take
    if left:
        raise Conflict(
            f"the buffer pool holds {quantity - left} kg, the reversal needs {quantity}",
            code=ErrorCode.INSUFFICIENT_BUFFER,
            detail={"available": quantity - left, "requested": quantity},
        )
    for batch_id, _ in sorted(plan):
        locks.batch_lock(batch_id)
    held = locks.holdings_lock([(buffer.pk, b) for b, _ in plan])
    seq = _next_seq_locked()
    cancelled = []
    for batch_id, take in plan:
        h = held[(buffer.pk, batch_id)]
        if h.tradable < take:  # changed since we planned: the lock now makes it stable
            raise Conflict("the buffer pool changed; try again", code=ErrorCode.INSUFFICIENT_BUFFER)
        h.tradable -= take
        h.save(update_fields=["tradable"])
        Batch.objects.filter(pk=batch_id).update(cancelled=F("cancelled") + _big(take))
        cancellation = Cancellation.objects.create(
            entry_seq=seq,
            account=buffer,
            batch_id=batch_id,
            quantity=take,
            reason="reversal",
            destination="",
        )
        cancelled.append(records.cancellation_record(cancellation))
    reversal = Reversal.objects.create(
        entry_seq=seq,
        project=p,
        quantity=quantity,
        evidence_sha256=evidence,
        description=description,
    )
    _ledger_append(
        type="reversal.record",
        actor=actor,
        data={"reversal": records.reversal_record(reversal), "cancellations": cancelled},
    )
    return reversal
