"""Claiming a row of outbound work by compare-and-set, as healthchecks claims its jobs: a sender
takes a row only while it is still as the sender read it, in one ``UPDATE``, so two senders
never both take it, and a sender run twice finds nothing left to take. The webhook deliveries
(``ledger/webhooks.py``) and the mail outbox (``ledger/mail.py``) are sent this way.

A claim is a time, not a row lock: a row lock lives as long as its transaction, and no
transaction may stay open across a request to someone else's server (an HTTP receiver, an SMTP
relay). Claiming moves the row's ``due_at`` to when the send must have ended; a sender that dies
between its claim and its send leaves a claim that runs out, and the row is due again for the
next sender. The outcome is recorded by compare-and-set on the claim too, so a sender that
took over after a claim ran out (under a send slower than the claim) records its own attempt,
not the first sender's as well.

The rows are ``pending``: a queryset of the rows still to send, each with a ``due_at``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

# A sender may take a row this much before its due time (the clocks of several hosts); a claim
# made earlier than that is another sender's.
CLOCK_SKEW = timedelta(seconds=1)
MAX_BACKOFF = 3600.0  # seconds: the longest a failed row waits for its next attempt


def claim(pending: QuerySet[Any], pk: int, *, seen: datetime, hold: timedelta) -> datetime | None:
    """Take row ``pk`` for ``hold`` if it is still pending, due (now) and as it was read
    (``due_at == seen``). Returns the claim, which the outcome is recorded against, or None:
    another sender has it, it was sent meanwhile, or it is not due."""
    now = timezone.now()
    until = now + hold
    taken = pending.filter(pk=pk, due_at=seen, due_at__lte=now + CLOCK_SKEW).update(due_at=until)
    return until if taken else None


def record(pending: QuerySet[Any], pk: int, claim: datetime, **outcome: Any) -> bool:
    """Write an attempt's outcome if the claim is still this sender's. ``due_at`` in
    ``outcome`` makes the row due again (a retry); a status other than pending ends it."""
    return bool(pending.filter(pk=pk, due_at=claim).update(**outcome))


def retry_at(attempts: int, *, base: float) -> datetime:
    """When a row that has failed ``attempts`` times is tried again: ``base`` seconds after its
    first failure, twice as long after each further one, at most ``MAX_BACKOFF``."""
    return timezone.now() + timedelta(seconds=min(base * 2 ** (attempts - 1), MAX_BACKOFF))


def due(pending: QuerySet[Any], *, limit: int) -> list[tuple[int, datetime]]:
    """The rows due now, oldest first, as (pk, due_at) to claim: at most ``limit``."""
    rows = pending.filter(due_at__lte=timezone.now()).order_by("due_at", "pk")
    return list(rows.values_list("pk", "due_at")[:limit])
