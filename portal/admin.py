"""Sign-up requests: an operator approves them (the organization, its account and its bidder
approval then go on the ledger through the services) or rejects them."""

from __future__ import annotations

from functools import partial

from django.contrib import admin, messages
from django.db import DatabaseError
from django.db.models import QuerySet
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from bluecarbon.contention import contended, durably
from ledger.actors import Actor
from ledger.admin import ReadOnlyAdmin
from ledger.exceptions import DomainError

from . import services
from .models import RecoveryCodeDevice, SignupRequest, VerificationRun


@admin.action(description="Approve: register the organization and admit it to bid (ledgered)")
def approve(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    done, actor = 0, Actor.for_user(request.user)
    for r in qs.filter(status=SignupRequest.Status.PENDING):
        try:
            durably(partial(services.signup_approve, actor=actor, request=r.pk))
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{r.handle}: {exc.message}", messages.ERROR)
        except DatabaseError as exc:
            # Each approval commits alone: those before this one stand, so the 503 page (which
            # says nothing was recorded) would be wrong. Say which, and stop here.
            if not contended(exc):
                raise
            modeladmin.message_user(
                request,
                f"{r.handle}: the registry is busy and recorded nothing for it (nor for the "
                "requests after it): approve them again shortly.",
                messages.ERROR,
            )
            break
    modeladmin.message_user(request, f"{done} request(s) approved.")


@admin.action(description="Reject")
def reject(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    n = 0
    for r in qs.filter(status=SignupRequest.Status.PENDING):
        try:
            n += services.signup_reject(actor=Actor.for_user(request.user), request=r.pk)
        except DomainError as exc:
            modeladmin.message_user(request, f"{r.handle}: {exc.message}", messages.ERROR)
    modeladmin.message_user(request, f"{n} request(s) rejected.")


@admin.register(SignupRequest)
class SignupRequestAdmin(ReadOnlyAdmin):
    list_display = ("organization_name", "handle", "user", "status", "created_at")
    list_filter = ("status",)
    actions = [approve, reject]


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdmin):
    list_display = ("pk", "status", "created_at", "finished_at", "entries", "message")


# Two-factor devices: listed without their secrets (django-otp's own TOTP admin shows the key and
# a QR code of it, and lets anyone with the permission make a device for someone else). An
# operator with the delete permission resets a user who lost both the phone and the recovery
# codes; the user enrols again at the next sign-in.
admin.site.unregister(TOTPDevice)


class TwoFactorDeviceAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)
    search_fields = ("user__username",)
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


admin.site.register(TOTPDevice, TwoFactorDeviceAdmin)
admin.site.register(RecoveryCodeDevice, TwoFactorDeviceAdmin)
