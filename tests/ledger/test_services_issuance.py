"""batch_issue: supply, the buffer pool's share, monitoring periods and origin ids."""

from __future__ import annotations

import datetime as dt
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
from ledger.models import Account, Batch, Holding
from tests import factories
from tests.factories import OPERATOR


def issue_fields(world, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        project=world.project.pk,
        monitoring_start=dt.date(2021, 1, 1),
        monitoring_end=dt.date(2021, 12, 31),
        verification_body="DNV",
        verification_report_sha256=factories.sha("report 2021"),
        quantity=1_000_000,
        buffer_share_bp=2000,
        holder=world.dev_account.pk,
    )
    fields.update(overrides)
    return fields


def holdings(batch: Batch) -> dict[int, tuple[int, int]]:
    """account id -> (tradable, escrowed), leaving out empty holdings."""
    return {
        h.account_id: (h.tradable, h.escrowed)
        for h in Holding.objects.filter(batch=batch)
        if h.tradable or h.escrowed
    }


# ---- the happy path ---------------------------------------------------------------------------


def test_it_issues_a_batch_and_withholds_the_buffer_share(world, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        b = services.batch_issue(actor=OPERATOR, **issue_fields(world))

    b.refresh_from_db()
    code = world.project.code
    assert b.serial == f"BC-{code}-20210101-20211231-001"
    assert (b.issued, b.buffer_withheld, b.retired, b.cancelled) == (1_000_000, 200_000, 0, 0)
    assert (b.vintage, b.buffer_share_bp, b.origin_registry, b.origin_tx_id) == (
        2021,
        2000,
        world.registry.handle,
        None,
    )
    assert holdings(b) == {world.dev_account.pk: (800_000, 0), world.buffer.pk: (200_000, 0)}
    assert new.entry.type == "batch.issue"
    assert new.entry.actor == "system:tests"
    assert new.entry.data == {
        "batch": {
            "id": b.pk,
            "serial": b.serial,
            "project": world.project.pk,
            "monitoring_start": "2021-01-01",
            "monitoring_end": "2021-12-31",
            "vintage": 2021,
            "verification_body": "DNV",
            "verification_report_sha256": factories.sha("report 2021"),
            "buffer_share_bp": 2000,
            "origin_registry": world.registry.handle,
            "origin_tx_id": None,
            "origin_tx_key": None,
            "origin_rule": 1,
            "issued": 1_000_000,
            "buffer_withheld": 200_000,
        },
        "holder": world.dev_account.pk,
        "buffer_account": world.buffer.pk,
    }
    verify_ledger()


def test_it_issues_to_the_developers_first_holding_account_by_default(world, one_new_entry):
    factories.account(world.developer, "Second")

    with one_new_entry() as new:
        b = services.batch_issue(actor=OPERATOR, **issue_fields(world, holder=None))

    assert holdings(b)[world.dev_account.pk] == (800_000, 0)
    assert new.entry.data["holder"] == world.dev_account.pk


def test_it_issues_to_another_organizations_account_when_told_to(world, verify_ledger):
    b = services.batch_issue(actor=OPERATOR, **issue_fields(world, holder=world.buyer_account.pk))

    assert holdings(b) == {world.buyer_account.pk: (800_000, 0), world.buffer.pk: (200_000, 0)}
    verify_ledger()


def test_a_registry_may_issue_for_its_own_project(world, one_new_entry):
    actor = factories.actor_for(world.registry)

    with one_new_entry() as new:
        b = services.batch_issue(actor=actor, **issue_fields(world))

    assert b.issued == 1_000_000
    assert new.entry.actor == actor.label


def test_it_numbers_the_batches_of_a_project_in_order(world):
    first = world.issue(year=2020)
    second = world.issue(year=2021)

    assert first.serial.endswith("-20200101-20201231-001")
    assert second.serial.endswith("-20210101-20211231-002")


def test_an_explicit_vintage_wins_over_the_end_year(world):
    b = services.batch_issue(actor=OPERATOR, **issue_fields(world, vintage=2020))

    assert Batch.objects.get(pk=b.pk).vintage == 2020


def test_it_accepts_the_largest_quantity(world, verify_ledger):
    b = services.batch_issue(actor=OPERATOR, **issue_fields(world, quantity=MAX_KG))

    b.refresh_from_db()
    assert (b.issued, b.buffer_withheld) == (MAX_KG, MAX_KG // 5)
    assert holdings(b)[world.dev_account.pk] == (MAX_KG - MAX_KG // 5, 0)
    verify_ledger()


# ---- the buffer pool's share ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "share_bp", "withheld"),
    [
        (1_000_001, 2000, 200_000),  # 200,000.2 rounds down
        (10_001, 3333, 3333),  # 3,333.33 rounds down
        (999, 1, 0),  # 0.0999 rounds down to nothing
        (7, 9999, 6),  # 6.9993
        (1, 10_000, 1),
        (123_457, 0, 0),
    ],
)
def test_it_withholds_the_buffer_share_rounded_down_to_whole_kg(
    world, verify_ledger, quantity, share_bp, withheld
):
    b = services.batch_issue(
        actor=OPERATOR, **issue_fields(world, quantity=quantity, buffer_share_bp=share_bp)
    )

    b.refresh_from_db()
    assert b.buffer_withheld == withheld
    assert withheld == quantity * share_bp // 10_000
    expected = {}
    if quantity - withheld:
        expected[world.dev_account.pk] = (quantity - withheld, 0)
    if withheld:
        expected[world.buffer.pk] = (withheld, 0)
    assert holdings(b) == expected
    verify_ledger()


def test_a_zero_share_puts_nothing_in_the_buffer_pool(world):
    b = services.batch_issue(actor=OPERATOR, **issue_fields(world, buffer_share_bp=0))

    assert not Holding.objects.filter(account=world.buffer, batch=b).exists()
    assert holdings(b) == {world.dev_account.pk: (1_000_000, 0)}


def test_a_full_share_puts_everything_in_the_buffer_pool(world, verify_ledger):
    b = services.batch_issue(actor=OPERATOR, **issue_fields(world, buffer_share_bp=10_000))

    assert Batch.objects.get(pk=b.pk).buffer_withheld == 1_000_000
    assert holdings(b) == {world.buffer.pk: (1_000_000, 0)}
    verify_ledger()


@pytest.mark.parametrize("share", [-1, 10_001, 20_000, "20", 20.0, True, None])
def test_it_rejects_a_buffer_share_outside_0_to_100_percent(world, refused, share):
    with refused(InvalidInput, ErrorCode.INVALID_SHARE):
        services.batch_issue(actor=OPERATOR, **issue_fields(world, buffer_share_bp=share))


# ---- quantities -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "why"),
    [
        (0, "zero"),
        (-1, "negative"),
        (-1_000_000, "negative"),
        (1.5, "not_an_integer"),
        (1000.0, "not_an_integer"),
        ("10", "not_an_integer"),
        (True, "not_an_integer"),
        (None, "not_an_integer"),
        (MAX_KG + 1, "too_large"),
        (2**63, "too_large"),
    ],
)
def test_it_rejects_an_issuance_quantity_that_is_not_a_positive_integer_in_range(
    world, refused, quantity, why
):
    with refused(InvalidInput, ErrorCode.INVALID_QUANTITY) as err:
        services.batch_issue(actor=OPERATOR, **issue_fields(world, quantity=quantity))
    assert err.value.detail == {"quantity": why}


# ---- monitoring periods -----------------------------------------------------------------------


def test_it_rejects_a_monitoring_period_that_ends_before_it_starts(world, refused):
    with refused(InvalidInput, ErrorCode.INVALID_PERIOD) as err:
        services.batch_issue(
            actor=OPERATOR,
            **issue_fields(
                world, monitoring_start=dt.date(2021, 6, 1), monitoring_end=dt.date(2021, 5, 31)
            ),
        )
    assert err.value.detail == {"monitoring_end": "before_start"}


@pytest.mark.parametrize("field", ["monitoring_start", "monitoring_end"])
@pytest.mark.parametrize("value", ["2021-01-01", None])
def test_it_rejects_a_monitoring_period_without_dates(world, refused, field, value):
    with refused(InvalidInput, ErrorCode.INVALID_PERIOD):
        services.batch_issue(actor=OPERATOR, **issue_fields(world, **{field: value}))


def test_a_one_day_monitoring_period_is_fine(world):
    day = dt.date(2021, 3, 3)

    b = services.batch_issue(
        actor=OPERATOR, **issue_fields(world, monitoring_start=day, monitoring_end=day)
    )

    assert (b.monitoring_start, b.monitoring_end) == (day, day)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (dt.date(2021, 1, 1), dt.date(2021, 12, 31)),  # the same period
        (dt.date(2021, 6, 1), dt.date(2022, 5, 31)),  # overlaps the end
        (dt.date(2020, 6, 1), dt.date(2021, 1, 1)),  # shares the first day
        (dt.date(2021, 12, 31), dt.date(2022, 12, 31)),  # shares the last day
        (dt.date(2021, 3, 1), dt.date(2021, 3, 31)),  # inside
        (dt.date(2020, 1, 1), dt.date(2022, 12, 31)),  # around
    ],
)
def test_it_rejects_a_monitoring_period_overlapping_one_already_issued(world, refused, start, end):
    first = world.issue(year=2021)

    with refused(Conflict, ErrorCode.OVERLAPPING_PERIOD) as err:
        services.batch_issue(
            actor=OPERATOR,
            **issue_fields(
                world,
                monitoring_start=start,
                monitoring_end=end,
                verification_report_sha256=factories.sha("another report"),
            ),
        )
    assert err.value.detail == {"overlaps": first.serial}


