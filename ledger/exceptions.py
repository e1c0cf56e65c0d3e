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
    INVALID_QUANTITY = "invalid_quantity", 400
    INVALID_SHARE = "invalid_share", 400
    INVALID_PERIOD = "invalid_period", 400
    TRANSFER_TO_SELF = "transfer_to_self", 422
    BUFFER_ACCOUNT = "buffer_account", 422
    INSUFFICIENT_BALANCE = "insufficient_balance", 409
    CREDITS_RETIRED = "credits_retired", 409
    OVERLAPPING_PERIOD = "overlapping_period", 409
    DUPLICATE_ORIGIN = "duplicate_origin", 409
    DUPLICATE = "duplicate", 409
    PROJECT_NOT_ACTIVE = "project_not_active", 409
    INSUFFICIENT_BUFFER = "insufficient_buffer", 409
    MANAGED_HOLD = "managed_escrow_hold", 409
    IDEMPOTENCY_MISMATCH = "idempotency_key_reused", 422
    IDEMPOTENCY_IN_PROGRESS = "idempotency_key_in_progress", 409
    WEBHOOK_ENDPOINT_LIMIT = "webhook_endpoint_limit", 409
