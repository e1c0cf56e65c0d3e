"""The double-counting guard against spelling (issue 14, item 3): origin registries from a list,
origin ids and origin transaction ids compared by their keys under origin rule 1, rows from
before the rule still verifying, and ``ledger_origin_duplicates`` finding their near-twins."""

from __future__ import annotations

import datetime as dt
import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import records, services
from ledger.exceptions import CommonCode, Conflict, ErrorCode, InvalidInput
from ledger.models import Batch, Holding, Project
from ledger.services import append
from tests import factories
from tests.factories import OPERATOR

# ---- confusable spellings -------------------------------------------------------------------

# Characters of Unicode category Cf that render as nothing.
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u2061"]
# Whitespace that str.strip() and the rule trim around an id.
SPACE = [" ", "\t", "\u3000", "\u00a0", "\u2003", "\n"]


def full_width(ch: str) -> str:
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


@st.composite
def confusable(draw: st.DrawFn, text: str) -> str:
    """``text`` as someone might type or paste it: each character in either case, possibly full
    width, with invisible characters between, and whitespace around."""
    out = []
    for ch in text:
        if draw(st.booleans()):
            ch = ch.swapcase()
        if draw(st.booleans()):
            ch = full_width(ch)
        out.append(ch)
        out.extend(draw(st.lists(st.sampled_from(INVISIBLE), max_size=2)))
    pad = st.text(st.sampled_from(SPACE), max_size=3)
    return draw(pad) + "".join(out) + draw(pad)


def verra_id(number: str) -> st.SearchStrategy[str]:
    """A Verra project number written as Verra shows it (bare) or as documents do (VCS-...)."""
    written = st.sampled_from([number, f"VCS-{number}", f"VCS {number}", f"VCS{number}"])
    return written.flatmap(confusable)


FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


_n = itertools.count(1)


