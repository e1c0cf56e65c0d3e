"""The listing board's pages (docs/listings.md): the public board, a listing's page (a take
form for a signed-in buyer, a withdraw button for the seller) and a buyer's purchases. Plain
forms that work without JavaScript; each write calls one service in one transaction."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from bluecarbon.contention import durably
from ledger.actors import Actor
from ledger.exceptions import DomainError
from listings import selectors, services
from listings.models import Listing

from . import selectors as portal_selectors
from .context import viewer
from .views import organization_required


class TakeForm(forms.Form):
    lots = forms.IntegerField(label=gettext_lazy("Lots"), min_value=1, max_value=10**9)
    up_to = forms.BooleanField(
        label=gettext_lazy("Take what remains if fewer lots are left"), required=False
    )
    account = forms.TypedChoiceField(label=gettext_lazy("Deliver to"), coerce=int)

    def __init__(self, *args: Any, accounts: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["account"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [(a.pk, f"{a.name} (#{a.pk})") for a in accounts]


def board(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/listings.html", {"groups": selectors.listings_board()})


def _listing(pk: int) -> Listing:
    x = selectors.listing_get(pk)
    if x is None:
        raise Http404
    return x


def _page(request: HttpRequest, x: Listing, form: TakeForm | None = None) -> HttpResponse:
    who = viewer(request)
    org = who["organization"]
    accounts = portal_selectors.holding_accounts(org)
    takes = (
        who["is_bidder"]
        and org is not None
        and org.pk != x.seller_id
        and x.state == Listing.State.OPEN
        and bool(accounts)
    )
    return render(
        request,
        "portal/listing.html",
        {
            "x": x,
            "can_take": takes,
            "form": form or (TakeForm(accounts=accounts) if takes else None),
            "can_withdraw": org is not None
            and (org.pk == x.seller_id or who["is_operator"])
            and x.state == Listing.State.OPEN,
            "bought": selectors.bought_lots(x, org),
            "mine": list(selectors.purchases_of(org).filter(listing=x)) if org else [],
        },
        status=400 if form is not None and form.errors else 200,
    )


def listing(request: HttpRequest, pk: int) -> HttpResponse:
    return _page(request, _listing(pk))


@organization_required
@require_POST
def take(request: HttpRequest, pk: int) -> HttpResponse:
    x = _listing(pk)
    org = viewer(request)["organization"]
    form = TakeForm(request.POST, accounts=portal_selectors.holding_accounts(org))
    if not form.is_valid():
        return _page(request, x, form)
    try:
        p = durably(
            lambda: services.listing_take(
                actor=Actor.for_user(request.user),
                listing=x.pk,
                lots=form.cleaned_data["lots"],
                up_to=form.cleaned_data["up_to"],
                account=form.cleaned_data["account"],
            )
        )
    except DomainError as exc:
        form.add_error("lots", exc.message)
        return _page(request, _listing(pk), form)
    messages.success(
        request,
        _(
            "You took %(lots)s lots (purchase %(p)s). Pay the amount due; the operator "
            "delivers once it arrives."
        )
        % {"lots": p.lots, "p": p.pk},
    )
    return redirect("portal:purchases")


@organization_required
@require_POST
def withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        durably(lambda: services.listing_withdraw(actor=Actor.for_user(request.user), listing=pk))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Listing %(pk)s withdrawn: the unsold lots are back in your account.") % {"pk": pk},
        )
    return redirect("portal:listing", pk=pk)


@organization_required
def purchases(request: HttpRequest) -> HttpResponse:
    org = viewer(request)["organization"]
    return render(
        request, "portal/purchases.html", {"purchases": list(selectors.purchases_of(org)[:200])}
    )
