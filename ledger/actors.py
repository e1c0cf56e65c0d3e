"""Who is acting. Every ledger entry names its actor; services check what it may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


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
    def for_user(cls, user: AbstractBaseUser) -> Actor:
        from .models import Membership, Role

        membership = Membership.objects.select_related("organization").filter(user=user).first()
        org = membership.organization if membership else None
        is_operator = bool(getattr(user, "is_superuser", False)) or bool(
            org and org.has_role(Role.OPERATOR)
        )
        return cls(f"user:{user.pk}", org.pk if org else None, is_operator)

    def may_act_for(self, organization_id: int) -> bool:
        return self.is_operator or self.organization_id == organization_id
