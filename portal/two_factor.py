"""Two-factor sign-in: TOTP (RFC 6238) through django-otp, with one-time recovery codes.

Who: any user may enrol; operators must (superusers, staff, who can reach the admin, and members
of an organization with the ``operator`` role). The API's keys are not touched: they are their
own factor, and the API never sees a portal session that skipped a step (see ``Gate``).

How it fits the sign-in (``two_factor_views``): the password step does not sign in a user who
has a confirmed device; it keeps who passed it in the session (``PENDING_KEY``, for
``PENDING_SECONDS``) and asks for a code. Only a valid code signs the user in, through
``django.contrib.auth.login`` and ``django_otp.login`` (which marks the session verified, as
``OTPMiddleware`` reads it back). So there is never a signed-in session waiting for its second
step: a protected URL after the password step is a protected URL for someone anonymous.

Codes: 6 digits, SHA-1, 30 s (what authenticator apps support; RFC 6238 §4 and the Key URI
format). django-otp accepts one step either side (``tolerance``) and keeps the step of the last
code it accepted (``last_t``): a code, or an older one, is never accepted twice. Failures slow
down each device (1, 2, 4, ... s between attempts, django-otp's ``ThrottlingMixin``).

The secret is shown only while a device is unconfirmed, to the user enrolling; once confirmed it
is never shown again (the admin lists devices without their key). Recovery codes are shown once,
when made, and kept only as hashes (``two_factor_models``).
"""

from __future__ import annotations

import math
import time
from base64 import b32encode
from collections.abc import Callable
from typing import Any

import segno
from django.contrib.auth import logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from ledger.models import Membership, Role

from .two_factor_models import (
    RECOVERY_CODE_COUNT,
    RecoveryCode,
    RecoveryCodeDevice,
    recovery_code_digest,
    recovery_code_new,
)

PENDING_KEY = "two_factor_pending"
PENDING_SECONDS = 300  # from the password to the code


# ---- selectors -------------------------------------------------------------------------------


def two_factor_required_for(user: Any) -> bool:
    """Operators must use two-factor sign-in: superusers, staff (the admin is theirs) and
    members of an organization with the operator role (as ``context.viewer`` counts them)."""
    if getattr(user, "is_superuser", False) or getattr(user, "is_staff", False):
        return True
    m = Membership.objects.select_related("organization").filter(user_id=user.pk).first()
    return bool(m and m.organization.has_role(Role.OPERATOR))


def totp_device(user: Any, *, confirmed: bool = True) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=confirmed).order_by("pk").first()


def recovery_device(user: Any) -> RecoveryCodeDevice | None:
    return RecoveryCodeDevice.objects.filter(user_id=user.pk, confirmed=True).first()


def recovery_codes_left(user: Any) -> int:
    return RecoveryCode.objects.filter(device__user_id=user.pk).count()


def totp_secret(device: TOTPDevice) -> str:
    """The key as authenticator apps take it by hand: base32 (RFC 4648), in groups of four."""
    raw = b32encode(device.bin_key).decode()
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def totp_qr_svg(device: TOTPDevice) -> SafeString:
    """The ``otpauth://`` URI (django-otp's ``config_url``) as an inline SVG QR code: no image
    request, nothing inline that the CSP forbids (segno writes paths, no style attribute)."""
    svg = segno.make(device.config_url, error="m").svg_inline(
        scale=4, border=2, dark="#000", light="#fff", title=_("QR code for your app")
    )
    return mark_safe(svg)  # noqa: S308 (segno's markup of our URI; it escapes the title)


# ---- services --------------------------------------------------------------------------------


def code_verify(*, user: Any, code: str) -> TOTPDevice | RecoveryCodeDevice | None:
    """The device that accepts ``code`` (a 6-digit TOTP code or a recovery code), or None.
    Each device is verified locked (``select_for_update``), so a code is accepted once."""
    code = "".join(code.split())
    candidates: list[Any] = []
    if code.isascii() and code.isdigit():
        candidates = list(TOTPDevice.objects.filter(user_id=user.pk, confirmed=True))
    elif code:
        candidates = list(RecoveryCodeDevice.objects.filter(user_id=user.pk, confirmed=True))
    for device in candidates:
        with transaction.atomic():
            # The row locked while it is checked: the throttle and last_t see every attempt.
            locked = type(device).objects.select_for_update().get(pk=device.pk)
            if locked.verify_token(code):
                return locked
    return None


