"""Sealed-bid auctions of registry credits.

Design
------
An auction sells credits from one holding. Scheduling moves the lot into escrow (an
``escrow.hold`` entry) and fixes the rules, which the ``auction.create`` and ``auction.schedule``
entries carry. Bids are HPKE ciphertexts to the auction's public key; each submission, amendment
and withdrawal is a ledger entry carrying the ciphertext and its SHA-256 commitment, never the
plaintext. Closing bidding is an entry carrying the Merkle root of the counted commitments; its
hash seeds every random draw. Clearing publishes the private key and the whole result in one
entry, so anyone holding the ledger can reopen every bid and re-run the clearing
(``auctions.core``). Settlement is delivery versus payment: awards wait as pending deliveries
in escrow until the operator confirms payment (delivered) or declares a default (released to
the seller).

These tables are derived from the ledger like the registry's: ``ledger_verify`` replays the
auction entries (``auctions.core.replay``) and compares. Invariants, and where they hold:

* One state machine (``Auction.State``), every transition a ledger entry, every transition a
  compare-and-set on the row (services), so each happens once.
* A bid counts only if its entry was committed while the auction was open: bids lock the
  auction row (shared) and closing locks it exclusively, so no bid commits across the close.
* The auction's private key is stored only encrypted under the key-encryption key (settings),
  and is written in the clear only by the ``auction.clear`` entry, after bidding closed.
* Amounts are integers: kgCO2e, whole lots, minor currency units per tonne.
"""

from __future__ import annotations

import base64
import datetime as dt

from django.db import models
from django.db.models import F, Q

from ledger.models import Account, Batch, EscrowHold, Organization


class Format(models.TextChoices):
    UNIFORM = "uniform", "Multi-unit, uniform price"
    PAY_AS_BID = "pay_as_bid", "Multi-unit, pay as bid"
    FIRST_PRICE = "first_price", "Single lot, first price"
    SECOND_PRICE = "second_price", "Single lot, second price (Vickrey)"
    ENGLISH = "english", "Single lot, English (ascending open bids)"
    CLOCK = "clock", "Multi-unit, ascending clock in rounds"


SINGLE_LOT_FORMATS = (Format.FIRST_PRICE, Format.SECOND_PRICE, Format.ENGLISH)
SEALED_FORMATS = (Format.UNIFORM, Format.PAY_AS_BID, Format.FIRST_PRICE, Format.SECOND_PRICE)
ASCENDING_FORMATS = (Format.ENGLISH, Format.CLOCK)


class TieRule(models.TextChoices):
    RANDOM_ORDER = "random_order", "Random order (EU style)"
    PRO_RATA = "pro_rata", "Pro rata, leftover lots by draw (California-Quebec style)"


class Undersubscribed(models.TextChoices):
    SETTLE = "settle", "Settle every valid bid (uniform price: at the reserve)"
    CANCEL = "cancel", "Cancel the auction"


class Sealing(models.TextChoices):
    """Who can open the bids (docs/auctions.md §3)."""

    TRUSTEES = "trustees", "Threshold of independent trustees"
    OPERATOR_KEY = "operator_key", "Operator-held key"
    # An English auction's bids are prices everyone sees; only who bids is hidden (paddles).
    OPEN = "open", "Not sealed: open prices, pseudonymous bidders"
    # A clock auction's round bids: committed on the ledger, opened when the auction ends; the
    # operator sees them as they arrive (docs/auctions-ascending.md §6).
    OPERATOR_ROUNDS = "operator_rounds", "Round bids hidden until the end; the operator sees them"


MAX_TRUSTEES = 16


class Bidder(models.Model):
    """An organization approved to bid (an operator's decision, on the ledger)."""

    class Status(models.TextChoices):
        APPROVED = "approved", "Approved"
        SUSPENDED = "suspended", "Suspended"

    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, related_name="bidder"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    entry_seq = models.BigIntegerField(help_text="The entry that last changed the status")

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.organization} ({self.status})"


def stored(value: bytes | memoryview | None, what: str) -> bytes:
    """A binary column that the row's state guarantees is set (an auction's key once it is
    scheduled, its book root and seed once closed): its bytes, or a loud error if it is not."""
    if value is None:
        raise RuntimeError(f"{what} is not set in this state")
    return bytes(value)


