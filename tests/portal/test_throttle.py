"""Sign-in throttling counts failed sign-ins only, and says how long to wait, in English and
Chinese; the live rooms' polls are limited per user or address, with a Retry-After."""

from __future__ import annotations

import math
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.utils import translation
from django_ratelimit.core import _split_rate

from portal.throttle import sign_in_limited, wait_message
from tests.auctions.conftest import Market
from tests.auctions.test_clock import clock_auction
from tests.auctions.test_english import english_auction
from tests.portal.test_pages import user_for

PASSWORD = "a-long-test-password"


@pytest.fixture(autouse=True)
def _fast_password_checks(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def target(db):
    return get_user_model().objects.create_user("target", "t@example.org", PASSWORD)


def sign_in(client: Client, password: str, username: str = "target") -> HttpResponse:
    return client.post("/account/login/", {"username": username, "password": password})


def test_successful_sign_ins_do_not_count(target):
    client = Client()
    for _ in range(15):  # more than the 10 failures allowed per address and name
        assert sign_in(client, PASSWORD).status_code == 302
    for _ in range(10):
        assert sign_in(client, "guess").status_code == 200  # the form again, with its error
    r = sign_in(client, PASSWORD)
    assert r.status_code == 429  # the 10 failures count: even the right password, for now


def test_the_refusal_says_how_long_to_wait(target):
    client = Client()
    for _ in range(10):
        sign_in(client, "guess")
    r = sign_in(client, "guess")
    assert r.status_code == 429
    wait = int(r["Retry-After"])
    assert 0 < wait <= 15 * 60  # the rest of the 15-minute window of that limit
    page = r.content.decode()
    with translation.override("en"):
        assert wait_message(wait) in page
    assert re.search(r"Try again in \d+ (second|minute)s?\.", page)

    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    r = sign_in(client, "guess")
    assert r.status_code == 429
    wait = int(r["Retry-After"])
    page = r.content.decode()
    with translation.override("zh-hans"):
        assert wait_message(wait) in page
    unit = f"{wait} 秒" if wait < 60 else f"{math.ceil(wait / 60)} 分钟"
    assert f"此处登录失败次数过多。请在 {unit}后再试。" in page


def test_the_message_counts_seconds_then_whole_minutes():
    with translation.override("en"):
        assert wait_message(1).endswith("Try again in 1 second.")
        assert wait_message(59).endswith("Try again in 59 seconds.")
        assert wait_message(60).endswith("Try again in 1 minute.")
        assert wait_message(61).endswith("Try again in 2 minutes.")
        assert wait_message(900).endswith("Try again in 15 minutes.")
    with translation.override("zh-hans"):
        assert wait_message(45) == "此处登录失败次数过多。请在 45 秒后再试。"
        assert wait_message(600) == "此处登录失败次数过多。请在 10 分钟后再试。"


def test_refused_attempts_do_not_use_up_the_users_limit_elsewhere(target):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(10):
        sign_in(attacker, "guess")
    for _ in range(25):  # refused unheard: they are not failed sign-ins of the user's
        assert sign_in(attacker, "guess").status_code == 429
    for _ in range(40):  # from many addresses: 50 failures of the 60 an hour per user name
        assert sign_in(Client(REMOTE_ADDR=f"198.51.100.{_}"), "guess").status_code == 200
    assert sign_in(Client(REMOTE_ADDR="192.0.2.1"), PASSWORD).status_code == 302


def test_guesses_in_flight_together_cannot_all_pass_the_limit(db):
    """Each attempt counts before its password is checked: guesses whose checks overlap (each
    arrives while the one before is still being checked) get ten checks, not one each."""
    factory = RequestFactory()
    checked: list[int] = []
    answers: list[int] = []

    def guess() -> int:
        request = factory.post("/account/login/", {"username": "target", "password": "guess"})
        request.user = AnonymousUser()
        return limited(request).status_code

    def check_password(request: HttpRequest) -> HttpResponse:
        checked.append(1)
        if len(checked) < 12:
            answers.append(guess())  # the next guess arrives before this check is done
        return HttpResponse(status=200)  # the form again: a failed sign-in

    limited = sign_in_limited(check_password)
    answers.append(guess())
    assert len(checked) == 10
    assert sorted(answers) == [200] * 10 + [429]


def test_an_address_is_the_proxys_client_and_an_ipv6_prefix(target, settings):
    # Behind a proxy, the header it sets names the client: two clients are two addresses.
    settings.RATELIMIT_IP_META_KEY = "HTTP_X_REAL_IP"
    for _ in range(10):
        sign_in(Client(HTTP_X_REAL_IP="203.0.113.9"), "guess")
    assert sign_in(Client(HTTP_X_REAL_IP="203.0.113.9"), PASSWORD).status_code == 429
    assert sign_in(Client(HTTP_X_REAL_IP="203.0.113.10"), PASSWORD).status_code == 302
    # One IPv6 /64 is one subscriber: moving inside it is the same address.
    for i in range(10):
        sign_in(Client(HTTP_X_REAL_IP=f"2001:db8:1:2::{i + 1:x}"), "guess", username="other")
    r = sign_in(Client(HTTP_X_REAL_IP="2001:db8:1:2:ffff::1"), "guess", username="other")
    assert r.status_code == 429


def test_a_rooms_poll_is_limited_per_user_or_address_and_says_how_long_to_wait(settings, db):
    settings.ROOM_POLL_RATES = {"user": "3/m", "address": "5/m"}
    m = Market()
    english = f"/auctions/{english_auction(m, free_s=30, countdown_s=60).pk}/room.json"
    clock = f"/auctions/{clock_auction(m, first_round_s=30, round_s=60).pk}/clock.json"
    first = user_for(m.bidders[0], "first")
    # One counter for both rooms' polls: a user's tabs add up.
    assert [first.get(url).status_code for url in (english, clock, english)] == [200] * 3
    r = first.get(clock)
    assert r.status_code == 429 and r["Cache-Control"] == "no-store"
    assert 0 < int(r["Retry-After"]) <= 60  # the rest of the minute's window
    assert r.json()["code"] == "throttled" and "Try again in" in r.json()["message"]
    # Another user counts apart; visitors count by address.
    assert user_for(m.bidders[1], "second").get(english).status_code == 200
    visitor = Client(REMOTE_ADDR="203.0.113.9")
    assert [visitor.get(english).status_code for _ in range(6)] == [200] * 5 + [429]
    visitor.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert "此处请求过于频繁" in visitor.get(clock).json()["message"]
    assert Client(REMOTE_ADDR="203.0.113.10").get(clock).status_code == 200


def test_the_rooms_poll_limits_leave_room_for_a_few_tabs(settings):
    # room.js and clock_room.js poll every 1.5 s: five tabs of one user, or of visitors
    # behind one address, never meet the limit.
    for rate in settings.ROOM_POLL_RATES.values():
        limit, seconds = _split_rate(rate)
        assert limit >= 5 * seconds / 1.5, rate
