"""Who may see what of the registry: the one place that says it (issue 15, section 4).

An operator (or a system job) sees every organization's rows; any other actor its own
organization's; an actor that acts for no organization nothing. The API, the portal and the
selectors read through these functions, and ``tests/test_policy.py`` fails if a reader filters
these tables by organization itself.

``*_of(organization)`` is an organization's own rows, whoever looks (a page that shows "yours"
shows an operator its own too); ``*_visible_to(actor)`` is what an actor may read; a
``*_visible_to(actor, row)`` with a row answers for that one row.
"""

from __future__ import annotations

from django.db.models import QuerySet

from .actors import NO_ORGANIZATION, Actor
from .models import Account, Cancellation, EscrowHold, Holding, Retirement, WebhookEndpoint


def _owner(organization: int | None) -> int:
    return organization or NO_ORGANIZATION


# ---- accounts and what they hold -----------------------------------------------------------


def accounts_of(organization: int | None) -> QuerySet[Account]:
    return Account.objects.filter(organization_id=_owner(organization))


def accounts_visible_to(actor: Actor) -> QuerySet[Account]:
    return Account.objects.all() if actor.is_operator else accounts_of(actor.organization_id)


def account_ids_visible_to(actor: Actor) -> set[int] | None:
    """The accounts whose entries (transfers) an actor may read; None: every account."""
    if actor.is_operator:
        return None
    return set(accounts_of(actor.organization_id).values_list("pk", flat=True))


def holdings_of(organization: int | None) -> QuerySet[Holding]:
    return Holding.objects.filter(account__organization_id=_owner(organization))


def holdings_visible_to(actor: Actor) -> QuerySet[Holding]:
    return Holding.objects.all() if actor.is_operator else holdings_of(actor.organization_id)


def escrow_holds_visible_to(actor: Actor) -> QuerySet[EscrowHold]:
    qs = EscrowHold.objects.all()
    return qs if actor.is_operator else qs.filter(account__organization_id=actor.owner_id)


def retirements_visible_to(actor: Actor) -> QuerySet[Retirement]:
    """The API's retirements (the portal's public register shows every certificate)."""
    qs = Retirement.objects.all()
    return qs if actor.is_operator else qs.filter(account__organization_id=actor.owner_id)


def cancellations_visible_to(actor: Actor) -> QuerySet[Cancellation]:
    qs = Cancellation.objects.all()
    return qs if actor.is_operator else qs.filter(account__organization_id=actor.owner_id)


# ---- webhook endpoints ---------------------------------------------------------------------


def webhook_endpoints_of(actor: Actor) -> QuerySet[WebhookEndpoint]:
    """The endpoints an actor's list shows: its organization's active ones, an operator's too
    (an operator reaches another's endpoint only by its id)."""
    return WebhookEndpoint.objects.filter(organization_id=actor.owner_id, active=True)


def webhook_endpoint_visible_to(actor: Actor, endpoint: WebhookEndpoint) -> bool:
    """A deactivated endpoint is gone for everyone, as if it had never been."""
    return endpoint.active and actor.may_act_for(endpoint.organization_id)
