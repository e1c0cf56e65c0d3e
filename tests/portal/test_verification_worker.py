"""Verification runs that lost their way: a run whose message was lost, or whose worker died
after claiming it, is started again by the beat sweep and reaches its report; a run that is
merely slow, or still young, is left alone."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.core.cache import caches
from django.utils import timezone

from portal import services, tasks
from portal.models import VerificationRun
from tests.auctions.conftest import Market

Status = VerificationRun.Status
LONG_AGO = dt.timedelta(hours=1)


def status(pk: int) -> str:
    return VerificationRun.objects.get(pk=pk).status


def reporting(pk: int, at: float) -> None:
    """What a run's worker publishes as it goes."""
    caches["progress"].set(services.progress_key(pk), {"done": 5, "total": 9, "at": at})


def test_the_sweep_picks_lost_and_orphaned_runs_and_leaves_slow_and_young_ones(db, settings):
    settings.VERIFICATION_STALL_SECONDS = 60
    caches["progress"].clear()
    long_ago = timezone.now() - LONG_AGO
    lost = VerificationRun.objects.create()
    VerificationRun.objects.filter(pk=lost.pk).update(created_at=long_ago)
    young = VerificationRun.objects.create()  # its own task may still be on its way
    orphaned = VerificationRun.objects.create(status=Status.RUNNING, started_at=long_ago)
    quiet = VerificationRun.objects.create(status=Status.RUNNING, started_at=long_ago)
    reporting(quiet.pk, time.time() - 120)
    slow = VerificationRun.objects.create(status=Status.RUNNING, started_at=long_ago)
    reporting(slow.pk, time.time())
    starting = VerificationRun.objects.create(status=Status.RUNNING, started_at=timezone.now())
    done = VerificationRun.objects.create(status=Status.OK, started_at=long_ago)

    assert services.verification_runs_stalled() == sorted([lost.pk, orphaned.pk, quiet.pk])
    assert status(orphaned.pk) == status(quiet.pk) == Status.QUEUED  # to be claimed again
    assert status(young.pk) == Status.QUEUED
    assert status(slow.pk) == status(starting.pk) == Status.RUNNING
    assert status(done.pk) == Status.OK


@pytest.mark.worker
def test_lost_and_orphaned_runs_reach_their_report_through_the_worker(worker):
    caches["progress"].clear()
    m = Market()
    m.bid(m.auction(closes_in=60), m.bidders[0], [(5000, 3)])
    long_ago = timezone.now() - LONG_AGO
    lost = VerificationRun.objects.create()  # its task was never delivered
    VerificationRun.objects.filter(pk=lost.pk).update(created_at=long_ago)
    orphaned = VerificationRun.objects.create(status=Status.RUNNING, started_at=long_ago)
    tasks.verification_runs_due_task.delay()  # what beat does every ten seconds
    deadline = time.monotonic() + 60
    while {status(lost.pk), status(orphaned.pk)} != {Status.OK}:
        assert time.monotonic() < deadline, "the sweep did not start the runs again"
        time.sleep(0.1)
    run = VerificationRun.objects.get(pk=orphaned.pk)
    assert run.entries > 0 and run.finished_at is not None and run.failed_seq is None
    assert services.verification_progress(orphaned.pk)["done"] == run.entries
