from __future__ import annotations

import pytest

from ledger.apis.auth import ApiKeyRateThrottle

pytestmark = pytest.mark.django_db


def test_a_key_over_its_rate_gets_429_with_retry_after(world, client_for, monkeypatch):
    # A low rate for this test only: the class reads its rates from settings at import.
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"apikey": "3/min"})
    client = client_for(world.developer, "transfer")
    other = client_for(world.buyer, "transfer")
    statuses = [client.post("/api/v1/transfers", {}, format="json").status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]
    throttled = client.post("/api/v1/transfers", {}, format="json")
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert 1 <= int(throttled["Retry-After"]) <= 60
    assert throttled.json()["detail"] == {"retry_after": int(throttled["Retry-After"])}
    # Per key: another organization's key is not affected.
    assert other.post("/api/v1/transfers", {}, format="json").status_code == 400
