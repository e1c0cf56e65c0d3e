"""What every portal page knows about who is looking."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from ledger import operations
from ledger.models import Membership, Role


def viewer(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's organization and what it may do here (computed once a request)."""
    cached = getattr(request, "_portal_viewer", None)
    if cached is not None:
        return cached
    user = getattr(request, "user", None)
    info: dict[str, Any] = {
        "organization": None,
        "is_bidder": False,
        "is_auditor": False,
        "is_operator": False,
        "is_trustee": False,
        "pending_signup": None,
    }
    # An API key's principal is no user of the portal (pages only show it as anonymous).
    if isinstance(user, AbstractBaseUser) and user.is_authenticated:
        m = Membership.objects.select_related("organization").filter(user_id=user.pk).first()
        org = m.organization if m else None
        info["organization"] = org
        info["is_bidder"] = bool(org and org.has_role(Role.BIDDER))
        info["is_operator"] = bool(
            getattr(user, "is_superuser", False) or (org and org.has_role(Role.OPERATOR))
        )
        info["is_auditor"] = bool(org and org.has_role(Role.AUDITOR)) or info["is_operator"]
        info["is_trustee"] = bool(org and org.has_role(Role.TRUSTEE))
        if org is None:
            info["pending_signup"] = getattr(user, "signup_request", None)
    request._portal_viewer = info  # type: ignore[attr-defined]
    return info


def sees_operations(request: HttpRequest) -> bool:
    """Operators and auditors, and whoever may use the admin, see the operations banner."""
    user = getattr(request, "user", None)
    return viewer(request)["is_auditor"] or bool(getattr(user, "is_staff", False))


def portal(request: HttpRequest) -> dict[str, Any]:
    # Lazy: only a page that shows the banner asks the database (base.html and the admin's
    # base_site.html do), and only for those who see it.
    return {
        "viewer": viewer(request),
        "operations_alerts": SimpleLazyObject(
            lambda: operations.alerts() if sees_operations(request) else []
        ),
    }
