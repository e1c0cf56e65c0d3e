"""The public register's lists (projects, batches, retirements): their filters, their rows and
their columns, in one place for the portal's pages, the portal's CSV and JSON exports and the
public API (``/api/v1/public/...``), so that an export holds exactly what the list shows.

Filters are read from a query string by ``parse``: every value is checked (a choice among the
values that exist, a year in range, a bounded text), a bad one is an error with a stable code
and nothing is filtered by it. Rows are plain dicts whose keys are the columns (``COLUMNS``):
stable names, quantities as decimal strings of tonnes with the unit in the name
(``issued_tco2e``), never floats. Only what the public pages show: no account, no holder, no
reason of a retirement or a cancellation (``tests/test_policy.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum

from .core.entry import decode_entry
from .core.quantity import format_hectares, format_share, format_tonnes
from .inputs import CODE, JURISDICTION
from .models import Account, Batch, Ecosystem, Holding, LedgerEntry, Project, Retirement

LISTS = ("projects", "batches", "retirements")
MAX_TEXT = 100  # a search is a few words, not a document
VINTAGES = (1990, 2200)  # as the API's vintage filters
CHUNK = 500  # rows read per query when an export streams a whole list


@dataclass(frozen=True)
class FilterError:
    code: str  # stable: repeated, too_long, invalid, out_of_range, invalid_choice
    message: str  # English, for the API and logs; the portal says each code in words


# ---- which filters each list takes, and the values they may take ---------------------------

FILTERS: dict[str, tuple[str, ...]] = {
    "projects": ("q", "ecosystem", "jurisdiction", "methodology", "vintage", "status"),
    "batches": ("q", "ecosystem", "jurisdiction", "methodology", "vintage", "status", "project"),
    "retirements": ("q", "ecosystem", "jurisdiction", "methodology", "vintage"),
}


def jurisdictions() -> list[str]:
    """The jurisdictions of the registered projects: the filter's choices."""
    return list(
        Project.objects.values_list("jurisdiction", flat=True).distinct().order_by("jurisdiction")
    )


def methodologies() -> list[tuple[str, str]]:
    """(code, name) of the methodologies some project declares: the filter's choices."""
    return list(
        Project.objects.values_list("methodology__code", "methodology__name")
        .distinct()
        .order_by("methodology__code")
    )


def statuses() -> list[str]:
    return list(Project.Status.values)


# A jurisdiction, a methodology or a project is checked for its shape, not for its existence:
# the forms offer only those that exist, and one that no project has (yet) matches nothing,
# as the API's schema can state (a pattern), rather than being refused.
_SHAPES = {
    "jurisdiction": re.compile(JURISDICTION),
    "methodology": re.compile(CODE),
    "project": re.compile(CODE),
}


def _valid(name: str, value: str) -> bool:
    if name == "ecosystem":
        return value in Ecosystem.values
    if name == "status":
        return value in statuses()
    return _SHAPES[name].fullmatch(value) is not None


def parse(kind: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, FilterError]]:
    """The filters of list ``kind`` in ``params`` (a QueryDict, or a dict of strings): the
    valid ones, and an error per invalid one. An empty value is no filter (the forms send
    every field). Parameters that are not filters of this list are not looked at (paging)."""
    values: dict[str, Any] = {}
    errors: dict[str, FilterError] = {}
    for name in FILTERS[kind]:
        given = params.getlist(name) if hasattr(params, "getlist") else [params.get(name)]
        given = [v for v in given if v not in (None, "")]
        if not given:
            continue
        if len(given) > 1:
            errors[name] = FilterError("repeated", f"{name} is given more than once")
            continue
        raw = str(given[0])
        if name == "q":
            text = " ".join(raw.split())
            if len(text) > MAX_TEXT:
                errors[name] = FilterError("too_long", f"q is longer than {MAX_TEXT} characters")
            elif "\x00" in text:
                errors[name] = FilterError("invalid", "q holds a NUL character")
            elif text:
                values[name] = text
            continue
        if name == "vintage":
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
                errors[name] = FilterError("invalid", "vintage must be a year, e.g. 2023")
            elif not VINTAGES[0] <= int(raw) <= VINTAGES[1]:
                errors[name] = FilterError(
                    "out_of_range", f"vintage must be from {VINTAGES[0]} to {VINTAGES[1]}"
                )
            else:
                values[name] = int(raw)
            continue
        if name in _SHAPES and not _valid(name, raw):
            errors[name] = FilterError("invalid", f"{name} {raw[:64]!r} is not well-formed")
        elif not _valid(name, raw):
            errors[name] = FilterError("invalid_choice", f"{raw[:64]!r} is not a valid {name}")
        else:
            values[name] = raw
    return values, errors