def code_wait_seconds(user: Any) -> int:
    """Seconds until the user's devices take another attempt (after failed ones), or 0."""
    wait = 0.0
    for model in (TOTPDevice, RecoveryCodeDevice):
        for device in model.objects.filter(user_id=user.pk, confirmed=True):
            allowed, info = device.verify_is_allowed()
            if not allowed and info and info.get("locked_until"):
                wait = max(wait, (info["locked_until"] - timezone.now()).total_seconds())
    return math.ceil(wait)


def totp_enrolment_start(*, user: Any) -> TOTPDevice:
    """The user's unconfirmed device (made with a fresh 20-byte key if there is none)."""
    device = totp_device(user, confirmed=False)
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    return device


@transaction.atomic
def totp_enrolment_confirm(*, request: HttpRequest, code: str) -> list[str] | None:
    """Confirm the pending device with its first code: it becomes the user's device (any older
    one goes), recovery codes are made, and this session is verified. Returns the codes (to be
    shown once), or None if the code is wrong."""
    user: Any = request.user
    pending = TOTPDevice.objects.select_for_update().filter(user_id=user.pk, confirmed=False)
    device = pending.order_by("pk").first()
    if device is None or not device.verify_token("".join(code.split())):
        return None
    TOTPDevice.objects.filter(user_id=user.pk).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = recovery_codes_renew(user=user)
    otp_login(request, device)
    return codes


@transaction.atomic
def recovery_codes_renew(*, user: Any) -> list[str]:
    """A new set of recovery codes replaces the old one; returned to be shown once."""
    device, _ = RecoveryCodeDevice.objects.get_or_create(
        user=user, defaults={"name": "recovery codes", "confirmed": True}
    )
    device.codes.all().delete()
    codes = [recovery_code_new() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(
        RecoveryCode(device=device, digest=recovery_code_digest(c)) for c in codes
    )
    return codes


@transaction.atomic
def two_factor_remove(*, user: Any) -> None:
    """The user's TOTP devices and recovery codes go (after a fresh code: the view's check)."""
    TOTPDevice.objects.filter(user_id=user.pk).delete()
    RecoveryCodeDevice.objects.filter(user_id=user.pk).delete()


def pending_start(request: HttpRequest, user: AbstractBaseUser, *, next_url: str) -> None:
    """The password step passed: remember who, in a new session key (no fixation)."""
    request.session.cycle_key()
    request.session[PENDING_KEY] = {
        "user": user.pk,
        "backend": getattr(user, "backend", ""),
        "since": int(time.time()),
        "next": next_url,
    }


def pending_of(request: HttpRequest) -> dict[str, Any] | None:
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    if time.time() - pending.get("since", 0) > PENDING_SECONDS:
        del request.session[PENDING_KEY]
        return None
    return pending


# ---- the gate --------------------------------------------------------------------------------


class Gate:
    """After ``OTPMiddleware``: a signed-in user who must be verified and is not gets nothing but
    enrolment (an operator without a device) or a new sign-in (a session from before the user
    enrolled elsewhere). Pages answer with a redirect, the API with 403 ``two_factor_required``.
    Anonymous visitors, verified users and users with nothing to verify pass untouched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user: Any = request.user
        if not user.is_authenticated or user.is_verified():
            return self.get_response(request)
        has_device = totp_device(user) is not None
        if not has_device and not two_factor_required_for(user):
            return self.get_response(request)
        if not has_device and self._enrolment_may_reach(request.path):
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse(
                {
                    "code": "two_factor_required",
                    "message": _("Sign in with your second factor first."),
                },
                status=403,
            )
        if has_device:
            # A session that never gave a code (signed in before the device was confirmed,
            # elsewhere): it signs in again, this time with its code.
            logout(request)
            login = reverse("portal:login")
            return redirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
        return redirect("portal:two-factor")

    @staticmethod
    def _enrolment_may_reach(path: str) -> bool:
        allowed = (reverse("portal:two-factor"), reverse("portal:logout"), "/i18n/", "/static/")
        return any(path.startswith(p) for p in allowed)
