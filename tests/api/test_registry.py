"""Organization, accounts, methodologies, projects, batches, holdings."""

from __future__ import annotations

import pytest

from ledger.models import LedgerEntry
from tests.factories import sha

pytestmark = pytest.mark.django_db


def project_payload(world, **extra):
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
        **extra,
    }


def test_the_caller_sees_its_organization_and_accounts(world, client_for):
    body = client_for(world.buyer).get("/api/v1/organization").json()
    assert body["handle"] == world.buyer.handle
    assert [a["id"] for a in body["accounts"]] == [world.buyer_account.pk]
    listed = client_for(world.buyer).get("/api/v1/accounts").json()
    assert [a["id"] for a in listed["results"]] == [world.buyer_account.pk]


def test_a_registry_registers_a_project_and_issues_a_batch(world, client_for):
    client = client_for(world.registry, "issue", "read")
    r = client.post("/api/v1/projects", project_payload(world), format="json")
    assert r.status_code == 201, r.json()
    project = r.json()
    assert project["area_ha"] == "41.5000"
    assert project["registry"] == world.registry.pk
    r = client.post(
        "/api/v1/batches",
        {
            "project": project["id"],
            "monitoring_start": "2022-01-01",
            "monitoring_end": "2022-12-31",
            "verification_body": "DNV",
            "verification_report_sha256": sha("r"),
            "quantity": "220",
            "buffer_share": "12.5",
            "holder": world.dev_account.pk,
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    batch = r.json()
    assert (batch["issued"], batch["buffer_withheld"], batch["buffer_share"]) == (
        "220.000",
        "27.500",
        "12.50",
    )
    holdings = client_for(world.developer).get("/api/v1/holdings").json()["results"]
    assert [(h["batch"], h["tradable"]) for h in holdings] == [(batch["id"], "192.500")]
    assert (
        client.get("/api/v1/projects", {"ecosystem": "mangrove", "jurisdiction": "CN-HI"}).json()[
            "results"
        ][0]["code"]
        == "CN-HI-WN-001"
    )


def test_an_overlapping_period_is_409_and_writes_nothing(world, client_for):
    world.issue(year=2021)
    before = LedgerEntry.objects.count()
    r = client_for(world.registry, "issue").post(
        "/api/v1/batches",
        {
            "project": world.project.pk,
            "monitoring_start": "2021-06-01",
            "monitoring_end": "2022-05-31",
            "verification_body": "DNV",
            "verification_report_sha256": sha("r"),
            "quantity": "1",
            "buffer_share": "0",
            "holder": world.dev_account.pk,
        },
        format="json",
    )
    assert r.status_code == 409
    assert r.json()["code"] == "overlapping_period"
    assert LedgerEntry.objects.count() == before


@pytest.mark.parametrize(
    "field,value",
    [("area_ha", "1.00001"), ("area_ha", "-3"), ("ecosystem", "kelp"), ("methodology", "x")],
)
def test_bad_project_fields_are_400(world, client_for, field, value):
    r = client_for(world.registry, "issue").post(
        "/api/v1/projects", project_payload(world, **{field: value}), format="json"
    )
    assert r.status_code == 400
    assert field in r.json()["detail"]


def test_a_bidder_cannot_register_projects(world, client_for):
    r = client_for(world.buyer, "issue").post(
        "/api/v1/projects", project_payload(world), format="json"
    )
    assert r.status_code == 403


def test_bad_filters_are_400_never_500(world, client_for):
    client = client_for(world.buyer)
    for url, params in [
        ("/api/v1/projects", {"ecosystem": "kelp"}),
        ("/api/v1/batches", {"vintage": "soon"}),
        ("/api/v1/holdings", {"account": "-1"}),
        ("/api/v1/projects", {"limit": "0"}),
    ]:
        assert client.get(url, params).status_code == 400, (url, params)


def test_only_the_registry_updates_a_project(world, client_for):
    r = client_for(world.registry, "issue").patch(
        f"/api/v1/projects/{world.project.pk}", {"status": "suspended"}, format="json"
    )
    assert r.status_code == 200
    assert r.json()["status"] == "suspended"
    r = client_for(world.developer, "issue").patch(
        f"/api/v1/projects/{world.project.pk}", {"status": "active"}, format="json"
    )
    # Projects are public registry data: the developer sees it, and may not change it.
    assert r.status_code == 403


def test_a_key_opens_an_account_for_its_own_organization(world, client_for):
    client = client_for(world.buyer, "transfer", "read")
    r = client.post("/api/v1/accounts", {"name": "Trading"}, format="json")
    assert r.status_code == 201
    assert r.json()["organization"] == world.buyer.pk
    assert r.json()["kind"] == "holding"
    assert client.post("/api/v1/accounts", {"name": ""}, format="json").status_code == 400


def test_methodologies_batches_and_projects_read_back_exactly(world, client_for):
    b = world.issue(2_340_100, share_bp=0)
    client = client_for(world.buyer)
    methodologies = client.get("/api/v1/methodologies").json()["results"]
    assert world.project.methodology.code in [m["code"] for m in methodologies]
    batch = client.get(f"/api/v1/batches/{b.pk}").json()
    assert (batch["serial"], batch["issued"], batch["outstanding"]) == (
        b.serial,
        "2340.100",
        "2340.100",
    )
    assert client.get("/api/v1/batches/999999").status_code == 404
    project = client.get(f"/api/v1/projects/{world.project.pk}").json()
    assert project["code"] == world.project.code
    assert project["location"] == {"type": "Point", "coordinates": ["110.4", "21.2"]}
    assert client.get("/api/v1/projects/999999").status_code == 404


def test_lists_page_with_a_stable_cursor(world, client_for):
    from tests.factories import project

    for _ in range(3):
        project(world.registry, world.developer)
    client = client_for(world.buyer)
    ids, after, pages = [], 0, 0
    while after is not None:
        page = client.get("/api/v1/projects", {"limit": 2, "after": after}).json()
        ids += [p["id"] for p in page["results"]]
        after, pages = page["next_after"], pages + 1
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 4
    assert pages == 2  # next_after is null exactly when nothing follows: no empty last page
