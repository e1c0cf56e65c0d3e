"""Every write of the listing board (docs/listings.md). Each function validates, locks (the
listing's row, then the registry's order: ``locks.py``), changes the listing tables, moves the
escrow through the registry's services and appends its entry, all in one transaction. State
transitions are compare-and-set under the listing's row lock, so a step run twice (the expiry
task delivered twice, beat's sweep beside it) does its work once.

Amounts are integers: whole lots, kgCO2e, minor currency units (prices per tonne). The rules
themselves (``check_terms``, ``take_fill``, ``amount_due``) are the audit package's, which the
replay applies to the same entries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from bluecarbon_audit import listings as rules
from django.db import transaction
from django.utils import timezone

from ledger import services as registry
from ledger import validation
from ledger.actors import Actor
from ledger.core.quantity import MAX_KG
from ledger.exceptions import ErrorCode
from ledger.models import Account, Batch, Organization, Role

from . import jobs, locks, records
from .exceptions import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from .exceptions import (
    ListingErrorCode as Code,
)
from .models import Listing, Purchase

SYSTEM = Actor.system("listings")
State = Listing.State
MAX_REASON = 200

# A take the rules refuse: its code here, and the status its class gives.
_TAKE_ERRORS: dict[str, tuple[type[Conflict] | type[Unprocessable], Code]] = {
    "sold_out": (Conflict, Code.INSUFFICIENT_LOTS),
    "insufficient_lots": (Conflict, Code.INSUFFICIENT_LOTS),
    "buyer_cap": (Conflict, Code.BUYER_CAP),
    "below_minimum": (Unprocessable, Code.BELOW_MINIMUM),
}


def _append(type: str, actor: Actor, data: dict[str, Any], at: dt.datetime | None = None) -> Any:
    return registry.ledger_append(type=type, actor=actor, data=data, at=at)


def _after_commit(fn: Callable[[], None]) -> None:
    # robust: the write is committed; a broker that is down must not turn it into an error.
    # Beat's sweep (listings_due_task) expires whatever was not enqueued.
    transaction.on_commit(fn, robust=True)


def _aware(value: object, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidInput(
            f"{field} must be a date and time with a time zone",
            code=Code.INVALID_TIME,
            detail={field: "invalid"},
        )
    return value.astimezone(dt.UTC)


def _listing(listing_id: object) -> Listing:
    key = validation.object_id(listing_id)
    x = locks.listing_lock(key) if key else None
    if x is None:
        raise NotFound(f"listing {listing_id} not found", detail={"listing": "not_found"})
    return x


def _reason(value: object, default: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    return validation.text(value, "reason", max_length=MAX_REASON)


# ---- listing -------------------------------------------------------------------------------


@transaction.atomic
def listing_create(
    *,
    actor: Actor,
    account: int,
    batch: int,
    lots: int,
    lot_kg: int,
    currency: str,
    price: int,
    opens_at: dt.datetime,
    closes_at: dt.datetime,
    max_lots_per_buyer: int | None = None,
    min_lots: int = 1,
) -> Listing:
    """List ``lots`` lots of ``lot_kg`` from one of the seller's holding accounts at ``price``
    (minor units per tonne) between ``opens_at`` and ``closes_at``. The lots go into escrow
    at once: what is listed cannot be moved or sold elsewhere until it is taken, withdrawn or
    expires."""
    try:
        rules.check_terms(
            lots=lots,
            lot_kg=lot_kg,
            currency=currency,
            price=price,
            min_lots=min_lots,
            max_lots_per_buyer=max_lots_per_buyer,
        )
    except rules.RuleError as exc:
        raise InvalidInput(
            exc.message, code=Code.INVALID_TERMS, detail={exc.code: "invalid"}
        ) from None
    opens_at, closes_at = _aware(opens_at, "opens_at"), _aware(closes_at, "closes_at")
    if closes_at <= opens_at:
        raise InvalidInput(
            "the listing must close after it opens",
            code=Code.INVALID_TIME,
            detail={"closes_at": "before_opening"},
        )
    if closes_at <= timezone.now():
        raise InvalidInput(
            "the closing time is in the past", code=Code.INVALID_TIME, detail={"closes_at": "past"}
        )
    acc = Account.objects.filter(pk=validation.object_id(account) or 0).first()
    if acc is None or not actor.may_act_for(acc.organization_id):
        raise NotFound(f"account {account} not found", detail={"account": "not_found"})
    if acc.kind != Account.Kind.HOLDING:
        raise Unprocessable("listings sell from a holding account", code=ErrorCode.BUFFER_ACCOUNT)
    b = Batch.objects.filter(pk=validation.object_id(batch) or 0).first()
    if b is None:
        raise NotFound(f"batch {batch} not found", detail={"batch": "not_found"})
    # Created first: the hold's reference and the entry name its id.
    x = Listing.objects.create(
        seller_id=acc.organization_id,
        account=acc,
        batch=b,
        lots=lots,
        lot_kg=lot_kg,
        currency=currency,
        price=price,
        opens_at=opens_at,
        closes_at=closes_at,
        max_lots_per_buyer=max_lots_per_buyer,
        min_lots=min_lots,
        remaining_lots=lots,
        created_seq=-1,
        state_seq=-1,
    )
    x.hold = registry.escrow_hold(
        actor=actor,
        batch=b.pk,
        account=acc.pk,
        quantity=x.quantity,
        reference=f"{registry.LISTING_PREFIX}{x.pk}",
        managed=True,
    )
    entry = _append("listing.create", actor, {"listing": records.listing_terms(x)})
    x.created_seq = x.state_seq = entry.seq
    x.save(update_fields=["hold", "created_seq", "state_seq"])
    listing_id, eta = x.pk, x.closes_at
    _after_commit(lambda: jobs.send(jobs.EXPIRE, listing_id, eta=eta))
    return x


def _buyer_account(buyer: Organization, account: object) -> Account:
    """Where the lots are delivered: the holding account named, which must be the buyer's, or
    the buyer's first holding account."""
    qs = Account.objects.filter(organization=buyer, kind=Account.Kind.HOLDING)
    if account is None:
        acc = qs.order_by("pk").first()
        if acc is None:
            raise Unprocessable("the buyer has no holding account", detail={"account": "missing"})
        return acc
    acc = Account.objects.filter(pk=validation.object_id(account) or 0, organization=buyer).first()
    if acc is None:
        raise NotFound(f"account {account} not found", detail={"account": "not_found"})
    if acc.kind != Account.Kind.HOLDING:
        raise Unprocessable(
            "lots are delivered to a holding account", code=ErrorCode.BUFFER_ACCOUNT
        )
    return acc


