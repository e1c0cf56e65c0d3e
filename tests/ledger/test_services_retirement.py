"""credit_retire, credit_cancel and reversal_record."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db.models import Sum
from django.utils import timezone

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
from ledger.models import Batch, Cancellation, Holding, Retirement, Reversal, Role
from ledger.services import credits as credit_services
from tests import factories
from tests.factories import OPERATOR

EVIDENCE = factories.sha("storm damage survey 2024")


def tradable(account, batch) -> int:
    h = Holding.objects.filter(account=account, batch=batch).first()
    return h.tradable if h else 0


def totals(batch) -> tuple[int, int, int]:
    """(issued, retired, cancelled), and the supply invariant holds."""
    b = Batch.objects.get(pk=batch.pk)
    held = Holding.objects.filter(batch=b).aggregate(t=Sum("tradable"), e=Sum("escrowed"))
    assert b.issued == (held["t"] or 0) + (held["e"] or 0) + b.retired + b.cancelled
    return b.issued, b.retired, b.cancelled


@pytest.fixture
def batch(world):
    """800 t tradable in the developer's account, 200 t in the buffer pool."""
    return world.issue(1_000_000)


def retire(world, issued, /, **overrides: Any) -> Retirement:
    fields: dict[str, Any] = dict(
        actor=world.dev,
        batch=issued.pk,
        account=world.dev_account.pk,
        quantity=100_000,
        beneficiary="Ningbo Bank",
        purpose="2023 scope 1 offsets",
        jurisdiction="CN-ZJ",
    )
    fields.update(overrides)
    return services.credit_retire(**fields)


def cancel(world, issued, /, **overrides: Any) -> Cancellation:
    fields: dict[str, Any] = dict(
        actor=world.dev,
        batch=issued.pk,
        account=world.dev_account.pk,
        quantity=100_000,
        reason="exported to Verra",
    )
    fields.update(overrides)
    return services.credit_cancel(**fields)


BAD_QUANTITIES = [0, -1, 1.5, 100.0, "10", True, None, MAX_KG + 1]


# ---- credit_retire ----------------------------------------------------------------------------


def test_it_retires_credits_in_one_ledger_entry(world, batch, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        r = retire(world, batch, quantity=123_456, reason="  voluntary ")

    r.refresh_from_db()
    year = timezone.now().year
    assert r.certificate == f"BCR-{year}-{new.entry.seq:010d}"
    assert r.entry_seq == new.entry.seq
    assert (r.account_id, r.batch_id, r.quantity) == (world.dev_account.pk, batch.pk, 123_456)
    assert (r.beneficiary, r.purpose, r.jurisdiction, r.reason) == (
        "Ningbo Bank",
        "2023 scope 1 offsets",
        "CN-ZJ",
        "voluntary",
    )
    assert tradable(world.dev_account, batch) == 800_000 - 123_456
    assert totals(batch) == (1_000_000, 123_456, 0)
    assert new.entry.type == "credit.retire"
    assert new.entry.actor == world.dev.label
    assert new.entry.data == {
        "retirement": {
            "certificate": r.certificate,
            "account": world.dev_account.pk,
            "batch": batch.pk,
            "quantity": 123_456,
            "beneficiary": "Ningbo Bank",
            "purpose": "2023 scope 1 offsets",
            "jurisdiction": "CN-ZJ",
            "reason": "voluntary",
        }
    }
    verify_ledger()


def test_retirement_certificates_have_the_documented_format_and_are_unique(
    world, batch, verify_ledger
):
    first = retire(world, batch, quantity=1)
    services.credit_transfer(
        actor=world.dev,
        batch=batch.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=10,
    )
    second = retire(world, batch, quantity=2)
    third = retire(world, batch, actor=world.buy, account=world.buyer_account.pk, quantity=3)

    certificates = [r.certificate for r in (first, second, third)]
    assert all(re.fullmatch(r"BCR-\d{4}-\d{10}", c) for c in certificates)
    assert len(set(certificates)) == 3
    assert [int(c[-10:]) for c in certificates] == [
        first.entry_seq,
        first.entry_seq + 2,
        first.entry_seq + 3,
    ]
    assert Retirement.objects.count() == 3
    assert totals(batch) == (1_000_000, 6, 0)
    verify_ledger()


def test_it_can_retire_the_whole_tradable_balance(world, batch, verify_ledger):
    retire(world, batch, quantity=800_000)

    assert tradable(world.dev_account, batch) == 0
    assert totals(batch) == (1_000_000, 800_000, 0)
    verify_ledger()


@pytest.mark.parametrize("quantity", BAD_QUANTITIES, ids=repr)
def test_it_rejects_a_retirement_quantity_that_is_not_a_positive_integer_in_range(
    world, batch, refused, quantity
):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY):
        retire(world, batch, quantity=quantity)


