"""GET and POST /batches, GET /batches/{id} with its totals."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Sum

from ledger import services
from ledger.models import Batch, Holding, LedgerEntry, Role
from tests import factories
from tests.factories import sha

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry():
    """A registry that is not also an operator: it may issue only for its own projects."""
    return factories.organization(Role.REGISTRY)


@pytest.fixture
def own_project(world, registry):
    return factories.project(registry, world.developer, code="CN-HI-WN-001")


def payload(project, holder, **fields: Any) -> dict[str, Any]:
    return {
        "project": project.pk,
        "monitoring_start": "2022-01-01",
        "monitoring_end": "2022-12-31",
        "verification_body": "DNV",
        "verification_report_sha256": sha("report 2022"),
        "quantity": "220",
        "buffer_share": "12.5",
        "holder": holder.pk,
        **fields,
    }


def error(response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"code", "message", "detail"}, body
    return body


def field_code(response, field: str) -> str:
    body = error(response)
    assert body["code"] == "invalid", body
    return body["detail"][field][0]["code"]


def tradable(account, batch_id: int) -> int:
    return Holding.objects.get(account=account, batch_id=batch_id).tradable


# ---- POST /batches ----------------------------------------------------------------------------


def test_a_registry_issues_a_batch_split_between_holder_and_buffer_pool(
    world, registry, own_project, client_for
):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/batches", payload(own_project, world.dev_account), format="json"
    )
    assert r.status_code == 201, r.json()
    b = Batch.objects.get(pk=r.json()["id"])
    assert r.json() == {
        "id": b.pk,
        "serial": "BC-CN-HI-WN-001-20220101-20221231-001",
        "project": own_project.pk,
        "monitoring_start": "2022-01-01",
        "monitoring_end": "2022-12-31",
        "vintage": 2022,
        "verification_body": "DNV",
        "verification_report_sha256": sha("report 2022"),
        "buffer_share": "12.50",
        "origin_registry": registry.handle,
        "origin_tx_id": None,
        "issued": "220.000",
        "buffer_withheld": "27.500",
        "retired": "0.000",
        "cancelled": "0.000",
        "outstanding": "220.000",
    }
    buffer = registry.accounts.get(kind="buffer")
    assert (tradable(world.dev_account, b.pk), tradable(buffer, b.pk)) == (192_500, 27_500)
    assert LedgerEntry.objects.count() == before + 1
    assert LedgerEntry.objects.order_by("-seq").first().type == "batch.issue"


def test_an_imported_issuance_keeps_its_origin_and_a_stated_vintage(
    world, registry, own_project, client_for
):
    r = client_for(registry, "issue").post(
        "/api/v1/batches",
        payload(
            own_project,
            world.dev_account,
            origin_registry="verra",
            origin_tx_id="VCS-ISS-9",
            vintage=2021,
            quantity="2340.1",
            buffer_share="0",
        ),
        format="json",
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    assert (body["origin_registry"], body["origin_tx_id"], body["vintage"]) == (
        "verra",
        "VCS-ISS-9",
        2021,
    )
    assert (body["issued"], body["buffer_withheld"], body["buffer_share"]) == (
        "2340.100",
        "0.000",
        "0.00",
    )


def test_the_same_idempotency_key_issues_once(world, registry, own_project, client_for):
    client = client_for(registry, "issue")
    body = payload(own_project, world.dev_account)
    first = client.post("/api/v1/batches", body, format="json", HTTP_IDEMPOTENCY_KEY="b-1")
    again = client.post("/api/v1/batches", body, format="json", HTTP_IDEMPOTENCY_KEY="b-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert own_project.batches.count() == 1


BAD_FIELDS = [
    ("project", "P1", "invalid"),
    ("project", 0, "min_value"),
    ("monitoring_start", "2022/01/01", "invalid"),
    ("monitoring_start", "2022-02-30", "invalid"),
    ("monitoring_end", "2022-12-31T00:00:00Z", "invalid"),
    ("vintage", 1989, "min_value"),
    ("vintage", "soon", "invalid"),
    ("verification_body", "", "blank"),
    ("verification_report_sha256", sha("r").upper(), "invalid"),
    ("verification_report_sha256", "abc", "invalid"),
    ("quantity", "1.0001", "too_precise"),
    ("quantity", "0", "zero"),
    ("quantity", "-1", "negative"),
    ("quantity", 1.5, "not_a_decimal"),
    ("quantity", "1e3", "not_a_decimal"),
    ("quantity", "1000000000000.001", "too_large"),
    ("buffer_share", "12.345", "too_precise"),
    ("buffer_share", "100.01", "out_of_range"),
    ("buffer_share", 20.0, "not_a_decimal"),
    ("holder", None, "null"),
    ("holder", "dev", "invalid"),
    ("origin_tx_id", "x" * 129, "max_length"),
]


@pytest.mark.parametrize(("field", "value", "code"), BAD_FIELDS)
def test_a_bad_field_is_400_with_its_code_and_issues_nothing(
    world, registry, own_project, client_for, field, value, code
):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/batches",
        {**payload(own_project, world.dev_account), field: value},
        format="json",
    )
    assert r.status_code == 400
    assert field_code(r, field) == code
    assert LedgerEntry.objects.count() == before


def test_a_missing_holder_is_required_not_guessed(world, registry, own_project, client_for):
    body = payload(own_project, world.dev_account)
    del body["holder"]
    r = client_for(registry, "issue").post("/api/v1/batches", body, format="json")
    assert r.status_code == 400
    assert field_code(r, "holder") == "required"


def test_a_period_that_ends_before_it_starts_is_400(world, registry, own_project, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/batches",
        payload(
            own_project,
            world.dev_account,
            monitoring_start="2022-12-31",
            monitoring_end="2022-01-01",
        ),
        format="json",
    )
    assert r.status_code == 400
    assert error(r)["code"] == "invalid_period"
    assert error(r)["detail"] == {"monitoring_end": "before_start"}
    assert LedgerEntry.objects.count() == before


def test_an_overlapping_monitoring_period_is_409_and_issues_nothing(
    world, registry, own_project, client_for
):
    client = client_for(registry, "issue")
    first = client.post("/api/v1/batches", payload(own_project, world.dev_account), format="json")
    assert first.status_code == 201
    before = LedgerEntry.objects.count()
    r = client.post(
        "/api/v1/batches",
        payload(
            own_project,
            world.dev_account,
            monitoring_start="2022-12-31",
            monitoring_end="2023-06-30",
            verification_report_sha256=sha("report 2023"),
        ),
        format="json",
    )
    assert r.status_code == 409
    assert error(r)["code"] == "overlapping_period"
    assert error(r)["detail"] == {"overlaps": first.json()["serial"]}
    assert LedgerEntry.objects.count() == before


def test_the_next_period_of_the_same_project_is_fine(world, registry, own_project, client_for):
    client = client_for(registry, "issue")
    first = client.post("/api/v1/batches", payload(own_project, world.dev_account), format="json")
    assert first.status_code == 201
    r = client.post(
        "/api/v1/batches",
        payload(
            own_project,
            world.dev_account,
            monitoring_start="2023-01-01",
            monitoring_end="2023-12-31",
        ),
        format="json",
    )
    assert r.status_code == 201
    assert r.json()["serial"].endswith("-20230101-20231231-002")


def test_an_origin_issued_before_is_409_and_issues_nothing(world, client_for):
    world.issue(year=2020, origin_registry="verra", origin_tx_id="VCS-7")
    before = LedgerEntry.objects.count()
    r = client_for(world.registry, "issue").post(
        "/api/v1/batches",
        payload(world.project, world.dev_account, origin_registry="verra", origin_tx_id="VCS-7"),
        format="json",
    )
    assert r.status_code == 409
    assert error(r)["code"] == "duplicate_origin"
    assert error(r)["detail"] == {"origin_tx_id": "duplicate"}
    assert LedgerEntry.objects.count() == before


def test_a_suspended_project_issues_nothing(world, registry, own_project, client_for):
    services.project_update(actor=factories.OPERATOR, project=own_project.pk, status="suspended")
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/batches", payload(own_project, world.dev_account), format="json"
    )
    assert r.status_code == 409
    assert error(r)["code"] == "project_not_active"
    assert LedgerEntry.objects.count() == before


def test_credits_are_not_issued_into_a_buffer_pool(world, registry, own_project, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/batches",
        payload(own_project, registry.accounts.get(kind="buffer")),
        format="json",
    )
    assert r.status_code == 422
    assert error(r)["code"] == "buffer_account"
    assert LedgerEntry.objects.count() == before


def test_another_registrys_project_is_404_like_an_unknown_one(world, registry, client_for):
    client = client_for(registry, "issue")
    before = LedgerEntry.objects.count()
    foreign = client.post(
        "/api/v1/batches", payload(world.project, world.dev_account), format="json"
    )
    unknown = client.post(
        "/api/v1/batches",
        {**payload(world.project, world.dev_account), "project": 999_999},
        format="json",
    )
    assert foreign.status_code == unknown.status_code == 404
    assert error(foreign)["detail"] == error(unknown)["detail"] == {"project": "not_found"}
    assert LedgerEntry.objects.count() == before


def test_an_unknown_holder_is_404_naming_it(world, registry, own_project, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "issue").post(
        "/api/v1/batches",
        {**payload(own_project, world.dev_account), "holder": 999_999},
        format="json",
    )
    assert r.status_code == 404
    assert error(r)["detail"] == {"holder": "not_found"}
    assert LedgerEntry.objects.count() == before


def test_issuing_needs_the_issue_scope(world, registry, own_project, client_for):
    before = LedgerEntry.objects.count()
    r = client_for(registry, "read", "transfer", "retire", "cancel").post(
        "/api/v1/batches", payload(own_project, world.dev_account), format="json"
    )
    assert r.status_code == 403
    assert LedgerEntry.objects.count() == before


# ---- GET /batches/{id} ------------------------------------------------------------------------


def test_a_batch_reads_back_with_totals_that_match_its_holdings(world, client_for):
    b = world.issue(5_000_000, share_bp=2000)  # 1,000 t to the buffer pool, 4,000 t to the dev
    dev, buyer = world.dev_account.pk, world.buyer_account.pk
    services.credit_transfer(actor=world.dev, batch=b.pk, sender=dev, recipient=buyer, quantity=1)
    services.escrow_hold(
        actor=world.dev, batch=b.pk, account=dev, quantity=2_340_100, reference="auction 1"
    )
    services.credit_retire(
        actor=world.dev,
        batch=b.pk,
        account=dev,
        quantity=1_500,
        beneficiary="Ningbo Port",
        purpose="2023 offset",
        jurisdiction="CN-ZJ",
    )
    services.credit_cancel(
        actor=world.dev, batch=b.pk, account=dev, quantity=250, reason="exported", destination="x"
    )
    r = client_for(world.buyer, "read").get(f"/api/v1/batches/{b.pk}")
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("issued", "buffer_withheld", "retired", "cancelled")} == {
        "issued": "5000.000",
        "buffer_withheld": "1000.000",
        "retired": "1.500",
        "cancelled": "0.250",
    }
    assert body["outstanding"] == "4998.250"
    held = Holding.objects.filter(batch=b).aggregate(t=Sum("tradable"), e=Sum("escrowed"))
    assert held["t"] + held["e"] == 4_998_250
    assert held["e"] == 2_340_100


@pytest.mark.parametrize("raw", ["999999", "abc", "-1", "0", "9" * 30, "BC-P0001"])
def test_an_unknown_or_malformed_batch_id_is_a_json_404(world, client_for, raw):
    r = client_for(world.buyer, "read").get(f"/api/v1/batches/{raw}")
    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert error(r)["code"] == "not_found"


# ---- GET /batches -----------------------------------------------------------------------------


@pytest.fixture
def issued(world, registry):
    seagrass = factories.project(registry, world.developer, ecosystem="seagrass")
    return {
        "w2021": world.issue(year=2021),
        "w2022": world.issue(year=2022),
        "s2021": factories.batch(seagrass, year=2021, holder=world.dev_account),
        "seagrass": seagrass,
    }


def listed(client, **params) -> list[int]:
    r = client.get("/api/v1/batches", params)
    assert r.status_code == 200, r.json()
    return [b["id"] for b in r.json()["results"]]


def test_every_caller_lists_every_batch_in_id_order(world, issued, client_for):
    r = client_for(world.buyer, "read").get("/api/v1/batches")
    assert r.status_code == 200
    assert [b["id"] for b in r.json()["results"]] == sorted(
        b.pk for b in (issued["w2021"], issued["w2022"], issued["s2021"])
    )
    assert r.json()["results"][0]["serial"] == issued["w2021"].serial
    assert r.json()["next_after"] is None


def test_batches_filter_by_project_vintage_and_ecosystem(world, issued, client_for):
    client = client_for(world.buyer, "read")
    w2021, w2022, s2021 = issued["w2021"].pk, issued["w2022"].pk, issued["s2021"].pk
    assert listed(client, project=world.project.pk) == [w2021, w2022]
    assert listed(client, project=issued["seagrass"].pk) == [s2021]
    assert listed(client, vintage=2021) == [w2021, s2021]
    assert listed(client, ecosystem="seagrass") == [s2021]
    assert listed(client, ecosystem="mangrove", vintage=2022) == [w2022]
    assert listed(client, project=999_999) == []


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"vintage": "soon"}, "vintage", "invalid"),
        ({"vintage": "1989"}, "vintage", "min_value"),
        ({"vintage": "99999"}, "vintage", "max_value"),
        ({"project": "P0001"}, "project", "invalid"),
        ({"project": "9" * 25}, "project", "max_value"),
        ({"ecosystem": "kelp"}, "ecosystem", "invalid_choice"),
    ],
)
def test_a_bad_batch_filter_is_400_naming_it(world, client_for, params, field, code):
    r = client_for(world.buyer, "read").get("/api/v1/batches", params)
    assert r.status_code == 400
    assert field_code(r, field) == code


def test_reading_batches_needs_the_read_scope(world, client_for):
    b = world.issue()
    client = client_for(world.registry, "issue")
    assert client.get("/api/v1/batches").status_code == 403
    assert client.get(f"/api/v1/batches/{b.pk}").status_code == 403
