"""The web portal: the public registry explorer, bidders' auction pages and dashboard, and
auditors' ledger pages. Server-rendered; the only scripts are static modules (a countdown, the
bid sealer, the verification progress bar) and every page works without them but sealing,
which says it needs JavaScript rather than fall back to sending a bid in the clear.

Views parse, call one selector or service, render. Writes go through services.
"""

from __future__ import annotations

import datetime as dt
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_ratelimit.decorators import ratelimit

from auctions import onboarding, records
from auctions import policy as auction_policy
from auctions import selectors as auction_selectors
from auctions import services as auction_services
from auctions.export import export_stream
from auctions.models import Auction
from auctions.receipts import receipt_verifiers
from bluecarbon.contention import durably, retrying
from ledger import policy as ledger_policy
from ledger import services as registry
from ledger import tiles, witnesses
from ledger.actors import Actor
from ledger.core.entry import format_time
from ledger.exceptions import DomainError, NotFound
from ledger.signing import trusted_verifiers
from ledger.views import certificate_context

from . import charts, forms, selectors, services
from .context import viewer
from .models import VerificationRun
from .names import Names
from .printable import absolute_url, qr_svg
from .reports import report_verifiers
from .tasks import verification_run_task
from .throttle import sign_in_limited
from .two_factor_views import SignInView


def _page_ints(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name, "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def auditor_required(view: Any) -> Any:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect(f"{reverse('portal:login')}?next={request.path}")
        if not viewer(request)["is_auditor"]:
            # The site's 403 page (header, language switch, a way on), not a bare line of text.
            reason = _("Auditors and operators only.")
            return render(request, "403.html", {"reason": reason}, status=403)
        return view(request, *args, **kwargs)

    return wrapped


def organization_required(view: Any) -> Any:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect(f"{reverse('portal:login')}?next={request.path}")
        if viewer(request)["organization"] is None:
            return redirect("portal:dashboard")
        return view(request, *args, **kwargs)

    return wrapped


# ---- public registry -----------------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "portal/home.html",
        {
            "supply": selectors.supply_summary(),
            "open_auctions": selectors.auctions_open(),
            "retirements": list(selectors.retirements()[:10]),
            "ledger_size": selectors.ledger_size(),
        },
    )


# The projects, batches and retirements lists are registry.py's.


def project(request: HttpRequest, code: str) -> HttpResponse:
    p = selectors.project(code)
    if p is None:
        raise Http404
    # The project's registry (or an operator) attaches its documents (document_views.py).
    may_attach = request.user.is_authenticated and Actor.for_user(request.user).may_act_for(
        p.registry_id
    )
    return render(request, "portal/project.html", {"project": p, "may_attach": may_attach})


# ---- auctions ------------------------------------------------------------------------------


def _auction(pk: int) -> Auction:
    a = auction_selectors.auction_get(pk)
    if a is None or a.state == Auction.State.DRAFT:
        raise Http404
    return a


def auction(request: HttpRequest, pk: int) -> HttpResponse:
    a = _auction(pk)
    who = viewer(request)
    org = who["organization"]
    curve = selectors.demand_curve(a)
    application = selectors.my_application(a, org)
    # Whether it may bid here: its application decides, if it made one (auctions.md §2.1).
    admitted = org is not None and onboarding.admitted(a, org)
    return render(
        request,
        "portal/auction.html",
        {
            "a": a,
            "bids": selectors.my_bids(a, org),
            "deposit": selectors.my_deposit(a, org),
            "application": application,
            "admitted": admitted,
            "can_apply": who["is_bidder"]
            and a.state in (Auction.State.SCHEDULED, Auction.State.OPEN)
            and org.pk != a.seller_id
            and (application is None or application.state in ("refused", "withdrawn")),
            "accounts": selectors.holding_accounts(org),
            "allocation": selectors.my_allocation(a, org),
            "chart": charts.demand_curve_svg(a, curve) if curve else None,
            "can_bid": who["is_bidder"]
            and admitted
            and a.state == Auction.State.OPEN
            and org.pk != a.seller_id,
            "sealing": selectors.auction_sealing(a),
            "sealing_origin": settings.LEDGER_ORIGIN,
        },
    )


