"""POST /projects and POST /batches refuse an origin id registered before, whatever its
spelling: 409 ``duplicate_origin`` (issue 14, item 3)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.models import LedgerEntry, Project, Role
from tests import factories
from tests.factories import sha
from tests.ledger.test_services_origin import confusable

pytestmark = pytest.mark.django_db

_n = itertools.count(1)

# The spellings of issue 14 that POST /projects accepted beside verra/VCS-2236.
REPORTED = [
    ("Verra", "VCS-2236"),
    ("verra", "vcs-2236"),
    ("verra", "VCS-\u200b2236"),
    ("verra", "\uff36\uff23\uff33-2236"),
    ("verra", "2236"),
]


@pytest.fixture
def registry():
    return factories.organization(Role.REGISTRY)


def project_payload(world, **fields: Any) -> dict[str, Any]:
    return {
        "code": f"CN-GD-ZJ-{next(_n):03d}",
        "name": "Zhanjiang mangrove restoration",
        "ecosystem": "mangrove",
        "storage_pathway": "biomass_sediment",
        "methodology": world.project.methodology_id,
        "jurisdiction": "CN-GD",
        "location": {"type": "Point", "coordinates": ["110.4", "21.2"]},
        "area_ha": "380",
        "developer": world.developer.pk,
        "validation_body": "CEC",
        **fields,
    }


def error(response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"code", "message", "detail"}, body
    return body


@pytest.fixture
def registered(world, registry, client_for):
    r = client_for(registry, "issue").post(
        "/api/v1/projects",
        project_payload(world, origin_registry="verra", origin_id="VCS-2236"),
        format="json",
    )
    assert r.status_code == 201, r.json()
    assert (r.json()["origin_registry"], r.json()["origin_id"]) == ("verra", "VCS-2236")
    return r.json()


@pytest.mark.parametrize(("origin_registry", "origin_id"), REPORTED)
def test_each_reported_spelling_of_a_registered_project_is_409(
    world, registry, client_for, registered, origin_registry, origin_id
):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/projects",
        project_payload(world, origin_registry=origin_registry, origin_id=origin_id),
        format="json",
    )
    assert r.status_code == 409, r.json()
    assert error(r)["code"] == "duplicate_origin"
    assert error(r)["detail"] == {"origin_id": "duplicate"}
    assert LedgerEntry.objects.count() == before


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spelling=st.sampled_from(["VCS-2236", "2236"]).flatmap(confusable))
def test_no_spelling_of_a_registered_project_is_accepted(
    world, registry, client_for, registered, spelling
):
    r = client_for(registry, "issue").post(
        "/api/v1/projects",
        project_payload(world, origin_registry="Verra", origin_id=spelling),
        format="json",
    )
    assert r.status_code == 409, r.json()
    assert error(r)["code"] == "duplicate_origin"
    assert Project.objects.filter(origin_registry="verra").count() == 1


def test_an_unknown_registry_of_origin_is_400_naming_the_list(world, registry, client_for):
    r = client_for(registry, "issue").post(
        "/api/v1/projects",
        project_payload(world, origin_registry="Verra Registry", origin_id="VCS-2236"),
        format="json",
    )
    assert r.status_code == 400
    assert error(r)["detail"] == {"origin_registry": "unknown_registry"}
    assert "other" in error(r)["message"]


def test_a_reissued_origin_transaction_in_another_spelling_is_409(world, registry, client_for):
    project = factories.project(registry, world.developer, code="CN-HI-WN-001")
    client = client_for(registry, "issue")
    body = {
        "project": project.pk,
        "verification_body": "DNV",
        "verification_report_sha256": sha("report"),
        "quantity": "100",
        "buffer_share": "0",
        "holder": world.dev_account.pk,
        "origin_registry": "verra",
    }
    first = client.post(
        "/api/v1/batches",
        {
            **body,
            "monitoring_start": "2021-01-01",
            "monitoring_end": "2021-12-31",
            "origin_tx_id": "VCU-77",
        },
        format="json",
    )
    assert first.status_code == 201, first.json()
    r = client.post(
        "/api/v1/batches",
        {
            **body,
            "monitoring_start": "2022-01-01",
            "monitoring_end": "2022-12-31",
            "origin_registry": "VCS",
            "origin_tx_id": " vcu-\u200b77",
        },
        format="json",
    )
    assert r.status_code == 409, r.json()
    assert error(r)["code"] == "duplicate_origin"
    assert error(r)["detail"] == {"origin_tx_id": "duplicate"}
