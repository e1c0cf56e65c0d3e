"""The registry and its ledger.

Design
------
The ledger (``LedgerEntry``) is the source of truth. Every other registry table is derived
from it: replaying the entries from sequence 0 rebuilds organizations, accounts, projects,
batches, holdings, escrow holds, retirements, cancellations, reversals and projects' documents
exactly, and ``manage.py ledger_verify`` does that and compares.

Invariants, and where they are enforced:

* Ledger rows are append-only: database triggers reject UPDATE, DELETE and TRUNCATE
  (migration 0002). Merkle nodes and checkpoints are append-only the same way.
* One chain: an append locks the single ``LedgerHead`` row, so entries get consecutive sequence
  numbers in the order their transactions changed the derived state.
* Every write is a function in ``services/`` that changes the derived rows and appends the
  entry in one transaction. Nothing else writes these models (the admin is read-only).
* Supply per batch: issued = tradable + escrowed (over all holdings) + retired + cancelled.
  Check constraints keep every balance and total non-negative and retired + cancelled within
  issued; services keep the sum; the verifier recomputes it from the ledger.
* Retired and cancelled credits leave holdings for good: they exist only as records and batch
  totals, so no operation can move them.
* No double counting: a project's monitoring periods never overlap (services, under a lock on
  the project row), origin ids are unique per registry of origin (unique constraints), and
  so are their normalised keys (``origin_key``, ``origin_tx_key``: NFKC, case-folded, format
  characters removed, registry-specific shapes such as VCS-2236 = 2236; ledger/core/origin.py),
  so that no spelling of an id registers it twice.
* An auction's lot and a listing's lots move only through the auction or the listing: the hold's
  ``owner`` column says so, a check constraint ties it to the reference's ``auction:`` or
  ``listing:`` prefix, the escrow services refuse any other mover, and the verifier compares
  the column with the owner the replayed reference gives.

Quantities are integers: kgCO2e, basis points, square metres. See ``ledger/core/quantity.py``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Func, Q, Value
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import gettext


class Role(models.TextChoices):
    REGISTRY = "registry", "Registry / issuer"
    DEVELOPER = "developer", "Project developer"
    BIDDER = "bidder", "Bidder / buyer"
    AUDITOR = "auditor", "Auditor"
    OPERATOR = "operator", "Operator"
    TRUSTEE = "trustee", "Auction trustee"


class Ecosystem(models.TextChoices):
    MANGROVE = "mangrove", "Mangrove"
    SALT_MARSH = "salt_marsh", "Salt marsh"
    SEAGRASS = "seagrass", "Seagrass"
    TIDAL_FLAT = "tidal_flat", "Tidal flat"
    MACROALGAE = "macroalgae", "Macroalgae (seaweed farming)"
    SHELLFISH = "shellfish", "Shellfish farming"

    @classmethod
    def name_of(cls, code: str) -> str:
        """An ecosystem's code (as stored and in the ledger) as its name in the reader's
        language (the labels are in the catalog through portal/labels.py); an unknown code as
        it is."""
        try:
            return gettext(cls(code).label)
        except ValueError:
            return code


class StoragePathway(models.TextChoices):
    BIOMASS = "biomass", "Living biomass"
    SEDIMENT = "sediment", "Sediment (soil organic carbon)"
    BIOMASS_AND_SEDIMENT = "biomass_sediment", "Biomass and sediment"
    HARVEST_EXPORT = "harvest_export", "Harvested biomass leaving the system"
    SHELL_CARBONATE = "shell_carbonate", "Shell carbonate"


class Organization(models.Model):
    handle = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    # The name in Chinese where the registrar gave one ("" if not): on the ledger like the name,
    # in the registering entry's data only when given (so older entries replay unchanged).
    name_zh = models.CharField(max_length=200, blank=True, default="")
    roles = models.JSONField(default=list, help_text="Sorted list of Role values")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name

    def has_role(self, role: str) -> bool:
        return role in self.roles


class Membership(models.Model):
    """Which organization a user acts for. Access control, not registry state: not ledgered."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="members")

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization}"