def test_it_refuses_to_retire_more_than_the_tradable_balance(world, batch, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE) as err:
        retire(world, batch, quantity=800_001)
    assert err.value.detail == {"tradable": 800_000, "requested": 800_001}


def test_it_refuses_to_retire_again_after_the_whole_balance_was_retired(world, batch, refused):
    retire(world, batch, quantity=800_000)

    with refused(Conflict, ErrorCode.CREDITS_RETIRED):
        retire(world, batch, quantity=1)


def test_it_reports_retiring_from_another_organizations_account_like_a_missing_one(
    world, batch, refused
):
    with refused(NotFound, CommonCode.NOT_FOUND) as foreign:
        retire(world, batch, actor=world.buy)
    with refused(NotFound, CommonCode.NOT_FOUND) as missing:
        retire(world, batch, actor=world.buy, account=999_999)

    assert foreign.value.detail == missing.value.detail == {"account": "not_found"}
    assert foreign.value.message.replace(str(world.dev_account.pk), "#") == (
        missing.value.message.replace("999999", "#")
    )


def test_it_rejects_a_retirement_of_an_unknown_batch(world, batch, refused):
    with refused(NotFound, CommonCode.NOT_FOUND) as err:
        retire(world, batch, batch=999_999)
    assert err.value.detail == {"batch": "not_found"}


def test_buffer_pool_credits_cannot_be_retired(world, batch, refused):
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):
        retire(world, batch, actor=OPERATOR, account=world.buffer.pk, quantity=1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("beneficiary", ""),
        ("beneficiary", None),
        ("purpose", "  "),
        ("purpose", "p" * 301),
        ("jurisdiction", "ZJ"),
        ("jurisdiction", ""),
        ("reason", "r" * 2001),
    ],
)
def test_it_rejects_a_retirement_with_a_malformed_field(world, batch, refused, field, value):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        retire(world, batch, **{field: value})
    assert set(err.value.detail) == {field}


# ---- credit_cancel ----------------------------------------------------------------------------


def test_it_cancels_credits_in_one_ledger_entry(world, batch, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        c = cancel(world, batch, quantity=250_000, destination=" Verra VCS-1764 ")

    c.refresh_from_db()
    assert c.entry_seq == new.entry.seq
    assert (c.account_id, c.batch_id, c.quantity, c.reason, c.destination) == (
        world.dev_account.pk,
        batch.pk,
        250_000,
        "exported to Verra",
        "Verra VCS-1764",
    )
    assert tradable(world.dev_account, batch) == 550_000
    assert totals(batch) == (1_000_000, 0, 250_000)
    assert new.entry.type == "credit.cancel"
    assert new.entry.data == {
        "cancellation": {
            "account": world.dev_account.pk,
            "batch": batch.pk,
            "quantity": 250_000,
            "reason": "exported to Verra",
            "destination": "Verra VCS-1764",
        }
    }
    verify_ledger()


@pytest.mark.parametrize("reason", ["", "   ", None, 42], ids=repr)
def test_it_refuses_a_cancellation_without_a_reason(world, batch, refused, reason):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        cancel(world, batch, reason=reason)
    assert err.value.detail == {"reason": "required"}


def test_it_rejects_an_overlong_cancellation_reason(world, batch, refused):
    with refused(InvalidInput, CommonCode.INVALID_FIELD):
        cancel(world, batch, reason="r" * 2001)


@pytest.mark.parametrize("quantity", BAD_QUANTITIES, ids=repr)
def test_it_rejects_a_cancellation_quantity_that_is_not_a_positive_integer_in_range(
    world, batch, refused, quantity
):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY):
        cancel(world, batch, quantity=quantity)


def test_it_refuses_to_cancel_more_than_the_tradable_balance(world, batch, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BALANCE):
        cancel(world, batch, quantity=800_001)


def test_it_refuses_to_cancel_credits_after_the_whole_balance_was_retired(world, batch, refused):
    retire(world, batch, quantity=800_000)

    with refused(Conflict, ErrorCode.CREDITS_RETIRED):
        cancel(world, batch, quantity=1)


