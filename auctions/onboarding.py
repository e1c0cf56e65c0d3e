"""Onboarding bidders, by API as exchanges and registries integrate: an organization applies to
bid in an auction, an operator approves or refuses the application (with a reason), records
the deposits received (``services.deposit_record``) and releases or forfeits a deposit whose
bidder is out of the auction; operators also register the bidder and trustee organizations
themselves. Every write appends its ledger entry in the same transaction
(docs/auctions.md §2.1; the replay is ``bluecarbon_audit.auctions.onboarding``).

Once an organization has applied to an auction, its application decides whether it may bid
there (``admitted``): only an approved one admits it. Without one, its standing approval as a
bidder (``services.bidder_approve``) does, as before applications existed.

Locks (``locks.py``): application writes take the auction's bid gate shared (like bids and
deposits: none commits across the close or a cancel), then the applicant's organization row,
which its bids lock too, so an application changes either before a bid of its applicant or
after it. Releasing or forfeiting a deposit locks the auction's row, which the pipeline's
steps that settle deposits (clear, settle, cancel, fail) lock too, then the bidder's row and
the deposit's.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ledger import services as registry
from ledger import validation
from ledger.actors import Actor
from ledger.core.entry import format_time
from ledger.models import Account, Organization, Role

from . import locks, records
from .core import onboarding as rules
from .core import parties
from .exceptions import AuctionErrorCode as Code
from .exceptions import Conflict, InvalidInput, NotFound, PermissionDenied, Unprocessable
from .models import Application, Auction, Bid, Deposit

State = Auction.State
SALT_LENGTH = 32
# The roles an onboarding key may give: it admits market participants, never a registry, an
# auditor or another operator.
ONBOARDING_ROLES = (Role.BIDDER, Role.TRUSTEE)
APPLICATION_STATES = (State.DRAFT, State.SCHEDULED, State.OPEN)


def _append(type: str, actor: Actor, data: dict[str, Any]) -> Any:
    return registry.ledger_append(type=type, actor=actor, data=data)


def _wrong_state(a: Auction, *wanted: str) -> Conflict:
    return Conflict(
        f"auction {a.pk} is {a.state}; this needs it {' or '.join(wanted)}",
        code=Code.WRONG_STATE,
        detail={"state": a.state},
    )


def _organization(value: object) -> Organization:
    org = Organization.objects.filter(pk=validation.object_id(value) or 0).first()
    if org is None:
        raise NotFound(f"organization {value} not found", detail={"bidder": "not_found"})
    return org


def _taking_applications(auction: object) -> Auction:
    """The auction, its bid gate held shared, in a state that takes applications."""
    a = locks.auction_share_lock(validation.object_id(auction) or 0)
    if a is None:
        raise NotFound(f"auction {auction} not found", detail={"auction": "not_found"})
    if a.state not in APPLICATION_STATES:
        raise _wrong_state(a, *APPLICATION_STATES)
    return a


def _application(a: Auction, org: Organization) -> Application | None:
    return (
        Application.objects.select_for_update(of=("self",), no_key=True)
        .filter(auction=a, bidder=org)
        .first()
    )


def _application_wrong_state(app: Application | None, *wanted: str) -> Conflict:
    state = app.state if app is not None else "none"
    return Conflict(
        f"the application is {state}; this needs it {' or '.join(wanted)}",
        code=Code.APPLICATION_STATE,
        detail={"state": state},
    )


def _application_entry(type: str, actor: Actor, app: Application, **more: Any) -> None:
    # The applicant's pseudonym, not its id: who applies is not public before the close.
    who = records.applicant_of(app)
    entry = _append(type, actor, {"auction": app.auction_id, "applicant": who, **more})
    app.entry_seq = entry.seq


def _standing_bids(a: Auction, org: Organization) -> int:
    return Bid.objects.filter(auction=a, bidder=org).exclude(status=Bid.Status.WITHDRAWN).count()


def _no_standing_bids(a: Auction, org: Organization) -> None:
    standing = _standing_bids(a, org)
    if standing:
        raise Conflict(
            f"{org.handle} has {standing} bid(s) standing in auction {a.pk}: withdraw them first",
            code=Code.BIDS_STANDING,
            detail={"standing": standing},
        )


# ---- applications --------------------------------------------------------------------------


@transaction.atomic
def application_submit(*, actor: Actor, auction: int, bidder: int | None = None) -> Application:
    """Apply to bid in an auction, for the actor's organization (an operator: for ``bidder``).
    After a refusal or a withdrawal the organization may apply again."""
    org_id = actor.organization_id if bidder is None else bidder
    if org_id is None:
        raise PermissionDenied("applications are made for a bidder organization")
    if not actor.may_act_for(org_id):
        raise NotFound(f"organization {bidder} not found", detail={"bidder": "not_found"})
    org = _organization(org_id)
    a = _taking_applications(auction)
    if timezone.now() >= a.closes_at:
        raise Conflict(
            f"auction {a.pk} closed for bids at {format_time(a.closes_at)}",
            code=Code.CLOSED,
            detail={"closes_at": format_time(a.closes_at)},
        )
    if org.pk == a.seller_id:
        raise Unprocessable("a seller cannot bid in its own auction", code=Code.OWN_AUCTION)
    if not org.has_role(Role.BIDDER):
        raise Unprocessable(f"{org.handle} does not have the bidder role", code=Code.NOT_APPROVED)
    locks.bidder_lock(org.pk)
    app = _application(a, org)
    if app is not None and app.state in (Application.State.PENDING, Application.State.APPROVED):
        raise _application_wrong_state(app, "refused", "withdrawn", "none")
    if app is None:
        # The pseudonym's salt: one per application, kept when the organization applies again.
        app = Application(auction=a, bidder=org, salt=secrets.token_bytes(SALT_LENGTH))
    app.state, app.reason = Application.State.PENDING, ""
    _application_entry("application.submit", actor, app)
    app.save()
    return app


def _decide(
    actor: Actor, auction: object, bidder: object, state: str, type: str, **more: Any
) -> Application:
    validation.require(actor.is_operator, "only operators decide on applications")
    org = _organization(bidder)
    a = _taking_applications(auction)
    locks.bidder_lock(org.pk)
    app = _application(a, org)
    if app is None:
        raise NotFound(
            f"{org.handle} has not applied to auction {a.pk}", detail={"application": "not_found"}
        )
    if app.state != Application.State.PENDING:
        raise _application_wrong_state(app, "pending")
    app.state, app.reason = state, more.get("reason", "")
    _application_entry(type, actor, app, **more)
    app.save(update_fields=["state", "reason", "entry_seq"])
    return app


@transaction.atomic
def application_approve(*, actor: Actor, auction: int, bidder: int) -> Application:
    """Admit the applicant to bid in the auction (operators only)."""
    return _decide(actor, auction, bidder, Application.State.APPROVED, "application.approve")


@transaction.atomic
def application_refuse(*, actor: Actor, auction: int, bidder: int, reason: str) -> Application:
    """Refuse the application, saying why (operators only). A deposit the applicant put down
    stays held until the operator releases or forfeits it (``deposit_release``)."""
    reason = validation.text(reason, "reason", max_length=rules.MAX_REASON)
    return _decide(
        actor, auction, bidder, Application.State.REFUSED, "application.refuse", reason=reason
    )


@transaction.atomic
def application_withdraw(*, actor: Actor, auction: int, bidder: int) -> Application:
    """The applicant withdraws its application (pending or approved), having no bid standing:
    it may no longer bid in the auction."""
    if not actor.may_act_for(validation.object_id(bidder) or 0):
        raise NotFound(f"organization {bidder} not found", detail={"bidder": "not_found"})
    org = _organization(bidder)
    a = _taking_applications(auction)
    locks.bidder_lock(org.pk)
    app = _application(a, org)
    if app is None or app.state not in (Application.State.PENDING, Application.State.APPROVED):
        raise _application_wrong_state(app, "pending", "approved")
    _no_standing_bids(a, org)
    app.state = Application.State.WITHDRAWN
    _application_entry("application.withdraw", actor, app)
    app.save(update_fields=["state", "entry_seq"])
    return app


# ---- deposits released or forfeited by the operator ----------------------------------------


def _deposit_out(
    actor: Actor, auction: object, bidder: object, reason: object, state: str, type: str
) -> Deposit:
    validation.require(actor.is_operator, "only operators release or forfeit deposits")
    text = validation.text(reason, "reason", max_length=rules.MAX_REASON)
    org = _organization(bidder)
    # The auction's row, which clearing, settling, cancelling and failing lock too: the
    # deposits they list as released are the ones held when they run, not one going out now.
    a = locks.auction_lock(validation.object_id(auction) or 0)
    if a is None:
        raise NotFound(f"auction {auction} not found", detail={"auction": "not_found"})
    if a.state not in rules.DEPOSIT_OUT_STATES:
        raise _wrong_state(a, *rules.DEPOSIT_OUT_STATES)
    locks.bidder_lock(org.pk)  # its bids wait: none can be made while its deposit goes
    deposit = (
        Deposit.objects.select_for_update(of=("self",), no_key=True)
        .filter(auction=a, bidder=org)
        .first()
    )
    if deposit is None:
        raise NotFound(
            f"{org.handle} has no deposit in auction {a.pk}", detail={"deposit": "not_found"}
        )
    if deposit.state != Deposit.State.HELD:
        raise Conflict(
            f"the deposit is {deposit.state}, not held",
            code=Code.DEPOSIT_NOT_HELD,
            detail={"state": deposit.state},
        )
    # A bidder with a bid standing is still in the auction: its deposit backs that bid.
    _no_standing_bids(a, org)
    who: dict[str, Any] = (
        {"depositor": parties.depositor(settings.LEDGER_ORIGIN, a.pk, org.pk, bytes(deposit.salt))}
        if deposit.salt is not None and a.revealed_seq is None
        else {"bidder": org.pk}
    )
    entry = _append(type, actor, {"auction": a.pk, **who, "amount": deposit.amount, "reason": text})
    deposit.state, deposit.entry_seq = state, entry.seq
    deposit.save(update_fields=["state", "entry_seq"])
    return deposit


@transaction.atomic
def deposit_release(*, actor: Actor, auction: int, bidder: int, reason: str) -> Deposit:
    """Give a held deposit back before the auction's settlement would: its bidder was refused,
    withdrew, or has no bid standing (operators only). The pipeline releases, applies and
    forfeits every other deposit itself."""
    return _deposit_out(actor, auction, bidder, reason, Deposit.State.RELEASED, "deposit.release")


@transaction.atomic
def deposit_forfeit(*, actor: Actor, auction: int, bidder: int, reason: str) -> Deposit:
    """Keep a held deposit as the auction's terms allow (an applicant refused for false
    information, one that withdrew after the terms' deadline), saying why (operators only).
    Its bidder has no bid standing; a winner's deposit is forfeited by ``award_default``."""
    return _deposit_out(actor, auction, bidder, reason, Deposit.State.FORFEITED, "deposit.forfeit")