# ---- the lists, filtered -------------------------------------------------------------------


def _search(qs: QuerySet[Any], q: str, columns: tuple[str, ...]) -> QuerySet[Any]:
    """Rows where every word of ``q`` (the first 8) is in at least one of ``columns``,
    case-insensitively."""
    for word in q.split()[:8]:
        qs = qs.filter(reduce(or_, (Q(**{f"{c}__icontains": word}) for c in columns)))
    return qs


PROJECT_TEXT = (
    "code",
    "name",
    "name_zh",
    "jurisdiction",
    "methodology__code",
    "methodology__name",
    "methodology__name_zh",
    "developer__name",
    "developer__name_zh",
)
BATCH_TEXT = (
    "serial",
    "project__code",
    "project__name",
    "project__name_zh",
    "project__jurisdiction",
    "project__methodology__code",
    "verification_body",
)
RETIREMENT_TEXT = (
    "certificate",
    "beneficiary",
    "purpose",
    "batch__serial",
    "batch__project__code",
    "batch__project__name",
    "batch__project__name_zh",
)


def projects(filters: Mapping[str, Any]) -> QuerySet[Project]:
    """Projects matching ``filters`` (``parse``'s values), by code, with their batches'
    totals."""
    qs = Project.objects.select_related("methodology", "developer", "registry")
    qs = _search(qs, filters.get("q", ""), PROJECT_TEXT)
    for name in ("ecosystem", "jurisdiction", "status"):
        if name in filters:
            qs = qs.filter(**{name: filters[name]})
    if "methodology" in filters:
        qs = qs.filter(methodology__code=filters["methodology"])
    if "vintage" in filters:
        qs = qs.filter(pk__in=Batch.objects.filter(vintage=filters["vintage"]).values("project"))
    return qs.annotate(
        batch_count=Count("batches"),
        issued=Sum("batches__issued"),
        retired=Sum("batches__retired"),
        cancelled=Sum("batches__cancelled"),
    ).order_by("code")


def batches(filters: Mapping[str, Any], *, before: int | None = None) -> QuerySet[Batch]:
    """Batches matching ``filters``, newest first (by id: ``before`` is the keyset)."""
    qs = Batch.objects.select_related("project", "project__methodology")
    qs = _search(qs, filters.get("q", ""), BATCH_TEXT)
    for name in ("ecosystem", "jurisdiction", "status"):
        if name in filters:
            qs = qs.filter(**{f"project__{name}": filters[name]})
    if "methodology" in filters:
        qs = qs.filter(project__methodology__code=filters["methodology"])
    if "project" in filters:
        qs = qs.filter(project__code=filters["project"])
    if "vintage" in filters:
        qs = qs.filter(vintage=filters["vintage"])
    if before is not None:
        qs = qs.filter(pk__lt=before)
    # issued = tradable + escrowed + retired + cancelled: what is still held, anywhere
    return qs.annotate(outstanding=F("issued") - F("retired") - F("cancelled")).order_by("-pk")


def retirements(filters: Mapping[str, Any], *, before: int | None = None) -> QuerySet[Retirement]:
    """Retirements matching ``filters``, newest first (by ledger sequence: ``before``)."""
    qs = Retirement.objects.select_related("batch", "batch__project", "batch__project__methodology")
    qs = _search(qs, filters.get("q", ""), RETIREMENT_TEXT)
    for name in ("ecosystem", "jurisdiction"):
        if name in filters:
            qs = qs.filter(**{f"batch__project__{name}": filters[name]})
    if "methodology" in filters:
        qs = qs.filter(batch__project__methodology__code=filters["methodology"])
    if "vintage" in filters:
        qs = qs.filter(batch__vintage=filters["vintage"])
    if before is not None:
        qs = qs.filter(entry_seq__lt=before)
    return qs.order_by("-entry_seq")


def entry_times(seqs: list[int]) -> dict[int, tuple[str, str]]:
    """The type and the RFC 3339 time of each of these entries (one query)."""
    bodies = LedgerEntry.objects.filter(seq__in=seqs).values_list("seq", "type", "body")
    return {seq: (kind, decode_entry(bytes(body)).time) for seq, kind, body in bodies}


# ---- rows: what an export's line and an API result hold ------------------------------------

