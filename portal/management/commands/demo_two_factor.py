"""``manage.py demo_two_factor``: enrol the demo operator ``admin`` in two-factor sign-in and say,
on the terminal of whoever runs the demo, how to sign in: the ``otpauth://`` URI to scan, the key
for ``oathtool`` or a line of Python, and one recovery code. ``seed_demo`` runs it once.

The key is shown only when the output is a terminal: ``bin/demo`` under a soak or a CI job
writes its output to a file, and a key in a file is a key anyone with the file can use. It is
never logged. The demo's own database holds it, as any server must. Refused with
``BLUECARBON_ENV=production``: operators there enrol themselves on their account page."""

from __future__ import annotations

import io
from typing import Any

import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import two_factor

DEMO_OPERATOR = "admin"


class Command(BaseCommand):
    help = "Enrol the demo operator in two-factor sign-in (development only)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--new", action="store_true", help="replace its key and recovery codes with new ones"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo_two_factor refuses to run with BLUECARBON_ENV=production")
        user = get_user_model().objects.filter(username=DEMO_OPERATOR).first()
        if user is None:
            raise CommandError("no demo operator: run manage.py seed_demo first")
        if two_factor.totp_device(user) is not None and not options["new"]:
            self.stdout.write(
                f"{DEMO_OPERATOR} already has two-factor sign-in; "
                "manage.py demo_two_factor --new gives it a new key"
            )
            return
        if not self.stdout.isatty():
            # Enrolled all the same (operators must be), with nobody told the key: whoever runs
            # the demo makes a new one on a terminal.
            self._enrol(user)
            self.stdout.write(
                f"{DEMO_OPERATOR} signs in with a password and a code (two-factor sign-in); its "
                "key is shown on a terminal only: run manage.py demo_two_factor --new there"
            )
            return
        device, recovery = self._enrol(user)
        key = two_factor.totp_secret(device).replace(" ", "")
        # RFC 6238's TOTP (RFC 4226's truncation) in one line of the standard library.
        python_line = (
            f"python3 -c \"import base64,hmac,struct,time;k=base64.b32decode('{key}');"
            "h=hmac.digest(k,struct.pack('>Q',int(time.time())//30),'sha1');o=h[19]&15;"
            "print('%06d'%((int.from_bytes(h[o:o+4],'big')&0x7fffffff)%10**6))\""
        )
        qr = io.StringIO()
        segno.make(device.config_url, error="m").terminal(out=qr, compact=True, border=2)
        self.stdout.write(
            f"""
  Two-factor sign-in for the demo operator {DEMO_OPERATOR} (shown once, here only):
    scan this QR code with an authenticator app, or enter the key {key} by hand:
{qr}
      {device.config_url}
    or make a code here:
      oathtool --totp -b {key}
      {python_line}
    one recovery code (works once): {recovery}
  Sign in at /account/login/ with {DEMO_OPERATOR} and the demo password, then the code.
"""
        )

    @transaction.atomic
    def _enrol(self, user: Any) -> tuple[TOTPDevice, str]:
        two_factor.two_factor_remove(user=user)
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
        codes = two_factor.recovery_codes_renew(user=user)
        return device, codes[0]
