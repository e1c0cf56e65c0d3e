"""``/api/``: every app's API routes under the one ``api`` namespace."""

from __future__ import annotations

from django.urls import include, path

import auctions.apis
import auctions.ascending_apis
import auctions.onboarding_apis
import ledger.apis.urls
import listings.apis

app_name = "api"
urlpatterns = [
    *ledger.apis.urls.urlpatterns,
    path("v1/", include(auctions.ascending_apis.urlpatterns)),
    path("v1/", include(auctions.apis.urlpatterns)),
    path("v1/", include(auctions.onboarding_apis.urlpatterns)),
    path("v1/", include(listings.apis.urlpatterns)),
]
