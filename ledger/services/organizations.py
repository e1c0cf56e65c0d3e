"""Organizations and their accounts."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from .. import records, validation
from ..actors import Actor
from ..exceptions import Conflict, ErrorCode, InvalidInput, NotFound, Unprocessable
from ..models import Account, Organization, Role
from .append import _ledger_append
from .checks import _CODE, _get


@transaction.atomic
def organization_register(
    *, actor: Actor, handle: str, name: str, roles: Iterable[str], name_zh: str = ""
) -> Organization:
    validation.require(actor.is_operator, "only operators register organizations")
    handle = validation.text(handle, "handle", max_length=64)
    if not _CODE.match(handle) or handle != handle.lower():
        raise InvalidInput(
            "handle must be lowercase letters, digits, '-', '_' or '.'",
            detail={"handle": "invalid"},
        )
    role_list = sorted({validation.choice(r, "roles", Role.values) for r in roles})
    if Organization.objects.filter(handle=handle).exists():
        raise Conflict(f"organization {handle} exists", code=ErrorCode.DUPLICATE)
    org = Organization.objects.create(
        handle=handle,
        name=validation.text(name, "name", max_length=200),
        name_zh=validation.text(name_zh, "name_zh", max_length=200, required=False),
        roles=role_list,
    )
    _ledger_append(
        type="org.register",
        actor=actor,
        data={"organization": records.organization_record(org)},
    )
    if Role.REGISTRY in role_list:
        account_open(
            actor=actor,
            organization=org.pk,
            name=f"{org.name} buffer pool",
            kind=Account.Kind.BUFFER,
        )
    return org


@transaction.atomic
def account_open(
    *, actor: Actor, organization: int, name: str, kind: str = Account.Kind.HOLDING
) -> Account:
    org = _get(Organization, organization)
    if org is None or not actor.may_act_for(org.pk):
        raise NotFound(f"organization {organization} not found")
    kind = validation.choice(kind, "kind", Account.Kind.values)
    if kind == Account.Kind.BUFFER:
        validation.require(actor.is_operator, "only operators open buffer pools")
        if not org.has_role(Role.REGISTRY):
            raise Unprocessable("only registries hold a buffer pool", code=ErrorCode.BUFFER_ACCOUNT)
        if Account.objects.filter(organization=org, kind=kind).exists():
            raise Conflict("this registry already has a buffer pool", code=ErrorCode.DUPLICATE)
    account = Account.objects.create(
        organization=org, kind=kind, name=validation.text(name, "name", max_length=200)
    )
    _ledger_append(
        type="account.open",
        actor=actor,
        data={"account": records.account_record(account)},
    )
    return account