class Auction(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        OPEN = "open", "Open for bids"
        CLOSING = "closing", "Closed, being cleared"
        CLEARED = "cleared", "Cleared"
        SETTLED = "settled", "Settled"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    title = models.CharField(max_length=200)
    seller = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="auctions")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="auctions")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="auctions")
    hold = models.OneToOneField(
        EscrowHold, on_delete=models.PROTECT, null=True, blank=True, related_name="auction"
    )

    # The rules (fixed when scheduled; recorded by auction.create and auction.schedule).
    format = models.CharField(max_length=16, choices=Format.choices)
    quantity = models.BigIntegerField(help_text="kgCO2e offered: a whole number of lots")
    lot_kg = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    tick = models.BigIntegerField(help_text="Price tick, minor units per tonne")
    reserve = models.BigIntegerField(help_text="Reserve price, minor units per tonne")
    cap_bp = models.PositiveIntegerField(
        null=True, blank=True, help_text="Per-bidder cap, basis points of the offering"
    )
    deposit_required = models.BigIntegerField(help_text="Minor units")
    bid_guarantee = models.BooleanField(
        default=False, help_text="A bid's value may not exceed the bidder's deposit"
    )
    tie_rule = models.CharField(max_length=16, choices=TieRule.choices)
    undersubscribed = models.CharField(max_length=16, choices=Undersubscribed.choices)
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    # Who opens the bids: an operator-held key (the operator can read bids before the close:
    # the rules say so), or any ``threshold`` of ``trustees`` (organization ids, in the order
    # of their share boxes), who must release their keys by ``release_by``.
    sealing = models.CharField(max_length=16, choices=Sealing.choices, default=Sealing.OPERATOR_KEY)
    trustees = models.JSONField(default=list, blank=True)
    threshold = models.PositiveSmallIntegerField(null=True, blank=True)
    release_by = models.DateTimeField(null=True, blank=True)
    # The rules' version (the record's "v"): which computation the result is made and verified
    # by. Auctions from before versions are 1; auction_create writes the current one.
    rules_version = models.PositiveSmallIntegerField(default=1)
    # An English auction's own rules (bluecarbon_audit.auctions.english): the minimum raise by
    # price band ([[from, step], ...]), the countdown each bid in the timed phase restarts
    # (the free phase ends at closes_at), and an end no bid moves. Null for sealed formats.
    increments = models.JSONField(null=True, blank=True)
    countdown_s = models.PositiveIntegerField(null=True, blank=True)
    hard_close_at = models.DateTimeField(null=True, blank=True)
    # An English auction's bidding so far: the standing (highest) price and when bidding ends
    # now (english.Rules.deadline of the last bid's time; every accepted bid may move it).
    standing_price = models.BigIntegerField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    # A clock auction's round length (bluecarbon_audit.auctions.clock); its ends_at is the
    # current round's end. Null for the other formats.
    round_s = models.PositiveIntegerField(null=True, blank=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    public_key = models.BinaryField(null=True, blank=True)
    # The HPKE private key, encrypted under settings' key-encryption key (auctions.keys).
    # Secret until close: never serialized by an API, a page or the admin.
    private_key_sealed = models.BinaryField(null=True, blank=True, editable=False)
    # Published by the auction.clear entry, after bidding closed.
    private_key = models.BinaryField(null=True, blank=True)
    book_size = models.PositiveIntegerField(null=True, blank=True)
    book_root = models.BinaryField(null=True, blank=True)
    seed = models.BinaryField(null=True, blank=True, help_text="SHA-256 of the close entry")
    # The clearing's outcome and per-bidder summary (the whole result, with every bid, is the
    # auction.clear entry's, at result_seq).
    result = models.JSONField(null=True, blank=True)
    result_seq = models.BigIntegerField(null=True, blank=True)
    # The auction.reveal entry that named the bidders behind its bids' and deposits' pseudonyms
    # (appended with the close); null before, and for an auction cancelled before it.
    revealed_seq = models.BigIntegerField(null=True, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True, default="")
    clearing_price = models.BigIntegerField(null=True, blank=True)
    state_reason = models.CharField(max_length=200, blank=True, default="")
    created_seq = models.BigIntegerField()
    state_seq = models.BigIntegerField(help_text="The entry of the last transition")
    # Not ledger state: when winners and losers were told (so mail goes out once), and when
    # the worker pipeline last made progress (beat re-kicks a step that stalled).
    notified_at = models.DateTimeField(null=True, blank=True)
    kicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["state", "closes_at"], name="auction_state_closes"),
            models.Index(fields=["state", "ends_at"], name="auction_state_ends"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0, lot_kg__gt=0, tick__gt=0, reserve__gte=0),
                name="auction_amounts_positive",
            ),
            models.CheckConstraint(
                condition=Q(closes_at__gt=F("opens_at")), name="auction_closes_after_opening"
            ),
            models.CheckConstraint(
                condition=Q(cap_bp__isnull=True) | Q(cap_bp__gte=1, cap_bp__lte=10_000),
                name="auction_cap_range",
            ),
            models.CheckConstraint(
                condition=Q(deposit_required__gte=0), name="auction_deposit_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(sealing="operator_key", threshold__isnull=True, release_by__isnull=True)
                | Q(
                    sealing="trustees",
                    threshold__gte=1,
                    release_by__gt=F("closes_at"),
                )
                | Q(sealing="open", threshold__isnull=True, release_by__isnull=True)
                | Q(sealing="operator_rounds", threshold__isnull=True, release_by__isnull=True),
                name="auction_sealing_rules",
            ),
            models.CheckConstraint(
                condition=Q(format="clock", sealing="operator_rounds", round_s__gte=1)
                | (~Q(format="clock") & ~Q(sealing="operator_rounds") & Q(round_s__isnull=True)),
                name="auction_clock_rules",
            ),
            # Open bids are the English format's, and only its.
            models.CheckConstraint(
                condition=Q(format="english", sealing="open", countdown_s__gte=1)
                | (~Q(format="english") & ~Q(sealing="open") & Q(countdown_s__isnull=True)),
                name="auction_english_rules",
            ),
        ]

    def __str__(self) -> str:
        return f"auction {self.pk}: {self.title}"

    @property
    def by_trustees(self) -> bool:
        return self.sealing == Sealing.TRUSTEES

    @property
    def is_english(self) -> bool:
        return self.format == Format.ENGLISH

    @property
    def is_clock(self) -> bool:
        return self.format == Format.CLOCK

    @property
    def bidding_ends_at(self) -> dt.datetime:
        """When bidding ends: the closing time, or an English auction's moving end."""
        return self.ends_at if self.ends_at is not None else self.closes_at

    @property
    def offered_lots(self) -> int:
        return self.quantity // self.lot_kg

    # For pages: the public key, the book root, and the private key once published.
    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(bytes(self.public_key)).decode() if self.public_key else ""

    def lot_hold(self) -> int:
        """The escrow hold of the lot, which every auction past scheduling has."""
        if self.hold_id is None:
            raise RuntimeError(f"auction {self.pk} has no escrow hold in this state")
        return self.hold_id

    @property
    def book_root_hex(self) -> str:
        return bytes(self.book_root).hex() if self.book_root is not None else ""

    @property
    def private_key_b64(self) -> str:
        return base64.b64encode(bytes(self.private_key)).decode() if self.private_key else ""