# ---- registering bidders and trustees ------------------------------------------------------


@transaction.atomic
def organization_onboard(
    *, actor: Actor, handle: str, name: str, roles: Iterable[str]
) -> Organization:
    """Register a bidder or trustee organization (operators only; ``org.register``). A bidder
    gets a holding account, where its awards are delivered. Other roles (registry, auditor,
    operator) are not given by onboarding."""
    validation.require(actor.is_operator, "only operators register organizations")
    role_list = sorted(
        {validation.choice(r, "roles", ONBOARDING_ROLES) for r in roles}
        if not isinstance(roles, str)
        else ()
    )
    if not role_list:
        raise InvalidInput("roles: bidder, trustee or both", detail={"roles": "required"})
    org = registry.organization_register(actor=actor, handle=handle, name=name, roles=role_list)
    if Role.BIDDER in role_list:
        registry.account_open(
            actor=actor, organization=org.pk, name=f"{org.name} holding", kind=Account.Kind.HOLDING
        )
    return org


# ---- reads ---------------------------------------------------------------------------------


def admitted(a: Auction, org: Organization) -> bool:
    """Whether ``org`` may bid in ``a`` now, as the bid intake decides it."""
    app = Application.objects.filter(auction=a, bidder=org).values_list("state", flat=True).first()
    status = org.bidder.status if hasattr(org, "bidder") else None
    return rules.admitted(app, status)
