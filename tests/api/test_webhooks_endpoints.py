"""A webhook endpoint's life through the API: its delivery log is a page like every list, and a
deactivated (DELETE) endpoint is gone for its owner: not listed, and its log, its replay and a
second DELETE answer 404 as for an endpoint that never existed (schemathesis' use_after_free
found its deliveries still listed)."""

from __future__ import annotations

import pytest

from tests.api.test_webhooks_scheduler import hook_with_deliveries


@pytest.fixture(autouse=True)
def _loopback_receivers(settings) -> None:
    settings.WEBHOOK_ALLOW_LOOPBACK = True


def test_the_delivery_log_is_a_page(world, client_for):
    endpoint = hook_with_deliveries(world, "http://127.0.0.1:9/hook", 3)
    client = client_for(world.buyer, "read")
    first = client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries?limit=2").json()
    assert [d["status"] for d in first["results"]] == ["pending", "pending"]
    rest = client.get(
        f"/api/v1/webhooks/{endpoint.pk}/deliveries?after={first['next_after']}"
    ).json()
    assert len(rest["results"]) == 1 and rest["next_after"] is None
    seqs = [d["entry_seq"] for d in first["results"] + rest["results"]]
    assert seqs == sorted(seqs)


def test_a_deleted_endpoint_and_its_deliveries_are_gone(world, client_for):
    endpoint = hook_with_deliveries(world, "http://127.0.0.1:9/hook", 2)
    client = client_for(world.buyer, "read")
    r = client.delete(f"/api/v1/webhooks/{endpoint.pk}")
    assert (r.status_code, r.json()["active"]) == (200, False)
    assert client.get("/api/v1/webhooks").json() == []
    gone = [
        client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries"),
        client.post(f"/api/v1/webhooks/{endpoint.pk}/replay", {"after": -1}, format="json"),
        client.delete(f"/api/v1/webhooks/{endpoint.pk}"),
    ]
    assert [(r.status_code, r.json()["code"]) for r in gone] == [(404, "not_found")] * 3


@pytest.mark.parametrize("pk", ["abc", "0", "-1", "9" * 30, "1.5"])
def test_an_endpoint_id_that_cannot_be_one_is_a_json_404(world, client_for, pk):
    client = client_for(world.buyer, "read")
    for r in (
        client.delete(f"/api/v1/webhooks/{pk}"),
        client.get(f"/api/v1/webhooks/{pk}/deliveries"),
        client.post(f"/api/v1/webhooks/{pk}/replay", {"after": -1}, format="json"),
    ):
        assert (r.status_code, r["Content-Type"], r.json()["code"]) == (
            404,
            "application/json",
            "not_found",
        )
