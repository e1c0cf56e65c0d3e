from __future__ import annotations

from celery import shared_task

from .services import verification_run, verification_runs_stalled


@shared_task(acks_late=True)
def verification_run_task(run_id: int) -> str | None:
    """An auditor's "verify now" (idempotent: a run is claimed once)."""
    run = verification_run(run=run_id)
    return run.status if run else None


@shared_task(acks_late=True)
def verification_runs_due_task() -> int:
    """Beat: enqueue runs whose message was lost or whose worker died."""
    due = verification_runs_stalled()
    for pk in due:
        verification_run_task.delay(pk)
    return len(due)