class Bid(models.Model):
    """One sealed bid: its latest version (history is on the ledger). A bidder may have several
    in an auction; at clearing they are one demand schedule (``auctions.core.result``)."""

    class Status(models.TextChoices):
        SEALED = "sealed", "Sealed"
        WITHDRAWN = "withdrawn", "Withdrawn"
        VALID = "valid", "Valid"
        REJECTED = "rejected", "Rejected"

    auction = models.ForeignKey(Auction, on_delete=models.PROTECT, related_name="bids")
    bidder = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="bids")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="bids")
    version = models.PositiveIntegerField()
    ciphertext = models.BinaryField()
    commitment = models.CharField(max_length=64, help_text="SHA-256 of the ciphertext, hex")
    entry_seq = models.BigIntegerField(help_text="The entry of the latest version")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SEALED)
    reason = models.CharField(max_length=32, blank=True, default="", db_default="")
    # The salt of the bid's pseudonyms on the ledger (``bluecarbon_audit.auctions.parties``):
    # secret until the auction.reveal entry publishes it. Null for bids from before pseudonyms.
    salt = models.BinaryField(null=True, blank=True, editable=False)
    # After close: the opened tiers as sealed (worker's working copy until the result is
    # published; the auction.clear entry is the record) and the lots awarded.
    opened = models.JSONField(null=True, blank=True)
    awarded_lots = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["auction", "bidder"], name="bid_auction_bidder")]
        constraints = [
            # A ciphertext counts once: the same bytes submitted again are not a second bid.
            models.UniqueConstraint(fields=["auction", "commitment"], name="bid_commitment_once"),
        ]

    def __str__(self) -> str:
        return f"bid {self.pk} v{self.version} in auction {self.auction_id}"


