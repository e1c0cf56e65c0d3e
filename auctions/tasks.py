"""The auction house's worker steps. Each task takes an auction id, runs one service step and
enqueues the next after its commit. Steps are compare-and-set transitions (or idempotent
work), so a task delivered twice, or re-run after a worker died mid-step, changes nothing the
second time. Beat's ``auctions_due_task`` is the backstop for anything lost on the way: it
opens and closes auctions whose time has come and re-kicks a step that has not moved for
``AUCTION_STALL_SECONDS``.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import demo, pipeline

# A database hiccup (a restart, a serialization failure) is retried with backoff; the step's
# compare-and-set makes the retry safe.
_step = shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=20,
)


@_step
def auction_advance_task(auction_id: int) -> str:
    """Do whatever is due for this auction now (open it, close it, kick the next step)."""
    return pipeline.advance(auction_id)


@_step
def auction_close_task(auction_id: int) -> bool:
    return pipeline.close(auction_id)


@_step
def auction_open_bids_task(auction_id: int, first: int, last: int) -> int:
    return pipeline.open_bids(auction_id, first, last)


@_step
def auction_clear_task(auction_id: int) -> bool:
    return pipeline.clear(auction_id)


@_step
def auction_settle_task(auction_id: int) -> bool:
    return pipeline.settle(auction_id)


@_step
def auction_notify_task(auction_id: int) -> int:
    return pipeline.notify(auction_id)


@shared_task(acks_late=True)
def auctions_due_task() -> int:
    return pipeline.sweep()


@shared_task(acks_late=True)
def demo_trustees_release_task() -> int:
    """DEMO ONLY (bin/demo's beat): the demo trustees release their keys for the demo auctions
    that have closed, two of the three, as real trustees would from their own machines. Does
    nothing where the demo trustees' seeds do not exist, as in production (``auctions.demo``)."""
    return demo.demo_trustees_release()
