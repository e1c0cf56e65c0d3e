"""Who may see a purchase: the one place that says it (issue 15, section 4).

An operator sees every purchase; an organization those it bought and those of its own listings
(the seller is told who took its lots, to deliver and be paid); an actor that acts for no
organization none. Listings themselves are public. ``purchases_of(organization)`` is what an
organization bought, whoever looks. The API, the portal and the selectors read through these,
and ``tests/test_policy.py`` fails if a reader filters purchases by organization itself.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from ledger.actors import NO_ORGANIZATION, Actor

from .models import Purchase


def purchases_of(organization: int | None) -> QuerySet[Purchase]:
    return Purchase.objects.filter(buyer_id=organization or NO_ORGANIZATION)


def purchases_visible_to(actor: Actor) -> QuerySet[Purchase]:
    if actor.is_operator:
        return Purchase.objects.all()
    org = actor.owner_id
    return Purchase.objects.filter(Q(buyer_id=org) | Q(listing__seller_id=org))
