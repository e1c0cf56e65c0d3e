"""After the clearing: settlement, delivery versus payment (each award delivered on payment or
defaulted), and telling the bidders how the auction ended."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ledger import services as registry
from ledger import validation
from ledger.actors import Actor
from ledger.core.quantity import format_money, format_tonnes
from ledger.mail import Mail, mail_enqueue
from ledger.models import Membership

from ..exceptions import AuctionErrorCode as Code
from ..exceptions import Conflict, NotFound
from ..models import Auction, Award, Bid, Deposit
from .common import SYSTEM, State, _append, _auction, _release_deposits


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
