"""Throttles: sign-ins, where failed ones count and successful ones do not; and the live rooms'
polls (``poll_limited``, at the end).

Three limits slow password guessing (django-ratelimit's counters, in the default cache: Redis
in production, shared by every web process): per address, per address and user name, and per
user name, the last loose enough that nobody can lock a real user out from another address.
Over a limit the answer is 429 with how long to wait (``Retry-After`` and the page's message).

Each limit keeps two counters per window: attempts, and attempts that turned out not to be
failures (a successful sign-in, or an attempt refused for the limit). An attempt is counted
before its password is checked, so guesses sent in parallel cannot all slip under the limit
while the first ones are still being hashed (an attempt in flight counts as a failure until it
is known); the second counter gives successful ones back afterwards. django-ratelimit has no
decrement, hence two increments instead of one increment and one decrement."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import ngettext
from django_ratelimit.core import get_usage


def _address(request: HttpRequest) -> str:
    """The client's address as django-ratelimit's "ip" key has it: from RATELIMIT_IP_META_KEY
    behind a proxy, and an IPv6 /64 (one subscriber's prefix) as one address."""
    address = str(request.META.get(getattr(settings, "RATELIMIT_IP_META_KEY", "") or "REMOTE_ADDR"))
    try:
        network = ipaddress.ip_network(f"{address}/{64 if ':' in address else 32}", strict=False)
    except ValueError:
        return address
    return str(network.network_address)


def _name(request: HttpRequest) -> str:
    return str(request.POST.get("username", ""))


@dataclass(frozen=True)
class Limit:
    group: str
    rate: str  # failed sign-ins per window, in django-ratelimit's notation
    key: Callable[[HttpRequest], str]


# One group per limit for every sign-in form (the portal's and the admin's): guesses add up.
SIGN_IN_LIMITS = (
    Limit("sign-in:address", "30/m", _address),
    Limit("sign-in:address-name", "10/15m", lambda r: f"{_address(r)}|{_name(r)}"),
    Limit("sign-in:name", "60/h", _name),
)


def _usage(request: HttpRequest, limit: Limit, group: str, *, count: bool) -> Any:
    return get_usage(
        request,
        group=group,
        key=lambda _group, req: limit.key(req),
        rate=limit.rate,
        method="POST",
        increment=count,
    )


def _give_back(request: HttpRequest) -> None:
    for limit in SIGN_IN_LIMITS:
        _usage(request, limit, f"{limit.group}:not-failed", count=True)


def _seconds_to_wait(request: HttpRequest) -> int:
    """Count this attempt; 0 if it may go ahead, else the seconds until the window of every
    limit it is over ends."""
    wait = 0
    for limit in SIGN_IN_LIMITS:
        attempts = _usage(request, limit, limit.group, count=True)
        if attempts is None:  # RATELIMIT_ENABLE off, or the cache failed and FAIL_OPEN is on
            continue
        if attempts["time_left"] < 0:  # the cache failed: django-ratelimit fails closed
            wait = max(wait, 60)
            continue
        not_failed = _usage(request, limit, f"{limit.group}:not-failed", count=False)
        failed_before = attempts["count"] - 1 - (not_failed["count"] if not_failed else 0)
        if failed_before >= attempts["limit"]:
            wait = max(wait, attempts["time_left"], 1)
    return wait


def wait_message(seconds: int) -> str:
    if seconds < 60:
        return ngettext(
            "Too many failed sign-ins from here. Try again in %(n)d second.",
            "Too many failed sign-ins from here. Try again in %(n)d seconds.",
            seconds,
        ) % {"n": seconds}
    minutes = math.ceil(seconds / 60)
    return ngettext(
        "Too many failed sign-ins from here. Try again in %(n)d minute.",
        "Too many failed sign-ins from here. Try again in %(n)d minutes.",
        minutes,
    ) % {"n": minutes}


def sign_in_limited(view: Any) -> Any:
    """``view`` (a sign-in form) behind the limits: a POST that signs someone in (the form
    redirects) is given back; any other POST (a wrong password, an unknown or inactive user, a
    non-staff user at the admin's form) counts."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        wait = _seconds_to_wait(request)
        if wait:
            _give_back(request)  # refused unheard: not a failed sign-in
            refused = render(
                request,
                "portal/too_many_requests.html",
                {"wait_message": wait_message(wait)},
                status=429,
            )
            refused["Retry-After"] = str(wait)
            return refused
        response: HttpResponse = view(request, *args, **kwargs)
        # Signed in, or the password accepted and the code step next (two_factor_views).
        accepted = request.user.is_authenticated or getattr(
            request, "sign_in_password_accepted", False
        )
        if response.status_code == 302 and accepted:
            _give_back(request)
        return response

    return wrapped


# ---- the live rooms' polls ------------------------------------------------------------------

POLL_GROUP = "room-poll"  # one counter for both rooms' JSON: a user's tabs add up


def _poll_key(_group: str, request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"address:{_address(request)}"


def _poll_rate(_group: str, request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return str(settings.ROOM_POLL_RATES["user" if signed_in else "address"])


def poll_limited(view: Any) -> Any:
    """``view`` (a live room's poll, portal/live_room.py) behind one limit per signed-in user,
    or per address for visitors (ROOM_POLL_RATES): over it, 429 with how long to wait, which
    the room's script waits before it asks again."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        usage = get_usage(request, group=POLL_GROUP, key=_poll_key, rate=_poll_rate, increment=True)
        if usage is None or not usage["should_limit"]:
            return view(request, *args, **kwargs)
        # time_left < 0: the cache failed, and django-ratelimit fails closed (as sign-in does).
        wait = usage["time_left"] if usage["time_left"] >= 0 else 60
        wait = max(wait, 1)
        refused = JsonResponse(
            {
                "code": "throttled",
                "message": ngettext(
                    "Too many requests from here. Try again in %(n)d second.",
                    "Too many requests from here. Try again in %(n)d seconds.",
                    wait,
                )
                % {"n": wait},
            },
            status=429,
        )
        refused["Retry-After"] = str(wait)
        refused["Cache-Control"] = "no-store"
        return refused

    return wrapped


# ---- the public register's exports ---------------------------------------------------------

EXPORT_GROUP = "register-export"  # one counter for every list's CSV and JSON


def export_limited(view: Any) -> Any:
    """``view`` (an export of the public register, portal/registry.py) behind one limit per
    address (``REGISTER_EXPORT_RATE``, default 30 a minute: an export reads a whole list, a
    page only 50 rows). Over it, 429 with ``Retry-After`` and the wait in words, as text: the
    answer goes to a download, not to a page."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        usage = get_usage(
            request,
            group=EXPORT_GROUP,
            key=lambda _group, req: f"address:{_address(req)}",
            rate=str(getattr(settings, "REGISTER_EXPORT_RATE", "30/m")),
            increment=True,
        )
        if usage is None or not usage["should_limit"]:
            return view(request, *args, **kwargs)
        wait = max(usage["time_left"] if usage["time_left"] >= 0 else 60, 1)
        refused = HttpResponse(
            ngettext(
                "Too many requests from here. Try again in %(n)d second.",
                "Too many requests from here. Try again in %(n)d seconds.",
                wait,
            )
            % {"n": wait},
            status=429,
            content_type="text/plain; charset=utf-8",
        )
        refused["Retry-After"] = str(wait)
        refused["Cache-Control"] = "no-store"
        return refused

    return wrapped