COLUMNS: dict[str, tuple[str, ...]] = {
    "projects": (
        "code",
        "name",
        "ecosystem",
        "storage_pathway",
        "jurisdiction",
        "methodology",
        "methodology_name",
        "developer",
        "registry",
        "validation_body",
        "status",
        "area_ha",
        "batches",
        "issued_tco2e",
        "retired_tco2e",
        "cancelled_tco2e",
    ),
    "batches": (
        "id",
        "serial",
        "project",
        "project_name",
        "ecosystem",
        "jurisdiction",
        "methodology",
        "vintage",
        "monitoring_start",
        "monitoring_end",
        "verification_body",
        "verification_report_sha256",
        "buffer_share_percent",
        "issued_tco2e",
        "retired_tco2e",
        "cancelled_tco2e",
        "outstanding_tco2e",
    ),
    "retirements": (
        "certificate",
        "entry_seq",
        "retired_at",
        "batch",
        "batch_serial",
        "project",
        "project_name",
        "ecosystem",
        "vintage",
        "quantity_tco2e",
        "beneficiary",
        "purpose",
        "jurisdiction",
    ),
}


def project_row(p: Project) -> dict[str, Any]:
    return {
        "code": p.code,
        "name": p.name,
        "ecosystem": p.ecosystem,
        "storage_pathway": p.storage_pathway,
        "jurisdiction": p.jurisdiction,
        "methodology": p.methodology.code,
        "methodology_name": p.methodology.name,
        "developer": p.developer.name,
        "registry": p.registry.name,
        "validation_body": p.validation_body,
        "status": p.status,
        "area_ha": format_hectares(p.area_m2),
        "batches": getattr(p, "batch_count", 0),
        "issued_tco2e": format_tonnes(getattr(p, "issued", None) or 0),
        "retired_tco2e": format_tonnes(getattr(p, "retired", None) or 0),
        "cancelled_tco2e": format_tonnes(getattr(p, "cancelled", None) or 0),
    }


def batch_row(b: Batch) -> dict[str, Any]:
    return {
        "id": b.pk,
        "serial": b.serial,
        "project": b.project.code,
        "project_name": b.project.name,
        "ecosystem": b.project.ecosystem,
        "jurisdiction": b.project.jurisdiction,
        "methodology": b.project.methodology.code,
        "vintage": b.vintage,
        "monitoring_start": b.monitoring_start.isoformat(),
        "monitoring_end": b.monitoring_end.isoformat(),
        "verification_body": b.verification_body,
        "verification_report_sha256": b.verification_report_sha256,
        "buffer_share_percent": format_share(b.buffer_share_bp),
        "issued_tco2e": format_tonnes(b.issued),
        "retired_tco2e": format_tonnes(b.retired),
        "cancelled_tco2e": format_tonnes(b.cancelled),
        # issued = tradable + escrowed + retired + cancelled (the supply invariant)
        "outstanding_tco2e": format_tonnes(b.issued - b.retired - b.cancelled),
    }


def retirement_row(r: Retirement, times: Mapping[int, tuple[str, str]]) -> dict[str, Any]:
    return {
        "certificate": r.certificate,
        "entry_seq": r.entry_seq,
        "retired_at": times.get(r.entry_seq, ("", ""))[1],
        "batch": r.batch_id,
        "batch_serial": r.batch.serial,
        "project": r.batch.project.code,
        "project_name": r.batch.project.name,
        "ecosystem": r.batch.project.ecosystem,
        "vintage": r.batch.vintage,
        "quantity_tco2e": format_tonnes(r.quantity),
        "beneficiary": r.beneficiary,
        "purpose": r.purpose,
        "jurisdiction": r.jurisdiction,
    }


def rows_of(kind: str, items: list[Any]) -> list[dict[str, Any]]:
    """``items`` (a page of ``kind``'s list) as rows."""
    if kind == "projects":
        return [project_row(p) for p in items]
    if kind == "batches":
        return [batch_row(b) for b in items]
    times = entry_times([r.entry_seq for r in items])
    return [retirement_row(r, times) for r in items]


def listing(kind: str, filters: Mapping[str, Any], *, before: int | None = None) -> QuerySet[Any]:
    if kind == "projects":
        return projects(filters)
    if kind == "batches":
        return batches(filters, before=before)
    return retirements(filters, before=before)


