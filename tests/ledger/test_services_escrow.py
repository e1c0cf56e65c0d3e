"""escrow_hold, escrow_release and escrow_deliver."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from ledger import services
from ledger.core.quantity import MAX_KG
from ledger.exceptions import (
    CommonCode,
    Conflict,
    ErrorCode,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from ledger.models import Batch, EscrowHold, EscrowHoldOwner, Holding
from tests import factories
from tests.factories import OPERATOR


def balance(account, batch) -> tuple[int, int]:
    """(tradable, escrowed)"""
    h = Holding.objects.filter(account=account, batch=batch).first()
    return (h.tradable, h.escrowed) if h else (0, 0)


def remaining(hold) -> int:
    return EscrowHold.objects.get(pk=hold.pk).remaining


@pytest.fixture
def batch(world):
    """800 t tradable in the developer's account."""
    return world.issue(1_000_000)


@pytest.fixture
def hold(world, batch):
    """300 t of the developer's credits in escrow."""
    return services.escrow_hold(
        actor=world.dev,
        batch=batch.pk,
        account=world.dev_account.pk,
        quantity=300_000,
        reference="auction 7 lot 1",
    )


def escrow(world, issued, /, **overrides: Any):
    fields: dict[str, Any] = dict(
        actor=world.dev,
        batch=issued.pk,
        account=world.dev_account.pk,
        quantity=300_000,
        reference="auction 7 lot 1",
    )
    fields.update(overrides)
    return services.escrow_hold(**fields)


# ---- escrow_hold ------------------------------------------------------------------------------


def test_it_sets_credits_aside_in_one_ledger_entry(world, batch, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        h = escrow(world, batch, quantity=300_000, reference="  auction 7 lot 1 ")

    h.refresh_from_db()
    assert (h.account_id, h.batch_id, h.quantity, h.remaining, h.reference) == (
        world.dev_account.pk,
        batch.pk,
        300_000,
        300_000,
        "auction 7 lot 1",
    )
    assert balance(world.dev_account, batch) == (500_000, 300_000)
    b = Batch.objects.get(pk=batch.pk)
    assert (b.issued, b.retired, b.cancelled) == (1_000_000, 0, 0)
    assert new.entry.type == "escrow.hold"
    assert new.entry.data == {
        "hold": {
            "id": h.pk,
            "account": world.dev_account.pk,
            "batch": batch.pk,
            "quantity": 300_000,
            "reference": "auction 7 lot 1",
        }
    }
    verify_ledger()


def test_it_can_escrow_the_whole_tradable_balance(world, batch, verify_ledger):
    escrow(world, batch, quantity=800_000)

    assert balance(world.dev_account, batch) == (0, 800_000)
    verify_ledger()


def test_it_refuses_to_escrow_more_than_the_tradable_balance(world, batch, hold, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE) as err:
        escrow(world, batch, quantity=500_001)
    assert err.value.detail == {"tradable": 500_000, "requested": 500_001}


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "10", True, None, MAX_KG + 1], ids=repr)
def test_it_rejects_an_escrow_quantity_that_is_not_a_positive_integer_in_range(
    world, batch, refused, quantity
):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY):
        escrow(world, batch, quantity=quantity)


@pytest.mark.parametrize("reference", ["", "   ", "r" * 201, None])
def test_it_requires_a_reference_for_an_escrow_hold(world, batch, refused, reference):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        escrow(world, batch, reference=reference)
    assert set(err.value.detail) == {"reference"}


def test_it_reports_escrow_from_another_organizations_account_like_a_missing_one(
    world, batch, refused
):
    with refused(NotFound, CommonCode.NOT_FOUND) as foreign:
        escrow(world, batch, actor=world.buy)
    with refused(NotFound, CommonCode.NOT_FOUND) as missing:
        escrow(world, batch, actor=world.buy, account=999_999)

    assert foreign.value.detail == missing.value.detail == {"account": "not_found"}
    assert foreign.value.message.replace(str(world.dev_account.pk), "#") == (
        missing.value.message.replace("999999", "#")
    )


