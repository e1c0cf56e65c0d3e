"""Mail goes through an outbox (ledger/mail.py; issue 15, part 5): written in the transaction of
the change it tells of, sent after the commit by a task that claims each row by compare-and-set
(ledger/claims.py), retried with backoff, never sent twice for one row.

The mail is sent here by ``mail_send_task`` run in this process, to Django's in-memory backend
(``mail.outbox``), as pytest-django sets it up; ``tests/auctions/test_worker_pipeline.py`` sends
an auction's through the real worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection, connections, transaction

from ledger import claims
from ledger.mail import Mail, mail_enqueue, message_id
from ledger.models import OutboxMail
from ledger.tasks import mail_send_task

RESULT = Mail(to=["buyer@example.org"], subject="Auction 1: result", body="You won 3 lots.")


def _write(*mails: Mail) -> None:
    with transaction.atomic():
        mail_enqueue(mails=list(mails))


def _sent_ids() -> list[str]:
    return [m.extra_headers["Message-ID"] for m in mail.outbox]


class RelayRefuses(BaseEmailBackend):
    """An SMTP relay that is down: every send fails as smtplib's errors do (OSErrors)."""

    def send_messages(self, email_messages: list) -> int:
        raise ConnectionRefusedError("relay refused the connection")


class WorkerDied(BaseException):
    """The worker process ending in the middle of a send (a kill, an out-of-memory)."""


class DiesWhileSending(BaseEmailBackend):
    def send_messages(self, email_messages: list) -> int:
        raise WorkerDied


