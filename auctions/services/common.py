"""What every aggregate of the auction services shares: input checks, the auction's lock for
a transition, the state error, the append and the after-commit hook; and the end of an
auction that does not settle (cancelled or failed), which creating, closing and clearing all
reach."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction

from ledger import services as registry
from ledger import validation
from ledger.actors import Actor
from ledger.core.quantity import MAX_MINOR
from ledger.models import EscrowHold

from .. import locks
from ..core import parties
from ..exceptions import AuctionErrorCode as Code
from ..exceptions import Conflict, InvalidInput, NotFound
from ..models import Auction, Deposit

State = Auction.State
SYSTEM = Actor.system("auctions")


def _int(value: object, field: str, *, low: int = 0, high: int = MAX_MINOR) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(
            f"{field} must be an integer from {low} to {high}",
            code=Code.INVALID_RULES,
            detail={field: "out_of_range"},
        )
    return value


def _aware(value: object, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidInput(
            f"{field} must be a date and time with a time zone",
            code=Code.INVALID_TIME,
            detail={field: "invalid"},
        )
    # Whole microseconds in UTC: what the ledger records is exactly what the row holds.
    return value.astimezone(dt.UTC)


def _auction(auction_id: object, *, close_gate: bool = False) -> Auction:
    """The auction, its row locked for a transition; ``close_gate`` also shuts its bid gate
    (``locks.py``): for transitions out of "open" and out of the states deposits are taken in."""
    key = validation.object_id(auction_id)
    a = locks.auction_lock(key, close_gate=close_gate) if key else None
    if a is None:
        raise NotFound(f"auction {auction_id} not found", detail={"auction": "not_found"})
    return a


def _wrong_state(a: Auction, *wanted: str) -> Conflict:
    return Conflict(
        f"auction {a.pk} is {a.state}; this needs it {' or '.join(wanted)}",
        code=Code.WRONG_STATE,
        detail={"state": a.state},
    )


def _append(type: str, actor: Actor, data: dict[str, Any], at: dt.datetime | None = None) -> Any:
    return registry.ledger_append(type=type, actor=actor, data=data, at=at)


def _after_commit(fn: Callable[[], None]) -> None:
    # robust: the write is committed; a broker that is down must not turn it into an error.
    # Beat's sweep (auctions_due_task) picks up whatever was not enqueued.
    transaction.on_commit(fn, robust=True)


# ---- the end of an auction that does not settle ------------------------------------------


def _end(a: Auction, actor: Actor, state: str, entry_type: str, reason: str) -> None:
    """Cancel or fail: whatever is left of the lot returns to the seller, deposits are released."""
    hold_id = a.hold_id
    if hold_id is not None:
        remaining = EscrowHold.objects.get(pk=hold_id).remaining
        if remaining:
            registry.escrow_release(actor=actor, hold=hold_id, quantity=remaining, managed=True)
    released = _release_deposits(a, exclude=set())
    entry = _append(
        entry_type, actor, {"auction": a.pk, "reason": reason, "deposits_released": released}
    )
    a.state, a.state_seq, a.state_reason = state, entry.seq, reason
    a.save(update_fields=["state", "state_seq", "state_reason"])


def _release_deposits(a: Auction, exclude: set[int]) -> list[int | str]:
    """Mark held deposits released (the entry that calls this lists their bidders; before the
    reveal, the pseudonyms of those that have one, which sort after the ids)."""
    rows = list(
        Deposit.objects.filter(auction=a, state=Deposit.State.HELD)
        .exclude(bidder_id__in=exclude)
        .values_list("bidder_id", "salt")
    )
    Deposit.objects.filter(auction=a, bidder_id__in=[b for b, _ in rows]).update(
        state=Deposit.State.RELEASED
    )
    if a.revealed_seq is not None:
        return sorted(b for b, _ in rows)
    named = sorted(b for b, salt in rows if salt is None)
    hidden = sorted(
        parties.depositor(settings.LEDGER_ORIGIN, a.pk, b, bytes(salt))
        for b, salt in rows
        if salt is not None
    )
    return [*named, *hidden]
