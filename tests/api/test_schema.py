"""What the OpenAPI schema states beyond shapes (ledger/apis/schema.py): who may call each
operation, every status it answers with the codes each status carries, and the rules of its
input. tests/api/test_schema_fuzz.py holds the API to all of it; these say it plainly."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from bluecarbon.errors import Codes


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


PUBLIC = {
    "GET /api/v1/auctions",
    "GET /api/v1/auctions/{id}",
    "GET /api/v1/auctions/{id}/book",
    "GET /api/v1/auctions/{id}/result",
    "GET /api/v1/auctions/{id}/raises",
    "GET /api/v1/auctions/{id}/rounds",
    "GET /api/v1/auctions/receipts/verifier-keys",
    "GET /api/v1/documents/{id}",
    "GET /api/v1/documents/{id}/content",
    "GET /api/v1/ledger/checkpoints",
    "GET /api/v1/ledger/checkpoints/{size}",
    "GET /api/v1/ledger/checkpoints/latest",
    "GET /api/v1/ledger/entries",
    "GET /api/v1/ledger/entries/{seq}",
    "GET /api/v1/ledger/entries/{seq}/proof",
    "GET /api/v1/ledger/proofs/consistency",
    "GET /api/v1/ledger/proofs/inclusion",
    "GET /api/v1/ledger/verifier-keys",
    "GET /api/v1/listings",
    "GET /api/v1/listings/{id}",
    "GET /api/v1/projects/{id}/documents",
    "GET /api/v1/public/batches",
    "GET /api/v1/public/batches/{id}",
    "GET /api/v1/public/projects",
    "GET /api/v1/public/retirements",
    "GET /api/v1/retirements/{certificate}",
    "GET /api/v1/retirements/{certificate}/certificate.html",
}


def test_public_operations_require_no_credentials_and_the_others_a_key(schema):
    security = {name: op.get("security") for name, op in operations(schema)}
    assert {name for name, s in security.items() if s == [{}, {"apiKey": []}]} == PUBLIC
    assert {name for name, s in security.items() if s == [{"apiKey": []}, {"session": []}]} == (
        set(security) - PUBLIC
    )


def test_every_operation_lists_the_errors_of_its_kind(schema):
    for name, op in operations(schema):
        method, path = name.split(" ", 1)
        expected = {"401", "406", "429", "503"}
        if name not in PUBLIC:
            expected.add("403")
        if method in ("POST", "PUT", "PATCH"):
            expected |= {"400", "413", "415"}
        if "{" in path:
            expected.add("404")
        assert expected <= set(op["responses"]), name


def test_each_error_status_names_the_codes_it_carries(schema):
    components = schema["components"]["schemas"]
    for status in (400, 401, 403, 404, 406, 409, 413, 415, 422, 429, 503):
        enum = components[f"Error{status}CodeEnum"]["enum"]
        assert enum == sorted(str(c) for c in Codes.every() if status in c.statuses)
    assert "webhook_endpoint_limit" in components["Error409CodeEnum"]["enum"]
    assert "auction_closed" in components["Error409CodeEnum"]["enum"]
    assert components["Error404CodeEnum"]["enum"] == ["not_found"]  # one condition, one code


def test_the_input_rules_a_json_schema_can_state_are_in_it(schema):
    components = schema["components"]["schemas"]
    transfer = components["TransferCreateInputRequest"]["properties"]
    quantity = re.compile(transfer["quantity"]["pattern"])
    assert [bool(quantity.match(q)) for q in ("2340.1", "0.001", "0", "1.0001", "007", " 1")] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    assert transfer["batch"]["minimum"] == 1 and transfer["batch"]["maximum"] == 2**62
    retire = components["RetirementCreateInputRequest"]["properties"]
    assert retire["jurisdiction"]["pattern"] == "^(?:[A-Z]{2}-[A-Z0-9]{1,3})$"
    assert components["PatchedProjectUpdateInputRequest"]["additionalProperties"] is False
    cancel = components["CancellationCreateInputRequest"]
    assert "reason" in cancel["required"]
    assert cancel["properties"]["reason"]["not"] == {"pattern": "\\u0000"}
    (key,) = [
        p
        for p in schema["paths"]["/api/v1/transfers"]["post"]["parameters"]
        if p["name"] == "Idempotency-Key"
    ]
    assert (key["in"], key["schema"]["maxLength"]) == ("header", 255)


def test_the_headers_answers_carry_are_stated(schema):
    transfers = schema["paths"]["/api/v1/transfers"]["post"]["responses"]
    assert transfers["201"]["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]
    for name, op in operations(schema):
        for status in ("429", "503"):
            assert op["responses"][status]["headers"]["Retry-After"]["required"], name


def test_format_is_a_filter_of_auctions_not_a_choice_of_renderer(world, client):
    # DRF read ?format= as the renderer to use, and answered 404 for any other value.
    assert client.get("/api/v1/auctions?format=uniform").status_code == 200
    r = client.get("/api/v1/ledger/verifier-keys?format=xml")
    assert (r.status_code, r["Content-Type"]) == (200, "text/plain; charset=utf-8")


def test_the_tile_endpoints_outside_the_schema_refuse_other_methods_with_a_json_405(db):
    # Plain Django views (ledger/apis/tiles.py): the CSRF check answered a POST with an HTML
    # 403 before the view could refuse the method (found by schemathesis).
    client = Client(enforce_csrf_checks=True)
    for path in ("/api/v1/ledger/tlog/checkpoint", "/api/v1/ledger/tlog/tile/0/000"):
        r = client.post(path)
        assert (r.status_code, r.json()["code"], r["Allow"]) == (
            405,
            "method_not_allowed",
            "GET, HEAD, OPTIONS",
        )


def test_a_query_integer_is_written_in_ascii_digits(world, client_for):
    # DRF's IntegerField read ?after=0.0 as 0 (found by schemathesis: the schema says integer).
    client = client_for(world.developer)
    for after in ("0.0", "1_0", "\u0661", "+1", " 1", "1e3"):
        r = client.get("/api/v1/reversals", {"after": after})
        assert (r.status_code, r.json()["code"], r.json()["detail"]) == (
            400,
            "invalid",
            {"after": [{"code": "invalid", "message": "A valid integer is required."}]},
        ), after
    assert client.get("/api/v1/reversals", {"after": "0", "limit": "007"}).status_code == 200