@pytest.mark.django_db
def test_a_mail_is_written_with_its_change_and_sent_once_after_the_commit(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks() as hooks, transaction.atomic():
        mail_enqueue(mails=[RESULT])
        # Written with the change, and nothing sent while its transaction is open.
        assert OutboxMail.objects.get().status == OutboxMail.Status.PENDING
        assert mail.outbox == []
    assert len(hooks) == 1  # after the commit: the task is sent (ledger.jobs.MAIL_SEND)

    assert mail_send_task() == 1
    (sent,) = mail.outbox
    row = OutboxMail.objects.get()
    assert (sent.to, sent.subject, sent.body) == (RESULT.to, RESULT.subject, RESULT.body)
    assert sent.extra_headers["Message-ID"] == message_id(row)
    assert (row.status, row.attempts) == (OutboxMail.Status.SENT, 1)
    assert row.sent_at is not None

    # Run again (a duplicated task, beat's sweep): nothing is sent twice.
    assert mail_send_task() == 0
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_nothing_is_written_or_sent_when_the_transaction_rolls_back(
    django_capture_on_commit_callbacks,
):
    with (
        django_capture_on_commit_callbacks() as hooks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        mail_enqueue(mails=[RESULT])
        raise RuntimeError("the change failed after its mail was written")
    assert hooks == []
    assert not OutboxMail.objects.exists()
    assert mail_send_task() == 0
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_mail_with_nobody_to_send_it_to_is_not_written():
    _write(Mail(to=[], subject="s", body="b"))
    assert not OutboxMail.objects.exists()


@pytest.mark.django_db
def test_a_refused_mail_is_retried_after_a_backoff_and_given_up_at_the_last_attempt(settings):
    settings.MAIL_MAX_ATTEMPTS = 3
    settings.MAIL_RETRY_BASE_SECONDS = 0.2
    _write(RESULT)
    settings.EMAIL_BACKEND = f"{__name__}.RelayRefuses"
    assert mail_send_task() == 0
    row = OutboxMail.objects.get()
    assert (row.status, row.attempts) == (OutboxMail.Status.PENDING, 1)
    assert "refused" in row.last_error
    assert mail_send_task() == 0  # not due again before its backoff
    row.refresh_from_db()
    assert row.attempts == 1

    time.sleep(0.25)  # the backoff after the first failure: 0.2 s
    assert mail_send_task() == 0
    row.refresh_from_db()
    assert (row.status, row.attempts) == (OutboxMail.Status.PENDING, 2)
    time.sleep(0.45)  # twice as long after the second
    assert mail_send_task() == 0
    row.refresh_from_db()
    assert (row.status, row.attempts) == (OutboxMail.Status.FAILED, 3)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert mail_send_task() == 0  # given up: never sent
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_refusal_ends_the_batch_and_the_mail_after_it_keeps_its_attempts(settings):
    _write(RESULT, Mail(to=["other@example.org"], subject="s", body="b"))
    settings.EMAIL_BACKEND = f"{__name__}.RelayRefuses"
    assert mail_send_task() == 0
    # A relay that refuses one mail would refuse the next: the second is not tried.
    assert list(OutboxMail.objects.order_by("pk").values_list("attempts", flat=True)) == [1, 0]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert mail_send_task() == 1  # the second; the first waits for its backoff
    assert [m.to for m in mail.outbox] == [["other@example.org"]]


@pytest.mark.django_db
def test_a_worker_that_dies_between_its_claim_and_the_send_leaves_the_mail_to_the_next(settings):
    settings.MAIL_CLAIM_SECONDS = 0.5
    _write(RESULT)
    settings.EMAIL_BACKEND = f"{__name__}.DiesWhileSending"
    with pytest.raises(WorkerDied):
        mail_send_task()
    row = OutboxMail.objects.get()
    assert (row.status, row.attempts) == (OutboxMail.Status.PENDING, 0)  # claimed, not sent

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert mail_send_task() == 0  # its claim still holds: nobody else sends it meanwhile
    assert mail.outbox == []
    time.sleep(0.55)  # the claim runs out
    assert mail_send_task() == 1
    assert mail_send_task() == 0
    assert _sent_ids() == [message_id(row)]
    row.refresh_from_db()
    assert (row.status, row.attempts) == (OutboxMail.Status.SENT, 1)


@pytest.mark.django_db
def test_of_two_senders_that_read_the_same_due_mail_only_one_claims_it():
    _write(RESULT)
    pending = OutboxMail.objects.filter(status=OutboxMail.Status.PENDING)
    ((pk, seen),) = claims.due(pending, limit=10)
    assert claims.due(pending, limit=10) == [(pk, seen)]  # both senders see it due
    hold = timedelta(seconds=60)
    first = claims.claim(pending, pk, seen=seen, hold=hold)
    assert first is not None
    assert claims.claim(pending, pk, seen=seen, hold=hold) is None  # the second sender
    assert claims.due(pending, limit=10) == []
    # An outcome recorded against a claim that is no longer the row's writes nothing.
    assert not claims.record(pending, pk, seen, status=OutboxMail.Status.SENT)
    assert claims.record(pending, pk, first, status=OutboxMail.Status.SENT)


class SlowLocmem(LocmemBackend):
    """The in-memory backend, taking as long as a relay's round trip: senders overlap."""

    def send_messages(self, messages: list) -> int:
        time.sleep(0.01)
        return super().send_messages(messages)


def _in_thread(work: Callable[[], object], failures: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connections.close_all()

    return threading.Thread(target=run)


@pytest.mark.slow
def test_workers_sending_at_the_same_time_never_send_one_mail_twice(committed_db, settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers: SQLite runs one writer at a time")
    settings.EMAIL_BACKEND = f"{__name__}.SlowLocmem"
    # Written directly, not by mail_enqueue: its after-commit task would reach a worker process
    # of the session, if one runs, which would send some of them beside these four.
    OutboxMail.objects.bulk_create(
        OutboxMail(to=[f"bidder{i}@example.org"], subject=f"mail {i}", body="b", from_email="a@b.c")
        for i in range(60)
    )
    failures: list[BaseException] = []
    workers = [_in_thread(mail_send_task, failures) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []
    ids = _sent_ids()
    assert len(ids) == 60 and len(set(ids)) == 60
    assert set(OutboxMail.objects.values_list("status", "attempts")) == {("sent", 1)}
