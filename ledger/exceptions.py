"""The ledger's error codes. The error classes are the project's domain errors
(``bluecarbon.errors``), re-exported here for the ledger's modules."""

from __future__ import annotations

from bluecarbon.errors import (
    Codes,
    CommonCode,
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)

__all__ = [
    "CommonCode",
    "Conflict",
    "DomainError",
    "ErrorCode",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "Unprocessable",
]


class ErrorCode(Codes):
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_SHARE = "invalid_share"
    INVALID_PERIOD = "invalid_period"
    REASON_REQUIRED = "reason_required"
    TRANSFER_TO_SELF = "transfer_to_self"
    BUFFER_ACCOUNT = "buffer_account"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    CREDITS_RETIRED = "credits_retired"
    OVERLAPPING_PERIOD = "overlapping_period"
    DUPLICATE_ORIGIN = "duplicate_origin"
    DUPLICATE = "duplicate"
    PROJECT_NOT_ACTIVE = "project_not_active"
    INSUFFICIENT_BUFFER = "insufficient_buffer"
    MANAGED_HOLD = "managed_escrow_hold"
    IDEMPOTENCY_MISMATCH = "idempotency_key_reused"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_key_in_progress"
    WEBHOOK_ENDPOINT_LIMIT = "webhook_endpoint_limit"
