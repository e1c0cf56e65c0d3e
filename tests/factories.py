"""Test data, made the only way the product makes it: through services."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from typing import Any

from ledger import services
from ledger.actors import Actor
from ledger.models import Account, Batch, Methodology, Organization, Project, Role

OPERATOR = Actor.system("tests")
_n = itertools.count(1)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def actor_for(org: Organization) -> Actor:
    return Actor(f"org:{org.handle}", org.pk)


def organization(*roles: str, handle: str | None = None) -> Organization:
    n = next(_n)
    return services.organization_register(
        actor=OPERATOR,
        handle=handle or f"org-{n}",
        name=f"Organization {n}",
        roles=roles or [Role.BIDDER],
    )


def account(org: Organization, name: str = "Main") -> Account:
    return services.account_open(actor=OPERATOR, organization=org.pk, name=name)


def methodology(code: str | None = None) -> Methodology:
    return services.methodology_register(
        actor=OPERATOR,
        code=code or f"VM0033-{next(_n)}",
        name="Methodology for Tidal Wetland and Seagrass Restoration",
        standard="Verra",
        ecosystems=["mangrove", "salt_marsh", "seagrass", "macroalgae", "shellfish", "tidal_flat"],
    )


def project(
    registry: Organization,
    developer: Organization,
    meth: Methodology | None = None,
    **overrides: Any,
) -> Project:
    n = next(_n)
    fields: dict[str, Any] = dict(
        registry=registry.pk,
        code=f"P{n:04d}",
        name=f"Project {n}",
        ecosystem="mangrove",
        storage_pathway="biomass_sediment",
        methodology=(meth or methodology()).pk,
        jurisdiction="CN-GD",
        location={"type": "Point", "coordinates": ["110.4", "21.2"]},
        area_m2=380 * 10_000,
        developer=developer.pk,
        validation_body="China Quality Certification Centre",
        status="active",
    )
    fields.update(overrides)
    return services.project_register(actor=OPERATOR, **fields)


def batch(
    proj: Project,
    quantity: int = 1_000_000,
    *,
    year: int = 2021,
    share_bp: int = 2000,
    holder: Account | None = None,
    **overrides: Any,
) -> Batch:
    fields: dict[str, Any] = dict(
        project=proj.pk,
        monitoring_start=dt.date(year, 1, 1),
        monitoring_end=dt.date(year, 12, 31),
        verification_body="DNV",
        verification_report_sha256=sha(f"report {proj.code} {year}"),
        quantity=quantity,
        buffer_share_bp=share_bp,
        holder=holder.pk if holder else None,
    )
    fields.update(overrides)
    return services.batch_issue(actor=OPERATOR, **fields)


class World:
    """A registry, a developer with an account, a buyer with an account, one project."""

    def __init__(self) -> None:
        self.registry = organization(Role.REGISTRY, Role.OPERATOR)
        self.developer = organization(Role.DEVELOPER)
        self.buyer = organization(Role.BIDDER)
        self.dev_account = account(self.developer)
        self.buyer_account = account(self.buyer)
        self.buffer = Account.objects.get(organization=self.registry, kind="buffer")
        self.project = project(self.registry, self.developer)
        self.dev = actor_for(self.developer)
        self.buy = actor_for(self.buyer)

    def issue(self, quantity: int = 1_000_000, **kw: Any) -> Batch:
        return batch(self.project, quantity, holder=self.dev_account, **kw)
