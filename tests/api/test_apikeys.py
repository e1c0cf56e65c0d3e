from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from ledger.models import ApiKey

pytestmark = pytest.mark.django_db


def test_a_key_is_printed_once_stored_hashed_and_revocable(world):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "apikey_create", "--org", world.buyer.handle, "--scope", "read", stdout=out, stderr=err
    )
    secret = out.getvalue().strip()
    key = ApiKey.objects.get(organization=world.buyer)
    assert secret.startswith(f"bck_{key.prefix}_")
    assert secret not in str(ApiKey.objects.values_list())  # only its hash is stored
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/organization").status_code == 200

    call_command("apikey_revoke", key.prefix, stdout=io.StringIO())
    r = client.get("/api/v1/organization")
    assert r.status_code == 401
    assert "revoked" in r.json()["message"]


def test_a_wrong_secret_with_a_real_prefix_is_401(world, client_for):
    client_for(world.buyer)
    key = ApiKey.objects.get(organization=world.buyer)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer bck_{key.prefix}_wrong")
    assert client.get("/api/v1/organization").status_code == 401


def test_the_admin_never_shows_the_hash(world, admin_client):
    from ledger import services

    key, secret = services.apikey_create(organization=world.buyer.pk, name="k", scopes=["read"])
    page = admin_client.get(f"/admin/ledger/apikey/{key.pk}/change/")
    assert page.status_code == 200
    assert key.secret_sha256.encode() not in page.content
    assert secret.encode() not in page.content