def test_adjacent_monitoring_periods_are_fine(world, verify_ledger):
    world.issue(year=2021)

    before = services.batch_issue(
        actor=OPERATOR,
        **issue_fields(
            world, monitoring_start=dt.date(2020, 1, 1), monitoring_end=dt.date(2020, 12, 31)
        ),
    )
    after = services.batch_issue(
        actor=OPERATOR,
        **issue_fields(
            world, monitoring_start=dt.date(2022, 1, 1), monitoring_end=dt.date(2022, 12, 31)
        ),
    )

    assert Batch.objects.filter(project=world.project).count() == 3
    assert (before.vintage, after.vintage) == (2020, 2022)
    verify_ledger()


def test_the_same_monitoring_period_on_another_project_is_fine(world, verify_ledger):
    world.issue(year=2021)
    other = factories.project(world.registry, world.developer)

    b = services.batch_issue(actor=OPERATOR, **issue_fields(world, project=other.pk))

    assert b.project_id == other.pk
    assert Batch.objects.filter(monitoring_start=dt.date(2021, 1, 1)).count() == 2
    verify_ledger()


# ---- origin ids -------------------------------------------------------------------------------


def test_it_rejects_an_origin_transaction_issued_before(world, refused):
    world.issue(year=2020, origin_registry="verra", origin_tx_id="TX-1")

    with refused(Conflict, ErrorCode.DUPLICATE_ORIGIN) as err:
        services.batch_issue(
            actor=OPERATOR, **issue_fields(world, origin_registry="verra", origin_tx_id="TX-1")
        )
    assert err.value.detail == {"origin_tx_id": "duplicate"}


