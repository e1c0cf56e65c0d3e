"""The auction calendar (``/auctions/``), its iCalendar feed, and each auction's result report
as a printable page and as CSV (``portal/results.py`` reads them)."""

from __future__ import annotations

import datetime as dt

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

from auctions.models import Auction
from ledger.core.quantity import format_tonnes

from . import forms, results
from .names import local_name
from .printable import absolute_url


def _filters(request: HttpRequest) -> tuple[forms.AuctionFilterForm, dict]:
    form = forms.AuctionFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    return form, {k: v for k, v in filters.items() if v}


def auctions(request: HttpRequest) -> HttpResponse:
    form, filters = _filters(request)
    return render(
        request,
        "portal/auctions.html",
        {"form": form, "months": results.calendar(**filters), "query": request.GET.urlencode()},
    )


def auctions_ics(request: HttpRequest) -> HttpResponse:
    """Upcoming and open auctions as an iCalendar feed (RFC 5545), filtered like the page."""
    filters = _filters(request)[1]
    months = results.calendar(**filters)
    rows = [a for m in months["open"] + months["upcoming"] for a in m.auctions]

    def describe(a: Auction) -> str:
        return _("%(format)s · %(tonnes)s t · %(project)s · vintage %(vintage)s") % {
            "format": _(a.get_format_display()),
            "tonnes": format_tonnes(a.quantity).rstrip("0").rstrip("."),
            "project": local_name(a.batch.project),
            "vintage": a.batch.vintage,
        }

    body = results.ics(
        rows,
        url_of=lambda a: absolute_url(request, reverse("portal:auction", args=[a.pk])),
        describe=describe,
        name=_("Blue carbon auctions"),
        now=dt.datetime.now(dt.UTC),
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="bluecarbon-auctions.ics"'
    response["Cache-Control"] = "max-age=300"
    return response


def _report(pk: int) -> results.ResultReport:
    a = results.auction_for_report(pk)
    report = results.result_report(a) if a is not None else None
    if report is None:
        raise Http404
    return report


def result_report(request: HttpRequest, pk: int) -> HttpResponse:
    """The printable result report (one A4 page, more for a long allocation)."""
    report = _report(pk)
    return render(
        request,
        "portal/result_report.html",
        {
            "r": report,
            "a": report.auction,
            "page_url": absolute_url(request, request.path),
            "entry_url": reverse("api:ledger-entry", kwargs={"seq": report.result_seq}),
        },
    )


def result_csv(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The report's figures as CSV, streamed (docs/portal.md lists the columns)."""
    report = _report(pk)
    response = StreamingHttpResponse(
        results.csv_stream(report), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="auction-{pk}-result.csv"'
    return response
