"""The live room of an English auction (issue 16, part 4).

The page is whole without JavaScript: the standing price, the lowest valid bid, the end, the
bids as a table and a chart, the bidder's position and a plain bid form whose refusals come
back translated on the price field. ``room.js`` then keeps it live by polling ``room.json``
(every 1.5 s while bidding is open), which carries the numbers, the server's clock (so that a
countdown on a skewed clock is right) and the new bids as rows and a chart already rendered
here: one place formats and translates them.

A portal view rather than the public API: the API's anonymous throttle (600/min per address)
is shared by everyone behind one address, and the room would need two of its calls per poll.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from auctions import english, onboarding
from auctions.exceptions import AuctionErrorCode as Code
from auctions.exceptions import CommonCode
from auctions.models import Auction
from ledger.actors import Actor
from ledger.core.entry import format_time
from ledger.core.quantity import QuantityError, format_money, parse_money
from ledger.exceptions import DomainError

from . import charts, selectors, views
from .context import viewer
from .templatetags.portal_format import group_digits

State = Auction.State
OVER = (State.CLOSING, State.CLEARED, State.SETTLED, State.CANCELLED, State.FAILED)
POLL_MS = 1500


class RaiseForm(forms.Form):
    price = forms.CharField(
        label=gettext_lazy("Your bid (per tonne)"),
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    account = forms.TypedChoiceField(
        label=gettext_lazy("Deliver the lot to"), coerce=int, required=False, empty_value=None
    )

    def __init__(self, *args: Any, auction: Auction, accounts: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auction = auction
        field = self.fields["account"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [(acc.pk, f"{acc.name} (#{acc.pk})") for acc in accounts]
        if not accounts:  # its paddle's account is fixed by its first bid
            del self.fields["account"]

    def clean_price(self) -> int:
        try:
            return parse_money(self.cleaned_data["price"], self.auction.currency, "price")
        except QuantityError as exc:
            if exc.code == "too_precise":
                raise forms.ValidationError(
                    _("At most two decimals, e.g. 106.50."), code=exc.code
                ) from None
            raise forms.ValidationError(
                _("A price per tonne as a decimal number, e.g. 106.00."), code=exc.code
            ) from None


def _money(minor: int | None, a: Auction) -> str:
    return "" if minor is None else group_digits(format_money(minor, a.currency))


def refusal(exc: DomainError, a: Auction) -> str:
    """A refused bid's reason in the reader's language (the service's message is for logs and
    the API; the code and detail say the same)."""
    d, cur = exc.detail, a.currency
    code = exc.code
    if code == Code.BID_TOO_LOW and "minimum" in d:
        return _("Too low: the lowest valid bid now is %(minimum)s %(cur)s/t.") % {
            "minimum": _money(d["minimum"], a),
            "cur": cur,
        }
    if code == Code.PRICE_OFF_TICK:
        return _("The price must be a multiple of the tick, %(tick)s %(cur)s/t.") % {
            "tick": _money(a.tick, a),
            "cur": cur,
        }
    if code == Code.DEPOSIT_MISSING:
        return _(
            "This auction needs a deposit of %(required)s %(cur)s before you bid; "
            "%(recorded)s %(cur)s is recorded."
        ) % {
            "required": _money(d.get("required", a.deposit_required), a),
            "recorded": _money(d.get("recorded", 0), a),
            "cur": cur,
        }
    known = {
        Code.ALREADY_LEADING: _("Your bid is the standing bid already: wait to be outbid."),
        Code.CLOSED: _("Bidding has closed."),
        Code.NOT_OPEN: _("This auction is not open for bids yet."),
        Code.NOT_APPROVED: _("Your organization is not admitted to bid in this auction."),
        Code.OWN_AUCTION: _("A seller cannot bid in its own auction."),
        Code.PADDLE_ACCOUNT: _("The account the lot goes to was fixed by your first bid."),
        Code.WRONG_FORMAT: _("This auction does not take open bids."),
        CommonCode.PERMISSION_DENIED: _("Your organization may not bid here."),
        CommonCode.SERVICE_UNAVAILABLE: _("The registry is busy and took nothing: bid again."),
    }
    return str(known.get(code, _("The registry refused the bid (%(code)s).") % {"code": code}))


def phase(a: Auction, now: dt.datetime) -> str:
    """Where bidding stands: scheduled, free (before closes_at), timed (each bid restarts the
    countdown), ending (the end has passed and the close is being recorded) or over."""
    if a.state == State.SCHEDULED:
        return "scheduled"
    if a.state != State.OPEN:
        return "over"
    if now >= a.bidding_ends_at:
        return "ending"
    return "free" if now < a.closes_at else "timed"


def room(a: Auction, org: Any, *, after: int = 0) -> dict[str, Any]:
    """What the room shows, the page and the JSON alike."""
    now = timezone.now()
    r = english.rules(a)
    count, last_seq = selectors.room_count(a)
    p = phase(a, now)
    winner = selectors.room_winner(a) if a.state in OVER else None
    hammer = a.standing_price if a.state in OVER else None
    return {
        "a": a,
        "now": now,
        "phase": p,
        "minimum": r.minimum(a.standing_price) if p in ("scheduled", "free", "timed") else None,
        "step": r.step_at(a.standing_price) if a.standing_price is not None else None,
        "increments": [(low, step) for low, step in r.increments],
        "count": count,
        "last_seq": last_seq,
        "new_bids": selectors.room_bids(a, after=after) if last_seq > after else [],
        "position": selectors.room_position(a, org),
        "winner": winner,
        "hammer": hammer,
        "value": r.value(hammer) if hammer is not None else None,
        "poll_ms": POLL_MS,
    }


def _chart(a: Auction) -> Any:
    return charts.price_history_svg(a, selectors.room_history(a))


def page(
    request: HttpRequest, a: Auction, form: RaiseForm | None = None, status: int = 200
) -> HttpResponse:
    who = viewer(request)
    org = who["organization"]
    context = room(a, org)
    application = selectors.my_application(a, org)
    admitted = org is not None and onboarding.admitted(a, org)
    seller = org is not None and org.pk == a.seller_id
    position = context["position"]
    can_bid = who["is_bidder"] and admitted and not seller and a.state == State.OPEN
    accounts = selectors.holding_accounts(org) if position and not position.paddle else []
    context.update(
        {
            "bids": context["new_bids"],
            "chart": _chart(a) if context["count"] else None,
            "application": application,
            "deposit": selectors.my_deposit(a, org),
            "admitted": admitted,
            "is_seller": seller,
            "can_apply": who["is_bidder"]
            and a.state in (State.SCHEDULED, State.OPEN)
            and not seller
            and (application is None or application.state in ("refused", "withdrawn")),
            "can_bid": can_bid,
            "form": form or (RaiseForm(auction=a, accounts=accounts) if can_bid else None),
        }
    )
    return render(request, "portal/auction_english.html", context, status=status)


def auction(request: HttpRequest, pk: int) -> HttpResponse:
    """``/auctions/<id>/``: the room for an English auction, the clock room for a clock
    auction (clock_room.py), the sealed formats' page else."""
    a = views._auction(pk)
    if a.is_clock:
        from . import clock_room  # it builds on this module

        return clock_room.page(request, a)
    if not a.is_english:
        return views.auction(request, pk)
    return page(request, a)


