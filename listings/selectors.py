"""Reads of the listing board, for the API and the portal."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from ledger.actors import Actor
from ledger.models import Organization

from . import policy
from .models import Listing, Purchase


def listing_list(
    *, state: str | None = None, seller: int | None = None, batch: int | None = None
) -> QuerySet[Listing]:
    qs = Listing.objects.select_related("batch__project", "seller").order_by("pk")
    if state:
        qs = qs.filter(state=state)
    if seller:
        qs = qs.filter(seller_id=seller)
    if batch:
        qs = qs.filter(batch_id=batch)
    return qs


def listing_get(pk: int) -> Listing | None:
    return (
        Listing.objects.select_related("batch__project__methodology", "seller")
        .filter(pk=pk)
        .first()
    )


def listings_board() -> dict[str, list[Listing]]:
    """The board: listings taking orders now, those still to open, those just ended."""
    now = timezone.now()
    listed = listing_list(state=Listing.State.OPEN).filter(closes_at__gt=now)
    return {
        "open": list(listed.filter(opens_at__lte=now)),
        "upcoming": list(listed.filter(opens_at__gt=now)),
        "ended": list(
            listing_list()
            .filter(~Q(state=Listing.State.OPEN) | Q(closes_at__lte=now))
            .order_by("-pk")[:20]
        ),
    }


def purchase_list(*, actor: Actor) -> QuerySet[Purchase]:
    """The purchases the actor may see (policy.purchases_visible_to), by id."""
    return policy.purchases_visible_to(actor).select_related("listing").order_by("pk")


def purchase_get(pk: int) -> Purchase | None:
    """Any purchase: for the answer to a write the caller was allowed to make."""
    return Purchase.objects.select_related("listing").filter(pk=pk).first()


def purchases_of(org: Organization) -> QuerySet[Purchase]:
    """What ``org`` bought (policy.purchases_of), newest first."""
    return (
        policy.purchases_of(org.pk)
        .select_related("listing__batch__project", "account")
        .order_by("-pk")
    )


def bought_lots(listing: Listing, org: Organization | None) -> int:
    if org is None:
        return 0
    return sum(
        policy.purchases_of(org.pk)
        .filter(listing=listing, state__in=(Purchase.State.PENDING, Purchase.State.DELIVERED))
        .values_list("lots", flat=True)
    )
