"""A project's documents on its page, in Debian's Chromium: listed with their kind, title, date,
size and shortened SHA-256 (the whole value a click away), each downloading as the file whose
hash the ledger holds; in English and in Chinese, on a 390 px phone without sideways scrolling,
with no console error, no CSP violation and no axe-core violation."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from ledger import demo, services
from tests import factories
from tests.browser import axe_violations, horizontal_overflow, overflowing, page_problems
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def project(site: str, settings: Any, tmp_path: Path) -> Any:
    settings.DOCUMENTS_DIR = tmp_path / "documents"
    world = factories.World()
    factories.batch(world.project, 50_000, holder=world.dev_account, share_bp=0)
    for kind, title, content, media in (
        (
            "monitoring_report",
            "Monitoring report 2021",
            demo.pdf(["Monitoring report", "2021"]),
            "application/pdf",
        ),
        (
            "verification_report",
            "Verification report 2021 (China Quality Certification Centre)",
            "Verification report\n红树林 2021\n".encode(),
            "text/plain",
        ),
    ):
        services.project_document_attach(
            actor=factories.OPERATOR,
            project=world.project.pk,
            kind=kind,
            title=title,
            content=content,
            media_type=media,
        )
    return world.project


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", {"h2": "Documents", "kind": "Verification report", "size": "bytes"}),
        ("zh-hans", {"h2": "文档", "kind": "核查报告", "size": "字节"}),
    ],
)
def test_the_project_page_lists_its_documents_and_each_downloads(
    browser, site, project, language, words
):
    context = browser.new_context(
        base_url=site,
        viewport=PHONE,
        accept_downloads=True,
        extra_http_headers={"Accept-Language": language},
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    page.goto(f"/registry/projects/{project.code}/")
    page.wait_for_selector("#project-map[data-ready]")  # the page's map has settled
    assert page.locator("#documents-h").text_content() == words["h2"]
    rows = page.locator("table.documents tbody tr")
    assert rows.count() == 2
    docs = list(project.documents.order_by("entry_seq"))
    text = rows.nth(1).inner_text()
    assert docs[1].title in text and words["kind"] in text and words["size"] in text
    assert horizontal_overflow(page) == 0, overflowing(page)
    # The hash shortened, the whole value on demand.
    full = rows.nth(1).locator("code.hash-full")
    assert not full.is_visible()
    rows.nth(1).locator("details.hash-more summary").click()
    assert full.text_content() == docs[1].sha256
    assert horizontal_overflow(page) == 0, overflowing(page)
    assert axe_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / f"project-documents-{language}.png"), full_page=True)

    for i, d in enumerate(docs):
        with page.expect_download() as info:
            rows.nth(i).locator(f"a[data-document='{d.pk}']").click()
        download = info.value
        assert hashlib.sha256(Path(download.path()).read_bytes()).hexdigest() == d.sha256
        assert download.suggested_filename.startswith(d.title.split(" (")[0])
    context.close()
    assert problems == []
