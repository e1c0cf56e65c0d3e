"""credit_transfer_many: a set of transfers in one call, exactly as credit_transfer once for each
(the same refusal, or the same entries and balances), or nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import services
from ledger.core.entry import decode_entry
from ledger.core.quantity import MAX_KG
from ledger.exceptions import CommonCode, Conflict, DomainError, ErrorCode, NotFound
from ledger.models import Holding, LedgerEntry
from tests import factories
from tests.factories import OPERATOR


class _Done(Exception):
    pass


def _outcome(apply: Any) -> tuple[Any, ...]:
    """What ``apply`` did, in a savepoint rolled back afterwards: its refusal, or its entries
    (without their times, which differ between calls) and every balance."""
    start = LedgerEntry.objects.count()
    try:
        with transaction.atomic():
            apply()
            entries = [
                (e.seq, e.type, decode_entry(bytes(e.body)).data, decode_entry(bytes(e.body)).actor)
                for e in LedgerEntry.objects.filter(seq__gte=start).order_by("seq")
            ]
            balances = sorted(
                Holding.objects.values_list("account_id", "batch_id", "tradable", "escrowed")
            )
            raise _Done(entries, balances)
    except DomainError as exc:
        assert LedgerEntry.objects.count() == start
        return ("refused", type(exc), exc.code, exc.message, exc.detail)
    except _Done as done:
        return done.args


def _one_by_one(actor: Any, transfers: list[dict[str, Any]]) -> None:
    for index, t in enumerate(transfers):
        try:
            services.credit_transfer(actor=actor, **t)
        except DomainError as exc:
            exc.detail = {**exc.detail, "index": index}
            raise


@pytest.fixture
def market(world):
    """Two batches both the developer's accounts hold (30 and 10 t), a third whose credits it
    retired, and every kind of account a transfer may wrongly name: another organization's, a
    buffer pool, none, no id."""
    b1, b2, gone = (world.issue(50_000, year=y) for y in (2020, 2021, 2022))
    services.credit_retire(
        actor=world.dev,
        batch=gone.pk,
        account=world.dev_account.pk,
        quantity=40_000,
        beneficiary="Ningbo",
        purpose="offset",
        jurisdiction="CN-ZJ",
    )
    second = factories.account(world.developer, "Second")
    for b in (b1, b2):
        services.credit_transfer(
            actor=world.dev,
            batch=b.pk,
            sender=world.dev_account.pk,
            recipient=second.pk,
            quantity=10_000,
        )
    return {
        "batches": [b1.pk, b2.pk],
        "senders": [world.dev_account.pk, second.pk],
        "recipients": [world.dev_account.pk, second.pk, world.buyer_account.pk],
        "faults": [
            ("quantity", 0),
            ("quantity", -1),
            ("quantity", "10"),
            ("quantity", MAX_KG + 1),
            ("quantity", 35_000),  # more than either account holds
            ("batch", gone.pk),  # its credits retired
            ("batch", 999_999),
            ("batch", True),
            ("sender", world.buyer_account.pk),  # another organization's (for the developer)
            ("sender", world.buffer.pk),
            ("sender", 999_999),
            ("sender", "1"),
            ("recipient", world.buffer.pk),
            ("recipient", 999_999),
            ("recipient", None),
            ("recipient", "sender"),  # the sender itself
        ],
    }


@st.composite
def _transfers(draw: Any, market: dict[str, Any]) -> dict[str, Any]:
    t = {
        "batch": draw(st.sampled_from(market["batches"])),
        "sender": draw(st.sampled_from(market["senders"])),
        "quantity": draw(st.integers(1, 8_000)),
    }
    t["recipient"] = draw(st.sampled_from([r for r in market["recipients"] if r != t["sender"]]))
    if draw(st.integers(0, 7)) == 0:  # one in eight is wrong in some way
        field, value = draw(st.sampled_from(market["faults"]))
        t[field] = t["sender"] if value == "sender" else value
    return t


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_set_of_transfers_is_what_the_single_transfers_would_have_done(world, market, data):
    transfers = data.draw(st.lists(_transfers(market), max_size=16))
    actor = data.draw(st.sampled_from([world.dev, OPERATOR]))
    many = _outcome(lambda: services.credit_transfer_many(actor=actor, transfers=transfers))
    single = _outcome(lambda: _one_by_one(actor, transfers))
    assert many == single


def test_it_returns_the_entries_sequence_numbers_one_time_for_all(world):
    b = world.issue(10_000)
    before = LedgerEntry.objects.count()
    t = {"batch": b.pk, "sender": world.dev_account.pk, "recipient": world.buyer_account.pk}
    seqs = services.credit_transfer_many(
        actor=world.dev, transfers=[{**t, "quantity": q} for q in (1, 2, 3)]
    )
    assert seqs == [before, before + 1, before + 2]
    entries = [decode_entry(bytes(e.body)) for e in LedgerEntry.objects.filter(seq__gte=before)]
    assert [e.data["quantity"] for e in entries] == [1, 2, 3]
    assert len({e.time for e in entries}) == 1


def test_it_refuses_the_first_transfer_refused_in_order_whatever_the_check(world):
    # The first fails on its balance, the second on its account: one by one, the first is
    # refused, so here too (the balance check runs after every account check of the set).
    b = world.issue(10_000)
    t = {"batch": b.pk, "sender": world.dev_account.pk, "recipient": world.buyer_account.pk}
    with pytest.raises(Conflict) as err:
        services.credit_transfer_many(
            actor=world.dev,
            transfers=[{**t, "quantity": 9_000}, {**t, "recipient": 999_999, "quantity": 1}],
        )
    assert err.value.code == ErrorCode.INSUFFICIENT_BALANCE
    assert err.value.detail == {"tradable": 8_000, "requested": 9_000, "index": 0}
    with pytest.raises(NotFound) as err:
        services.credit_transfer_many(
            actor=world.dev,
            transfers=[{**t, "quantity": 8_000}, {**t, "recipient": 999_999, "quantity": 1}],
        )
    assert err.value.code == CommonCode.NOT_FOUND
    assert err.value.detail == {"recipient": "not_found", "index": 1}
    assert LedgerEntry.objects.filter(type="credit.transfer").count() == 0


def test_credits_received_earlier_in_the_set_can_be_sent_on(world, verify_ledger):
    b = world.issue(10_000)
    third = factories.account(world.buyer, "Resale")
    services.credit_transfer_many(
        actor=OPERATOR,
        transfers=[
            {
                "batch": b.pk,
                "sender": world.dev_account.pk,
                "recipient": world.buyer_account.pk,
                "quantity": 5_000,
            },
            {
                "batch": b.pk,
                "sender": world.buyer_account.pk,
                "recipient": third.pk,
                "quantity": 4_000,
            },
        ],
    )
    held = dict(Holding.objects.filter(batch=b).values_list("account_id", "tradable"))
    assert (held[world.buyer_account.pk], held[third.pk]) == (1_000, 4_000)
    verify_ledger()


def test_an_empty_set_writes_nothing(world):
    before = LedgerEntry.objects.count()
    assert services.credit_transfer_many(actor=world.dev, transfers=[]) == []
    assert LedgerEntry.objects.count() == before
