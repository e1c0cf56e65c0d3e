"""GET /methodologies and /methodologies/{id}: public reference data."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ledger import services
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def vm0033():
    return services.methodology_register(
        actor=factories.OPERATOR,
        code="VM0033",
        name="Methodology for Tidal Wetland and Seagrass Restoration",
        standard="Verra",
        ecosystems=["seagrass", "salt_marsh", "mangrove"],
    )


VM0033_JSON = {
    "code": "VM0033",
    "name": "Methodology for Tidal Wetland and Seagrass Restoration",
    "name_zh": "",
    "standard": "Verra",
    "ecosystems": ["mangrove", "salt_marsh", "seagrass"],
}


def test_every_caller_lists_the_methodologies_in_id_order(world, vm0033, client_for):
    r = client_for(world.buyer, "read").get("/api/v1/methodologies")
    assert r.status_code == 200
    body = r.json()
    assert body["next_after"] is None
    assert [m["id"] for m in body["results"]] == [world.project.methodology_id, vm0033.pk]
    assert body["results"][1] == {"id": vm0033.pk, **VM0033_JSON}


def test_one_methodology_reads_back_exactly(world, vm0033, client_for):
    r = client_for(world.developer, "read").get(f"/api/v1/methodologies/{vm0033.pk}")
    assert r.status_code == 200
    assert r.json() == {"id": vm0033.pk, **VM0033_JSON}


@pytest.mark.parametrize("raw", ["999999", "VM0033", "-1", "0", "9" * 25])
def test_an_unknown_or_malformed_methodology_id_is_a_json_404(world, vm0033, client_for, raw):
    r = client_for(world.buyer, "read").get(f"/api/v1/methodologies/{raw}")
    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert r.json()["code"] == "not_found"


def test_methodologies_need_the_read_scope(world, vm0033, client_for):
    client = client_for(world.buyer, "transfer", "issue")
    assert client.get("/api/v1/methodologies").status_code == 403
    assert client.get(f"/api/v1/methodologies/{vm0033.pk}").status_code == 403


def test_methodologies_are_not_for_anonymous_callers(world, vm0033):
    assert APIClient().get("/api/v1/methodologies").status_code == 401
    assert APIClient().get(f"/api/v1/methodologies/{vm0033.pk}").status_code == 401
