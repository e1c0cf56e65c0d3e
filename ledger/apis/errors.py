"""One error shape for the whole API: ``{"code", "message", "detail"}``.

Domain errors (``DomainError``) carry their own status and stable code. DRF's validation errors
become ``400 invalid`` with every field's problems under ``detail``, each as
``{"code", "message"}``. Authentication, permission, not-found and throttling errors keep
their status (429 also keeps ``Retry-After``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..exceptions import DomainError


def _details(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _details(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_details(v) for v in detail]
    return {"code": getattr(detail, "code", "invalid"), "message": str(detail)}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "code": "invalid",
            "message": "The request is not valid; see detail.",
            "detail": _details(exc.detail),
        }
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = detail.code if hasattr(detail, "code") else exc.default_code
        response.data = {"code": str(code), "message": str(detail), "detail": {}}
        wait = getattr(exc, "wait", None)  # set by Throttled's __init__; the stubs omit it
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            response.data["detail"] = {"retry_after": int(wait) + 1}
    return response
