"""Mail through an outbox: a service writes its mail (``mail_enqueue``) in the transaction of the
change the mail tells of, and a worker sends it after the commit (``mail_send_due``).

Sent from inside the transaction, as auction results were until issue 15, a mail went out while
the change's row locks were held (the auction's row, for as long as the relay took), and went
out even when the transaction then rolled back. Now:

* ``mail_enqueue`` writes ``OutboxMail`` rows and, after the commit, sends ``mail_send_task``
  (robust: a broker that is down delays the mail; it does not fail the write). A rollback takes
  the rows with it, so nothing is sent.
* ``mail_send_due`` (that task; beat also runs it every 15 seconds) takes the due
  rows one at a time by compare-and-set (``ledger/claims.py``, as webhook deliveries are taken),
  sends each and records the outcome: sent; or due again after a backoff
  (``MAIL_RETRY_BASE_SECONDS``, doubling); or, after ``MAIL_MAX_ATTEMPTS``, given up. Two
  workers never send one row at the same time, and a row recorded as sent is never sent again.
  A failure ends the batch: a relay that refuses one mail would refuse the next, and the rows
  left keep their attempts.
* a worker that dies between its claim and its send leaves a claim that runs out after
  ``MAIL_CLAIM_SECONDS``; the next run sends the row.

What is left is at least once, as with any mail relay: a worker that dies after the relay
accepted a mail and before its row was recorded as sent leaves the row to be sent again. Each
mail carries a Message-ID made from its row, the same at every attempt, by which mail systems
recognise the repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone

from . import claims, jobs
from .models import OutboxMail

log = logging.getLogger(__name__)
BATCH_SIZE = 100  # mails one run sends at most; a full run enqueues the next
PENDING = OutboxMail.Status.PENDING
_pending = OutboxMail.objects.filter(status=PENDING)


@dataclass(frozen=True)
class Mail:
    to: list[str]
    subject: str
    body: str


def mail_enqueue(*, mails: Iterable[Mail]) -> int:
    """Write ``mails`` to the outbox, to be sent once the current transaction commits (and
    never, if it rolls back). Returns how many were written."""
    rows = [
        OutboxMail(
            to=list(m.to),
            subject=m.subject[:300],
            body=m.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
        )
        for m in mails
        if m.to
    ]
    if rows:
        OutboxMail.objects.bulk_create(rows)
        transaction.on_commit(_send_soon, robust=True)
    return len(rows)


def _send_soon() -> None:
    jobs.send(jobs.MAIL_SEND)


def mail_send_due() -> int:
    """Send the mail that is due, oldest first, at most ``BATCH_SIZE``; stop at the first
    failure. Returns how many were sent. Safe to run twice or concurrently: each row is claimed
    before it is sent."""
    hold = timedelta(seconds=settings.MAIL_CLAIM_SECONDS)
    due = claims.due(_pending, limit=BATCH_SIZE)
    sent = 0
    connection = get_connection()  # one session with the relay for the batch, opened lazily
    try:
        for pk, seen in due:
            claim = claims.claim(_pending, pk, seen=seen, hold=hold)
            if claim is None:
                continue  # another worker has it, or sent it meanwhile
            if not _send(pk, claim, connection):
                break
            sent += 1
    finally:
        connection.close()
    if len(due) == BATCH_SIZE:
        _send_soon()  # more may be due: the next batch, behind whatever else is queued
    return sent


def message_id(mail: OutboxMail) -> str:
    """The same at every attempt to send ``mail``, and no other mail's."""
    domain = mail.from_email.rpartition("@")[2] or "localhost"
    return f"<outbox-{mail.pk}-{int(mail.created_at.timestamp())}@{domain}>"


def _send(pk: int, claim: datetime, connection: BaseEmailBackend) -> bool:
    mail = OutboxMail.objects.get(pk=pk)
    attempts = mail.attempts + 1
    message = EmailMessage(
        mail.subject,
        mail.body,
        mail.from_email,
        list(mail.to),
        connection=connection,
        headers={"Message-ID": message_id(mail)},
    )
    try:
        message.send()
    except OSError as exc:  # smtplib's errors are OSErrors: the relay refused or is unreachable
        connection.close()  # the session may be broken: the next batch opens a new one
        gave_up = attempts >= settings.MAIL_MAX_ATTEMPTS
        outcome: dict[str, Any] = (
            {"status": OutboxMail.Status.FAILED}
            if gave_up
            else {"due_at": claims.retry_at(attempts, base=settings.MAIL_RETRY_BASE_SECONDS)}
        )
        claims.record(
            _pending,
            pk,
            claim,
            attempts=attempts,
            last_error=(str(exc) or type(exc).__name__)[:500],
            **outcome,
        )
        if gave_up:
            log.warning("mail %s gave up after %s attempts: %s", pk, attempts, exc)
        return False
    claims.record(
        _pending,
        pk,
        claim,
        attempts=attempts,
        last_error="",
        status=OutboxMail.Status.SENT,
        sent_at=timezone.now(),
    )
    return True
