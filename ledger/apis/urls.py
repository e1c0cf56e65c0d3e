"""The ledger's part of ``/api/``: each area's module lists its own ``urlpatterns``. The
project puts them, and the other apps' routes, under the ``api`` namespace
(``bluecarbon.api_urls``)."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import bulk, credits, documents, log, public_register, registry, tiles, webhooks

urlpatterns = [
    path("v1/", include(registry.urlpatterns)),
    path("v1/", include(public_register.urlpatterns)),
    path("v1/", include(credits.urlpatterns)),
    path("v1/", include(documents.urlpatterns)),
    path("v1/", include(log.urlpatterns)),
    path("v1/", include(tiles.urlpatterns)),
    path("v1/ledger/tlog/", include(tiles.tlog_urlpatterns)),
    path("v1/", include(webhooks.urlpatterns)),
    path("v1/", include(bulk.urlpatterns)),
    path("v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
