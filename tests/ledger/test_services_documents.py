"""project_document_attach: a registry attaches a file to its project; the file is stored by its
SHA-256 and a document.attach entry carries the hash."""

from __future__ import annotations

import hashlib

import pytest

from ledger import demo, documents, drill_attacks, records, services
from ledger.actors import Actor
from ledger.exceptions import (
    CommonCode,
    Conflict,
    ErrorCode,
    InvalidInput,
    NotFound,
    TooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from ledger.models import LedgerEntry, ProjectDocument, Role
from ledger.services import documents as document_services
from tests import factories

PDF = demo.pdf(["Monitoring report", "2021"])
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0" + bytes(16)


@pytest.fixture(autouse=True)
def store(settings, tmp_path):
    settings.DOCUMENTS_DIR = tmp_path / "documents"
    return settings.DOCUMENTS_DIR


def stored_files(store) -> list[str]:
    return sorted(p.name for p in store.rglob("*") if p.is_file())


def attach(world, *, actor: Actor | None = None, **overrides):
    fields = dict(
        actor=actor or factories.actor_for(world.registry),
        project=world.project.pk,
        kind="monitoring_report",
        title="Monitoring report 2021",
        content=PDF,
        media_type="application/pdf",
    )
    fields.update(overrides)
    return services.project_document_attach(**fields)


def test_it_attaches_a_document_in_one_entry_carrying_its_hash(
    world, store, one_new_entry, verify_ledger
):
    with one_new_entry() as new:
        doc = attach(world)
    digest = hashlib.sha256(PDF).hexdigest()
    assert new.entry.type == "document.attach"
    assert new.entry.data == {
        "document": {
            "id": doc.pk,
            "project": world.project.pk,
            "kind": "monitoring_report",
            "title": "Monitoring report 2021",
            "media_type": "application/pdf",
            "size": len(PDF),
            "sha256": digest,
        }
    }
    doc.refresh_from_db()
    assert doc.entry_seq == new.entry.seq
    assert records.document_row(doc)["attached_at"] == new.entry.time
    assert documents.path_for(digest).read_bytes() == PDF
    assert stored_files(store) == [digest]
    verify_ledger()


@pytest.mark.parametrize(
    ("content", "media_type", "stored_as"),
    [
        (PNG, "image/png", "image/png"),
        (JPEG, "image/jpeg", "image/jpeg"),
        ("Rapport de vérification\n\tligne 2\r\n".encode(), "text/plain", "text/plain"),
        (b"plain text", "Text/Plain; charset=utf-8", "text/plain"),
    ],
)
def test_it_takes_images_and_utf8_text_by_their_bytes(world, content, media_type, stored_as):
    doc = attach(world, content=content, media_type=media_type)
    assert doc.media_type == stored_as


def test_the_same_file_kind_and_title_again_is_a_repeat_with_no_new_entry(world, store):
    first = attach(world)
    entries = LedgerEntry.objects.count()
    again = attach(world)
    assert again.pk == first.pk
    assert LedgerEntry.objects.count() == entries
    assert stored_files(store) == [first.sha256]


def test_the_same_file_under_another_title_is_refused(world, refused):
    first = attach(world)
    with refused(Conflict, ErrorCode.DOCUMENT_EXISTS) as err:
        attach(world, title="Another title")
    assert err.value.detail == {"document": first.pk, "sha256": first.sha256}


def test_the_same_file_on_another_project_is_stored_once(world, store):
    other = factories.project(world.registry, world.developer)
    a = attach(world)
    b = attach(world, project=other.pk)
    assert a.pk != b.pk and a.sha256 == b.sha256
    assert stored_files(store) == [a.sha256]


def test_a_file_larger_than_the_limit_is_refused_and_nothing_is_stored(
    world, refused, store, monkeypatch
):
    monkeypatch.setattr(documents, "MAX_BYTES", len(PDF) - 1)
    with refused(TooLarge, ErrorCode.DOCUMENT_TOO_LARGE) as err:
        attach(world)
    assert err.value.detail["limit_bytes"] == len(PDF) - 1
    assert stored_files(store) == []


def test_the_limit_is_twenty_megabytes():
    assert documents.MAX_BYTES == 20 * 1024 * 1024


def test_an_empty_file_is_refused(world, refused, store):
    with refused(InvalidInput, ErrorCode.DOCUMENT_EMPTY):
        attach(world, content=b"", media_type="text/plain")
    assert stored_files(store) == []


@pytest.mark.parametrize("media_type", ["application/zip", "text/html", "", "application/x-pdf"])
def test_a_type_outside_the_list_is_refused(world, refused, media_type):
    with refused(UnsupportedMediaType, ErrorCode.DOCUMENT_MEDIA_TYPE) as err:
        attach(world, media_type=media_type)
    assert "application/pdf" in err.value.detail["accepted"]


@pytest.mark.parametrize(
    ("content", "claimed", "detected"),
    [
        (b"just text, not a PDF", "application/pdf", "text/plain"),
        (PDF, "text/plain", "application/pdf"),
        (PNG, "image/jpeg", "image/png"),
        (b"MZ\x90\x00\x03\x00\x00\x00", "text/plain", None),  # an executable
        (b"text with a NUL \x00 byte", "text/plain", None),
        (b"\xff\xfe not utf-8", "text/plain", None),
    ],
)
def test_bytes_that_are_not_the_claimed_type_are_refused(
    world, refused, store, content, claimed, detected
):
    with refused(Unprocessable, ErrorCode.DOCUMENT_CONTENT_MISMATCH) as err:
        attach(world, content=content, media_type=claimed)
    assert err.value.detail == {"media_type": "content_mismatch", "detected": detected}
    assert stored_files(store) == []


@pytest.mark.parametrize(
    ("field", "value"), [("kind", "report"), ("title", "  "), ("title", "x" * 301)]
)
def test_a_bad_kind_or_title_is_refused(world, refused, field, value):
    with refused(InvalidInput, CommonCode.INVALID_FIELD):
        attach(world, **{field: value})


def test_only_the_projects_registry_attaches(world, refused):
    other_registry = factories.organization(Role.REGISTRY)
    for org in (world.developer, world.buyer, other_registry):
        with refused(NotFound, CommonCode.NOT_FOUND):
            attach(world, actor=factories.actor_for(org))
    with refused(NotFound, CommonCode.NOT_FOUND):
        attach(world, project=10**9)


def test_an_operator_may_attach_for_the_registry(world):
    assert attach(world, actor=factories.OPERATOR).project_id == world.project.pk


def test_a_crash_after_the_file_is_stored_loses_nothing_and_the_retry_reuses_the_file(
    world, store, monkeypatch, verify_ledger
):
    def crash(**kwargs):
        raise RuntimeError("the process died before the commit")

    monkeypatch.setattr(document_services, "_ledger_append", crash)
    entries = LedgerEntry.objects.count()
    with pytest.raises(RuntimeError):
        attach(world)
    # The file is there (written first); no row, no entry: an orphan, harmless.
    digest = hashlib.sha256(PDF).hexdigest()
    assert stored_files(store) == [digest]
    assert not ProjectDocument.objects.exists()
    assert LedgerEntry.objects.count() == entries
    verify_ledger()
    monkeypatch.undo()
    doc = attach(world)
    assert doc.sha256 == digest and stored_files(store) == [digest]
    assert LedgerEntry.objects.count() == entries + 1
    verify_ledger()


def test_a_damaged_file_in_the_store_is_replaced_when_the_same_bytes_are_stored(world, store):
    digest = hashlib.sha256(PDF).hexdigest()
    target = documents.path_for(digest)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"half a file")
    attach(world)
    assert target.read_bytes() == PDF
    assert documents.read_verified(digest, what="test") == PDF


