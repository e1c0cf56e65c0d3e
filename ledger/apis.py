"""The ledger's HTTP surface. The registry API proper is another issue; this holds the one
error handler every API view uses."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import LedgerError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn domain errors and DRF's own into ``{"code", "message", "detail"}``."""
    if isinstance(exc, LedgerError):
        return Response(exc.as_dict(), status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    code = getattr(exc, "default_code", "error")
    if isinstance(data, dict) and set(data) == {"detail"}:
        body = {
            "code": getattr(data["detail"], "code", code),
            "message": str(data["detail"]),
            "detail": {},
        }
    else:
        body = {"code": "invalid", "message": "Invalid input.", "detail": data}
    response.data = body
    return response
