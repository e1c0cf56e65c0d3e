"""The public register's lists (projects, batches, retirements): search and filters, exports
that hold exactly what the list shows (CSV columns, decimal tonnes), bad filters refused on
their field with nothing listed or exported, the export limit, the batch page's supply by bucket
and its history, and nothing private on any of them."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import QueryDict
from django.test import Client
from django.test.utils import CaptureQueriesContext

from ledger import public_register as register
from ledger import services
from ledger.models import Membership, Role
from portal import registry as register_views
from tests import factories


class Register:
    """Two registries' worth of public facts: a mangrove project in CN-GD with batches of 2021
    and 2022, a seagrass project in CN-ZJ of another methodology with one of 2023; credits
    transferred, held in escrow, retired (twice) and cancelled."""

    def __init__(self) -> None:
        w = factories.World()
        self.world = w
        self.mangrove = w.project
        self.seagrass = factories.project(
            w.registry,
            w.developer,
            factories.methodology("VM0007-SG"),
            name="Xiangshan seagrass meadow",
            name_zh="象山海草床",
            ecosystem="seagrass",
            jurisdiction="CN-ZJ",
        )
        self.b2021 = w.issue(1_000_000, year=2021)
        self.b2022 = w.issue(500_000, year=2022)
        self.b2023 = factories.batch(self.seagrass, 2_340_100, year=2023, holder=w.dev_account)
        services.credit_transfer(
            actor=w.dev,
            batch=self.b2021.pk,
            sender=w.dev_account.pk,
            recipient=w.buyer_account.pk,
            quantity=300_000,
        )
        services.escrow_hold(
            actor=w.dev,
            batch=self.b2021.pk,
            account=w.dev_account.pk,
            quantity=50_000,
            reference="pending delivery 7",
        )
        self.ret_a = services.credit_retire(
            actor=w.buy,
            batch=self.b2021.pk,
            account=w.buyer_account.pk,
            quantity=120_500,
            beneficiary="Ningbo Coastal Energy",
            purpose="Scope 1 emissions 2022",
            jurisdiction="CN-ZJ",
            reason="PRIVATE-REASON-TEXT",
        )
        self.ret_b = services.credit_retire(
            actor=w.dev,
            batch=self.b2023.pk,
            account=w.dev_account.pk,
            quantity=1_000,
            beneficiary="Zhoushan Fisheries",
            purpose="Event offsets",
            jurisdiction="CN-ZJ",
        )
        services.credit_cancel(
            actor=w.buy,
            batch=self.b2021.pk,
            account=w.buyer_account.pk,
            quantity=9_000,
            reason="PRIVATE-CANCEL-REASON",
        )


@pytest.fixture
def reg(db) -> Register:
    return Register()


def _csv(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def _json(response) -> dict:
    return json.loads(b"".join(response.streaming_content))


# ---- filters -------------------------------------------------------------------------------


def test_the_batches_list_filters_by_ecosystem_jurisdiction_vintage_and_methodology(reg, client):
    r = client.get("/registry/batches/")
    assert r.status_code == 200
    text = r.content.decode()
    for b in (reg.b2021, reg.b2022, reg.b2023):
        assert f'href="/registry/batches/{b.serial}/"' in text
    r = client.get("/registry/batches/", {"ecosystem": "seagrass"})
    assert [b.serial for b in r.context["rows"]] == [reg.b2023.serial]
    r = client.get("/registry/batches/", {"jurisdiction": "CN-GD", "vintage": "2022"})
    assert [b.serial for b in r.context["rows"]] == [reg.b2022.serial]
    r = client.get("/registry/batches/", {"methodology": "VM0007-SG"})
    assert [b.serial for b in r.context["rows"]] == [reg.b2023.serial]
    # The jurisdiction filter offers the jurisdictions that exist, and only those.
    options = next(f for f in r.context["fields"] if f["name"] == "jurisdiction")["options"]
    assert options == [("CN-GD", "CN-GD"), ("CN-ZJ", "CN-ZJ")]


def test_free_text_searches_every_word_across_the_columns(reg, client):
    r = client.get("/registry/projects/", {"q": "xiangshan SEAGRASS"})
    assert [p.code for p in r.context["rows"]] == [reg.seagrass.code]
    r = client.get("/registry/retirements/", {"q": "ningbo"})
    assert [x.certificate for x in r.context["rows"]] == [reg.ret_a.certificate]
    r = client.get("/registry/retirements/", {"q": reg.b2023.serial})
    assert [x.certificate for x in r.context["rows"]] == [reg.ret_b.certificate]
    # A name in Chinese finds the project, its batches and their retirements too.
    r = client.get("/registry/projects/", {"q": "海草床"})
    assert [p.code for p in r.context["rows"]] == [reg.seagrass.code]
    r = client.get("/registry/batches/", {"q": "象山海草"})
    assert [b.serial for b in r.context["rows"]] == [reg.b2023.serial]
    r = client.get("/registry/retirements/", {"q": "海草床"})
    assert [x.certificate for x in r.context["rows"]] == [reg.ret_b.certificate]
    r = client.get("/registry/projects/", {"q": "no such words"})
    assert r.context["rows"] == [] and "No project matches." in r.content.decode()


def test_projects_filter_by_vintage_status_and_show_their_batch_counts(reg, client):
    r = client.get("/registry/projects/", {"vintage": "2023", "status": "active"})
    assert [p.code for p in r.context["rows"]] == [reg.seagrass.code]
    r = client.get("/registry/projects/", {"status": "suspended"})
    assert r.context["rows"] == []
    r = client.get("/registry/projects/")
    mangrove = next(p for p in r.context["rows"] if p.code == reg.mangrove.code)
    assert mangrove.batch_count == 2 and mangrove.issued == 1_500_000


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"vintage": "20x1"}, "vintage", "invalid"),
        ({"vintage": "1800"}, "vintage", "out_of_range"),
        ({"ecosystem": "coral"}, "ecosystem", "invalid_choice"),
        ({"jurisdiction": "cn-gd"}, "jurisdiction", "invalid"),
        ({"q": "x" * 101}, "q", "too_long"),
        ({"vintage": ["2021", "2022"]}, "vintage", "repeated"),
    ],
)
def test_a_bad_filter_is_said_on_its_field_and_nothing_is_listed_or_exported(
    reg, client, query, field, code
):
    _, errors = register.parse("batches", _querydict(query))
    assert errors[field].code == code
    r = client.get("/registry/batches/", query)
    assert r.status_code == 400
    text = r.content.decode()
    assert f'id="filter-{field}-error"' in text and 'aria-invalid="true"' in text
    assert "Nothing is listed until it is corrected." in text
    assert r.context["rows"] == [] and reg.b2021.serial not in text
    for fmt in ("csv", "json"):
        r = client.get(f"/registry/batches/export.{fmt}", query)
        assert r.status_code == 400
        assert f"({field})" in r.content.decode()


def _querydict(query: dict) -> QueryDict:
    q = QueryDict(mutable=True)
    for k, v in query.items():
        q.setlist(k, v if isinstance(v, list) else [v])
    return q


def test_a_bad_filter_is_said_in_chinese_on_a_chinese_page(reg, client):
    r = client.get("/registry/batches/", {"vintage": "abc"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert r.status_code == 400
    text = r.content.decode()
    assert "A vintage is a year" not in text
    assert 'lang="zh-Hans"' in text


def test_a_well_formed_jurisdiction_no_project_has_matches_nothing(reg, client):
    r = client.get("/registry/batches/", {"jurisdiction": "CN-HI"})
    assert r.status_code == 200 and r.context["rows"] == []


# ---- exports -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["projects", "batches", "retirements"])
@pytest.mark.parametrize(
    "query", [{}, {"jurisdiction": "CN-ZJ"}, {"vintage": "2021"}, {"q": "seagrass"}]
)
def test_an_export_holds_exactly_the_filtered_list_in_its_order(reg, client, kind, query):
    page = client.get(f"/registry/{kind}/", query)
    assert page.status_code == 200
    listed = page.context["rows"]
    keys = {
        "projects": lambda x: x.code,
        "batches": lambda x: x.serial,
        "retirements": lambda x: x.certificate,
    }[kind]
    column = {"projects": "code", "batches": "serial", "retirements": "certificate"}[kind]
    exported = _csv(client.get(f"/registry/{kind}/export.csv", query))
    assert [row[column] for row in exported] == [keys(x) for x in listed]
    doc = _json(client.get(f"/registry/{kind}/export.json", query))
    assert [row[column] for row in doc["rows"]] == [keys(x) for x in listed]
    assert doc["columns"] == list(register.COLUMNS[kind]) and doc["list"] == kind


def test_the_csv_streams_with_its_documented_columns_and_tonnes_as_decimal_strings(reg, client):
    r = client.get("/registry/batches/export.csv", {"ecosystem": "seagrass"})
    assert r.status_code == 200 and r.streaming
    assert r["Content-Type"].startswith("text/csv; charset=utf-8")
    assert r["Content-Disposition"].startswith('attachment; filename="batches-')
    body = b"".join(r.streaming_content).decode()
    header = body.split("\r\n")[0]
    assert header == ",".join(register.COLUMNS["batches"])
    (row,) = list(csv.DictReader(io.StringIO(body)))
    assert row["issued_tco2e"] == "2340.100"
    assert row["retired_tco2e"] == "1.000"
    assert row["outstanding_tco2e"] == "2339.100"
    assert row["buffer_share_percent"] == "20.00"
    doc = _json(client.get("/registry/batches/export.json", {"ecosystem": "seagrass"}))
    assert doc["rows"][0]["issued_tco2e"] == "2340.100"  # a string, never a float
    assert doc["filters"] == {"ecosystem": "seagrass"}


def test_an_export_reads_a_long_list_in_chunks_in_order(reg, client, monkeypatch):
    monkeypatch.setattr(register, "CHUNK", 1)
    rows = _csv(client.get("/registry/batches/export.csv"))
    assert [r["serial"] for r in rows] == [reg.b2023.serial, reg.b2022.serial, reg.b2021.serial]
    rows = _csv(client.get("/registry/projects/export.csv"))
    assert [r["code"] for r in rows] == sorted([reg.mangrove.code, reg.seagrass.code])


def test_exports_are_limited_per_address(reg, client, settings):
    settings.REGISTER_EXPORT_RATE = "3/m"
    for _ in range(3):
        assert client.get("/registry/projects/export.csv").status_code == 200
    r = client.get("/registry/projects/export.json")
    assert r.status_code == 429
    assert int(r["Retry-After"]) >= 1 and "Too many requests" in r.content.decode()
    other = Client(REMOTE_ADDR="192.0.2.9")
    assert other.get("/registry/projects/export.csv").status_code == 200


def test_the_lists_link_their_exports_with_the_same_filters(reg, client):
    text = client.get("/registry/retirements/", {"vintage": "2021"}).content.decode()
    assert 'href="/registry/retirements/export.csv?vintage=2021"' in text
    assert 'href="/registry/retirements/export.json?vintage=2021"' in text


def test_long_lists_page_by_keyset_keeping_the_filters(reg, client, monkeypatch):
    monkeypatch.setattr(register_views, "PAGE", 2)
    r = client.get("/registry/batches/", {"q": "P"})
    assert [b.serial for b in r.context["rows"]] == [reg.b2023.serial, reg.b2022.serial]
    assert r.context["next_query"] == f"q=P&before={reg.b2022.pk}"
    r = client.get(f"/registry/batches/?{r.context['next_query']}")
    assert [b.serial for b in r.context["rows"]] == [reg.b2021.serial]
    assert r.context["next_query"] is None


# ---- nothing private -----------------------------------------------------------------------

PRIVATE = ("PRIVATE-REASON-TEXT", "PRIVATE-CANCEL-REASON", "pending delivery 7")


def test_no_list_page_or_export_shows_accounts_reasons_or_escrow_references(reg, client):
    # The buyer is named nowhere public: it holds, retires and cancels, none of which says who.
    names = [reg.world.buyer.name, reg.world.buyer.handle]
    for kind in register.LISTS:
        for url in (f"/registry/{kind}/", f"/registry/{kind}/export.csv"):
            r = client.get(url)
            body = b"".join(r.streaming_content) if r.streaming else r.content
            text = body.decode()
            for secret in (*PRIVATE, *names):
                assert secret not in text, (url, secret)
        for column in register.COLUMNS[kind]:
            assert "account" not in column and "reason" not in column and "holder" not in column
    page = client.get(f"/registry/batches/{reg.b2021.serial}/").content.decode()
    for secret in (*PRIVATE, *names):
        assert secret not in page


# ---- the batch page ------------------------------------------------------------------------


def test_a_batch_page_shows_its_facts_and_supply_by_bucket_summing_to_issued(reg, client):
    b = reg.b2021
    r = client.get(f"/registry/batches/{b.serial}/")
    assert r.status_code == 200
    text = r.content.decode()
    for fact in (b.serial, b.verification_report_sha256, "DNV", "2021-01-01", "2021-12-31"):
        assert fact in text
    s = r.context["supply"]
    # 1,000 t issued: 200 t to the buffer pool, 800 t to the developer; 300 t moved, 50 t held,
    # 120.5 t retired, 9 t cancelled.
    assert (s.issued, s.buffer, s.escrowed, s.retired, s.cancelled) == (
        1_000_000,
        200_000,
        50_000,
        120_500,
        9_000,
    )
    assert s.tradable == 800_000 - 50_000 - 120_500 - 9_000
    assert s.holds and 'data-holds="true"' in text
    # By id too, and an unknown serial is a 404.
    assert client.get(f"/registry/batches/{b.pk}/").context["b"] == b
    assert client.get("/registry/batches/NO-SUCH-SERIAL/").status_code == 404


def test_a_batch_page_lists_its_public_history_newest_first_and_pages(reg, client, monkeypatch):
    b = reg.b2021
    r = client.get(f"/registry/batches/{b.serial}/")
    kinds = [h["row"].type for h in r.context["history"]]
    assert kinds == ["credit.cancel", "credit.retire", "batch.issue"]
    seqs = [h["row"].seq for h in r.context["history"]]
    assert seqs == sorted(seqs, reverse=True)
    text = r.content.decode()
    assert f'href="/registry/certificates/{reg.ret_a.certificate}/"' in text
    assert "/audit/ledger/" not in text  # the entry pages are auditors'
    monkeypatch.setattr(register, "HISTORY_PAGE", 2)
    r = client.get(f"/registry/batches/{b.serial}/")
    assert [h["row"].type for h in r.context["history"]] == ["credit.cancel", "credit.retire"]
    r = client.get(f"/registry/batches/{b.serial}/?before={r.context['next_before']}")
    assert [h["row"].type for h in r.context["history"]] == ["batch.issue"]
    assert r.context["next_before"] is None


def test_an_auditor_gets_links_to_the_entries_and_the_explorer(reg):
    user = get_user_model().objects.create_user("aud", "aud@example.org", "pw-long-enough-1")
    Membership.objects.create(user=user, organization=factories.organization(Role.AUDITOR))
    c = Client()
    c.force_login(user)
    text = c.get(f"/registry/batches/{reg.b2021.serial}/").content.decode()
    assert f'href="/audit/ledger/{reg.ret_a.entry_seq}/"' in text
    assert f'href="/audit/ledger/?batch={reg.b2021.pk}"' in text


def test_batches_are_linked_from_the_project_page_and_the_retirements(reg, client):
    for url in (f"/registry/projects/{reg.mangrove.code}/", "/registry/retirements/"):
        assert f'href="/registry/batches/{reg.b2021.serial}/"' in client.get(url).content.decode()


def test_the_pages_read_in_a_fixed_number_of_queries_however_many_rows(reg, client):
    urls = (
        "/registry/projects/",
        "/registry/batches/",
        "/registry/retirements/",
        f"/registry/batches/{reg.b2021.serial}/",
    )

    def counts() -> list[int]:
        found = []
        for url in urls:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url).status_code == 200
            found.append(len(queries.captured_queries))
        return found

    before = counts()
    for year in range(1990, 2010):
        factories.batch(reg.seagrass, 1_000, year=year, holder=reg.world.dev_account)
    assert counts() == before
