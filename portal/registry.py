"""The public register's pages: projects, batches and retirements, searched and filtered, with
CSV and JSON exports of exactly what a list shows, and a page per batch.

The filters, the rows and the columns are ``ledger/public_register.py``'s, which the public
API (``/api/v1/public/...``) uses too: a list, its exports and the API answer alike. Forms are
plain GET forms (no script needed). A bad filter value is said next to its field, in the
reader's language, with status 400, and nothing is listed or exported until it is corrected:
a list filtered by the other fields only would look like an answer to the question asked.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from ledger import public_register as register
from ledger.models import Ecosystem, Project

from .context import viewer
from .throttle import export_limited

PAGE = 50

LABELS = {
    "q": gettext_lazy("Search"),
    "ecosystem": gettext_lazy("Ecosystem"),
    "jurisdiction": gettext_lazy("Jurisdiction"),
    "methodology": gettext_lazy("Methodology"),
    "vintage": gettext_lazy("Vintage"),
    "status": gettext_lazy("Project status"),
    "project": gettext_lazy("Project"),
}

SEARCH_HELP = {
    "projects": gettext_lazy("Code, name, jurisdiction, methodology or developer"),
    "batches": gettext_lazy("Serial, project, jurisdiction, methodology or verifier"),
    "retirements": gettext_lazy("Certificate, beneficiary, purpose, batch or project"),
}


def _error_text(name: str, code: str) -> str:
    """A filter's error code (``public_register.FilterError``) in the reader's words."""
    if code == "repeated":
        return _("Give this filter once.")
    if code == "too_long":
        return _("Search for at most %(n)d characters.") % {"n": register.MAX_TEXT}
    if name == "vintage" and code == "out_of_range":
        return _("A vintage is a year from %(lo)d to %(hi)d.") % {
            "lo": register.VINTAGES[0],
            "hi": register.VINTAGES[1],
        }
    if name == "vintage":
        return _("A vintage is a year, for example 2023.")
    if name == "q":
        return _("This text cannot be searched for.")
    return _("Choose one of the listed values.")


def _fields(
    kind: str, params: QueryDict, errors: dict[str, register.FilterError]
) -> list[dict[str, Any]]:
    """The filter form's fields, with what the reader chose (as given) and any error."""
    out = []
    for name in register.FILTERS[kind]:
        field: dict[str, Any] = {
            "name": name,
            "id": f"filter-{name}",
            "label": LABELS[name],
            "value": params.get(name, ""),
            "error": _error_text(name, errors[name].code) if name in errors else "",
        }
        if name == "q":
            field["type"] = "search"
            field["help"] = SEARCH_HELP[kind]
        elif name == "vintage":
            field["type"] = "number"
        else:
            field["type"] = "select"
            field["options"] = _options(name)
        out.append(field)
    return out


def _options(name: str) -> list[tuple[str, str]]:
    if name == "ecosystem":
        return [(v, Ecosystem.name_of(v)) for v in Ecosystem.values]
    if name == "status":
        return [(v, _(label)) for v, label in Project.Status.choices]
    if name == "jurisdiction":
        return [(j, j) for j in register.jurisdictions()]
    if name == "methodology":
        return [(code, f"{code} — {title}") for code, title in register.methodologies()]
    return list(Project.objects.order_by("code").values_list("code", "code"))


def _query(kind: str, values: dict[str, Any]) -> QueryDict:
    """The filters as a query string (for the exports' links and the next page's)."""
    q = QueryDict(mutable=True)
    for name in register.FILTERS[kind]:
        if name in values:
            q[name] = str(values[name])
    return q


def _before(request: HttpRequest) -> int | None:
    raw = request.GET.get("before", "")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 19 else None


def _list(request: HttpRequest, kind: str, template: str) -> HttpResponse:
    values, errors = register.parse(kind, request.GET)
    context: dict[str, Any] = {
        "kind": kind,
        "fields": _fields(kind, request.GET, errors),
        "errors": bool(errors),
        "filtered": bool(values),
        "rows": [],
        "next_query": None,
    }
    if errors:
        return render(request, template, context, status=400)
    query = _query(kind, values)
    context["query"] = query.urlencode()
    if kind == "projects":  # listed whole, as before: a registry has hundreds, not millions
        context["rows"] = list(register.projects(values))
        context["count"] = len(context["rows"])
        return render(request, template, context)
    before = _before(request)
    qs = register.listing(kind, values, before=before)
    rows = list(qs[: PAGE + 1])
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    if kind == "retirements":
        times = register.entry_times([r.entry_seq for r in rows])
        for r in rows:
            r.retired_at = times.get(r.entry_seq, ("", ""))[1]  # for the template only
    context["rows"] = rows
    context["count"] = register.listing(kind, values).count()
    context["page_start"] = before is not None
    if more:
        cursor = rows[-1].pk if kind == "batches" else rows[-1].entry_seq
        query["before"] = str(cursor)
        context["next_query"] = query.urlencode()
    return render(request, template, context)


