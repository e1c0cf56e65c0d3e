"""The domain error base both apps raise. Each error has an HTTP status and a stable machine
code from a typed enum, shaped like DRF's ``APIException``, so one handler turns any of them
into ``{"code", "message", "detail"}``.

Each app declares its own codes as a subclass of ``Codes`` (``ledger.exceptions.ErrorCode``,
``auctions.exceptions.AuctionErrorCode``, and the API's own, ``ledger.apis.errors.ApiCode``);
the codes every app shares are ``CommonCode``. One condition has one code, and each code states
the HTTP statuses it is answered with: the OpenAPI schema lists, for each status, the codes it
may carry (``ledger/apis/schema.py``), and docs/api.md the same (a test holds them together).
This module imports nothing of the apps: it is the layer below them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Codes(StrEnum):
    """Base of every app's error-code enum (an enum without members can be subclassed). A
    member is its code and the statuses it is answered with: ``NOT_FOUND = "not_found", 404``."""

    statuses: tuple[int, ...]

    def __new__(cls, value: str, *statuses: int) -> Codes:
        member = str.__new__(cls, value)
        member._value_ = value
        member.statuses = statuses
        return member

    @classmethod
    def every(cls) -> list[Codes]:
        """Every member of every app's enum (each app's exceptions module is imported by its
        services, so by the time the URLs are loaded)."""
        found: list[Codes] = []
        pending = list(cls.__subclasses__())
        while pending:
            enum = pending.pop(0)
            found.extend(enum)
            pending.extend(enum.__subclasses__())
        return found


class CommonCode(Codes):
    INVALID_FIELD = "invalid_field", 400, 422
    NOT_FOUND = "not_found", 404
    PERMISSION_DENIED = "permission_denied", 403
    SERVICE_UNAVAILABLE = "service_unavailable", 503


class DomainError(Exception):
    status_code = 400
    default_code: Codes = CommonCode.INVALID_FIELD
    default_detail = "Invalid request."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: Codes | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_detail
        self.code: Codes = code or self.default_code
        self.detail = detail or {}
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "detail": self.detail}


class InvalidInput(DomainError):
    """Malformed or out-of-range input (400)."""


class NotFound(DomainError):
    """Unknown, or not visible to the caller: the two are deliberately indistinguishable (404)."""

    status_code = 404
    default_code = CommonCode.NOT_FOUND
    default_detail = "Not found."


class PermissionDenied(DomainError):
    status_code = 403
    default_code = CommonCode.PERMISSION_DENIED
    default_detail = "You may not do this."


class Conflict(DomainError):
    """Well-formed, but conflicts with the registry's state (409)."""

    status_code = 409


class Unprocessable(DomainError):
    """Well-formed, but can never be accepted as stated (422)."""

    status_code = 422


class ServiceUnavailable(DomainError):
    """Nothing was applied, for a passing reason (the database gave up on the transaction
    against concurrent ones): send the same request again after ``retry_after`` seconds (503,
    with a ``Retry-After`` header)."""

    status_code = 503
    default_code = CommonCode.SERVICE_UNAVAILABLE
    default_detail = "The registry is busy and applied nothing; send the same request again."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int = 1,
        code: Codes | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, code=code, detail={"retry_after": retry_after, **(detail or {})})
