"""Plain public pages and the log's well-known texts (the checkpoint and its verifier keys)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from . import selectors
from .signing import trusted_verifiers


def checkpoint_latest(request: HttpRequest) -> HttpResponse:
    checkpoint = selectors.checkpoint_latest()
    if checkpoint is None:
        return HttpResponse("no checkpoint yet\n", status=404, content_type="text/plain")
    return HttpResponse(checkpoint.note, content_type="text/plain; charset=utf-8")


def verifier_keys(request: HttpRequest) -> HttpResponse:
    """Every verifier key the log has signed with (C2SP signed-note vkey format)."""
    text = "".join(v.to_string() + "\n" for v in trusted_verifiers())
    return HttpResponse(text, content_type="text/plain; charset=utf-8")
