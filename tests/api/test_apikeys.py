"""API keys: made by ``manage.py apikey_create`` (printed once) or the admin (shown once),
stored only as a hash, revoked by ``manage.py apikey_revoke`` or an admin action."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from ledger import services
from ledger.models import ApiKey

pytestmark = pytest.mark.django_db


def create(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("apikey_create", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def client_with(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


# ---- the management commands ------------------------------------------------------------------


def test_a_key_is_printed_once_to_stdout_and_stored_only_as_its_hash(world, caplog):
    caplog.set_level(logging.DEBUG)
    out, err = create(
        "--org", world.buyer.handle, "--name", "ERP", "--scope", "read", "--scope", "transfer"
    )
    secret = out.strip()
    key = ApiKey.objects.get(organization=world.buyer)
    assert re.fullmatch(rf"bck_{key.prefix}_[A-Za-z0-9_-]{{43}}", secret)
    assert out == secret + "\n"  # nothing else on stdout: it can be piped into a secret store
    assert secret not in err and key.prefix in err  # stderr says what was made, not the key
    assert secret not in caplog.text  # never logged
    assert (key.name, key.scopes, key.expires_at) == ("ERP", ["read", "transfer"], None)
    assert secret not in str(list(ApiKey.objects.values_list()))
    assert client_with(secret).get("/api/v1/organization").json()["handle"] == world.buyer.handle


def test_a_revoked_key_is_401_from_then_on(world):
    secret = create("--org", world.buyer.handle, "--scope", "read")[0].strip()
    key = ApiKey.objects.get(organization=world.buyer)
    client = client_with(secret)
    assert client.get("/api/v1/organization").status_code == 200

    out = io.StringIO()
    call_command("apikey_revoke", key.prefix, stdout=out)
    assert key.prefix in out.getvalue()
    r = client.get("/api/v1/organization")
    assert (r.status_code, r.json()["code"]) == (401, "authentication_failed")
    assert "revoked" in r.json()["message"]


def test_revoking_twice_keeps_the_first_time(world):
    key, _ = services.apikey_create(organization=world.buyer.pk, name="k", scopes=["read"])
    call_command("apikey_revoke", key.prefix, stdout=io.StringIO())
    first = ApiKey.objects.get(pk=key.pk).revoked_at
    call_command("apikey_revoke", key.prefix, stdout=io.StringIO())
    assert ApiKey.objects.get(pk=key.pk).revoked_at == first


def test_a_key_made_to_expire_works_until_then_and_is_401_after(world):
    secret = create("--org", world.buyer.handle, "--scope", "read", "--expires-days", "30")[0]
    key = ApiKey.objects.get(organization=world.buyer)
    assert (
        dt.timedelta(days=29, hours=23) < key.expires_at - timezone.now() <= dt.timedelta(days=30)
    )
    client = client_with(secret.strip())
    assert client.get("/api/v1/organization").status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    r = client.get("/api/v1/organization")
    assert r.status_code == 401
    assert "expired" in r.json()["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "nobody", "--scope", "read"], "no organization"),
        (["--org", "{org}", "--scope", "read", "--expires-days", "0"], "--expires-days"),
        (["--org", "{org}", "--scope", "read", "--name", "   "], "name is required"),
    ],
)
def test_apikey_create_refuses_bad_arguments_and_makes_nothing(world, args, message):
    args = [a.replace("{org}", world.buyer.handle) for a in args]
    with pytest.raises(CommandError, match=message):
        create(*args)
    assert not ApiKey.objects.exists()


def test_an_unknown_scope_is_refused_by_the_parser(world):
    with pytest.raises(CommandError, match="invalid choice"):
        create("--org", world.buyer.handle, "--scope", "admin")


def test_revoking_an_unknown_prefix_is_an_error(world):
    with pytest.raises(CommandError, match="not found"):
        call_command("apikey_revoke", "deadbeef", stdout=io.StringIO())


def test_a_wrong_secret_with_a_real_prefix_is_401(world, client_for):
    client_for(world.buyer)
    key = ApiKey.objects.get(organization=world.buyer)
    r = client_with(f"bck_{key.prefix}_wrong").get("/api/v1/organization")
    assert (r.status_code, r.json()["message"]) == (401, "invalid API key")


# ---- the admin ----------------------------------------------------------------------------------


def test_the_admin_lists_keys_without_their_hash(world, admin_client):
    key, secret = services.apikey_create(organization=world.buyer.pk, name="k", scopes=["read"])
    for url in ("/admin/ledger/apikey/", f"/admin/ledger/apikey/{key.pk}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert key.prefix.encode() in page.content
        assert key.secret_sha256.encode() not in page.content
        assert secret.encode() not in page.content


def test_the_admin_never_edits_or_deletes_a_key(world, admin_client):
    key, _ = services.apikey_create(organization=world.buyer.pk, name="k", scopes=["read"])
    page = admin_client.get(f"/admin/ledger/apikey/{key.pk}/change/")
    assert b'name="name"' not in page.content  # a read-only view, no form fields
    r = admin_client.post(
        f"/admin/ledger/apikey/{key.pk}/change/", {"name": "x", "scopes": ["audit"]}
    )
    assert r.status_code == 403
    assert admin_client.get(f"/admin/ledger/apikey/{key.pk}/delete/").status_code == 403
    assert ApiKey.objects.get(pk=key.pk).scopes == ["read"]


def test_the_admin_revokes_selected_keys(world, admin_client):
    live, secret = services.apikey_create(organization=world.buyer.pk, name="a", scopes=["read"])
    other, _ = services.apikey_create(organization=world.buyer.pk, name="b", scopes=["read"])
    r = admin_client.post(
        "/admin/ledger/apikey/",
        {"action": "revoke_keys", "_selected_action": [live.pk]},
        follow=True,
    )
    assert b"1 key(s) revoked." in r.content
    assert ApiKey.objects.get(pk=live.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=other.pk).revoked_at is None
    assert client_with(secret).get("/api/v1/organization").status_code == 401


def test_the_admin_makes_a_key_and_shows_it_once(world, admin_client):
    r = admin_client.post(
        "/admin/ledger/apikey/add/",
        {
            "organization": world.registry.pk,
            "name": "migration",
            "scopes": ["read", "issue"],
            "expires_days": "90",
        },
    )
    assert r.status_code == 200, r.content[:500]
    assert "no-store" in r["Cache-Control"]  # the admin's never_cache
    key = ApiKey.objects.get()
    secret = re.search(rb"bck_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", r.content).group().decode()
    assert secret.startswith(f"bck_{key.prefix}_")
    assert (key.name, key.scopes) == ("migration", ["issue", "read"])
    assert key.expires_at is not None
    assert client_with(secret).get("/api/v1/organization").status_code == 200
    # Never again: not in the list, not on the key's page, not in a message left for later.
    for url in ("/admin/ledger/apikey/", f"/admin/ledger/apikey/{key.pk}/change/"):
        assert secret.encode() not in admin_client.get(url).content
    assert secret not in str(r.cookies)


def test_the_admin_add_form_needs_a_scope(world, admin_client):
    r = admin_client.post(
        "/admin/ledger/apikey/add/", {"organization": world.buyer.pk, "name": "k"}
    )
    assert r.status_code == 200
    assert b"This field is required." in r.content
    assert not ApiKey.objects.exists()
