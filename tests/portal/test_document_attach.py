"""A registrar attaches a document to its registry's project from the portal
(portal/document_views.py): the file and its ledger entry as the service writes them, a refusal
said next to the file in the reader's language with nothing written, and nobody else attaching:
not the public, not a bidder, not another registry (attacks kept as tests)."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from ledger import demo
from ledger.core.entry import decode_entry
from ledger.models import LedgerEntry, ProjectDocument, Role
from tests import factories
from tests.portal.test_pages import user_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def store(settings, tmp_path):
    settings.DOCUMENTS_DIR = tmp_path / "documents"


@pytest.fixture
def registry_project(world):
    """A project of a registry that is only a registry (the world's is also the operator)."""
    registry = factories.organization(Role.REGISTRY, handle="bluesea-registry")
    return factories.project(registry, world.developer)


def url(project) -> str:
    return f"/registry/projects/{project.code}/documents/attach/"


def post(client: Client, project, content: bytes, name: str = "report.pdf", **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"kind": "monitoring_report", "title": "Monitoring report 2024", **fields}
    data["file"] = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    return client.post(url(project), data, HTTP_ACCEPT_LANGUAGE=fields.pop("lang", "en"))


def nothing_written(before: int) -> None:
    assert ProjectDocument.objects.count() == 0
    assert LedgerEntry.objects.count() == before


def test_a_registrar_attaches_a_report_and_finds_it_on_the_project_page(registry_project):
    registrar = user_for(registry_project.registry, "registrar")
    page = registrar.get(f"/registry/projects/{registry_project.code}/").content.decode()
    assert f'href="{url(registry_project)}"' in page  # the way in, on the project page
    assert registrar.get(url(registry_project)).status_code == 200
    pdf = demo.pdf(["Monitoring report 2024"])
    r = post(registrar, registry_project, pdf)
    assert r.status_code == 302
    assert r["Location"] == f"/registry/projects/{registry_project.code}/#documents-h"
    doc = ProjectDocument.objects.get()
    assert (doc.project_id, doc.kind, doc.title) == (
        registry_project.pk,
        "monitoring_report",
        "Monitoring report 2024",
    )
    # Typed by its bytes (the browser said application/octet-stream), hashed on the ledger.
    assert doc.media_type == "application/pdf"
    entry = LedgerEntry.objects.get(seq=doc.entry_seq)
    data = decode_entry(bytes(entry.body)).data
    assert entry.type == "document.attach"
    assert data["document"]["sha256"] == hashlib.sha256(pdf).hexdigest() == doc.sha256
    page = registrar.get(r["Location"]).content.decode()
    assert f"ledger entry #{doc.entry_seq}" in page and "Monitoring report 2024" in page


def test_a_refused_file_is_said_next_to_it_in_the_readers_language_and_nothing_is_written(
    registry_project,
):
    registrar = user_for(registry_project.registry, "registrar")
    before = LedgerEntry.objects.count()
    r = post(registrar, registry_project, b"MZ\x90\x00\x03\x00 a program", name="report.pdf")
    assert r.status_code == 422
    html = r.content.decode()
    assert 'id="id_file-error"' in html
    assert "This file is not a PDF, plain text (UTF-8), PNG or JPEG file." in html
    nothing_written(before)
    r = post(registrar, registry_project, b"\x00\x01binary", lang="zh-hans")
    assert r.status_code == 422
    assert "此文件不是 PDF、纯文本\uff08UTF-8\uff09、PNG 或 JPEG 文件。" in r.content.decode()
    nothing_written(before)
    # A title too long and an unknown kind: Django's own words, on their fields.
    r = post(registrar, registry_project, demo.pdf(["x"]), title="t" * 301, kind="receipt")
    assert r.status_code == 422
    html = r.content.decode()
    assert 'id="id_title-error"' in html and 'id="id_kind-error"' in html
    nothing_written(before)


def test_the_same_file_under_another_title_is_refused_and_the_same_again_is_one_document(
    registry_project,
):
    registrar = user_for(registry_project.registry, "registrar")
    pdf = demo.pdf(["Verification report"])
    assert post(registrar, registry_project, pdf).status_code == 302
    entries = LedgerEntry.objects.count()
    r = post(registrar, registry_project, pdf, title="Another title")
    assert r.status_code == 422
    assert "already attached to the project, under another title or kind" in r.content.decode()
    assert post(registrar, registry_project, pdf).status_code == 302  # a repeat: no new entry
    assert ProjectDocument.objects.count() == 1 and LedgerEntry.objects.count() == entries


def test_an_operator_attaches_to_any_project(world, registry_project):
    operator = user_for(None, "root", is_superuser=True, is_staff=True)
    assert post(operator, registry_project, demo.pdf(["x"])).status_code == 302
    assert ProjectDocument.objects.get().project_id == registry_project.pk


def test_nobody_else_attaches_and_is_told_so(world, registry_project, client):
    other = factories.organization(Role.REGISTRY, handle="other-registry")
    before = LedgerEntry.objects.count()
    # The public: to the sign-in page.
    r = post(client, registry_project, demo.pdf(["x"]))
    assert r.status_code == 302 and r["Location"].startswith("/account/login/?next=")
    # A bidder, and the registrar of another registry: refused, and no way in on the page.
    for who in (user_for(world.buyer, "bidder"), user_for(other, "other-registrar")):
        page = who.get(f"/registry/projects/{registry_project.code}/").content.decode()
        assert url(registry_project) not in page
        assert who.get(url(registry_project)).status_code == 403
        r = post(who, registry_project, demo.pdf(["x"]))
        assert r.status_code == 403 and "Only the project&#x27;s registry" in r.content.decode()
    nothing_written(before)
    # A project that does not exist.
    registrar = user_for(registry_project.registry, "registrar")
    assert registrar.get("/registry/projects/NO-SUCH/documents/attach/").status_code == 404


def test_the_form_needs_its_csrf_token(registry_project):
    registrar = user_for(registry_project.registry, "registrar")
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = registrar.cookies
    before = LedgerEntry.objects.count()
    assert post(strict, registry_project, demo.pdf(["x"])).status_code == 403
    nothing_written(before)
