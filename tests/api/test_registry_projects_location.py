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
