"""``/api/v1/public/...``: the public register's lists without a key, filtered as the portal's
lists are (the same rows and columns as its exports), bad filters refused with the API's error
shape, throttled per address, and nothing private."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle

from ledger import public_register as register
from tests.portal.test_register import PRIVATE, Register

pytestmark = pytest.mark.django_db


@pytest.fixture
def reg(db) -> Register:
    return Register()


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


def test_the_lists_need_no_key(reg, anon):
    for kind in register.LISTS:
        r = anon.get(f"/api/v1/public/{kind}")
        assert r.status_code == 200, r.content
        assert r.json()["next_after"] is None and r.json()["results"]


@pytest.mark.parametrize("kind", ["projects", "batches", "retirements"])
@pytest.mark.parametrize("query", [{}, {"jurisdiction": "CN-ZJ"}, {"vintage": 2021}, {"q": "P"}])
def test_the_api_answers_the_rows_the_portal_exports(reg, anon, client, kind, query):
    exported = list(
        csv.DictReader(
            io.StringIO(
                b"".join(
                    client.get(f"/registry/{kind}/export.csv", query).streaming_content
                ).decode()
            )
        )
    )
    got = anon.get(f"/api/v1/public/{kind}", query).json()["results"]
    # The API pages in id (or ledger) order, the lists newest first or by code.
    key = {"projects": "code", "batches": "serial", "retirements": "certificate"}[kind]
    assert sorted(r[key] for r in got) == sorted(r[key] for r in exported)
    by_key = {r[key]: r for r in exported}
    for row in got:
        for column in register.COLUMNS[kind]:
            assert str(row[column]) == by_key[row[key]][column], column


def test_pages_follow_next_after(reg, anon):
    first = anon.get("/api/v1/public/batches", {"limit": 2}).json()
    assert [r["id"] for r in first["results"]] == [reg.b2021.pk, reg.b2022.pk]
    rest = anon.get("/api/v1/public/batches", {"limit": 2, "after": first["next_after"]}).json()
    assert [r["id"] for r in rest["results"]] == [reg.b2023.pk] and rest["next_after"] is None
    page = anon.get("/api/v1/public/retirements", {"limit": 1}).json()
    assert page["next_after"] == reg.ret_a.entry_seq


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"vintage": "1800"}, "vintage", "min_value"),
        ({"ecosystem": "coral"}, "ecosystem", "invalid_choice"),
        ({"jurisdiction": "cn-gd"}, "jurisdiction", "invalid"),
        ({"q": "x" * 101}, "q", "max_length"),
        ({"q": "   "}, "q", "blank"),
    ],
)
def test_a_bad_filter_is_400_naming_it(reg, anon, query, field, code):
    r = anon.get("/api/v1/public/batches", query)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid"
    assert body["detail"][field][0]["code"] == code


def test_a_batch_answers_its_supply_by_bucket(reg, anon):
    body = anon.get(f"/api/v1/public/batches/{reg.b2021.pk}").json()
    assert body["serial"] == reg.b2021.serial
    assert body["supply"] == {
        "issued_tco2e": "1000.000",
        "tradable_tco2e": "620.500",
        "escrowed_tco2e": "50.000",
        "buffer_tco2e": "200.000",
        "retired_tco2e": "120.500",
        "cancelled_tco2e": "9.000",
    }
    assert anon.get("/api/v1/public/batches/999999").status_code == 404
    assert anon.get("/api/v1/public/batches/abc").json()["code"] == "not_found"


def test_anonymous_callers_are_throttled_per_address(reg, monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "2/min", "apikey": "9/min"})
    one = APIClient(REMOTE_ADDR="198.51.100.1")
    statuses = [one.get("/api/v1/public/projects").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    r = one.get("/api/v1/public/batches")
    assert r.status_code == 429 and r.json()["code"] == "throttled"
    assert int(r["Retry-After"]) >= 1
    assert APIClient(REMOTE_ADDR="198.51.100.2").get("/api/v1/public/projects").status_code == 200


def test_nothing_private_is_answered(reg, anon):
    for kind in register.LISTS:
        text = anon.get(f"/api/v1/public/{kind}").content.decode()
        for secret in (*PRIVATE, reg.world.buyer.name):
            assert secret not in text
    text = anon.get(f"/api/v1/public/batches/{reg.b2021.pk}").content.decode()
    assert "account" not in text and "PRIVATE" not in text
