"""The admin site: Django's, behind two-factor sign-in.

Everyone who can reach the admin must have given a code in this session (django-otp's
``OTPAdminSite.has_permission``: staff and verified). Its sign-in is the portal's, with the code
step and enrolment, rather than a second form that would have to repeat them; ``login`` only
sends there. Installed as the default site by ``bluecarbon.apps.AdminConfig``, so every
``@admin.register`` in the apps lands here."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django_otp.admin import OTPAdminSite


class TwoFactorAdminSite(OTPAdminSite):
    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)  # OTPAdminSite's default name would move every admin: URL

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse(f"{self.name}:index")
        return redirect(f"{reverse('portal:login')}?{urlencode({'next': next_url})}")