class Account(models.Model):
    class Kind(models.TextChoices):
        HOLDING = "holding", "Holding"
        BUFFER = "buffer", "Buffer pool"

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="accounts"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.HOLDING)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"], condition=Q(kind="buffer"), name="one_buffer_pool_per_org"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class Methodology(models.Model):
    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=300)
    name_zh = models.CharField(max_length=300, blank=True, default="")  # as Organization's
    standard = models.CharField(max_length=100)
    ecosystems = models.JSONField(default=list)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "methodologies"

    def __str__(self) -> str:
        return self.code


class Project(models.Model):
    class Status(models.TextChoices):
        REGISTERED = "registered", "Registered"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        CLOSED = "closed", "Closed"

    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=300)
    name_zh = models.CharField(max_length=300, blank=True, default="")  # as Organization's
    ecosystem = models.CharField(max_length=16, choices=Ecosystem.choices)
    storage_pathway = models.CharField(max_length=20, choices=StoragePathway.choices)
    methodology = models.ForeignKey(Methodology, on_delete=models.PROTECT, related_name="projects")
    jurisdiction = models.CharField(max_length=6, help_text="ISO 3166-2 subdivision code")
    location = models.JSONField(help_text="GeoJSON geometry (WGS 84)")
    area_m2 = models.BigIntegerField(help_text="Area in square metres (hectares x 10,000)")
    registry = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="registered_projects"
    )
    developer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="projects")
    validation_body = models.CharField(max_length=200)
    origin_registry = models.CharField(max_length=64)
    origin_id = models.CharField(max_length=128)  # as given
    # origin_id under origin rule ``origin_rule`` (ledger/core/origin.py); NULL with rule 0, for
    # projects registered before the rule (``ledger_origin_duplicates`` checks those).
    origin_key = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    origin_rule = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REGISTERED)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["origin_registry", "origin_id"], name="project_origin_unique"
            ),
            models.UniqueConstraint(
                fields=["origin_registry", "origin_key"],
                condition=Q(origin_key__isnull=False),
                name="project_origin_key_unique",
            ),
            # Rule 0 (no key) only for rows from before keys existed; a keyed row has a rule.
            models.CheckConstraint(
                condition=Q(origin_rule=0, origin_key__isnull=True)
                | Q(origin_rule__gte=1, origin_key__isnull=False),
                name="project_origin_key_rule",
            ),
            models.CheckConstraint(condition=Q(area_m2__gt=0), name="project_area_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Batch(models.Model):
    serial = models.CharField(max_length=128, unique=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="batches")
    monitoring_start = models.DateField()
    monitoring_end = models.DateField()
    vintage = models.PositiveSmallIntegerField()
    verification_body = models.CharField(max_length=200)
    verification_report_sha256 = models.CharField(max_length=64)
    buffer_share_bp = models.PositiveIntegerField(help_text="Buffer share in basis points")
    origin_registry = models.CharField(max_length=64, blank=True, default="")
    # NULL, not "": the uniqueness constraint applies only to batches that have an origin id.
    origin_tx_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    # origin_tx_id under origin rule ``origin_rule``, as for Project.origin_key.
    origin_tx_key = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    origin_rule = models.PositiveSmallIntegerField(default=0)
    # Totals in kgCO2e. issued and buffer_withheld never change; retired and cancelled only grow.
    issued = models.BigIntegerField()
    buffer_withheld = models.BigIntegerField()
    retired = models.BigIntegerField(default=0)
    cancelled = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["pk"]
        verbose_name_plural = "batches"
        constraints = [
            models.UniqueConstraint(
                fields=["origin_registry", "origin_tx_id"],
                condition=Q(origin_tx_id__isnull=False),
                name="batch_origin_tx_unique",
            ),
            models.UniqueConstraint(
                fields=["origin_registry", "origin_tx_key"],
                condition=Q(origin_tx_key__isnull=False),
                name="batch_origin_tx_key_unique",
            ),
            models.CheckConstraint(
                condition=Q(origin_rule=0, origin_tx_key__isnull=True)
                | Q(origin_rule__gte=1, origin_tx_id__isnull=True, origin_tx_key__isnull=True)
                | Q(origin_rule__gte=1, origin_tx_id__isnull=False, origin_tx_key__isnull=False),
                name="batch_origin_tx_key_rule",
            ),
            models.CheckConstraint(
                condition=Q(monitoring_end__gte=F("monitoring_start")), name="batch_period_order"
            ),
            models.CheckConstraint(condition=Q(issued__gt=0), name="batch_issued_positive"),
            models.CheckConstraint(
                condition=Q(buffer_withheld__gte=0, buffer_withheld__lte=F("issued")),
                name="batch_buffer_within_issued",
            ),
            models.CheckConstraint(
                condition=Q(buffer_share_bp__lte=10_000), name="batch_buffer_share_range"
            ),
            models.CheckConstraint(
                condition=Q(retired__gte=0, cancelled__gte=0)
                & Q(issued__gte=F("retired") + F("cancelled")),
                name="batch_retired_cancelled_within_issued",
            ),
        ]

    def __str__(self) -> str:
        return self.serial


class Holding(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holdings")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="holdings")
    tradable = models.BigIntegerField(default=0)
    escrowed = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["account", "batch"], name="holding_unique"),
            models.CheckConstraint(
                condition=Q(tradable__gte=0, escrowed__gte=0), name="holding_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.batch_id}"


class EscrowHoldOwner(models.TextChoices):
    """Who moves an escrow hold. An auction's lot or a listing's lots move only through the
    auction or the listing (ledger/services/escrow.py: ``managed=True``), so that a seller
    cannot take back credits under sale; any other hold is its holder's to release."""

    HOLDER = "", "holder"
    AUCTION = "auction", "auction"
    LISTING = "listing", "listing"

    @classmethod
    def of(cls, reference: str) -> EscrowHoldOwner:
        """The owner a hold's reference gives it: the ledger records only the reference, so
        this is how both ``escrow_hold`` and the verifier's replay set the column."""
        for owner, prefix in ESCROW_OWNER_PREFIXES.items():
            if reference.startswith(prefix):
                return owner
        return cls.HOLDER


# The reference of each owner's holds starts ``auction:<id>`` or ``listing:<id>``.
ESCROW_OWNER_PREFIXES = {EscrowHoldOwner.AUCTION: "auction:", EscrowHoldOwner.LISTING: "listing:"}


class Prefix(Func):
    """``SUBSTR(text,1,n)``: the first ``n`` characters, on SQLite and PostgreSQL alike.

    Its arguments are joined by a bare comma: Django's SQLite introspection
    (``_get_column_collations``) splits a table's CREATE statement on ", " to find its
    columns, and a CHECK holding ", " breaks it (IndexError) for every later look at the table
    (``inspectdb``, a test that reads every table's description)."""

    function = "SUBSTR"
    arg_joiner = ","
    output_field = models.CharField()

    def __init__(self, expression: str, length: int) -> None:
        super().__init__(F(expression), Value(1), Value(length))


def _reference_starts(prefix: str) -> Q:
    # Not ``reference__startswith``: SQLite's LIKE ignores ASCII case, so "Auction:1" would
    # count as an auction's there and not on PostgreSQL or in Python. SUBSTR compares
    # case-sensitively on both, as ``str.startswith`` does.
    return Q(Exact(Prefix("reference", len(prefix)), prefix))


def _owner_matches_reference() -> Q:
    managed = Q()
    holder = Q(owner=EscrowHoldOwner.HOLDER)
    for owner, prefix in ESCROW_OWNER_PREFIXES.items():
        managed |= Q(owner=owner) & _reference_starts(prefix)
        holder &= ~_reference_starts(prefix)
    return managed | holder


class EscrowHold(models.Model):
    """Credits set aside from a holding (an auction lot, a pending delivery)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="escrow_holds")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="escrow_holds")
    quantity = models.BigIntegerField()
    remaining = models.BigIntegerField()
    reference = models.CharField(max_length=200)
    # Derived from the reference when the hold is made (``EscrowHoldOwner.of``) and tied to it by a
    # constraint; not in the hold's ledger entry, but compared with the replay by the verifier.
    # "" rather than NULL for the holder's own: a CHECK passes when it evaluates to NULL.
    owner = models.CharField(max_length=7, choices=EscrowHoldOwner.choices, blank=True, default="")

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0, remaining__gte=0, remaining__lte=F("quantity")),
                name="escrow_hold_remaining_range",
            ),
            models.CheckConstraint(
                condition=_owner_matches_reference(), name="escrow_hold_owner_by_reference"
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.pk}: {self.remaining}/{self.quantity} kg ({self.reference})"


class Retirement(models.Model):
    entry_seq = models.BigIntegerField(unique=True)
    certificate = models.CharField(max_length=32, unique=True)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="retirements")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="retirements")
    quantity = models.BigIntegerField()
    beneficiary = models.CharField(max_length=300)
    purpose = models.CharField(max_length=300)
    jurisdiction = models.CharField(max_length=6)
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["entry_seq"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="retirement_positive")
        ]

    def __str__(self) -> str:
        return self.certificate


class Cancellation(models.Model):
    entry_seq = models.BigIntegerField(db_index=True)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="cancellations")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="cancellations")
    quantity = models.BigIntegerField()
    reason = models.TextField()
    destination = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["entry_seq", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="cancellation_positive"),
            models.CheckConstraint(condition=~Q(reason=""), name="cancellation_reason_required"),
        ]

    def __str__(self) -> str:
        return f"cancellation at entry {self.entry_seq}"


class Reversal(models.Model):
    """A recorded loss of stored carbon, compensated by cancelling buffer-pool credits."""

    entry_seq = models.BigIntegerField(unique=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="reversals")
    quantity = models.BigIntegerField()
    evidence_sha256 = models.CharField(max_length=64)
    description = models.TextField()

    class Meta:
        ordering = ["entry_seq"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="reversal_positive")
        ]

    def __str__(self) -> str:
        return f"reversal at entry {self.entry_seq}"


class DocumentKind(models.TextChoices):
    MONITORING_REPORT = "monitoring_report", "Monitoring report"
    VERIFICATION_REPORT = "verification_report", "Verification report"
    VALIDATION_REPORT = "validation_report", "Validation report"
    OTHER = "other", "Other"


class DocumentMediaType(models.TextChoices):
    PDF = "application/pdf", "PDF"
    TEXT = "text/plain", "Text"
    PNG = "image/png", "PNG image"
    JPEG = "image/jpeg", "JPEG image"


class ProjectDocument(models.Model):
    """A file a registry attached to a project (a monitoring or verification report): its
    bytes are stored once by their SHA-256 outside the database (``ledger/documents.py``), and
    its ``document.attach`` entry carries that hash, so a download can prove what it serves."""

    entry_seq = models.BigIntegerField(unique=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="documents")
    kind = models.CharField(max_length=24, choices=DocumentKind.choices)
    title = models.CharField(max_length=300)
    media_type = models.CharField(max_length=32, choices=DocumentMediaType.choices)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    attached_at = models.DateTimeField()  # the entry's time

    class Meta:
        ordering = ["entry_seq"]
        constraints = [
            models.CheckConstraint(condition=Q(size__gt=0), name="document_size_positive"),
            models.UniqueConstraint(fields=["project", "sha256"], name="document_once"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.sha256[:12]})"


# ---- the ledger itself ---------------------------------------------------------------------


class LedgerEntry(models.Model):
    """One state change: RFC 8785 bytes, stored verbatim. Append-only (database triggers)."""

    seq = models.BigIntegerField(primary_key=True)
    body = models.BinaryField()
    # Copied out of the body for filtering; the verifier checks it matches the body.
    type = models.CharField(max_length=32)
    # HMAC of the entry's hash with the application's entry key (ledger/entry_auth.py): what
    # a database insider without that key cannot make. Not part of the entry's bytes.
    mac = models.BinaryField(null=True)

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "ledger entries"
        # A plain btree (db_index=True would add a second, pattern-matching index on
        # PostgreSQL, maintained on every append and never used).
        indexes = [models.Index(fields=["type", "seq"], name="ledger_entry_type_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"


class LedgerHead(models.Model):
    """The single row every append locks: next sequence number and the last entry's hash."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    size = models.BigIntegerField(default=0)
    last_hash = models.BinaryField(default=bytes(32))

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="ledger_head_singleton")]

    def __str__(self) -> str:
        return f"ledger head: {self.size} entries"