@transaction.atomic
def listing_take(
    *,
    actor: Actor,
    listing: int,
    lots: int,
    account: int | None = None,
    up_to: bool = False,
) -> Purchase:
    """Take ``lots`` whole lots for the caller's organization (all or nothing; with ``up_to``,
    as many as it may up to ``lots``): a pending purchase, its lots kept in the listing's
    escrow until the operator confirms the payment. First come by ledger order: takes queue on
    the listing's row, and the instant that decides is the entry's time."""
    if actor.organization_id is None:
        raise PermissionDenied("lots are taken by a buyer organization")
    if isinstance(lots, bool) or not isinstance(lots, int) or not 1 <= lots <= MAX_KG:
        raise InvalidInput("lots must be a positive whole number", detail={"lots": "invalid"})
    if not isinstance(up_to, bool):
        raise InvalidInput("up_to must be true or false", detail={"up_to": "invalid"})
    x = _listing(listing)
    # Taken under the row lock that withdrawing and expiring need too.
    now = timezone.now()
    if x.state != State.OPEN or now >= x.closes_at:
        raise Conflict(
            f"listing {x.pk} is {'closed' if x.state == State.OPEN else x.state}",
            code=Code.CLOSED,
            detail={"state": x.state},
        )
    if now < x.opens_at:
        raise Conflict(f"listing {x.pk} opens at {x.opens_at.isoformat()}", code=Code.NOT_OPEN)
    buyer = Organization.objects.get(pk=actor.organization_id)
    if buyer.pk == x.seller_id:
        raise Unprocessable("a seller cannot take its own listing", code=Code.OWN_LISTING)
    if not buyer.has_role(Role.BIDDER):
        raise PermissionDenied(
            f"{buyer.handle} does not have the buyer role", detail={"buyer": "role"}
        )
    acc = _buyer_account(buyer, account)
    bought = sum(
        Purchase.objects.filter(
            listing=x, buyer=buyer, state__in=(Purchase.State.PENDING, Purchase.State.DELIVERED)
        ).values_list("lots", flat=True)
    )
    try:
        fill = rules.take_fill(
            requested=lots,
            up_to=up_to,
            remaining=x.remaining_lots,
            bought=bought,
            listing={"max_lots_per_buyer": x.max_lots_per_buyer, "min_lots": x.min_lots},
        )
    except rules.RuleError as exc:
        error, code = _TAKE_ERRORS[exc.code]
        raise error(
            exc.message,
            code=code,
            detail={"remaining_lots": x.remaining_lots, "requested": lots, "bought": bought},
        ) from None
    due = rules.amount_due(fill, x.lot_kg, x.price)
    p = Purchase.objects.create(
        listing=x,
        buyer=buyer,
        account=acc,
        lots=fill,
        quantity=fill * x.lot_kg,
        amount_due=due,
        entry_seq=-1,
    )
    data: dict[str, Any] = {
        "listing": x.pk,
        "purchase": p.pk,
        "buyer": buyer.pk,
        "account": acc.pk,
        "lots": fill,
        "amount_due": due,
    }
    if up_to:
        data["up_to"] = lots
    entry = _append("listing.take", actor, data, at=now)
    p.entry_seq = entry.seq
    p.save(update_fields=["entry_seq"])
    x.remaining_lots -= fill
    x.save(update_fields=["remaining_lots"])
    return p


