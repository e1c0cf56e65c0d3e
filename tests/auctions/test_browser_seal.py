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
import itertools
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


# ---- sealed to trustees (docs/auctions.md §3.6) ---------------------------------------------

TIERS = [{"price": 12_500, "lots": 3}, {"price": 11_000, "lots": 7}]
TIERS_OPENED = [{"lots": 3, "price": 12_500}, {"lots": 7, "price": 11_000}]


def seal_for_trustees(page: Any, **bid: Any) -> bytes:
    sealed = page.evaluate("bid => window.sealForTrusteesAndShow(bid)", bid)
    ciphertext = base64.b64decode(sealed["ciphertext"], validate=True)
    assert sealed["commitment"] == hashlib.sha256(ciphertext).hexdigest()
    return ciphertext


def trustee_error(page: Any, **bid: Any) -> str | None:
    return page.evaluate(
        "bid => window.sealBidForTrustees(bid).then(() => null, e => `${e.name}: ${e.message}`)",
        bid,
    )


def open_with(
    ciphertext: bytes, keys: dict[int, X25519PrivateKey], n: int, auction: int = 41
) -> tuple[Any, str | None]:
    return sealing.open_threshold_for_book(
        released=keys, ciphertext=ciphertext, trustees=n, origin=ORIGIN, auction=auction, bidder=7
    )


def share_of(ciphertext: bytes, key: X25519PrivateKey, position: int) -> bytes:
    box = ciphertext[sealing.SHARE_BOX * (position - 1) : sealing.SHARE_BOX * position]
    return SUITE.decrypt(box, key, info=sealing.share_info(ORIGIN, 41, 7, position))


@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 5)])
def test_a_bid_sealed_to_trustees_in_the_browser_opens_with_any_k_released_keys_not_fewer(
    page, k, n
):
    keys = [X25519PrivateKey.generate() for _ in range(n)]

    ciphertext = seal_for_trustees(
        page,
        trustees=[{"publicKey": public_key_b64(key)} for key in keys],
        threshold=k,
        origin=ORIGIN,
        auction=41,
        bidder=7,
        tiers=TIERS,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser_seal_trustees_{k}_of_{n}.png"), full_page=True)

    # n share boxes of 81 bytes, then a body of one 256-byte padded plaintext: what the
    # server checks at intake.
    assert len(ciphertext) == n * 81 + 32 + PAD_BLOCK + 16
    sealing.check_envelope(ciphertext, n)
    shares = [share_of(ciphertext, key, i) for i, key in enumerate(keys, 1)]
    assert all(len(s) == 33 and s[-1] != 0 for s in shares)
    assert len({s[-1] for s in shares}) == n
    positions = range(1, n + 1)
    for chosen in itertools.combinations(positions, k):
        released = {p: keys[p - 1] for p in chosen}
        assert open_with(ciphertext, released, n) == (TIERS_OPENED, None), chosen
    for chosen in itertools.combinations(positions, k - 1):
        tiers, code = open_with(ciphertext, {p: keys[p - 1] for p in chosen}, n)
        assert tiers is None and code in {"unreadable_share", "unreadable"}, chosen
    # A key released for another position, or the bid claimed for another auction, opens no
    # share: each box is bound to its trustee's place and to this bid.
    swapped = {1: keys[1], 2: keys[0], **{p: keys[p - 1] for p in range(3, k + 1)}}
    assert open_with(ciphertext, swapped, n) == (None, "unreadable_share")
    first_k = {p: keys[p - 1] for p in range(1, k + 1)}
    assert open_with(ciphertext, first_k, n, auction=42) == (None, "unreadable_share")


def test_a_one_of_two_bid_gives_every_trustee_the_bid_key_itself(page):
    # k = 1 is the polynomial of degree 0 (§3.6 step 3): each share's y is the bid key, which
    # opens the body alone.
    keys = [X25519PrivateKey.generate() for _ in range(2)]

    ciphertext = seal_for_trustees(
        page,
        trustees=[{"publicKey": public_key_b64(key)} for key in keys],
        threshold=1,
        origin=ORIGIN,
        auction=41,
        bidder=7,
        tiers=TIERS,
    )

    shares = [share_of(ciphertext, key, i) for i, key in enumerate(keys, 1)]
    assert shares[0][:32] == shares[1][:32] and shares[0][32] != shares[1][32] != 0
    bid_key = sealing.load_private_key(shares[0][:32])
    body = ciphertext[2 * sealing.SHARE_BOX :]
    assert sealing.open_for_book(
        private_key=bid_key, ciphertext=body, origin=ORIGIN, auction=41, bidder=7
    ) == (TIERS_OPENED, None)


def api_sealing(keys: list[X25519PrivateKey], k: int, auction: int) -> dict[str, Any]:
    """The ``sealing`` object of GET /api/v1/auctions/{id} for a trustee-sealed auction, as
    auctions/apis.py makes it."""
    return {
        "mode": "trustees",
        "suite": sealing.SUITE_NAME,
        "origin": ORIGIN,
        "info_prefix": sealing.info(ORIGIN, auction, 0)[:-1].decode(),
        "share_info_prefix": sealing.share_info(ORIGIN, auction, 0, 0)[:-3].decode(),
        "public_key": None,
        "threshold": k,
        "trustees": [
            {"position": i, "trustee": 100 + i, "key": i, "public_key": public_key_b64(key)}
            for i, key in enumerate(keys, 1)
        ],
        "release_by": "2026-12-01T20:00:00Z",
    }


def test_sealbidforauction_seals_by_the_api_sealing_object_in_the_order_of_positions(page):
    keys = [X25519PrivateKey.generate() for _ in range(3)]
    description = api_sealing(keys, 2, 41)
    description["trustees"].reverse()  # the positions say the order, not the list

    sealed = page.evaluate(
        "bid => window.sealForAuctionAndShow(bid)",
        {"sealing": description, "auction": 41, "bidder": 7, "tiers": TIERS},
    )

    ciphertext = base64.b64decode(sealed["ciphertext"])
    assert open_with(ciphertext, {1: keys[0], 3: keys[2]}, 3) == (TIERS_OPENED, None)


def test_sealbidforauction_seals_to_an_operator_held_key_when_that_is_the_mode(page, auction_key):
    description = {
        "mode": "operator_key",
        "origin": ORIGIN,
        "info_prefix": sealing.info(ORIGIN, 41, 0)[:-1].decode(),
        "share_info_prefix": None,
        "public_key": public_key_b64(auction_key),
        "threshold": None,
        "trustees": [],
    }

    sealed = page.evaluate(
        "bid => window.sealForAuctionAndShow(bid)",
        {"sealing": description, "auction": 41, "bidder": 7, "tiers": TIERS},
    )

    opened = sealing.open_bid(
        private_key=auction_key,
        ciphertext=base64.b64decode(sealed["ciphertext"]),
        origin=ORIGIN,
        auction=41,
        bidder=7,
    )
    assert opened.tiers == TIERS_OPENED


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"mode": "anyone"}, 'TypeError: unknown sealing mode "anyone"'),
        # A template with literal backslash-n (issue 13, item 4) is not the bytes.
        ({"info_prefix": f"bluecarbon/auction-bid/v1\\n{ORIGIN}\\n41\\n"}, "TypeError: sealing.in"),
        ({"share_info_prefix": "bluecarbon/auction-share/v1\n"}, "TypeError: sealing.share_info"),
        ({"trustees": "drop-2"}, "TypeError: sealing.trustees must have the positions 1 to n"),
        ({"trustees": "twice-1"}, "TypeError: sealing.trustees must have the positions 1 to n"),
        ({"threshold": 4}, "RangeError: threshold must be an integer from 1 to 3"),
    ],
)
def test_sealbidforauction_refuses_a_sealing_object_it_cannot_seal_to_rightly(page, change, error):
    keys = [X25519PrivateKey.generate() for _ in range(3)]
    description = api_sealing(keys, 2, 41)
    if change.get("trustees") == "drop-2":
        change = {"trustees": [t for t in description["trustees"] if t["position"] != 2]}
    elif change.get("trustees") == "twice-1":
        twice = [{**description["trustees"][0], "public_key": public_key_b64(keys[1])}]
        change = {"trustees": description["trustees"][:1] + twice + description["trustees"][2:]}
    description.update(change)

    got = page.evaluate(
        "bid => window.sealBidForAuction(bid).then(() => null, e => `${e.name}: ${e.message}`)",
        {"sealing": description, "auction": 41, "bidder": 7, "tiers": TIERS},
    )

    assert (got or "").startswith(error)