# ---- the attacks: an insider edits the table ---------------------------------------------------


def test_the_drills_attack_on_a_documents_hash_is_caught_and_named(world, verify_ledger):
    doc = attach(world)
    attack = next(a for a in drill_attacks.ATTACKS if a.id == "document-hash")
    assert attack.claimed == ("verify",)
    step = attack.plan(None)  # type: ignore[arg-type]
    assert callable(step)
    assert step(None).startswith(f"document {doc.pk}: its SHA-256 changed")  # type: ignore[arg-type]
    with pytest.raises(AssertionError) as failure:
        verify_ledger()
    assert "document row differs from the ledger: sha256: ledger" in str(failure.value)
    assert f"ledger '{doc.sha256}'" in str(failure.value)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"title": "Verification report (corrected)"},
            "document row differs from the ledger: title",
        ),
        ({"kind": "other"}, "document row differs from the ledger: kind"),
        ({"size": 1}, "document row differs from the ledger: size"),
    ],
)
def test_any_other_change_to_a_documents_row_is_named_too(world, verify_ledger, change, words):
    doc = attach(world)
    ProjectDocument.objects.filter(pk=doc.pk).update(**change)
    with pytest.raises(AssertionError, match=words):
        verify_ledger()


def test_a_deleted_document_row_is_missing_and_a_row_without_entry_is_named(world, verify_ledger):
    doc = attach(world)
    ProjectDocument.objects.filter(pk=doc.pk).update(entry_seq=doc.entry_seq + 1000)
    with pytest.raises(AssertionError, match="document recorded by the ledger is missing"):
        verify_ledger()


def test_both_verifier_paths_replay_documents_and_name_a_changed_hash(
    world, verifier_path, verify_ledger
):
    docs = [attach(world, title=f"Report {i}", content=demo.pdf([f"Report {i}"])) for i in range(3)]
    for i in range(10):  # transfers around them, which the parallel path takes in bulk
        services.credit_transfer(
            actor=world.dev,
            batch=world.issue(1_000).pk if i == 0 else world.project.batches.first().pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=10,
        )
    attach(world, title="Report 3", content=demo.pdf(["Report 3"]))
    verify_ledger()
    ProjectDocument.objects.filter(pk=docs[1].pk).update(sha256="0" * 64)
    with pytest.raises(AssertionError, match="document row differs from the ledger: sha256"):
        verify_ledger()


def test_attaching_the_same_file_again_puts_back_a_lost_copy(world, store):
    doc = attach(world)
    documents.path_for(doc.sha256).unlink()
    entries = LedgerEntry.objects.count()
    assert attach(world).pk == doc.pk
    assert LedgerEntry.objects.count() == entries
    assert documents.read_verified(doc.sha256, what="test") == PDF
