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
    "IntegrityFailure",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "TooLarge",
    "Unprocessable",
    "UnsupportedMediaType",
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
    # A project's documents (ledger/documents.py, services/documents.py).
    DOCUMENT_EMPTY = "document_empty", 400
    DOCUMENT_TOO_LARGE = "document_too_large", 413
    DOCUMENT_MEDIA_TYPE = "document_media_type", 415
    DOCUMENT_CONTENT_MISMATCH = "document_content_mismatch", 422
    DOCUMENT_EXISTS = "document_exists", 409
    DOCUMENT_INTEGRITY = "document_integrity", 500
    DOCUMENT_MISSING = "document_missing", 500


class TooLarge(DomainError):
    """More bytes than the operation takes (413): nothing was stored."""

    status_code = 413


class UnsupportedMediaType(DomainError):
    """A kind of content the operation does not take (415): nothing was stored."""

    status_code = 415


class IntegrityFailure(DomainError):
    """What the registry holds does not match its ledger (500): it refuses to serve it rather
    than serve something the ledger does not vouch for. Operators must look (it is logged)."""

    status_code = 500
