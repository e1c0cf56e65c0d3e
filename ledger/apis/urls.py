"""``/api/v1/``: each area's module lists its own ``urlpatterns``."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import auctions.apis

from . import bulk, credits, log, registry, webhooks

app_name = "api"
urlpatterns = [
    path("v1/", include(registry.urlpatterns)),
    path("v1/", include(credits.urlpatterns)),
    path("v1/", include(log.urlpatterns)),
    path("v1/", include(webhooks.urlpatterns)),
    path("v1/", include(bulk.urlpatterns)),
    path("v1/", include(auctions.apis.urlpatterns)),
    path("v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