def test_it_rejects_an_origin_transaction_issued_before_on_another_project(world, refused):
    # The origin registry defaults to the project's; both projects come from the same one.
    world.issue(year=2020, origin_tx_id="TX-1")
    other = factories.project(world.registry, world.developer)

    with refused(Conflict, ErrorCode.DUPLICATE_ORIGIN):
        services.batch_issue(
            actor=OPERATOR,
            **issue_fields(world, project=other.pk, origin_tx_id=" TX-1 "),
        )


def test_the_same_origin_transaction_id_from_another_origin_registry_is_fine(world):
    world.issue(year=2020, origin_registry="verra", origin_tx_id="TX-1")

    b = services.batch_issue(
        actor=OPERATOR, **issue_fields(world, origin_registry="gold-standard", origin_tx_id="TX-1")
    )

    assert (b.origin_registry, b.origin_tx_id) == ("gold-standard", "TX-1")
    assert Batch.objects.filter(origin_tx_id="TX-1").count() == 2


def test_batches_without_an_origin_transaction_do_not_collide(world):
    world.issue(year=2020)
    world.issue(year=2021)

    assert list(Batch.objects.values_list("origin_tx_id", flat=True)) == [None, None]


# ---- projects and accounts --------------------------------------------------------------------


def test_it_rejects_an_issuance_for_an_unknown_project(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND) as err:
        services.batch_issue(actor=OPERATOR, **issue_fields(world, project=999_999))
    assert err.value.detail == {"project": "not_found"}