class MerkleNode(models.Model):
    """A perfect subtree hash of the RFC 9162 tree: level 0 are leaf hashes. Append-only."""

    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "index"], name="merkle_node_unique")
        ]

    def __str__(self) -> str:
        return f"node ({self.level}, {self.index})"


class TreeHead(models.Model):
    """How many entries the stored Merkle nodes cover (locked while the tree grows)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    size = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="tree_head_singleton")]

    def __str__(self) -> str:
        return f"tree head: {self.size} leaves"


class Checkpoint(models.Model):
    """A signed C2SP tlog-checkpoint note, stored exactly as issued. Append-only."""

    size = models.BigIntegerField(unique=True)
    root = models.BinaryField()
    note = models.TextField()
    key_name = models.CharField(max_length=200)
    key_hash = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["size"]

    def __str__(self) -> str:
        return f"checkpoint {self.size}"


# ---- integration: API keys, idempotency, webhooks (access and delivery, not ledger state) -----


class ApiKey(models.Model):
    """A registry's or auditor's key. The secret is shown once at creation and stored only as
    its SHA-256; the prefix is public and identifies the key in logs and the admin."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        ISSUE = "issue", "Issue"
        TRANSFER = "transfer", "Transfer"
        RETIRE = "retire", "Retire"
        CANCEL = "cancel", "Cancel"
        AUDIT = "audit", "Audit"
        AUCTION = "auction", "Sell by auction"
        BID = "bid", "Bid in auctions"
        TRUSTEE = "trustee", "Hold and release auction trustee keys"
        ONBOARD = "onboard", "Onboard bidders and trustees (operators)"

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="api_keys"
    )
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, unique=True)
    secret_sha256 = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix} ({self.organization})"


