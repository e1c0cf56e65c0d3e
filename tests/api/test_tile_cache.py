"""Full tiles answered again from memory (ledger/tile_cache.py), through the real WSGI
application: the same bytes and headers as Django gave, never a partial tile, a 404 or an
answer for another encoding, and never more than its bound in memory."""

from __future__ import annotations

import gzip
from io import BytesIO
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from bluecarbon.wsgi import application, django_application
from ledger import services
from ledger.tile_cache import TileCache

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_connection(db):
    # As Django's test client: the handler must not close the test's connection per request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def get(app: Any, path: str, gzip_ok: bool = False) -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "wsgi.url_scheme": "http",
        "wsgi.input": BytesIO(),
        "wsgi.errors": BytesIO(),
    }
    if gzip_ok:
        environ["HTTP_ACCEPT_ENCODING"] = "gzip"
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(application_call(app, environ, start_response))
    return seen["status"], seen["headers"], body


def application_call(app, environ, start_response):
    result = app(environ, start_response)
    try:
        return list(result)
    finally:
        getattr(result, "close", lambda: None)()


@pytest.fixture
def log(world):
    b = world.issue(5_000_000)
    for i in range(300):  # one full tile and a partial one
        services.credit_transfer(
            actor=world.dev,
            batch=b.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=1 + i,
        )
    services.ledger_checkpoint_issue()
    return world


def test_a_full_tile_is_answered_again_from_memory_with_djangos_bytes_and_headers(log):
    app = TileCache(django_application, 1 << 20)
    first = get(app, "/api/v1/ledger/tlog/tile/0/000")
    assert first[0].startswith("200") and len(first[2]) == 256 * 32
    assert "immutable" in first[1]["Cache-Control"]
    assert len(app._kept) == 1
    assert get(app, "/api/v1/ledger/tlog/tile/0/000") == first  # from memory: the same answer
    # Bundles: gzip and plain are two answers, each kept as Django gave it.
    plain = get(app, "/api/v1/ledger/tlog/tile/entries/000")
    zipped = get(app, "/api/v1/ledger/tlog/tile/entries/000", gzip_ok=True)
    assert zipped[1]["Content-Encoding"] == "gzip" and gzip.decompress(zipped[2]) == plain[2]
    assert get(app, "/api/v1/ledger/tlog/tile/entries/000") == plain
    assert get(app, "/api/v1/ledger/tlog/tile/entries/000", gzip_ok=True) == zipped
    assert len(app._kept) == 3


def test_partial_tiles_missing_tiles_and_errors_always_go_to_django(log):
    app = TileCache(django_application, 1 << 20)
    for path in (
        "/api/v1/ledger/tlog/checkpoint",
        "/api/v1/ledger/tlog/tile/0/001.p/45",  # partial: replaced once the tile is full
        "/api/v1/ledger/tlog/tile/0/999",  # not in the tree yet
        "/api/v1/ledger/tlog/tile/0/nope",  # not a tile path
    ):
        status, _, _ = get(app, path)
        assert status[:3] in ("200", "404"), path
    assert not app._kept


def test_memory_stays_within_its_bound_and_zero_turns_it_off(log):
    app = TileCache(django_application, 2 * (256 * 32 + 600))
    get(app, "/api/v1/ledger/tlog/tile/0/000")
    get(app, "/api/v1/ledger/tlog/tile/entries/000")
    get(app, "/api/v1/ledger/tlog/tile/entries/000", gzip_ok=True)
    assert 0 < app._bytes <= app.capacity
    assert ("/api/v1/ledger/tlog/tile/0/000", False) not in app._kept  # the oldest went first
    off = TileCache(django_application, 0)
    assert get(off, "/api/v1/ledger/tlog/tile/0/000")[0].startswith("200") and not off._kept


def test_the_production_application_has_the_cache_in_front():
    assert isinstance(application, TileCache) and application.app is django_application
