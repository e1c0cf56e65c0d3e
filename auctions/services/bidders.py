"""Who may bid: an organization approved (or suspended) as a bidder, and its deposit for one
auction."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from ledger import validation
from ledger.actors import Actor
from ledger.core.quantity import MAX_MINOR
from ledger.models import Organization, Role

from .. import locks
from ..core import parties
from ..exceptions import AuctionErrorCode as Code
from ..exceptions import InvalidInput, NotFound, Unprocessable
from ..models import Bidder, Deposit
from .common import State, _append, _int, _wrong_state


@transaction.atomic
def bidder_approve(*, actor: Actor, organization: int) -> Bidder:
    """Admit an organization to bid (operators only; it must have the bidder role)."""
    validation.require(actor.is_operator, "only operators approve bidders")
    org = Organization.objects.filter(pk=validation.object_id(organization) or 0).first()
    if org is None:
        raise NotFound(f"organization {organization} not found")
    if not org.has_role(Role.BIDDER):
        raise Unprocessable(f"{org.handle} does not have the bidder role", code=Code.NOT_APPROVED)
    return _bidder_set(actor, org, Bidder.Status.APPROVED)


@transaction.atomic
def bidder_suspend(*, actor: Actor, organization: int) -> Bidder:
    validation.require(actor.is_operator, "only operators suspend bidders")
    org = Organization.objects.filter(pk=validation.object_id(organization) or 0).first()
    if org is None:
        raise NotFound(f"organization {organization} not found")
    return _bidder_set(actor, org, Bidder.Status.SUSPENDED)


def _bidder_set(actor: Actor, org: Organization, status: str) -> Bidder:
    # The bidder's row, which its bid actions lock too: a bid in flight commits before its
    # approval changes, or sees the change.
    locks.bidder_lock(org.pk)
    bidder = Bidder.objects.select_for_update(no_key=True).filter(organization=org).first()
    if bidder is not None and bidder.status == status:
        return bidder
    entry = _append("bidder.status", actor, {"organization": org.pk, "status": status})
    if bidder is None:
        bidder = Bidder.objects.create(organization=org, status=status, entry_seq=entry.seq)
    else:
        bidder.status, bidder.entry_seq = status, entry.seq
        bidder.save(update_fields=["status", "entry_seq"])
    return bidder


@transaction.atomic
def deposit_record(*, actor: Actor, auction: int, bidder: int, amount: int) -> Deposit:
    """Record a bidder's deposit (or a top-up) for one auction, before it closes."""
    validation.require(actor.is_operator, "only operators record deposits")
    amount = _int(amount, "amount", low=1)
    a = locks.auction_share_lock(validation.object_id(auction) or 0)
    if a is None:
        raise NotFound(f"auction {auction} not found")
    if a.state not in (State.DRAFT, State.SCHEDULED, State.OPEN):
        raise _wrong_state(a, "draft", "scheduled", "open")
    org = Organization.objects.filter(pk=validation.object_id(bidder) or 0).first()
    if org is None:
        raise NotFound(f"organization {bidder} not found", detail={"bidder": "not_found"})
    deposit = Deposit.objects.select_for_update(no_key=True).filter(auction=a, bidder=org).first()
    # A deposit released or forfeited by the operator (onboarding.py) is gone: this is a new one.
    held = deposit.amount if deposit is not None and deposit.state == Deposit.State.HELD else 0
    total = amount + held
    if total > MAX_MINOR:
        # Out of range like any other amount (_int): one condition, one code.
        raise InvalidInput(
            f"the deposit would total {total}, more than {MAX_MINOR}",
            code=Code.INVALID_RULES,
            detail={"amount": "out_of_range"},
        )
    # The depositor's pseudonym, not its id: who puts down a deposit is not public before the
    # close (parties.py). A deposit from before pseudonyms keeps naming its bidder.
    salt = parties.new_salt() if deposit is None else deposit.salt
    who: dict[str, Any] = (
        {"bidder": org.pk}
        if salt is None
        else {"depositor": parties.depositor(settings.LEDGER_ORIGIN, a.pk, org.pk, bytes(salt))}
    )
    entry = _append(
        "deposit.record", actor, {"auction": a.pk, **who, "amount": amount, "total": total}
    )
    if deposit is None:
        return Deposit.objects.create(
            auction=a, bidder=org, amount=total, entry_seq=entry.seq, salt=salt
        )
    deposit.amount, deposit.entry_seq, deposit.state = total, entry.seq, Deposit.State.HELD
    deposit.save(update_fields=["amount", "entry_seq", "state"])
    return deposit
