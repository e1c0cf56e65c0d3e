"""GET and POST /projects, GET and PATCH /projects/{id}."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import services
from ledger.models import LedgerEntry, Project, Role
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry():
    """A registry that is not also an operator: it may act only for itself."""
    return factories.organization(Role.REGISTRY)


def payload(world, **fields: Any) -> dict[str, Any]:
    return {
        "code": "CN-HI-WN-001",
        "name": "Wanning mangrove",
        "ecosystem": "mangrove",
        "storage_pathway": "biomass_sediment",
        "methodology": world.project.methodology_id,
        "jurisdiction": "CN-HI",
        "location": {"type": "Point", "coordinates": ["110.39", "18.80"]},
        "area_ha": "41.5",
        "developer": world.developer.pk,
        "validation_body": "CEC",
        **fields,
    }


def project_json(p: Project) -> dict[str, Any]:
    return {
        "id": p.pk,
        "code": p.code,
        "name": p.name,
        "name_zh": p.name_zh,
        "ecosystem": p.ecosystem,
        "storage_pathway": p.storage_pathway,
        "methodology": p.methodology_id,
        "methodology_code": p.methodology.code,
        "jurisdiction": p.jurisdiction,
        "location": p.location,
        "area_ha": f"{p.area_m2 // 10_000}.{p.area_m2 % 10_000:04d}",
        "registry": p.registry_id,
        "developer": p.developer_id,
        "validation_body": p.validation_body,
        "origin_registry": p.origin_registry,
        "origin_id": p.origin_id,
        "status": p.status,
    }


def error(response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"code", "message", "detail"}, body
    return body


def field_code(response, field: str) -> str:
    body = error(response)
    assert body["code"] == "invalid", body
    return body["detail"][field][0]["code"]


# ---- POST /projects ---------------------------------------------------------------------------


def test_a_registry_registers_a_project_of_its_own(world, registry, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post("/api/v1/projects", payload(world), format="json")
    assert r.status_code == 201, r.json()
    p = Project.objects.get(code="CN-HI-WN-001")
    assert r.json() == {
        "id": p.pk,
        "code": "CN-HI-WN-001",
        "name": "Wanning mangrove",
        "name_zh": "",
        "ecosystem": "mangrove",
        "storage_pathway": "biomass_sediment",
        "methodology": world.project.methodology_id,
        "methodology_code": world.project.methodology.code,
        "jurisdiction": "CN-HI",
        "location": {"type": "Point", "coordinates": ["110.39", "18.80"]},
        "area_ha": "41.5000",
        "registry": registry.pk,
        "developer": world.developer.pk,
        "validation_body": "CEC",
        "origin_registry": registry.handle,
        "origin_id": "CN-HI-WN-001",
        "status": "registered",
    }
    assert p.area_m2 == 415_000
    assert LedgerEntry.objects.count() == before + 1
    assert LedgerEntry.objects.order_by("-seq").first().type == "project.register"


def test_an_imported_project_keeps_its_origin_and_status(world, registry, client_for):
    r = client_for(registry, "issue").post(
        "/api/v1/projects",
        payload(
            world,
            origin_registry="verra",
            origin_id="VCS-1234",
            status="active",
            area_ha="0.0001",
            storage_pathway="sediment",
        ),
        format="json",
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    assert (body["origin_registry"], body["origin_id"], body["status"]) == (
        "verra",
        "VCS-1234",
        "active",
    )
    assert (body["area_ha"], body["storage_pathway"]) == ("0.0001", "sediment")


def test_the_same_idempotency_key_registers_once(world, registry, client_for):
    client = client_for(registry, "issue")
    first = client.post(
        "/api/v1/projects", payload(world), format="json", HTTP_IDEMPOTENCY_KEY="p-1"
    )
    again = client.post(
        "/api/v1/projects", payload(world), format="json", HTTP_IDEMPOTENCY_KEY="p-1"
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Project.objects.filter(code="CN-HI-WN-001").count() == 1


BAD_FIELDS = [
    ("code", "has space", "invalid"),
    ("code", "-leading-dash", "invalid"),
    ("code", "x" * 65, "max_length"),
    ("name", "", "blank"),
    ("ecosystem", "kelp", "invalid_choice"),
    ("storage_pathway", "ocean", "invalid_choice"),
    ("methodology", "x", "invalid"),
    ("methodology", 0, "min_value"),
    ("methodology", 2**70, "max_value"),
    ("jurisdiction", "Guangdong", "invalid"),
    ("jurisdiction", "cn-gd", "invalid"),
    ("area_ha", "1.00001", "too_precise"),
    ("area_ha", "-3", "negative"),
    ("area_ha", "0", "zero"),
    ("area_ha", 41.5, "not_a_decimal"),
    ("area_ha", "4l", "not_a_decimal"),
    ("area_ha", "2000000000", "too_large"),
    ("developer", "me", "invalid"),
    ("status", "open", "invalid_choice"),
    ("location", None, "null"),
    ("validation_body", "x" * 201, "max_length"),
    ("origin_id", "x" * 129, "max_length"),
]


@pytest.mark.parametrize(("field", "value", "code"), BAD_FIELDS)
def test_a_bad_field_is_400_with_its_code_and_registers_nothing(
    world, registry, client_for, field, value, code
):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/projects", payload(world, **{field: value}), format="json"
    )
    assert r.status_code == 400
    assert field_code(r, field) == code
    assert LedgerEntry.objects.count() == before


def test_missing_fields_are_each_named_as_required(world, registry, client_for):
    r = client_for(registry, "issue").post("/api/v1/projects", {}, format="json")
    assert r.status_code == 400
    detail = error(r)["detail"]
    required = {
        "code",
        "name",
        "ecosystem",
        "storage_pathway",
        "methodology",
        "jurisdiction",
        "location",
        "area_ha",
        "developer",
        "validation_body",
    }
    assert set(detail) == required
    assert all(detail[f][0]["code"] == "required" for f in required)


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ({"type": "Point", "coordinates": [110.39, 18.8]}, "float_coordinates"),
        ({"type": "Point", "coordinates": ["east", "north"]}, "invalid"),
        ({"type": "Circle", "coordinates": ["1", "2"]}, "invalid"),
        ({"type": "Point"}, "invalid"),
        ("POINT(110 18)", "invalid"),
        ([["110", "18"]], "invalid"),
    ],
)
def test_a_location_that_is_not_geojson_with_decimal_strings_is_400(
    world, registry, client_for, location, code
):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/projects", payload(world, location=location), format="json"
    )
    assert r.status_code == 400
    # The service owns the GeoJSON rule; it names the field and its code.
    assert error(r)["detail"] == {"location": code}
    assert LedgerEntry.objects.count() == before


def test_a_polygon_location_is_stored_exactly_as_given(world, registry, client_for):
    ring = [["121.95", "29.5"], ["121.96", "29.5"], ["121.96", "29.51"], ["121.95", "29.5"]]
    r = client_for(registry, "issue").post(
        "/api/v1/projects",
        payload(world, location={"type": "Polygon", "coordinates": [ring]}),
        format="json",
    )
    assert r.status_code == 201, r.json()
    assert r.json()["location"] == {"type": "Polygon", "coordinates": [ring]}


@pytest.mark.parametrize("field", ["methodology", "developer"])
def test_an_unknown_methodology_or_developer_is_404_naming_it(world, registry, client_for, field):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/projects", payload(world, **{field: 999_999}), format="json"
    )
    assert r.status_code == 404
    assert error(r)["code"] == "not_found"
    assert error(r)["detail"] == {field: "not_found"}
    assert LedgerEntry.objects.count() == before


def test_a_duplicate_project_code_is_409(world, registry, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/projects", payload(world, code=world.project.code), format="json"
    )
    assert r.status_code == 409
    assert error(r)["code"] == "duplicate"
    assert LedgerEntry.objects.count() == before


def test_a_project_already_imported_from_its_origin_is_409(world, registry, client_for):
    client = client_for(registry, "issue")
    first = client.post(
        "/api/v1/projects",
        payload(world, origin_registry="verra", origin_id="VCS-1"),
        format="json",
    )
    assert first.status_code == 201
    before = LedgerEntry.objects.count()
    r = client.post(
        "/api/v1/projects",
        payload(world, code="OTHER-CODE", origin_registry="verra", origin_id="VCS-1"),
        format="json",
    )
    assert r.status_code == 409
    assert error(r)["code"] == "duplicate_origin"
    assert error(r)["detail"] == {"origin_id": "duplicate"}
    assert LedgerEntry.objects.count() == before


def test_a_methodology_that_does_not_cover_the_ecosystem_is_422(world, registry, client_for):
    seagrass_only = services.methodology_register(
        actor=factories.OPERATOR,
        code="CCER-14-004",
        name="Seagrass",
        standard="CCER",
        ecosystems=["seagrass"],
    )
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/projects", payload(world, methodology=seagrass_only.pk), format="json"
    )
    assert r.status_code == 422
    assert error(r)["detail"] == {"methodology": "ecosystem"}
    assert LedgerEntry.objects.count() == before


def test_an_organization_that_is_not_a_registry_is_403_even_with_the_scope(world, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(world.buyer, "issue").post("/api/v1/projects", payload(world), format="json")
    assert r.status_code == 403
    assert error(r)["code"] == "permission_denied"
    assert LedgerEntry.objects.count() == before


def test_registering_needs_the_issue_scope(world, registry, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "read", "transfer").post(
        "/api/v1/projects", payload(world), format="json"
    )
    assert r.status_code == 403
    assert LedgerEntry.objects.count() == before


# ---- GET /projects/{id} -----------------------------------------------------------------------


def test_any_caller_reads_any_registrys_project(world, client_for):
    r = client_for(world.buyer, "read").get(f"/api/v1/projects/{world.project.pk}")
    assert r.status_code == 200
    assert r.json() == project_json(world.project)
    assert r.json()["area_ha"] == "380.0000"
    assert r.json()["location"] == {"type": "Point", "coordinates": ["110.4", "21.2"]}


@pytest.mark.parametrize("raw", ["999999", "abc", "-1", "0", "1.5", "9" * 40])
def test_an_unknown_or_malformed_project_id_is_a_json_404(world, client_for, raw):
    r = client_for(world.buyer, "read").get(f"/api/v1/projects/{raw}")
    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert error(r)["code"] == "not_found"


# ---- PATCH /projects/{id} ---------------------------------------------------------------------


def test_the_registry_changes_its_projects_metadata(world, registry, client_for):
    p = factories.project(registry, world.developer)
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").patch(
        f"/api/v1/projects/{p.pk}",
        {"status": "suspended", "name": "Renamed", "area_ha": "12.25"},
        format="json",
    )
    assert r.status_code == 200, r.json()
    p.refresh_from_db()
    assert (p.status, p.name, p.area_m2) == ("suspended", "Renamed", 122_500)
    assert r.json() == project_json(p)
    assert r.json()["area_ha"] == "12.2500"
    assert LedgerEntry.objects.count() == before + 1
    assert LedgerEntry.objects.order_by("-seq").first().type == "project.update"


def test_a_patch_that_changes_nothing_writes_nothing(world, client_for):
    before = LedgerEntry.objects.count()
    client = client_for(world.registry, "issue")
    for body in ({}, {"status": world.project.status, "name": world.project.name}):
        r = client.patch(f"/api/v1/projects/{world.project.pk}", body, format="json")
        assert r.status_code == 200
        assert r.json() == project_json(world.project)
    assert LedgerEntry.objects.count() == before


def test_another_registry_sees_the_project_but_may_not_change_it(world, registry, client_for):
    client = client_for(registry, "issue", "read")
    assert client.get(f"/api/v1/projects/{world.project.pk}").status_code == 200
    before = LedgerEntry.objects.count()
    r = client.patch(f"/api/v1/projects/{world.project.pk}", {"name": "Mine"}, format="json")
    assert r.status_code == 403
    assert error(r)["code"] == "permission_denied"
    assert LedgerEntry.objects.count() == before
    world.project.refresh_from_db()
    assert world.project.name != "Mine"


def test_the_developer_may_not_change_the_project_either(world, client_for):
    r = client_for(world.developer, "issue").patch(
        f"/api/v1/projects/{world.project.pk}", {"status": "closed"}, format="json"
    )
    assert r.status_code == 403


def test_an_operator_changes_any_registrys_project(world, registry, client_for):
    p = factories.project(registry, world.developer)
    operator = factories.organization(Role.OPERATOR)
    r = client_for(operator, "issue").patch(
        f"/api/v1/projects/{p.pk}", {"validation_body": "DNV"}, format="json"
    )
    assert r.status_code == 200
    assert r.json()["validation_body"] == "DNV"


@pytest.mark.parametrize("field", ["code", "ecosystem", "methodology", "registry", "developer"])
def test_a_field_that_cannot_change_is_refused_not_ignored(world, client_for, field):
    before = LedgerEntry.objects.count()
    r = client_for(world.registry, "issue").patch(
        f"/api/v1/projects/{world.project.pk}", {field: "x", "name": "New"}, format="json"
    )
    assert r.status_code == 400
    assert field_code(r, field) == "read_only"
    assert LedgerEntry.objects.count() == before
    world.project.refresh_from_db()
    assert world.project.name != "New"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("status", "open", "invalid_choice"),
        ("storage_pathway", "ocean", "invalid_choice"),
        ("area_ha", "0", "zero"),
        ("area_ha", "1.00001", "too_precise"),
        ("name", "", "blank"),
    ],
)
def test_a_bad_change_is_400_with_its_code(world, client_for, field, value, code):
    before = LedgerEntry.objects.count()
    r = client_for(world.registry, "issue").patch(
        f"/api/v1/projects/{world.project.pk}", {field: value}, format="json"
    )
    assert r.status_code == 400
    assert field_code(r, field) == code
    assert LedgerEntry.objects.count() == before


def test_a_float_location_change_is_400(world, client_for):
    r = client_for(world.registry, "issue").patch(
        f"/api/v1/projects/{world.project.pk}",
        {"location": {"type": "Point", "coordinates": [1.5, 2.5]}},
        format="json",
    )
    assert r.status_code == 400
    assert error(r)["detail"] == {"location": "float_coordinates"}


@pytest.mark.parametrize("raw", ["999999", "abc", "-3"])
def test_patching_an_unknown_project_is_404(world, client_for, raw):
    r = client_for(world.registry, "issue").patch(
        f"/api/v1/projects/{raw}", {"name": "x"}, format="json"
    )
    assert r.status_code == 404
    assert error(r)["code"] == "not_found"


def test_patching_needs_the_issue_scope(world, client_for):
    r = client_for(world.registry, "read", "transfer").patch(
        f"/api/v1/projects/{world.project.pk}", {"name": "x"}, format="json"
    )
    assert r.status_code == 403


# ---- GET /projects ----------------------------------------------------------------------------


@pytest.fixture
def catalogue(world, registry):
    """Five projects over two registries, two developers, two methodologies."""
    other_dev = factories.organization(Role.DEVELOPER)
    seagrass = services.methodology_register(
        actor=factories.OPERATOR,
        code="CCER-14-004",
        name="Seagrass",
        standard="CCER",
        ecosystems=["seagrass"],
    )
    p = factories.project
    return {
        "gd_mangrove": world.project,  # CN-GD, active, world.registry, world.developer
        "zj_seagrass": p(registry, other_dev, seagrass, ecosystem="seagrass", jurisdiction="CN-ZJ"),
        "zj_mangrove": p(registry, world.developer, jurisdiction="CN-ZJ", status="registered"),
        "au_mangrove": p(world.registry, other_dev, jurisdiction="AU-QLD", status="suspended"),
        "hi_seagrass": p(
            world.registry, world.developer, seagrass, ecosystem="seagrass", jurisdiction="CN-HI"
        ),
        "registry": registry,
        "other_dev": other_dev,
        "seagrass": seagrass,
    }


def listed(client, **params) -> list[int]:
    r = client.get("/api/v1/projects", params)
    assert r.status_code == 200, r.json()
    return [p["id"] for p in r.json()["results"]]


def test_every_caller_lists_every_registrys_projects_in_id_order(world, catalogue, client_for):
    r = client_for(world.buyer, "read").get("/api/v1/projects")
    assert r.status_code == 200
    ids = sorted(p.pk for p in Project.objects.all())
    assert len(ids) == 5
    assert [p["id"] for p in r.json()["results"]] == ids
    assert r.json()["results"][0] == project_json(world.project)
    assert r.json()["next_after"] is None


def test_projects_filter_by_each_field_and_by_several(world, catalogue, client_for):
    c = catalogue
    client = client_for(world.buyer, "read")

    def ids(*names: str) -> list[int]:
        return sorted(c[n].pk for n in names)

    everything = ids("gd_mangrove", "zj_seagrass", "zj_mangrove", "au_mangrove", "hi_seagrass")
    assert listed(client, ecosystem="seagrass") == ids("zj_seagrass", "hi_seagrass")
    assert listed(client, jurisdiction="CN-ZJ") == ids("zj_seagrass", "zj_mangrove")
    assert listed(client, jurisdiction="CN") == ids(
        "gd_mangrove", "zj_seagrass", "zj_mangrove", "hi_seagrass"
    )
    assert listed(client, jurisdiction="AU") == ids("au_mangrove")
    assert listed(client, methodology="CCER-14-004") == ids("zj_seagrass", "hi_seagrass")
    assert listed(client, methodology=str(c["seagrass"].pk)) == ids("zj_seagrass", "hi_seagrass")
    assert listed(client, status="suspended") == ids("au_mangrove")
    assert listed(client, status="registered") == ids("zj_mangrove")
    assert listed(client, developer=c["other_dev"].pk) == ids("zj_seagrass", "au_mangrove")
    assert listed(client, registry=c["registry"].pk) == ids("zj_seagrass", "zj_mangrove")
    assert listed(client, ecosystem="mangrove", jurisdiction="CN", status="active") == ids(
        "gd_mangrove"
    )
    assert listed(client, methodology="NO-SUCH-CODE") == []
    assert listed(client, developer=999_999) == []
    assert listed(client) == everything


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"ecosystem": "kelp"}, "ecosystem", "invalid_choice"),
        ({"jurisdiction": "cn-gd"}, "jurisdiction", "invalid"),
        ({"jurisdiction": "CN-GD'--"}, "jurisdiction", "invalid"),
        ({"jurisdiction": "C%"}, "jurisdiction", "invalid"),
        ({"status": "open"}, "status", "invalid_choice"),
        ({"developer": "abc"}, "developer", "invalid"),
        ({"developer": "0"}, "developer", "min_value"),
        ({"developer": "9" * 30}, "developer", "max_value"),
        ({"registry": "-1"}, "registry", "min_value"),
        ({"methodology": "x" * 65}, "methodology", "max_length"),
        ({"methodology": "a\x00b"}, "methodology", "null_characters_not_allowed"),
        # An empty value is a bad value (what the schema says), not "no filter": leave it out.
        ({"ecosystem": ""}, "ecosystem", "invalid_choice"),
        ({"developer": ""}, "developer", "invalid"),
        ({"methodology": " "}, "methodology", "blank"),
        ({"status": ["active", "closed"]}, "status", "repeated"),
    ],
)
def test_a_bad_project_filter_is_400_naming_it(world, client_for, params, field, code):
    r = client_for(world.buyer, "read").get("/api/v1/projects", params)
    assert r.status_code == 400
    assert field_code(r, field) == code


def test_listing_projects_needs_the_read_scope(world, client_for):
    assert client_for(world.registry, "issue").get("/api/v1/projects").status_code == 403
