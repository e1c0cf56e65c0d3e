"""One error shape for the whole API: ``{"code", "message", "detail"}``.

Domain errors (``DomainError``) carry their own status and stable code. DRF's validation errors
become ``400 invalid`` with every field's problems under ``detail``, each as
``{"code", "message"}``. Authentication, permission, not-found and throttling errors keep
their status (429 also keeps ``Retry-After``); a body over the upload limit is
``413 request_too_large``. A transaction the database gave up on against concurrent ones (a
deadlock's victim, a serialization failure, a lock wait past ``lock_timeout``, SQLite busy)
is ``503 service_unavailable`` with ``Retry-After``: it applied nothing, and the same request
may succeed when sent again (``base.py`` already ran it again where that can help;
``bluecarbon/contention.py`` tells these errors apart, for the portal's forms too). Anything
else is our bug: ``500 server_error``, logged with its traceback, which the client never sees.

Errors raised outside a view (a middleware, a database that went away before the view ran, a
path no view serves) reach Django's error views instead; ``bluecarbon/urls.py`` routes those
to the handlers at the end of this module, which answer in the same shape under ``/api/`` and
leave the portal's pages to Django."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.signals import got_request_exception
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.log import log_response
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from bluecarbon.contention import contended
from bluecarbon.errors import Codes, CommonCode, ServiceUnavailable

from ..exceptions import DomainError

logger = logging.getLogger(__name__)


class ApiCode(Codes):
    """The codes of errors raised before or around an operation: DRF's (whose codes these
    are), the handlers' below, and a serializer's refusal."""

    INVALID = "invalid", 400  # a serializer refused the input; each field's problems in detail
    PARSE_ERROR = "parse_error", 400
    BAD_REQUEST = "bad_request", 400
    NOT_AUTHENTICATED = "not_authenticated", 401
    AUTHENTICATION_FAILED = "authentication_failed", 401
    METHOD_NOT_ALLOWED = "method_not_allowed", 405
    NOT_ACCEPTABLE = "not_acceptable", 406
    REQUEST_TOO_LARGE = "request_too_large", 413
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415
    THROTTLED = "throttled", 429
    SERVER_ERROR = "server_error", 500


SERVER_ERROR = {
    "code": str(ApiCode.SERVER_ERROR),
    "message": "The server failed to answer this request; it has been logged. Retry later.",
    "detail": {},
}


def _details(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _details(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_details(v) for v in detail]
    return {"code": getattr(detail, "code", "invalid"), "message": str(detail)}


def _too_large() -> dict[str, Any]:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return {
        "code": str(ApiCode.REQUEST_TOO_LARGE),
        "message": f"The request body is larger than {limit} bytes.",
        "detail": {"limit_bytes": limit},
    }


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if contended(exc):
        # Logged for operators: under the lock order of ledger/locks.py even a deadlock that
        # outlasts the retries should not happen, and lock timeouts say a writer is slow.
        logger.warning("503 after database contention: %s", str(exc).splitlines()[0])
        exc = ServiceUnavailable()
    if isinstance(exc, DomainError):
        answer = Response(exc.as_dict(), status=exc.status_code)
        if isinstance(exc, ServiceUnavailable):
            answer["Retry-After"] = str(exc.retry_after)
        return answer
    if isinstance(exc, RequestDataTooBig):  # Django's is a 400, with an HTML page
        return Response(_too_large(), status=413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return _server_error(exc, context)
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "code": str(ApiCode.INVALID),
            "message": "The request is not valid; see detail.",
            "detail": _details(exc.detail),
        }
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = detail.code if hasattr(detail, "code") else exc.default_code
        response.data = {"code": str(code), "message": str(detail), "detail": {}}
        wait = getattr(exc, "wait", None)  # set by Throttled's __init__; the stubs omit it
        if isinstance(exc, exceptions.Throttled):
            # The header and the detail say the same, and always (DRF omits a header of 0).
            retry_after = max(int(wait or 0), 1)
            response.data["detail"] = {"retry_after": retry_after}
            response["Retry-After"] = str(retry_after)
    return response


def _server_error(exc: Exception, context: dict[str, Any]) -> Response:
    set_rollback()
    response = Response(SERVER_ERROR, status=500)
    request = getattr(context.get("request"), "_request", None)
    # What Django does with an error no view handled: the signal error reporters (and the test
    # client) listen to, and its log record (logger django.request, with the traceback).
    got_request_exception.send(sender=None, request=request)
    log_response(
        "Internal Server Error: %s",
        request.path if request is not None else "?",
        response=response,
        request=request,
        exception=exc,
    )
    return response


# ---- Django's error views (``handler400`` ... ``handler500`` in bluecarbon/urls.py) ------------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(_too_large(), status=413)
    return JsonResponse(
        {"code": str(ApiCode.BAD_REQUEST), "message": "The request is malformed.", "detail": {}},
        status=400,
    )


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(
        {
            "code": str(CommonCode.PERMISSION_DENIED),
            "message": "You may not do this.",
            "detail": {},
        },
        status=403,
    )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(
        {
            "code": str(CommonCode.NOT_FOUND),
            "message": f"No API operation at {request.path}.",
            "detail": {},
        },
        status=404,
    )


def server_error(request: HttpRequest) -> HttpResponse:
    # Django has logged the exception (with its traceback) before calling this.
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse(SERVER_ERROR, status=500)
