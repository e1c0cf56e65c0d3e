"""Malformed bodies are refused in the API's JSON error shape, never a 500 or an HTML page:
JSON nested 100,000 deep (at the top level, inside a field, inside a bulk operation) is a
400, a body over the upload limit a 413."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from ledger.apis.parsers import MAX_DEPTH, nesting_exceeds

DEEP = 100_000


def nested(depth: int, inside: str = "@") -> str:
    """``inside`` with its ``@`` replaced by arrays nested ``depth`` deep."""
    return inside.replace("@", "[" * depth + "]" * depth)


@pytest.fixture
def client(world, client_for) -> APIClient:
    client = client_for(world.developer)
    client.raise_request_exception = False  # a 500 must be seen as one, not re-raised
    return client


def post(client: APIClient, path: str, body: str, **headers: str):
    r = client.post(path, body, content_type="application/json", **headers)
    assert r["Content-Type"] == "application/json", r.content[:300]
    error = r.json()
    assert set(error) == {"code", "message", "detail"}
    return r.status_code, error


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/transfers", nested(DEEP)),
        ("/api/v1/transfers", nested(DEEP, '{"batch": 1, "quantity": @}')),
        ("/api/v1/projects", nested(DEEP, '{"location": {"type": "Point", "coordinates": @}}')),
        ("/api/v1/bulk", nested(DEEP, '{"operations": [{"op": "transfer", "batch": @}]}')),
    ],
    ids=["top-level", "in-a-field", "in-a-geometry", "in-bulk"],
)
def test_json_nested_100000_deep_is_a_400(client, path, body):
    for headers in ({}, {"HTTP_IDEMPOTENCY_KEY": "deep-1"}):
        status, error = post(client, path, body, **headers)
        assert (status, error["code"]) == (400, "parse_error")
        assert f"nested deeper than {MAX_DEPTH} levels" in error["message"]


def test_nesting_is_refused_just_past_the_bound_and_parsed_at_it(client):
    # Under the decoder's own limit, so only the bound refuses it: what walks a body later
    # (serializers, the idempotency hash, the ledger's encoding) never sees it.
    status, error = post(client, "/api/v1/bulk", nested(MAX_DEPTH, '{"operations": @}'))
    assert (status, error["code"]) == (400, "parse_error")
    status, error = post(client, "/api/v1/bulk", nested(MAX_DEPTH - 1, '{"operations": @}'))
    assert (status, error["code"]) != (400, "parse_error")
    assert status == 400  # [[...]] is not a list of operations: the serializer says so


def test_a_body_over_the_upload_limit_is_a_json_413(client):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"batch": 1, "reason": "x" * limit})
    for headers in ({}, {"HTTP_IDEMPOTENCY_KEY": "large-1"}):
        for path in ("/api/v1/transfers", "/api/v1/bulk"):
            status, error = post(client, path, body, **headers)
            assert (status, error["code"]) == (413, "request_too_large")
            assert error["detail"] == {"limit_bytes": limit}
    status, _ = post(client, "/api/v1/transfers", json.dumps({"reason": "x" * (limit - 100)}))
    assert status == 400  # just under the limit: read, and refused for what it says


def test_nesting_is_measured_without_recursion():
    assert not nesting_exceeds(1, 0) and not nesting_exceeds("[[[", 0)
    assert not nesting_exceeds([], 1) and nesting_exceeds([], 0)
    assert not nesting_exceeds({"a": [1, {"b": []}]}, 4) and nesting_exceeds({"a": [{"b": []}]}, 3)
    deep: list = []
    for _ in range(DEEP):  # deeper than any recursive walk could go
        deep = [deep]
    assert nesting_exceeds(deep, MAX_DEPTH) and not nesting_exceeds(deep, DEEP + 1)


def test_the_guide_states_the_limits_the_code_enforces():
    guide = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    assert f"at most **{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes**" in guide
    assert f"nested at most **{MAX_DEPTH} levels** deep" in guide
