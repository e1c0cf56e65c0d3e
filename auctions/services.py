"""Every write of the auction house. Each function validates, locks (``auctions/locks.py``, then
the registry's order), changes the auction tables and appends its ledger entries, all in one
transaction. State transitions are compare-and-set under the auction's row lock, so a step run
twice (a task delivered twice, a worker restarted) does its work once and then reports that
there was nothing to do.

Amounts are integers: kgCO2e, whole lots, minor currency units (prices per tonne).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bluecarbon.rows import RawInsert, column, loaded
from ledger import services as registry
from ledger import validation
from ledger.actors import Actor
from ledger.core.entry import entry_hash, format_time
from ledger.core.quantity import (
    CURRENCY_EXPONENTS,
    MAX_KG,
    MAX_MINOR,
    format_money,
    format_tonnes,
)
from ledger.exceptions import ErrorCode
from ledger.mail import Mail, mail_enqueue
from ledger.models import Account, Batch, EscrowHold, Membership, Organization, Role

from . import clock, english, jobs, keys, locks, receipts, records, trustees
from .core import clearing, parties, sealing
from .core import clock as clock_rules
from .core import english as english_rules
from .core import onboarding as onboarding_rules
from .core import result as results
from .exceptions import (
    AuctionErrorCode as Code,
)
from .exceptions import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from .models import (
    ASCENDING_FORMATS,
    SEALED_FORMATS,
    SINGLE_LOT_FORMATS,
    Application,
    Auction,
    Award,
    Bid,
    Bidder,
    BidReceipt,
    Deposit,
    Format,
    Sealing,
    TieRule,
    Undersubscribed,
    stored,
)
from .rows import update_rows

log = logging.getLogger(__name__)
State = Auction.State


def _int(value: object, field: str, *, low: int = 0, high: int = MAX_MINOR) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(
            f"{field} must be an integer from {low} to {high}",
            code=Code.INVALID_RULES,
            detail={field: "out_of_range"},
        )
    return value


def _aware(value: object, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidInput(
            f"{field} must be a date and time with a time zone",
            code=Code.INVALID_TIME,
            detail={field: "invalid"},
        )
    # Whole microseconds in UTC: what the ledger records is exactly what the row holds.
    return value.astimezone(dt.UTC)


def _auction(auction_id: object, *, close_gate: bool = False) -> Auction:
    """The auction, its row locked for a transition; ``close_gate`` also shuts its bid gate
    (``locks.py``): for transitions out of "open" and out of the states deposits are taken in."""
    key = validation.object_id(auction_id)
    a = locks.auction_lock(key, close_gate=close_gate) if key else None
    if a is None:
        raise NotFound(f"auction {auction_id} not found", detail={"auction": "not_found"})
    return a


def _wrong_state(a: Auction, *wanted: str) -> Conflict:
    return Conflict(
        f"auction {a.pk} is {a.state}; this needs it {' or '.join(wanted)}",
        code=Code.WRONG_STATE,
        detail={"state": a.state},
    )


def _append(type: str, actor: Actor, data: dict[str, Any], at: dt.datetime | None = None) -> Any:
    return registry.ledger_append(type=type, actor=actor, data=data, at=at)


def _after_commit(fn: Callable[[], None]) -> None:
    # robust: the write is committed; a broker that is down must not turn it into an error.
    # Beat's sweep (auctions_due_task) picks up whatever was not enqueued.
    transaction.on_commit(fn, robust=True)


# ---- bidders and deposits ------------------------------------------------------------------


@transaction.atomic
def bidder_approve(*, actor: Actor, organization: int) -> Bidder:
    """Admit an organization to bid (operators only; it must have the bidder role)."""
    validation.require(actor.is_operator, "only operators approve bidders")
    org = Organization.objects.filter(pk=validation.object_id(organization) or 0).first()
    if org is None:
        raise NotFound(f"organization {organization} not found")
    if not org.has_role(Role.BIDDER):
        raise Unprocessable(f"{org.handle} does not have the bidder role", code=Code.NOT_APPROVED)
    return _bidder_set(actor, org, Bidder.Status.APPROVED)


@transaction.atomic
def bidder_suspend(*, actor: Actor, organization: int) -> Bidder:
    validation.require(actor.is_operator, "only operators suspend bidders")
    org = Organization.objects.filter(pk=validation.object_id(organization) or 0).first()
    if org is None:
        raise NotFound(f"organization {organization} not found")
    return _bidder_set(actor, org, Bidder.Status.SUSPENDED)


def _bidder_set(actor: Actor, org: Organization, status: str) -> Bidder:
    # The bidder's row, which its bid actions lock too: a bid in flight commits before its
    # approval changes, or sees the change.
    locks.bidder_lock(org.pk)
    bidder = Bidder.objects.select_for_update(no_key=True).filter(organization=org).first()
    if bidder is not None and bidder.status == status:
        return bidder
    entry = _append("bidder.status", actor, {"organization": org.pk, "status": status})
    if bidder is None:
        bidder = Bidder.objects.create(organization=org, status=status, entry_seq=entry.seq)
    else:
        bidder.status, bidder.entry_seq = status, entry.seq
        bidder.save(update_fields=["status", "entry_seq"])
    return bidder


@transaction.atomic
def deposit_record(*, actor: Actor, auction: int, bidder: int, amount: int) -> Deposit:
    """Record a bidder's deposit (or a top-up) for one auction, before it closes."""
    validation.require(actor.is_operator, "only operators record deposits")
    amount = _int(amount, "amount", low=1)
    a = locks.auction_share_lock(validation.object_id(auction) or 0)
    if a is None:
        raise NotFound(f"auction {auction} not found")
    if a.state not in (State.DRAFT, State.SCHEDULED, State.OPEN):
        raise _wrong_state(a, "draft", "scheduled", "open")
    org = Organization.objects.filter(pk=validation.object_id(bidder) or 0).first()
    if org is None:
        raise NotFound(f"organization {bidder} not found", detail={"bidder": "not_found"})
    deposit = Deposit.objects.select_for_update(no_key=True).filter(auction=a, bidder=org).first()
    # A deposit released or forfeited by the operator (onboarding.py) is gone: this is a new one.
    held = deposit.amount if deposit is not None and deposit.state == Deposit.State.HELD else 0
    total = amount + held
    if total > MAX_MINOR:
        # Out of range like any other amount (_int): one condition, one code.
        raise InvalidInput(
            f"the deposit would total {total}, more than {MAX_MINOR}",
            code=Code.INVALID_RULES,
            detail={"amount": "out_of_range"},
        )
    # The depositor's pseudonym, not its id: who puts down a deposit is not public before the
    # close (parties.py). A deposit from before pseudonyms keeps naming its bidder.
    salt = parties.new_salt() if deposit is None else deposit.salt
    who: dict[str, Any] = (
        {"bidder": org.pk}
        if salt is None
        else {"depositor": parties.depositor(settings.LEDGER_ORIGIN, a.pk, org.pk, bytes(salt))}
    )
    entry = _append(
        "deposit.record", actor, {"auction": a.pk, **who, "amount": amount, "total": total}
    )
    if deposit is None:
        return Deposit.objects.create(
            auction=a, bidder=org, amount=total, entry_seq=entry.seq, salt=salt
        )
    deposit.amount, deposit.entry_seq, deposit.state = total, entry.seq, Deposit.State.HELD
    deposit.save(update_fields=["amount", "entry_seq", "state"])
    return deposit