def test_it_reports_cancelling_from_another_organizations_account_like_a_missing_one(
    world, batch, refused
):
    with refused(NotFound, CommonCode.NOT_FOUND) as foreign:
        cancel(world, batch, actor=world.buy)
    with refused(NotFound, CommonCode.NOT_FOUND) as missing:
        cancel(world, batch, actor=world.buy, account=999_999)

    assert foreign.value.detail == missing.value.detail == {"account": "not_found"}


def test_it_rejects_a_cancellation_of_an_unknown_batch(world, batch, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        cancel(world, batch, batch=999_999)


def test_buffer_pool_credits_cannot_be_cancelled_directly(world, batch, refused):
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):
        cancel(world, batch, actor=OPERATOR, account=world.buffer.pk, quantity=1)


# ---- reversal_record --------------------------------------------------------------------------


@pytest.fixture
def pool(world):
    """The registry's buffer pool holds 400 t: 200 t from another project's batch (the oldest
    batch), then 100 t each from two batches of world.project."""
    other = factories.project(world.registry, world.developer)
    older = factories.batch(other, 1_000_000, year=2019, holder=world.dev_account)
    p2020 = world.issue(500_000, year=2020)
    p2021 = world.issue(500_000, year=2021)
    assert older.pk < p2020.pk < p2021.pk
    return {"other_project": other, "other": older, "2020": p2020, "2021": p2021}


def reverse(world, project, quantity, /, **overrides: Any) -> Reversal:
    fields: dict[str, Any] = dict(
        actor=OPERATOR,
        project=project.pk,
        quantity=quantity,
        evidence_sha256=EVIDENCE,
        description="Typhoon damage to 12 ha of planted mangrove",
    )
    fields.update(overrides)
    return services.reversal_record(**fields)


def buffer_balances(world, pool) -> dict[str, int]:
    return {k: tradable(world.buffer, pool[k]) for k in ("other", "2020", "2021")}


def test_a_reversal_cancels_this_projects_buffer_credits_oldest_batch_first(
    world, pool, one_new_entry, verify_ledger
):
    with one_new_entry() as new:
        rev = reverse(world, world.project, 150_000)

    rev.refresh_from_db()
    assert (rev.project_id, rev.quantity, rev.evidence_sha256, rev.entry_seq) == (
        world.project.pk,
        150_000,
        EVIDENCE,
        new.entry.seq,
    )
    assert buffer_balances(world, pool) == {"other": 200_000, "2020": 0, "2021": 50_000}
    assert totals(pool["2020"]) == (500_000, 0, 100_000)
    assert totals(pool["2021"]) == (500_000, 0, 50_000)
    assert totals(pool["other"]) == (1_000_000, 0, 0)
    cancellations = list(Cancellation.objects.values_list("batch_id", "quantity", "entry_seq"))
    assert cancellations == [
        (pool["2020"].pk, 100_000, new.entry.seq),
        (pool["2021"].pk, 50_000, new.entry.seq),
    ]
    assert new.entry.type == "reversal.record"
    assert new.entry.data == {
        "reversal": {
            "project": world.project.pk,
            "quantity": 150_000,
            "evidence_sha256": EVIDENCE,
            "description": "Typhoon damage to 12 ha of planted mangrove",
        },
        "cancellations": [
            {
                "account": world.buffer.pk,
                "batch": pool["2020"].pk,
                "quantity": 100_000,
                "reason": "reversal",
                "destination": "",
            },
            {
                "account": world.buffer.pk,
                "batch": pool["2021"].pk,
                "quantity": 50_000,
                "reason": "reversal",
                "destination": "",
            },
        ],
    }
    verify_ledger()


def test_a_reversal_takes_from_other_projects_only_after_this_ones(
    world, pool, one_new_entry, verify_ledger
):
    with one_new_entry() as new:
        reverse(world, world.project, 250_000)

    assert buffer_balances(world, pool) == {"other": 150_000, "2020": 0, "2021": 0}
    assert [(c["batch"], c["quantity"]) for c in new.entry.data["cancellations"]] == [
        (pool["2020"].pk, 100_000),
        (pool["2021"].pk, 100_000),
        (pool["other"].pk, 50_000),
    ]
    assert totals(pool["other"]) == (1_000_000, 0, 50_000)
    verify_ledger()


def test_a_reversal_of_the_other_project_takes_its_own_credits_first(world, pool, verify_ledger):
    reverse(world, pool["other_project"], 150_000)

    assert buffer_balances(world, pool) == {"other": 50_000, "2020": 100_000, "2021": 100_000}
    verify_ledger()


