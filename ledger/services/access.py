"""Access (not ledger state): API keys, shown once and stored as SHA-256. Webhook endpoints are
``ledger/webhooks.py``'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable

from django.utils import timezone

from .. import validation
from ..exceptions import InvalidInput, NotFound
from ..models import ApiKey, Organization
from .checks import _get


def _secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def apikey_create(
    *,
    organization: int,
    name: str,
    scopes: Iterable[str],
    expires_at: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """Make a key; returns it with its plaintext, which is never stored or shown again."""
    org = _get(Organization, organization)
    if org is None:
        raise NotFound(f"organization {organization} not found")
    scope_list = sorted({validation.choice(s, "scopes", ApiKey.Scope.values) for s in scopes})
    if not scope_list:
        raise InvalidInput("a key needs at least one scope", detail={"scopes": "required"})
    prefix = secrets.token_hex(4)
    secret = f"bck_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        organization=org,
        name=validation.text(name, "name", max_length=200),
        prefix=prefix,
        secret_sha256=_secret_sha256(secret),
        scopes=scope_list,
        expires_at=expires_at,
    )
    return key, secret


def apikey_revoke(*, prefix: str) -> ApiKey:
    key = ApiKey.objects.filter(prefix=prefix).first()
    if key is None:
        raise NotFound(f"API key {prefix} not found")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