# ---- creating and scheduling ---------------------------------------------------------------


@transaction.atomic
def auction_create(
    *,
    actor: Actor,
    account: int,
    batch: int,
    title: str,
    format: str,
    quantity: int,
    lot_kg: int,
    currency: str,
    tick: int,
    reserve: int,
    cap_bp: int | None,
    deposit_required: int,
    bid_guarantee: bool,
    tie_rule: str,
    undersubscribed: str,
    opens_at: dt.datetime,
    closes_at: dt.datetime,
    sealing_mode: str = Sealing.OPERATOR_KEY,
    trustee_ids: list[int] | None = None,
    threshold: int | None = None,
    release_by: dt.datetime | None = None,
    increments: list[list[int]] | None = None,
    countdown_s: int | None = None,
    hard_close_at: dt.datetime | None = None,
    round_s: int | None = None,
) -> Auction:
    """A draft auction of ``quantity`` kg from a holding, with its rules. Nothing moves until
    it is scheduled. ``sealing_mode`` says who opens the bids: any ``threshold`` of
    ``trustee_ids``, who release their keys by ``release_by`` (``trustees``), or a key the
    operator holds (``operator_key``)."""
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > 200:
        raise InvalidInput(
            "title is required (at most 200 characters)", detail={"title": "invalid"}
        )
    fmt = validation.choice(format, "format", Format.values, code=Code.INVALID_RULES)
    quantity = _int(quantity, "quantity", low=1, high=MAX_KG)
    lot_kg = _int(lot_kg, "lot_kg", low=1, high=MAX_KG)
    if quantity % lot_kg:
        raise InvalidInput(
            "the quantity offered must be a whole number of lots",
            code=Code.INVALID_RULES,
            detail={"lot_size": "not_a_divisor"},
        )
    if fmt in SINGLE_LOT_FORMATS and lot_kg != quantity:
        raise InvalidInput(
            "a single-lot auction offers its whole quantity as one lot",
            code=Code.INVALID_RULES,
            detail={"lot_size": "single_lot"},
        )
    if currency not in CURRENCY_EXPONENTS:
        raise InvalidInput(
            f"unsupported currency {currency!r}",
            code=Code.INVALID_RULES,
            detail={"currency": "invalid"},
        )
    if cap_bp is not None:
        cap_bp = _int(cap_bp, "cap", low=1, high=10_000)
    if not isinstance(bid_guarantee, bool):
        raise InvalidInput("bid_guarantee must be true or false", code=Code.INVALID_RULES)
    deposit_required = _int(deposit_required, "deposit_required")
    opens_at, closes_at = _aware(opens_at, "opens_at"), _aware(closes_at, "closes_at")
    if closes_at <= opens_at:
        raise InvalidInput(
            "the auction must close after it opens",
            code=Code.INVALID_TIME,
            detail={"closes_at": "before_opening"},
        )
    if closes_at <= timezone.now():
        raise InvalidInput(
            "the closing time is in the past", code=Code.INVALID_TIME, detail={"closes_at": "past"}
        )
    if release_by is not None:
        release_by = _aware(release_by, "release_by")
    if fmt in ASCENDING_FORMATS:
        # Their own rules, and their own sealing: an English auction's bids are open prices; a
        # clock auction's round bids are committed and opened at the end.
        wanted = Sealing.OPEN if fmt == Format.ENGLISH else Sealing.OPERATOR_ROUNDS
        if sealing_mode not in (wanted, Sealing.OPERATOR_KEY) or trustee_ids:
            raise InvalidInput(
                f"a {fmt} auction's sealing is {wanted}",
                code=Code.INVALID_RULES,
                detail={"sealing": f"{fmt}_is_{wanted}"},
            )
        mode: str = wanted
        trustee_list: list[int] = []
        threshold, release_by = None, None
        if hard_close_at is not None:
            hard_close_at = _aware(hard_close_at, "hard_close_at")
        validation.choice(tie_rule, "tie_rule", TieRule.values, code=Code.INVALID_RULES)
        validation.choice(
            undersubscribed, "undersubscribed", Undersubscribed.values, code=Code.INVALID_RULES
        )
        english_own: dict[str, Any] = {"countdown_s": countdown_s, "hard_close_at": hard_close_at}
        clock_own: dict[str, Any] = {"round_s": round_s}
        own, other = (english_own, clock_own) if fmt == Format.ENGLISH else (clock_own, english_own)
        if any(v is not None for v in other.values()):
            raise InvalidInput(
                f"{', '.join(other)} are not rules of a {fmt} auction",
                code=Code.INVALID_RULES,
                detail={"format": f"not_{next(iter(other))}"},
            )
        _ascending_rules(
            format=fmt,
            quantity=quantity,
            lot_kg=lot_kg,
            tick=_int(tick, "tick", low=1),
            reserve=_int(reserve, "reserve"),
            cap_bp=cap_bp,
            bid_guarantee=bid_guarantee,
            tie_rule=tie_rule,
            undersubscribed=undersubscribed,
            increments=increments,
            closes_at=closes_at,
            **own,
        )
    else:
        if any(v is not None for v in (increments, countdown_s, hard_close_at, round_s)):
            raise InvalidInput(
                "increments, countdown, hard close and round length are rules of ascending "
                "auctions only",
                code=Code.INVALID_RULES,
                detail={"format": "not_english"},
            )
        mode, trustee_list, threshold = trustees.check_rules(
            sealing_mode, trustee_ids or [], threshold, release_by, closes_at
        )
        try:
            clearing.Rules(
                format=fmt,
                offered_lots=quantity // lot_kg,
                lot_kg=lot_kg,
                tick=_int(tick, "tick", low=1),
                reserve=_int(reserve, "reserve"),
                cap_bp=cap_bp,
                tie_rule=validation.choice(
                    tie_rule, "tie_rule", TieRule.values, code=Code.INVALID_RULES
                ),
                undersubscribed=validation.choice(
                    undersubscribed,
                    "undersubscribed",
                    Undersubscribed.values,
                    code=Code.INVALID_RULES,
                ),
                bid_guarantee=bid_guarantee,
            )
        except clearing.RulesError as exc:
            raise InvalidInput(
                str(exc), code=Code.INVALID_RULES, detail={"rules": exc.code}
            ) from None

    acc = Account.objects.filter(pk=validation.object_id(account) or 0).first()
    if acc is None or not actor.may_act_for(acc.organization_id):
        raise NotFound(f"account {account} not found", detail={"account": "not_found"})
    if acc.kind != Account.Kind.HOLDING:
        raise Unprocessable("auctions sell from a holding account", code=ErrorCode.BUFFER_ACCOUNT)
    b = Batch.objects.filter(pk=validation.object_id(batch) or 0).first()
    if b is None:
        raise NotFound(f"batch {batch} not found", detail={"batch": "not_found"})
    # Not created yet: the entry must name the id, so take it from the row and then append.
    a = Auction.objects.create(
        title=title.strip(),
        seller_id=acc.organization_id,
        account=acc,
        batch=b,
        format=fmt,
        quantity=quantity,
        lot_kg=lot_kg,
        currency=currency,
        tick=tick,
        reserve=reserve,
        cap_bp=cap_bp,
        deposit_required=deposit_required,
        bid_guarantee=bid_guarantee,
        tie_rule=tie_rule,
        undersubscribed=undersubscribed,
        opens_at=opens_at,
        closes_at=closes_at,
        sealing=mode,
        trustees=trustee_list,
        threshold=threshold,
        release_by=release_by,
        rules_version=results.RULES_VERSION,
        increments=increments if fmt in ASCENDING_FORMATS else None,
        countdown_s=countdown_s if fmt == Format.ENGLISH else None,
        hard_close_at=hard_close_at if fmt == Format.ENGLISH else None,
        round_s=round_s if fmt == Format.CLOCK else None,
        created_seq=-1,
        state_seq=-1,
    )
    entry = _append("auction.create", actor, {"auction": records.auction_rules(a)})
    a.created_seq = a.state_seq = entry.seq
    a.save(update_fields=["created_seq", "state_seq"])
    return a


