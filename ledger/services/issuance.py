"""Issuance: a batch of verified credits for one monitoring period of a project, with its buffer
pool share withheld.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from .. import locks, records, validation
from ..actors import Actor
from ..core import origin
from ..core.quantity import MAX_SHARE_BP, buffer_withheld
from ..exceptions import Conflict, ErrorCode, InvalidInput, NotFound, Unprocessable
from ..models import Account, Batch, Project
from .append import _ledger_append
from .checks import _account, _kg, _sha256
from .projects import _batch_origin_clash, _origin_key, _origin_registry


@dataclass(frozen=True, slots=True)
class _Terms:
    """An issuance's input, checked: what ``_terms`` returns and ``batch_issue`` writes."""

    quantity: int
    buffer_share_bp: int
    monitoring_start: dt.date
    monitoring_end: dt.date
    vintage: int
    verification_body: str
    verification_report_sha256: str
    origin_tx_id: str | None
    origin_tx_key: str | None


@transaction.atomic
def batch_issue(
    *,
    actor: Actor,
    project: int,
    monitoring_start: dt.date,
    monitoring_end: dt.date,
    vintage: int | None = None,
    verification_body: str,
    verification_report_sha256: str,
    quantity: int,
    buffer_share_bp: int,
    holder: int | None = None,
    origin_registry: str = "",
    origin_tx_id: str | None = None,
) -> Batch:
    """Issue verified credits for one monitoring period: the buffer share goes to the
    registry's buffer pool, the rest to ``holder`` (default: the developer's first account).

    Check, then do: ``_terms`` checks the input and reads nothing; under the project's lock
    ``_recipients`` finds the accounts and ``_no_double_counting`` refuses a period or an origin
    transaction issued before; then the batch, its holdings and its entry are written."""
    t = _terms(
        quantity=quantity,
        buffer_share_bp=buffer_share_bp,
        monitoring_start=monitoring_start,
        monitoring_end=monitoring_end,
        vintage=vintage,
        verification_body=verification_body,
        verification_report_sha256=verification_report_sha256,
        origin_tx_id=origin_tx_id,
    )
    p = locks.project_lock(pid) if (pid := validation.object_id(project)) is not None else None
    if p is None or not actor.may_act_for(p.registry_id):
        raise NotFound(f"project {project} not found", detail={"project": "not_found"})
    if p.status in (Project.Status.SUSPENDED, Project.Status.CLOSED):
        raise Conflict(f"project {p.code} is {p.status}", code=ErrorCode.PROJECT_NOT_ACTIVE)
    if origin_registry:
        origin_registry = _origin_registry(origin_registry)
    else:  # the project's, which may predate the list of registries
        origin_registry = _origin_registry(p.origin_registry, default=p.origin_registry)
    withheld = buffer_withheld(t.quantity, t.buffer_share_bp)
    holder_account, buffer = _recipients(p, holder, withheld)
    _no_double_counting(p, t, origin_registry)

    number = p.batches.count() + 1
    serial = f"BC-{p.code}-{t.monitoring_start:%Y%m%d}-{t.monitoring_end:%Y%m%d}-{number:03d}"
    try:
        with transaction.atomic():
            b = Batch.objects.create(
                serial=serial,
                project=p,
                monitoring_start=t.monitoring_start,
                monitoring_end=t.monitoring_end,
                vintage=t.vintage,
                verification_body=t.verification_body,
                verification_report_sha256=t.verification_report_sha256,
                buffer_share_bp=t.buffer_share_bp,
                origin_registry=origin_registry,
                origin_tx_id=t.origin_tx_id,
                origin_tx_key=t.origin_tx_key,
                origin_rule=origin.ORIGIN_RULE,
                issued=t.quantity,
                buffer_withheld=withheld,
            )
    except IntegrityError:
        raise Conflict(
            "this issuance conflicts with an existing batch", code=ErrorCode.DUPLICATE_ORIGIN
        ) from None
    pairs = [(holder_account.pk, b.pk)] + ([(buffer.pk, b.pk)] if buffer and withheld else [])
    held = locks.holdings_lock(pairs)
    if t.quantity - withheld:
        held[(holder_account.pk, b.pk)].tradable = t.quantity - withheld
        held[(holder_account.pk, b.pk)].save(update_fields=["tradable"])
    if withheld and buffer is not None:
        held[(buffer.pk, b.pk)].tradable = withheld
        held[(buffer.pk, b.pk)].save(update_fields=["tradable"])
    _ledger_append(
        type="batch.issue",
        actor=actor,
        data={
            "batch": records.batch_record(b),
            "holder": holder_account.pk,
            "buffer_account": buffer.pk if buffer else None,
        },
    )
    return b