def test_sealbidforauction_seals_the_good_object_those_cases_start_from(page):
    description = api_sealing([X25519PrivateKey.generate() for _ in range(3)], 2, 41)

    got = page.evaluate(
        "bid => window.sealBidForAuction(bid).then(() => null, e => `${e.name}: ${e.message}`)",
        {"sealing": description, "auction": 41, "bidder": 7, "tiers": TIERS},
    )

    assert got is None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"threshold": 0}, "RangeError: threshold"),
        ({"threshold": 4}, "RangeError: threshold"),
        ({"threshold": 1.5}, "RangeError: threshold"),
        ({"trustees": []}, "TypeError: trustees must be an array of 1 to 16"),
        ({"trustees": "17"}, "TypeError: trustees must be an array of 1 to 16"),
        ({"trustees": "same-key"}, "TypeError: trustees must have distinct public keys"),
        ({"trustees": [{"publicKey": "AAAA"}]}, "TypeError: trustees[0].publicKey"),
        ({"tiers": []}, "TypeError: tiers must be a non-empty array"),
        ({"bidder": 0}, "RangeError: bidder"),
    ],
)
def test_sealbidfortrustees_refuses_a_malformed_bid(page, change, error):
    trustees = [{"publicKey": public_key_b64(X25519PrivateKey.generate())} for _ in range(3)]
    if change.get("trustees") == "17":
        change = {"trustees": [{"publicKey": public_key_b64(X25519PrivateKey.generate())}] * 17}
    elif change.get("trustees") == "same-key":
        change = {"trustees": [trustees[0], trustees[1], trustees[0]]}
    bid = {"trustees": trustees, "threshold": 2, **GOOD, **change}

    assert (trustee_error(page, **bid) or "").startswith(error)


def test_sealbidfortrustees_seals_the_good_bid_those_cases_start_from(page):
    trustees = [{"publicKey": public_key_b64(X25519PrivateKey.generate())} for _ in range(3)]

    assert trustee_error(page, trustees=trustees, threshold=2, **GOOD) is None
