"""Two-factor sign-in (TOTP, RFC 6238, through django-otp, with one-time recovery codes): any user
may enrol, operators must; after the password a user with a device gives a code before anything
is signed in; a code counts once; the admin asks for a verified session; the API's keys are not
touched. Attacks: a wrong code, a reused code, a recovery code used twice, an operator without a
device at the admin and the operator pages, a bidder going straight to a protected URL after
the password step."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import time
from base64 import b32decode
from binascii import hexlify

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from ledger import services as registry
from ledger.models import ApiKey, Membership, Role
from portal.two_factor import PENDING_KEY, PENDING_SECONDS, totp_device
from portal.two_factor_models import RecoveryCode, RecoveryCodeDevice, recovery_code_digest
from tests import factories
from tests.two_factor import code, enrol, force_login, unthrottle

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"
CODES = re.compile(r"<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code></li>")


def make_user(name: str, *roles: str, **extra) -> object:
    user = get_user_model().objects.create_user(name, f"{name}@example.org", PASSWORD, **extra)
    if roles:
        Membership.objects.create(user=user, organization=factories.organization(*roles))
    return user


def password_step(client: Client, name: str, next_url: str = ""):
    data = {"username": name, "password": PASSWORD}
    path = "/account/login/" + (f"?next={next_url}" if next_url else "")
    return client.post(path, data)


def enrol_through_the_page(client: Client, user) -> tuple[TOTPDevice, list[str]]:
    page = client.get("/account/two-factor/")
    assert page.status_code == 200
    pending = TOTPDevice.objects.get(user=user, confirmed=False)
    r = client.post("/account/two-factor/", {"code": code(pending)})
    assert r.status_code == 200
    codes = CODES.findall(r.content.decode())
    assert len(codes) == 10
    return TOTPDevice.objects.get(user=user, confirmed=True), codes


def is_signed_in(client: Client) -> bool:
    return client.get("/account/").status_code == 200


# ---- enrolment ----------------------------------------------------------------------------------


def test_a_bidder_enrols_with_a_qr_code_and_a_first_code_and_sees_recovery_codes_once():
    user = make_user("bidder", Role.BIDDER)
    client = Client()
    client.force_login(user)

    page = client.get("/account/two-factor/")
    html = page.content.decode()
    assert "no-store" in page["Cache-Control"]
    pending = TOTPDevice.objects.get(user=user)
    assert not pending.confirmed
    secret = re.search(r'<code class="secret" id="totp-secret">([A-Z2-7 ]+)</code>', html)[1]
    assert hexlify(b32decode(secret.replace(" ", ""))).decode() == pending.key  # that key
    assert '<svg width="' in html and 'class="qrline"' in html  # the QR code, inline
    # The URI in the QR code: RFC 6238's defaults, what authenticator apps support.
    uri = pending.config_url
    assert uri.startswith("otpauth://totp/Blue%20carbon%20registry%3Abidder?")
    assert "algorithm=SHA1" in uri and "digits=6" in uri and "period=30" in uri

    wrong = client.post("/account/two-factor/", {"code": "000000"})
    assert "That code is not right" in wrong.content.decode()
    assert not TOTPDevice.objects.get(user=user).confirmed
    unthrottle(pending)

    r = client.post("/account/two-factor/", {"code": code(pending)})
    assert "no-store" in r["Cache-Control"]
    codes = CODES.findall(r.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=user).confirmed
    # Stored only as hashes: no code in the database, each code's SHA-256 is.
    digests = set(RecoveryCode.objects.values_list("digest", flat=True))
    assert digests == {recovery_code_digest(c) for c in codes}
    assert digests == {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}
    assert not any(c.replace("-", "") in d for c in codes for d in digests)
    # This session is verified; the page now manages, and shows neither key nor codes again.
    assert client.session[DEVICE_ID_SESSION_KEY] == totp_device(user).persistent_id
    again = client.get("/account/two-factor/").content.decode()
    assert secret not in again and secret.replace(" ", "") not in again
    assert not any(c in again for c in codes)
    assert "You have 10 unused recovery codes." in again


def test_the_enrolment_page_speaks_chinese():
    client = force_login(Client(), make_user("bidder", Role.BIDDER))
    client.cookies["django_language"] = "zh-hans"
    html = client.get("/account/two-factor/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "设置双重验证登录" in html and "身份验证器" in html


# ---- signing in ---------------------------------------------------------------------------------


def test_after_the_password_nothing_is_signed_in_until_the_code_is_given():
    user = make_user("bidder", Role.BIDDER)
    device = enrol(user)
    client = Client()

    r = password_step(client, "bidder", next_url="/account/retire/")
    assert r.status_code == 302 and r["Location"] == "/account/login/code/"
    # A bidder skipping the second step: every protected URL treats the session as anonymous.
    for path in ("/account/", "/account/retire/", "/account/two-factor/", "/account/purchases/"):
        r = client.get(path)
        assert r.status_code == 302 and r["Location"].startswith("/account/login/"), path
    assert client.get("/api/v1/organization").status_code in (401, 403)
    assert "_auth_user_id" not in client.session

    page = client.get("/account/login/code/")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.content.decode()
    r = client.post("/account/login/code/", {"code": code(device)})
    assert r.status_code == 302 and r["Location"] == "/account/retire/"  # where it was going
    assert is_signed_in(client)
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert PENDING_KEY not in client.session


def test_a_wrong_code_signs_nobody_in_and_failures_slow_the_device_down():
    user = make_user("bidder", Role.BIDDER)
    device = enrol(user)
    client = Client()
    password_step(client, "bidder")
    r = client.post("/account/login/code/", {"code": code(device, steps=5)})  # 2.5 min ahead
    assert r.status_code == 200 and "not valid" in r.content.decode()
    assert not is_signed_in(client)
    # Straight after a failure even the right code waits (django-otp: 1, 2, 4 ... s).
    r = client.post("/account/login/code/", {"code": code(device)})
    assert r.status_code == 200 and "Try again in 1 second" in r.content.decode()
    unthrottle(device)
    assert client.post("/account/login/code/", {"code": code(device)}).status_code == 302


def test_a_code_counts_once():
    user = make_user("bidder", Role.BIDDER)
    device = enrol(user)
    now = code(device)
    first = Client()
    password_step(first, "bidder")
    assert first.post("/account/login/code/", {"code": now}).status_code == 302

    thief = Client()  # saw the code over the shoulder, and knows the password
    password_step(thief, "bidder")
    r = thief.post("/account/login/code/", {"code": now})
    assert r.status_code == 200 and "used already" in r.content.decode()
    unthrottle(device)
    earlier = code(device, steps=-1)  # within the tolerance, but older than the one used
    assert thief.post("/account/login/code/", {"code": earlier}).status_code == 200
    assert not is_signed_in(thief)
    assert TOTPDevice.objects.get(pk=device.pk).last_t >= int(time.time()) // 30


def test_a_recovery_code_signs_in_once():
    user = make_user("bidder", Role.BIDDER)
    _, codes = enrol_through_the_page(force_login(Client(), user), user)

    client = Client()
    password_step(client, "bidder")
    r = client.post("/account/login/code/", {"code": codes[3].upper().replace("-", " ")})
    page = client.get("/account/")  # signed in, and told how many are left
    assert r.status_code == 302 and page.status_code == 200
    assert "9 are left" in page.content.decode()

    again = Client()
    password_step(again, "bidder")
    r = again.post("/account/login/code/", {"code": codes[3]})
    assert r.status_code == 200 and not is_signed_in(again)
    assert RecoveryCode.objects.count() == 9


def test_the_code_step_waits_five_minutes_at_most(monkeypatch):
    user = make_user("bidder", Role.BIDDER)
    device = enrol(user)
    client = Client()
    password_step(client, "bidder")
    later = time.time() + PENDING_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    r = client.post("/account/login/code/", {"code": code(device, at=later)})
    assert r.status_code == 302 and r["Location"] == "/account/login/"
    monkeypatch.undo()
    assert not is_signed_in(client)


def test_a_right_password_before_the_code_is_no_failed_sign_in():
    user = make_user("bidder", Role.BIDDER)
    enrol(user)
    client = Client()
    for _ in range(12):  # the address-and-name limit is 10 failures in 15 minutes
        assert password_step(client, "bidder").status_code == 302


# ---- operators ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["operator organization", "superuser", "staff"])
def test_an_operator_without_a_device_can_do_nothing_but_enrol(kind):
    if kind == "operator organization":
        user = make_user("op", Role.OPERATOR)
    elif kind == "superuser":
        user = get_user_model().objects.create_superuser("op", "op@example.org", PASSWORD)
    else:
        user = make_user("op", Role.REGISTRY, is_staff=True)
    client = Client()
    r = password_step(client, "op")
    assert r.status_code == 302 and r["Location"].startswith("/account/two-factor/")
    for path in ("/account/", "/audit/ledger/", "/admin/", "/admin/ledger/apikey/", "/"):
        r = client.get(path)
        assert r.status_code == 302 and r["Location"] == "/account/two-factor/", path
    r = client.get("/api/v1/organization")
    assert r.status_code == 403 and r.json()["code"] == "two_factor_required"

    enrol_through_the_page(client, user)
    assert client.get("/account/").status_code == 200
    if kind != "staff":
        assert client.get("/audit/ledger/").status_code == 200
    if user.is_staff:
        assert client.get("/admin/").status_code == 200


def test_the_admin_asks_for_a_verified_session_and_signs_in_through_the_portal():
    admin = get_user_model().objects.create_superuser("op", "op@example.org", PASSWORD)
    device = enrol(admin)
    stale = Client()
    stale.force_login(admin)  # a session that never gave a code (from before enrolling)
    r = stale.get("/admin/")
    assert r.status_code == 302 and r["Location"].startswith("/account/login/?next=")
    assert not is_signed_in(stale)  # signed out: it signs in again, with its code

    r = Client().get("/admin/ledger/apikey/")
    assert r.status_code == 302
    r = Client().get(r["Location"])
    assert (
        r.status_code == 302
        and r["Location"] == "/account/login/?next=%2Fadmin%2Fledger%2Fapikey%2F"
    )
    client = Client()
    assert password_step(client, "op", next_url="/admin/").status_code == 302
    assert client.get("/admin/").status_code == 302  # not yet
    r = client.post("/account/login/code/", {"code": code(device)})
    assert r["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_the_admin_shows_devices_without_their_secrets():
    admin = get_user_model().objects.create_superuser("op", "op@example.org", PASSWORD)
    client = force_login(Client(), admin)
    device = totp_device(admin)
    secret = device.config_url.split("secret=")[1].split("&")[0]
    for path in (
        "/admin/otp_totp/totpdevice/",
        f"/admin/otp_totp/totpdevice/{device.pk}/change/",
    ):
        html = client.get(path).content.decode()
        assert device.key not in html and secret not in html and "qrcode" not in html, path
    assert client.get("/admin/otp_totp/totpdevice/add/").status_code == 403


# ---- managing -----------------------------------------------------------------------------------


def test_new_recovery_codes_and_turning_it_off_need_a_fresh_code():
    user = make_user("bidder", Role.BIDDER)
    client = force_login(Client(), user)
    device, old = enrol_through_the_page(client, user)

    r = client.post("/account/two-factor/", {"action": "codes", "codes-code": "123456"})
    assert r.status_code == 200 and 'id="id_codes-code-error"' in r.content.decode()
    assert RecoveryCode.objects.count() == 10
    unthrottle(device)
    time.sleep(max(0.0, 30 - time.time() % 30 + 0.05))  # the enrolment's code was this step's
    r = client.post("/account/two-factor/", {"action": "codes", "codes-code": code(device)})
    new = CODES.findall(r.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    assert {recovery_code_digest(c) for c in new} == set(
        RecoveryCode.objects.values_list("digest", flat=True)
    )

    r = client.post("/account/two-factor/", {"action": "remove", "remove-code": code(device)})
    assert r.status_code == 200  # that code was used a moment ago
    assert TOTPDevice.objects.filter(user=user).exists()
    unthrottle(device)
    r = client.post("/account/two-factor/", {"action": "remove", "remove-code": new[0]})
    assert r.status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not RecoveryCodeDevice.objects.filter(user=user).exists()
    assert is_signed_in(client)  # a bidder may go on without it
    other = Client()
    assert password_step(other, "bidder").status_code == 302 and is_signed_in(other)


# ---- the API ------------------------------------------------------------------------------------


def test_the_api_with_a_key_is_unaffected():
    org = factories.organization(Role.OPERATOR)
    user = make_user("op", Role.BIDDER)
    Membership.objects.filter(user=user).update(organization=org)
    _, secret = registry.apikey_create(organization=org.pk, name="k", scopes=ApiKey.Scope.values)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    r = api.get("/api/v1/organization")
    assert r.status_code == 200 and r.json()["handle"] == org.handle


# ---- the demo -----------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_seed_demo_enrols_the_demo_operator_and_says_how_to_sign_in_on_a_terminal_only():
    quiet = io.StringIO()
    call_command("seed_demo", stdout=quiet)
    admin = get_user_model().objects.get(username="admin")
    device = totp_device(admin)
    assert device is not None and RecoveryCode.objects.filter(device__user=admin).count() == 10
    secret = device.config_url.split("secret=")[1].split("&")[0]
    assert secret not in quiet.getvalue()  # not a terminal: a file, a log
    assert "demo_two_factor --new" in quiet.getvalue()

    shown = Terminal()
    call_command("demo_two_factor", "--new", stdout=shown)
    out = shown.getvalue()
    device = totp_device(admin)
    secret = device.config_url.split("secret=")[1].split("&")[0]
    assert device.config_url in out and f"oathtool --totp -b {secret}" in out
    # The printed line of Python makes the code the server takes.
    line = re.search(r'(python3 -c ".*")', out)[1]
    made = subprocess.run(line, shell=True, capture_output=True, text=True, check=True).stdout
    client = Client()
    data = {"username": "admin", "password": "bluecarbon-demo"}
    assert client.post("/account/login/", data)["Location"] == "/account/login/code/"
    assert client.post("/account/login/code/", {"code": made.strip()}).status_code == 302
    assert client.get("/admin/").status_code == 200
    recovery = re.search(r"recovery code \(works once\): ([a-z2-7-]{19})", out)[1]
    other = Client()
    other.post("/account/login/", data)
    assert other.post("/account/login/code/", {"code": recovery}).status_code == 302