def test_it_reports_another_registrys_project_as_not_found(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND) as err:
        services.batch_issue(actor=world.dev, **issue_fields(world))
    assert err.value.detail == {"project": "not_found"}


def test_it_reports_a_non_integer_project_id_as_not_found(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND):
        services.batch_issue(actor=OPERATOR, **issue_fields(world, project="P0001"))


@pytest.mark.parametrize("status", ["suspended", "closed"])
def test_it_refuses_to_issue_for_a_project_that_is_not_active(world, refused, status):
    services.project_update(actor=OPERATOR, project=world.project.pk, status=status)

    with refused(Conflict, ErrorCode.PROJECT_NOT_ACTIVE):
        services.batch_issue(actor=OPERATOR, **issue_fields(world))


def test_it_rejects_an_unknown_holder(world, refused):
    with refused(NotFound, CommonCode.NOT_FOUND) as err:
        services.batch_issue(actor=OPERATOR, **issue_fields(world, holder=999_999))
    assert err.value.detail == {"holder": "not_found"}


def test_it_refuses_to_issue_into_a_buffer_pool(world, refused):
    with refused(Unprocessable, ErrorCode.BUFFER_ACCOUNT):
        services.batch_issue(actor=OPERATOR, **issue_fields(world, holder=world.buffer.pk))


def test_it_refuses_to_issue_when_the_developer_has_no_holding_account(world, refused):
    developer = factories.organization("developer")
    p = factories.project(world.registry, developer)
    assert not Account.objects.filter(organization=developer).exists()

    with refused(Unprocessable, CommonCode.INVALID_FIELD) as err:
        services.batch_issue(actor=OPERATOR, **issue_fields(world, project=p.pk, holder=None))
    assert err.value.detail == {"holder": "missing"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("verification_report_sha256", "F" * 64),
        ("verification_report_sha256", "abc"),
        ("verification_body", ""),
        ("vintage", 1989),
        ("vintage", "2021"),
        ("origin_tx_id", ""),
    ],
)
def test_it_rejects_an_issuance_with_a_malformed_field(world, refused, field, value):
    with refused(InvalidInput, CommonCode.INVALID_FIELD):
        services.batch_issue(actor=OPERATOR, **issue_fields(world, **{field: value}))


# ---- regressions: bugs found while writing these tests, since fixed ---------------------------


def test_it_rejects_datetime_monitoring_bounds(world, refused):
    # A datetime is a date, but its isoformat is not: accepted, it made the entry say
    # "2021-01-01T00:00:00" while the table said 2021-01-01, and ledger_verify failed.
    with refused(InvalidInput, ErrorCode.INVALID_PERIOD):
        services.batch_issue(
            actor=OPERATOR,
            **issue_fields(
                world,
                monitoring_start=dt.datetime(2021, 1, 1),
                monitoring_end=dt.datetime(2021, 12, 31),
            ),
        )


def test_it_rejects_monitoring_bounds_mixing_a_date_and_a_datetime(world, refused):
    with refused(InvalidInput, ErrorCode.INVALID_PERIOD):
        services.batch_issue(
            actor=OPERATOR,
            **issue_fields(world, monitoring_end=dt.datetime(2021, 12, 31)),
        )


def test_it_rejects_an_origin_registry_that_is_not_text(world, refused):
    # Accepted, 5 went into the entry and "5" into the table, and ledger_verify failed.
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.batch_issue(actor=OPERATOR, **issue_fields(world, origin_registry=5))
    assert err.value.detail == {"origin_registry": "not_text"}


def test_it_rejects_an_overlong_origin_registry(world, refused):
    # SQLite stored it; PostgreSQL raised DataError.
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.batch_issue(actor=OPERATOR, **issue_fields(world, origin_registry="r" * 65))
    assert err.value.detail == {"origin_registry": "too_long"}


def test_it_strips_whitespace_around_the_origin_registry(world, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        b = services.batch_issue(
            actor=OPERATOR, **issue_fields(world, origin_registry=" verra ", origin_tx_id="T1")
        )

    assert Batch.objects.get(pk=b.pk).origin_registry == "verra"
    assert new.entry.data["batch"]["origin_registry"] == "verra"
    verify_ledger()
