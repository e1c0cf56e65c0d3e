from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from portal.throttle import sign_in_limited

# Under /api/ errors raised outside a view answer in the API's JSON error shape too.
handler400 = "ledger.apis.errors.bad_request"
handler403 = "ledger.apis.errors.permission_denied"
handler404 = "ledger.apis.errors.page_not_found"
handler500 = "ledger.apis.errors.server_error"

urlpatterns = [
    # The admin's sign-in, rate-limited like the portal's.
    path("admin/login/", sign_in_limited(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/", include("bluecarbon.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("ledger.urls")),
    path("", include("portal.urls")),
]
