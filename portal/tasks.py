from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def verification_run_task(run_id: int) -> str | None:
    """An auditor's "verify now" (idempotent: a run is claimed once)."""
    from .services import verification_run

    run = verification_run(run=run_id)
    return run.status if run else None