def test_it_rejects_an_escrow_of_an_unknown_batch(world, batch, refused):
    with refused(NotFound, CommonCode.NOT_FOUND) as err:
        escrow(world, batch, batch=999_999)
    assert err.value.detail == {"batch": "not_found"}


def test_a_buffer_pool_cannot_escrow_credits(world, batch, refused):
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):
        escrow(world, batch, actor=OPERATOR, account=world.buffer.pk, quantity=1)


def test_it_refuses_to_escrow_credits_after_the_whole_balance_was_retired(world, batch, refused):
    services.credit_retire(
        actor=world.dev,
        batch=batch.pk,
        account=world.dev_account.pk,
        quantity=800_000,
        beneficiary="B",
        purpose="P",
        jurisdiction="CN-ZJ",
    )

    with refused(Conflict, ErrorCode.CREDITS_RETIRED):
        escrow(world, batch, quantity=1)


# ---- escrow_release ---------------------------------------------------------------------------


def test_it_releases_part_of_a_hold_in_one_ledger_entry(
    world, batch, hold, one_new_entry, verify_ledger
):
    with one_new_entry() as new:
        entry = services.escrow_release(actor=world.dev, hold=hold.pk, quantity=100_000)

    assert remaining(hold) == 200_000
    assert EscrowHold.objects.get(pk=hold.pk).quantity == 300_000
    assert balance(world.dev_account, batch) == (600_000, 200_000)
    assert entry.seq == new.entry.seq
    assert new.entry.type == "escrow.release"
    assert new.entry.data == {"hold": hold.pk, "quantity": 100_000}
    verify_ledger()


def test_it_releases_the_rest_of_a_hold(world, batch, hold, verify_ledger):
    services.escrow_release(actor=world.dev, hold=hold.pk, quantity=100_000)
    services.escrow_release(actor=OPERATOR, hold=hold.pk, quantity=200_000)

    assert remaining(hold) == 0
    assert balance(world.dev_account, batch) == (800_000, 0)
    verify_ledger()


def test_it_refuses_to_release_more_than_remains_in_a_hold(world, batch, hold, refused):
    services.escrow_release(actor=world.dev, hold=hold.pk, quantity=100_000)

    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE) as err:
        services.escrow_release(actor=world.dev, hold=hold.pk, quantity=200_001)
    assert err.value.detail == {"remaining": 200_000, "requested": 200_001}


def test_it_refuses_to_release_anything_from_an_emptied_hold(world, batch, hold, refused):
    services.escrow_release(actor=world.dev, hold=hold.pk, quantity=300_000)

    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE):
        services.escrow_release(actor=world.dev, hold=hold.pk, quantity=1)


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "10", True, MAX_KG + 1], ids=repr)
def test_it_rejects_a_release_quantity_that_is_not_a_positive_integer_in_range(
    world, batch, hold, refused, quantity
):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY):
        services.escrow_release(actor=world.dev, hold=hold.pk, quantity=quantity)


def test_it_reports_another_organizations_hold_exactly_like_a_missing_one(
    world, batch, hold, refused
):
    with refused(NotFound, CommonCode.NOT_FOUND) as foreign:
        services.escrow_release(actor=world.buy, hold=hold.pk, quantity=1)
    with refused(NotFound, CommonCode.NOT_FOUND) as missing:
        services.escrow_release(actor=world.buy, hold=999_999, quantity=1)

    assert foreign.value.detail == missing.value.detail
    assert foreign.value.message.replace(str(hold.pk), "#") == (
        missing.value.message.replace("999999", "#")
    )


