"""Reads behind the registry's maps and charts: where the projects are, and the supply and
retirements over time. Read-only, from the ledger-derived tables and the ledger's own entries,
in a bounded number of queries whatever the number of rows.

Over time: an issuance's time is its ``batch.issue`` entry's (one query reads those entries,
one per batch). A retirement's is its entry's, and a registry holds many more retirements than
batches, so their times are not read one by one: entries are appended in time order (under the
head lock), so the retirements of a month are those whose entry falls between the first entry
of that month and the first of the next. Those boundaries are found by binary search on entry
times, kept in the cache, and checked against the ledger on every read (one query for all of
them), so a stale or foreign cache can never shift a retirement into another month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from ledger.core.entry import decode_entry
from ledger.models import LedgerEntry, Project, Retirement
from portal import selectors

# Beyond this many months the timeline counts years: 36 bars are still readable at 390 px.
MONTHS_SHOWN = 36


def project_locations() -> QuerySet[Project]:
    """Every project, by code, for the overview map and its list (one query)."""
    return Project.objects.order_by("code")


@dataclass(frozen=True)
class Period:
    """A month (``"2026-05"``) or a year (``"2026"``) and what happened in it, in kgCO2e."""

    label: str
    issued: int
    retired: int


def _month_starts(first: str, now: datetime) -> list[str]:
    """``"YYYY-MM"`` of every month from ``first`` (a ``"YYYY-MM"``) to ``now``'s, in order."""
    year, month = int(first[:4]), int(first[5:7])
    last = (now.year, now.month)
    months = []
    while (year, month) <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _start(label: str) -> str:
    """The RFC 3339 time (as entries write it) at which a month or a year begins."""
    month = label[5:7] if len(label) > 4 else "01"
    return f"{label[:4]}-{month}-01T00:00:00.000000Z"


def _cache_key(start: str) -> str:
    return f"portal:figures:first-seq-at:{start}"


def first_seqs(starts: list[str]) -> dict[str, int]:
    """For each time in ``starts``: the first sequence whose entry's time is at or after it.

    Cached boundaries are checked in one query: boundary ``b`` for time ``t`` is right exactly
    when entry ``b - 1`` exists and is before ``t`` (or ``b`` is 0) and entry ``b`` is at or
    after ``t`` or does not exist yet (and then ``b`` is the ledger's size). Entries only ever
    go on at the end with later times, so a right boundary stays right; a wrong one (a cache
    shared with another database, a restored ledger) is searched again."""
    cached: dict[str, int] = {}
    for start in starts:
        seq = cache.get(_cache_key(start))
        if isinstance(seq, int) and seq >= 0:
            cached[start] = seq
    wanted = {s for seq in cached.values() for s in (seq - 1, seq) if s >= 0}
    times = {
        seq: decode_entry(bytes(body)).time
        for seq, body in LedgerEntry.objects.filter(seq__in=wanted).values_list("seq", "body")
    }
    size: int | None = None
    found: dict[str, int] = {}
    for start in starts:
        seq = cached.get(start)
        if seq is not None:
            before_ok = seq == 0 or (seq - 1 in times and times[seq - 1] < start)
            at = times.get(seq)
            if before_ok and at is not None and at >= start:
                found[start] = seq
                continue
            if before_ok and at is None:
                if size is None:
                    size = selectors.ledger_size()
                if seq == size:
                    found[start] = seq
                    continue
        seq = selectors.seq_at(start)
        cache.set(_cache_key(start), seq, None)
        found[start] = seq
    return found


def registry_timeline(*, now: datetime | None = None) -> list[Period]:
    """Tonnes issued and retired in each month from the first issuance to ``now`` (each year,
    when that is more than MONTHS_SHOWN months). Empty before the first issuance.

    Queries: one for the issuance entries, one to check the cached month boundaries, one for
    the retirements' sums, and one for the ledger's size when the newest boundary is past the
    last entry (plus, for boundaries not yet cached, a binary search each)."""
    now = now or timezone.now()
    issues = [
        decode_entry(bytes(body))
        for body in LedgerEntry.objects.filter(type="batch.issue")
        .order_by("seq")
        .values_list("body", flat=True)
    ]
    if not issues:
        return []
    months = _month_starts(issues[0].time[:7], now.astimezone(UTC))
    by_year = len(months) > MONTHS_SHOWN
    labels = sorted({m[:4] for m in months}) if by_year else months
    issued = dict.fromkeys(labels, 0)
    for e in issues:
        label = e.time[:4] if by_year else e.time[:7]
        if label in issued:  # an entry dated after ``now`` (a skewed clock) is left out
            issued[label] += int(e.data["batch"]["issued"])
    # Each period's retirements: entries from its first one to the next period's first one.
    starts = [_start(label) for label in labels]
    bounds = first_seqs(starts[1:])
    edges = [0, *(bounds[s] for s in starts[1:]), None]
    sums: dict[str, Any] = {}
    for i in range(len(labels)):
        window = Q(entry_seq__gte=edges[i])
        if edges[i + 1] is not None:
            window &= Q(entry_seq__lt=edges[i + 1])
        sums[f"p{i}"] = Sum("quantity", filter=window)
    retired = Retirement.objects.aggregate(**sums)
    return [
        Period(label, issued[label], int(retired[f"p{i}"] or 0)) for i, label in enumerate(labels)
    ]


def composition(summary: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """``selectors.supply_summary()``'s rows by ``"ecosystem"`` or ``"jurisdiction"`` (of the
    project), each with what is neither retired nor cancelled (``remaining``: held, in escrow
    or in the buffer pool). No query of its own."""
    rows = []
    for row in summary[f"by_{field}"]:
        issued, retired, cancelled = (row[k] or 0 for k in ("issued", "retired", "cancelled"))
        rows.append(
            {
                "key": row[f"project__{field}"],
                "issued": issued,
                "retired": retired,
                "cancelled": cancelled,
                "remaining": issued - retired - cancelled,
                "batches": row["batches"],
            }
        )
    return rows
