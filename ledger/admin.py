"""Everything is visible; nothing ledger-backed is edited here. The only writes are actions
that call a service, which appends the ledger entry like every other write."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from . import models, operations, services
from .actors import Actor
from .core.entry import decode_entry
from .core.quantity import format_tonnes
from .exceptions import DomainError


class ReadOnlyAdmin(admin.ModelAdmin):
    """Derived from the ledger: shown, never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _run(request: HttpRequest, modeladmin: admin.ModelAdmin, fn: Any, **kwargs: Any) -> bool:
    try:
        with transaction.atomic(durable=True):
            fn(actor=Actor.for_user(request.user), **kwargs)
    except DomainError as exc:
        modeladmin.message_user(request, f"{exc.code}: {exc.message}", messages.ERROR)
        return False
    return True


@admin.register(models.Organization)
class OrganizationAdmin(ReadOnlyAdmin):
    list_display = ("handle", "name", "roles")
    search_fields = ("handle", "name")


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Who acts for which organization: access control, not ledger state, so editable."""

    list_display = ("user", "organization")
    autocomplete_fields = ("organization",)


@admin.register(models.Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("pk", "name", "organization", "kind")
    list_filter = ("kind",)
    search_fields = ("name", "organization__name")


@admin.register(models.Methodology)
class MethodologyAdmin(ReadOnlyAdmin):
    list_display = ("code", "name", "standard")


def _set_status(status: str) -> Any:
    @admin.action(description=f"Set status to {status} (ledgered)")
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        done = sum(
            _run(request, modeladmin, services.project_update, project=p.pk, status=status)
            for p in queryset
        )
        modeladmin.message_user(request, f"{done} project(s) set to {status}.")

    action.__name__ = f"set_{status}"
    return action


@admin.register(models.Project)
class ProjectAdmin(ReadOnlyAdmin):
    list_display = (
        "code",
        "name",
        "ecosystem",
        "jurisdiction",
        "methodology",
        "developer",
        "status",
    )
    list_filter = ("ecosystem", "status", "jurisdiction")
    search_fields = ("code", "name", "origin_id")
    actions = [_set_status(s) for s in models.Project.Status.values]


@admin.register(models.Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ("serial", "project", "vintage", "issued_t", "retired_t", "cancelled_t")
    list_filter = ("vintage", "project__ecosystem")
    search_fields = ("serial", "origin_tx_id")

    @admin.display(description="issued (t)")
    def issued_t(self, b: models.Batch) -> str:
        return format_tonnes(b.issued)

    @admin.display(description="retired (t)")
    def retired_t(self, b: models.Batch) -> str:
        return format_tonnes(b.retired)

    @admin.display(description="cancelled (t)")
    def cancelled_t(self, b: models.Batch) -> str:
        return format_tonnes(b.cancelled)


@admin.register(models.Holding)
class HoldingAdmin(ReadOnlyAdmin):
    list_display = ("account", "batch", "tradable_t", "escrowed_t")
    list_select_related = ("account", "batch")

    @admin.display(description="tradable (t)")
    def tradable_t(self, h: models.Holding) -> str:
        return format_tonnes(h.tradable)

    @admin.display(description="escrowed (t)")
    def escrowed_t(self, h: models.Holding) -> str:
        return format_tonnes(h.escrowed)


@admin.register(models.EscrowHold)
class EscrowHoldAdmin(ReadOnlyAdmin):
    list_display = ("pk", "account", "batch", "quantity", "remaining", "reference", "owner")


@admin.register(models.Retirement)
class RetirementAdmin(ReadOnlyAdmin):
    list_display = ("certificate", "batch", "account", "quantity", "beneficiary", "purpose")
    search_fields = ("certificate", "beneficiary")


@admin.register(models.Cancellation)
class CancellationAdmin(ReadOnlyAdmin):
    list_display = ("entry_seq", "batch", "account", "quantity", "reason", "destination")


@admin.register(models.Reversal)
class ReversalAdmin(ReadOnlyAdmin):
    list_display = ("entry_seq", "project", "quantity", "evidence_sha256")


@admin.action(description="Sign a checkpoint now")
def sign_checkpoint(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: Any) -> None:
    checkpoint = services.ledger_checkpoint_issue()
    modeladmin.message_user(
        request,
        f"Signed checkpoint at size {checkpoint.size}." if checkpoint else "Already up to date.",
    )


@admin.register(models.LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("seq", "type", "time", "actor")
    list_filter = ("type",)
    readonly_fields = ("seq", "type", "canonical_bytes")
    fields = readonly_fields
    actions = [sign_checkpoint]

    def time(self, e: models.LedgerEntry) -> str:
        return decode_entry(bytes(e.body)).time

    def actor(self, e: models.LedgerEntry) -> str:
        return decode_entry(bytes(e.body)).actor

    @admin.display(description="canonical bytes (RFC 8785)")
    def canonical_bytes(self, e: models.LedgerEntry) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", bytes(e.body).decode())


@admin.register(models.Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("size", "key_name", "key_hash", "created_at")
    readonly_fields = ("size", "key_name", "key_hash", "created_at", "note")
    actions = [sign_checkpoint]


@admin.register(models.LedgerHead)
class LedgerHeadAdmin(ReadOnlyAdmin):
    list_display = ("size",)


@admin.register(models.TreeHead)
class TreeHeadAdmin(ReadOnlyAdmin):
    list_display = ("size",)


@admin.register(models.MerkleNode)
class MerkleNodeAdmin(ReadOnlyAdmin):
    list_display = ("level", "index")


@admin.register(models.WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ("pk", "organization", "url", "active", "cursor", "consecutive_failures")
    fields = (
        "organization",
        "url",
        "event_types",
        "active",
        "cursor",
        "created_at",
        "consecutive_failures",
        "circuit_open_until",
        "lease_until",
    )
    readonly_fields = fields


@admin.register(models.WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("pk", "endpoint", "entry_seq", "status", "attempts", "last_status_code")
    list_filter = ("status",)


# ---- operations: shown, never edited; a signer alarm can be acknowledged ----------------------


@admin.action(
    description="Acknowledge: the banner goes until the signer refuses again",
    permissions=["acknowledge"],
)
def acknowledge_alarms(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> None:
    done = operations.signer_alarms_acknowledge(
        alarms=queryset.values_list("pk", flat=True), by=f"user:{request.user.pk} ({request.user})"
    )
    modeladmin.message_user(request, f"{done} alarm(s) acknowledged.", messages.SUCCESS)


@admin.register(models.SignerAlarm)
class SignerAlarmAdmin(ReadOnlyAdmin):
    """The checkpoint signer's refusals (ledger/signer.py). The signer refuses again at every
    run until the cause is dealt with, and each refusal is a new, unacknowledged alarm."""

    list_display = ("created_at", "message", "acknowledged_at")
    list_filter = (("acknowledged_at", admin.EmptyFieldListFilter),)
    readonly_fields = ("created_at", "message", "acknowledged_at")
    fields = readonly_fields
    actions = [acknowledge_alarms]

    def has_acknowledge_permission(self, request: HttpRequest) -> bool:
        return Actor.for_user(request.user).is_operator


@admin.register(models.WitnessRefusal)
class WitnessRefusalAdmin(ReadOnlyAdmin):
    """A refusal stands (banner, /healthz) until that witness cosigns a checkpoint at least as
    large, or leaves the witness policy."""

    list_display = ("created_at", "witness", "size", "status", "message")
    list_filter = ("witness",)


@admin.register(models.WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("queue", "worker", "beat_at")


# API keys have an add form and a revoke action of their own; projects' documents an add form
# that attaches through the service.
from . import admin_apikeys, admin_documents  # noqa: E402,F401
