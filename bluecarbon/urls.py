from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("ledger.apis.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("ledger.urls")),
    path("", include("portal.urls")),
]
