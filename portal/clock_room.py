"""The room of an ascending clock auction (issue 16, part 4; docs/auctions-ascending.md §6).

As the English room (room.py), and built on the same ``live_room.LiveRoom``: whole without
JavaScript (the round, its price and end, the rounds so far as a table and a chart, the
bidder's demands and a plain bid form whose refusals come back translated on the field they
concern), kept live by ``clock_room.js`` polling ``clock.json`` every 1.5 s while a round runs.
The answer carries the server's clock (the countdown to the round's end is right on a skewed
device) and, when a round opened or closed since the ``after`` sequence the page holds, the
rounds' rows and chart rendered here, so one place formats and translates.

A bid names the round it was made for (the form's ``round``): a round that closed while the
bidder typed must not receive lots meant for the one before, so the bid is refused unless that
round is still the current one, checked under the bid gate the round's close waits for. The
template writes the round field itself, always the current round: a form refused for a round
that has closed is shown again for the new one.
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

from auctions import clock, locks
from auctions.core import clock as clock_rules
from auctions.exceptions import AuctionErrorCode as Code
from auctions.models import Auction, ClockBid, ClockRound
from bluecarbon.contention import durably
from ledger.actors import Actor
from ledger.core.entry import format_time
from ledger.exceptions import DomainError

from . import charts, selectors, views
from .live_room import (
    OVER,
    POLL_MS,
    BidForm,
    LiveRoom,
    Refusal,
    Refused,
    money,
    refusal_message,
)
from .templatetags.portal_format import currency_unit
from .throttle import poll_limited

State = Auction.State
MAX_LOTS = 10**12  # the API's bound on lots


class RoundChanged(Exception):
    """The bid was made for a round that is no longer the current one."""


class ClockBidForm(BidForm):
    round = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    lots = forms.CharField(
        label=gettext_lazy("Lots you demand at this round's price"),
        max_length=14,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    exit_price = forms.CharField(
        label=gettext_lazy("Exit price (optional, per tonne)"),
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    account = forms.TypedChoiceField(
        label=gettext_lazy("Deliver the lots to"), coerce=int, required=False, empty_value=None
    )

    def clean_lots(self) -> int:
        raw = self.cleaned_data["lots"].strip()
        if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_LOTS:
            raise forms.ValidationError(
                _("Lots are a whole number, 0 or more."), code=clock_rules.LOTS
            )
        return int(raw)

    def clean_exit_price(self) -> int | None:
        raw = self.cleaned_data["exit_price"].strip()
        return self.parse_price(raw, "exit_price") if raw else None


def _previous_price(rounds: list[ClockRound]) -> int | None:
    return rounds[-2].price if len(rounds) > 1 else None


def refusal(exc: DomainError, a: Auction, rounds: list[ClockRound]) -> tuple[str, str]:
    """A refused round bid's reason in the reader's language, and the field it concerns (the
    service's message is for logs and the API; its code and ``detail.rule`` say the same)."""
    if exc.code != Code.ROUND_BID_REFUSED:
        if exc.code == Code.CLOSED:
            return _("This round has closed: bid again in the next round, if there is one."), "lots"
        if exc.code == Code.WRONG_FORMAT:
            return _("This auction does not take round bids."), "lots"
        return refusal_message(exc, a), "lots"
    rule = exc.detail.get("rule")
    previous = exc.detail.get("previous_lots")
    current = rounds[-1] if rounds else None
    if rule == clock_rules.ACTIVITY:
        return (
            _(
                "Demand may not rise as the price rises: at most %(n)s lots, your demand in "
                "the round before."
            )
            % {"n": previous or 0},
            "lots",
        )
    if rule == clock_rules.ELIGIBILITY:
        return (
            _("In the first round you may demand at most %(n)s lots (your eligibility).")
            % {"n": clock.rules(a).eligible()},
            "lots",
        )
    if rule == clock_rules.EXIT_PRICE:
        low = _previous_price(rounds)
        if current is None or low is None:
            return _("There is no exit price in the first round."), "exit_price"
        return (
            _(
                "An exit price lies strictly between %(low)s and %(high)s %(cur)s/t, on the "
                "tick of %(tick)s."
            )
            % {
                "low": money(low, a),
                "high": money(current.price, a),
                "cur": currency_unit(a.currency),
                "tick": money(a.tick, a),
            },
            "exit_price",
        )
    if rule == clock_rules.NO_REDUCTION:
        return (
            _(
                "An exit price is where your demand drops: bid fewer than your %(n)s lots of "
                "the round before, or leave the exit price empty."
            )
            % {"n": previous or 0},
            "lots",
        )
    return _("Lots are a whole number, 0 or more."), "lots"


def phase(a: Auction, current: ClockRound | None, now: dt.datetime) -> str:
    """``scheduled``, ``running`` (a round takes bids), ``ending`` (its end passed, the close
    is being recorded) or ``over``."""
    if a.state == State.SCHEDULED:
        return "scheduled"
    if a.state != State.OPEN or current is None:
        return "over"
    if current.close_seq is not None or now >= current.closes_at:
        return "ending"
    return "running"


def _chart(a: Auction, closed: list[ClockRound]) -> Any:
    if not closed:
        return None
    return charts.clock_rounds_svg(a, [(x.number, x.price, x.aggregate or 0) for x in closed])


def _place(actor: Actor, a: Auction, data: dict[str, Any]) -> ClockBid:
    def once() -> ClockBid:
        # The bid gate, shared, as clock_bid takes it: a round's close waits for it, so the
        # round read here is still the current one when clock_bid reads it again.
        locks.auction_share_lock(a.pk)
        current = clock.current_round(a)
        if current is None or current.number != data["round"]:
            raise RoundChanged
        return clock.clock_bid(
            actor=actor,
            auction=a.pk,
            lots=data["lots"],
            exit_price=data.get("exit_price"),
            account=data.get("account"),
        )

    return durably(once)


def _changed(a: Auction) -> str:
    current = clock.current_round(a)
    if current is None or current.close_seq is not None:
        return _("This round has closed: bid again in the next round, if there is one.")
    return _(
        "The round changed while you were bidding: round %(n)s is open at %(price)s %(cur)s/t. "
        "Nothing was sent; check your demand and bid again."
    ) % {"n": current.number, "price": money(current.price, a), "cur": currency_unit(a.currency)}


def _round_news(a: Auction, current: ClockRound | None, last: ClockRound | None) -> str:
    if a.state in OVER:
        return _("The auction has ended.")
    if current is None:
        return ""
    news = _("Round %(n)s is open at %(price)s %(cur)s/t.") % {
        "n": current.number,
        "price": money(current.price, a),
        "cur": currency_unit(a.currency),
    }
    if last is not None:
        news += " " + _(
            "Round %(n)s closed: aggregate demand %(agg)s lots, %(active)s active bidders."
        ) % {"n": last.number, "agg": last.aggregate, "active": last.active}
    return news


class ClockRoom(LiveRoom):
    template = "portal/auction_clock.html"
    partials = "clock"
    form_class = ClockBidForm
    fields = ("lots", "exit_price")

    def is_room_of(self, a: Auction) -> bool:
        return a.is_clock

    def context(self, a: Auction, org: Any, *, after: int = 0) -> dict[str, Any]:
        now = timezone.now()
        r = clock.rules(a)
        rounds = selectors.clock_rounds(a)
        current = rounds[-1] if rounds else None
        closed = [x for x in rounds if x.close_seq is not None]
        p = phase(a, current, now)
        over = a.state in OVER
        return {
            "a": a,
            "now": now,
            "phase": p,
            "rounds": rounds,
            "rounds_desc": list(reversed(rounds)),
            "closed": closed,
            "last_closed": closed[-1] if closed else None,
            "current": current,
            "previous_price": _previous_price(rounds),
            "next_price": r.next_price(current.price) if current is not None else None,
            "step": r.next_price(current.price) - current.price if current is not None else None,
            "increments": [(low, step) for low, step in r.increments],
            "eligible": r.eligible(),
            "version": selectors.clock_version(rounds),
            "position": selectors.clock_position(a, org, rounds, r.eligible()),
            "result": selectors.clock_result(a) if over else None,
            "org_id": org.pk if org is not None else None,
            "poll_ms": POLL_MS,
        }

    def position(self, a: Auction, org: Any) -> Any:
        rounds = selectors.clock_rounds(a)
        return selectors.clock_position(a, org, rounds, clock.rules(a).eligible())

    def takes_bids(self, a: Auction, c: dict[str, Any]) -> bool:
        return super().takes_bids(a, c) and c["current"] is not None

    def page_context(self, a: Auction, c: dict[str, Any]) -> dict[str, Any]:
        return {"chart": _chart(a, c["closed"])}

    def place(self, request: HttpRequest, a: Auction, data: dict[str, Any]) -> tuple[str, int]:
        try:
            b = _place(Actor.for_user(request.user), a, data)
        except RoundChanged:
            raise Refused(Refusal(_changed(a), "lots", "round_changed", 409)) from None
        if b.exit_price is None:
            done = _("Your demand in round %(n)s: %(lots)s lots at %(price)s %(cur)s/t.") % {
                "n": b.round.number,
                "lots": b.lots,
                "price": money(b.round.price, a),
                "cur": currency_unit(a.currency),
            }
        else:
            done = _(
                "Your demand in round %(n)s: %(lots)s lots from %(exit)s %(cur)s/t on, your "
                "demand of the round before below it."
            ) % {
                "n": b.round.number,
                "lots": b.lots,
                "exit": money(b.exit_price, a),
                "cur": currency_unit(a.currency),
            }
        done += " " + _("Ledger entry %(seq)s; hidden from other bidders until the end.") % {
            "seq": b.entry_seq
        }
        return done, b.entry_seq

    def refusal(self, exc: DomainError, a: Auction) -> Refusal:
        message, field = refusal(exc, a, selectors.clock_rounds(a))
        rule = exc.detail.get("rule") if exc.code == Code.ROUND_BID_REFUSED else None
        return Refusal(message, field, str(exc.code), exc.status_code, rule)

    def answer(self, r: Refusal) -> dict[str, Any]:
        body = {**super().answer(r), "field": r.field}
        if r.code == Code.ROUND_BID_REFUSED:
            body["rule"] = r.rule
        return body

    def poll_fields(self, a: Auction, c: dict[str, Any], after: int) -> dict[str, Any]:
        current: ClockRound | None = c["current"]
        changed = c["version"] > after
        return {
            "round": current.number if current else None,
            "price": current.price if current else None,
            "price_text": money(current.price, a) if current else "",
            "previous_price": c["previous_price"],
            "closes_at": format_time(current.closes_at) if current else None,
            "next_price_text": money(c["next_price"], a),
            "step_text": money(c["step"], a),
            "version": c["version"],
            "rows": render_to_string("portal/_clock_rows.html", c).strip() if changed else None,
            "chart": (str(_chart(a, c["closed"]) or "") if changed else None),
            # What a screen reader hears when the round changes (the page compares round
            # numbers).
            "announce": _round_news(a, current, c["last_closed"]),
        }

    def position_fields(self, position: Any) -> dict[str, Any]:
        return {"code": position.code, "most": position.most, "previous": position.previous}


ROOM = ClockRoom()


@views.organization_required
@require_POST
def bid(request: HttpRequest, pk: int) -> HttpResponse:
    """``/auctions/<id>/round-bid``: a round bid from the room's form, its refusal on its field
    (a round that changed meanwhile: ``round_changed``, 409 in JSON)."""
    return ROOM.bid(request, pk)


@poll_limited
def state(request: HttpRequest, pk: int) -> JsonResponse:
    """``clock.json?after=<seq>``: the room now; the rounds' rows and chart if a round opened
    or closed after ``after``."""
    return ROOM.state(request, pk)
