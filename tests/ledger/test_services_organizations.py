"""organization_register and account_open."""

from __future__ import annotations

import pytest

from ledger import services
from ledger.actors import Actor
from ledger.exceptions import (
    CommonCode,
    Conflict,
    ErrorCode,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from ledger.models import Account, LedgerEntry, Organization, Role
from tests import factories
from tests.factories import OPERATOR

from .conftest import entries_since

# ---- organization_register ------------------------------------------------------------------


def test_it_registers_an_organization_and_records_it_in_one_ledger_entry(db, one_new_entry):
    with one_new_entry() as new:
        org = services.organization_register(
            actor=OPERATOR, handle="tidal-fund", name="Tidal Fund", roles=["bidder"]
        )

    org.refresh_from_db()
    assert (org.handle, org.name, org.roles) == ("tidal-fund", "Tidal Fund", ["bidder"])
    assert not Account.objects.filter(organization=org).exists()
    assert new.entry.type == "org.register"
    assert new.entry.actor == "system:tests"
    assert new.entry.data == {
        "organization": {
            "id": org.pk,
            "handle": "tidal-fund",
            "name": "Tidal Fund",
            "roles": ["bidder"],
        }
    }


def test_it_stores_roles_sorted_and_without_duplicates(db, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        org = services.organization_register(
            actor=OPERATOR,
            handle="coastal",
            name="Coastal",
            roles=["developer", "bidder", "developer", "auditor"],
        )

    org.refresh_from_db()
    assert org.roles == ["auditor", "bidder", "developer"]
    assert new.entry.data["organization"]["roles"] == ["auditor", "bidder", "developer"]
    verify_ledger()


def test_it_strips_whitespace_around_the_handle_and_name(db):
    org = services.organization_register(
        actor=OPERATOR, handle="  blue-bay ", name="  Blue Bay  ", roles=["bidder"]
    )

    org.refresh_from_db()
    assert (org.handle, org.name) == ("blue-bay", "Blue Bay")


def test_registering_a_registry_also_opens_its_buffer_pool_in_a_second_entry(db, verify_ledger):
    before = LedgerEntry.objects.count()

    org = services.organization_register(
        actor=OPERATOR, handle="reg", name="Ocean Registry", roles=["registry"]
    )

    new = entries_since(before)
    assert [e.type for e in new] == ["org.register", "account.open"]
    buffer = Account.objects.get(organization=org)
    assert (buffer.kind, buffer.name) == ("buffer", "Ocean Registry buffer pool")
    assert new[1].data == {
        "account": {
            "id": buffer.pk,
            "organization": org.pk,
            "kind": "buffer",
            "name": "Ocean Registry buffer pool",
        }
    }
    verify_ledger()


@pytest.mark.parametrize("who", ["developer", "registry_member"])
def test_a_non_operator_cannot_register_an_organization(world, refused, who):
    # Even an actor of the registry's organization (which holds the operator role) is not an
    # operator unless the Actor says so.
    actor = world.dev if who == "developer" else factories.actor_for(world.registry)

    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        services.organization_register(actor=actor, handle="rogue", name="Rogue", roles=["bidder"])
    assert not Organization.objects.filter(handle="rogue").exists()


@pytest.mark.parametrize(
    "handle",
    ["Upper", "-leading-dash", "has space", "", "   ", "x" * 65, "émigré", 7],
)
def test_it_rejects_a_malformed_handle(world, refused, handle):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.organization_register(actor=OPERATOR, handle=handle, name="X", roles=["bidder"])
    assert set(err.value.detail) == {"handle"}


def test_it_rejects_an_unknown_role(world, refused):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.organization_register(
            actor=OPERATOR, handle="newco", name="NewCo", roles=["bidder", "king"]
        )
    assert err.value.detail == {"roles": "invalid_choice"}


def test_it_rejects_a_duplicate_handle(world, refused):
    with refused(Conflict, ErrorCode.DUPLICATE):
        services.organization_register(
            actor=OPERATOR, handle=world.buyer.handle, name="Another", roles=["bidder"]
        )


@pytest.mark.parametrize("name", ["", "  ", "n" * 201, None])
def test_it_rejects_a_missing_or_overlong_name(world, refused, name):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.organization_register(actor=OPERATOR, handle="newco", name=name, roles=["bidder"])
    assert set(err.value.detail) == {"name"}


# ---- account_open ---------------------------------------------------------------------------


def test_it_opens_a_holding_account_in_one_ledger_entry(world, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        acc = services.account_open(actor=OPERATOR, organization=world.buyer.pk, name="Reserve")

    acc.refresh_from_db()
    assert (acc.organization_id, acc.kind, acc.name) == (world.buyer.pk, "holding", "Reserve")
    assert new.entry.type == "account.open"
    assert new.entry.data == {
        "account": {
            "id": acc.pk,
            "organization": world.buyer.pk,
            "kind": "holding",
            "name": "Reserve",
        }
    }
    verify_ledger()


def test_an_organization_may_open_accounts_for_itself(world, one_new_entry):
    with one_new_entry() as new:
        acc = services.account_open(actor=world.buy, organization=world.buyer.pk, name="Second")

    assert Account.objects.filter(organization=world.buyer).count() == 2
    assert new.entry.actor == world.buy.label
    assert new.entry.data["account"]["id"] == acc.pk


def test_it_reports_another_organizations_account_opening_exactly_like_a_missing_one(
    world, refused
):
    with refused(NotFound, CommonCode.NOT_FOUND) as foreign:
        services.account_open(actor=world.buy, organization=world.developer.pk, name="Sneaky")
    with refused(NotFound, CommonCode.NOT_FOUND) as missing:
        services.account_open(actor=world.buy, organization=999_999, name="Sneaky")

    def shape(err, org_id):
        d = err.value.as_dict()
        return {**d, "message": d["message"].replace(str(org_id), "<id>")}

    assert shape(foreign, world.developer.pk) == shape(missing, 999_999)


def test_it_rejects_opening_an_account_for_an_unknown_organization(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.account_open(actor=OPERATOR, organization=999_999, name="Ghost")


def test_it_reports_a_non_integer_organization_id_as_not_found(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.account_open(actor=OPERATOR, organization="abc", name="Ghost")


def test_it_rejects_an_unknown_account_kind(world, refused):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.account_open(actor=OPERATOR, organization=world.buyer.pk, name="X", kind="savings")
    assert err.value.detail == {"kind": "invalid_choice"}


@pytest.mark.parametrize("name", ["", "   ", "a" * 201])
def test_it_rejects_an_account_without_a_proper_name(world, refused, name):
    with refused(InvalidInput, CommonCode.INVALID_FIELD):
        services.account_open(actor=OPERATOR, organization=world.buyer.pk, name=name)


def test_only_an_operator_opens_a_buffer_pool(db, refused):
    registry = services.organization_register(
        actor=OPERATOR, handle="reg-a", name="Registry A", roles=[Role.REGISTRY]
    )
    own = Actor("org:reg-a", registry.pk)

    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        services.account_open(
            actor=own, organization=registry.pk, name="Second pool", kind=Account.Kind.BUFFER
        )


def test_it_refuses_a_buffer_pool_for_an_organization_that_is_not_a_registry(world, refused):
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):
        services.account_open(
            actor=OPERATOR, organization=world.developer.pk, name="Pool", kind="buffer"
        )


def test_it_refuses_a_second_buffer_pool_for_a_registry(world, refused):
    assert Account.objects.filter(organization=world.registry, kind="buffer").count() == 1

    with refused(Conflict, ErrorCode.DUPLICATE):
        services.account_open(
            actor=OPERATOR, organization=world.registry.pk, name="Pool 2", kind="buffer"
        )
    assert Account.objects.filter(organization=world.registry, kind="buffer").count() == 1
