"""Checks of the services' input that several of them share: quantities, codes, jurisdictions,
hashes, geometries, areas, and the rows an id names (a foreign account is reported exactly like a
missing one). Each raises the error the caller's client gets and changes nothing.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from .. import validation
from ..actors import Actor
from ..core.quantity import MAX_AREA_M2, QuantityError, check_kg
from ..exceptions import ErrorCode, InvalidInput, NotFound
from ..models import Account

_JURISDICTION = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")


_COORDINATE = re.compile(r"^-?[0-9]{1,3}(\.[0-9]{1,12})?\Z")  # \Z: no trailing newline


_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


_GEOJSON_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


def _kg(value: object, field: str = "quantity") -> int:
    try:
        return check_kg(value)
    except QuantityError as exc:
        raise InvalidInput(
            f"{field}: {exc.message}",
            code=ErrorCode.INVALID_QUANTITY,
            detail={field: exc.code},
        ) from None


def _jurisdiction(value: object, field: str = "jurisdiction") -> str:
    if not isinstance(value, str) or not _JURISDICTION.match(value):
        raise InvalidInput(
            f"{field} must be an ISO 3166-2 code such as CN-ZJ", detail={field: "invalid"}
        )
    return value


def _sha256(value: object, field: str) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.match(value):
        raise InvalidInput(f"{field} must be 64 lowercase hex digits", detail={field: "invalid"})
    return value


def _geometry(value: object) -> dict[str, Any]:
    ok = (
        isinstance(value, dict)
        # A str first: {"type": {}} is not hashable, and the set lookup would raise.
        and isinstance(value.get("type"), str)
        and value.get("type") in _GEOJSON_TYPES
        and isinstance(value.get("coordinates"), list)
    )
    if not ok or not isinstance(value, dict):
        raise InvalidInput(
            "location must be a GeoJSON geometry (Point, Polygon, ...) with coordinates",
            detail={"location": "invalid"},
        )

    # Floats are not welcome in entry bytes: coordinates travel as decimal strings (or small
    # integers), exactly as given, so what is signed is what was submitted.
    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if isinstance(node, float):
            raise InvalidInput(
                'location coordinates must be decimal strings, e.g. "121.95", not floats',
                detail={"location": "float_coordinates"},
            )
        ok = (isinstance(node, str) and _COORDINATE.match(node)) or (
            isinstance(node, int) and not isinstance(node, bool) and -180 <= node <= 180
        )
        if not ok:
            raise InvalidInput(
                'location coordinates must be decimal strings, e.g. "121.95"',
                detail={"location": "invalid"},
            )

    walk(value["coordinates"])
    _geometry_check(value["type"], value["coordinates"])
    return {"type": value["type"], "coordinates": value["coordinates"]}


# RFC 7946: a geometry's type says how deep its positions are nested (§3.1.2-3.1.7).
_GEOJSON_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}


def _geometry_check(type_: str, coordinates: list[Any]) -> None:
    """The shape of each geometry type, WGS 84 ranges of every position (§4: longitude, then
    latitude), and closed polygon rings of at least four positions (§3.1.6). Run on input only:
    entries written before these checks keep verifying (the replay does not repeat them)."""

    def refuse(message: str, code: str) -> InvalidInput:
        return InvalidInput(f"location {message}", detail={"location": code})

    def position(node: Any, path: str) -> None:
        # §3.1.1: longitude, latitude and an optional altitude (more SHOULD NOT be sent).
        if (
            not isinstance(node, list)
            or not 2 <= len(node) <= 3
            or any(isinstance(c, list) for c in node)
        ):
            raise refuse(f"{path} must be a position [longitude, latitude]", "invalid")
        for name, c, bound in (("longitude", node[0], 180), ("latitude", node[1], 90)):
            if not -bound <= Decimal(c) <= bound:
                raise refuse(f"{path}: {name} {c} is outside -{bound}..{bound}", "out_of_range")

    def walk(node: Any, depth: int, path: str) -> None:
        if depth == 0:
            position(node, path)
            return
        if not isinstance(node, list) or not node:
            raise refuse(f"{path} must be a non-empty list", "invalid")
        for i, item in enumerate(node):
            walk(item, depth - 1, f"{path}[{i}]")

    def line(node: list[Any], path: str) -> None:
        if len(node) < 2:
            raise refuse(f"{path}: a line needs at least 2 positions", "too_few_positions")

    def polygon(rings: list[Any], path: str) -> None:
        for i, ring in enumerate(rings):
            if len(ring) < 4:
                raise refuse(
                    f"{path}[{i}]: a polygon ring needs at least 4 positions", "too_few_positions"
                )
            if [Decimal(c) for c in ring[0]] != [Decimal(c) for c in ring[-1]]:
                raise refuse(
                    f"{path}[{i}]: a polygon ring must end at its first position",
                    "ring_not_closed",
                )

    walk(coordinates, _GEOJSON_DEPTH[type_], "coordinates")
    if type_ == "LineString":
        line(coordinates, "coordinates")
    elif type_ == "MultiLineString":
        for i, part in enumerate(coordinates):
            line(part, f"coordinates[{i}]")
    elif type_ == "Polygon":
        polygon(coordinates, "coordinates")
    elif type_ == "MultiPolygon":
        for i, part in enumerate(coordinates):
            polygon(part, f"coordinates[{i}]")


def _get(model: Any, value: object) -> Any:
    key = validation.object_id(value)
    return model.objects.filter(pk=key).first() if key is not None else None


def _account(account_id: object, actor: Actor | None = None, field: str = "account") -> Account:
    account = _get(Account, account_id)
    # A foreign account is reported exactly like a missing one: no existence leak.
    if account is None or (actor is not None and not actor.may_act_for(account.organization_id)):
        raise NotFound(f"{field} {account_id} not found", detail={field: "not_found"})
    return account


def _area(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(
            "area must be an integer number of square metres",
            code=ErrorCode.INVALID_QUANTITY,
            detail={"area": "invalid"},
        )
    if not 0 < value <= MAX_AREA_M2:
        raise InvalidInput(
            "area must be greater than zero and at most 1,000,000,000 ha",
            code=ErrorCode.INVALID_QUANTITY,
            detail={"area": "invalid"},
        )
    return value
