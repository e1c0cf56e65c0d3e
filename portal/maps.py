"""A project's location for maps and for words: RFC 7946 GeoJSON with the coordinates as JSON
numbers written digit for digit as registered, and the position said in words in the reader's
language (the map's text alternative).

The ledger keeps coordinates as decimal strings (ledger/services/checks.py), which is exact but
not GeoJSON any GIS tool reads; the files served here turn each string into the same number
without passing through a float."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from ledger.models import Project
from portal import geo
from portal.names import local_name


def _number(value: Any) -> str:
    """A registered coordinate as a JSON number: ``"121.830"`` -> ``121.830``, ``"-05.5"`` ->
    ``-5.5`` (JSON allows no leading zero), an integer as it is."""
    if isinstance(value, bool):
        raise ValueError("not a coordinate")
    if isinstance(value, int):
        return str(value)
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a coordinate: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a coordinate: {value!r}")
    return f"{d:f}"


def _coordinates(node: Any, depth: int) -> str:
    if depth == 0:
        return "[" + ",".join(_number(c) for c in node) + "]"
    return "[" + ",".join(_coordinates(child, depth - 1) for child in node) + "]"


def geometry_text(geometry: Any) -> str | None:
    """The geometry as RFC 7946 JSON text with numeric coordinates; None for what is not a
    geometry of a type the registry takes."""
    if not isinstance(geometry, dict) or geometry.get("type") not in geo.DEPTH:
        return None
    try:
        coordinates = _coordinates(geometry.get("coordinates"), geo.DEPTH[geometry["type"]])
    except (TypeError, ValueError):
        return None
    return f'{{"type":{json.dumps(geometry["type"])},"coordinates":{coordinates}}}'


def _properties(p: Project) -> dict[str, Any]:
    return {
        "code": p.code,
        "name": local_name(p),  # in the reader's language, as the page around the map
        "ecosystem": p.ecosystem,
        "jurisdiction": p.jurisdiction,
        "url": reverse("portal:project", args=[p.code]),
    }


def feature_text(p: Project) -> str | None:
    """The project as a GeoJSON Feature (its registered geometry), or None without one."""
    geometry = geometry_text(p.location)
    if geometry is None:
        return None
    properties = json.dumps(_properties(p), ensure_ascii=False, sort_keys=True)
    return f'{{"type":"Feature","geometry":{geometry},"properties":{properties}}}'


def markers_text(projects: list[Project]) -> str:
    """A FeatureCollection of one Point per project (where its marker goes: a point's own
    position, otherwise the middle of its shape's bounding box), for the overview map."""
    features = []
    for p in projects:
        point = geo.marker_point(p.location)
        if point is None:
            continue
        lon, lat = point
        features.append(
            f'{{"type":"Feature","geometry":{{"type":"Point","coordinates":'
            f"[{_number(lon)},{_number(lat)}]}},"
            f'"properties":{json.dumps(_properties(p), ensure_ascii=False, sort_keys=True)}}}'
        )
    return '{"type":"FeatureCollection","features":[' + ",".join(features) + "]}"


def collection_text(projects: list[Project]) -> str:
    """Every project's registered geometry as one FeatureCollection (the overview's download)."""
    features = [f for p in projects if (f := feature_text(p)) is not None]
    return '{"type":"FeatureCollection","features":[' + ",".join(features) + "]}"


def position_words(lon: Decimal, lat: Decimal) -> str:
    """``29.47° N, 121.83° E`` in English, the same in the Chinese words on a Chinese page."""
    latitude = (_("%(degrees)s° N") if lat >= 0 else _("%(degrees)s° S")) % {
        "degrees": geo.degrees(lat)
    }
    longitude = (_("%(degrees)s° E") if lon >= 0 else _("%(degrees)s° W")) % {
        "degrees": geo.degrees(lon)
    }
    return _("%(latitude)s, %(longitude)s") % {"latitude": latitude, "longitude": longitude}


SHAPES = {
    "MultiPoint": "points",
    "LineString": "line",
    "MultiLineString": "line",
    "Polygon": "area",
    "MultiPolygon": "area",
}


def location_words(geometry: Any) -> str:
    """The location in a sentence: a point's position, or a shape's middle and extent."""
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    b = geo.box(geometry)
    if b is None:
        return _("No location registered.")
    if kind == "Point":
        return _("A point at %(position)s.") % {"position": position_words(b.west, b.south)}
    lon, lat = b.centre
    shape = {
        "points": _("Points"),
        "line": _("A line"),
        "area": _("An area"),
    }[SHAPES.get(str(kind), "area")]
    return _("%(shape)s centred on %(centre)s, from %(south_west)s to %(north_east)s.") % {
        "shape": shape,
        "centre": position_words(lon, lat),
        "south_west": position_words(b.west, b.south),
        "north_east": position_words(b.east, b.north),
    }
