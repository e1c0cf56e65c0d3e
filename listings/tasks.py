"""The listings' timed work. The expiry task takes a listing id and runs one compare-and-set
service, so a task delivered twice, or beside beat's sweep, changes nothing the second time."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services

_step = shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=20,
)


@_step
def listing_expire_task(listing_id: int) -> bool:
    """At the closing time: release the unsold lots (nothing if not due or already ended)."""
    return services.listing_expire(listing=listing_id)


@shared_task(acks_late=True)
def listings_due_task() -> int:
    """Beat's backstop: expire every listing past its closing time (a lost or early ETA
    task, a worker that was down)."""
    return sum(services.listing_expire(listing=pk) for pk in services.listings_due())
