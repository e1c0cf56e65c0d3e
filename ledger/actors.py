"""Who is acting. Every ledger entry names its actor; services check what it may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .exceptions import PermissionDenied
from .models import Membership, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


# What an actor that acts for no organization owns: nothing (no row has primary key 0).
NO_ORGANIZATION = 0


@dataclass(frozen=True)
class Actor:
    # Written into each entry's "actor": "user:<id>", "system:<job>" or "apikey:<prefix>".
    label: str
    organization_id: int | None
    # Operators (and system jobs) may act on any organization's behalf.
    is_operator: bool = False

    @classmethod
    def system(cls, job: str) -> Actor:
        return cls(f"system:{job}", None, True)

    @classmethod
    def for_user(cls, user: AbstractBaseUser | AnonymousUser) -> Actor:
        if not user.is_authenticated or user.pk is None:
            raise PermissionDenied("sign in first")
        membership = (
            Membership.objects.select_related("organization").filter(user_id=user.pk).first()
        )
        org = membership.organization if membership else None
        is_operator = bool(getattr(user, "is_superuser", False)) or bool(
            org and org.has_role(Role.OPERATOR)
        )
        return cls(f"user:{user.pk}", org.pk if org else None, is_operator)

    @property
    def owner_id(self) -> int:
        """The organization whose rows this actor owns, for filters (``NO_ORGANIZATION``: none)."""
        return self.organization_id or NO_ORGANIZATION

    def may_act_for(self, organization_id: int) -> bool:
        return self.is_operator or self.organization_id == organization_id
