"""Domain errors. Each has an HTTP status and a stable machine-readable code, shaped like DRF's
APIException so one handler turns any of them into ``{"code", "message", "detail"}``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_SHARE = "invalid_share"
    INVALID_FIELD = "invalid_field"
    INVALID_PERIOD = "invalid_period"
    REASON_REQUIRED = "reason_required"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
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


class LedgerError(Exception):
    status_code = 400
    default_code: ErrorCode = ErrorCode.INVALID_FIELD
    default_detail = "Invalid request."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_detail
        self.code = code or self.default_code
        self.detail = detail or {}
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "detail": self.detail}


class InvalidInput(LedgerError):
    """Malformed or out-of-range input (400)."""


class NotFound(LedgerError):
    """Unknown, or not visible to the caller: the two are deliberately indistinguishable (404)."""

    status_code = 404
    default_code = ErrorCode.NOT_FOUND
    default_detail = "Not found."


class PermissionDenied(LedgerError):
    status_code = 403
    default_code = ErrorCode.PERMISSION_DENIED
    default_detail = "You may not do this."


class Conflict(LedgerError):
    """Well-formed, but conflicts with the registry's state (409)."""

    status_code = 409


class Unprocessable(LedgerError):
    """Well-formed, but can never be accepted as stated (422)."""

    status_code = 422
