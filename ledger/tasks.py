from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from .signer import SignerRefused


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
    from .services import ledger_checkpoint_issue

    checkpoint = ledger_checkpoint_issue()
    return checkpoint.size if checkpoint else None


@shared_task(acks_late=True)
def webhooks_dispatch_task() -> int:
    """Turn new ledger entries into webhook deliveries (idempotent; beat runs it too)."""
    from .webhooks import webhooks_dispatch

    return len(webhooks_dispatch())


@shared_task(bind=True, acks_late=True, max_retries=None)
def webhook_deliver_task(self: Task[Any, Any], delivery_id: int) -> bool:
    """POST one delivery; on failure retry with exponential backoff (capped at an hour)."""
    from .webhooks import DeliveryFailed, webhook_deliver

    try:
        return webhook_deliver(delivery_id)
    except DeliveryFailed as exc:
        raise self.retry(exc=exc, countdown=exc.countdown) from None


@shared_task(acks_late=True)
def webhook_deliveries_resend_task() -> int:
    """Enqueue again pending deliveries whose task was lost (beat; idempotent)."""
    from .webhooks import webhook_deliveries_resend

    return len(webhook_deliveries_resend())


@shared_task(acks_late=True)
def idempotency_records_expire_task() -> int:
    """Forget Idempotency-Key records older than 48 hours (they are kept at least 24)."""
    from .apis.idempotency import idempotency_records_expire

    return idempotency_records_expire()


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=8)
def witness_submit_task() -> list[str]:
    """Submit the latest checkpoint to every witness of the policy that has not cosigned it
    (idempotent; enqueued after each checkpoint, and beat runs it as the backstop). A witness
    that cannot be reached is tried again at the next run; a refusal is recorded."""
    from .witnesses import checkpoint_witness

    return [f"{o.witness}: {o.status}" for o in checkpoint_witness()]


@shared_task(bind=True, acks_late=True)
def worker_heartbeat_task(self: Task[Any, Any], queue: str) -> None:
    """Beat sends one to each queue of WORKER_QUEUES (naming the queue, since a message does not
    reliably say which queue it came from); the worker that runs it records that it is alive
    there. Idempotent: an upsert of one row."""
    from .operations import worker_heartbeat_record

    worker_heartbeat_record(queue=queue, worker=self.request.hostname or "unknown")