class Paddle(models.Model):
    """A bidder in an English auction, by its paddle: the pseudonym its bids carry until the
    end (``parties.paddle``, committing to the bidder and the account the lot would go to).
    Made at its first bid; the salt is secret until ``auction.reveal``."""

    auction = models.ForeignKey(Auction, on_delete=models.PROTECT, related_name="paddles")
    bidder = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="paddles")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="paddles")
    salt = models.BinaryField(editable=False)
    pseudonym = models.CharField(max_length=64)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["auction", "bidder"], name="one_paddle_per_bidder"),
            models.UniqueConstraint(fields=["auction", "pseudonym"], name="paddle_pseudonym_once"),
        ]

    def __str__(self) -> str:
        return f"paddle {self.pseudonym[:8]} in auction {self.auction_id}"

    @property
    def label(self) -> str:
        """How pages and the API show it: the pseudonym's first eight hex digits."""
        return self.pseudonym[:8]


class Raise(models.Model):
    """One accepted bid of an English auction (``bid.raise``): an open price. Only accepted
    bids exist; each beats the one before it by the rules' increment, so the last is the
    highest."""

    auction = models.ForeignKey(Auction, on_delete=models.PROTECT, related_name="raises")
    paddle = models.ForeignKey(Paddle, on_delete=models.PROTECT, related_name="raises")
    price = models.BigIntegerField(help_text="Minor units per tonne")
    time = models.DateTimeField(help_text="The entry's time")
    entry_seq = models.BigIntegerField(unique=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            # Also the index the standing price is read by.
            models.UniqueConstraint(fields=["auction", "price"], name="raise_price_rises"),
            models.CheckConstraint(condition=Q(price__gte=0), name="raise_price_non_negative"),
        ]

    def __str__(self) -> str:
        return f"raise {self.pk} to {self.price} in auction {self.auction_id}"


class ClockRound(models.Model):
    """One round of a clock auction: its price and end (``clock.round_open``), and once it
    ended what was published (``clock.round_close``): the aggregate demand and the number of
    active bidders, and whether it was the final round."""

    auction = models.ForeignKey(Auction, on_delete=models.PROTECT, related_name="rounds")
    number = models.PositiveIntegerField()
    price = models.BigIntegerField(help_text="Minor units per tonne")
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    open_seq = models.BigIntegerField()
    aggregate = models.BigIntegerField(null=True, blank=True, help_text="Lots demanded")
    active = models.PositiveIntegerField(null=True, blank=True)
    final = models.BooleanField(null=True, blank=True)
    close_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["auction", "number"], name="one_round_number"),
        ]

    def __str__(self) -> str:
        return f"round {self.number} of auction {self.auction_id}"


class ClockBid(models.Model):
    """A bidder's bid in one round of a clock auction (its latest version): the lots it
    demands at the round price and, optionally, the exit price inside the round at which its
    demand drops from the round before's. On the ledger only a commitment (``clock.bid``),
    opened by the auction's reveal; the salt is secret until then."""

    auction = models.ForeignKey(Auction, on_delete=models.PROTECT, related_name="clock_bids")
    round = models.ForeignKey(ClockRound, on_delete=models.PROTECT, related_name="bids")
    paddle = models.ForeignKey(Paddle, on_delete=models.PROTECT, related_name="clock_bids")
    lots = models.BigIntegerField()
    exit_price = models.BigIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    salt = models.BinaryField(editable=False)
    commitment = models.CharField(max_length=64)
    entry_seq = models.BigIntegerField()

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["round", "paddle"], name="one_bid_per_round"),
            models.CheckConstraint(condition=Q(lots__gte=0), name="clock_bid_lots"),
        ]

    def __str__(self) -> str:
        return f"clock bid {self.pk} in round {self.round_id}"


class BidReceipt(models.Model):
    """What the bidder is given for each version of a bid: the facts of its ledger entry. The
    receipt itself is a note signed with the receipt key when it is shown (``receipt_note``):
    Ed25519 signatures are deterministic, so the same key always gives the same receipt, and
    signing it after the commit means nothing is signed before it is durable."""

    bid = models.ForeignKey(Bid, on_delete=models.PROTECT, related_name="receipts")
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=16)
    commitment = models.CharField(max_length=64, blank=True, default="")
    entry_seq = models.BigIntegerField(unique=True)
    time = models.CharField(max_length=32, help_text="The entry's time (RFC 3339, UTC)")

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"receipt for bid {self.bid_id} v{self.version}"


