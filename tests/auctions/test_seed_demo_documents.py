"""``seed_demo`` attaches each demo project's monitoring and verification reports: tiny PDFs made
at seed time, the verification report being exactly the file its batch's
``verification_report_sha256`` names; the ledger verifies with them and each downloads."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from ledger import documents
from ledger.demo import pdf
from ledger.models import Batch, LedgerEntry, ProjectDocument

pytestmark = pytest.mark.django_db


def test_the_demo_attaches_each_batchs_reports_and_its_ledger_verifies(
    settings, tmp_path, verify_ledger
):
    settings.DOCUMENTS_DIR = tmp_path / "documents"
    call_command("seed_demo", stdout=io.StringIO())
    docs = list(ProjectDocument.objects.select_related("project"))
    batches = list(Batch.objects.all())
    assert len(docs) == 2 * len(batches) == 8
    assert {d.kind for d in docs} == {"monitoring_report", "verification_report"}
    for b in batches:
        report = ProjectDocument.objects.get(project=b.project, kind="verification_report")
        assert report.sha256 == b.verification_report_sha256
        assert b.verification_body in report.title
    for d in docs:
        content = documents.read_verified(d.sha256, what="demo")
        assert content.startswith(b"%PDF-1.4") and content.endswith(b"%%EOF\n")
        assert 400 < d.size < 2_000 and d.media_type == "application/pdf"
        assert LedgerEntry.objects.get(seq=d.entry_seq).type == "document.attach"
    got = APIClient().get(f"/api/v1/documents/{docs[0].pk}/content")
    assert hashlib.sha256(got.content).hexdigest() == docs[0].sha256
    verify_ledger()
    call_command("seed_demo", stdout=io.StringIO())  # a second run: nothing to do
    assert ProjectDocument.objects.count() == 8


def test_the_demo_pdf_is_a_well_formed_pdf():
    content = pdf(["Title (with parentheses)", "back\\slash"])
    # The cross-reference table's offsets point at each object.
    xref = int(content.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert content[xref:].startswith(b"xref\n0 6\n")
    offsets = [int(line[:10]) for line in content[xref:].split(b"\n")[3:8]]
    for number, offset in enumerate(offsets, start=1):
        assert content[offset:].startswith(b"%d 0 obj" % number)
    assert b"(Title \\(with parentheses\\)) Tj" in content
