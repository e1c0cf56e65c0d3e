from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from portal.views import sign_in_limited

urlpatterns = [
    # The admin's sign-in, rate-limited like the portal's.
    path("admin/login/", sign_in_limited(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/", include("ledger.apis.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("ledger.urls")),
    path("", include("portal.urls")),
]
