"""Listing sales (挂牌) of registry credits: a fixed price, whole lots, first come first served.

Design
------
A seller lists whole lots of one batch from one of its holding accounts, at a price per tonne,
between an opening and a closing time. Listing moves the lots into an escrow hold referenced
``listing:<id>`` at once (an ``escrow.hold`` entry, then ``listing.create`` with the terms), so
what is listed cannot be sold twice. A buyer takes whole lots (``listing.take``): first come by
ledger order, because every take locks the listing's row. A take is a pending purchase whose
lots stay in the hold until the operator confirms payment (``listing.purchase_confirm``: the hold
delivers them, delivery versus payment) or declares a default (``listing.purchase_default``:
they return to the listing while it is open, else to the seller). The seller may withdraw what
is unsold (``listing.withdraw``); at the closing time the unsold lots return to the seller
(``listing.expire``, a task at the closing time and beat's sweep).

These tables are derived from the ledger: ``ledger_verify`` replays the listing entries
(``bluecarbon_audit.listings``) and compares. Invariants, and where they hold:

* never oversold: ``0 <= remaining_lots <= lots`` (a CHECK), takes under the listing's row lock
  (services), every take checked against what remained by the replay;
* the hold keeps exactly the unsold lots (while open) and the pending purchases' lots: the
  services move it only with the entry that accounts for it, the replay checks its balance
  after every listing entry;
* one state machine, each transition a compare-and-set under the row lock and one entry.
* Amounts are integers: whole lots, kgCO2e, minor currency units (price per tonne).
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from ledger.models import Account, Batch, EscrowHold, Organization


class Listing(models.Model):
    class State(models.TextChoices):
        OPEN = "open", "Listed"
        WITHDRAWN = "withdrawn", "Withdrawn"
        CLOSED = "closed", "Closed"

    seller = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="listings")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="listings")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="listings")
    hold = models.OneToOneField(
        EscrowHold, on_delete=models.PROTECT, null=True, blank=True, related_name="listing"
    )
    # The terms (listing.create).
    lots = models.BigIntegerField(help_text="Lots listed")
    lot_kg = models.BigIntegerField(help_text="kgCO2e per lot")
    currency = models.CharField(max_length=3)
    price = models.BigIntegerField(help_text="Minor units per tonne")
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    max_lots_per_buyer = models.BigIntegerField(null=True, blank=True)
    min_lots = models.BigIntegerField(default=1, help_text="The smallest take (but the last lots)")

    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    remaining_lots = models.BigIntegerField(help_text="Lots not taken (0 once withdrawn or closed)")
    created_seq = models.BigIntegerField()
    state_seq = models.BigIntegerField(help_text="The entry of the last transition")

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["state", "closes_at"], name="listing_state_closes")]
        constraints = [
            models.CheckConstraint(
                condition=Q(lots__gt=0, lot_kg__gt=0, price__gt=0, min_lots__gt=0),
                name="listing_terms_positive",
            ),
            models.CheckConstraint(
                condition=Q(remaining_lots__gte=0, remaining_lots__lte=F("lots")),
                name="listing_never_oversold",
            ),
            models.CheckConstraint(
                condition=Q(closes_at__gt=F("opens_at")), name="listing_closes_after_opening"
            ),
            models.CheckConstraint(
                condition=Q(max_lots_per_buyer__isnull=True)
                | Q(max_lots_per_buyer__gte=F("min_lots")),
                name="listing_buyer_cap",
            ),
        ]

    def __str__(self) -> str:
        return f"listing {self.pk}: {self.lots} x {self.lot_kg} kg ({self.state})"

    @property
    def quantity(self) -> int:
        return self.lots * self.lot_kg

    def lot_hold(self) -> int:
        """The escrow hold of the listed lots (set when the listing is created)."""
        if self.hold_id is None:
            raise RuntimeError(f"listing {self.pk} has no escrow hold")
        return self.hold_id

    @property
    def sold_out(self) -> bool:
        return self.state == self.State.OPEN and self.remaining_lots == 0


class Purchase(models.Model):
    """A take: whole lots of a listing for one buyer, delivered when its payment is confirmed."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting payment"
        DELIVERED = "delivered", "Paid and delivered"
        DEFAULTED = "defaulted", "Defaulted (lots returned)"

    listing = models.ForeignKey(Listing, on_delete=models.PROTECT, related_name="purchases")
    buyer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="purchases")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="purchases")
    lots = models.BigIntegerField()
    quantity = models.BigIntegerField(help_text="kgCO2e")
    amount_due = models.BigIntegerField(help_text="Minor units")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    entry_seq = models.BigIntegerField(help_text="The listing.take entry")
    resolved_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["listing", "buyer"], name="purchase_listing_buyer")]
        constraints = [
            models.CheckConstraint(
                condition=Q(lots__gt=0, quantity__gt=0, amount_due__gt=0),
                name="purchase_amounts_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"purchase {self.pk} of listing {self.listing_id}: {self.lots} lots ({self.state})"
