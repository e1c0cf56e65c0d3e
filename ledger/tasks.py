from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task, shared_task
from celery.signals import task_prerun
from django.conf import settings
from django.db import InterfaceError, OperationalError

from .mail import mail_send_due
from .operations import (
    idempotency_records_expire,
    worker_heartbeat_file_write,
    worker_heartbeat_record,
)
from .services import ledger_checkpoint_issue
from .signer import SignerRefused
from .webhooks import webhook_endpoint_send, webhooks_dispatch, webhooks_schedule
from .witnesses import checkpoint_witness


@shared_task(
    acks_late=True,
    autoretry_for=(Exception,),
    # A refusal is the signer's verdict on the database, not a passing fault: it is logged and
    # recorded as an alarm, and the next run decides again.
    dont_autoretry_for=(SignerRefused,),
    retry_backoff=True,
    max_retries=5,
)
def ledger_checkpoint_task() -> int | None:
    """Sign a checkpoint over everything committed so far. Idempotent: a second run, or one
    racing another worker, finds the checkpoint already there and does nothing."""
    checkpoint = ledger_checkpoint_issue()
    return checkpoint.size if checkpoint else None


@shared_task(acks_late=True)
def webhooks_dispatch_task() -> int:
    """Turn new ledger entries into webhook deliveries, then give each endpoint with
    deliveries due a sender (idempotent; kicked after writes, and beat runs it too). On the
    webhooks queue, like the senders."""
    created = webhooks_dispatch()
    webhooks_schedule()
    return len(created)


@shared_task(acks_late=True)
def webhook_endpoint_send_task(endpoint_id: int, token: str) -> int:
    """One endpoint's sender, holding its lease ``token``: a bounded batch of its due
    deliveries, in ledger order; then the endpoint is scheduled again (ledger/webhooks.py).
    Delivered twice or late, it finds its lease taken over and sends nothing."""
    return webhook_endpoint_send(endpoint=endpoint_id, token=token)


@shared_task(acks_late=True)
def webhook_deliver_task(delivery_id: int) -> None:
    """The previous release's task, one per delivery: messages of it may still be queued after
    an upgrade. The delivery is pending in the database and the scheduler sends it, so each
    such message is only acknowledged."""


@shared_task(acks_late=True)
def idempotency_records_expire_task() -> int:
    """Forget Idempotency-Key records older than 48 hours (they are kept at least 24)."""
    return idempotency_records_expire()


@shared_task(
    acks_late=True,
    # A database hiccup: the run is retried with backoff. A relay's refusal is not an error
    # here: the mail's row records it and comes due again after its own backoff.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def mail_send_task() -> int:
    """Send the outbox's due mail (ledger/mail.py). Idempotent: each mail is claimed before it
    is sent, so a run delivered twice, or next to another worker's, sends nothing twice.
    Kicked after each commit that writes mail; beat runs it too."""
    return mail_send_due()


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=8)
def witness_submit_task() -> list[str]:
    """Submit the latest checkpoint to every witness of the policy that has not cosigned it
    (idempotent; enqueued after each checkpoint, and beat runs it as the backstop). A witness
    that cannot be reached is tried again at the next run; a refusal is recorded."""
    return [f"{o.witness}: {o.status}" for o in checkpoint_witness()]


@shared_task(bind=True, acks_late=True)
def worker_heartbeat_task(self: Task[Any, Any], queue: str) -> None:
    """Beat sends one to each queue of WORKER_QUEUES (naming the queue, since a message does not
    reliably say which queue it came from); the worker that runs it records that it is alive
    there. Idempotent: an upsert of one row (and, with WORKER_HEARTBEAT_DIR, one file)."""
    worker = self.request.hostname or "unknown"
    # First: the file tells a supervisor that this worker still runs what it is sent, which
    # stays true while the database is down (a restart would not bring that back).
    _liveness_write(worker)
    worker_heartbeat_record(queue=queue, worker=worker)


log = logging.getLogger(__name__)
_LIVENESS_EVERY = 1.0  # seconds: at most one write per process in that time
_liveness_written = 0.0


def _liveness_write(worker: str) -> None:
    """With WORKER_HEARTBEAT_DIR, the liveness file of ``worker`` (bin/demo's watchdog reads
    it). A file that cannot be written is logged, never a reason to fail the task (nor to skip
    the heartbeat's row, which /healthz reads)."""
    global _liveness_written
    if not settings.WORKER_HEARTBEAT_DIR:
        return
    _liveness_written = time.monotonic()
    try:
        worker_heartbeat_file_write(directory=settings.WORKER_HEARTBEAT_DIR, worker=worker)
    except (OSError, ValueError) as exc:
        log.error("worker liveness file not written: %s", exc)


@task_prerun.connect
def _liveness_on_any_task(sender: Task[Any, Any] | None = None, **_: Any) -> None:
    """Any task a worker starts shows it still consumes, not only the heartbeat: a worker whose
    processes are all on long tasks (webhook sends to slow receivers) has its heartbeat queued
    behind them, and must not look hung to the watchdog for it. Throttled per process."""
    if not settings.WORKER_HEARTBEAT_DIR or sender is None:
        return
    if time.monotonic() - _liveness_written < _LIVENESS_EVERY:
        return
    _liveness_write(getattr(sender.request, "hostname", None) or "unknown")
