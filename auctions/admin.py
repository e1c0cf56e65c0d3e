"""The operator's desk for auctions. Everything is visible (but the sealed private key, which
never appears anywhere); nothing is edited by hand. Every write is an action or an add form
that calls one service, which appends its ledger entry: approve or suspend bidders, approve
applications, record deposits, confirm payments (deliver the credits), declare defaults, cancel
or fail an auction, and nudge the worker pipeline."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import redirect

from bluecarbon.rows import adopt
from ledger.actors import Actor
from ledger.admin import ReadOnlyAdmin
from ledger.core.quantity import QuantityError, format_money, format_tonnes, parse_money
from ledger.exceptions import DomainError
from ledger.models import Organization, Role

from . import onboarding, records, services
from .models import Application, Auction, Award, Bid, Bidder, BidReceipt, Deposit
from .records import b64
from .tasks import auction_advance_task


def _run(modeladmin: admin.ModelAdmin, request: HttpRequest, fn: Any, **kwargs: Any) -> bool:
    try:
        with transaction.atomic(durable=True):
            fn(actor=Actor.for_user(request.user), **kwargs)
    except DomainError as exc:
        modeladmin.message_user(request, f"{exc.code}: {exc.message}", messages.ERROR)
        return False
    return True


class _Refused(Exception):
    """The service refused an add form (its message is already shown); the admin's
    transaction rolls back and the form is shown again."""


def _refusal_redirects(add_view: Any) -> Any:
    def view(self: admin.ModelAdmin, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return add_view(self, request, *args, **kwargs)
        except _Refused:
            return redirect(request.path)

    return view


# ---- bidders -------------------------------------------------------------------------------


class BidderApproveForm(forms.ModelForm):
    class Meta:
        model = Bidder
        fields = ("organization",)


@admin.action(description="Suspend the selected bidders (ledgered)")
def suspend_bidders(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    done = sum(
        _run(modeladmin, request, services.bidder_suspend, organization=b.organization_id)
        for b in qs
    )
    modeladmin.message_user(request, f"{done} bidder(s) suspended.")


@admin.action(description="Approve the selected bidders again (ledgered)")
def approve_bidders(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    done = sum(
        _run(modeladmin, request, services.bidder_approve, organization=b.organization_id)
        for b in qs
    )
    modeladmin.message_user(request, f"{done} bidder(s) approved.")


@admin.register(Bidder)
class BidderAdmin(admin.ModelAdmin):
    """Add = approve an organization to bid (it must have the bidder role)."""

    list_display = ("organization", "status", "entry_seq")
    list_filter = ("status",)
    list_select_related = ("organization",)
    actions = [approve_bidders, suspend_bidders]
    form = BidderApproveForm
    add_view = _refusal_redirects(admin.ModelAdmin.add_view)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kw: Any) -> Any:
        if db_field.name == "organization":
            # roles is a JSON list (no portable "contains" lookup on SQLite).
            ids = [o.pk for o in Organization.objects.only("roles") if o.has_role(Role.BIDDER)]
            kw["queryset"] = Organization.objects.filter(pk__in=ids).order_by("handle")
        return super().formfield_for_foreignkey(db_field, request, **kw)

    def save_model(self, request: HttpRequest, obj: Bidder, form: Any, change: bool) -> None:
        # Inside the admin's own transaction for the add form.
        try:
            made = services.bidder_approve(
                actor=Actor.for_user(request.user),
                organization=form.cleaned_data["organization"].pk,
            )
        except DomainError as exc:
            self.message_user(request, f"{exc.code}: {exc.message}", messages.ERROR)
            raise _Refused from exc
        adopt(obj, made)


# ---- deposits ------------------------------------------------------------------------------


class DepositRecordForm(forms.ModelForm):
    amount_text = forms.CharField(
        label="Amount", help_text="In the auction's currency, e.g. 30000.00 (a top-up adds)."
    )

    class Meta:
        model = Deposit
        fields = ("auction", "bidder")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        auction = data.get("auction")
        if auction is not None and "amount_text" in data:
            try:
                data["amount"] = parse_money(data["amount_text"], auction.currency, "amount")
            except QuantityError as exc:
                self.add_error("amount_text", exc.message)
        return data

    def validate_unique(self) -> None:
        """A second deposit for the same bidder is a top-up, which the service handles."""


@admin.register(Deposit)
class DepositAdmin(admin.ModelAdmin):
    """Add = record a deposit (or a top-up) through ``deposit_record``."""

    list_display = ("auction", "bidder", "amount_shown", "state", "entry_seq")
    list_filter = ("state",)
    list_select_related = ("auction", "bidder")
    form = DepositRecordForm

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="amount")
    def amount_shown(self, d: Deposit) -> str:
        return f"{format_money(d.amount, d.auction.currency)} {d.auction.currency}"

    def save_model(self, request: HttpRequest, obj: Deposit, form: Any, change: bool) -> None:
        data = form.cleaned_data
        try:  # inside the admin's own transaction for the add form
            made = services.deposit_record(
                actor=Actor.for_user(request.user),
                auction=data["auction"].pk,
                bidder=data["bidder"].pk,
                amount=data["amount"],
            )
        except DomainError as exc:
            self.message_user(request, f"{exc.code}: {exc.message}", messages.ERROR)
            raise _Refused from exc
        adopt(obj, made)

    add_view = _refusal_redirects(admin.ModelAdmin.add_view)


# ---- awards --------------------------------------------------------------------------------


@admin.action(description="Confirm payment received: deliver the credits (ledgered)")
def confirm_payment(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    done = sum(_run(modeladmin, request, services.award_confirm_payment, award=w.pk) for w in qs)
    modeladmin.message_user(request, f"{done} award(s) delivered.")


@admin.action(description="Declare default: credits back to the seller (ledgered)")
def declare_default(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    done = sum(_run(modeladmin, request, services.award_default, award=w.pk) for w in qs)
    modeladmin.message_user(request, f"{done} award(s) declared in default.")


@admin.register(Award)
class AwardAdmin(ReadOnlyAdmin):
    list_display = ("pk", "auction", "bidder", "lots", "quantity_t", "amount", "state")
    list_filter = ("state",)
    list_select_related = ("auction", "bidder")
    actions = [confirm_payment, declare_default]

    @admin.display(description="quantity (t)")
    def quantity_t(self, w: Award) -> str:
        return format_tonnes(w.quantity)

    @admin.display(description="amount due")
    def amount(self, w: Award) -> str:
        return f"{format_money(w.amount_due, w.auction.currency)} {w.auction.currency}"


# ---- auctions and bids ---------------------------------------------------------------------


@admin.action(description="Cancel (lot back to the seller, deposits released; ledgered)")
def cancel_auctions(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    done = sum(
        _run(modeladmin, request, services.auction_cancel, auction=a.pk, reason="by the operator")
        for a in qs
    )
    modeladmin.message_user(request, f"{done} auction(s) cancelled.")


@admin.action(description="Mark failed (a closed auction that cannot be cleared; ledgered)")
def fail_auctions(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    done = 0
    for a in qs:
        with transaction.atomic(durable=True):
            done += services.auction_fail(auction=a.pk, reason="marked failed by the operator")
    modeladmin.message_user(request, f"{done} auction(s) marked failed.")


@admin.action(description="Advance now (enqueue whatever step is due)")
def advance_auctions(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    for a in qs:
        auction_advance_task.delay(a.pk)
    modeladmin.message_user(request, f"{qs.count()} auction(s) nudged.")


# Everything about an auction but its sealed private key, which no screen shows: its state,
# the rules its create entry recorded (records.RULE_FIELDS, the one list of them), and what
# bidding and clearing wrote.
_AUCTION_FIELDS = (
    "state",
    "state_reason",
    *records.RULE_FIELDS,
    *dict.fromkeys(records.ENGLISH_RULE_FIELDS + records.CLOCK_RULE_FIELDS),
    "hold",
    "public_key_b64",
    "book_size",
    "book_root_hex",
    "clearing_price",
    "result_sha256",
    "published_private_key",
    "result",
    "created_seq",
    "state_seq",
    "notified_at",
)


@admin.register(Auction)
class AuctionAdmin(ReadOnlyAdmin):
    list_display = ("pk", "title", "format", "state", "quantity_t", "closes_at", "clearing")
    list_filter = ("state", "format")
    search_fields = ("title",)
    fields = _AUCTION_FIELDS
    readonly_fields = _AUCTION_FIELDS
    actions = [cancel_auctions, fail_auctions, advance_auctions]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("private_key_sealed")

    @admin.display(description="quantity (t)")
    def quantity_t(self, a: Auction) -> str:
        return format_tonnes(a.quantity)

    @admin.display(description="clearing price")
    def clearing(self, a: Auction) -> str:
        return "" if a.clearing_price is None else format_money(a.clearing_price, a.currency)

    @admin.display(description="public key (base64)")
    def public_key_b64(self, a: Auction) -> str:
        return b64(a.public_key) or ""

    @admin.display(description="book root")
    def book_root_hex(self, a: Auction) -> str:
        return "" if a.book_root is None else bytes(a.book_root).hex()

    @admin.display(description="private key (published after close)")
    def published_private_key(self, a: Auction) -> str:
        return b64(a.private_key) or "not published: bidding has not closed"


@admin.register(Bid)
class BidAdmin(ReadOnlyAdmin):
    list_display = ("pk", "auction", "bidder", "version", "status", "reason", "awarded_lots")
    list_filter = ("status",)
    list_select_related = ("auction", "bidder")
    fields = (
        "auction",
        "bidder",
        "account",
        "version",
        "status",
        "reason",
        "commitment",
        "entry_seq",
        "awarded_lots",
    )
    readonly_fields = fields


@admin.register(BidReceipt)
class BidReceiptAdmin(ReadOnlyAdmin):
    list_display = ("pk", "bid", "version", "action", "entry_seq")
    list_select_related = ("bid",)
    fields = ("bid", "version", "action", "commitment", "entry_seq", "time", "note")
    readonly_fields = fields

    @admin.display(description="receipt (signed note)")
    def note(self, r: BidReceipt) -> str:
        return services.receipt_note(r, r.bid.auction_id, r.bid.bidder_id)


# ---- applications (onboarding.py; exchanges decide by API, operators may here) ---------------


@admin.action(description="Approve the selected applications (ledgered)")
def approve_applications(modeladmin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    done = sum(
        _run(
            modeladmin,
            request,
            onboarding.application_approve,
            auction=x.auction_id,
            bidder=x.bidder_id,
        )
        for x in qs
    )
    modeladmin.message_user(request, f"{done} application(s) approved.")


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    """Applications to bid; refusing one needs a reason (the API's ``…/refuse``)."""

    list_display = ("pk", "auction", "bidder", "state", "reason", "entry_seq")
    list_filter = ("state",)
    list_select_related = ("auction", "bidder")
    fields = ("auction", "bidder", "state", "reason", "entry_seq")
    readonly_fields = fields
    actions = [approve_applications]
