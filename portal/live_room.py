"""What the two live auction rooms share (issue 16, part 4): ``room.py`` (English auctions) and
``clock_room.py`` (clock auctions) are each a ``LiveRoom``.

A room is a page whole without JavaScript, a JSON view its script polls, and a bid form that
posts as a plain form or asking for JSON. The skeletons of all three live here; a room says
what differs: its figures (``context``), its form and how a bid is placed (``place``), how a
refusal of its service reads (``refusal``), and the fields its JSON adds (``poll_fields``).

The poll's answer always carries the state, the phase, the server's clock (a countdown on a
skewed device is right) and, rendered here from the room's partials
(``portal/_<partials>_<part>.html``), the phase text, the bidder's position and the result:
one place formats and translates. ``?after=<seq>`` keeps it small. The poll is throttled per
user, or per address when nobody is signed in (``throttle.poll_limited``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from auctions import onboarding
from auctions.exceptions import AuctionErrorCode as Code
from auctions.exceptions import CommonCode
from auctions.models import Auction
from ledger.core.entry import format_time
from ledger.core.quantity import QuantityError, format_money, parse_money
from ledger.exceptions import DomainError

from . import selectors, views
from .context import viewer
from .templatetags.portal_format import currency_unit, group_digits

State = Auction.State
OVER = (State.CLOSING, State.CLEARED, State.SETTLED, State.CANCELLED, State.FAILED)
# Nothing more will change on a room's page once the result (or the cancellation) is out.
FINAL = (State.CLEARED, State.SETTLED, State.CANCELLED, State.FAILED)
POLL_MS = 1500


def money(minor: int | None, a: Auction) -> str:
    return "" if minor is None else group_digits(format_money(minor, a.currency))


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def after(request: HttpRequest) -> int:
    """``?after=<seq>``: the ledger sequence the page holds (0 if absent or not a number)."""
    raw = request.GET.get("after", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else 0


def refusal_message(exc: DomainError, a: Auction) -> str:
    """A refusal both bid services give, in the reader's language (the service's message is for
    logs and the API; the code and detail say the same)."""
    d, cur = exc.detail, currency_unit(a.currency)
    if exc.code == Code.DEPOSIT_MISSING:
        return _(
            "This auction needs a deposit of %(required)s %(cur)s before you bid; "
            "%(recorded)s %(cur)s is recorded."
        ) % {
            "required": money(d.get("required", a.deposit_required), a),
            "recorded": money(d.get("recorded", 0), a),
            "cur": cur,
        }
    known = {
        Code.NOT_OPEN: _("This auction is not open for bids yet."),
        Code.NOT_APPROVED: _("Your organization is not admitted to bid in this auction."),
        Code.OWN_AUCTION: _("A seller cannot bid in its own auction."),
        Code.PADDLE_ACCOUNT: _("The account the lot goes to was fixed by your first bid."),
        CommonCode.PERMISSION_DENIED: _("Your organization may not bid here."),
        CommonCode.SERVICE_UNAVAILABLE: _("The registry is busy and took nothing: bid again."),
    }
    return str(
        known.get(exc.code, _("The registry refused the bid (%(code)s).") % {"code": exc.code})
    )


class BidForm(forms.Form):
    """A room's bid form. Its ``account`` field (where the lots go, a room's own label) is asked
    at the first bid only: the paddle's account is fixed by it."""

    def __init__(self, *args: Any, auction: Auction, accounts: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auction = auction
        field = self.fields["account"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [(acc.pk, f"{acc.name} (#{acc.pk})") for acc in accounts]
        if not accounts:
            del self.fields["account"]

    def parse_price(self, raw: str, field: str) -> int:
        """A price per tonne typed in the form, in minor units."""
        try:
            return parse_money(raw, self.auction.currency, field)
        except QuantityError as exc:
            if exc.code == "too_precise":
                raise forms.ValidationError(
                    _("At most two decimals, e.g. 106.50."), code=exc.code
                ) from None
            raise forms.ValidationError(
                _("A price per tonne as a decimal number, e.g. 106.00."), code=exc.code
            ) from None


@dataclass(frozen=True)
class Refusal:
    """A bid refused: the words, on the form field they concern, and the JSON answer's code and
    status."""

    message: str
    field: str
    code: str
    status: int
    rule: str | None = None  # a round bid's ``detail.rule``


class Refused(Exception):
    """A room's own refusal, raised by its ``place`` (the service's are ``DomainError``)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class LiveRoom:
    template: ClassVar[str]  # the page
    partials: ClassVar[str]  # portal/_<partials>_{phase,position,result}.html
    form_class: ClassVar[type[BidForm]]
    fields: ClassVar[tuple[str, ...]]  # the form's fields a refusal is said on; the first else

    # ---- what a room says ------------------------------------------------------------------

    def is_room_of(self, a: Auction) -> bool:
        raise NotImplementedError

    def context(self, a: Auction, org: Any, *, after: int = 0) -> dict[str, Any]:
        """What the room shows, the page and the JSON alike: at least ``now``, ``phase`` and
        ``position``."""
        raise NotImplementedError

    def position(self, a: Auction, org: Any) -> Any:
        raise NotImplementedError

    def takes_bids(self, a: Auction, c: dict[str, Any]) -> bool:
        return a.state == State.OPEN

    def page_context(self, a: Auction, c: dict[str, Any]) -> dict[str, Any]:
        """What the page shows beyond the JSON's context (the history in full)."""
        return {}

    def place(self, request: HttpRequest, a: Auction, data: dict[str, Any]) -> tuple[str, int]:
        """Place the bid: what the bidder is told, and the ledger entry's sequence. Raises the
        service's ``DomainError`` or ``Refused``."""
        raise NotImplementedError

    def refusal(self, exc: DomainError, a: Auction) -> Refusal:
        raise NotImplementedError

    def answer(self, r: Refusal) -> dict[str, Any]:
        """A refusal's JSON answer."""
        return {"code": r.code, "message": r.message}

    def poll_fields(self, a: Auction, c: dict[str, Any], after: int) -> dict[str, Any]:
        """The room's own keys in its JSON: its figures, its rows and chart."""
        raise NotImplementedError

    def position_fields(self, position: Any) -> dict[str, Any]:
        raise NotImplementedError

    # ---- the shared skeleton ---------------------------------------------------------------

    def auction(self, pk: int) -> Auction:
        a = views._auction(pk)
        if not self.is_room_of(a):
            raise Http404
        return a

    def part(self, name: str, context: dict[str, Any]) -> str:
        return render_to_string(f"portal/_{self.partials}_{name}.html", context).strip()

    def accounts(self, org: Any, position: Any) -> list[Any]:
        # Asked at the first bid only: its paddle's account is fixed by it.
        return selectors.holding_accounts(org) if position and not position.paddle else []

    def page(
        self,
        request: HttpRequest,
        a: Auction,
        form: BidForm | None = None,
        status: int = 200,
    ) -> HttpResponse:
        who = viewer(request)
        org = who["organization"]
        context = self.context(a, org)
        application = selectors.my_application(a, org)
        admitted = org is not None and onboarding.admitted(a, org)
        seller = org is not None and org.pk == a.seller_id
        can_bid = who["is_bidder"] and admitted and not seller and self.takes_bids(a, context)
        if form is None and can_bid:
            form = self.form_class(auction=a, accounts=self.accounts(org, context["position"]))
        context.update(self.page_context(a, context))
        context.update(
            {
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
        return render(request, self.template, context, status=status)

    def bid(self, request: HttpRequest, pk: int) -> HttpResponse:
        """A bid from the room's form: plain (answered with the room, the refusal on its field,
        or a redirect to the room), or sent by the room's script asking for JSON (answered with
        the message alone)."""
        a = self.auction(pk)
        org = viewer(request)["organization"]
        accounts = self.accounts(org, self.position(a, org))
        form = self.form_class(request.POST, auction=a, accounts=accounts)
        refused: Refusal | None = None
        if form.is_valid():
            try:
                done, seq = self.place(request, a, form.cleaned_data)
            except Refused as exc:
                refused = exc.refusal
            except DomainError as exc:
                refused = self.refusal(exc, a)
            if refused is not None:
                form.add_error(refused.field, refused.message)
        else:
            name, errors = next(iter(form.errors.items()))
            field = name if name in self.fields else self.fields[0]
            refused = Refusal(str(errors[0]), field, "invalid", 400)
        if refused is not None:
            if wants_json(request):
                return JsonResponse(self.answer(refused), status=refused.status)
            return self.page(request, self.auction(pk), form, status=400)
        if wants_json(request):
            return JsonResponse({"message": done, "seq": seq}, status=201)
        messages.success(request, done)
        return redirect("portal:auction", pk=pk)

    def state(self, request: HttpRequest, pk: int) -> JsonResponse:
        """The room now, for its script's poll; what changed after ``?after=<seq>``."""
        a = self.auction(pk)
        org = viewer(request)["organization"]
        since = after(request)
        c = self.context(a, org, after=since)
        position = c["position"]
        response = JsonResponse(
            {
                "state": a.state,
                "state_label": _(a.get_state_display()),
                "phase": c["phase"],
                "server_time": format_time(c["now"]),
                **self.poll_fields(a, c, since),
                "phase_text": self.part("phase", c),
                "position": (
                    None
                    if position is None
                    else {**self.position_fields(position), "html": self.part("position", c)}
                ),
                "result": self.part("result", c) if a.state in OVER else None,
                "final": a.state in FINAL,
            }
        )
        response["Cache-Control"] = "no-store"
        return response
