"""The browser half of bid sealing (auctions/static/auctions/js/seal.js) against Python's
`cryptography`: a real Chromium seals, Python opens.

Debian's Chromium (/usr/bin/chromium) through Playwright, which downloads no browser here. The
static files are served from 127.0.0.1 (a secure context, which WebCrypto's X25519 needs) with a
Content-Security-Policy that forbids inline script and eval, as the site's does. The page's
screenshot goes to test-artifacts/browser_seal.png.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auctions.core import sealing
from tests.browser import chromium, page_problems
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "auctions" / "static"
PAGE_DIR = Path(__file__).resolve().parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
ORIGIN = "bluecarbon.localhost/ledger"
PAD_BLOCK = 256


def bid_info(origin: str, auction: int, bidder: int) -> bytes:
    return f"bluecarbon/auction-bid/v1\n{origin}\n{auction}\n{bidder}".encode()


class _Handler(SimpleHTTPRequestHandler):
    """/static/ is auctions/static/, as STATIC_URL serves it; /page/ is this test's page."""

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
            # Chromium asks for one on every page; a 404 would be a console error.
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
    page.goto(f"{server}/page/seal_page.html")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()
    assert problems == []


@pytest.fixture
def auction_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_key_b64(private_key: X25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def seal(page: Any, **bid: Any) -> dict[str, Any]:
    return page.evaluate("bid => window.sealAndShow(bid)", bid)


def seal_error(page: Any, **bid: Any) -> str | None:
    """The error sealBid throws for this bid, as 'Name: message', or None if it sealed."""
    return page.evaluate(
        "bid => window.sealBid(bid).then(() => null, e => `${e.name}: ${e.message}`)", bid
    )


def test_the_browser_seals_a_bid_that_cryptography_opens(page, auction_key):
    tiers = [{"price": 12_500, "lots": 3}, {"price": 11_000, "lots": 7}, {"price": 0, "lots": 1}]

    sealed = seal(
        page,
        publicKey=public_key_b64(auction_key),
        origin=ORIGIN,
        auction=41,
        bidder=7,
        tiers=tiers,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser_seal.png"), full_page=True)

    ciphertext = base64.b64decode(sealed["ciphertext"], validate=True)
    assert base64.b64encode(ciphertext).decode() == sealed["ciphertext"]
    assert sealed["commitment"] == hashlib.sha256(ciphertext).hexdigest()
    plaintext = SUITE.decrypt(ciphertext, auction_key, info=bid_info(ORIGIN, 41, 7))
    # enc (32 bytes) || AEAD ciphertext || 16-byte GCM tag, as cryptography's encrypt lays it out.
    assert len(ciphertext) == 32 + len(plaintext) + 16
    assert len(plaintext) == sealed["plaintextLength"]
    assert len(plaintext) % PAD_BLOCK == 0

    bid = json.loads(plaintext)
    assert plaintext == rfc8785.dumps(bid)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", bid["nonce"])
    assert len(base64.urlsafe_b64decode(bid["nonce"] + "==")) == 16
    assert re.fullmatch(r"0*", bid["pad"])
    assert bid == {
        "auction": 41,
        "bidder": 7,
        "nonce": bid["nonce"],
        "pad": bid["pad"],
        "tiers": [
            {"lots": 3, "price": 12_500},
            {"lots": 7, "price": 11_000},
            {"lots": 1, "price": 0},
        ],
        "v": 1,
    }
    # And the server's own opener (what the worker runs at close) reads the same bid, with
    # the same info binding and the same plaintext rules.
    opened = sealing.open_bid(
        private_key=auction_key, ciphertext=ciphertext, origin=ORIGIN, auction=41, bidder=7
    )
    assert opened.tiers == bid["tiers"]
    with pytest.raises(sealing.SealError) as refused:
        sealing.open_bid(
            private_key=auction_key, ciphertext=ciphertext, origin=ORIGIN, auction=41, bidder=8
        )
    assert refused.value.code == "unreadable"
    assert sealing.info(ORIGIN, 41, 7) == bid_info(ORIGIN, 41, 7)
    assert sealing.PAD_BLOCK == PAD_BLOCK


@pytest.mark.parametrize(
    "info",
    [
        bid_info(ORIGIN, 42, 7),
        bid_info(ORIGIN, 41, 8),
        bid_info("bluecarbon.example/ledger", 41, 7),
        b"",
    ],
    ids=["other-auction", "other-bidder", "other-origin", "no-info"],
)
def test_a_sealed_bid_does_not_open_under_another_auction_bidder_or_origin(page, auction_key, info):
    sealed = seal(
        page,
        publicKey=public_key_b64(auction_key),
        origin=ORIGIN,
        auction=41,
        bidder=7,
        tiers=[{"price": 100, "lots": 1}],
    )
    ciphertext = base64.b64decode(sealed["ciphertext"])

    with pytest.raises(InvalidTag):
        SUITE.decrypt(ciphertext, auction_key, info=info)


def test_the_ciphertext_length_does_not_tell_how_many_tiers_a_bid_has(page, auction_key):
    # Up to the pad block, that is: six tiers of these sizes fit in 256 bytes, more take 512.
    lengths = set()
    for count in range(1, 7):
        tiers = [{"price": 125_000 - 500 * i, "lots": 10 + i} for i in range(count)]
        sealed = seal(
            page,
            publicKey=public_key_b64(auction_key),
            origin=ORIGIN,
            auction=1,
            bidder=2,
            tiers=tiers,
        )
        plaintext = SUITE.decrypt(
            base64.b64decode(sealed["ciphertext"]), auction_key, info=bid_info(ORIGIN, 1, 2)
        )
        assert [(t["price"], t["lots"]) for t in json.loads(plaintext)["tiers"]] == [
            (t["price"], t["lots"]) for t in tiers
        ]
        lengths.add(len(sealed["ciphertext"]))

    assert len(lengths) == 1


def test_two_seals_of_the_same_bid_differ(page, auction_key):
    bid = {
        "publicKey": public_key_b64(auction_key),
        "origin": ORIGIN,
        "auction": 3,
        "bidder": 4,
        "tiers": [{"price": 5, "lots": 6}],
    }

    first, second = seal(page, **bid), seal(page, **bid)

    assert first["ciphertext"] != second["ciphertext"]
    assert first["commitment"] != second["commitment"]
    nonces = {
        json.loads(
            SUITE.decrypt(
                base64.b64decode(s["ciphertext"]), auction_key, info=bid_info(ORIGIN, 3, 4)
            )
        )["nonce"]
        for s in (first, second)
    }
    assert len(nonces) == 2


GOOD = {"origin": ORIGIN, "auction": 1, "bidder": 1, "tiers": [{"price": 1, "lots": 1}]}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"tiers": []}, "TypeError: tiers must be a non-empty array"),
        ({"tiers": [{"price": -1, "lots": 1}]}, "RangeError: tiers[0].price"),
        ({"tiers": [{"price": 1.5, "lots": 1}]}, "RangeError: tiers[0].price"),
        ({"tiers": [{"price": "10", "lots": 1}]}, "RangeError: tiers[0].price"),
        ({"tiers": [{"price": 2**53, "lots": 1}]}, "RangeError: tiers[0].price"),
        (
            {"tiers": [{"price": 1, "lots": 1}, {"price": 1, "lots": 0}]},
            "RangeError: tiers[1].lots",
        ),
        ({"tiers": [{"price": 1}]}, "RangeError: tiers[0].lots"),
        ({"tiers": [{"price": 1, "lots": 1, "note": "x"}]}, "TypeError: tiers[0] has unknown"),
        ({"auction": 0}, "RangeError: auction"),
        ({"bidder": "7"}, "RangeError: bidder"),
        ({"origin": "bluecarbon.localhost\n1"}, "TypeError: origin"),
        ({"origin": ""}, "TypeError: origin"),
        ({"publicKey": "AAAA"}, "TypeError: publicKey"),
    ],
)
def test_sealbid_refuses_a_malformed_bid(page, auction_key, change, error):
    bid = {"publicKey": public_key_b64(auction_key), **GOOD, **change}

    assert (seal_error(page, **bid) or "").startswith(error)


def test_sealbid_seals_the_good_bid_those_cases_start_from(page, auction_key):
    assert seal_error(page, publicKey=public_key_b64(auction_key), **GOOD) is None
