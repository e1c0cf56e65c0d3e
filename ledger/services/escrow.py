"""Escrow: credits put on hold for a sale (an auction's lot), then released to the holder or
delivered to a buyer.
"""

from __future__ import annotations

from django.db import transaction

from .. import locks, records, validation
from ..actors import Actor
from ..exceptions import Conflict, ErrorCode, NotFound, Unprocessable
from ..models import (
    ESCROW_OWNER_PREFIXES,
    Account,
    EscrowHold,
    EscrowHoldOwner,
    Holding,
    LedgerEntry,
)
from .append import _ledger_append
from .checks import _account, _kg
from .credits import _batch, _check_tradable, _sender

# The references of an auction's lot and a listing's lots (ledger/models.py: EscrowHoldOwner).
# A listing's are not ``auction:<...>``: the auctions' replay takes every ``auction:`` hold for
# an auction's lot.
MANAGED_PREFIX = ESCROW_OWNER_PREFIXES[EscrowHoldOwner.AUCTION]
LISTING_PREFIX = ESCROW_OWNER_PREFIXES[EscrowHoldOwner.LISTING]


def _check_managed(owner: str, reference: str, managed: bool) -> None:
    """Only the auction or listing services (``managed=True``) move a hold an auction or a
    listing owns, or make one, so that a seller cannot take back a lot under sale."""
    if owner != EscrowHoldOwner.HOLDER and not managed:
        kind = "an auction" if owner == EscrowHoldOwner.AUCTION else "a listing"
        raise Conflict(
            f"escrow hold '{reference}' belongs to {kind} and moves only through it",
            code=ErrorCode.MANAGED_HOLD,
            detail={"reference": "managed"},
        )


@transaction.atomic
def escrow_hold(
    *,
    actor: Actor,
    batch: int,
    account: int,
    quantity: int,
    reference: str,
    managed: bool = False,
) -> EscrowHold:
    quantity = _kg(quantity)
    reference = validation.text(reference, "reference", max_length=200)
    owner = EscrowHoldOwner.of(reference)
    _check_managed(owner, reference, managed)
    acc = _sender(actor, account, "account")
    b = _batch(batch, lock=False)  # escrow does not change the batch's totals
    h = locks.holdings_lock([(acc.pk, b.pk)])[(acc.pk, b.pk)]
    _check_tradable(acc, b, h.tradable, quantity)
    h.tradable -= quantity
    h.escrowed += quantity
    h.save(update_fields=["tradable", "escrowed"])
    hold = EscrowHold.objects.create(
        account=acc,
        batch=b,
        quantity=quantity,
        remaining=quantity,
        reference=reference,
        owner=owner,
    )
    _ledger_append(
        type="escrow.hold",
        actor=actor,
        data={
            "hold": {k: v for k, v in records.escrow_hold_state(hold).items() if k != "remaining"}
        },
    )
    return hold


def _escrow_take(
    actor: Actor,
    hold_id: int,
    quantity: int,
    recipient: Account | None = None,
    managed: bool = False,
) -> tuple[EscrowHold, int, dict[tuple[int, int], Holding]]:
    """Lock a hold and its holdings (and the recipient's, in the same ordered call) and take
    ``quantity`` out of escrow."""
    quantity = _kg(quantity)
    key = validation.object_id(hold_id)
    peek = (
        EscrowHold.objects.filter(pk=key).select_related("account").first()
        if key is not None
        else None
    )
    if peek is None or not actor.may_act_for(peek.account.organization_id):
        raise NotFound(f"escrow hold {hold_id} not found")
    # The row's owner, not its reference: the constraint keeps the two in step, and the
    # verifier catches a row changed with its constraint dropped.
    _check_managed(peek.owner, peek.reference, managed)
    locks.batch_lock(peek.batch_id)
    pairs = [(peek.account_id, peek.batch_id)]
    if recipient is not None:
        pairs.append((recipient.pk, peek.batch_id))
    held = locks.holdings_lock(pairs)
    hold = locks.escrow_hold_lock(hold_id)
    assert hold is not None
    if quantity > hold.remaining:
        raise Conflict(
            f"escrow hold {hold.pk} has {hold.remaining} kg left, {quantity} asked",
            code=ErrorCode.INSUFFICIENT_BALANCE,
            detail={"remaining": hold.remaining, "requested": quantity},
        )
    hold.remaining -= quantity
    hold.save(update_fields=["remaining"])
    src = held[(hold.account_id, hold.batch_id)]
    src.escrowed -= quantity
    src.save(update_fields=["escrowed"])
    return hold, quantity, held


@transaction.atomic
def escrow_release(*, actor: Actor, hold: int, quantity: int, managed: bool = False) -> LedgerEntry:
    """Return escrowed credits to their holder's tradable balance."""
    taken, quantity, held = _escrow_take(actor, hold, quantity, managed=managed)
    h = held[(taken.account_id, taken.batch_id)]
    h.tradable += quantity
    h.save(update_fields=["tradable"])
    return _ledger_append(
        type="escrow.release", actor=actor, data={"hold": taken.pk, "quantity": quantity}
    )


@transaction.atomic
def escrow_deliver(
    *, actor: Actor, hold: int, recipient: int, quantity: int, managed: bool = False
) -> LedgerEntry:
    """Deliver escrowed credits to another account (auction settlement)."""
    validation.require(actor.is_operator, "only the operator delivers escrowed credits")
    dst = _account(recipient, None, "recipient")
    if dst.kind == Account.Kind.BUFFER:
        raise Unprocessable(
            "credits cannot be delivered into a buffer pool", code=ErrorCode.BUFFER_ACCOUNT
        )
    taken, quantity, held = _escrow_take(actor, hold, quantity, recipient=dst, managed=managed)
    h = held[(dst.pk, taken.batch_id)]
    h.tradable += quantity
    h.save(update_fields=["tradable"])
    return _ledger_append(
        type="escrow.deliver",
        actor=actor,
        data={"hold": taken.pk, "to": dst.pk, "quantity": quantity},
    )