def test_it_reports_a_non_integer_hold_id_as_not_found(world, batch, hold, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.escrow_release(actor=world.dev, hold="lot-1", quantity=1)


# ---- escrow_deliver ---------------------------------------------------------------------------


def test_the_operator_delivers_escrowed_credits_in_one_ledger_entry(
    world, batch, hold, one_new_entry, verify_ledger
):
    with one_new_entry() as new:
        entry = services.escrow_deliver(
            actor=OPERATOR, hold=hold.pk, recipient=world.buyer_account.pk, quantity=250_000
        )

    assert remaining(hold) == 50_000
    assert balance(world.dev_account, batch) == (500_000, 50_000)
    assert balance(world.buyer_account, batch) == (250_000, 0)
    assert entry.seq == new.entry.seq
    assert new.entry.type == "escrow.deliver"
    assert new.entry.data == {"hold": hold.pk, "to": world.buyer_account.pk, "quantity": 250_000}
    verify_ledger()


def test_delivered_credits_are_tradable_by_the_recipient(world, batch, hold, verify_ledger):
    services.escrow_deliver(
        actor=OPERATOR, hold=hold.pk, recipient=world.buyer_account.pk, quantity=300_000
    )

    services.credit_transfer(
        actor=world.buy,
        batch=batch.pk,
        sender=world.buyer_account.pk,
        recipient=world.dev_account.pk,
        quantity=300_000,
    )

    assert balance(world.dev_account, batch) == (800_000, 0)
    verify_ledger()


@pytest.mark.parametrize("who", ["holder", "recipient", "registry"])
def test_only_the_operator_delivers_escrowed_credits(world, batch, hold, refused, who):
    actor = {
        "holder": world.dev,
        "recipient": world.buy,
        "registry": factories.actor_for(world.registry),
    }[who]

    with refused(PermissionDenied, CommonCode.PERMISSION_DENIED):
        services.escrow_deliver(
            actor=actor, hold=hold.pk, recipient=world.buyer_account.pk, quantity=1
        )


def test_it_refuses_to_deliver_more_than_remains_in_a_hold(world, batch, hold, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE) as err:
        services.escrow_deliver(
            actor=OPERATOR, hold=hold.pk, recipient=world.buyer_account.pk, quantity=300_001
        )
    assert err.value.detail == {"remaining": 300_000, "requested": 300_001}


def test_it_refuses_to_deliver_into_a_buffer_pool(world, batch, hold, refused):
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):
        services.escrow_deliver(actor=OPERATOR, hold=hold.pk, recipient=world.buffer.pk, quantity=1)


def test_it_rejects_a_delivery_to_an_unknown_account(world, batch, hold, refused):
    with refused(NotFound, CommonCode.NOT_FOUND) as err:
        services.escrow_deliver(actor=OPERATOR, hold=hold.pk, recipient=999_999, quantity=1)
    assert err.value.detail == {"recipient": "not_found"}


def test_it_rejects_a_delivery_from_an_unknown_hold(world, batch, hold, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.escrow_deliver(
            actor=OPERATOR, hold=999_999, recipient=world.buyer_account.pk, quantity=1
        )


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "10", True, MAX_KG + 1], ids=repr)
def test_it_rejects_a_delivery_quantity_that_is_not_a_positive_integer_in_range(
    world, batch, hold, refused, quantity
):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY):
        services.escrow_deliver(
            actor=OPERATOR, hold=hold.pk, recipient=world.buyer_account.pk, quantity=quantity
        )


# ---- who moves a hold: the owner column -------------------------------------------------------


def owned_hold(world, batch, reference: str) -> EscrowHold:
    """A hold as an auction's or a listing's services make one. (Without the auction or the
    listing itself, so the ledger would not verify: the replay of auctions and listings takes
    every ``auction:`` and ``listing:`` hold for one of theirs. tests/auctions and
    tests/listings verify real ones.)"""
    return services.escrow_hold(
        actor=world.dev,
        batch=batch.pk,
        account=world.dev_account.pk,
        quantity=1_000,
        reference=reference,
        managed=True,
    )


