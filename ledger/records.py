"""How each registry row is written in ledger entries, and how the verifier reads it back.

Services build entry ``data`` from these functions; the verifier turns live rows into the same
shapes and compares them with what replaying the ledger produced. One definition per table,
so the two sides cannot drift apart.

The functions look alike, each listing its row's keys one by one: that is on purpose. The keys
are the ledger's format (docs/ledger-format.md), which signed entries keep for ever, so a column
joins an entry only when it is written here, never because a model gained a field.
"""

from __future__ import annotations

from typing import Any

from .core.entry import format_time
from .models import (
    Account,
    Batch,
    Cancellation,
    EscrowHold,
    Methodology,
    Organization,
    Project,
    ProjectDocument,
    Retirement,
    Reversal,
)


def _name_zh(record: dict[str, Any], name_zh: str) -> dict[str, Any]:
    """A record with ``name_zh`` when one was given, and without the member
    when not: entries written before the field existed are exactly what the registry writes
    today for a name with no Chinese form, so they replay and compare unchanged."""
    return {**record, "name_zh": name_zh} if name_zh else record


def organization_record(o: Organization) -> dict[str, Any]:
    return _name_zh(
        {"id": o.pk, "handle": o.handle, "name": o.name, "roles": list(o.roles)}, o.name_zh
    )


def account_record(a: Account) -> dict[str, Any]:
    return {"id": a.pk, "organization": a.organization_id, "kind": a.kind, "name": a.name}


def methodology_record(m: Methodology) -> dict[str, Any]:
    return _name_zh(
        {
            "id": m.pk,
            "code": m.code,
            "name": m.name,
            "standard": m.standard,
            "ecosystems": list(m.ecosystems),
        },
        m.name_zh,
    )


def project_record(p: Project) -> dict[str, Any]:
    return _name_zh(_project_fields(p), p.name_zh)


def _project_fields(p: Project) -> dict[str, Any]:
    return {
        "id": p.pk,
        "code": p.code,
        "name": p.name,
        "ecosystem": p.ecosystem,
        "storage_pathway": p.storage_pathway,
        "methodology": p.methodology_id,
        "jurisdiction": p.jurisdiction,
        "location": p.location,
        "area_m2": p.area_m2,
        "registry": p.registry_id,
        "developer": p.developer_id,
        "validation_body": p.validation_body,
        "origin_registry": p.origin_registry,
        "origin_id": p.origin_id,
        "origin_key": p.origin_key,
        "origin_rule": p.origin_rule,
        "status": p.status,
    }


def batch_record(b: Batch) -> dict[str, Any]:
    """As issued. The running totals (retired, cancelled) are not part of the issuance."""
    return {
        "id": b.pk,
        "serial": b.serial,
        "project": b.project_id,
        "monitoring_start": b.monitoring_start.isoformat(),
        "monitoring_end": b.monitoring_end.isoformat(),
        "vintage": b.vintage,
        "verification_body": b.verification_body,
        "verification_report_sha256": b.verification_report_sha256,
        "buffer_share_bp": b.buffer_share_bp,
        "origin_registry": b.origin_registry,
        "origin_tx_id": b.origin_tx_id,
        "origin_tx_key": b.origin_tx_key,
        "origin_rule": b.origin_rule,
        "issued": b.issued,
        "buffer_withheld": b.buffer_withheld,
    }


def batch_state(b: Batch) -> dict[str, Any]:
    return {**batch_record(b), "retired": b.retired, "cancelled": b.cancelled}


def escrow_hold_state(h: EscrowHold) -> dict[str, Any]:
    return {
        "id": h.pk,
        "account": h.account_id,
        "batch": h.batch_id,
        "quantity": h.quantity,
        "reference": h.reference,
        "remaining": h.remaining,
    }


def escrow_hold_row(h: EscrowHold) -> dict[str, Any]:
    """The hold as the verifier compares it: its state and its owner, which no entry records
    (``escrow_hold`` derives it from the reference, and so does the verifier's expectation)."""
    return {**escrow_hold_state(h), "owner": h.owner}


def retirement_record(r: Retirement) -> dict[str, Any]:
    return {
        "certificate": r.certificate,
        "account": r.account_id,
        "batch": r.batch_id,
        "quantity": r.quantity,
        "beneficiary": r.beneficiary,
        "purpose": r.purpose,
        "jurisdiction": r.jurisdiction,
        "reason": r.reason,
    }


def cancellation_record(c: Cancellation) -> dict[str, Any]:
    return {
        "account": c.account_id,
        "batch": c.batch_id,
        "quantity": c.quantity,
        "reason": c.reason,
        "destination": c.destination,
    }


def reversal_record(r: Reversal) -> dict[str, Any]:
    return {
        "project": r.project_id,
        "quantity": r.quantity,
        "evidence_sha256": r.evidence_sha256,
        "description": r.description,
    }


def document_record(d: ProjectDocument) -> dict[str, Any]:
    return {
        "id": d.pk,
        "project": d.project_id,
        "kind": d.kind,
        "title": d.title,
        "media_type": d.media_type,
        "size": d.size,
        "sha256": d.sha256,
    }


def document_row(d: ProjectDocument) -> dict[str, Any]:
    """The document as the verifier compares it: its record and when it was attached, which the
    entry carries as its time."""
    return {**document_record(d), "attached_at": format_time(d.attached_at)}
