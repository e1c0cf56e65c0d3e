"""The portal's writes. Registry and auction state only ever changes through their services;
these add the portal's own records around them (sign-up requests, verification runs)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import IntegrityError, transaction
from django.utils import timezone

from auctions import services as auctions
from ledger import services as registry
from ledger.actors import Actor
from ledger.exceptions import Conflict, ErrorCode, PermissionDenied
from ledger.models import Checkpoint, Membership, Organization, Role
from ledger.signing import trusted_verifiers
from ledger.verify import VerificationError, verify_ledger

from .models import SignupRequest, VerificationRun
from .reports import report_sign, report_text

log = logging.getLogger(__name__)
PROGRESS_TTL = 3600


def signup_request(
    *, username: str, password: str, email: str, organization_name: str, handle: str
) -> SignupRequest:
    """A would-be bidder's request: a user who can sign in and see that it awaits approval,
    and nothing on the ledger until an operator approves it. A rejected request's handle is
    free again."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise Conflict(
            "that user name is taken", code=ErrorCode.DUPLICATE, detail={"username": "taken"}
        )
    handle_taken = Conflict(
        "that handle is taken", code=ErrorCode.DUPLICATE, detail={"handle": "taken"}
    )
    if (
        Organization.objects.filter(handle=handle).exists()
        or SignupRequest.objects.filter(handle=handle)
        .exclude(status=SignupRequest.Status.REJECTED)
        .exists()
    ):
        raise handle_taken
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password, email=email)
            return SignupRequest.objects.create(
                user=user, organization_name=organization_name.strip(), handle=handle
            )
    except IntegrityError:  # the same name, asked for at the same moment
        if User.objects.filter(username=username).exists():
            raise Conflict(
                "that user name is taken", code=ErrorCode.DUPLICATE, detail={"username": "taken"}
            ) from None
        raise handle_taken from None


def signup_reject(*, actor: Actor, request: int) -> bool:
    """The operator's no: nothing goes on the ledger; the handle is free again."""
    if not actor.is_operator:
        raise PermissionDenied("only operators decide sign-ups")
    return bool(
        SignupRequest.objects.filter(pk=request, status=SignupRequest.Status.PENDING).update(
            status=SignupRequest.Status.REJECTED, decided_at=timezone.now()
        )
    )


@transaction.atomic
def signup_approve(*, actor: Actor, request: int) -> Organization:
    """The operator's yes: the organization (bidder role), its holding account and its bidder
    approval go on the ledger, and the user acts for it from now on."""
    if not actor.is_operator:
        raise PermissionDenied("only operators approve sign-ups")
    req = SignupRequest.objects.select_for_update().select_related("user").get(pk=request)
    if req.status != SignupRequest.Status.PENDING:
        raise Conflict(f"this request is already {req.status}", code=ErrorCode.DUPLICATE)
    org = registry.organization_register(
        actor=actor, handle=req.handle, name=req.organization_name, roles=[Role.BIDDER]
    )
    registry.account_open(actor=actor, organization=org.pk, name="Main holding")
    auctions.bidder_approve(actor=actor, organization=org.pk)
    Membership.objects.create(user=req.user, organization=org)
    req.status, req.decided_at = SignupRequest.Status.APPROVED, timezone.now()
    req.save(update_fields=["status", "decided_at"])
    return org


def verification_request(*, user: Any) -> tuple[VerificationRun, bool]:
    """A run for this request, and whether it is new. A run already queued or running is the
    answer to everyone who asks meanwhile: it is the same verification of the same ledger, and
    a button pressed twenty times must not queue twenty full replays."""
    if user is None or not user.is_authenticated:
        raise PermissionDenied("sign in to run a verification")
    with transaction.atomic():
        # Serialize the check-then-create (the lock on the user's row is enough for one user;
        # two auditors at the same instant may start two runs, which is harmless).
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        pending = VerificationRun.objects.filter(
            status__in=[VerificationRun.Status.QUEUED, VerificationRun.Status.RUNNING]
        ).first()
        if pending is not None:
            return pending, False
        run = VerificationRun.objects.create(requested_by=user)
    # A run of the same number in an earlier database may have left its progress behind.
    caches["progress"].delete(progress_key(run.pk))
    return run, True


def progress_key(run_id: int) -> str:
    return f"verification:{run_id}"


def verification_progress(run_id: int) -> dict[str, float]:
    """``done`` and ``total`` entries, and ``at``: when the run last reported (epoch seconds)."""
    return caches["progress"].get(progress_key(run_id)) or {"done": 0, "total": 0}


