"""The trustee's pages: the auctions its organization is a trustee of, and the release of its
key for one of them after the close (docs/auctions.md §3.6, docs/portal.md).

The release is ``auctions.trustees.trustee_release``, the API's service: it refuses a key
before the close and one that is not the private half of the public key registered for this
trustee in this auction, and writes the ``auction.key_release`` entry. The page adds only
what a browser needs: no form before the close, so a key is never sent early by accident, and
the secret kept out of everything the server keeps or says back (no echo in the page, no
session, no log, no cache, no error report).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from auctions import policy as auction_policy
from auctions import trustees
from auctions.exceptions import AuctionErrorCode as Code
from auctions.models import Auction, TrusteeKey
from bluecarbon.contention import durably
from bluecarbon.errors import DomainError, NotFound, PermissionDenied
from ledger.actors import Actor
from ledger.core.entry import decode_entry, entry_hash
from ledger.models import LedgerEntry, Organization

from .context import viewer

State = Auction.State
# A key file holds one line of base64 (44 characters); anything much larger is not one.
MAX_KEY_FILE = 1024


# ---- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrusteeAuction:
    """One auction as its trustee sees it: its key there and how far the release has come."""

    auction: Auction
    key: TrusteeKey
    released: int  # how many of the auction's trustees have released

    @property
    def can_release(self) -> bool:
        # After the close and only then (the service says so too), and once.
        return self.auction.state == State.CLOSING and self.key.private_key is None

    @property
    def waiting_for_close(self) -> bool:
        return self.auction.state in (State.SCHEDULED, State.OPEN)


def trustee_auctions(org: Organization, *, auction: int | None = None) -> list[TrusteeAuction]:
    """The auctions that assigned one of ``org``'s keys (or only ``auction``), newest first."""
    keys_of = auction_policy.trustee_keys_of(org.pk).filter(auction__isnull=False)
    if auction is not None:
        keys_of = keys_of.filter(auction_id=auction)
    keys = list(keys_of.select_related("auction").order_by("-auction_id"))
    released = dict(
        TrusteeKey.objects.filter(
            auction_id__in=[k.auction_id for k in keys], private_key__isnull=False
        )
        .values("auction_id")
        .annotate(n=Count("pk"))
        .values_list("auction_id", "n")
    )
    return [
        TrusteeAuction(auction=k.auction, key=k, released=released.get(k.auction_id or 0, 0))
        for k in keys
        if k.auction is not None
    ]


def unused_keys(org: Organization) -> int:
    """Keys registered and not yet assigned: each auction sealed to ``org`` takes one when it is
    scheduled, and scheduling fails without one."""
    return auction_policy.trustee_keys_of(org.pk).filter(auction__isnull=True).count()


@dataclass(frozen=True)
class ReleaseEntry:
    seq: int
    type: str
    time: str  # RFC 3339, UTC, as the entry has it
    sha256: str


def release_entry(seq: int | None) -> ReleaseEntry | None:
    """The ``auction.key_release`` entry, without its data (which holds the released key)."""
    if seq is None:
        return None
    row = LedgerEntry.objects.filter(seq=seq).values_list("body", "type").first()
    if row is None:
        return None
    body = bytes(row[0])
    return ReleaseEntry(
        seq=seq, type=row[1], time=decode_entry(body).time, sha256=entry_hash(body).hex()
    )


# ---- the form ------------------------------------------------------------------------------


class KeyReleaseForm(forms.Form):
    """The private key as the API takes it (``private_key``: standard base64 of the raw 32
    bytes), pasted or as the file that holds it. Never rendered bound: the template writes the
    fields empty, so a refused key is not sent back."""

    private_key = forms.CharField(required=False, strip=True, max_length=200)
    key_file = forms.FileField(required=False)

    NO_KEY = gettext_lazy(
        "Paste your private key for this auction, or choose the file that holds it."
    )
    BOTH = gettext_lazy("Give the key once: paste it or choose its file, not both.")
    NOT_A_FILE = gettext_lazy(
        "This file does not hold a trustee private key: it holds one line of base64."
    )

    @sensitive_variables("text", "raw")
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        text = data.get("private_key") or ""
        upload = data.get("key_file")
        if upload is not None:
            if text:
                raise forms.ValidationError(self.BOTH, code="both")
            raw = upload.read(MAX_KEY_FILE + 1)
            try:
                text = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                text = ""
            if not text or len(raw) > MAX_KEY_FILE:
                raise forms.ValidationError(self.NOT_A_FILE, code="not_a_key_file")
        if not text:
            raise forms.ValidationError(self.NO_KEY, code="required")
        data["key"] = text
        return data


def _refusal(exc: DomainError) -> str:
    """The service's refusal in the reader's language (its own message is for API clients)."""
    if exc.code == Code.INVALID_KEY:
        return _(
            "This is not a trustee private key. Paste the standard base64 of its 32 bytes "
            "(44 characters, the last one =), or choose the file that holds it."
        )
    if exc.code == Code.KEY_MISMATCH:
        return _(
            "This is not the private key of the public key registered for your organization in "
            "this auction. Nothing was released; check that you took the key of this auction."
        )
    if exc.code == Code.NOT_CLOSED:
        return _("The auction has not closed: a trustee releases its key only after the close.")
    return _("This auction no longer waits for trustees' keys. Nothing was released.")


# ---- views ---------------------------------------------------------------------------------


def trustee_required(view: Any) -> Any:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect(f"{reverse('portal:login')}?next={request.path}")
        if not viewer(request)["is_trustee"]:
            reason = _("Members of a trustee organization only.")
            return render(request, "403.html", {"reason": reason}, status=403)
        return view(request, *args, **kwargs)

    return wrapped


@never_cache
@trustee_required
def auctions(request: HttpRequest) -> HttpResponse:
    org = viewer(request)["organization"]
    return render(
        request,
        "portal/trustee.html",
        {"rows": trustee_auctions(org), "unused_keys": unused_keys(org)},
    )


def _row(org: Organization, pk: int) -> TrusteeAuction:
    rows = trustee_auctions(org, auction=pk)
    if not rows:
        raise Http404  # not an auction of this trustee: as if it did not exist
    return rows[0]


@never_cache  # Cache-Control: no-store, on the form and on every answer to it
@sensitive_post_parameters("private_key")  # and out of Django's error reports
@sensitive_variables("form")
@trustee_required
def release(request: HttpRequest, pk: int) -> HttpResponse:
    org = viewer(request)["organization"]
    row = _row(org, pk)
    error = None
    status = 200
    if request.method == "POST":
        form = KeyReleaseForm(request.POST, request.FILES)
        if not form.is_valid():
            # Its errors only: a bound form's fields are never rendered (they hold the key).
            error = " ".join(str(m) for errors in form.errors.values() for m in errors)
            status = 400
        else:
            try:
                durably(
                    lambda: trustees.trustee_release(
                        actor=Actor.for_user(request.user),
                        auction=pk,
                        private_key=form.cleaned_data["key"],
                    )
                )
            except (NotFound, PermissionDenied):
                raise Http404 from None
            except DomainError as exc:
                error, status = _refusal(exc), exc.status_code
            else:
                messages.success(request, _("Your key for this auction was released."))
                return redirect("portal:trustee-release", pk=pk)
        row = _row(org, pk)
    elif request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    return render(
        request,
        "portal/trustee_release.html",
        {
            "row": row,
            "a": row.auction,
            "error": error,
            "entry": release_entry(row.key.released_seq),
        },
        status=status,
    )
