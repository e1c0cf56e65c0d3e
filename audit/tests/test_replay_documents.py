"""``document.attach``: a project's document replayed by the auditor, from the entry alone, and
counted by ``bluecarbon-audit verify``; an entry that breaks the format's rules is refused."""

from __future__ import annotations

from typing import Any

import pytest
from ledgers import ORIGIN, registry
from test_verify import check, run

from bluecarbon_audit.entry import Entry
from bluecarbon_audit.replay import DOCUMENT_MAX_BYTES, RegistryState, ReplayError
from bluecarbon_audit.testing import MemoryLog

TIME = "2026-12-07T08:00:00.000000Z"


def document(**overrides: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "project": 1,
        "kind": "verification_report",
        "title": "Verification report 2021 (DNV)",
        "media_type": "application/pdf",
        "size": 812,
        "sha256": "5f" * 32,
        **overrides,
    }


def state() -> RegistryState:
    s = RegistryState()
    s.projects[1] = {"code": "P1"}
    return s


def attach(s: RegistryState, doc: dict[str, Any]) -> list[Any]:
    entry = Entry(7, b"\x00" * 32, TIME, "document.attach", "user:3", {"document": doc})
    return s.apply(entry)


def test_it_replays_a_document_as_a_record_with_its_entrys_time():
    assert attach(state(), document()) == [("document", {**document(), "attached_at": TIME})]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"project": 2}, "unknown project 2"),
        ({"id": 0}, "its id is not a positive integer"),
        ({"kind": "press_release"}, "unknown kind 'press_release'"),
        ({"media_type": "text/html"}, "media type 'text/html' is not accepted"),
        ({"size": 0}, "size 0 is not 1 to"),
        ({"size": DOCUMENT_MAX_BYTES + 1}, f"size {DOCUMENT_MAX_BYTES + 1} is not 1 to"),
        ({"size": "812"}, "size '812' is not 1 to"),
        ({"sha256": "5F" * 32}, "is not 64 lowercase hex digits"),
        ({"sha256": "5f" * 31}, "is not 64 lowercase hex digits"),
        ({"title": " "}, "no title"),
    ],
)
def test_it_refuses_a_document_the_registry_would_not_have_attached(change, message):
    with pytest.raises(ReplayError, match=message):
        attach(state(), document(**change))


def test_a_document_without_a_field_is_malformed():
    doc = document()
    del doc["sha256"]
    with pytest.raises(ReplayError, match=r"malformed document\.attach data"):
        attach(state(), doc)


def test_the_auditor_verifies_a_ledger_with_documents_and_counts_them(tmp_path):
    log = MemoryLog(ORIGIN)
    registry(log)
    log.append("document.attach", {"document": document()})
    log.append("document.attach", {"document": document(id=2, kind="monitoring_report")})
    log.write_tiles(tmp_path)
    report: Any = check(tmp_path, log)
    assert report.ok, report.failure
    assert report.records["document"] == 2


def test_the_auditor_names_an_entry_whose_document_is_for_no_project(tmp_path):
    log = MemoryLog(ORIGIN)
    registry(log)
    log.append("document.attach", {"document": document(project=9)})
    log.write_tiles(tmp_path)
    report: Any = check(tmp_path, log)
    assert not report.ok
    assert report.failure.seq == len(log.entries) - 1
    assert "unknown project 9" in report.failure.message


def test_the_human_report_counts_the_documents(tmp_path, capsys):
    log = MemoryLog(ORIGIN)
    registry(log)
    log.append("document.attach", {"document": document()})
    log.write_tiles(tmp_path)
    code, out = run(capsys, str(tmp_path), "--key", log.verifier_key)
    assert code == 0, out
    assert "1 projects (1 document attached), 2 batches" in out
