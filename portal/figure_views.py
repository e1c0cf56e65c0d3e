"""The registry seen rather than read: the projects on a map (each project's page has its own,
templatetags/portal_figures.py) and the statistics page's charts. Public pages; the data comes
through portal/figures.py and portal/selectors.py, the drawing from portal/maps.py (GeoJSON
for the browser's Leaflet) and portal/charts.py (SVG drawn on the server)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from ledger.models import Ecosystem
from portal import charts, figures, maps, selectors

GEOJSON = "application/geo+json"


def _geojson(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type=GEOJSON)
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def project_map(request: HttpRequest) -> HttpResponse:
    """Every project on one map, each marker linking to its page; the list under it says the
    same in words."""
    projects = list(figures.project_locations())
    rows = [
        {"project": p, "words": maps.location_words(p.location), "kind": p.location.get("type")}
        for p in projects
    ]
    return render(
        request,
        "portal/project_map.html",
        {"rows": rows, "markers": maps.markers_text(projects)},
    )


def project_map_geojson(request: HttpRequest) -> HttpResponse:
    """Every project's registered geometry as one GeoJSON FeatureCollection."""
    projects = list(figures.project_locations())
    return _geojson(maps.collection_text(projects), "projects.geojson")


def project_location(request: HttpRequest, code: str) -> HttpResponse:
    """A project's registered location as a GeoJSON Feature (coordinates as registered)."""
    p = selectors.project(code)
    if p is None:
        raise Http404
    text = maps.feature_text(p)
    if text is None:
        raise Http404
    return _geojson(text, f"{p.code}.geojson")


def statistics(request: HttpRequest) -> HttpResponse:
    summary = selectors.supply_summary()
    timeline = figures.registry_timeline()
    by_ecosystem = figures.composition(summary, "ecosystem")
    by_jurisdiction = figures.composition(summary, "jurisdiction")
    return render(
        request,
        "portal/statistics.html",
        {
            "total": summary["total"],
            "timeline": timeline,
            "by_year": bool(timeline) and len(timeline[0].label) == 4,
            "timeline_svg": charts.timeline_svg(timeline) if timeline else None,
            "by_ecosystem": by_ecosystem,
            "ecosystem_svg": charts.composition_svg(
                by_ecosystem,
                chart_id="by-ecosystem",
                title=_("Issued credits by ecosystem: retired, cancelled and not retired"),
                name_of=Ecosystem.name_of,
            )
            if by_ecosystem
            else None,
            "by_jurisdiction": by_jurisdiction,
            "jurisdiction_svg": charts.composition_svg(
                by_jurisdiction,
                chart_id="by-jurisdiction",
                title=_("Issued credits by jurisdiction: retired, cancelled and not retired"),
            )
            if by_jurisdiction
            else None,
        },
    )
