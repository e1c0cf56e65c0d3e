"""DEMO ONLY: one listing sale on the demo registry (``manage.py seed_demo_listings``, after
``seed_demo``): the Xiangshan seaweed sink's holder lists 500 t in 50 t lots at 106.00 CNY/t for
a week; two demo bidders take lots, one of them has paid and retires part of it."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from ledger import services as registry
from ledger.actors import Actor
from ledger.models import Account, Holding, Organization, Role

from . import services
from .models import Listing

TONNE = 1000


def seed_listings(*, op: Actor) -> Listing | None:
    """The demo's listing, or None if there is no demo registry or it has one already."""
    if Listing.objects.exists():
        return None
    holding = next(
        (
            h
            for h in Holding.objects.filter(
                account__kind=Account.Kind.HOLDING, tradable__gte=500 * TONNE
            )
            .select_related("account__organization")
            .order_by("pk")
            if h.account.organization.has_role(Role.DEVELOPER)
        ),
        None,
    )
    if holding is None:
        return None
    buyers = [
        o
        for o in Organization.objects.filter(accounts__kind=Account.Kind.HOLDING)
        .distinct()
        .order_by("pk")
        if o.has_role(Role.BIDDER) and o.pk != holding.account.organization_id
    ][:2]
    if len(buyers) < 2:
        return None
    seller = holding.account.organization
    now = timezone.now()
    x = services.listing_create(
        actor=Actor(f"org:{seller.handle}", seller.pk),
        account=holding.account_id,
        batch=holding.batch_id,
        lots=10,
        lot_kg=50 * TONNE,
        currency="CNY",
        price=10_600,
        opens_at=now,
        closes_at=now + dt.timedelta(days=7),
        max_lots_per_buyer=6,
    )
    first, second = (
        services.listing_take(actor=Actor(f"org:{b.handle}", b.pk), listing=x.pk, lots=n)
        for b, n in zip(buyers, (4, 2), strict=True)
    )
    services.purchase_confirm(actor=op, purchase=first.pk)
    del second  # awaiting payment: the purchases page shows both states
    # The first buyer retires part of what it bought, for three of its sites. (The demo's
    # ledger then ends as seed_demo's does, with entries the tamper drill's rollback attack
    # can undo: transfers, retirements, cancellations.)
    for site in ("Beilun plant", "Zhenhai plant", "Head office"):
        registry.credit_retire(
            actor=op,
            batch=holding.batch_id,
            account=first.account_id,
            quantity=10 * TONNE,
            beneficiary=f"{buyers[0].name}, {site}",
            purpose="Offsetting 2023 Scope 2 emissions",
            jurisdiction="CN-ZJ",
            reason="Credits bought from a listing sale",
        )
    return x