@transaction.atomic
def listing_withdraw(*, actor: Actor, listing: int, reason: str | None = None) -> Listing:
    """The seller (or an operator) withdraws what is unsold: those lots return to the seller's
    account. Pending purchases stand; they are settled from the escrow as before."""
    x = _listing(listing)
    if not actor.may_act_for(x.seller_id):
        raise NotFound(f"listing {listing} not found", detail={"listing": "not_found"})
    why = _reason(reason, "withdrawn by the seller")
    if x.state != State.OPEN:
        raise Conflict(
            f"listing {x.pk} is {x.state}; only a listed one is withdrawn",
            code=Code.WRONG_STATE,
            detail={"state": x.state},
        )
    _end(x, actor, State.WITHDRAWN, "listing.withdraw", {"reason": why})
    return x


@transaction.atomic
def listing_expire(*, listing: int) -> bool:
    """open -> closed once the closing time has come: the unsold lots return to the seller.
    False if there was nothing to do (not due yet, or already ended)."""
    key = validation.object_id(listing)
    x = locks.listing_lock(key) if key else None
    now = timezone.now()
    # A task for a listing that is not there (a test's database emptied since) has nothing to do.
    if x is None or x.state != State.OPEN or now < x.closes_at:
        return False
    _end(x, SYSTEM, State.CLOSED, "listing.expire", {}, at=now)
    return True


def _end(
    x: Listing,
    actor: Actor,
    state: str,
    entry_type: str,
    extra: dict[str, Any],
    at: dt.datetime | None = None,
) -> None:
    unsold = x.remaining_lots
    if unsold:
        registry.escrow_release(
            actor=actor, hold=x.lot_hold(), quantity=unsold * x.lot_kg, managed=True
        )
    entry = _append(entry_type, actor, {"listing": x.pk, "lots": unsold, **extra}, at=at)
    x.state, x.state_seq, x.remaining_lots = state, entry.seq, 0
    x.save(update_fields=["state", "state_seq", "remaining_lots"])


def listings_due() -> list[int]:
    """Listed listings whose closing time has passed (beat's backstop for the expiry task)."""
    return list(
        Listing.objects.filter(state=State.OPEN, closes_at__lte=timezone.now())
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )


# ---- delivery versus payment -----------------------------------------------------------------


def _purchase(actor: Actor, purchase: object) -> tuple[Listing, Purchase]:
    validation.require(actor.is_operator, "only operators confirm payments and declare defaults")
    peek = Purchase.objects.filter(pk=validation.object_id(purchase) or 0).first()
    if peek is None:
        raise NotFound(f"purchase {purchase} not found", detail={"purchase": "not_found"})
    x = _listing(peek.listing_id)  # listing before purchase: the lock order
    p = locks.purchase_lock(peek.pk)
    assert p is not None
    if p.state != Purchase.State.PENDING:
        raise Conflict(
            f"purchase {p.pk} is already {p.state}",
            code=Code.PURCHASE_RESOLVED,
            detail={"state": p.state},
        )
    return x, p


@transaction.atomic
def purchase_confirm(*, actor: Actor, purchase: int) -> Purchase:
    """The operator saw the buyer's payment: the listing's escrow delivers the lots to the
    buyer's account (delivery versus payment)."""
    x, p = _purchase(actor, purchase)
    registry.escrow_deliver(
        actor=actor, hold=x.lot_hold(), recipient=p.account_id, quantity=p.quantity, managed=True
    )
    entry = _append("listing.purchase_confirm", actor, {"listing": x.pk, "purchase": p.pk})
    p.state, p.resolved_seq = Purchase.State.DELIVERED, entry.seq
    p.save(update_fields=["state", "resolved_seq"])
    return p


@transaction.atomic
def purchase_default(*, actor: Actor, purchase: int, reason: str | None = None) -> Purchase:
    """The buyer did not pay: its lots return to the listing if it is still listed (others may
    take them), else to the seller's account."""
    x, p = _purchase(actor, purchase)
    why = _reason(reason, "payment not received")
    if x.state == State.OPEN:
        to = "listing"
        x.remaining_lots += p.lots
        x.save(update_fields=["remaining_lots"])
    else:
        to = "seller"
        registry.escrow_release(actor=actor, hold=x.lot_hold(), quantity=p.quantity, managed=True)
    entry = _append(
        "listing.purchase_default",
        actor,
        {"listing": x.pk, "purchase": p.pk, "to": to, "reason": why},
    )
    p.state, p.resolved_seq = Purchase.State.DEFAULTED, entry.seq
    p.save(update_fields=["state", "resolved_seq"])
    return p
