"""How an auction moves from open to settled through the workers: close -> open the bids (in
parallel chunks) -> clear -> settle -> notify. Each function here runs one step (a service call)
and enqueues the next after its commit; ``sweep`` (beat) finds what is due or stalled.

Only ids travel in messages; every step re-reads the database and acts only if the auction is
in the state that step expects.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import jobs, services
from .models import Auction

log = logging.getLogger(__name__)
State = Auction.State


def _touch(auction_id: int) -> None:
    Auction.objects.filter(pk=auction_id).update(kicked_at=timezone.now())


def advance(auction_id: int) -> str:
    """Enqueue the step that is due for this auction; returns what it did."""
    a = Auction.objects.filter(pk=auction_id).first()
    if a is None:
        return "missing"
    now = timezone.now()
    with transaction.atomic():
        if a.state == State.SCHEDULED and a.opens_at <= now:
            services.auction_open(auction=a.pk)
            a.refresh_from_db()
        _touch(a.pk)
        if a.state == State.OPEN and a.bidding_ends_at <= now:
            jobs.after_commit(jobs.CLOSE, a.pk)
            return "close"
        if a.state == State.OPEN and a.is_english:
            # An English auction's end moved since this timer was set: one at the new end. (A
            # clock auction's rounds arm their own timers: auctions/clock.py open_round.)
            ends_at = a.ends_at
            transaction.on_commit(lambda: jobs.send(jobs.ADVANCE, a.pk, eta=ends_at), robust=True)
            return "rearmed"
        if a.state == State.CLOSING:
            if services.auction_release_overdue(auction=a.pk):
                jobs.after_commit(jobs.NOTIFY, a.pk)
                return "failed"
            if not services.keys_ready(a.pk):
                return "waiting-for-trustees"
            _kick_opening(a.pk)
            return "open-bids"
        if a.state == State.CLEARED:
            jobs.after_commit(jobs.SETTLE, a.pk)
            return "settle"
        if a.state in (State.SETTLED, State.CANCELLED, State.FAILED) and a.notified_at is None:
            jobs.after_commit(jobs.NOTIFY, a.pk)
            return "notify"
    return "nothing"


def _kick_opening(auction_id: int) -> None:
    """Enqueue opening tasks for the bids not opened yet, in chunks; or clearing if none is.
    Nothing while the trustees have not released enough keys (their release advances it)."""
    if not services.keys_ready(auction_id):
        return
    ids = services.unopened_bid_ids(auction_id)
    if not ids:
        jobs.after_commit(jobs.CLEAR, auction_id)
        return
    size = settings.AUCTION_OPEN_CHUNK
    for i in range(0, len(ids), size):
        chunk = ids[i : i + size]
        jobs.after_commit(jobs.OPEN_BIDS, auction_id, chunk[0], chunk[-1])


def close(auction_id: int) -> bool:
    with transaction.atomic():
        closed = services.auction_close(auction=auction_id)
        if closed:
            _touch(auction_id)
            _kick_opening(auction_id)
    return closed


def open_bids(auction_id: int, first: int, last: int) -> int:
    opened = services.auction_bids_open(auction=auction_id, first=first, last=last)
    with transaction.atomic():
        _touch(auction_id)
        # The chunk that finds nothing left to open starts the clearing (two may: the
        # clearing's compare-and-set lets one through).
        if not services.unopened_bid_ids(auction_id):
            jobs.after_commit(jobs.CLEAR, auction_id)
    return opened


def clear(auction_id: int) -> bool:
    try:
        with transaction.atomic():
            cleared = services.auction_clear(auction=auction_id)
            _touch(auction_id)
            if cleared:
                state = Auction.objects.get(pk=auction_id).state
                jobs.after_commit(
                    jobs.SETTLE if state == State.CLEARED else jobs.NOTIFY, auction_id
                )
    except services.NotReady:
        with transaction.atomic():
            _kick_opening(auction_id)
        return False
    return cleared


def settle(auction_id: int) -> bool:
    with transaction.atomic():
        settled = services.auction_settle(auction=auction_id)
        _touch(auction_id)
        if settled:
            jobs.after_commit(jobs.NOTIFY, auction_id)
    return settled


def notify(auction_id: int) -> int:
    return services.auction_notify(auction=auction_id)


def sweep() -> int:
    """Beat: open and close auctions whose time has come; re-kick steps that stalled (their
    message was lost, or the worker running them died and the broker has not redelivered)."""
    now = timezone.now()
    stalled_before = now - dt.timedelta(seconds=settings.AUCTION_STALL_SECONDS)
    due = list(
        Auction.objects.filter(state=State.SCHEDULED, opens_at__lte=now).values_list(
            "pk", flat=True
        )
    ) + list(
        Auction.objects.filter(
            Q(ends_at__isnull=True, closes_at__lte=now) | Q(ends_at__lte=now), state=State.OPEN
        ).values_list("pk", flat=True)
    )
    moving = Auction.objects.filter(
        state__in=[State.CLOSING, State.CLEARED, State.SETTLED, State.CANCELLED, State.FAILED],
    ).exclude(kicked_at__gt=stalled_before)
    stalled = [
        pk
        for pk, state, notified in moving.values_list("pk", "state", "notified_at")
        if state in (State.CLOSING, State.CLEARED) or notified is None
    ]
    for pk in sorted(set(due) | set(stalled)):
        try:
            advance(pk)
        except Exception:  # one auction's trouble must not stop the sweep of the others
            log.exception("auction %s: advancing failed", pk)
    return len(due) + len(stalled)