def test_a_reversal_may_empty_the_whole_pool(world, pool, verify_ledger):
    reverse(world, world.project, 400_000)

    assert buffer_balances(world, pool) == {"other": 0, "2020": 0, "2021": 0}
    assert Cancellation.objects.aggregate(s=Sum("quantity"))["s"] == 400_000
    verify_ledger()


def test_a_reversal_skips_buffer_credits_already_cancelled(world, pool, verify_ledger):
    reverse(world, world.project, 100_000)

    reverse(world, world.project, 150_000)

    assert buffer_balances(world, pool) == {"other": 150_000, "2020": 0, "2021": 0}
    assert Reversal.objects.count() == 2
    verify_ledger()


def test_a_reversal_refuses_when_the_buffer_pool_is_short(world, pool, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BUFFER) as err:
        reverse(world, world.project, 400_001)
    assert err.value.detail == {"available": 400_000, "requested": 400_001}
    assert buffer_balances(world, pool) == {"other": 200_000, "2020": 100_000, "2021": 100_000}


def test_a_reversal_never_touches_another_registrys_buffer_pool(world, pool, refused):
    other_registry = factories.organization(Role.REGISTRY)
    their_project = factories.project(other_registry, world.developer)
    factories.batch(their_project, 10_000_000, holder=world.dev_account)

    with refused(Conflict, ErrorCode.INSUFFICIENT_BUFFER) as err:
        reverse(world, world.project, 400_001)
    assert err.value.detail["available"] == 400_000


def test_a_reversal_with_an_empty_buffer_pool_is_refused(world, refused):
    with refused(Conflict, ErrorCode.INSUFFICIENT_BUFFER) as err:
        reverse(world, world.project, 1)
    assert err.value.detail == {"available": 0, "requested": 1}


def test_a_registry_may_record_a_reversal_for_its_own_project(world, pool, one_new_entry):
    actor = factories.actor_for(world.registry)

    with one_new_entry() as new:
        reverse(world, world.project, 1, actor=actor)

    assert new.entry.actor == actor.label
    assert buffer_balances(world, pool)["2020"] == 99_999


def test_another_organization_cannot_record_a_reversal(world, pool, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        reverse(world, world.project, 1, actor=world.dev)


def test_it_rejects_a_reversal_for_an_unknown_project(world, pool, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        reverse(world, world.project, 1, project=999_999)


@pytest.mark.parametrize("quantity", BAD_QUANTITIES, ids=repr)
def test_it_rejects_a_reversal_quantity_that_is_not_a_positive_integer_in_range(
    world, pool, refused, quantity
):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY):
        reverse(world, world.project, quantity)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("evidence_sha256", "not a hash"),
        ("evidence_sha256", EVIDENCE.upper()),
        ("evidence_sha256", None),
        ("description", ""),
        ("description", "d" * 5001),
    ],
)
def test_it_rejects_a_reversal_with_a_malformed_field(world, pool, refused, field, value):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        reverse(world, world.project, 1, **{field: value})
    assert set(err.value.detail) == {field}


# ---- regressions: bugs found while writing these tests, since fixed ---------------------------


def test_it_reports_a_non_integer_project_id_in_a_reversal_as_not_found(world, pool, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        reverse(world, world.project, 1, project="P0001")


def test_the_certificate_year_is_the_year_of_the_retirement_entry(
    world, batch, monkeypatch, one_new_entry
):
    instants = iter(
        [dt.datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)]
        + [dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=dt.UTC)] * 10
    )

    class Clock:
        @staticmethod
        def now() -> dt.datetime:
            return next(instants)

    # One instant for the certificate and the entry (ledger/services/credits.py).
    monkeypatch.setattr(credit_services, "timezone", Clock)

    with one_new_entry() as new:
        r = retire(world, batch, quantity=1)

    assert r.certificate[4:8] == new.entry.time[:4]


def test_a_retirement_of_millions_of_tonnes_keeps_the_batch_totals_exact(world):
    """2^31 kg and more: bound as a 4-byte integer, the batch's total wrapped silently (or
    tripped its CHECK) on PostgreSQL before."""
    huge = 3_000_000_000  # 3,000,000 t
    b = world.issue(2 * huge)
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=huge,
    )
    services.credit_retire(
        actor=world.buy,
        batch=b.pk,
        account=world.buyer_account.pk,
        quantity=huge,
        beneficiary="Xiangshan County",
        purpose="offset",
        jurisdiction="CN-ZJ",
    )
    b.refresh_from_db()
    assert b.retired == huge