def _ascending_rules(*, closes_at: dt.datetime, **rules: Any) -> None:
    """An English or clock auction's rules checked as the verifier checks its record."""
    record = {"closes_at": format_time(closes_at), **rules}
    if record.get("hard_close_at") is not None:
        record["hard_close_at"] = format_time(record["hard_close_at"])
    try:
        if rules["format"] == Format.ENGLISH:
            english_rules.rules_of(record)
        else:
            clock_rules.rules_of(record)
    except clearing.RulesError as exc:
        raise InvalidInput(str(exc), code=Code.INVALID_RULES, detail={"rules": exc.code}) from None
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(
            "an ascending auction needs increments ([[from, step], ...]) and countdown_s "
            "(English) or round_s (clock)",
            code=Code.INVALID_RULES,
            detail={"rules": "invalid_increments"},
        ) from None


@transaction.atomic
def auction_schedule(*, actor: Actor, auction: int) -> Auction:
    """Fix the rules, put the lot in escrow and publish the auction's HPKE public key. If the
    opening time has come, the auction opens at once."""
    a = _auction(auction)
    if not actor.may_act_for(a.seller_id):
        raise NotFound(f"auction {auction} not found")
    if a.state != State.DRAFT:
        raise _wrong_state(a, "draft")
    now = timezone.now()
    if a.closes_at <= now:
        raise Conflict("the closing time has passed; create a new auction", code=Code.INVALID_TIME)
    hold = registry.escrow_hold(
        actor=actor,
        batch=a.batch_id,
        account=a.account_id,
        quantity=a.quantity,
        reference=f"{registry.MANAGED_PREFIX}{a.pk}",
        managed=True,
    )
    data: dict[str, Any] = {"auction": a.pk, "hold": hold.pk}
    if a.is_english:
        # Open bids: no key. Bidding ends one countdown after the free phase, until bids move it.
        a.ends_at = english.initial_end(a)
    elif a.is_clock:
        pass  # committed round bids: no key; its rounds begin when it opens
    elif a.by_trustees:
        # Each trustee's key: the server holds no private key that opens these bids.
        data["trustee_keys"] = trustees.assign_keys(a)
    else:
        private = sealing.generate_private_key()
        a.public_key = sealing.public_key_of(private)
        a.private_key_sealed = keys.seal_private_key(a.pk, private)
        del private
        data["public_key"] = records.b64(a.public_key)
    a.hold = hold
    entry = _append("auction.schedule", actor, data)
    a.state, a.state_seq = State.SCHEDULED, entry.seq
    a.save(
        update_fields=["public_key", "private_key_sealed", "hold", "state", "state_seq", "ends_at"]
    )
    if a.opens_at <= now:
        _open(a)
    auction_id = a.pk
    _after_commit(lambda: _enqueue_timers(auction_id))
    return a


def _enqueue_timers(auction_id: int) -> None:
    a = Auction.objects.filter(pk=auction_id).first()
    if a is None:
        return
    if a.state == State.SCHEDULED:
        jobs.send(jobs.ADVANCE, auction_id, eta=a.opens_at)
    jobs.send(jobs.ADVANCE, auction_id, eta=a.bidding_ends_at)
    if a.release_by is not None:  # the trustees' deadline: fail if too few released
        jobs.send(jobs.ADVANCE, auction_id, eta=a.release_by)


def _open(a: Auction) -> None:
    now = timezone.now()
    entry = _append("auction.open", Actor.system("auctions"), {"auction": a.pk}, at=now)
    a.state, a.state_seq = State.OPEN, entry.seq
    a.save(update_fields=["state", "state_seq"])
    if a.is_clock:
        clock.open_first_round(a, now)


@transaction.atomic
def auction_open(*, auction: int) -> bool:
    """scheduled -> open, once its opening time has come. False if there was nothing to do."""
    a = _auction(auction)
    now = timezone.now()
    if a.state != State.SCHEDULED or a.opens_at > now:
        return False
    _open(a)
    return True


