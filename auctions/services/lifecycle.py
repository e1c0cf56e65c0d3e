"""An auction's life before bidding ends: created as a draft with its rules, scheduled (the
lot in escrow, the format's sealing fixed), opened at its time, or cancelled before it
closes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from ledger import services as registry
from ledger import validation
from ledger.actors import Actor
from ledger.core.entry import format_time
from ledger.core.quantity import CURRENCY_EXPONENTS, MAX_KG
from ledger.exceptions import ErrorCode
from ledger.models import Account, Batch

from .. import jobs, records, trustees
from ..core import clearing
from ..core import clock as clock_rules
from ..core import english as english_rules
from ..core import result as results
from ..exceptions import AuctionErrorCode as Code
from ..exceptions import Conflict, InvalidInput, NotFound, Unprocessable
from ..models import (
    ASCENDING_FORMATS,
    SINGLE_LOT_FORMATS,
    Auction,
    Format,
    Sealing,
    TieRule,
    Undersubscribed,
)
from .common import State, _after_commit, _append, _auction, _aware, _end, _int, _wrong_state
from .formats import steps_of


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
    operator holds (``operator_key``).

    Two steps, as everywhere a function grew long: ``_draft`` checks the rules and reads
    nothing but the clock; this function finds the holding and the batch and writes."""
    fields = _draft(
        title=title,
        format=format,
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
        sealing_mode=sealing_mode,
        trustee_ids=trustee_ids,
        threshold=threshold,
        release_by=release_by,
        increments=increments,
        countdown_s=countdown_s,
        hard_close_at=hard_close_at,
        round_s=round_s,
    )
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
        **fields,
        seller_id=acc.organization_id,
        account=acc,
        batch=b,
        rules_version=results.RULES_VERSION,
        created_seq=-1,
        state_seq=-1,
    )
    entry = _append("auction.create", actor, {"auction": records.auction_rules(a)})
    a.created_seq = a.state_seq = entry.seq
    a.save(update_fields=["created_seq", "state_seq"])
    return a


def _draft(
    *,
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
    sealing_mode: str,
    trustee_ids: list[int] | None,
    threshold: int | None,
    release_by: dt.datetime | None,
    increments: list[list[int]] | None,
    countdown_s: int | None,
    hard_close_at: dt.datetime | None,
    round_s: int | None,
) -> dict[str, Any]:
    """The check step of ``auction_create``: the auction's fields as they are stored (the
    rules that apply to its format, the others left empty), or ``InvalidInput`` naming the
    first rule broken. The rules are checked as the verifier checks the create entry's record
    (``clearing.Rules``, ``english_rules.rules_of``, ``clock_rules.rules_of``)."""
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
    common: dict[str, Any] = {
        "format": fmt,
        "quantity": quantity,
        "lot_kg": lot_kg,
        "tick": _int(tick, "tick", low=1),
        "reserve": _int(reserve, "reserve"),
        "cap_bp": cap_bp,
        "bid_guarantee": bid_guarantee,
        "tie_rule": validation.choice(
            tie_rule, "tie_rule", TieRule.values, code=Code.INVALID_RULES
        ),
        "undersubscribed": validation.choice(
            undersubscribed, "undersubscribed", Undersubscribed.values, code=Code.INVALID_RULES
        ),
    }
    if fmt in ASCENDING_FORMATS:
        own = _ascending_draft(
            common,
            closes_at=closes_at,
            sealing_mode=sealing_mode,
            trustee_ids=trustee_ids,
            increments=increments,
            countdown_s=countdown_s,
            hard_close_at=hard_close_at,
            round_s=round_s,
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
                offered_lots=quantity // lot_kg,
                **{k: v for k, v in common.items() if k != "quantity"},
            )
        except clearing.RulesError as exc:
            raise InvalidInput(
                str(exc), code=Code.INVALID_RULES, detail={"rules": exc.code}
            ) from None
        own = {
            "sealing": mode,
            "trustees": trustee_list,
            "threshold": threshold,
            "release_by": release_by,
            "increments": None,
            "countdown_s": None,
            "hard_close_at": None,
            "round_s": None,
        }
    return {
        **common,
        **own,
        "title": title.strip(),
        "currency": currency,
        "deposit_required": deposit_required,
        "opens_at": opens_at,
        "closes_at": closes_at,
    }


def _ascending_draft(
    common: dict[str, Any],
    *,
    closes_at: dt.datetime,
    sealing_mode: str,
    trustee_ids: list[int] | None,
    increments: list[list[int]] | None,
    countdown_s: int | None,
    hard_close_at: dt.datetime | None,
    round_s: int | None,
) -> dict[str, Any]:
    """An English or clock auction's own fields: its sealing is fixed by its format (an English
    auction's bids are open prices; a clock auction's round bids are committed and opened at the
    end), and only its format's timing rules may be given."""
    fmt = common["format"]
    wanted = Sealing.OPEN if fmt == Format.ENGLISH else Sealing.OPERATOR_ROUNDS
    if sealing_mode not in (wanted, Sealing.OPERATOR_KEY) or trustee_ids:
        raise InvalidInput(
            f"a {fmt} auction's sealing is {wanted}",
            code=Code.INVALID_RULES,
            detail={"sealing": f"{fmt}_is_{wanted}"},
        )
    if hard_close_at is not None:
        hard_close_at = _aware(hard_close_at, "hard_close_at")
    english_own: dict[str, Any] = {"countdown_s": countdown_s, "hard_close_at": hard_close_at}
    clock_own: dict[str, Any] = {"round_s": round_s}
    own, other = (english_own, clock_own) if fmt == Format.ENGLISH else (clock_own, english_own)
    if any(v is not None for v in other.values()):
        raise InvalidInput(
            f"{', '.join(other)} are not rules of a {fmt} auction",
            code=Code.INVALID_RULES,
            detail={"format": f"not_{next(iter(other))}"},
        )
    _ascending_rules(**common, increments=increments, closes_at=closes_at, **own)
    return {
        "sealing": wanted,
        "trustees": [],
        "threshold": None,
        "release_by": None,
        "increments": increments,
        **{k: None for k in other},
        **own,
    }


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
    # The format's sealing: a public key or the trustees' keys to seal bids to, or none.
    data: dict[str, Any] = {"auction": a.pk, "hold": hold.pk} | steps_of(a).scheduled(a)
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
    steps_of(a).opened(a, now)


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
