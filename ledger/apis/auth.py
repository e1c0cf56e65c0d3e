"""Who is calling: per-organization API keys (``Authorization: Bearer bck_...``) for registries
and auditors, the session for the portal's own calls; what they may do: scopes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.request import Request

from bluecarbon.rows import loaded

from ..actors import Actor
from ..models import ApiKey, Organization, Role

ALL_SCOPES = frozenset(ApiKey.Scope.values)
# The "scope" of an operation anyone may call, signed in or not (the log, published auctions).
PUBLIC = "public"


@dataclass
class ApiKeyPrincipal:
    """``request.user`` for a key: an organization acting with some scopes."""

    key: ApiKey
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self) -> str:
        return f"apikey:{self.key.prefix}"

    def __str__(self) -> str:
        return self.pk


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.startswith(f"{self.keyword} bck_"):
            return None
        secret = header[len(self.keyword) + 1 :].strip()
        parts = secret.split("_")
        if len(parts) < 3:
            raise exceptions.AuthenticationFailed("malformed API key")
        key = _key_by_prefix(parts[1])
        digest = hashlib.sha256(secret.encode()).hexdigest()
        # Constant-time comparison; the same message whether the prefix or the secret is wrong.
        if key is None or not hmac.compare_digest(key.secret_sha256, digest):
            raise exceptions.AuthenticationFailed("invalid API key")
        now = timezone.now()
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("this API key was revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise exceptions.AuthenticationFailed("this API key has expired")
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return ApiKeyPrincipal(key, frozenset(key.scopes)), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def _key_by_prefix(prefix: str) -> ApiKey | None:
    """The key and its organization in one raw query: this runs on every API call, and the
    ORM's query compilation and model building cost more than the query itself."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.id, k.name, k.secret_sha256, k.scopes, k.expires_at, k.revoked_at, "
            "k.last_used_at, o.id, o.handle, o.name, o.roles FROM ledger_apikey k "
            "JOIN ledger_organization o ON o.id = k.organization_id WHERE k.prefix = %s",
            [prefix],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    kid, name, digest, scopes, expires, revoked, used, oid, handle, oname, roles = row
    org = loaded(Organization, pk=oid, handle=handle, name=oname, roles=_json(roles))
    key = loaded(
        ApiKey,
        pk=kid,
        organization=org,
        name=name,
        prefix=prefix,
        secret_sha256=digest,
        scopes=_json(scopes),
        expires_at=_moment(expires),
        revoked_at=_moment(revoked),
        last_used_at=_moment(used),
    )
    return key


def _json(value: Any) -> Any:
    # PostgreSQL's jsonb arrives decoded; SQLite's JSON arrives as text.
    return json.loads(value) if isinstance(value, str) else value


def _moment(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=dt.UTC)
    moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class SessionAuthentication(authentication.SessionAuthentication):
    """The portal's own calls, CSRF-checked."""


def actor_for(request: Request) -> Actor:
    user: Any = request.user
    if isinstance(user, ApiKeyPrincipal):
        org = user.key.organization
        return Actor(f"apikey:{user.key.prefix}", org.pk, org.has_role(Role.OPERATOR))
    return Actor.for_user(user)


def scopes_of(request: Request) -> frozenset[str]:
    user: Any = request.user
    if isinstance(user, ApiKeyPrincipal):
        return user.scopes
    # Signed-in portal users act with every scope; their organization still limits them.
    return ALL_SCOPES if user.is_authenticated else frozenset()


class HasScope(permissions.BasePermission):
    """The view names ``required_scope`` (or ``required_scopes`` per method)."""

    message = "This API key lacks the scope this operation needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = getattr(view, "required_scopes", {}).get(
            request.method, getattr(view, "required_scope", "read")
        )
        if needed == PUBLIC:
            return True
        if not request.user or not request.user.is_authenticated:
            return False
        return needed is None or needed in scopes_of(request)


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Per key (per user for sessions, per address for anonymous callers)."""

    scope = "apikey"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user: Any = request.user
        if isinstance(user, ApiKeyPrincipal):
            ident = user.pk
        elif user and user.is_authenticated:
            ident = f"user:{user.pk}"
        else:
            ident = f"anon:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
