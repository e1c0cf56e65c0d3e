from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def ledger_checkpoint_task() -> int | None:
    """Sign a checkpoint over everything committed so far. Idempotent: a second run, or one
    racing another worker, finds the checkpoint already there and does nothing."""
    from .services import ledger_checkpoint_issue

    checkpoint = ledger_checkpoint_issue()
    return checkpoint.size if checkpoint else None
