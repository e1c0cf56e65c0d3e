"""Reads. Views and commands call these; nothing here writes."""

from __future__ import annotations

from django.db.models import Count, Sum

from .models import Batch, Checkpoint, LedgerHead, Project, Retirement


def ledger_size() -> int:
    head = LedgerHead.objects.filter(pk=1).first()
    return head.size if head else 0


def checkpoint_latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-size").first()


def registry_summary() -> dict[str, object]:
    supply = Batch.objects.aggregate(
        issued=Sum("issued"), retired=Sum("retired"), cancelled=Sum("cancelled")
    )
    by_ecosystem = (
        Batch.objects.values("project__ecosystem")
        .annotate(issued=Sum("issued"), retired=Sum("retired"), batches=Count("pk"))
        .order_by("project__ecosystem")
    )
    return {
        "projects": Project.objects.select_related("methodology", "developer").order_by("code"),
        "supply": {k: v or 0 for k, v in supply.items()},
        "by_ecosystem": list(by_ecosystem),
        "retirements": Retirement.objects.select_related("batch", "account").order_by("-entry_seq")[
            :20
        ],
        "ledger_size": ledger_size(),
        "checkpoint": checkpoint_latest(),
    }
