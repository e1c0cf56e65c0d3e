"""The operator's desk for listings: everything visible, nothing edited by hand. Every write is
an action calling one service, which appends its ledger entry: confirm a payment (deliver the
lots), declare a default, withdraw a listing, expire one that is due."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from ledger.actors import Actor
from ledger.admin import ReadOnlyAdmin
from ledger.core.quantity import format_money, format_tonnes
from ledger.exceptions import DomainError

from . import services
from .models import Listing, Purchase


def _run(modeladmin: admin.ModelAdmin, request: HttpRequest, fn: Any, **kwargs: Any) -> bool:
    try:
        with transaction.atomic(durable=True):
            fn(**kwargs)
    except DomainError as exc:
        modeladmin.message_user(request, f"{exc.code}: {exc.message}", messages.ERROR)
        return False
    return True


@admin.action(description="Confirm payment received: deliver the lots (ledgered)")
def confirm_payment(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    actor = Actor.for_user(request.user)
    done = sum(
        _run(modeladmin, request, services.purchase_confirm, actor=actor, purchase=p.pk) for p in qs
    )
    modeladmin.message_user(request, f"{done} purchase(s) delivered.")


@admin.action(description="Declare default: lots back to the listing or the seller (ledgered)")
def declare_default(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    actor = Actor.for_user(request.user)
    done = sum(
        _run(modeladmin, request, services.purchase_default, actor=actor, purchase=p.pk) for p in qs
    )
    modeladmin.message_user(request, f"{done} purchase(s) declared in default.")


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("pk", "listing", "buyer", "lots", "quantity_t", "amount", "state")
    list_filter = ("state",)
    list_select_related = ("listing", "buyer")
    actions = [confirm_payment, declare_default]

    @admin.display(description="quantity (t)")
    def quantity_t(self, p: Purchase) -> str:
        return format_tonnes(p.quantity)

    @admin.display(description="amount due")
    def amount(self, p: Purchase) -> str:
        return f"{format_money(p.amount_due, p.listing.currency)} {p.listing.currency}"


@admin.action(description="Withdraw the unsold lots (back to the seller; ledgered)")
def withdraw(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    actor = Actor.for_user(request.user)
    done = sum(
        _run(
            modeladmin,
            request,
            services.listing_withdraw,
            actor=actor,
            listing=x.pk,
            reason="withdrawn by the operator",
        )
        for x in qs
    )
    modeladmin.message_user(request, f"{done} listing(s) withdrawn.")


@admin.action(description="Expire those past their closing time (ledgered)")
def expire(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    done = sum(services.listing_expire(listing=x.pk) for x in qs)
    modeladmin.message_user(request, f"{done} listing(s) expired.")


@admin.register(Listing)
class ListingAdmin(ReadOnlyAdmin):
    list_display = ("pk", "seller", "batch", "lots", "remaining_lots", "price_t", "state")
    list_filter = ("state", "currency")
    list_select_related = ("seller", "batch")
    actions = [withdraw, expire]

    @admin.display(description="price per tonne")
    def price_t(self, x: Listing) -> str:
        return f"{format_money(x.price, x.currency)} {x.currency}"
