"""Reads. Views and commands call these; nothing here writes."""

from __future__ import annotations

from .models import Checkpoint, LedgerHead


def ledger_size() -> int:
    head = LedgerHead.objects.filter(pk=1).first()
    return head.size if head else 0


def checkpoint_latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-size").first()