class IdempotencyRecord(models.Model):
    """The stored response to a POST sent with an Idempotency-Key header. Kept 48 hours."""

    # Per organization, not per API key: a retry sent with a rotated key still replays.
    owner = models.CharField(max_length=64, help_text="org:<organization id> or user:<id>")
    key = models.CharField(max_length=255)
    request_sha256 = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"


class WebhookEndpoint(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=500)
    # Encrypted (Fernet, key derived from SECRET_KEY): it must be read back to sign deliveries.
    secret_encrypted = models.BinaryField()
    event_types = models.JSONField(default=list, help_text="Entry types; empty means all")
    active = models.BooleanField(default=True)
    # Deliveries cover ledger entries after this sequence number; move it back to replay.
    cursor = models.BigIntegerField(default=-1)
    created_at = models.DateTimeField(auto_now_add=True)
    # The circuit breaker (ledger/webhooks.py): failed attempts in a row, and, once they reach
    # WEBHOOK_CIRCUIT_FAILURES, when one delivery may probe it again (open before, half-open
    # after). Null: closed.
    consecutive_failures = models.PositiveIntegerField(default=0)
    circuit_open_until = models.DateTimeField(null=True, blank=True)
    # The sender lease: the one sender task allowed to send this endpoint's deliveries holds
    # this token until ``lease_until`` (claimed and renewed by compare-and-set).
    lease_token = models.CharField(max_length=32, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.url


class Outbound(models.Model):
    """Work sent to someone else's server (a webhook delivery, a mail), row by row, at least
    once: what ``ledger/claims.py`` claims and records attempts on."""

    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # When a pending row may be sent (at once, or after a failed attempt's backoff), or, while
    # a sender sends it, when that send must have ended: a sender claims it by a compare-and-set
    # on this field, so a row is never sent twice at the same time, and one whose sender died
    # is due again once the claim has run out.
    due_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class WebhookDelivery(Outbound):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    entry_seq = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "entry_seq"], name="delivery_once")
        ]
        indexes = [
            # An endpoint's pending deliveries in ledger order (the sender's batch), and the
            # earliest one due (the scheduler). Not partial indexes on the pending ones: the
            # status is a bound parameter, which neither database matches to a partial index's
            # condition in a prepared statement.
            models.Index(fields=["endpoint", "status", "entry_seq"], name="delivery_send_order"),
            models.Index(fields=["endpoint", "status", "due_at"], name="delivery_next_due"),
        ]

    def __str__(self) -> str:
        return f"delivery of {self.entry_seq} to {self.endpoint_id}"


