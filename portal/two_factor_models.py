"""Recovery codes for two-factor sign-in, as a django-otp device of our own.

django-otp's ``otp_static`` plugin keeps its tokens in plain text (``StaticToken.token``), so a
copy of the database would hand out working second factors. Here each code is kept only as its
SHA-256: a code is 80 random bits (16 base32 characters), far beyond any offline search, so a
fast hash is enough (as for API keys), and a slow one would make each sign-in attempt pay for
ten of them. Like django-otp's own devices, it is found by ``devices_for_user`` and verified
under ``select_for_update`` (``django_otp.verify_token``), so two uses of one code at once
cannot both succeed, and it is throttled per device after failures (``ThrottlingMixin``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

from django.db import models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin

RECOVERY_CODE_COUNT = 10


def recovery_code_new() -> str:
    """A fresh code: 80 random bits as 16 lowercase base32 characters, in groups of four."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def recovery_code_digest(code: str) -> str:
    """What is stored of a code: the SHA-256 of it without spaces, dashes or case."""
    normal = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(normal.encode()).hexdigest()


class RecoveryCodeDevice(TimestampMixin, ThrottlingMixin, Device):
    """A user's set of one-time recovery codes (one device per user, made at enrolment)."""

    class Meta(Device.Meta):
        verbose_name = "recovery code set"

    def get_throttle_factor(self) -> int:
        return 1

    def verify_token(self, token: Any) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        # The delete is the check: a code counts once, even for two requests at the same time.
        used, _ = self.codes.filter(digest=recovery_code_digest(str(token))).delete()
        if used:
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
            return True
        self.throttle_increment(commit=True)
        return False


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64, unique=True)  # SHA-256 hex; the code is never kept

    def __str__(self) -> str:
        return f"recovery code {self.pk} of {self.device_id}"  # never the code: it is not kept
