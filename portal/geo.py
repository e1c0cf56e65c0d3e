"""A project's GeoJSON location (RFC 7946) read for maps and words: its positions, its
bounding box and a point to put a marker on. Pure: no Django.

Coordinates on the ledger are decimal strings (or small integers), exactly as registered
(ledger/services/checks.py), so the arithmetic here is ``Decimal``: what the page says about a
position is the position registered, not a float's rounding of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# How deep each geometry type nests its positions (RFC 7946 §3.1).
DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}


@dataclass(frozen=True)
class Box:
    """West, south, east and north, in degrees."""

    west: Decimal
    south: Decimal
    east: Decimal
    north: Decimal

    @property
    def centre(self) -> tuple[Decimal, Decimal]:
        """(longitude, latitude) of the box's middle."""
        return (self.west + self.east) / 2, (self.south + self.north) / 2


def positions(geometry: Any) -> Iterator[tuple[Decimal, Decimal]]:
    """Every (longitude, latitude) of the geometry; nothing for what is not one."""
    if not isinstance(geometry, dict) or geometry.get("type") not in DEPTH:
        return

    def walk(node: Any, depth: int) -> Iterator[tuple[Decimal, Decimal]]:
        if not isinstance(node, list):
            return
        if depth == 0:
            if len(node) >= 2:
                try:
                    yield Decimal(str(node[0])), Decimal(str(node[1]))
                except InvalidOperation:
                    return
            return
        for child in node:
            yield from walk(child, depth - 1)

    yield from walk(geometry.get("coordinates"), DEPTH[geometry["type"]])


def box(geometry: Any) -> Box | None:
    """The bounding box of the geometry's positions; None for a geometry without any."""
    found = list(positions(geometry))
    if not found:
        return None
    lons = [p[0] for p in found]
    lats = [p[1] for p in found]
    return Box(min(lons), min(lats), max(lons), max(lats))


def marker_point(geometry: Any) -> tuple[Decimal, Decimal] | None:
    """Where a marker for the geometry goes, as (longitude, latitude): a point's own position,
    otherwise the middle of its bounding box."""
    if isinstance(geometry, dict) and geometry.get("type") == "Point":
        first = next(positions(geometry), None)
        if first is not None:
            return first
    b = box(geometry)
    return None if b is None else b.centre


def degrees(value: Decimal, places: int = 4) -> str:
    """An angle's size in degrees, rounded half-even to ``places`` and without trailing zeros
    (``Decimal("121.8300")`` -> ``"121.83"``); the sign is the caller's (N/S, E/W)."""
    text = f"{abs(value).quantize(Decimal(1).scaleb(-places)):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
