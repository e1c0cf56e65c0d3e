"""A project's location: every position of every GeoJSON geometry type is checked on input
(WGS 84 ranges, closed polygon rings of four or more positions), and nothing is written when
one is wrong; entries written before the check keep verifying."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import services
from ledger.exceptions import CommonCode, InvalidInput
from ledger.models import Project
from ledger.services import checks
from tests.factories import OPERATOR
from tests.ledger.test_services_projects import project_fields

SQUARE = [["120.1", "27.1"], ["120.2", "27.1"], ["120.2", "27.2"], ["120.1", "27.1"]]


@pytest.mark.parametrize(
    "location",
    [
        {"type": "Point", "coordinates": ["-180", "-90"]},
        {"type": "Point", "coordinates": [180, 90]},
        {"type": "Point", "coordinates": ["179.999999", "89.5", "-3.5"]},  # with altitude
        {"type": "MultiPoint", "coordinates": [["120.7", "27.9"], ["-120.7", "-27.9"]]},
        {"type": "LineString", "coordinates": [["120.7", "27.9"], ["120.8", "28"]]},
        {
            "type": "MultiLineString",
            "coordinates": [[["1", "2"], ["3", "4"]], [["5", "6"], ["7", "8"]]],
        },
        {"type": "Polygon", "coordinates": [SQUARE]},
        {"type": "Polygon", "coordinates": [[["1", "2"], ["3", "2"], ["3", "4"], ["1.0", "2.00"]]]},
        {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE, SQUARE]]},
    ],
)
def test_it_accepts_every_geometry_type_within_wgs84(world, location):
    p = services.project_register(actor=OPERATOR, **project_fields(world, location=location))
    assert Project.objects.get(pk=p.pk).location == location


@pytest.mark.parametrize(
    ("location", "code", "where"),
    [
        ({"type": "Point", "coordinates": ["200", "100"]}, "out_of_range", "longitude 200"),
        ({"type": "Point", "coordinates": ["120", "100"]}, "out_of_range", "latitude 100"),
        ({"type": "Point", "coordinates": ["-180.000001", "0"]}, "out_of_range", "longitude"),
        ({"type": "Point", "coordinates": [120, 91]}, "out_of_range", "latitude 91"),
        ({"type": "Point", "coordinates": ["120"]}, "invalid", "coordinates"),
        ({"type": "Point", "coordinates": ["1", "2", "3", "4"]}, "invalid", "coordinates"),
        ({"type": "Point", "coordinates": [["1", "2"]]}, "invalid", "coordinates"),
        (
            {"type": "MultiPoint", "coordinates": [["1", "2"], ["1", "-95"]]},
            "out_of_range",
            "coordinates[1]: latitude -95",
        ),
        ({"type": "MultiPoint", "coordinates": []}, "invalid", "coordinates"),
        ({"type": "MultiPoint", "coordinates": ["1", "2"]}, "invalid", "coordinates[0]"),
        (
            {"type": "LineString", "coordinates": [["1", "2"], ["181", "2"]]},
            "out_of_range",
            "coordinates[1]: longitude 181",
        ),
        ({"type": "LineString", "coordinates": [["1", "2"]]}, "too_few_positions", "coordinates"),
        (
            {"type": "MultiLineString", "coordinates": [[["1", "2"], ["3", "4"]], [["5", "6"]]]},
            "too_few_positions",
            "coordinates[1]",
        ),
        (
            {"type": "MultiLineString", "coordinates": [[["1", "2"], ["3", "400"]]]},
            "out_of_range",
            "coordinates[0][1]",
        ),
        (
            {"type": "Polygon", "coordinates": [[["1", "2"], ["3", "2"], ["1", "2"]]]},
            "too_few_positions",
            "coordinates[0]",
        ),
        (
            {"type": "Polygon", "coordinates": [[["1", "2"], ["3", "2"], ["3", "4"], ["1", "3"]]]},
            "ring_not_closed",
            "coordinates[0]",
        ),
        (
            {"type": "Polygon", "coordinates": [SQUARE, [*SQUARE[:3], ["200", "27.1"]]]},
            "out_of_range",
            "coordinates[1][3]",
        ),
        ({"type": "Polygon", "coordinates": [["1", "2"]]}, "invalid", "coordinates[0]"),
        (
            {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE[:3]]]},
            "too_few_positions",
            "coordinates[1][0]",
        ),
        (
            {"type": "MultiPolygon", "coordinates": [[[*SQUARE[:3], ["120.1", "-27.1"]]]]},
            "ring_not_closed",
            "coordinates[0][0]",
        ),
        (
            {"type": "MultiPolygon", "coordinates": [[SQUARE, [["0", "0"]] * 3 + [["0", "90.5"]]]]},
            "out_of_range",
            "coordinates[0][1][3]",
        ),
        ({"type": "MultiPolygon", "coordinates": [SQUARE]}, "invalid", "coordinates[0][0]"),
    ],
)
def test_it_refuses_a_location_outside_wgs84_or_of_the_wrong_shape(
    world, refused, location, code, where
):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.project_register(actor=OPERATOR, **project_fields(world, location=location))
    assert err.value.detail == {"location": code}
    assert where in err.value.message


def test_it_refuses_an_update_to_a_location_outside_wgs84(world, refused):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.project_update(
            actor=OPERATOR,
            project=world.project.pk,
            location={"type": "Point", "coordinates": ["200", "100"]},
        )
    assert err.value.detail == {"location": "out_of_range"}


def test_an_entry_written_before_the_check_keeps_verifying(world, monkeypatch, verify_ledger):
    # What the registry accepted before: ["200", "100"] is in the ledger already.
    monkeypatch.setattr(checks, "_geometry_check", lambda *args: None)
    old: dict[str, Any] = {"type": "Point", "coordinates": ["200", "100"]}
    p = services.project_register(actor=OPERATOR, **project_fields(world, location=old))
    monkeypatch.undo()
    assert Project.objects.get(pk=p.pk).location == old
    verify_ledger()