def all_rows(kind: str, filters: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every row of the filtered list, in the list's order, read ``CHUNK`` at a time by
    keyset (memory stays flat however long the list is): what an export streams."""
    if kind == "projects":
        # Ordered by code, whose keyset is the code itself.
        last = ""
        while True:
            chunk = list(projects(filters).filter(code__gt=last)[:CHUNK])
            yield from rows_of(kind, chunk)
            if len(chunk) < CHUNK:
                return
            last = chunk[-1].code
    before: int | None = None
    while True:
        rows: list[Any] = list(listing(kind, filters, before=before)[:CHUNK])
        yield from rows_of(kind, rows)
        if len(rows) < CHUNK:
            return
        before = rows[-1].pk if kind == "batches" else rows[-1].entry_seq


# ---- one batch: its supply by bucket and its public history --------------------------------


@dataclass(frozen=True)
class Supply:
    """A batch's credits by where they are now, in kgCO2e. The buckets sum to ``issued``."""

    issued: int
    tradable: int  # in holding accounts, free to move
    escrowed: int  # set aside (an auction's or a listing's lots, a pending delivery)
    buffer: int  # in the registry's buffer pool, against reversals
    retired: int
    cancelled: int

    @property
    def total(self) -> int:
        return self.tradable + self.escrowed + self.buffer + self.retired + self.cancelled

    @property
    def holds(self) -> bool:
        return self.total == self.issued


def batch_get(key: str) -> Batch | None:
    """A batch by its serial, or by its id when ``key`` is all digits and no serial is."""
    qs = Batch.objects.select_related(
        "project", "project__methodology", "project__developer", "project__registry"
    )
    found = qs.filter(serial=key).first()
    if found is None and key.isascii() and key.isdigit() and len(key) <= 18:
        found = qs.filter(pk=int(key)).first()
    return found


def batch_by_pk(pk: int) -> Batch | None:
    return Batch.objects.select_related("project", "project__methodology").filter(pk=pk).first()


def batch_supply(b: Batch) -> Supply:
    sums = {
        row["account__kind"]: row
        for row in Holding.objects.filter(batch=b)
        .values("account__kind")
        .annotate(tradable=Sum("tradable"), escrowed=Sum("escrowed"))
        .order_by()
    }
    holding = sums.get(Account.Kind.HOLDING, {})
    pool = sums.get(Account.Kind.BUFFER, {})
    return Supply(
        issued=b.issued,
        tradable=holding.get("tradable") or 0,
        escrowed=(holding.get("escrowed") or 0) + (pool.get("escrowed") or 0),
        buffer=pool.get("tradable") or 0,
        retired=b.retired,
        cancelled=b.cancelled,
    )


@dataclass(frozen=True)
class HistoryRow:
    seq: int
    type: str  # the entry's type: batch.issue, credit.retire, credit.cancel, reversal.record
    time: str
    quantity: int  # kgCO2e
    certificate: str  # a retirement's


HISTORY_PAGE = 50


def issue_seq(b: Batch) -> int | None:
    """The ``batch.issue`` entry of ``b``. Batches are issued one entry each, in id order under
    the ledger's head lock, so it is the n-th such entry, n the batches before it: two reads,
    checked against the entry's own batch id."""
    n = Batch.objects.filter(pk__lt=b.pk).count()
    row = (
        LedgerEntry.objects.filter(type="batch.issue")
        .order_by("seq")
        .values_list("seq", "body")[n : n + 1]
        .first()
    )
    if row is not None and decode_entry(bytes(row[1])).data["batch"]["id"] == b.pk:
        return int(row[0])
    for seq, body in LedgerEntry.objects.filter(type="batch.issue").values_list("seq", "body"):
        if decode_entry(bytes(body)).data["batch"]["id"] == b.pk:  # a gap in the ids
            return int(seq)
    return None


def batch_history(b: Batch, *, before: int | None = None) -> tuple[list[HistoryRow], int | None]:
    """The entries that changed the batch's public totals, newest first (its issuance, its
    retirements, its cancellations), ``HISTORY_PAGE`` at a time, and the keyset of the next
    page (None at the end). Transfers and escrow moves name accounts, which are not public:
    the ledger explorer lists those for auditors."""
    events: list[tuple[int, str, int, str]] = []
    limit = HISTORY_PAGE + 1
    rets = b.retirements.order_by("-entry_seq")
    cancels = b.cancellations.order_by("-entry_seq")
    if before is not None:
        rets, cancels = rets.filter(entry_seq__lt=before), cancels.filter(entry_seq__lt=before)
    for seq, qty, cert in rets.values_list("entry_seq", "quantity", "certificate")[:limit]:
        events.append((seq, "credit.retire", qty, cert))
    # A reversal's cancellations share its entry: one row per entry (their sum), so that the
    # keyset never splits an entry between two pages.
    for row in cancels.values("entry_seq").annotate(quantity=Sum("quantity"))[:limit]:
        events.append((row["entry_seq"], "credit.cancel", row["quantity"], ""))
    issued = issue_seq(b)
    if issued is not None and (before is None or issued < before):
        events.append((issued, "batch.issue", b.issued, ""))
    events.sort(key=lambda e: e[0], reverse=True)
    page, more = events[:HISTORY_PAGE], len(events) > HISTORY_PAGE
    meta = entry_times([e[0] for e in page])
    rows = [
        HistoryRow(seq, meta.get(seq, (kind, ""))[0], meta.get(seq, ("", ""))[1], qty, cert)
        for seq, kind, qty, cert in page
    ]
    return rows, (page[-1][0] if more else None)