@auditor_required
def auction_audit(request: HttpRequest, pk: int) -> HttpResponse:
    a = _auction(pk)
    after = _page_ints(request, "after") or 0
    book = list(selectors.book(a).filter(pk__gt=after)[: selectors.BOOK_PAGE + 1])
    more = len(book) > selectors.BOOK_PAGE
    book = book[: selectors.BOOK_PAGE]
    for b in book:  # before the reveal, a bid's bidder is not public (auctions.md §3.7)
        b.shown_bidder = records.public_bidder(b, a)  # type: ignore[attr-defined]
    check = selectors.recompute_cached(a)
    opened = []
    if check.get("result") and book:  # the opened bids of this page's range of the book
        first, last = book[0].pk, book[-1].pk
        opened = [r for r in check["result"]["bids"] if first <= r["bid"] <= last]
    return render(
        request,
        "portal/auction_audit.html",
        {
            "a": a,
            "book": book,
            "opened": opened,
            # The page's bidders by name, in one query.
            "names": Names.of(
                organizations=[records.public_bidder(b, a) for b in book]
                + [r["bidder"] for r in opened]
            ),
            "next_after": book[-1].pk if more else None,
            "check": check,
        },
    )


@organization_required
@require_POST
def apply(request: HttpRequest, pk: int) -> HttpResponse:
    """Apply to bid in an auction (a plain form: it works without JavaScript). An operator
    decides; the auction page says where the application stands."""
    try:
        durably(
            lambda: onboarding.application_submit(actor=Actor.for_user(request.user), auction=pk)
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Your application was sent; an operator will decide on it."))
    return redirect("portal:auction", pk=pk)


@organization_required
@require_POST
def withdraw(request: HttpRequest, pk: int, bid: int) -> HttpResponse:
    """Withdrawing needs no sealing, so it is a plain form (it works without JavaScript)."""
    try:
        durably(
            lambda: auction_services.bid_withdraw(
                actor=Actor.for_user(request.user), auction=pk, bid=bid
            )
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Bid %(bid)s withdrawn.") % {"bid": bid})
    return redirect("portal:auction", pk=pk)


@organization_required
def receipt(request: HttpRequest, pk: int, bid: int, version: int) -> HttpResponse:
    """One receipt as a text file (a C2SP signed note), for the bidder to keep."""
    org = viewer(request)["organization"]
    r = (
        auction_policy.receipts_of(org.pk)
        .select_related("bid")
        .filter(bid_id=bid, bid__auction_id=pk, version=version)
        .first()
    )
    if r is None:
        raise Http404
    note = auction_services.receipt_note(r, r.bid.auction_id, r.bid.bidder_id)
    response = HttpResponse(note, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="bid-{bid}-v{version}-receipt.txt"'
    return response


# ---- bidders: dashboard, retire, sign up ---------------------------------------------------


def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect(f"{reverse('portal:login')}?next={request.path}")
    who = viewer(request)
    context: dict[str, Any] = {}
    if who["organization"] is not None:
        context = selectors.dashboard(who["organization"])
        bidder = getattr(who["organization"], "bidder", None)
        context["bidder_status"] = bidder.status if bidder else None
        context["bidder_status_label"] = bidder.get_status_display() if bidder else None
    return render(request, "portal/dashboard.html", context)


@organization_required
def retire(request: HttpRequest) -> HttpResponse:
    org = viewer(request)["organization"]
    holdings = list(
        ledger_policy.holdings_of(org.pk)
        .filter(tradable__gt=0, account__kind="holding")
        .select_related("account", "batch")
        .order_by("batch__serial")
    )
    form = forms.RetireForm(request.POST or None, holdings=holdings)
    if request.method == "POST" and form.is_valid():
        account, batch = form.holding_ids()
        try:
            r = durably(
                lambda: registry.credit_retire(
                    actor=Actor.for_user(request.user),
                    batch=batch,
                    account=account,
                    quantity=form.cleaned_data["quantity"],
                    beneficiary=form.cleaned_data["beneficiary"],
                    purpose=form.cleaned_data["purpose"],
                    jurisdiction=form.cleaned_data["jurisdiction"],
                    reason=form.cleaned_data["reason"],
                )
            )
        except DomainError as exc:
            field, said = forms.retire_error(exc)
            form.add_error(field if field in form.fields else None, said)
        else:
            messages.success(request, _("Retired. Certificate %(c)s.") % {"c": r.certificate})
            return redirect("portal:certificate", certificate=r.certificate)
    return render(request, "portal/retire.html", {"form": form})


def certificate(request: HttpRequest, certificate: str) -> HttpResponse:
    """The printable retirement certificate, with what it takes to verify it offline (the same
    page the API serves, here with the portal around it)."""
    try:
        context: dict[str, Any] = certificate_context(certificate)
    except NotFound:
        return render(
            request, "ledger/certificate.html", {"c": None, "certificate": certificate}, status=404
        )
    # The printed certificate's QR code opens this page, where it verifies (docs/portal.md).
    number = context["c"].retirement.certificate
    url = absolute_url(request, reverse("portal:certificate", kwargs={"certificate": number}))
    context["verify_url"] = url
    context["qr"] = qr_svg(url, title=_("QR code of %(url)s") % {"url": url})
    return render(request, "ledger/certificate.html", context)


# ---- signing in and up ---------------------------------------------------------------------


# Failed sign-ins are limited (portal/throttle.py); the admin's form is wrapped the same way.
# The password step, then the code step for a user with two-factor sign-in (two_factor_views).
sign_in = sign_in_limited(SignInView.as_view())


def too_many_requests(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "portal/too_many_requests.html", status=429)


@ratelimit(key="ip", rate="10/h", method="POST")
def signup(request: HttpRequest) -> HttpResponse:
    form = forms.SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            # It opens its own transaction, the outermost: retried like a durable one.
            req = retrying(lambda: services.signup_request(**form.cleaned_data))
        except DomainError as exc:
            field = next(iter(exc.detail), None)
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            login(request, req.user)
            return redirect("portal:dashboard")
    return render(request, "portal/signup.html", {"form": form})


# ---- auditors: ledger explorer, checkpoints, verification ----------------------------------


@auditor_required
def ledger(request: HttpRequest) -> HttpResponse:
    form = forms.LedgerFilterForm(request.GET or None)
    # The fields that are valid filter; an invalid one says so on its field and is left out.
    filters: dict[str, Any] = {}
    if form.is_bound:
        form.is_valid()
        filters = form.cleaned_data
    since, until = filters.get("since"), filters.get("until")
    rows, next_before = selectors.ledger_page(
        type=filters.get("type") or "",
        account=filters.get("account"),
        batch=filters.get("batch"),
        since=format_time(dt.datetime.combine(since, dt.time(), dt.UTC)) if since else "",
        until=(
            format_time(dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC))
            if until
            else ""
        ),
        before=filters.get("before"),
    )
    query = QueryDict(mutable=True)
    for name in ("type", "account", "batch", "since", "until"):
        if filters.get(name) not in (None, ""):
            query[name] = str(filters[name])
    if next_before is not None:
        query["before"] = str(next_before)
    return render(
        request,
        "portal/ledger.html",
        {
            "form": form,
            "entries": rows,
            # Every actor of the page by name, in one query per kind (users, API keys).
            "names": Names.of(actors=[e["actor"] for e in rows]),
            "next_query": query.urlencode() if next_before is not None else None,
            "types": selectors.entry_types(),
            "size": selectors.ledger_size(),
        },
    )


@auditor_required
def entry(request: HttpRequest, seq: int) -> HttpResponse:
    detail = selectors.entry_detail(seq)
    if detail is None:
        raise Http404
    return render(request, "portal/entry.html", {"d": detail})


@auditor_required
def checkpoints(request: HttpRequest) -> HttpResponse:
    policy = witnesses.policy()
    page = selectors.checkpoints(before=_page_ints(request, "before"))
    return render(
        request,
        "portal/checkpoints.html",
        {
            "checkpoints": page,
            # Each checkpoint with its cosignatures, and whether they meet the log's witness
            # policy (checked here with the policy's keys).
            "rows": [
                (c, witnesses.cosigned_note(c), witnesses.witnessed(c, policy) if policy else None)
                for c in page
            ],
            "quorum": policy.describe_quorum() if policy else None,
            "keys": [v.to_string() for v in trusted_verifiers()],
        },
    )


@auditor_required
def verification(request: HttpRequest) -> HttpResponse:
    runs = list(VerificationRun.objects.select_related("requested_by")[:30])
    reported = VerificationRun.objects.exclude(report="").filter(finished_at__isnull=False)
    return render(
        request,
        "portal/verification.html",
        {
            "runs": runs,
            "latest_report": reported.order_by("-finished_at", "-pk").first(),
            "checkpoint": tiles.checkpoint_latest(),
        },
    )


@auditor_required
def verification_report(request: HttpRequest, pk: int) -> HttpResponse:
    """A finished run's signed report (a C2SP signed note; portal/reports.py)."""
    run = VerificationRun.objects.filter(pk=pk).exclude(report="").first()
    if run is None:
        raise Http404
    response = HttpResponse(run.report, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="verification-report-{pk}.txt"'
    return response


@auditor_required
def export_download(request: HttpRequest) -> StreamingHttpResponse:
    """The export bundle (``manage.py ledger_export``'s archive), streamed as it is read, in one
    snapshot; memory stays flat at any ledger size. ``bluecarbon-audit verify`` checks it."""
    if tiles.checkpoint_latest() is None:
        raise Http404
    response = StreamingHttpResponse(export_stream(), content_type="application/x-tar")
    name = f"bluecarbon-export-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.tar"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


def report_verifier_keys(request: HttpRequest) -> HttpResponse:
    """The keys verification reports are signed with (not the ledger's checkpoint keys)."""
    text = "".join(v.to_string() + "\n" for v in report_verifiers())
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="report-verifier-keys.txt"'
    return response


@auditor_required
@require_POST
def verification_start(request: HttpRequest) -> HttpResponse:
    run, new = retrying(lambda: services.verification_request(user=request.user))
    if new:
        transaction.on_commit(lambda: verification_run_task.delay(run.pk), robust=True)
    return redirect("portal:verification-run", pk=run.pk)


@auditor_required
def verification_run(request: HttpRequest, pk: int) -> HttpResponse:
    run = VerificationRun.objects.filter(pk=pk).first()
    if run is None:
        raise Http404
    return render(
        request,
        "portal/verification_run.html",
        {"run": run, "progress": services.verification_progress(run.pk)},
    )


@auditor_required
def verification_status(request: HttpRequest, pk: int) -> JsonResponse:
    run = VerificationRun.objects.filter(pk=pk).first()
    if run is None:
        raise Http404
    p = services.verification_progress(run.pk)
    return JsonResponse(
        {
            "status": run.status,
            "done": p["done"],
            "total": p["total"],
            "message": run.message,
            "entries": run.entries,
            "failed_seq": run.failed_seq,
        }
    )


def verifier_keys(request: HttpRequest) -> HttpResponse:
    text = "".join(v.to_string() + "\n" for v in trusted_verifiers())
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="verifier-keys.txt"'
    return response


def receipt_verifier_keys(request: HttpRequest) -> HttpResponse:
    """The keys bid receipts are signed with (not the ledger's checkpoint keys)."""
    text = "".join(v.to_string() + "\n" for v in receipt_verifiers())
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="receipt-verifier-keys.txt"'
    return response
