"""Reads. Views and commands call these; nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass

from .core import origin
from .models import Batch, Checkpoint, LedgerHead, Project


def ledger_size() -> int:
    head = LedgerHead.objects.filter(pk=1).first()
    return head.size if head else 0


def checkpoint_latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-size").first()


@dataclass(frozen=True)
class OriginClaim:
    pk: int
    name: str  # the project's code or the batch's serial
    origin_registry: str  # as stored
    origin_id: str  # as stored
    origin_rule: int


@dataclass(frozen=True)
class NearDuplicate:
    kind: str  # "project" or "batch"
    origin_registry: str  # the registry under origin rule 1
    key: str  # the id under origin rule 1
    claims: tuple[OriginClaim, ...]  # two or more, in id order


def origin_near_duplicates() -> list[NearDuplicate]:
    """Projects (and batches) whose origin is one under origin rule 1 although spelled apart:
    rows stored before the rule (``origin_rule`` 0, no key) are keyed here as the rule would
    have keyed them, and grouped with each other and with the keyed rows. The database keeps
    keyed rows apart already, so every group holds at least one row from before the rule."""
    groups: dict[tuple[str, str, str], list[OriginClaim]] = {}
    projects = Project.objects.order_by("pk").values_list(
        "pk", "code", "origin_registry", "origin_id", "origin_key", "origin_rule"
    )
    for pk, code, reg, oid, key, rule in projects.iterator():
        slot = (reg, key) if key is not None else origin.legacy_project_key(reg, oid)
        claim = OriginClaim(pk, code, reg, oid, rule)
        groups.setdefault(("project", *slot), []).append(claim)
    batches = (
        Batch.objects.filter(origin_tx_id__isnull=False)
        .order_by("pk")
        .values_list(
            "pk", "serial", "origin_registry", "origin_tx_id", "origin_tx_key", "origin_rule"
        )
    )
    for pk, serial, reg, tx_or_none, key, rule in batches.iterator():
        tx = tx_or_none or ""  # never None here (filtered above)
        slot = (reg, key) if key is not None else origin.legacy_tx_key(reg, tx)
        claim = OriginClaim(pk, serial, reg, tx, rule)
        groups.setdefault(("batch", *slot), []).append(claim)
    return [
        NearDuplicate(kind, reg, key, tuple(claims))
        for (kind, reg, key), claims in groups.items()
        if len(claims) > 1
    ]
