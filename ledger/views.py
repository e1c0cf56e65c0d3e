"""Plain public pages and the log's well-known texts (the checkpoint and its verifier keys), and
the operator's endpoints: ``/healthz`` (public) and ``/metrics`` (loopback or a token). The
printable retirement certificate's content is here too (``certificate_context``): the API serves
it as a page of its own and the portal with its navigation around it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from . import metrics as metrics_exposition
from . import operations, selectors
from .models import Ecosystem
from .signing import trusted_verifiers


def checkpoint_latest(request: HttpRequest) -> HttpResponse:
    checkpoint = selectors.checkpoint_latest()
    if checkpoint is None:
        return HttpResponse("no checkpoint yet\n", status=404, content_type="text/plain")
    return HttpResponse(checkpoint.note, content_type="text/plain; charset=utf-8")


def certificate_context(certificate: str) -> dict[str, Any]:
    """What ``ledger/certificate.html`` shows: the certificate (``selectors``; ``NotFound`` if
    there is none) and the verifier keys its checkpoint is checked with (every key the ledger
    has signed with; the note names which)."""
    c = selectors.retirement_certificate(certificate=certificate)
    return {
        "c": c,
        "ecosystem": Ecosystem.name_of(c.retirement.batch.project.ecosystem),
        "verifier_keys": [v.to_string() for v in trusted_verifiers()],
    }


def verifier_keys(request: HttpRequest) -> HttpResponse:
    """Every verifier key the log has signed with (C2SP signed-note vkey format)."""
    text = "".join(v.to_string() + "\n" for v in trusted_verifiers())
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """200 when every check passes, 503 when one does not; the body says which (public figures
    only: no alarm text, no host names)."""
    health = operations.health_check()
    return JsonResponse(
        health.as_json(),
        status=200 if health.ok else 503,
        headers={"Cache-Control": "no-store"},
    )


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_exposition.allowed(request):
        return HttpResponse(
            "metrics are served to loopback or with the bearer token METRICS_TOKEN\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(
        metrics_exposition.render(),
        content_type=metrics_exposition.CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )
