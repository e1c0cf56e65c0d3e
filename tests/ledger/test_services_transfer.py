"""credit_transfer."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import services
from ledger.core.quantity import MAX_KG
from ledger.exceptions import (
    CommonCode,
    Conflict,
    ErrorCode,
    InvalidInput,
    NotFound,
    Unprocessable,
)
from ledger.models import Batch, Holding
from tests import factories
from tests.factories import OPERATOR


def tradable(account, batch) -> int:
    h = Holding.objects.filter(account=account, batch=batch).first()
    return h.tradable if h else 0


def totals(batch) -> tuple[int, int, int, int]:
    b = Batch.objects.get(pk=batch.pk)
    return b.issued, b.buffer_withheld, b.retired, b.cancelled


@pytest.fixture
def batch(world):
    """1,000 t issued: 800 t to the developer, 200 t to the buffer pool."""
    return world.issue(1_000_000)


def transfer(world, issued, /, **overrides: Any):
    fields: dict[str, Any] = dict(
        actor=world.dev,
        batch=issued.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=100_000,
    )
    fields.update(overrides)
    return services.credit_transfer(**fields)


# ---- the happy path ---------------------------------------------------------------------------


def test_it_moves_credits_between_accounts_in_one_ledger_entry(
    world, batch, one_new_entry, verify_ledger
):
    with one_new_entry() as new:
        entry = transfer(world, batch, quantity=123_456)

    assert tradable(world.dev_account, batch) == 800_000 - 123_456
    assert tradable(world.buyer_account, batch) == 123_456
    assert tradable(world.buffer, batch) == 200_000
    assert totals(batch) == (1_000_000, 200_000, 0, 0)
    assert entry.type == "credit.transfer"
    assert new.entry.seq == entry.seq
    assert new.entry.type == "credit.transfer"
    assert new.entry.actor == world.dev.label
    assert new.entry.data == {
        "batch": batch.pk,
        "from": world.dev_account.pk,
        "to": world.buyer_account.pk,
        "quantity": 123_456,
    }
    verify_ledger()


def test_it_can_move_the_whole_tradable_balance(world, batch, verify_ledger):
    transfer(world, batch, quantity=800_000)

    assert tradable(world.dev_account, batch) == 0
    assert tradable(world.buyer_account, batch) == 800_000
    verify_ledger()


def test_the_operator_may_move_anyones_credits(world, batch, one_new_entry):
    with one_new_entry() as new:
        transfer(world, batch, actor=OPERATOR, quantity=1)

    assert tradable(world.buyer_account, batch) == 1
    assert new.entry.actor == "system:tests"


def test_credits_can_move_on_from_the_recipient(world, batch, verify_ledger):
    third = factories.account(world.buyer, "Resale")
    transfer(world, batch, quantity=100_000)

    transfer(
        world,
        batch,
        actor=world.buy,
        sender=world.buyer_account.pk,
        recipient=third.pk,
        quantity=40_000,
    )

    assert (tradable(world.buyer_account, batch), tradable(third, batch)) == (60_000, 40_000)
    verify_ledger()


# ---- quantities -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "why"),
    [
        (0, "zero"),
        (-1, "negative"),
        (1.5, "not_an_integer"),
        (100.0, "not_an_integer"),
        ("10", "not_an_integer"),
        (True, "not_an_integer"),
        (None, "not_an_integer"),
        (MAX_KG + 1, "too_large"),
    ],
)
def test_it_rejects_a_transfer_quantity_that_is_not_a_positive_integer_in_range(
    world, batch, refused, quantity, why
):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY) as err:
        transfer(world, batch, quantity=quantity)
    assert err.value.detail == {"quantity": why}


def test_it_rejects_a_transfer_larger_than_the_tradable_balance(world, batch, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE) as err:
        transfer(world, batch, quantity=800_001)
    assert err.value.detail == {"tradable": 800_000, "requested": 800_001}
    assert tradable(world.dev_account, batch) == 800_000


def test_it_rejects_the_largest_quantity_when_the_balance_is_smaller(world, batch, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE):
        transfer(world, batch, quantity=MAX_KG)


def test_it_rejects_a_transfer_from_an_account_that_never_held_the_batch(world, batch, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE) as err:
        transfer(
            world,
            batch,
            actor=world.buy,
            sender=world.buyer_account.pk,
            recipient=world.dev_account.pk,
            quantity=1,
        )
    assert err.value.detail == {"tradable": 0, "requested": 1}


def test_escrowed_credits_are_not_tradable(world, batch, refused):
    services.escrow_hold(
        actor=world.dev,
        batch=batch.pk,
        account=world.dev_account.pk,
        quantity=700_000,
        reference="lot 1",
    )

    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE) as err:
        transfer(world, batch, quantity=100_001)
    assert err.value.detail == {"tradable": 100_000, "requested": 100_001}


# ---- accounts and batches ---------------------------------------------------------------------


def test_it_rejects_a_transfer_to_the_same_account(world, batch, refused):
    with refused(Unprocessable, ErrorCode.TRANSFER_TO_SELF):
        transfer(world, batch, recipient=world.dev_account.pk)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sender", 999_999),
        ("sender", 0),
        ("sender", -1),
        ("sender", 2**63),  # beyond BIGINT: must not reach the database
        ("sender", "1"),
        ("sender", None),
        ("recipient", 999_999),
        ("recipient", 2**64),
        ("recipient", True),
        ("batch", 999_999),
        ("batch", 2**63),
        ("batch", "1"),
        ("batch", True),
    ],
)
def test_it_rejects_a_transfer_naming_an_unknown_account_or_batch(
    world, batch, refused, field, value
):
    with refused(NotFound, CommonCode.NOT_FOUND) as err:
        transfer(world, batch, actor=OPERATOR, **{field: value})
    assert err.value.detail == {field: "not_found"}


def test_it_reports_another_organizations_account_exactly_like_a_missing_one(world, batch, refused):
    with refused(NotFound, CommonCode.NOT_FOUND) as foreign:
        transfer(world, batch, actor=world.buy)  # the buyer tries to spend the developer's
    with refused(NotFound, CommonCode.NOT_FOUND) as missing:
        transfer(world, batch, actor=world.buy, sender=999_999)

    def shape(err, account_id):
        d = err.value.as_dict()
        return {**d, "message": d["message"].replace(str(account_id), "<id>")}

    assert shape(foreign, world.dev_account.pk) == shape(missing, 999_999)
    assert foreign.value.detail == {"sender": "not_found"}
    assert tradable(world.dev_account, batch) == 800_000


def test_a_buffer_pool_cannot_send_a_transfer(world, batch, refused):
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):
        transfer(world, batch, actor=OPERATOR, sender=world.buffer.pk, quantity=1)


def test_a_buffer_pool_cannot_receive_a_transfer(world, batch, refused):
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):
        transfer(world, batch, recipient=world.buffer.pk, quantity=1)


def test_it_does_not_take_true_for_an_account_id(world, batch, refused):
    # True == 1: it used to name account 1 (on SQLite, where sequences restart with every
    # test, the registry's buffer pool).
    with refused(NotFound, CommonCode.NOT_FOUND) as err:
        transfer(world, batch, actor=OPERATOR, sender=True)
    assert err.value.detail == {"sender": "not_found"}


# ---- retired and cancelled credits ------------------------------------------------------------


def test_it_refuses_to_move_credits_after_the_whole_balance_was_retired(world, batch, refused):
    services.credit_retire(
        actor=world.dev,
        batch=batch.pk,
        account=world.dev_account.pk,
        quantity=800_000,
        beneficiary="Ningbo Bank",
        purpose="2023 offsets",
        jurisdiction="CN-ZJ",
    )

    with refused(Conflict, ErrorCode.CREDITS_RETIRED):
        transfer(world, batch, quantity=1)


def test_it_refuses_to_move_credits_after_the_whole_balance_was_cancelled(world, batch, refused):
    services.credit_cancel(
        actor=world.dev,
        batch=batch.pk,
        account=world.dev_account.pk,
        quantity=800_000,
        reason="exported to Verra",
    )

    with refused(Conflict, ErrorCode.CREDITS_RETIRED):
        transfer(world, batch, quantity=1)


def test_a_partly_retired_balance_reports_the_shortfall(world, batch, refused):
    services.credit_retire(
        actor=world.dev,
        batch=batch.pk,
        account=world.dev_account.pk,
        quantity=500_000,
        beneficiary="Ningbo Bank",
        purpose="2023 offsets",
        jurisdiction="CN-ZJ",
    )

    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE) as err:
        transfer(world, batch, quantity=300_001)
    assert err.value.detail == {"tradable": 300_000, "requested": 300_001}
