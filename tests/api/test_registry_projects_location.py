"""POST /projects with a location outside WGS 84: 400 in the JSON error shape, nothing written."""

from __future__ import annotations

from ledger.models import LedgerEntry, Project
from tests.api.test_registry_projects import error, payload


def test_a_location_outside_wgs84_is_400_and_writes_nothing(world, client_for):
    before = LedgerEntry.objects.count(), Project.objects.count()
    r = client_for(world.registry, "issue").post(
        "/api/v1/projects",
        payload(world, location={"type": "Point", "coordinates": ["200", "100"]}),
        format="json",
    )
    assert r.status_code == 400
    body = error(r)
    assert (body["code"], body["detail"]) == ("invalid_field", {"location": "out_of_range"})
    assert "longitude 200 is outside -180..180" in body["message"]
    assert (LedgerEntry.objects.count(), Project.objects.count()) == before


def test_a_location_whose_type_is_not_text_is_400_on_registration_and_change(world, client_for):
    # {"type": {}} once reached a set lookup and answered 500 (found by schemathesis).
    client = client_for(world.registry, "issue")
    bad = {"type": {}, "coordinates": ["110.4", "21.2"]}
    before = LedgerEntry.objects.count(), Project.objects.count()
    r = client.post("/api/v1/projects", payload(world, location=bad), format="json")
    assert (r.status_code, error(r)["detail"]) == (400, {"location": "invalid"})
    r = client.patch(f"/api/v1/projects/{world.project.pk}", {"location": bad}, format="json")
    assert (r.status_code, error(r)["detail"]) == (400, {"location": "invalid"})
    assert (LedgerEntry.objects.count(), Project.objects.count()) == before


def test_a_coordinate_with_a_trailing_newline_is_400(world, client_for):
    r = client_for(world.registry, "issue").post(
        "/api/v1/projects",
        payload(world, location={"type": "Point", "coordinates": ["110.4\n", "21.2"]}),
        format="json",
    )
    assert (r.status_code, error(r)["detail"]) == (400, {"location": "invalid"})