@transaction.atomic
def auction_cancel(*, actor: Actor, auction: int, reason: str) -> Auction:
    """Withdraw an auction before it closes: the lot goes back to the seller, deposits are
    released. The seller may cancel a draft or a scheduled auction; once it is open, only an
    operator may."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a cancellation needs a reason", detail={"reason": "required"})
    a = _auction(auction, close_gate=True)
    if not actor.may_act_for(a.seller_id):
        raise NotFound(f"auction {auction} not found")
    if a.state not in (State.DRAFT, State.SCHEDULED, State.OPEN):
        raise _wrong_state(a, "draft", "scheduled", "open")
    if a.state == State.OPEN:
        validation.require(actor.is_operator, "only an operator cancels an auction that is open")
    _end(a, actor, State.CANCELLED, "auction.cancel", reason.strip()[:200])
    return a


def _end(a: Auction, actor: Actor, state: str, entry_type: str, reason: str) -> None:
    """Cancel or fail: whatever is left of the lot returns to the seller, deposits are released."""
    hold_id = a.hold_id
    if hold_id is not None:
        remaining = EscrowHold.objects.get(pk=hold_id).remaining
        if remaining:
            registry.escrow_release(actor=actor, hold=hold_id, quantity=remaining, managed=True)
    released = _release_deposits(a, exclude=set())
    entry = _append(
        entry_type, actor, {"auction": a.pk, "reason": reason, "deposits_released": released}
    )
    a.state, a.state_seq, a.state_reason = state, entry.seq, reason
    a.save(update_fields=["state", "state_seq", "state_reason"])


def _release_deposits(a: Auction, exclude: set[int]) -> list[int | str]:
    """Mark held deposits released (the entry that calls this lists their bidders; before the
    reveal, the pseudonyms of those that have one, which sort after the ids)."""
    rows = list(
        Deposit.objects.filter(auction=a, state=Deposit.State.HELD)
        .exclude(bidder_id__in=exclude)
        .values_list("bidder_id", "salt")
    )
    Deposit.objects.filter(auction=a, bidder_id__in=[b for b, _ in rows]).update(
        state=Deposit.State.RELEASED
    )
    if a.revealed_seq is not None:
        return sorted(b for b, _ in rows)
    named = sorted(b for b, salt in rows if salt is None)
    hidden = sorted(
        parties.depositor(settings.LEDGER_ORIGIN, a.pk, b, bytes(salt))
        for b, salt in rows
        if salt is not None
    )
    return [*named, *hidden]


# ---- bids ----------------------------------------------------------------------------------


def _ciphertext(value: object) -> bytes:
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except ValueError:
            raise InvalidInput(
                "ciphertext must be standard base64",
                code=Code.MALFORMED_CIPHERTEXT,
                detail={"ciphertext": "invalid"},
            ) from None
    if not isinstance(value, bytes):
        raise InvalidInput("ciphertext is required", code=Code.MALFORMED_CIPHERTEXT)
    if not sealing.ENC_LENGTH + sealing.TAG_LENGTH < len(value) <= sealing.MAX_ENVELOPE:
        raise InvalidInput(
            f"a sealed bid is at most {sealing.MAX_ENVELOPE} bytes",
            code=Code.MALFORMED_CIPHERTEXT,
            detail={"ciphertext": "malformed_ciphertext"},
        )
    return value


def _check_sealed_for(a: Auction, raw: bytes) -> None:
    """The sealed bid has the shape the auction's sealing gives (checked without any key)."""
    try:
        if a.by_trustees:
            sealing.check_envelope(raw, len(a.trustees))
        else:
            sealing.check_ciphertext(raw)
    except sealing.SealError as exc:
        raise InvalidInput(
            str(exc), code=Code.MALFORMED_CIPHERTEXT, detail={"ciphertext": exc.code}
        ) from None


@dataclass(frozen=True)
class _Bidding:
    auction: Auction
    bidder: Organization
    now: dt.datetime
    standing: int  # the bidder's standing (sealed) bids in the auction
    holding: int | None  # the bidder's first holding account


def _open_for_bids(actor: Actor, auction: object) -> _Bidding:
    """The auction's bid gate held (shared), the bidder's row locked, the auction checked open
    and the bidder eligible; the instant the bid is taken.

    The bidder's row lock serializes its bid actions with each other (its count of standing
    bids cannot be raced) and with a change of its approval, which locks the same row: a bid
    is checked against the approval its entry will be replayed against. What it needs is then
    read by one statement that starts after both locks are held, so it sees what committed
    while it waited."""
    if actor.organization_id is None:
        raise PermissionDenied("bids are made by a bidder organization")
    a = locks.auction_share_lock(validation.object_id(auction) or 0)
    if a is None:
        raise NotFound(f"auction {auction} not found", detail={"auction": "not_found"})
    # The instant that decides: taken under the gate that closing must wait for.
    now = timezone.now()
    if a.format in ASCENDING_FORMATS:
        raise Conflict(
            f"auction {a.pk} is an ascending auction: it takes raises or round bids",
            code=Code.WRONG_FORMAT,
        )
    if a.state in (State.DRAFT, State.SCHEDULED):
        raise Conflict(f"auction {a.pk} is not open for bids yet", code=Code.NOT_OPEN)
    if a.state != State.OPEN or now >= a.closes_at:
        raise Conflict(
            f"auction {a.pk} closed for bids at {format_time(a.closes_at)}",
            code=Code.CLOSED,
            detail={"closes_at": format_time(a.closes_at)},
        )
    org = locks.bidder_lock(actor.organization_id)
    if org.pk == a.seller_id:
        raise Unprocessable("a seller cannot bid in its own auction", code=Code.OWN_AUCTION)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT status FROM auctions_bidder WHERE organization_id = %s), "
            "(SELECT count(*) FROM auctions_bid WHERE auction_id = %s AND bidder_id = %s "
            "AND status = %s), "
            "(SELECT id FROM ledger_account WHERE organization_id = %s AND kind = %s "
            "ORDER BY id LIMIT 1), "
            "(SELECT amount FROM auctions_deposit WHERE auction_id = %s AND bidder_id = %s "
            "AND state = %s), "
            "(SELECT state FROM auctions_application WHERE auction_id = %s AND bidder_id = %s)",
            [
                org.pk,
                a.pk,
                org.pk,
                Bid.Status.SEALED,
                org.pk,
                Account.Kind.HOLDING,
                a.pk,
                org.pk,
                Deposit.State.HELD,
                a.pk,
                org.pk,
            ],
        )
        status, standing, holding, held, application = cursor.fetchone()
    # Its application to this auction decides, if it made one; else its standing approval.
    if not onboarding_rules.admitted(application, status):
        raise PermissionDenied(
            f"{org.handle} is not admitted to bid in auction {a.pk}"
            + (f" (its application is {application})" if application else ""),
            code=Code.NOT_APPROVED,
        )
    held = held or 0
    if a.deposit_required and held < a.deposit_required:
        raise Conflict(
            f"this auction needs a deposit of {a.deposit_required} (minor units); "
            f"{held} is recorded",
            code=Code.DEPOSIT_MISSING,
            detail={"required": a.deposit_required, "recorded": held},
        )
    return _Bidding(a, org, now, standing, holding)


