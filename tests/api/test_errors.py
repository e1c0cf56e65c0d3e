"""Every answer under /api/ is JSON in the one error shape, whatever failed and wherever: a bug
in a view, a failure in a middleware before any view ran, a path no view serves. The portal's
pages keep Django's HTML."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from rest_framework.test import APIClient

from ledger.apis.registry import OrganizationRetrieveApi

SECRET = "the secret the error must not leak"


class ExplodingMiddleware:
    """Fails before any view runs, as a lost database connection in the session middleware
    would."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raise RuntimeError(SECRET)


def shape(response) -> dict:
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message", "detail"}
    assert SECRET not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    return body


def test_a_bug_in_an_api_view_answers_json_500_and_is_logged(
    world, client_for, monkeypatch, caplog
):
    def broken(self, request):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(OrganizationRetrieveApi, "get", broken)
    client: APIClient = client_for(world.buyer, "read")
    client.raise_request_exception = False
    with caplog.at_level(logging.ERROR, logger="django.request"):
        r = client.get("/api/v1/organization")
    assert r.status_code == 500
    assert shape(r)["code"] == "server_error"
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is not None and SECRET in str(record.exc_info[1])
    assert record.getMessage() == "Internal Server Error: /api/v1/organization"


def test_a_failure_before_any_view_answers_json_500_under_api_only(db, settings, caplog):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.api.test_errors.ExplodingMiddleware"]
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        r = client.get("/api/v1/organization")
    assert r.status_code == 500
    assert shape(r)["code"] == "server_error"
    assert any(
        rec.exc_info and SECRET in str(rec.exc_info[1])
        for rec in caplog.records
        if rec.name == "django.request"
    )
    page = client.get("/registry/projects/")
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_a_path_no_api_operation_serves_is_a_json_404():
    r = Client().get("/api/v1/no-such-thing")
    assert r.status_code == 404
    assert shape(r)["code"] == "not_found"
    page = Client().get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_database_connections_are_checked_before_reuse(settings):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


@pytest.mark.django_db
def test_a_request_refused_before_any_view_is_a_json_400():
    r = Client(HTTP_HOST="attacker.example").get("/api/v1/organization")
    assert r.status_code == 400
    assert shape(r)["code"] == "bad_request"