@contextmanager
def rolled_back() -> Iterator[None]:
    """Each hypothesis example starts from the same rows: should the guard let one through
    (as before origin keys), the example fails on its own, not through the next one."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def project_fields(world: Any, **overrides: Any) -> dict[str, Any]:
    # A fresh code each time: should the guard let an example through, the next one must fail
    # on its origin, not on the code.
    fields: dict[str, Any] = dict(
        registry=world.registry.pk,
        code=f"ZJ-MANGROVE-{next(_n)}",
        name="Zhanjiang mangrove restoration",
        ecosystem="mangrove",
        storage_pathway="biomass_sediment",
        methodology=world.project.methodology_id,
        jurisdiction="CN-GD",
        location={"type": "Point", "coordinates": ["110.4", "21.2"]},
        area_m2=3_800_000,
        developer=world.developer.pk,
        validation_body="CQC",
    )
    fields.update(overrides)
    return fields


def issue_fields(world: Any, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        project=world.project.pk,
        monitoring_start=dt.date(2023, 1, 1),
        monitoring_end=dt.date(2023, 12, 31),
        verification_body="DNV",
        verification_report_sha256=factories.sha("report 2023"),
        quantity=1_000_000,
        buffer_share_bp=0,
        holder=world.dev_account.pk,
    )
    fields.update(overrides)
    return fields


@pytest.fixture
def verra_2236(world: Any) -> Project:
    return services.project_register(
        actor=OPERATOR,
        **project_fields(world, code="ZJ-MANGROVE", origin_registry="verra", origin_id="VCS-2236"),
    )


# ---- projects -------------------------------------------------------------------------------


def test_the_ledger_records_the_id_as_given_and_its_key_under_rule_1(
    world, one_new_entry, verify_ledger
):
    with one_new_entry() as new:
        p = services.project_register(
            actor=OPERATOR,
            **project_fields(world, origin_registry=" Verra ", origin_id="VCS-02236"),
        )
    recorded = new.entry.data["project"]
    assert (recorded["origin_registry"], recorded["origin_id"]) == ("verra", "VCS-02236")
    assert (recorded["origin_key"], recorded["origin_rule"]) == ("2236", 1)
    assert recorded == records.project_record(Project.objects.get(pk=p.pk))
    verify_ledger()


@FAST
@given(spelling=verra_id("2236"), registry=st.sampled_from(["verra", "Verra", "VCS", "VERRA"]))
def test_no_spelling_of_a_registered_verra_id_registers_it_again(
    verra_2236, world, spelling, registry
):
    with rolled_back(), pytest.raises(Conflict) as err:
        services.project_register(
            actor=OPERATOR,
            **project_fields(
                world, origin_registry=confusable_registry(registry), origin_id=spelling
            ),
        )
    assert err.value.code == ErrorCode.DUPLICATE_ORIGIN
    assert err.value.detail == {"origin_id": "duplicate"}
    assert Project.objects.filter(origin_registry="verra").count() == 1


def confusable_registry(name: str) -> str:
    # Full width and an invisible character: the list's lookup normalises like the ids.
    return "".join(full_width(c) for c in name) + "\u200b"


@pytest.mark.parametrize(
    "spelling",
    ["vcs-2236", "VCS-\u200b2236", "\uff36\uff23\uff33-2236", "2236", " VCS 2236\u3000", "VCS2236"],
)
def test_each_reported_spelling_is_refused(verra_2236, world, refused, spelling):
    with refused(Conflict, ErrorCode.DUPLICATE_ORIGIN) as err:
        services.project_register(
            actor=OPERATOR, **project_fields(world, origin_registry="Verra", origin_id=spelling)
        )
    assert "ZJ-MANGROVE" in err.value.message  # names the project that holds the id


@FAST
@given(spelling=st.just("GS1234").flatmap(confusable))
def test_no_spelling_of_a_gold_standard_id_registers_it_again(world, spelling):
    if not Project.objects.filter(origin_registry="gold-standard").exists():
        services.project_register(
            actor=OPERATOR,
            **project_fields(
                world, code="GS-1", origin_registry="gold-standard", origin_id="GS1234"
            ),
        )
    with rolled_back(), pytest.raises(Conflict) as err:
        services.project_register(
            actor=OPERATOR,
            **project_fields(world, origin_registry="Gold Standard", origin_id=spelling),
        )
    assert err.value.code == ErrorCode.DUPLICATE_ORIGIN


FREE_IDS = [("ccer", "CCER-1234-ZJ"), ("ningbo-prtn", "Xiangshan lot 2023-01"), ("other", "A-1")]


@FAST
@given(
    pick=st.sampled_from(FREE_IDS).flatmap(
        lambda pair: st.tuples(st.just(pair[0]), confusable(pair[1]))
    )
)
def test_free_ids_of_other_registries_are_compared_normalised_too(world, pick):
    for n, (registry, given_id) in enumerate(FREE_IDS):
        if not Project.objects.filter(origin_registry=registry).exists():
            services.project_register(
                actor=OPERATOR,
                **project_fields(
                    world, code=f"FREE-{n}", origin_registry=registry, origin_id=given_id
                ),
            )
    registry, spelling = pick
    with rolled_back(), pytest.raises(Conflict) as err:
        services.project_register(
            actor=OPERATOR, **project_fields(world, origin_registry=registry, origin_id=spelling)
        )
    assert err.value.code == ErrorCode.DUPLICATE_ORIGIN


def test_the_same_number_at_another_registry_is_another_project(verra_2236, world):
    p = services.project_register(
        actor=OPERATOR, **project_fields(world, origin_registry="puro", origin_id="2236")
    )
    assert (p.origin_registry, p.origin_key) == ("puro", "2236")


def test_an_unknown_registry_is_refused_with_the_list(world, refused):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.project_register(
            actor=OPERATOR, **project_fields(world, origin_registry="acr", origin_id="ACR-1")
        )
    assert err.value.detail == {"origin_registry": "unknown_registry"}
    assert "other" in err.value.message and "verra" in err.value.message


def test_an_unknown_registry_is_an_explicit_other_with_a_free_id(world):
    p = services.project_register(
        actor=OPERATOR, **project_fields(world, origin_registry="Other", origin_id=" ACR-1\u200b")
    )
    assert (p.origin_registry, p.origin_id, p.origin_key) == ("other", "ACR-1\u200b", "acr-1")


@pytest.mark.parametrize(
    ("registry", "origin_id", "detail"),
    [
        ("verra", "VCS-ABC", "format"),
        ("gold-standard", "VCS-12", "format"),
        ("verra", "22\x0036", "invalid_characters"),
        ("other", "X-\ue000", "invalid_characters"),  # private use
        ("other", "\u200b\u200b", "required"),
    ],
)
def test_an_id_that_the_rule_cannot_key_is_refused(world, refused, registry, origin_id, detail):
    with refused(InvalidInput, CommonCode.INVALID_FIELD) as err:
        services.project_register(
            actor=OPERATOR, **project_fields(world, origin_registry=registry, origin_id=origin_id)
        )
    assert err.value.detail == {"origin_id": detail}


def test_the_database_refuses_a_second_row_with_the_same_key(verra_2236, world):
    # Python's check aside, the unique constraint on (origin_registry, origin_key) holds.
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.create(
            **{
                **{f.name: getattr(verra_2236, f.name) for f in Project._meta.concrete_fields},
                "id": None,
                "code": "ANOTHER",
                "origin_id": "vcs-2236",
            }
        )


def test_the_database_refuses_a_keyed_row_without_a_rule(verra_2236):
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.filter(pk=verra_2236.pk).update(origin_rule=0)


# ---- batches ----------------------------------------------------------------------------------


@FAST
@given(spelling=st.just("VCU-9812-2023").flatmap(confusable))
def test_no_spelling_of_an_issued_origin_transaction_issues_it_again(world, spelling):
    if not Batch.objects.filter(origin_tx_id="VCU-9812-2023").exists():
        world.issue(origin_registry="verra", origin_tx_id="VCU-9812-2023")
    year = 2030 + next(_n) % 150  # another period each time: only the origin may clash
    with rolled_back(), pytest.raises(Conflict) as err:
        services.batch_issue(
            actor=OPERATOR,
            **issue_fields(
                world,
                monitoring_start=dt.date(year, 1, 1),
                monitoring_end=dt.date(year, 12, 31),
                origin_registry="\uff36\uff25\uff32\uff32\uff21",
                origin_tx_id=spelling,
            ),
        )
    assert err.value.code == ErrorCode.DUPLICATE_ORIGIN
    assert err.value.detail == {"origin_tx_id": "duplicate"}


def test_a_batch_records_its_origin_transaction_key(world, one_new_entry, verify_ledger):
    with one_new_entry() as new:
        b = services.batch_issue(
            actor=OPERATOR,
            **issue_fields(world, origin_registry="VCS", origin_tx_id="\uff36CU-1"),
        )
    recorded = new.entry.data["batch"]
    assert (recorded["origin_registry"], recorded["origin_tx_id"]) == ("verra", "\uff36CU-1")
    assert (recorded["origin_tx_key"], recorded["origin_rule"]) == ("vcu-1", 1)
    assert (b.origin_tx_key, b.origin_rule) == ("vcu-1", 1)
    verify_ledger()


# ---- rows from before the rule ------------------------------------------------------------------


def legacy_project(world: Any, code: str, registry: str, origin_id: str) -> Project:
    """A project as registered before origin rule 1: no key, rule 0, and an entry without the
    two members, exactly as a database migrated from before holds it."""
    with transaction.atomic():
        p = Project.objects.create(
            code=code,
            name=code,
            ecosystem="mangrove",
            storage_pathway="biomass",
            methodology_id=world.project.methodology_id,
            jurisdiction="CN-GD",
            location={"type": "Point", "coordinates": ["110.4", "21.2"]},
            area_m2=10_000,
            registry=world.registry,
            developer=world.developer,
            validation_body="CQC",
            origin_registry=registry,
            origin_id=origin_id,
        )
        data = records.project_record(p)
        del data["origin_key"], data["origin_rule"]
        append._ledger_append(type="project.register", actor=OPERATOR, data={"project": data})
    return p


def legacy_batch(world: Any, project: Project, year: int, registry: str, tx: str) -> Batch:
    with transaction.atomic():
        b = Batch.objects.create(
            serial=f"BC-{project.code}-{year}",
            project=project,
            monitoring_start=dt.date(year, 1, 1),
            monitoring_end=dt.date(year, 12, 31),
            vintage=year,
            verification_body="DNV",
            verification_report_sha256=factories.sha(str(year)),
            buffer_share_bp=0,
            origin_registry=registry,
            origin_tx_id=tx,
            issued=1000,
            buffer_withheld=0,
        )
        data = records.batch_record(b)
        del data["origin_tx_key"], data["origin_rule"]
        append._ledger_append(
            type="batch.issue",
            actor=OPERATOR,
            data={"batch": data, "holder": world.dev_account.pk, "buffer_account": None},
        )
        Holding.objects.create(account=world.dev_account, batch=b, tradable=1000)
    return b


def test_entries_from_before_the_rule_and_after_it_verify_together(world, verify_ledger):
    old = legacy_project(world, "OLD-1", "Verra", "VCS-2236")
    legacy_batch(world, old, 2019, "Verra", "VCU-1")
    new = services.project_register(
        actor=OPERATOR, **project_fields(world, origin_registry="verra", origin_id="VCS-7")
    )
    assert (old.origin_rule, old.origin_key, new.origin_rule, new.origin_key) == (0, None, 1, "7")
    verify_ledger()


def test_a_new_spelling_of_an_id_registered_before_the_rule_is_refused(world, refused):
    legacy_project(world, "OLD-1", "Verra", "VCS-2236")
    with refused(Conflict, ErrorCode.DUPLICATE_ORIGIN) as err:
        services.project_register(
            actor=OPERATOR, **project_fields(world, origin_registry="verra", origin_id="2236")
        )
    assert "OLD-1" in err.value.message


def test_a_new_spelling_of_a_transaction_issued_before_the_rule_is_refused(world, refused):
    old = legacy_project(world, "OLD-1", "verra", "VCS-2236")
    legacy_batch(world, old, 2019, "verra", "VCU-1")
    with refused(Conflict, ErrorCode.DUPLICATE_ORIGIN):
        services.batch_issue(
            actor=OPERATOR, **issue_fields(world, origin_registry="verra", origin_tx_id="vcu-1 ")
        )


def test_a_batch_of_a_project_from_before_the_list_keeps_its_registry(world):
    old = legacy_project(world, "OLD-1", "some-old-registry", "X-1")
    b = services.batch_issue(actor=OPERATOR, **issue_fields(world, project=old.pk))
    assert (b.origin_registry, b.origin_rule) == ("some-old-registry", 1)


def run_duplicates(*args: str) -> str:
    out = io.StringIO()
    call_command("ledger_origin_duplicates", *args, stdout=out)
    return out.getvalue()


def test_the_command_reports_near_duplicates_from_before_the_rule_and_changes_nothing(world):
    a = legacy_project(world, "OLD-1", "verra", "VCS-2236")
    legacy_project(world, "OLD-2", "Verra", "vcs-\u200b2236")
    legacy_project(world, "OLD-3", "verra", "VCS-2237")
    legacy_batch(world, a, 2019, "verra", "VCU-1")
    legacy_batch(world, a, 2020, "VERRA", "\uff36CU-1")
    rows = list(Project.objects.order_by("pk").values()), list(Batch.objects.values())

    text = run_duplicates()

    assert "projects with origin verra '2236':" in text
    assert "OLD-1" in text and "OLD-2" in text and "OLD-3" not in text
    assert "'vcs-\\u200b2236'" in text  # the invisible character, made visible
    assert "batches with origin verra 'vcu-1':" in text
    assert "1 project origin(s) and 1 batch origin(s)" in text
    assert (list(Project.objects.order_by("pk").values()), list(Batch.objects.values())) == rows
    with pytest.raises(CommandError):
        run_duplicates("--check")


def test_the_command_finds_nothing_in_a_ledger_kept_under_the_rule(world, verra_2236):
    assert "0 project origin(s) and 0 batch origin(s)" in run_duplicates("--check")
