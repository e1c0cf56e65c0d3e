"""methodology_register, project_register and project_update."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import records, services
from ledger.core.quantity import MAX_AREA_M2
from ledger.exceptions import (
    CommonCode,
    Conflict,
    ErrorCode,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from ledger.models import LedgerEntry, Methodology, Project
from tests import factories
from tests.factories import OPERATOR

# ---- methodology_register ---------------------------------------------------------------------


def test_it_registers_a_methodology_in_one_ledger_entry(db, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        m = services.methodology_register(
            actor=OPERATOR,
            code="VM0007",
            name="REDD+ Methodology Framework",
            standard="Verra",
            ecosystems=["seagrass", "mangrove", "seagrass"],
        )

    m.refresh_from_db()
    assert (m.code, m.standard, m.ecosystems) == ("VM0007", "Verra", ["mangrove", "seagrass"])
    assert new.entry.type == "methodology.register"
    assert new.entry.data == {
        "methodology": {
            "id": m.pk,
            "code": "VM0007",
            "name": "REDD+ Methodology Framework",
            "standard": "Verra",
            "ecosystems": ["mangrove", "seagrass"],
        }
    }
    verify_ledger()


def test_a_non_operator_cannot_register_a_methodology(world, refused):
    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        services.methodology_register(
            actor=factories.actor_for(world.registry),
            code="NEW-1",
            name="New",
            standard="Verra",
            ecosystems=["mangrove"],
        )
    assert not Methodology.objects.filter(code="NEW-1").exists()


def test_it_rejects_a_duplicate_methodology_code(world, refused):
    code = world.project.methodology.code

    with refused(Conflict, ErrorCode.DUPLICATE):
        services.methodology_register(
            actor=OPERATOR, code=code, name="Again", standard="Verra", ecosystems=["mangrove"]
        )


def test_it_rejects_an_unknown_ecosystem_in_a_methodology(world, refused):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.methodology_register(
            actor=OPERATOR, code="NEW-2", name="New", standard="Verra", ecosystems=["tundra"]
        )
    assert err.value.detail == {"ecosystems": "invalid_choice"}


# ---- project_register -------------------------------------------------------------------------


def project_fields(world, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        registry=world.registry.pk,
        code="BC-ZJ-001",
        name="Wenzhou Mangrove Restoration",
        ecosystem="mangrove",
        storage_pathway="biomass_sediment",
        methodology=world.project.methodology_id,
        jurisdiction="CN-ZJ",
        location={"type": "Point", "coordinates": ["120.7", "27.9"]},
        area_m2=1_250_000,
        developer=world.developer.pk,
        validation_body="CQC",
    )
    fields.update(overrides)
    return fields


def test_it_registers_a_project_in_one_ledger_entry(world, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        p = services.project_register(actor=OPERATOR, **project_fields(world))

    p.refresh_from_db()
    expected = {
        "id": p.pk,
        "code": "BC-ZJ-001",
        "name": "Wenzhou Mangrove Restoration",
        "ecosystem": "mangrove",
        "storage_pathway": "biomass_sediment",
        "methodology": world.project.methodology_id,
        "jurisdiction": "CN-ZJ",
        "location": {"type": "Point", "coordinates": ["120.7", "27.9"]},
        "area_m2": 1_250_000,
        "registry": world.registry.pk,
        "developer": world.developer.pk,
        "validation_body": "CQC",
        # Defaults: the registry's own handle and the project code; status "registered".
        "origin_registry": world.registry.handle,
        "origin_id": "BC-ZJ-001",
        # The id as given and its key under origin rule 1 (case-folded).
        "origin_key": "bc-zj-001",
        "origin_rule": 1,
        "status": "registered",
    }
    assert records.project_record(p) == expected
    assert new.entry.type == "project.register"
    assert new.entry.data == {"project": expected}
    verify_ledger()


def test_it_keeps_an_explicit_origin_registry_and_id(world):
    p = services.project_register(
        actor=OPERATOR, **project_fields(world, origin_registry="verra", origin_id="VCS-1764")
    )

    p.refresh_from_db()
    assert (p.origin_registry, p.origin_id) == ("verra", "VCS-1764")


def test_a_registry_may_register_projects_for_itself(world, one_new_entry):
    actor = factories.actor_for(world.registry)

    with one_new_entry() as new:
        p = services.project_register(actor=actor, **project_fields(world))

    assert p.registry_id == world.registry.pk
    assert new.entry.actor == actor.label


def test_a_bidder_organization_cannot_register_a_project(world, refused):
    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        services.project_register(actor=world.buy, **project_fields(world, registry=world.buyer.pk))
    assert not Project.objects.filter(code="BC-ZJ-001").exists()


def test_an_organization_cannot_register_a_project_in_another_registry(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.project_register(actor=world.dev, **project_fields(world))


@pytest.mark.parametrize("field", ["registry", "developer", "methodology"])
def test_it_rejects_a_project_with_an_unknown_reference(world, refused, field):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.project_register(actor=OPERATOR, **project_fields(world, **{field: 999_999}))


def test_it_rejects_a_duplicate_project_code(world, refused):
    with refused(Conflict, ErrorCode.DUPLICATE):
        services.project_register(
            actor=OPERATOR,
            **project_fields(world, code=world.project.code, origin_id="elsewhere"),
        )


def test_it_rejects_a_project_already_registered_under_the_same_origin_id(world, refused):
    services.project_register(
        actor=OPERATOR, **project_fields(world, origin_registry="verra", origin_id="VCS-1764")
    )

    with refused(Conflict, ErrorCode.DUPLICATE_ORIGIN) as err:
        services.project_register(
            actor=OPERATOR,
            **project_fields(world, code="OTHER", origin_registry="verra", origin_id="VCS-1764"),
        )
    assert err.value.detail == {"origin_id": "duplicate"}


def test_the_default_origin_id_collides_with_an_explicit_one_from_the_same_registry(world, refused):
    # world.project's default origin is (registry handle, its code).
    with refused(Conflict, ErrorCode.DUPLICATE_ORIGIN):
        services.project_register(
            actor=OPERATOR, **project_fields(world, code="FRESH", origin_id=world.project.code)
        )


def test_the_same_origin_id_from_another_origin_registry_is_fine(world):
    services.project_register(
        actor=OPERATOR, **project_fields(world, origin_registry="verra", origin_id="1764")
    )

    p = services.project_register(
        actor=OPERATOR,
        **project_fields(world, code="OTHER", origin_registry="gold-standard", origin_id="1764"),
    )

    assert Project.objects.filter(origin_id="1764").count() == 2
    assert p.origin_registry == "gold-standard"


def test_it_rejects_an_ecosystem_the_methodology_does_not_cover(world, refused):
    narrow = services.methodology_register(
        actor=OPERATOR, code="SEAGRASS-1", name="Seagrass", standard="X", ecosystems=["seagrass"]
    )

    with refused(Unprocessable, CommonCode.INVALID_FIELD) as err:
        services.project_register(actor=OPERATOR, **project_fields(world, methodology=narrow.pk))
    assert err.value.detail == {"methodology": "ecosystem"}


@pytest.mark.parametrize("area", [0, -1, 1.5, "100", True, None, MAX_AREA_M2 + 1, 2**63])
def test_it_rejects_an_area_that_is_not_a_positive_integer_in_range(world, refused, area):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY) as err:
        services.project_register(actor=OPERATOR, **project_fields(world, area_m2=area))
    assert err.value.detail == {"area": "invalid"}


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("code", "has space", {"code": "invalid"}),
        ("code", "", {"code": "required"}),
        ("name", "", {"name": "required"}),
        ("ecosystem", "tundra", {"ecosystem": "invalid_choice"}),
        ("storage_pathway", "ocean", {"storage_pathway": "invalid_choice"}),
        ("jurisdiction", "China", {"jurisdiction": "invalid"}),
        ("jurisdiction", "cn-zj", {"jurisdiction": "invalid"}),
        ("location", {"type": "Circle", "coordinates": []}, {"location": "invalid"}),
        ("location", {"type": "Point"}, {"location": "invalid"}),
        (
            "location",
            {"type": "Point", "coordinates": [120.7, 27.9]},
            {"location": "float_coordinates"},
        ),
        ("location", {"type": "Point", "coordinates": [True, "1"]}, {"location": "invalid"}),
        ("validation_body", "  ", {"validation_body": "required"}),
        ("status", "archived", {"status": "invalid_choice"}),
    ],
)
def test_it_rejects_a_project_with_a_malformed_field(world, refused, field, value, detail):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.project_register(actor=OPERATOR, **project_fields(world, **{field: value}))
    assert err.value.detail == detail


def test_it_accepts_an_area_of_a_billion_hectares(world):
    p = services.project_register(actor=OPERATOR, **project_fields(world, area_m2=MAX_AREA_M2))

    assert Project.objects.get(pk=p.pk).area_m2 == 10**13


@pytest.mark.parametrize(
    "coordinates",
    [
        ["121.95", "-29.5"],
        ["-180", "90"],
        ["0.123456789012", "0"],
        [180, -90],
        ["1", "2", "3"],  # with an altitude
    ],
)
def test_it_accepts_decimal_string_and_small_integer_coordinates(world, verify_ledger, coordinates):
    location = {"type": "Point", "coordinates": coordinates}

    p = services.project_register(actor=OPERATOR, **project_fields(world, location=location))

    assert Project.objects.get(pk=p.pk).location == location
    verify_ledger()


@pytest.mark.parametrize(
    "coordinate",
    ["east", "1234.5", "1e5", "+12", " 12", "12.", "0.1234567890123", "", 181, -181, 2**60, None],
)
def test_it_rejects_a_coordinate_that_is_not_a_short_decimal(world, refused, coordinate):
    location = {"type": "Point", "coordinates": ["121.95", coordinate]}

    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.project_register(actor=OPERATOR, **project_fields(world, location=location))
    assert err.value.detail == {"location": "invalid"}


# ---- project_update ---------------------------------------------------------------------------


def test_it_records_only_the_fields_that_changed(world, one_new_entry, verify_ledger):
    p = world.project

    with one_new_entry() as new:
        services.project_update(
            actor=OPERATOR,
            project=p.pk,
            name=p.name,  # unchanged
            status="suspended",
            area_m2=p.area_m2 + 5,
        )

    p.refresh_from_db()
    assert (p.status, p.area_m2) == ("suspended", 380 * 10_000 + 5)
    assert new.entry.type == "project.update"
    assert new.entry.data == {
        "project": p.pk,
        "changes": {"status": "suspended", "area_m2": 380 * 10_000 + 5},
    }
    verify_ledger()


def test_it_updates_every_mutable_field(world, one_new_entry, verify_ledger):
    changes = {
        "name": "Renamed",
        "status": "closed",
        "validation_body": "TUV",
        "location": {
            "type": "Polygon",
            "coordinates": [[["1", "2"], ["3", "4"], ["3", "2"], ["1", "2"]]],
        },
        "area_m2": 42,
        "storage_pathway": "sediment",
    }

    with one_new_entry() as new:
        services.project_update(actor=OPERATOR, project=world.project.pk, **changes)

    p = Project.objects.get(pk=world.project.pk)
    assert {k: getattr(p, k) for k in changes} == changes
    assert new.entry.data == {"project": p.pk, "changes": changes}
    verify_ledger()


def test_an_update_that_changes_nothing_writes_nothing(world):
    p = world.project
    before = LedgerEntry.objects.count()

    services.project_update(actor=OPERATOR, project=p.pk, name=p.name, status=p.status)
    services.project_update(actor=OPERATOR, project=p.pk)

    assert LedgerEntry.objects.count() == before


def test_a_registry_may_update_its_own_project(world, one_new_entry):
    with one_new_entry() as new:
        services.project_update(
            actor=factories.actor_for(world.registry), project=world.project.pk, name="Mine"
        )

    assert new.entry.data == {"project": world.project.pk, "changes": {"name": "Mine"}}


@pytest.mark.parametrize(
    "field",
    ["code", "registry", "developer", "methodology", "origin_registry", "origin_id", "ecosystem"],
)
def test_it_refuses_to_change_a_read_only_field(world, refused, field):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.project_update(
            actor=OPERATOR, project=world.project.pk, name="New name", **{field: "x"}
        )
    assert err.value.detail == {field: "read_only"}
    assert Project.objects.get(pk=world.project.pk).name != "New name"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("status", "archived"),
        ("storage_pathway", "ocean"),
        ("location", {"type": "Point", "coordinates": [1.5, 2.5]}),
        ("validation_body", "v" * 201),
    ],
)
def test_it_rejects_an_update_with_a_malformed_value(world, refused, field, value):
    with refused(InvalidInput, CommonCode.INVALID_FIELD):
        services.project_update(actor=OPERATOR, project=world.project.pk, **{field: value})


@pytest.mark.parametrize("area", [0, -5, "12", None, 2**63])
def test_it_reports_a_bad_area_in_an_update_with_the_same_code_as_at_registration(
    world, refused, area
):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY):
        services.project_update(actor=OPERATOR, project=world.project.pk, area_m2=area)


def test_another_organization_cannot_update_a_project(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.project_update(actor=world.dev, project=world.project.pk, name="Mine now")


def test_it_rejects_an_update_of_an_unknown_project(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.project_update(actor=OPERATOR, project=999_999, name="Ghost")


# ---- regressions: bugs found while writing these tests, since fixed ---------------------------


@pytest.mark.parametrize("field", ["registry", "developer", "methodology"])
def test_it_reports_a_non_integer_reference_in_a_registration_as_not_found(world, refused, field):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.project_register(actor=OPERATOR, **project_fields(world, **{field: "abc"}))


def test_it_reports_a_non_integer_project_id_in_an_update_as_not_found(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.project_update(actor=OPERATOR, project="P0001", name="Ghost")


def test_it_rejects_an_area_too_large_for_the_database_at_registration(world, refused):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY):
        services.project_register(actor=OPERATOR, **project_fields(world, area_m2=2**63))


def test_it_rejects_an_area_too_large_for_the_database_in_an_update(world, refused):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY):
        services.project_update(actor=OPERATOR, project=world.project.pk, area_m2=2**63)


def test_it_rejects_an_integer_coordinate_that_cannot_be_written_into_an_entry(world, refused):
    location = {"type": "Point", "coordinates": [2**60, 1]}

    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.project_register(actor=OPERATOR, **project_fields(world, location=location))
    assert err.value.detail == {"location": "invalid"}


def test_it_rejects_coordinates_that_are_not_decimal_strings(world, refused):
    location = {"type": "Point", "coordinates": ["east", "north"]}

    with refused(InvalidInput, CommonCode.INVALID_FIELD):
        services.project_register(actor=OPERATOR, **project_fields(world, location=location))