class OutboxMail(Outbound):
    """A mail to send, written in the transaction of the change it tells of (an outbox): it
    exists exactly when that change committed, and nothing is sent while the change's locks are
    held. A task sends it after the commit (``ledger/mail.py``). Not ledger state."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up)"

    to = models.JSONField(help_text="the recipients' addresses")
    subject = models.CharField(max_length=300)
    body = models.TextField()
    from_email = models.CharField(max_length=254)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        # The sender's query: pending mail by due time (not a partial index: see
        # WebhookDelivery's).
        indexes = [models.Index(fields=["status", "due_at"], name="outboxmail_next_due")]

    def __str__(self) -> str:
        return f"mail {self.pk}: {self.subject}"


class SignerAlarm(models.Model):
    """The checkpoint signer refused to sign: the database did not extend what it had signed
    (ledger/signer.py). Operational, not ledger state: shown to operators and auditors until
    acknowledged, and written again at every refusal."""

    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"signer alarm {self.created_at:%Y-%m-%d %H:%M}: {self.message[:60]}"


class CheckpointCosignature(models.Model):
    """A witness's C2SP tlog-cosignature of a checkpoint (``cosignature/v1``, timestamped),
    exactly the line it returned. Published with the checkpoint; checked by verifiers against
    the witness keys of their own policy, never against anything stored here."""

    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, related_name="cosignatures"
    )
    witness = models.CharField(max_length=200)  # the policy's name for it
    line = models.TextField()
    timestamp = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "witness"], name="one_cosignature_each")
        ]

    def __str__(self) -> str:
        return f"{self.witness} cosigned checkpoint {self.checkpoint_id}"


class WitnessRefusal(models.Model):
    """A witness refused a checkpoint of ours: a fork or a rollback it saw (its answer, kept).
    Operational, not ledger state; shown to operators and auditors like a signer alarm."""

    witness = models.CharField(max_length=200)
    size = models.BigIntegerField()
    status = models.PositiveSmallIntegerField()
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.witness} refused size {self.size} ({self.status})"


# ---- operations: what /healthz and /metrics read (not ledger state) --------------------------


class WorkerHeartbeat(models.Model):
    """When a Celery worker last ran the heartbeat that beat sends to a queue
    (``ledger.tasks.worker_heartbeat_task``): one row per queue and worker, overwritten.

    A table rather than the cache: in development the default cache is each process's own
    memory, where the web process would never see what a worker wrote, and the database is what
    every process on every host shares already (and what ``/healthz`` reaches anyway)."""

    queue = models.CharField(max_length=200)
    worker = models.CharField(max_length=255)  # the worker's node name, e.g. celery@host
    beat_at = models.DateTimeField()

    class Meta:
        ordering = ["queue", "worker"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "worker"], name="one_heartbeat_per_worker")
        ]

    def __str__(self) -> str:
        return f"{self.worker} on {self.queue} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
