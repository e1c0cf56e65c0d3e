"""The retirement certificate as a document: its QR code opens its public page, its JSON is
public (no key, throttled per address) and says nothing the page does not, and the printed
page leaves the proof material to the screen and the proof file."""

from __future__ import annotations

import re
from html import unescape

import pytest
import segno
from django.core.cache import caches
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle

from ledger import services
from ledger.models import Retirement

pytestmark = pytest.mark.django_db


@pytest.fixture
def retirement(world) -> Retirement:
    b = world.issue(100_000)
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=5_000,
    )
    services.credit_retire(
        actor=world.buy,
        batch=b.pk,
        account=world.buyer_account.pk,
        quantity=2_000,
        beneficiary="宁波海岸能源有限公司",
        purpose="Offsetting 2022 Scope 1 emissions",
        jurisdiction="CN-ZJ",
    )
    services.ledger_checkpoint_issue()
    return Retirement.objects.get()


def qr_modules(html: str) -> list[list[bool]]:
    """The dark modules of the page's QR code, read back from segno's SVG path: ``M x y``
    moves to a row's centre line, ``m dx dy`` moves relative, ``h n`` draws n dark modules."""
    svg = re.search(r'<svg [^>]*viewBox="0 0 (\d+) \1"[^>]*class="qr".*?</svg>', html, re.S)
    assert svg, "no QR code"
    size = int(svg.group(1))
    path = re.search(r' d="([^"]+)"', svg.group(0)).group(1)
    grid = [[False] * size for _ in range(size)]
    x = y = 0.0
    for op, args in re.findall(r"([MmHh])([-\d. ]+)", path.replace("-", " -")):
        nums = [float(n) for n in args.split()]
        if op == "M":
            x, y = nums
        elif op == "m":
            x, y = x + nums[0], y + nums[1]
        else:
            for i in range(int(nums[0])):
                grid[int(y)][int(x) + i] = True
            x += nums[0]
    return grid


def expected_modules(url: str, border: int = 4) -> list[list[bool]]:
    matrix = segno.make_qr(url, error="m").matrix
    size = len(matrix) + 2 * border
    grid = [[False] * size for _ in range(size)]
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            grid[r + border][c + border] = bool(dark)
    return grid


def test_the_qr_code_opens_the_certificates_public_page(retirement, client):
    url = f"http://testserver/registry/certificates/{retirement.certificate}/"
    html = client.get(f"/registry/certificates/{retirement.certificate}/").content.decode()
    assert qr_modules(html) == expected_modules(url)
    assert qr_modules(html) != expected_modules(url + "x")  # the check can fail
    assert f'<dd class="cert-url">{url}</dd>' in html
    assert " style=" not in html


def test_the_qr_code_uses_the_configured_public_address(retirement, client, settings):
    settings.PORTAL_BASE_URL = "https://registry.example.org/"
    url = f"https://registry.example.org/registry/certificates/{retirement.certificate}/"
    html = client.get(f"/registry/certificates/{retirement.certificate}/").content.decode()
    assert qr_modules(html) == expected_modules(url)


def test_the_certificate_json_needs_no_key_and_shows_only_what_the_page_shows(retirement, client):
    api = APIClient()
    r = api.get(f"/api/v1/retirements/{retirement.certificate}")
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["certificate"] == retirement.certificate
    assert data["beneficiary"] == "宁波海岸能源有限公司"
    page = client.get(f"/registry/certificates/{retirement.certificate}/").content.decode()
    # The account and batch ids are in the entry's own bytes, which the page prints.
    assert f'"account":{retirement.account_id}' in data["entry"]
    assert f'"batch":{retirement.batch_id}' in data["entry"]
    assert data["entry"] in unescape(page)
    for key in ("certificate", "batch_serial", "project_code", "beneficiary", "purpose"):
        assert str(data[key]) in page, key
    assert data["entry_sha256"] in page
    # The page links it.
    assert f'href="/api/v1/retirements/{retirement.certificate}"' in page


def test_the_public_certificate_json_is_throttled_per_address(retirement, monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "2/min", "apikey": "9/min"})
    caches["default"].clear()
    api = APIClient()
    codes = [api.get(f"/api/v1/retirements/{retirement.certificate}").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_the_printed_certificate_leaves_the_proof_to_the_screen(retirement, client):
    html = client.get(f"/registry/certificates/{retirement.certificate}/").content.decode()
    assert '<section class="cert-proof"' in html and '<section class="cert-seal"' in html
    assert "portal/certificate.css" in html and "portal/js/print.js" in html
    assert "data-print" in html and "Print or save as PDF" in html
    zh = client.get(
        f"/registry/certificates/{retirement.certificate}/", HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()
    assert "扫码在登记簿上打开并核验本证书" in zh and "打印或另存为 PDF" in zh
