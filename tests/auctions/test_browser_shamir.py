"""The vendored shamir-secret-sharing (auctions/static/auctions/vendor/shamir/) in a real Chromium
against Python's bluecarbon_audit.auctions.shamir: one field and one share encoding on both sides.

The bundle is loaded as the site will serve it: from 127.0.0.1 under a Content-Security-Policy
that forbids inline script and eval, through tests/auctions/shamir_page.js. The browser combines
the shared vectors (audit/tests/vectors/shamir.json), splits secrets that Python combines, and
combines shares that Python split. The page's screenshot goes to test-artifacts/browser_shamir.png.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from bluecarbon_audit.auctions import shamir

from tests.browser import chromium, page_problems
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "auctions" / "static"
BUNDLE = STATIC / "auctions" / "vendor" / "shamir" / "shamir.min.js"
PAGE_DIR = Path(__file__).resolve().parent
VECTORS = json.loads((REPO / "audit" / "tests" / "vectors" / "shamir.json").read_text())
EVERY_VECTOR = [
    pytest.param(v, id=f"{kind}-{v['k']}-of-{v['n']}-{len(v['secret']) // 2}B")
    for kind in ("fixed", "js_split")
    for v in VECTORS[kind]
]
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# 255 of 255 is for the limits, not the field: with every nonzero x, each Lagrange coefficient at
# 0 is 1, so combining all 255 shares XORs their ys, whatever the field.
KN = [(2, 2), (2, 3), (3, 5), (5, 5), (4, 7), (255, 255)]


class _Handler(SimpleHTTPRequestHandler):
    """/static/ is auctions/static/, as STATIC_URL serves it; /page/ is this test's page (the
    same server as test_browser_seal.py's)."""

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, root in (("/static/", STATIC), ("/page/", PAGE_DIR)):
            if path.startswith(prefix):
                target = (root / path.removeprefix(prefix)).resolve()
                if target.is_relative_to(root) and target.suffix in {".html", ".js", ".css"}:
                    return str(target)
        return str(PAGE_DIR / "does-not-exist")

    def do_GET(self) -> None:
        if self.path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(PAGE_DIR)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """The test page, loaded; fails the test on any page error or console error (a CSP
    violation is one)."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems = page_problems(page)
    page.goto(f"{server}/page/shamir_page.html")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()
    assert problems == []


def browser_combine_all(page: Any, subsets: list[list[str]]) -> list[str]:
    """The browser's combine of each list of hex shares, as hex."""
    return page.evaluate(
        "subsets => Promise.all(subsets.map(s => window.shamir.combine(s)))", subsets
    )


def k_subsets(shares: list[str], k: int) -> list[list[str]]:
    return [list(subset) for subset in itertools.combinations(shares, k)]


def test_the_vectors_were_made_by_the_bundle_the_site_serves():
    assert VECTORS["library"]["bundle_sha256"] == hashlib.sha256(BUNDLE.read_bytes()).hexdigest()


@pytest.mark.parametrize("vector", EVERY_VECTOR)
def test_the_browser_combines_every_k_subset_of_every_vector_to_its_secret(page, vector):
    subsets = k_subsets(vector["shares"], vector["k"])

    assert browser_combine_all(page, subsets) == [vector["secret"]] * len(subsets)


@pytest.mark.parametrize("length", [1, 32])
@pytest.mark.parametrize(("k", "n"), KN, ids=[f"{k}-of-{n}" for k, n in KN])
def test_python_combines_what_the_browser_split_from_every_k_subset(page, k, n, length):
    made = page.evaluate("([l, n, k]) => window.shamir.splitRandom(l, n, k)", [length, n, k])
    if (k, n, length) == (3, 5, 32):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser_shamir.png"), full_page=True)
    shares = [bytes.fromhex(share) for share in made["shares"]]

    assert len(shares) == n
    assert {len(share) for share in shares} == {length + 1}
    assert len({share[-1] for share in shares} - {0}) == n
    # Every subset when there are few (C(7, 4) = 35 at most here); for 255 of 255, the one.
    for subset in itertools.combinations(shares, k):
        assert shamir.combine(subset).hex() == made["secret"]


@pytest.mark.parametrize("length", [1, 32])
@pytest.mark.parametrize(("k", "n"), KN, ids=[f"{k}-of-{n}" for k, n in KN])
def test_the_browser_combines_what_python_split_from_every_k_subset(page, k, n, length):
    secret = secrets.token_bytes(length)
    shares = [share.hex() for share in shamir.split(secret, n, k)]
    subsets = k_subsets(shares, k)

    assert browser_combine_all(page, subsets) == [secret.hex()] * len(subsets)


@pytest.mark.parametrize(
    "refused", VECTORS["js_refuses"], ids=lambda r: f"{r['k']}-of-{r['n']}-{r['secret_length']}B"
)
def test_the_browser_refuses_the_splits_python_refuses(page, refused):
    args = [refused["secret_length"], refused["n"], refused["k"]]

    assert (
        page.evaluate("([l, n, k]) => window.shamir.splitError(l, n, k)", args)
        == (refused["error"])
    )
    with pytest.raises(shamir.ShamirError):
        shamir.split(bytes(refused["secret_length"]), refused["n"], refused["k"])
