"""The registry's operational state: what ``/healthz``, ``/metrics`` and the operators' and
auditors' banners report, and its housekeeping writes (a worker's heartbeat, an operator
acknowledging a signer alarm, forgetting old Idempotency-Key records). Nothing here is ledger
state. See ``docs/operations.md``.

What is checked, and why each threshold is a lag rather than a snapshot:

* database: one ``SELECT 1``; when it fails nothing else is asked.
* signer: no ``SignerAlarm`` waiting for an operator (``ledger/signer.py`` writes one at every
  refusal, so acknowledging one silences it only until the signer refuses again).
* witnesses, when a policy is configured: no refusal by a witness of the policy that the same
  witness has not since overtaken by cosigning a checkpoint at least as large; and the witness
  lag, the time the oldest checkpoint after the newest one meeting the quorum has waited,
  within ``HEALTH_WITNESS_LAG_SECONDS``. Submission runs in Celery after each checkpoint, and
  under steady writes it cosigns only some of them, so "the latest checkpoint meets the quorum"
  is false for a moment after every checkpoint; it is reported (and exported) as it is, and
  the lag decides.
* checkpoint: the time the oldest entry no checkpoint covers has waited, within
  ``HEALTH_CHECKPOINT_LAG_SECONDS`` (an idle ledger whose last checkpoint is old is healthy).
* workers: on each queue of ``WORKER_QUEUES``, a heartbeat from some worker within
  ``HEALTH_WORKER_SILENCE_SECONDS``. Beat sends them, so a dead beat, a dead broker, no worker
  on the queue or a queue too backed up to reach the heartbeat all show the same way.

What ``/healthz`` says is public: counts, sizes, seconds, queue names. Alarm messages, witness
answers and worker host names are for the admin and ``/metrics``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import Error as DatabaseError
from django.db import connection
from django.db.models import Count, Max, Q
from django.utils import timezone

from .core.entry import EntryError, decode_entry
from .models import (
    Checkpoint,
    CheckpointCosignature,
    IdempotencyRecord,
    LedgerEntry,
    LedgerHead,
    SignerAlarm,
    WitnessRefusal,
    WorkerHeartbeat,
)
from .witnesses import cosigned_note, policy

log = logging.getLogger(__name__)

# How many of the newest cosigned checkpoints are looked at to find one meeting the quorum
# (each costs a query and a signature check per witness); none among them counts as none.
WITNESS_LOOKBACK = 20
# A worker's row not refreshed for this long is a worker that is gone: forgotten.
HEARTBEAT_FORGET_AFTER = dt.timedelta(days=7)
# An Idempotency-Key record (ledger/apis/idempotency.py) older than this is forgotten (beat runs
# the expiry hourly).
IDEMPOTENCY_KEEP_FOR = dt.timedelta(hours=48)


# ---- writes --------------------------------------------------------------------------------


def worker_heartbeat_record(*, queue: str, worker: str) -> None:
    """A worker ran the heartbeat sent to ``queue``. One upsert: two runs at once are harmless."""
    now = timezone.now()
    WorkerHeartbeat.objects.bulk_create(
        [WorkerHeartbeat(queue=queue, worker=worker, beat_at=now)],
        update_conflicts=True,
        unique_fields=["queue", "worker"],
        update_fields=["beat_at"],
    )
    WorkerHeartbeat.objects.filter(beat_at__lt=now - HEARTBEAT_FORGET_AFTER).delete()


def worker_heartbeat_file_write(*, directory: str, worker: str) -> Path:
    """The worker ``worker`` ran a heartbeat: the time, in whole seconds since the epoch, in the
    file named after it (its node name before the "@") in ``directory`` (created if missing),
    for a supervisor that does not start Django (bin/demo's watchdog). Replaced, not rewritten,
    so that a reader never sees a half-written file."""
    name = worker.partition("@")[0]
    if not name or name in {".", ".."} or "/" in name:
        raise ValueError(f"no heartbeat file for the worker name {worker!r}")
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{int(time.time())}\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def signer_alarms_acknowledge(*, alarms: Iterable[int], by: str) -> int:
    """An operator has seen these alarms. A compare-and-set on ``acknowledged_at``, so a second
    click acknowledges nothing more and keeps the first time. Returns how many were new."""
    ids = list(alarms)
    done = SignerAlarm.objects.filter(pk__in=ids, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now()
    )
    if done:
        log.warning("%d checkpoint signer alarm(s) acknowledged by %s", done, by)
    return done


def idempotency_records_expire() -> int:
    """Forget the Idempotency-Key records older than ``IDEMPOTENCY_KEEP_FOR``; returns how many.
    A request retried after that would apply again."""
    cutoff = timezone.now() - IDEMPOTENCY_KEEP_FOR
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# ---- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignerStatus:
    unacknowledged: int
    total: int
    latest_unacknowledged_at: dt.datetime | None


@dataclass(frozen=True)
class CheckpointStatus:
    ledger_size: int
    checkpoint_size: int  # the latest checkpoint's (0: none yet)
    checkpoint_at: dt.datetime | None
    lag_entries: int
    lag_seconds: float  # how long the oldest entry no checkpoint covers has waited


@dataclass(frozen=True)
class WitnessStatus:
    configured: bool
    error: str = ""  # the policy could not be read
    quorum: str = ""
    witnesses: tuple[str, ...] = ()
    latest_size: int | None = None
    latest_cosigners: tuple[str, ...] = ()
    latest_quorum_met: bool | None = None
    lag_seconds: float = 0.0
    # witness -> (outstanding refusals, the largest size refused)
    refusals: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueHeartbeat:
    queue: str
    seconds_since: float | None  # None: never heard from on this queue
    workers: dict[str, float]  # worker name -> seconds since its last heartbeat here


def signer_status() -> SignerStatus:
    agg = SignerAlarm.objects.aggregate(
        total=Count("pk"),
        open=Count("pk", filter=Q(acknowledged_at__isnull=True)),
        latest=Max("created_at", filter=Q(acknowledged_at__isnull=True)),
    )
    return SignerStatus(int(agg["open"]), int(agg["total"]), agg["latest"])


def checkpoint_status(now: dt.datetime) -> CheckpointStatus:
    head = LedgerHead.objects.filter(pk=1).values_list("size", flat=True).first() or 0
    latest = Checkpoint.objects.order_by("-size").values_list("size", "created_at").first()
    size, at = latest if latest else (0, None)
    lag_entries = max(head - size, 0)
    lag_seconds = 0.0
    if lag_entries:
        body = LedgerEntry.objects.filter(seq=size).values_list("body", flat=True).first()
        waiting_since = _entry_time(bytes(body)) if body is not None else at
        if waiting_since is not None:
            lag_seconds = max((now - waiting_since).total_seconds(), 0.0)
    return CheckpointStatus(head, size, at, lag_entries, lag_seconds)


def _entry_time(body: bytes) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(decode_entry(body).time)
    except (EntryError, ValueError):
        return None


def standing_refusals(witnesses: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Refusals by these witnesses still standing: witness -> (how many, the largest size).

    A refusal stands until that witness cosigns a checkpoint at least as large. Another
    witness's cosignature does not answer it: one witness seeing a fork the others do not is
    exactly a split view."""
    names = list(witnesses)
    if not names:
        return {}
    cosigned = dict(
        CheckpointCosignature.objects.filter(witness__in=names)
        .values("witness")
        .annotate(m=Max("checkpoint__size"))
        .values_list("witness", "m")
    )
    standing = Q()
    for name in names:
        standing |= Q(witness=name, size__gt=cosigned.get(name, -1))
    return {
        name: (int(count), int(largest))
        for name, count, largest in WitnessRefusal.objects.filter(standing)
        .values("witness")
        .annotate(n=Count("pk"), m=Max("size"))
        .values_list("witness", "n", "m")
    }


def witness_status(now: dt.datetime) -> WitnessStatus:
    try:
        p = policy()
    except ImproperlyConfigured:
        return WitnessStatus(configured=True, error="the witness policy file cannot be read")
    if p is None:
        return WitnessStatus(configured=False)
    names = tuple(sorted(p.witnesses))
    refusals = standing_refusals(names)

    latest = Checkpoint.objects.order_by("-size").first()
    if latest is None:
        return WitnessStatus(
            configured=True, quorum=p.describe_quorum(), witnesses=names, refusals=refusals
        )
    seen = p.witnessed(cosigned_note(latest))
    lag = 0.0
    if not seen.quorum_met:
        met_size = -1
        candidates = (
            Checkpoint.objects.filter(cosignatures__isnull=False, size__lt=latest.size)
            .distinct()
            .order_by("-size")[:WITNESS_LOOKBACK]
        )
        for candidate in candidates:
            if p.witnessed(cosigned_note(candidate)).quorum_met:
                met_size = candidate.size
                break
        waiting = (
            Checkpoint.objects.filter(size__gt=met_size)
            .order_by("size")
            .values_list("created_at", flat=True)
            .first()
        )
        if waiting is not None:
            lag = max((now - waiting).total_seconds(), 0.0)
    return WitnessStatus(
        configured=True,
        quorum=p.describe_quorum(),
        witnesses=names,
        latest_size=latest.size,
        latest_cosigners=tuple(seen.cosigners),
        latest_quorum_met=seen.quorum_met,
        lag_seconds=lag,
        refusals=refusals,
    )


def worker_queues() -> list[str]:
    return list(settings.WORKER_QUEUES)


def queue_heartbeats(now: dt.datetime) -> list[QueueHeartbeat]:
    """For each queue workers must serve, how long since a worker was last heard from on it."""
    queues = worker_queues()
    rows = WorkerHeartbeat.objects.filter(queue__in=queues).values_list(
        "queue", "worker", "beat_at"
    )
    by_queue: dict[str, dict[str, float]] = {q: {} for q in queues}
    for queue, worker, beat_at in rows:
        by_queue[queue][worker] = max((now - beat_at).total_seconds(), 0.0)
    return [
        QueueHeartbeat(q, min(workers.values()) if workers else None, workers)
        for q, workers in by_queue.items()
    ]


def _silent(beat: QueueHeartbeat) -> bool:
    return beat.seconds_since is None or beat.seconds_since > settings.HEALTH_WORKER_SILENCE_SECONDS


# ---- the health check ----------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.detail}


@dataclass(frozen=True)
class Health:
    checks: dict[str, Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "fail",
            "checks": {name: c.as_json() for name, c in self.checks.items()},
        }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def database_reachable() -> bool:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        log.exception("health check: the database is not reachable")
        return False
    return True


def _signer_check() -> Check:
    s = signer_status()
    return Check(
        s.unacknowledged == 0,
        {
            "unacknowledged_alarms": s.unacknowledged,
            "latest_alarm_at": _iso(s.latest_unacknowledged_at),
        },
    )


def _witness_check(now: dt.datetime) -> Check:
    w = witness_status(now)
    if not w.configured:
        return Check(True, {"policy": False})
    if w.error:
        return Check(False, {"policy": True, "error": w.error})
    limit = settings.HEALTH_WITNESS_LAG_SECONDS
    return Check(
        not w.refusals and w.lag_seconds <= limit,
        {
            "policy": True,
            "quorum": w.quorum,
            "latest_checkpoint_size": w.latest_size,
            "latest_cosigners": list(w.latest_cosigners),
            "latest_quorum_met": w.latest_quorum_met,
            "lag_seconds": round(w.lag_seconds, 3),
            "lag_threshold_seconds": limit,
            "refused_by": sorted(w.refusals),
        },
    )


def _checkpoint_check(now: dt.datetime) -> Check:
    c = checkpoint_status(now)
    limit = settings.HEALTH_CHECKPOINT_LAG_SECONDS
    return Check(
        c.lag_seconds <= limit,
        {
            "ledger_size": c.ledger_size,
            "checkpoint_size": c.checkpoint_size,
            "lag_entries": c.lag_entries,
            "lag_seconds": round(c.lag_seconds, 3),
            "lag_threshold_seconds": limit,
        },
    )


def _worker_check(now: dt.datetime) -> Check:
    beats = queue_heartbeats(now)
    return Check(
        not any(_silent(b) for b in beats),
        {
            "queues": {
                b.queue: {
                    "seconds_since_heartbeat": None
                    if b.seconds_since is None
                    else round(b.seconds_since, 3)
                }
                for b in beats
            },
            "silence_threshold_seconds": settings.HEALTH_WORKER_SILENCE_SECONDS,
        },
    )


def health_check(now: dt.datetime | None = None) -> Health:
    now = now or timezone.now()
    if not database_reachable():
        skipped = Check(False, {"skipped": "the database is not reachable"})
        return Health(
            {
                "database": Check(False, {}),
                "signer": skipped,
                "witnesses": skipped,
                "checkpoint": skipped,
                "workers": skipped,
            }
        )
    checks = {"database": Check(True, {})}
    for name, run in (
        ("signer", _signer_check),
        ("witnesses", lambda: _witness_check(now)),
        ("checkpoint", lambda: _checkpoint_check(now)),
        ("workers", lambda: _worker_check(now)),
    ):
        try:
            checks[name] = run()
        except Exception:
            # A check that cannot be made is a failed check (503), never a 500 or a pass.
            log.exception("health check %s could not be made", name)
            checks[name] = Check(False, {"error": "the check could not be made"})
    return Health(checks)


# ---- the banner ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    kind: str  # "signer", "witness", "worker"
    params: dict[str, Any]


def alerts(now: dt.datetime | None = None) -> list[Alert]:
    """What operators and auditors are shown at the top of every page: the signer refused, a
    witness refused, a queue no worker has been heard from on."""
    now = now or timezone.now()
    out: list[Alert] = []
    s = signer_status()
    if s.unacknowledged:
        out.append(
            Alert("signer", {"count": s.unacknowledged, "latest": s.latest_unacknowledged_at})
        )
    try:
        p = policy()
    except ImproperlyConfigured:
        p = None  # /healthz says so; the banner is for what the signer and witnesses said
    refusals = standing_refusals(p.witnesses) if p is not None else {}
    for name, (_, size) in sorted(refusals.items()):
        out.append(Alert("witness", {"witness": name, "size": size}))
    for beat in queue_heartbeats(now):
        if _silent(beat):
            seconds = None if beat.seconds_since is None else int(beat.seconds_since)
            out.append(Alert("worker", {"queue": beat.queue, "seconds": seconds}))
    return out