def projects(request: HttpRequest) -> HttpResponse:
    return _list(request, "projects", "portal/projects.html")


def batches(request: HttpRequest) -> HttpResponse:
    return _list(request, "batches", "portal/batches.html")


def retirements(request: HttpRequest) -> HttpResponse:
    return _list(request, "retirements", "portal/retirements.html")


# ---- exports -------------------------------------------------------------------------------


class _Line:
    """What ``csv.writer`` writes to: each line is handed on as it is made (streaming)."""

    def write(self, text: str) -> str:
        return text


def _csv(kind: str, rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Line(), lineterminator="\r\n")  # RFC 4180
    columns = register.COLUMNS[kind]
    yield writer.writerow(columns)
    for row in rows:
        yield writer.writerow([row[c] for c in columns])


def _json(kind: str, values: dict[str, Any], rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    head = {"list": kind, "filters": values, "columns": list(register.COLUMNS[kind])}
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "rows": ['
    first = True
    for row in rows:
        yield ("" if first else ",") + "\n" + json.dumps(row, ensure_ascii=False)
        first = False
    yield "\n]}\n"


@export_limited
def export(request: HttpRequest, kind: str, fmt: str) -> HttpResponseBase:
    """Every row of the list as filtered (``register.all_rows``, read in chunks and streamed),
    as CSV or JSON. A bad filter is 400 and exports nothing."""
    values, errors = register.parse(kind, request.GET)
    if errors:
        text = "\n".join(
            f"{LABELS[name]} ({name}): {_error_text(name, e.code)}" for name, e in errors.items()
        )
        return HttpResponse(text + "\n", status=400, content_type="text/plain; charset=utf-8")
    rows = register.all_rows(kind, values)
    stamp = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    if fmt == "csv":
        response = StreamingHttpResponse(
            _csv(kind, rows), content_type="text/csv; charset=utf-8; header=present"
        )
    else:
        response = StreamingHttpResponse(
            _json(kind, values, rows), content_type="application/json; charset=utf-8"
        )
    response["Content-Disposition"] = f'attachment; filename="{kind}-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


# ---- a batch -------------------------------------------------------------------------------

HISTORY_WORDS = {
    "batch.issue": gettext_lazy("Issued"),
    "credit.retire": pgettext_lazy("credits", "Retired"),
    "credit.cancel": pgettext_lazy("credits", "Cancelled"),
    "reversal.record": gettext_lazy("Cancelled from the buffer pool (reversal)"),
}


def batch(request: HttpRequest, key: str) -> HttpResponse:
    b = register.batch_get(key)
    if b is None:
        raise Http404
    before = _before(request)
    history, next_before = register.batch_history(b, before=before)
    rows = [
        {"row": h, "what": HISTORY_WORDS.get(h.type, h.type), "when": h.time[:19].replace("T", " ")}
        for h in history
    ]
    auditor = viewer(request)["is_auditor"]
    return render(
        request,
        "portal/batch.html",
        {
            "b": b,
            "supply": register.batch_supply(b),
            "history": rows,
            "next_before": next_before,
            "page_start": before is not None,
            "is_auditor": auditor,
            "explorer": f"{reverse('portal:ledger')}?batch={b.pk}" if auditor else None,
        },
    )


def _exports(kind: str) -> list[URLPattern]:
    return [
        path(
            f"registry/{kind}/export.{fmt}",
            export,
            {"kind": kind, "fmt": fmt},
            name=f"{kind}-{fmt}",
        )
        for fmt in ("csv", "json")
    ]


# Wired into portal/urls.py. A project's page stays there (views.project); "export.csv" has no
# trailing slash, so it is never taken for a project's code.
urlpatterns = [
    path("registry/projects/", projects, name="projects"),
    *_exports("projects"),
    path("registry/batches/", batches, name="batches"),
    *_exports("batches"),
    path("registry/batches/<str:key>/", batch, name="batch"),
    path("registry/retirements/", retirements, name="retirements"),
    *_exports("retirements"),
]