class Deposit(models.Model):
    """A bidder's financial security for one auction, recorded by the operator."""

    class State(models.TextChoices):
        HELD = "held", "Held"
        RELEASED = "released", "Released"
        APPLIED = "applied", "Applied to the payment"
        FORFEITED = "forfeited", "Forfeited"  # on a default, or by the operator (onboarding)

    auction = models.ForeignKey(Auction, on_delete=models.PROTECT, related_name="deposits")
    bidder = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="deposits")
    amount = models.BigIntegerField(help_text="Minor units")
    state = models.CharField(max_length=16, choices=State.choices, default=State.HELD)
    entry_seq = models.BigIntegerField()
    # The salt of the depositor's pseudonym on the ledger, secret until auction.reveal.
    salt = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["auction", "bidder"], name="one_deposit_per_bidder"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_positive"),
        ]

    def __str__(self) -> str:
        return f"deposit of {self.bidder} in auction {self.auction_id}"


class Application(models.Model):
    """An organization's application to bid in one auction, and the operator's decision on it
    (``auctions/onboarding.py``). Once an organization has applied to an auction, its
    application decides whether it may bid there: only an approved one admits it (and not
    while it is suspended as a bidder). Without one, its standing approval as a bidder
    (``Bidder``) does, as before applications existed.

    Until the auction's reveal the ledger names the applicant by a pseudonym made with
    ``salt`` (``bluecarbon_audit.auctions.onboarding.applicant``), as it names bidders and
    depositors (docs/auctions.md §3.7)."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting the decision"
        APPROVED = "approved", "Approved"
        REFUSED = "refused", "Refused"
        WITHDRAWN = "withdrawn", "Withdrawn by the applicant"

    auction = models.ForeignKey(Auction, on_delete=models.PROTECT, related_name="applications")
    bidder = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="applications")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    reason = models.CharField(max_length=200, blank=True, default="", help_text="Why refused")
    # The salt of the applicant's pseudonym on the ledger: secret until auction.reveal.
    salt = models.BinaryField(editable=False)
    entry_seq = models.BigIntegerField(help_text="The entry that last changed the state")

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["auction", "bidder"], name="one_application"),
        ]

    def __str__(self) -> str:
        return f"application of {self.bidder} to auction {self.auction_id} ({self.state})"


class Award(models.Model):
    """A winner's pending delivery (one per winning bidder): credits in escrow against the
    amount due."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting payment"
        DELIVERED = "delivered", "Paid and delivered"
        DEFAULTED = "defaulted", "Defaulted (credits returned to the seller)"

    auction = models.ForeignKey(Auction, on_delete=models.PROTECT, related_name="awards")
    bidder = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="awards")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="awards")
    lots = models.BigIntegerField()
    quantity = models.BigIntegerField(help_text="kgCO2e")
    amount_due = models.BigIntegerField(help_text="Minor units")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    entry_seq = models.BigIntegerField(help_text="The auction.settle entry")
    resolved_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["auction", "bidder"], name="one_award_per_winner"),
            models.CheckConstraint(
                condition=Q(lots__gt=0, quantity__gt=0, amount_due__gte=0), name="award_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"award {self.pk} to {self.bidder} in auction {self.auction_id}"


class TrusteeKey(models.Model):
    """One of a trustee's one-time X25519 keys, registered by its public key (the private key
    is made and kept on the trustee's machine). Scheduling an auction assigns each of its
    trustees its oldest unused key; after the close the trustee releases the private key, which
    must match. A released key opens only the share boxes of that one auction."""

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="trustee_keys"
    )
    public_key = models.BinaryField()
    entry_seq = models.BigIntegerField(help_text="The trustee.keys entry that registered it")
    auction = models.ForeignKey(
        Auction, on_delete=models.PROTECT, null=True, blank=True, related_name="trustee_keys"
    )
    position = models.PositiveSmallIntegerField(null=True, blank=True)
    # Published by the auction.key_release entry, after the close.
    private_key = models.BinaryField(null=True, blank=True)
    released_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["organization", "auction"], name="trustee_key_free"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["public_key"], name="trustee_key_once"),
            models.UniqueConstraint(fields=["auction", "position"], name="trustee_key_position"),
            models.CheckConstraint(
                condition=Q(auction__isnull=True, position__isnull=True)
                | Q(auction__isnull=False, position__gte=1),
                name="trustee_key_assigned",
            ),
            models.CheckConstraint(
                condition=Q(private_key__isnull=True) | Q(auction__isnull=False),
                name="trustee_key_released_assigned",
            ),
        ]

    def __str__(self) -> str:
        return f"trustee key {self.pk} of {self.organization}"

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(bytes(self.public_key)).decode()