def set_owner(hold: EscrowHold, owner: str) -> None:
    """An insider's UPDATE, past the services."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_escrowhold SET owner = %s WHERE id = %s", [owner, hold.pk])


@pytest.mark.parametrize(
    ("reference", "owner"),
    [
        ("auction:7", "auction"),
        ("listing:7", "listing"),
        ("auction 7 lot 1", ""),
        # Case counts, as in str.startswith, on SQLite too (whose LIKE ignores it).
        ("Auction:7", ""),
        ("LISTING:7", ""),
    ],
)
def test_a_holds_owner_is_the_one_its_reference_names(
    world, batch, one_new_entry, reference, owner
):
    with one_new_entry() as new:
        h = owned_hold(world, batch, reference)

    assert EscrowHold.objects.get(pk=h.pk).owner == owner
    # The column is not in the entry: its bytes are as before the column existed.
    assert new.entry.data == {
        "hold": {
            "id": h.pk,
            "account": world.dev_account.pk,
            "batch": batch.pk,
            "quantity": 1_000,
            "reference": reference,
        }
    }


def test_a_hold_with_another_case_of_a_managed_prefix_is_the_holders_own(
    world, batch, verify_ledger
):
    h = escrow(world, batch, reference="Auction:7")

    services.escrow_release(actor=world.dev, hold=h.pk, quantity=300_000)

    assert remaining(h) == 0
    verify_ledger()


@pytest.mark.parametrize(
    ("reference", "owner"),
    [
        ("auction:7", ""),
        ("auction:7", "listing"),
        ("listing:7", ""),
        ("listing:7", "auction"),
        ("auction 7 lot 1", "auction"),
        ("Auction:7", "auction"),
        ("auction 7 lot 1", "seller"),
    ],
)
def test_the_database_refuses_an_owner_its_reference_does_not_give(world, batch, reference, owner):
    h = owned_hold(world, batch, reference)

    with pytest.raises(IntegrityError), transaction.atomic():
        set_owner(h, owner)

    assert EscrowHold.objects.get(pk=h.pk).owner == EscrowHoldOwner.of(reference)


def test_the_database_refuses_a_reference_changed_away_from_its_owner(world, batch):
    h = owned_hold(world, batch, "auction:7")

    with pytest.raises(IntegrityError), transaction.atomic():
        EscrowHold.objects.filter(pk=h.pk).update(reference="auction 7")


def test_the_holder_cannot_release_a_hold_an_auction_owns(world, batch):
    h = owned_hold(world, batch, "auction:7")

    with pytest.raises(Conflict) as err:
        services.escrow_release(actor=world.dev, hold=h.pk, quantity=1)
    assert err.value.code == ErrorCode.MANAGED_HOLD
    assert err.value.message == (
        "escrow hold 'auction:7' belongs to an auction and moves only through it"
    )
    assert err.value.detail == {"reference": "managed"}
    assert remaining(h) == 1_000


def test_no_one_makes_a_hold_under_a_managed_reference_without_its_service(world, batch, refused):
    with refused(Conflict, ErrorCode.MANAGED_HOLD) as err:
        escrow(world, batch, reference="listing:7")
    assert (
        err.value.message
        == "escrow hold 'listing:7' belongs to a listing and moves only through it"
    )


def test_the_escrow_services_read_the_owner_from_the_row(
    world, batch, hold, escrow_owner_check_dropped
):
    """Not from the reference: a hold an insider gave to an auction stays put for its holder
    (and the verifier names the row, below)."""
    set_owner(hold, "auction")

    with pytest.raises(Conflict) as err:
        services.escrow_release(actor=world.dev, hold=hold.pk, quantity=1)
    assert err.value.code == ErrorCode.MANAGED_HOLD
    assert remaining(hold) == 300_000


def test_an_owner_changed_in_the_table_fails_verification(
    world, batch, hold, verify_ledger, escrow_owner_check_dropped
):
    set_owner(hold, "listing")

    with pytest.raises(AssertionError) as failed:
        verify_ledger()
    assert f"escrow hold {hold.pk} differs from the ledger" in str(failed.value)
    assert "owner" in str(failed.value)
