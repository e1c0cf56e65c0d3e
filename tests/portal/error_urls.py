"""The site's URLs and error handlers, plus a view that fails: for tests/portal/test_error_pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from bluecarbon.urls import handler400, handler403, handler404, handler500
from bluecarbon.urls import urlpatterns as site


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("SECRET-detail-of-a-bug /work/main/portal/views.py")


urlpatterns = [path("boom/", boom), path("api/v1/boom/", boom), *site]
__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
