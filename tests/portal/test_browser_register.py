"""The public register in Debian's Chromium at a phone's width (390 px), in English and in
Chinese: search, filter with the form (no script), download the CSV and the JSON of what is
listed, open a batch; no sideways scrolling, no console error or CSP violation, no axe-core
violation."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ledger import public_register as register
from tests.browser import axe_violations, horizontal_overflow, overflowing, page_problems

pytestmark = [pytest.mark.browser]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def reg(site: str) -> Any:
    from tests.portal.test_register import Register

    return Register()


def _fits(page: Any) -> None:
    assert horizontal_overflow(page) == 0, overflowing(page)
    assert axe_violations(page) == [], page.url


WORDS = {
    "en-GB": {"search": "Search", "vintage": "Vintage", "csv": "CSV", "json": "JSON"},
    "zh-CN": {"search": "搜索", "vintage": "年份", "csv": "CSV", "json": "JSON"},
}


@pytest.mark.parametrize("locale", ["en-GB", "zh-CN"])
def test_search_filter_and_export_at_phone_width(browser, site, reg, locale, tmp_path):
    words = WORDS[locale]
    context = browser.new_context(
        base_url=site, locale=locale, viewport=PHONE, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)

    page.goto("/registry/batches/")
    if locale == "zh-CN":
        page.wait_for_selector("html[lang=zh-Hans]")
    _fits(page)
    rows = page.locator("tbody tr")
    assert rows.count() == 3

    # Search by a word of the project's name, then narrow by a vintage, with the form alone.
    page.get_by_label(words["search"], exact=True).fill("xiangshan")
    page.get_by_role("button", name=words["search"]).click()
    page.wait_for_url("**q=xiangshan**")
    assert rows.count() == 1 and reg.b2023.serial in rows.first.text_content()

    page.goto("/registry/batches/")
    page.get_by_label(words["vintage"], exact=True).fill("2021")
    page.select_option("#filter-jurisdiction", "CN-GD")
    page.get_by_role("button", name=words["search"]).click()
    page.wait_for_url("**vintage=2021**")
    assert rows.count() == 1 and reg.b2021.serial in rows.first.text_content()
    _fits(page)

    # The downloads hold exactly the listed batch, with the documented columns.
    with page.expect_download() as got:
        page.get_by_role("link", name=words["csv"], exact=True).click()
    path = got.value.path()
    assert got.value.suggested_filename.startswith("batches-")
    table = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert [r["serial"] for r in table] == [reg.b2021.serial]
    assert list(table[0]) == list(register.COLUMNS["batches"])
    assert table[0]["issued_tco2e"] == "1000.000"
    with page.expect_download() as got:
        page.get_by_role("link", name=words["json"], exact=True).click()
    doc = json.loads(Path(got.value.path()).read_text(encoding="utf-8"))
    assert [r["serial"] for r in doc["rows"]] == [reg.b2021.serial]
    assert doc["filters"] == {"jurisdiction": "CN-GD", "vintage": 2021}

    # A bad value is said on its field, and nothing is listed.
    page.goto("/registry/batches/?vintage=20x1")
    field = page.locator("#filter-vintage")
    assert field.get_attribute("aria-invalid") == "true"
    assert page.locator("#filter-vintage-error").is_visible()
    assert page.locator("tbody tr").count() == 0
    _fits(page)
    # Chromium logs every 4xx page it loads; that one is the refusal this step asks for.
    refused = "console error: Failed to load resource: the server responded with a status of 400"
    assert sum(p.startswith(refused) for p in problems) == 1
    problems[:] = [p for p in problems if not p.startswith(refused)]

    # The batch's page, from the list.
    page.goto("/registry/batches/")
    page.get_by_role("link", name=reg.b2021.serial).click()
    page.wait_for_selector("#invariant[data-holds=true]")
    _fits(page)

    for url in ("/registry/projects/?ecosystem=seagrass", "/registry/retirements/?q=ningbo"):
        page.goto(url)
        assert page.locator("tbody tr").count() == 1
        _fits(page)
    context.close()
    assert problems == []
