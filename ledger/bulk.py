"""Bulk import for registry migration: up to 1,000 operations applied all-or-nothing.

Each operation is validated by the same input serializer as its single endpoint and applied by
the same service, in order, in one transaction: the result is exactly what the single calls
would have produced, or, if any operation is refused, nothing at all."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework import serializers

from . import services
from .actors import Actor
from .exceptions import InvalidInput, LedgerError, PermissionDenied

MAX_OPERATIONS = 1000


def _serializers() -> dict[str, tuple[str, type[serializers.Serializer], Any]]:
    from .apis.credits import CancellationApi, RetirementCreateApi, TransferCreateApi
    from .apis.registry import BatchesApi

    def issue(actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        data["buffer_share_bp"] = data.pop("buffer_share")
        batch = services.batch_issue(actor=actor, **data)
        return {"batch": batch.pk, "serial": batch.serial}

    def transfer(actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        return {"entry_seq": services.credit_transfer(actor=actor, **data).seq}

    def retire(actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        r = services.credit_retire(actor=actor, **data)
        return {"entry_seq": r.entry_seq, "certificate": r.certificate}

    def cancel(actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        return {"entry_seq": services.credit_cancel(actor=actor, **data).entry_seq}

    return {
        "issue": ("issue", BatchesApi.InputSerializer, issue),
        "transfer": ("transfer", TransferCreateApi.InputSerializer, transfer),
        "retire": ("retire", RetirementCreateApi.InputSerializer, retire),
        "cancel": ("cancel", CancellationApi.InputSerializer, cancel),
    }


def bulk_apply(
    *, actor: Actor, scopes: frozenset[str], operations: list[Any]
) -> list[dict[str, Any]]:
    """Validate every operation, then apply them in order in one transaction."""
    if not isinstance(operations, list) or not 1 <= len(operations) <= MAX_OPERATIONS:
        raise InvalidInput(
            f"operations must be a list of 1 to {MAX_OPERATIONS} operations",
            detail={"operations": "size"},
        )
    kinds = _serializers()
    plan = []
    for index, op in enumerate(operations):
        kind = op.get("op") if isinstance(op, dict) else None
        if kind not in kinds:
            raise InvalidInput(
                f"operation {index}: op must be one of {', '.join(kinds)}",
                detail={"index": index, "op": "invalid_choice"},
            )
        scope, serializer_class, apply = kinds[kind]
        if scope not in scopes:
            raise PermissionDenied(
                f"operation {index} ({kind}) needs the {scope} scope", detail={"index": index}
            )
        fields = {k: v for k, v in op.items() if k != "op"}
        serializer = serializer_class(data=fields)
        if not serializer.is_valid():
            raise InvalidInput(
                f"operation {index} ({kind}) is not valid",
                detail={
                    "index": index,
                    "errors": {k: [str(e) for e in v] for k, v in serializer.errors.items()},
                },
            )
        plan.append((index, kind, apply, serializer.validated_data))
    results = []
    with transaction.atomic():
        for index, kind, apply, data in plan:
            try:
                results.append({"index": index, "op": kind, **apply(actor, data)})
            except LedgerError as exc:
                # Nothing is applied: the transaction rolls back. Say which operation failed.
                exc.message = f"operation {index} ({kind}): {exc.message}"
                exc.detail = {"index": index, **exc.detail}
                raise
    return results