def _english(pk: int) -> Auction:
    a = views._auction(pk)
    if not a.is_english:
        from django.http import Http404

        raise Http404
    return a


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@views.organization_required
@require_POST
def bid(request: HttpRequest, pk: int) -> HttpResponse:
    """Place a bid from the room's bid box: a plain form (answered with the room, the refusal
    on the price field, or a redirect to it), or the same form sent by room.js asking for
    JSON (answered with the message alone)."""
    a = _english(pk)
    org = viewer(request)["organization"]
    position = selectors.room_position(a, org)
    accounts = selectors.holding_accounts(org) if position and not position.paddle else []
    form = RaiseForm(request.POST, auction=a, accounts=accounts)
    error = None
    if form.is_valid():
        try:
            with transaction.atomic(durable=True):
                r = english.english_bid(
                    actor=Actor.for_user(request.user),
                    auction=a.pk,
                    price=form.cleaned_data["price"],
                    account=form.cleaned_data.get("account"),
                )
        except DomainError as exc:
            error = (refusal(exc, a), str(exc.code), exc.status_code)
            form.add_error("price", error[0])
    else:
        first = next(iter(form.errors.values()))
        error = (str(first[0]), "invalid", 400)
    if error is not None:
        if _wants_json(request):
            return JsonResponse({"code": error[1], "message": error[0]}, status=error[2])
        return page(request, _english(pk), form, status=400)
    done = _("Your bid of %(price)s %(cur)s/t stands (ledger entry %(seq)s).") % {
        "price": _money(r.price, a),
        "cur": a.currency,
        "seq": r.entry_seq,
    }
    if _wants_json(request):
        return JsonResponse({"message": done, "seq": r.entry_seq}, status=201)
    messages.success(request, done)
    return redirect("portal:auction", pk=pk)


def _after(request: HttpRequest) -> int:
    raw = request.GET.get("after", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else 0


def state(request: HttpRequest, pk: int) -> JsonResponse:
    """``room.json?after=<entry_seq>``: the room now, and the bids since ``after``."""
    a = _english(pk)
    org = viewer(request)["organization"]
    after = _after(request)
    c = room(a, org, after=after)
    new = c["new_bids"]
    position = c["position"]
    over = a.state in OVER
    body: dict[str, Any] = {
        "state": a.state,
        "state_label": _(a.get_state_display()),
        "phase": c["phase"],
        "server_time": format_time(c["now"]),
        "ends_at": format_time(a.bidding_ends_at),
        "standing": a.standing_price,
        "standing_text": _money(a.standing_price, a),
        "minimum": c["minimum"],
        "minimum_text": _money(c["minimum"], a),
        "step": c["step"],
        "bids": c["count"],
        "last_seq": c["last_seq"],
        "rows": render_to_string("portal/_room_rows.html", {"a": a, "bids": new}).strip(),
        "chart": str(_chart(a)) if new else None,
        "phase_text": render_to_string("portal/_room_phase.html", c).strip(),
        "position": (
            None
            if position is None
            else {
                "code": position.position,
                "paddle": position.paddle,
                "html": render_to_string("portal/_room_position.html", c).strip(),
            }
        ),
        "result": render_to_string("portal/_room_result.html", c).strip() if over else None,
        # Nothing more will change on this page once the result (or the cancellation) is out.
        "final": a.state in (State.CLEARED, State.SETTLED, State.CANCELLED, State.FAILED),
    }
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response