def verification_runs_stalled() -> list[int]:
    """Runs to (re)enqueue: queued ones whose message may have been lost (the broker was down
    at the commit), and running ones that have not reported for VERIFICATION_STALL_SECONDS
    (their worker died, and the broker has not redelivered yet). A stalled run goes back to
    queued; a second delivery of a run already claimed does nothing, so enqueuing twice is
    harmless. Verification only reads, so starting it again loses nothing."""
    stall = settings.VERIFICATION_STALL_SECONDS
    now = timezone.now()
    before = now - dt.timedelta(seconds=stall)
    due = list(
        VerificationRun.objects.filter(
            status=VerificationRun.Status.QUEUED, created_at__lt=before
        ).values_list("pk", flat=True)
    )
    running = VerificationRun.objects.filter(
        status=VerificationRun.Status.RUNNING, started_at__lt=before
    ).values_list("pk", "started_at")
    for pk, started_at in running:
        at = verification_progress(pk).get("at")
        if at is not None and time.time() - at < stall:
            continue  # slow, not stalled
        requeued = VerificationRun.objects.filter(
            pk=pk, status=VerificationRun.Status.RUNNING, started_at=started_at
        ).update(status=VerificationRun.Status.QUEUED, started_at=None)
        if requeued:
            log.warning("verification run %s stalled since %s: starting it again", pk, started_at)
            due.append(pk)
    return sorted(due)


def verification_run(*, run: int) -> VerificationRun | None:
    """Run ``ledger_verify``'s full verification for a queued run, publishing progress as it
    goes and its report at the end. Once: a second delivery finds the run taken."""
    claimed = VerificationRun.objects.filter(pk=run, status=VerificationRun.Status.QUEUED).update(
        status=VerificationRun.Status.RUNNING, started_at=timezone.now()
    )
    if claimed != 1:
        return None
    cache = caches["progress"]
    state = {"done": 0, "total": 0}
    key = progress_key(run)
    cache.delete(key)  # an earlier attempt's, or a run of that number in an earlier database

    def publish() -> None:
        cache.set(key, {**state, "at": time.time()}, PROGRESS_TTL)

    def on_total(total: int) -> None:
        state["total"] = total
        publish()

    def progress(n: int) -> None:
        state["done"] += n
        publish()

    fields: dict[str, Any] = {"finished_at": None}
    report = None
    try:
        report = verify_ledger(verifiers=trusted_verifiers(), progress=progress, on_total=on_total)
    except VerificationError as exc:
        fields.update(status=VerificationRun.Status.FAILED, message=str(exc), failed_seq=exc.seq)
    except Exception as exc:  # the run must end, and say why
        log.exception("verification run %s crashed", run)
        fields.update(status=VerificationRun.Status.FAILED, message=f"crashed: {exc!r}")
    else:
        fields.update(
            status=VerificationRun.Status.OK,
            entries=report.entries,
            checkpoints=report.checkpoints,
            message="; ".join(report.notes),
        )
        state["done"] = state["total"] = report.entries
        publish()
    fields["finished_at"] = timezone.now()
    fields.update(_signed_report(run, fields, report))
    VerificationRun.objects.filter(pk=run).update(**fields)
    return VerificationRun.objects.get(pk=run)


def _signed_report(run: int, fields: dict[str, Any], report: Any) -> dict[str, Any]:
    """The run's signed report (portal/reports.py), and the checkpoint it vouches for."""

    checkpoint = None
    if report is not None and report.latest_checkpoint is not None:
        root = Checkpoint.objects.filter(size=report.latest_checkpoint).values_list(
            "root", flat=True
        )
        checkpoint = (report.latest_checkpoint, bytes(root[0]))
    started = VerificationRun.objects.values_list("started_at", flat=True).get(pk=run)
    assert started is not None  # set when the run was claimed
    text = report_text(
        run=run,
        started=started,
        finished=fields["finished_at"],
        verified=fields["status"] == VerificationRun.Status.OK,
        entries=report.entries if report is not None else 0,
        checkpoint=checkpoint,
        failure=fields.get("message", ""),
        failed_seq=fields.get("failed_seq"),
    )
    try:
        signed = report_sign(text)
    except Exception:  # a run without a report still ends, and says so
        log.exception("verification run %s: the report could not be signed", run)
        signed = ""
    return {
        "checkpoint_size": checkpoint[0] if checkpoint else None,
        "checkpoint_root": checkpoint[1] if checkpoint else None,
        "report": signed,
    }
