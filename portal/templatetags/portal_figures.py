"""The figures a page can put anywhere: a project's map (the project page) and the registry's
timeline (the home page). Tags rather than view context, so a page gains a figure with one line
of its template."""

from __future__ import annotations

from typing import Any

from django import template

from ledger.models import Project
from portal import charts, figures, maps

register = template.Library()


@register.inclusion_tag("portal/_project_map.html")
def project_map(project: Project) -> dict[str, Any]:
    return {
        "project": project,
        "feature": maps.feature_text(project) or "",
        "words": maps.location_words(project.location),
    }


@register.inclusion_tag("portal/_timeline_figure.html")
def registry_timeline() -> dict[str, Any]:
    timeline = figures.registry_timeline()
    return {"svg": charts.timeline_svg(timeline, chart_id="home-timeline") if timeline else None}


@register.filter
def location_words(geometry: Any) -> str:
    """A registered location in words, in the reader's language (maps.location_words)."""
    return maps.location_words(geometry)
