"""The live room of an English auction (issue 16, part 4).

The page is whole without JavaScript: the standing price, the lowest valid bid, the end, the
bids as a table and a chart, the bidder's position and a plain bid form whose refusals come
back translated on the price field. ``room.js`` then keeps it live by polling ``room.json``
(every 1.5 s while bidding is open), which carries the numbers, the server's clock (so that a
countdown on a skewed clock is right) and the new bids as rows and a chart already rendered
here: one place formats and translates them. What it shares with the clock room (the page's,
the bid's and the poll's skeletons) is ``live_room.LiveRoom``.

A portal view rather than the public API: the API's anonymous throttle (600/min per address)
is shared by everyone behind one address, and the room would need two of its calls per poll.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from auctions import english
from auctions.exceptions import AuctionErrorCode as Code
from auctions.models import Auction
from bluecarbon.contention import durably
from ledger.actors import Actor
from ledger.core.entry import format_time
from ledger.exceptions import DomainError

from . import charts, clock_room, selectors, views
from .live_room import OVER, POLL_MS, BidForm, LiveRoom, Refusal, money, refusal_message
from .templatetags.portal_format import currency_unit
from .throttle import poll_limited

State = Auction.State


class RaiseForm(BidForm):
    price = forms.CharField(
        label=gettext_lazy("Your bid (per tonne)"),
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    account = forms.TypedChoiceField(
        label=gettext_lazy("Deliver the lot to"), coerce=int, required=False, empty_value=None
    )

    def clean_price(self) -> int:
        return self.parse_price(self.cleaned_data["price"], "price")


def refusal(exc: DomainError, a: Auction) -> str:
    """A refused bid's reason in the reader's language (the service's message is for logs and
    the API; the code and detail say the same)."""
    d, cur = exc.detail, currency_unit(a.currency)
    code = exc.code
    if code == Code.BID_TOO_LOW and "minimum" in d:
        return _("Too low: the lowest valid bid now is %(minimum)s %(cur)s/t.") % {
            "minimum": money(d["minimum"], a),
            "cur": cur,
        }
    if code == Code.PRICE_OFF_TICK:
        return _("The price must be a multiple of the tick, %(tick)s %(cur)s/t.") % {
            "tick": money(a.tick, a),
            "cur": cur,
        }
    known: dict[str, str] = {
        Code.ALREADY_LEADING: _("Your bid is the standing bid already: wait to be outbid."),
        Code.CLOSED: _("Bidding has closed."),
        Code.WRONG_FORMAT: _("This auction does not take open bids."),
    }
    return str(known[code]) if code in known else refusal_message(exc, a)


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


def _chart(a: Auction) -> Any:
    return charts.price_history_svg(a, selectors.room_history(a))


class EnglishRoom(LiveRoom):
    template = "portal/auction_english.html"
    partials = "room"
    form_class = RaiseForm
    fields = ("price",)

    def is_room_of(self, a: Auction) -> bool:
        return a.is_english

    def context(self, a: Auction, org: Any, *, after: int = 0) -> dict[str, Any]:
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

    def position(self, a: Auction, org: Any) -> Any:
        return selectors.room_position(a, org)

    def page_context(self, a: Auction, c: dict[str, Any]) -> dict[str, Any]:
        return {"bids": c["new_bids"], "chart": _chart(a) if c["count"] else None}

    def place(self, request: HttpRequest, a: Auction, data: dict[str, Any]) -> tuple[str, int]:
        r = durably(
            lambda: english.english_bid(
                actor=Actor.for_user(request.user),
                auction=a.pk,
                price=data["price"],
                account=data.get("account"),
            )
        )
        done = _("Your bid of %(price)s %(cur)s/t stands (ledger entry %(seq)s).") % {
            "price": money(r.price, a),
            "cur": currency_unit(a.currency),
            "seq": r.entry_seq,
        }
        return done, r.entry_seq

    def refusal(self, exc: DomainError, a: Auction) -> Refusal:
        return Refusal(refusal(exc, a), "price", str(exc.code), exc.status_code)

    def poll_fields(self, a: Auction, c: dict[str, Any], after: int) -> dict[str, Any]:
        new = c["new_bids"]
        return {
            "ends_at": format_time(a.bidding_ends_at),
            "standing": a.standing_price,
            "standing_text": money(a.standing_price, a),
            "minimum": c["minimum"],
            "minimum_text": money(c["minimum"], a),
            "step": c["step"],
            "bids": c["count"],
            "last_seq": c["last_seq"],
            "rows": render_to_string("portal/_room_rows.html", {"a": a, "bids": new}).strip(),
            "chart": str(_chart(a)) if new else None,
        }

    def position_fields(self, position: Any) -> dict[str, Any]:
        return {"code": position.position, "paddle": position.paddle}


ROOM = EnglishRoom()


def auction(request: HttpRequest, pk: int) -> HttpResponse:
    """``/auctions/<id>/``: the room for an English auction, the clock room for a clock
    auction (clock_room.py), the sealed formats' page else."""
    a = views._auction(pk)
    if a.is_clock:
        return clock_room.ROOM.page(request, a)
    if not a.is_english:
        return views.auction(request, pk)
    return ROOM.page(request, a)


@views.organization_required
@require_POST
def bid(request: HttpRequest, pk: int) -> HttpResponse:
    """``/auctions/<id>/bid``: a bid from the room's bid box, its refusal on the price field."""
    return ROOM.bid(request, pk)


@poll_limited
def state(request: HttpRequest, pk: int) -> JsonResponse:
    """``room.json?after=<entry_seq>``: the room now, and the bids since ``after``."""
    return ROOM.state(request, pk)
