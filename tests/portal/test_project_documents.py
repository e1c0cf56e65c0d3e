"""The project page's documents, through Django's test client: none yet, in both languages; a
listed document links its download and its ledger entry, with its hash in full on the page."""

from __future__ import annotations

import pytest

from ledger import demo, services
from tests.factories import OPERATOR

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def store(settings, tmp_path):
    settings.DOCUMENTS_DIR = tmp_path / "documents"


@pytest.mark.parametrize(
    ("language", "words"), [("en", "No document attached yet."), ("zh-hans", "尚未附加任何文档")]
)
def test_a_project_without_documents_says_so(world, client, language, words):
    page = client.get(f"/registry/projects/{world.project.code}/", HTTP_ACCEPT_LANGUAGE=language)
    assert words in page.content.decode()


def test_a_document_links_its_download_and_its_entry(world, client):
    doc = services.project_document_attach(
        actor=OPERATOR,
        project=world.project.pk,
        kind="validation_report",
        title="Validation report",
        content=demo.pdf(["Validation report"]),
        media_type="application/pdf",
    )
    html = client.get(f"/registry/projects/{world.project.code}/").content.decode()
    assert f'href="/api/v1/documents/{doc.pk}/content" download' in html
    assert f'href="/audit/ledger/{doc.entry_seq}/"' in html
    assert doc.sha256 in html and "Validation report" in html
    assert f"{doc.size}\xa0bytes" in html
