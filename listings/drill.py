"""The tamper drill's attacks on the listing board (``ledger/drill.py`` finds ``ATTACKS`` here).

Each picks the latest purchase or listing of the copy; a ledger without one skips them."""

from __future__ import annotations

from ledger.drill_attacks import DATABASE, Attack, Scene, Step

from .models import Listing, Purchase

_NONE = "no listing sale in this ledger (`manage.py seed_demo_listings` makes one)"


def _plan_purchase_lots(scene: Scene) -> Step | str:
    p = Purchase.objects.order_by("-pk").first()
    if p is None:
        return _NONE
    pk, lots, lot_kg = p.pk, p.lots, p.listing.lot_kg

    def step(scene: Scene) -> str:
        Purchase.objects.filter(pk=pk).update(lots=lots + 1, quantity=(lots + 1) * lot_kg)
        return f"purchase {pk}: {lots + 1} lots instead of {lots} (the buyer would get more)"

    return step


def _plan_listing_remaining(scene: Scene) -> Step | str:
    x = Listing.objects.filter(purchases__isnull=False).order_by("-pk").first()
    if x is None:
        return _NONE
    pk, remaining, lots = x.pk, x.remaining_lots, x.lots

    def step(scene: Scene) -> str:
        new = lots if remaining != lots else max(remaining - 1, 0)
        Listing.objects.filter(pk=pk).update(remaining_lots=new)
        return f"listing {pk}: {new} lots remaining instead of {remaining} (sold twice)"

    return step


ATTACKS = [
    Attack(
        "purchase-lots",
        "a purchase's lots changed in the database",
        DATABASE,
        ("verify",),
        _plan_purchase_lots,
    ),
    Attack(
        "listing-remaining",
        "a listing's remaining lots changed in the database (its lots sold again)",
        DATABASE,
        ("verify",),
        _plan_listing_remaining,
    ),
]