def _terms(
    *,
    quantity: int,
    buffer_share_bp: int,
    monitoring_start: dt.date,
    monitoring_end: dt.date,
    vintage: int | None,
    verification_body: str,
    verification_report_sha256: str,
    origin_tx_id: str | None,
) -> _Terms:
    """The check step: the input alone, no database."""
    quantity = _kg(quantity)
    if (
        not isinstance(buffer_share_bp, int)
        or isinstance(buffer_share_bp, bool)
        or not 0 <= buffer_share_bp <= MAX_SHARE_BP
    ):
        raise InvalidInput(
            "buffer share must be between 0 and 100 %",
            code=ErrorCode.INVALID_SHARE,
            detail={"buffer_share": "out_of_range"},
        )
    # Exactly dates: a datetime is a date subclass, but its isoformat is not a date's.
    if type(monitoring_start) is not dt.date or type(monitoring_end) is not dt.date:
        raise InvalidInput(
            "monitoring period start and end must be dates", code=ErrorCode.INVALID_PERIOD
        )
    if monitoring_end < monitoring_start:
        raise InvalidInput(
            "the monitoring period ends before it starts",
            code=ErrorCode.INVALID_PERIOD,
            detail={"monitoring_end": "before_start"},
        )
    vintage = monitoring_end.year if vintage is None else vintage
    if not isinstance(vintage, int) or not 1990 <= vintage <= 2200:
        raise InvalidInput("vintage must be a year", detail={"vintage": "invalid"})
    tx_key: str | None = None
    if origin_tx_id is not None:
        origin_tx_id = validation.text(origin_tx_id, "origin_tx_id", max_length=128)
        tx_key = _origin_key(lambda: origin.tx_key(str(origin_tx_id)), "origin_tx_id")
    return _Terms(
        quantity=quantity,
        buffer_share_bp=buffer_share_bp,
        monitoring_start=monitoring_start,
        monitoring_end=monitoring_end,
        vintage=vintage,
        verification_body=validation.text(verification_body, "verification_body", max_length=200),
        verification_report_sha256=_sha256(
            verification_report_sha256, "verification_report_sha256"
        ),
        origin_tx_id=origin_tx_id,
        origin_tx_key=tx_key,
    )


def _recipients(p: Project, holder: int | None, withheld: int) -> tuple[Account, Account | None]:
    """The holding the issued credits go to (``holder``, or the developer's first) and the
    registry's buffer pool (needed only when something is withheld)."""
    if holder is None:
        holder_account = p.developer.accounts.filter(kind=Account.Kind.HOLDING).first()
        if holder_account is None:
            raise Unprocessable(
                "the developer has no holding account", detail={"holder": "missing"}
            )
    else:
        holder_account = _account(holder, None, "holder")
        if holder_account.kind != Account.Kind.HOLDING:
            raise Unprocessable(
                "credits are issued to a holding account", code=ErrorCode.BUFFER_ACCOUNT
            )
    buffer = Account.objects.filter(organization_id=p.registry_id, kind=Account.Kind.BUFFER).first()
    if withheld and buffer is None:
        raise Unprocessable("the registry has no buffer pool", code=ErrorCode.BUFFER_ACCOUNT)
    return holder_account, buffer


def _no_double_counting(p: Project, t: _Terms, origin_registry: str) -> None:
    """One tonne, one issuance: no two batches of a project cover the same day, and no origin
    registry's transaction is issued twice. The caller holds the project's lock, which
    serializes this check."""
    overlap = Batch.objects.filter(
        project=p, monitoring_start__lte=t.monitoring_end, monitoring_end__gte=t.monitoring_start
    ).first()
    if overlap is not None:
        raise Conflict(
            f"monitoring period overlaps batch {overlap.serial} "
            f"({overlap.monitoring_start} to {overlap.monitoring_end})",
            code=ErrorCode.OVERLAPPING_PERIOD,
            detail={"overlaps": overlap.serial},
        )
    if (
        t.origin_tx_key is not None
        and (existing := _batch_origin_clash(origin_registry, t.origin_tx_key)) is not None
    ):
        raise Conflict(
            f"{origin_registry} transaction {t.origin_tx_id} was already issued (as {existing})",
            code=ErrorCode.DUPLICATE_ORIGIN,
            detail={"origin_tx_id": "duplicate"},
        )
