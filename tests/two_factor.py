"""Tests' two-factor sign-in: enrol a user (a confirmed TOTP device with a known key) and compute
its codes with the standard algorithm (RFC 6238, django_otp.oath), or sign a test client in the
way the portal's code step leaves a session: force_login plus django-otp's verified device."""

from __future__ import annotations

import time
from typing import Any

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import two_factor


def enrol(user: Any) -> TOTPDevice:
    """A confirmed device for ``user`` (a fresh random key), as enrolment leaves one."""
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def code(device: TOTPDevice, *, at: float | None = None, steps: int = 0) -> str:
    """The device's 6-digit code now (or at ``at``), ``steps`` time steps later."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = (time.time() if at is None else at) + steps * device.step
    return f"{totp.token():0{device.digits}d}"


def unthrottle(device: Any) -> None:
    """Forget the device's failed attempts (django-otp waits 1, 2, 4 ... s after each)."""
    type(device).objects.filter(pk=device.pk).update(
        throttling_failure_count=0, throttling_failure_timestamp=None
    )


def force_login(client: Client, user: Any) -> Client:
    """``client.force_login(user)``; for a user who must use two-factor sign-in (an operator,
    staff), enrolled and with the session marked verified as ``django_otp.login`` marks it."""
    client.force_login(user)
    if two_factor.two_factor_required_for(user):
        device = two_factor.totp_device(user) or enrol(user)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client