def _receiving_account(b: _Bidding, account: object) -> Account:
    """The holding account credits are delivered to: the one named, which must be the
    bidder's, or the bidder's first holding account."""
    org = b.bidder
    if account is None:
        if b.holding is None:
            raise Unprocessable("the bidder has no holding account", detail={"account": "missing"})
        return Account(pk=b.holding, organization_id=org.pk, kind=Account.Kind.HOLDING)
    with connection.cursor() as cursor:  # raw: on the bid's path
        cursor.execute(
            "SELECT id, kind FROM ledger_account WHERE id = %s AND organization_id = %s",
            [validation.object_id(account) or 0, org.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"account {account} not found", detail={"account": "not_found"})
    if row[1] != Account.Kind.HOLDING:
        raise Unprocessable(
            "awards are delivered to a holding account", detail={"account": "buffer"}
        )
    return Account(pk=row[0], organization_id=org.pk, kind=row[1])


def receipt_note(r: BidReceipt, auction_id: int, bidder_id: int) -> str:
    """The receipt for one version of a bid: a C2SP signed note by the receipt key, not the
    ledger's checkpoint key (``auctions/receipts.py``, docs/auctions.md §3.5). Deterministic:
    the same facts and key always give the same bytes."""
    return receipt_note_of(
        auction=auction_id,
        bid=r.bid_id,
        bidder=bidder_id,
        version=r.version,
        action=r.action,
        commitment=r.commitment,
        entry_seq=r.entry_seq,
        time=r.time,
    )


def receipt_note_of(
    *,
    auction: int,
    bid: int,
    bidder: int,
    version: int,
    action: str,
    commitment: str,
    entry_seq: int,
    time: str,
) -> str:
    text = (
        f"{settings.LEDGER_ORIGIN}\n"
        "auction bid receipt v1\n"
        f"auction {auction}\n"
        f"bid {bid}\n"
        f"bidder {bidder}\n"
        f"version {version}\n"
        f"action {action}\n"
        f"commitment {commitment or '-'}\n"
        f"entry {entry_seq}\n"
        f"time {time}\n"
    )
    return receipts.receipt_sign(text)


def _bid_entry(
    action: str,
    actor: Actor,
    bid: Bid,
    ciphertext: bytes | None,
    now: dt.datetime,
) -> BidReceipt:
    """The bid's entry, and with it (one round trip, under the ledger head) the bid's
    entry_seq and the version's receipt row."""
    origin, salt = settings.LEDGER_ORIGIN, bid.salt
    data: dict[str, Any] = {"auction": bid.auction_id, "bid": bid.pk, "version": bid.version}
    # The bid's pseudonym and a commitment to its account, not the bidder: who bids is not
    # public before the close (parties.py). A bid from before pseudonyms keeps naming both.
    if salt is None:
        data["bidder"] = bid.bidder_id
    else:
        data["party"] = parties.party(origin, bid.auction_id, bid.pk, bid.bidder_id, bytes(salt))
    if ciphertext is not None:
        if salt is None:
            data["account"] = bid.account_id
        else:
            data["account_commitment"] = parties.account_commitment(
                origin, bid.auction_id, bid.pk, bid.version, bid.account_id, bytes(salt)
            )
        data |= {"commitment": bid.commitment, "ciphertext": records.b64(ciphertext)}
    time = format_time(now)
    commitment = bid.commitment if action != "withdraw" else ""

    def rows(seq: int) -> list[tuple[str, list[Any]]]:
        return [
            (_BID_ENTRY_SEQ, [seq, bid.pk]),
            (_RECEIPT_INSERT.sql(), [bid.pk, bid.version, action, commitment, seq, time]),
        ]

    entry = registry.ledger_append(type=f"bid.{action}", actor=actor, data=data, at=now, also=rows)
    bid.entry_seq = entry.seq
    return BidReceipt(
        bid=bid,
        version=bid.version,
        action=action,
        commitment=commitment,
        entry_seq=entry.seq,
        time=time,
    )


def bid_submit(
    *, actor: Actor, auction: int, ciphertext: bytes | str, account: int | None = None
) -> BidReceipt:
    """A new sealed bid. The server never sees the plaintext: it stores the ciphertext and puts
    its SHA-256 on the ledger. A bidder may have several bids; together they are its demand.

    The intake's hot path. Inside a caller's transaction it takes no savepoint: every check runs
    before its first write, and after that only a database error can stop it, which aborts the
    whole transaction (as ``credit_transfer`` does)."""
    if connection.in_atomic_block:
        return _bid_submit(actor, auction, ciphertext, account)
    with transaction.atomic():
        return _bid_submit(actor, auction, ciphertext, account)


def _bid_submit(
    actor: Actor, auction: int, ciphertext: bytes | str, account: int | None
) -> BidReceipt:
    raw = _ciphertext(ciphertext)
    b = _open_for_bids(actor, auction)
    a, org, now, standing = b.auction, b.bidder, b.now, b.standing
    _check_sealed_for(a, raw)
    acc = _receiving_account(b, account)
    limit = settings.AUCTION_MAX_BIDS_PER_BIDDER
    if standing >= limit:
        raise Conflict(
            f"at most {limit} standing bids per bidder; amend one instead",
            code=Code.TOO_MANY_BIDS,
            detail={"standing": standing},
        )
    commitment = sealing.commitment(raw).hex()
    salt = parties.new_salt()
    # Before the ledger head: the fewer statements under the head, the less every other
    # writer waits. ON CONFLICT: a duplicate ciphertext is refused by the unique index without
    # an error (which would abort the caller's transaction), so the refusal changes nothing.
    with connection.cursor() as cursor:
        cursor.execute(
            _BID_INSERT.sql(), [a.pk, org.pk, acc.pk, raw, commitment, Bid.Status.SEALED, salt]
        )
        row = cursor.fetchone()
    if row is None:
        raise Conflict(
            "this ciphertext was already submitted in this auction",
            code=Code.DUPLICATE_CIPHERTEXT,
        )
    bid = loaded(
        Bid,
        pk=row[0],
        auction=a,
        bidder=org,
        account=acc,
        version=1,
        ciphertext=raw,
        commitment=commitment,
        entry_seq=-1,
        status=Bid.Status.SEALED,
        salt=salt,
    )
    return _bid_entry("submit", actor, bid, raw, now)


# The intake's statements, from the models (bluecarbon/rows.py). ON CONFLICT: a duplicate
# ciphertext is refused by the unique index without an error (see _bid_submit). ``reason`` and
# the opening's columns are left to their database defaults.
_BID_INSERT = RawInsert(
    Bid,
    [
        "auction",
        "bidder",
        "account",
        "version",
        "ciphertext",
        "commitment",
        "entry_seq",
        "status",
        "salt",
    ],
    literals={"version": "1", "entry_seq": "-1"},
    suffix=f"ON CONFLICT ({column(Bid, 'auction')}, {column(Bid, 'commitment')}) DO NOTHING "
    f"RETURNING {column(Bid, 'pk')}",
)
_RECEIPT_INSERT = RawInsert(
    BidReceipt, ["bid", "version", "action", "commitment", "entry_seq", "time"]
)
_BID_ENTRY_SEQ = (
    f"UPDATE {Bid._meta.db_table} SET {column(Bid, 'entry_seq')} = %s "
    f"WHERE {column(Bid, 'pk')} = %s"
)


def _own_bid(a: Auction, org: Organization, bid: object) -> Bid:
    found = locks.bid_lock(validation.object_id(bid) or 0)
    # Another bidder's bid is reported exactly like a missing one.
    if found is None or found.auction_id != a.pk or found.bidder_id != org.pk:
        raise NotFound(f"bid {bid} not found in auction {a.pk}", detail={"bid": "not_found"})
    if found.status != Bid.Status.SEALED:
        raise Conflict(f"bid {found.pk} is {found.status}", code=Code.BID_WITHDRAWN)
    return found


@transaction.atomic
def bid_amend(
    *,
    actor: Actor,
    auction: int,
    bid: int,
    ciphertext: bytes | str,
    account: int | None = None,
) -> BidReceipt:
    """Replace a bid with a new sealed version; the last version before close counts."""
    raw = _ciphertext(ciphertext)
    b = _open_for_bids(actor, auction)
    a, org, now = b.auction, b.bidder, b.now
    _check_sealed_for(a, raw)
    found = _own_bid(a, org, bid)
    acc = _receiving_account(b, account) if account is not None else found.account
    commitment = sealing.commitment(raw).hex()
    if Bid.objects.filter(auction=a, commitment=commitment).exclude(pk=found.pk).exists():
        raise Conflict(
            "this ciphertext was already submitted in this auction",
            code=Code.DUPLICATE_CIPHERTEXT,
        )
    found.version += 1
    found.account, found.ciphertext, found.commitment = acc, raw, commitment
    found.save(update_fields=["version", "account", "ciphertext", "commitment"])
    return _bid_entry("amend", actor, found, raw, now)


@transaction.atomic
def bid_withdraw(*, actor: Actor, auction: int, bid: int) -> BidReceipt:
    """Withdraw a bid before close: it does not count."""
    b = _open_for_bids(actor, auction)
    a, org, now = b.auction, b.bidder, b.now
    found = _own_bid(a, org, bid)
    found.version += 1
    found.status = Bid.Status.WITHDRAWN
    found.save(update_fields=["version", "status"])
    return _bid_entry("withdraw", actor, found, None, now)


# ---- close, open, clear, settle (the worker's steps) ---------------------------------------

SYSTEM = Actor.system("auctions")


@transaction.atomic
def auction_close(*, auction: int) -> bool:
    """open -> closing, once the closing time has passed: commit to the book of counted bids
    (the Merkle root of their commitments). Its entry's hash seeds every draw."""
    # The gate: waits for every bid transaction in flight to commit, and keeps new ones out.
    a = _auction(auction, close_gate=True)
    now = timezone.now()
    if a.state != State.OPEN or now < a.bidding_ends_at:
        return False
    if a.is_clock and not clock.close_round(a, now):
        return False  # not the final round: the next one opened
    if a.is_english:
        data = english.close_data(a)
        size, root = data["bids"], None
    elif a.is_clock:
        data = clock.close_data(a)
        size, root = data["bids"], None
    else:
        size, root = _book(a)
        data = {"auction": a.pk, "bids": size, "book_root": root.hex()}
    entry = _append("auction.close", SYSTEM, data, at=now)
    a.state, a.state_seq = State.CLOSING, entry.seq
    a.book_size, a.book_root, a.seed = size, root, entry_hash(entry.body)
    reveal = _reveal(a, now)
    a.revealed_seq = reveal.seq if reveal is not None else None
    a.save(update_fields=["state", "state_seq", "book_size", "book_root", "seed", "revealed_seq"])
    return True


def _book(a: Auction) -> tuple[int, bytes]:
    commitments = Bid.objects.filter(auction=a, status=Bid.Status.SEALED).order_by("pk")
    return results.book_root(
        bytes.fromhex(c) for c in commitments.values_list("commitment", flat=True).iterator(5000)
    )


def _reveal(a: Auction, now: dt.datetime) -> Any:
    """Bidding is over: name the bidder, account and salt behind every bid's pseudonym, and
    the bidder and salt behind every deposit's (``auction.reveal``, parties.py). None if the
    auction has none (only bids and deposits from before pseudonyms)."""
    bids = [
        {"bid": pk, "bidder": bidder, "account": account, "salt": stored(salt, "salt").hex()}
        for pk, bidder, account, salt in Bid.objects.filter(auction=a, salt__isnull=False)
        .order_by("pk")
        .values_list("pk", "bidder_id", "account_id", "salt")
        .iterator(chunk_size=5000)
    ]
    deposits = [
        {"bidder": bidder, "salt": stored(salt, "salt").hex()}
        for bidder, salt in Deposit.objects.filter(auction=a, salt__isnull=False)
        .order_by("bidder_id")
        .values_list("bidder_id", "salt")
    ]
    # The applicants too (onboarding.py), a member only auctions with applications have.
    applications = [
        {"bidder": bidder, "salt": bytes(salt).hex()}
        for bidder, salt in Application.objects.filter(auction=a)
        .order_by("bidder_id")
        .values_list("bidder_id", "salt")
    ]
    # An ascending auction's bidders are its paddles (english.py), and a clock auction's round
    # bids are opened (clock.py).
    ascending = a.format in ASCENDING_FORMATS
    paddles = english.reveal_paddles(a) if ascending else []
    if not bids and not deposits and not applications and not paddles:
        return None
    data: dict[str, Any] = {"auction": a.pk, "bids": bids, "deposits": deposits}
    if applications:
        data["applications"] = applications
    if ascending:
        data["paddles"] = paddles
    if a.is_clock:
        data["clock_bids"] = clock.reveal_bids(a)
    return _append("auction.reveal", SYSTEM, data, at=now)


def unopened_bid_ids(auction_id: int) -> list[int]:
    return list(
        Bid.objects.filter(auction_id=auction_id, status=Bid.Status.SEALED, opened__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def auction_bids_open(*, auction: int, first: int, last: int) -> int:
    """Decrypt the counted bids with ids in [first, last] that are not opened yet and keep
    what they say (or why they do not open) for clearing. Not ledger state: the result entry
    is the record, and the verifier reopens every bid itself. Safe to run twice or in
    parallel: both write the same thing."""
    a = Auction.objects.filter(pk=auction).first()
    if a is None or a.state != State.CLOSING:
        return 0
    released = trustees.opening_keys(a) if a.by_trustees else None
    if a.by_trustees and released is None:
        return 0  # waiting for the trustees
    private = (
        None
        if a.by_trustees
        else sealing.load_private_key(
            keys.open_private_key(a.pk, stored(a.private_key_sealed, "sealed key"))
        )
    )
    rows = list(
        Bid.objects.filter(
            auction=a,
            status=Bid.Status.SEALED,
            opened__isnull=True,
            pk__gte=first,
            pk__lte=last,
        ).only("pk", "bidder_id", "ciphertext")
    )
    opened_rows = []
    opener = sealing.Opener(private_key=private, released=released, trustees=len(a.trustees))
    for bid in rows:
        tiers, error = opener.for_book(
            bytes(bid.ciphertext), origin=settings.LEDGER_ORIGIN, auction=a.pk, bidder=bid.bidder_id
        )
        opened_rows.append((bid.pk, {"error": error} if error else {"tiers": tiers}))
    with transaction.atomic():
        update_rows("auctions_bid", [("opened", "json")], opened_rows)
    return len(rows)


class NotReady(Exception):
    """A step that must wait for another (clearing before every bid is opened)."""


@transaction.atomic
def auction_clear(*, auction: int) -> bool:
    """closing -> cleared: publish the private key and the result of the clearing (or, if the
    rules say an undersubscribed auction is cancelled, publish it and cancel)."""
    a = _auction(auction)
    if a.state != State.CLOSING:
        return False
    if a.is_english:
        _publish_result(a, {"sealing": Sealing.OPEN}, english.result_of(a), private=None)
        return True
    if a.is_clock:
        _publish_result(a, {"sealing": Sealing.OPERATOR_ROUNDS}, clock.result_of(a), private=None)
        return True
    released = trustees.opening_keys(a) if a.by_trustees else None
    if a.by_trustees and released is None:
        raise NotReady(f"auction {a.pk} waits for its trustees' keys")
    if Bid.objects.filter(auction=a, status=Bid.Status.SEALED, opened__isnull=True).exists():
        raise NotReady(f"auction {a.pk} has bids not opened yet")
    opening: dict[str, Any]
    if released is not None:
        # The keys are on the ledger already (auction.key_release); the entry names which the
        # opening used, so that anyone reopens the bids with the same ones.
        opening = {"sealing": Sealing.TRUSTEES, "opened_with": sorted(released)}
        private = None
    else:
        private = keys.open_private_key(a.pk, stored(a.private_key_sealed, "sealed key"))
        if sealing.public_key_of(private) != stored(a.public_key, "public key"):
            raise RuntimeError(
                f"auction {a.pk}: the stored private key does not match its public key"
            )
        opening = {"sealing": Sealing.OPERATOR_KEY, "private_key": records.b64(private)}
    deposits = dict(
        Deposit.objects.filter(auction=a, state=Deposit.State.HELD).values_list(
            "bidder_id", "amount"
        )
    )
    rows = (
        Bid.objects.filter(auction=a, status=Bid.Status.SEALED)
        .order_by("pk")
        .values_list("pk", "bidder_id", "account_id", "commitment", "opened")
    )
    book = [
        results.BookBid(
            bid=pk,
            bidder=bidder,
            account=account,
            commitment=commitment,
            deposit=deposits.get(bidder, 0),
            tiers=(opened or {}).get("tiers"),
            error=(opened or {}).get("error"),
        )
        for pk, bidder, account, commitment, opened in rows.iterator(chunk_size=5000)
    ]
    result = results.build_result(
        record=records.auction_rules(a),
        book=book,
        seed=stored(a.seed, "seed"),
        root=stored(a.book_root, "book root"),
    )
    _publish_result(a, opening, result, private=private)
    return True


def _publish_result(
    a: Auction, opening: dict[str, Any], result: dict[str, Any], private: bytes | None
) -> None:
    """The auction.clear entry and what it changes: the bids' outcomes, the auction's result;
    an undersubscribed auction its rules cancel is cancelled."""
    digest = results.result_sha256(result)
    entry = _append(
        "auction.clear",
        SYSTEM,
        {"auction": a.pk, **opening, "result": result, "result_sha256": digest},
    )
    outcome = result["outcome"]
    # An ascending auction's bids have no outcome of their own: its result names the winners.
    if a.format in SEALED_FORMATS:
        update_rows(
            "auctions_bid",
            [("status", "text"), ("reason", "text"), ("awarded_lots", "int")],
            [
                (
                    row["bid"],
                    Bid.Status.VALID if row["status"] == "valid" else Bid.Status.REJECTED,
                    row["reason"] or "",
                    row["awarded_lots"],
                )
                for row in result["bids"]
            ],
        )
    a.private_key, a.result_sha256, a.result_seq = private, digest, entry.seq
    a.result = {"outcome": outcome, "bidders": result["bidders"]}
    a.clearing_price = outcome["clearing_price"]
    a.state, a.state_seq = State.CLEARED, entry.seq
    a.save(
        update_fields=[
            "private_key",
            "result",
            "result_seq",
            "result_sha256",
            "clearing_price",
            "state",
            "state_seq",
        ]
    )
    if outcome["status"] == "cancelled":
        _end(a, SYSTEM, State.CANCELLED, "auction.cancel", "undersubscribed")


@transaction.atomic
def auction_settle(*, auction: int) -> bool:
    """cleared -> settled, delivery versus payment: each award becomes a pending delivery
    (its credits stay in escrow until payment is confirmed), unsold credits return to the
    seller, and the deposits of bidders who won nothing are released."""
    a = _auction(auction)
    if a.state != State.CLEARED:
        return False
    result = a.result
    assert result is not None, "a cleared auction has its result"
    winners = [w for w in result["bidders"] if w["awarded_lots"]]
    sold = sum(w["awarded_lots"] for w in winners) * a.lot_kg
    unsold = a.quantity - sold
    if unsold:
        registry.escrow_release(actor=SYSTEM, hold=a.lot_hold(), quantity=unsold, managed=True)
    rows = [
        Award(
            auction=a,
            bidder_id=w["bidder"],
            account_id=w["account"],
            lots=w["awarded_lots"],
            quantity=w["awarded_lots"] * a.lot_kg,
            amount_due=w["amount"],
            entry_seq=-1,
        )
        for w in winners
    ]
    released = _release_deposits(a, exclude={w["bidder"] for w in winners})
    created = Award.objects.bulk_create(rows, batch_size=1000)
    entry = _append(
        "auction.settle",
        SYSTEM,
        {
            "auction": a.pk,
            "awards": [
                {
                    "award": w.pk,
                    "bidder": w.bidder_id,
                    "account": w.account_id,
                    "quantity": w.quantity,
                    "amount_due": w.amount_due,
                }
                for w in created
            ],
            "unsold": unsold,
            "deposits_released": released,
        },
    )
    Award.objects.filter(auction=a).update(entry_seq=entry.seq)
    a.state, a.state_seq = State.SETTLED, entry.seq
    a.save(update_fields=["state", "state_seq"])
    return True


def keys_ready(auction: int) -> bool:
    """Whether the auction's bids can be opened: an operator-held key always can; trustee
    sealing once the threshold of trustees released their keys."""
    a = Auction.objects.filter(pk=auction).first()
    return a is not None and (not a.by_trustees or trustees.opening_keys(a) is not None)


@transaction.atomic
def auction_release_overdue(*, auction: int) -> bool:
    """closing -> failed, when the trustees' deadline passed with fewer keys released than the
    threshold: the bids are never opened, the lot returns to the seller, deposits are
    released."""
    a = _auction(auction)
    if not trustees.release_overdue(a):
        return False
    _end(a, SYSTEM, State.FAILED, "auction.fail", trustees.overdue_reason(a))
    return True


@transaction.atomic
def auction_fail(*, auction: int, reason: str) -> bool:
    """closing -> failed, when the auction cannot be cleared (its key does not open): the lot
    returns to the seller and deposits are released; the key is not published."""
    a = _auction(auction)
    if a.state != State.CLOSING:
        return False
    _end(a, SYSTEM, State.FAILED, "auction.fail", reason[:200])
    return True


# ---- delivery versus payment ---------------------------------------------------------------


def _award(actor: Actor, award: object) -> tuple[Auction, Award]:
    validation.require(actor.is_operator, "only operators confirm payments and declare defaults")
    peek = Award.objects.filter(pk=validation.object_id(award) or 0).first()
    if peek is None:
        raise NotFound(f"award {award} not found")
    a = _auction(peek.auction_id)  # auction before award: the lock order
    w = Award.objects.select_for_update(no_key=True).get(pk=peek.pk)
    if w.state != Award.State.PENDING:
        raise Conflict(f"award {w.pk} is already {w.state}", code=Code.AWARD_RESOLVED)
    return a, w


def _deposit_outcome(a: Auction, w: Award, state: str) -> int:
    deposit = (
        Deposit.objects.select_for_update(no_key=True)
        .filter(auction=a, bidder_id=w.bidder_id)
        .first()
    )
    if deposit is None or deposit.state != Deposit.State.HELD:
        return 0
    deposit.state = state
    deposit.save(update_fields=["state"])
    return deposit.amount


@transaction.atomic
def award_confirm_payment(*, actor: Actor, award: int) -> Award:
    """The operator saw the winner's payment: deliver the credits and apply the deposit."""
    a, w = _award(actor, award)
    registry.escrow_deliver(
        actor=actor, hold=a.lot_hold(), recipient=w.account_id, quantity=w.quantity, managed=True
    )
    applied = _deposit_outcome(a, w, Deposit.State.APPLIED)
    entry = _append(
        "award.deliver",
        actor,
        {"auction": a.pk, "award": w.pk, "deposit_applied": applied},
    )
    w.state, w.resolved_seq = Award.State.DELIVERED, entry.seq
    w.save(update_fields=["state", "resolved_seq"])
    return w


@transaction.atomic
def award_default(*, actor: Actor, award: int, reason: str = "payment not received") -> Award:
    """The winner did not pay: its credits return to the seller and its deposit is forfeited."""
    a, w = _award(actor, award)
    registry.escrow_release(actor=actor, hold=a.lot_hold(), quantity=w.quantity, managed=True)
    forfeited = _deposit_outcome(a, w, Deposit.State.FORFEITED)
    entry = _append(
        "award.default",
        actor,
        {
            "auction": a.pk,
            "award": w.pk,
            "deposit_forfeited": forfeited,
            "reason": (reason or "payment not received").strip()[:200],
        },
    )
    w.state, w.resolved_seq = Award.State.DEFAULTED, entry.seq
    w.save(update_fields=["state", "resolved_seq"])
    return w


# ---- notification (after settlement; not ledger state) --------------------------------------


def auction_notify(*, auction: int) -> int:
    """Tell each bidder's users how the auction ended, once: the mails go to the outbox with
    the mark, in one transaction, and are sent after it commits (``ledger/mail.py``), not while
    the auction's row is locked. Returns how many mails were written."""
    with transaction.atomic():
        a = _auction(auction)
        if a.state not in (State.SETTLED, State.CANCELLED, State.FAILED) or a.notified_at:
            return 0
        bidders = sorted(set(Bid.objects.filter(auction=a).values_list("bidder_id", flat=True)))
        awards = {w.bidder_id: w for w in Award.objects.filter(auction=a)}
        emails: dict[int, list[str]] = {}
        for m in Membership.objects.filter(organization_id__in=bidders).select_related("user"):
            if m.user.email:
                emails.setdefault(m.organization_id, []).append(m.user.email)
        mails = []
        for bidder_id in bidders:
            if not emails.get(bidder_id):
                continue
            award = awards.get(bidder_id)
            if a.state != State.SETTLED:
                body = f"Auction {a.pk} ({a.title}) was {a.state}: {a.state_reason}."
            elif award is not None:
                due = format_money(award.amount_due, a.currency)
                body = (
                    f"Auction {a.pk} ({a.title}) has cleared. You were awarded "
                    f"{award.lots} lot(s) ({format_tonnes(award.quantity)} t); amount due: "
                    f"{due} {a.currency}."
                )
            else:
                body = f"Auction {a.pk} ({a.title}) has cleared. Your bids won nothing."
            mails.append(Mail(to=emails[bidder_id], subject=f"Auction {a.pk}: result", body=body))
        written = mail_enqueue(mails=mails)
        a.notified_at = timezone.now()
        a.save(update_fields=["notified_at"])
        return written
