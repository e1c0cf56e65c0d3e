"""The room of an ascending clock auction (issue 16, part 4; docs/auctions-ascending.md §6).

As the English room (room.py): whole without JavaScript (the round, its price and end, the
rounds so far as a table and a chart, the bidder's demands and a plain bid form whose refusals
come back translated on the field they concern), kept live by ``clock_room.js`` polling
``clock.json`` every 1.5 s while a round runs. The answer carries the server's clock (the
countdown to the round's end is right on a skewed device) and, when a round opened or closed
since the ``after`` sequence the page holds, the rounds' rows and chart rendered here, so one
place formats and translates.

A bid names the round it was made for (the form's ``round``): a round that closed while the
bidder typed must not receive lots meant for the one before, so the bid is refused unless that
round is still the current one, checked under the bid gate the round's close waits for.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from auctions import clock, locks, onboarding
from auctions.core import clock as clock_rules
from auctions.exceptions import AuctionErrorCode as Code
from auctions.models import Auction, ClockBid, ClockRound
from ledger.actors import Actor
from ledger.core.entry import format_time
from ledger.core.quantity import QuantityError, parse_money
from ledger.exceptions import DomainError

from . import charts, room, selectors, views
from .context import viewer

State = Auction.State
OVER = room.OVER
POLL_MS = room.POLL_MS
MAX_LOTS = 10**12  # the API's bound on lots


class RoundChanged(Exception):
    """The bid was made for a round that is no longer the current one."""


class ClockBidForm(forms.Form):
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

    def __init__(self, *args: Any, auction: Auction, accounts: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auction = auction
        field = self.fields["account"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [(acc.pk, f"{acc.name} (#{acc.pk})") for acc in accounts]
        if not accounts:  # its paddle's account is fixed by its first bid
            del self.fields["account"]

    def clean_lots(self) -> int:
        raw = self.cleaned_data["lots"].strip()
        if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_LOTS:
            raise forms.ValidationError(
                _("Lots are a whole number, 0 or more."), code=clock_rules.LOTS
            )
        return int(raw)

    def clean_exit_price(self) -> int | None:
        raw = self.cleaned_data["exit_price"].strip()
        if not raw:
            return None
        try:
            return parse_money(raw, self.auction.currency, "exit_price")
        except QuantityError as exc:
            if exc.code == "too_precise":
                raise forms.ValidationError(
                    _("At most two decimals, e.g. 106.50."), code=exc.code
                ) from None
            raise forms.ValidationError(
                _("A price per tonne as a decimal number, e.g. 106.00."), code=exc.code
            ) from None


def _money(minor: int | None, a: Auction) -> str:
    return room._money(minor, a)


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
        return room.refusal(exc, a), "lots"
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
                "low": _money(low, a),
                "high": _money(current.price, a),
                "cur": a.currency,
                "tick": _money(a.tick, a),
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


def room_context(a: Auction, org: Any) -> dict[str, Any]:
    """What the room shows, the page and the JSON alike."""
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


def _chart(a: Auction, closed: list[ClockRound]) -> Any:
    if not closed:
        return None
    return charts.clock_rounds_svg(a, [(x.number, x.price, x.aggregate or 0) for x in closed])


def page(
    request: HttpRequest, a: Auction, form: ClockBidForm | None = None, status: int = 200
) -> HttpResponse:
    who = viewer(request)
    org = who["organization"]
    context = room_context(a, org)
    application = selectors.my_application(a, org)
    admitted = org is not None and onboarding.admitted(a, org)
    seller = org is not None and org.pk == a.seller_id
    position = context["position"]
    can_bid = (
        who["is_bidder"]
        and admitted
        and not seller
        and a.state == State.OPEN
        and context["current"] is not None
    )
    accounts = selectors.holding_accounts(org) if position and not position.paddle else []
    if form is None and can_bid:
        # The template writes the round field itself, always the current round: a form
        # refused for a round that has closed is shown again for the new one.
        form = ClockBidForm(auction=a, accounts=accounts)
    context.update(
        {
            "chart": _chart(a, context["closed"]),
            "application": application,
            "deposit": selectors.my_deposit(a, org),
            "admitted": admitted,
            "is_seller": seller,
            "can_apply": who["is_bidder"]
            and a.state in (State.SCHEDULED, State.OPEN)
            and not seller
            and (application is None or application.state in ("refused", "withdrawn")),
            "can_bid": can_bid,
            "form": form if can_bid else None,
        }
    )
    return render(request, "portal/auction_clock.html", context, status=status)


def _clock(pk: int) -> Auction:
    a = views._auction(pk)
    if not a.is_clock:
        raise Http404
    return a


def _place(actor: Actor, a: Auction, data: dict[str, Any]) -> ClockBid:
    with transaction.atomic(durable=True):
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


@views.organization_required
@require_POST
def bid(request: HttpRequest, pk: int) -> HttpResponse:
    """A round bid from the room's form: plain (answered with the room, the refusal on its
    field, or a redirect to the room), or sent by clock_room.js asking for JSON (answered
    with the message alone)."""
    a = _clock(pk)
    org = viewer(request)["organization"]
    rounds = selectors.clock_rounds(a)
    position = selectors.clock_position(a, org, rounds, clock.rules(a).eligible())
    accounts = selectors.holding_accounts(org) if position and not position.paddle else []
    form = ClockBidForm(request.POST, auction=a, accounts=accounts)
    error: dict[str, Any] | None = None  # the JSON answer of a refusal, and its status
    status = 400
    if form.is_valid():
        try:
            b = _place(Actor.for_user(request.user), a, form.cleaned_data)
        except RoundChanged:
            error, status = {"code": "round_changed", "message": _changed(a), "field": "lots"}, 409
        except DomainError as exc:
            message, field = refusal(exc, a, selectors.clock_rounds(a))
            error = {"code": str(exc.code), "message": message, "field": field}
            if exc.code == Code.ROUND_BID_REFUSED:
                error["rule"] = exc.detail.get("rule")
            status = exc.status_code
        if error is not None:
            form.add_error(error["field"], error["message"])
    else:
        field, errors = next(iter(form.errors.items()))
        field = field if field in ("lots", "exit_price") else "lots"
        error = {"code": "invalid", "message": str(errors[0]), "field": field}
    if error is not None:
        if room._wants_json(request):
            return JsonResponse(error, status=status)
        return page(request, _clock(pk), form, status=400)
    if b.exit_price is None:
        done = _("Your demand in round %(n)s: %(lots)s lots at %(price)s %(cur)s/t.") % {
            "n": b.round.number,
            "lots": b.lots,
            "price": _money(b.round.price, a),
            "cur": a.currency,
        }
    else:
        done = _(
            "Your demand in round %(n)s: %(lots)s lots from %(exit)s %(cur)s/t on, your demand "
            "of the round before below it."
        ) % {
            "n": b.round.number,
            "lots": b.lots,
            "exit": _money(b.exit_price, a),
            "cur": a.currency,
        }
    done += " " + _("Ledger entry %(seq)s; hidden from other bidders until the end.") % {
        "seq": b.entry_seq
    }
    if room._wants_json(request):
        return JsonResponse({"message": done, "seq": b.entry_seq}, status=201)
    messages.success(request, done)
    return redirect("portal:auction", pk=pk)


def _changed(a: Auction) -> str:
    current = clock.current_round(a)
    if current is None or current.close_seq is not None:
        return _("This round has closed: bid again in the next round, if there is one.")
    return _(
        "The round changed while you were bidding: round %(n)s is open at %(price)s %(cur)s/t. "
        "Nothing was sent; check your demand and bid again."
    ) % {"n": current.number, "price": _money(current.price, a), "cur": a.currency}


def state(request: HttpRequest, pk: int) -> JsonResponse:
    """``clock.json?after=<seq>``: the room now; the rounds' rows and chart if a round opened
    or closed after ``after``."""
    a = _clock(pk)
    org = viewer(request)["organization"]
    after = room._after(request)
    c = room_context(a, org)
    current: ClockRound | None = c["current"]
    position = c["position"]
    changed = c["version"] > after
    over = a.state in OVER
    last = c["last_closed"]
    body: dict[str, Any] = {
        "state": a.state,
        "state_label": _(a.get_state_display()),
        "phase": c["phase"],
        "server_time": format_time(c["now"]),
        "round": current.number if current else None,
        "price": current.price if current else None,
        "price_text": _money(current.price, a) if current else "",
        "previous_price": c["previous_price"],
        "closes_at": format_time(current.closes_at) if current else None,
        "next_price_text": _money(c["next_price"], a),
        "step_text": _money(c["step"], a),
        "version": c["version"],
        "rows": render_to_string("portal/_clock_rows.html", c).strip() if changed else None,
        "chart": (str(_chart(a, c["closed"]) or "") if changed else None),
        "phase_text": render_to_string("portal/_clock_phase.html", c).strip(),
        # What a screen reader hears when the round changes (the page compares round numbers).
        "announce": _round_news(a, current, last),
        "position": (
            None
            if position is None
            else {
                "code": position.code,
                "most": position.most,
                "previous": position.previous,
                "html": render_to_string("portal/_clock_position.html", c).strip(),
            }
        ),
        "result": render_to_string("portal/_clock_result.html", c).strip() if over else None,
        "final": a.state in (State.CLEARED, State.SETTLED, State.CANCELLED, State.FAILED),
    }
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response


def _round_news(a: Auction, current: ClockRound | None, last: ClockRound | None) -> str:
    if a.state in OVER:
        return _("The auction has ended.")
    if current is None:
        return ""
    news = _("Round %(n)s is open at %(price)s %(cur)s/t.") % {
        "n": current.number,
        "price": _money(current.price, a),
        "cur": a.currency,
    }
    if last is not None:
        news += " " + _(
            "Round %(n)s closed: aggregate demand %(agg)s lots, %(active)s active bidders."
        ) % {"n": last.number, "agg": last.aggregate, "active": last.active}
    return news
