"""The admin attaches a document through the service (an add form); it never edits or deletes
one, and a refused file shows the service's code and changes nothing."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ledger import demo
from ledger.models import LedgerEntry, ProjectDocument

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def store(settings, tmp_path):
    settings.DOCUMENTS_DIR = tmp_path / "documents"


def post(admin_client, world, content: bytes, content_type: str = "application/pdf"):
    return admin_client.post(
        "/admin/ledger/projectdocument/add/",
        {
            "project": world.project.pk,
            "kind": "monitoring_report",
            "title": "Monitoring report 2024",
            "file": SimpleUploadedFile("report.pdf", content, content_type),
            "media_type": "",
        },
    )


def test_the_admin_attaches_a_document_through_the_service(world, admin_client):
    entries = LedgerEntry.objects.count()
    r = post(admin_client, world, demo.pdf(["Monitoring report 2024"]))
    assert r.status_code == 302, r.content.decode()[:2000]
    doc = ProjectDocument.objects.get()
    assert (doc.title, doc.kind, doc.media_type) == (
        "Monitoring report 2024",
        "monitoring_report",
        "application/pdf",
    )
    assert LedgerEntry.objects.count() == entries + 1
    assert LedgerEntry.objects.get(seq=doc.entry_seq).type == "document.attach"
    page = admin_client.get(f"/admin/ledger/projectdocument/{doc.pk}/change/")
    assert page.status_code == 200 and doc.sha256 in page.content.decode()
    assert admin_client.get("/admin/ledger/projectdocument/").status_code == 200


def test_a_refused_file_shows_the_code_and_changes_nothing(world, admin_client):
    entries = LedgerEntry.objects.count()
    r = post(admin_client, world, b"not a pdf")
    assert r.status_code == 200
    assert "document_content_mismatch" in r.content.decode()
    assert not ProjectDocument.objects.exists()
    assert LedgerEntry.objects.count() == entries


def test_the_admin_never_edits_or_deletes_a_document(world, admin_client):
    post(admin_client, world, demo.pdf(["Monitoring report 2024"]))
    doc = ProjectDocument.objects.get()
    r = admin_client.post(f"/admin/ledger/projectdocument/{doc.pk}/change/", {"title": "Changed"})
    assert r.status_code == 403
    assert admin_client.get(f"/admin/ledger/projectdocument/{doc.pk}/delete/").status_code == 403
    doc.refresh_from_db()
    assert doc.title == "Monitoring report 2024"
