"""The portal's own tables: neither is registry or ledger state.

* ``SignupRequest``: someone asked for a bidder account; an operator approves it, and only then
  do the organization, its account and its bidder approval go on the ledger (by services).
* ``VerificationRun``: an auditor's "verify now", run by a Celery worker; its report is kept so
  the history of verifications can be shown, each signed (``reports``). Progress while it runs
  is in the ``progress`` cache (the verifier reads in one snapshot transaction and cannot
  write as it goes).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SignupRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signup_request"
    )
    organization_name = models.CharField(max_length=200)
    handle = models.SlugField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            # One live request per handle; a rejected one frees it.
            models.UniqueConstraint(
                fields=["handle"],
                condition=~models.Q(status="rejected"),
                name="portal_signup_handle_live",
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_name} ({self.status})"


class VerificationRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        OK = "ok", "Verified"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    entries = models.BigIntegerField(default=0)
    checkpoints = models.IntegerField(default=0)
    message = models.TextField(blank=True, default="")
    failed_seq = models.BigIntegerField(null=True, blank=True)
    # The latest signed checkpoint the run verified (what the report vouches for), and the
    # report: a C2SP signed note by the verification report key (portal/reports.py).
    checkpoint_size = models.BigIntegerField(null=True, blank=True)
    checkpoint_root = models.BinaryField(null=True, blank=True)
    report = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"verification {self.pk}: {self.status}"


# Recovery codes for two-factor sign-in, kept as hashes (a django-otp device of the portal's).
from .two_factor_models import RecoveryCode, RecoveryCodeDevice  # noqa: E402

__all__ = ["RecoveryCode", "RecoveryCodeDevice", "SignupRequest", "VerificationRun"]
