"""The web server the README tells operators to run (Granian's WSGI interface), started with the
README's own command line against the test database: a sealed bid in and a signed receipt out
over one kept-alive connection, without the ledger's checkpoint key (web processes never read
it), a bad request answered in the API's error format, a
database connection terminated under it replaced without failing a request, and a second
server on the same port refused instead of sharing it."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from auctions.core import sealing
from auctions.receipts import receipt_verifiers
from ledger import services
from ledger.core.note import open_note
from tests.auctions.conftest import Market
from tests.server import free_port, readme_command
from tests.worker import ROOT, worker_env


def checkpoint_key(tmp_path: Path) -> Path:
    """Where the server is told its checkpoint key is: nowhere (development would generate one
    there if anything asked for it)."""
    return tmp_path / "no-checkpoint-key-here" / "ledger-signing.key"


@pytest.fixture
def server(committed_db: None, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    log = (tmp_path / "granian.log").open("wb")
    # Like a web host: no checkpoint key. The files whose default is beside it stay the tests'.
    keys = {
        "LEDGER_SIGNING_KEY_FILE": str(checkpoint_key(tmp_path)),
        "LEDGER_VERIFIER_KEYS_FILE": str(settings.LEDGER_VERIFIER_KEYS_FILE),
        "LEDGER_ENTRY_KEY_FILE": str(settings.LEDGER_ENTRY_KEY_FILE),
        "AUCTION_KEK_FILE": str(settings.AUCTION_KEK_FILE),
        "AUCTION_RECEIPT_KEY_FILE": str(settings.AUCTION_RECEIPT_KEY_FILE),
        "AUCTION_RECEIPT_VERIFIER_KEYS_FILE": str(settings.AUCTION_RECEIPT_VERIFIER_KEYS_FILE),
    }
    proc = subprocess.Popen(
        readme_command(port),
        cwd=ROOT,
        env={**worker_env("unused"), **keys, "DJANGO_SETTINGS_MODULE": "bluecarbon.settings"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "granian.log").read_text()[-3000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start listening"
                time.sleep(0.2)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_the_readme_command_serves_sealed_bids_over_a_kept_alive_connection(
    server: int, tmp_path: Path
):
    m = Market()
    a = m.auction(deposit_required=0)
    bidder = m.bidders[0]
    _, secret = services.apikey_create(organization=bidder.pk, name="k", scopes=["bid", "read"])
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    sockets = []
    for price in (3100, 3200):
        ciphertext = sealing.seal(
            public_key=bytes(a.public_key),
            origin=settings.LEDGER_ORIGIN,
            auction=a.pk,
            bidder=bidder.pk,
            tiers=[{"price": price, "lots": 5}],
        )
        body = json.dumps({"ciphertext": base64.b64encode(ciphertext).decode()})
        conn.request("POST", f"/api/v1/auctions/{a.pk}/bids", body=body, headers=headers)
        r = conn.getresponse()
        answer = json.loads(r.read())
        assert r.status == 201, answer
        sockets.append(conn.sock)
        (receipt,) = answer["receipts"]
        note = open_note(receipt["note"], receipt_verifiers())
        assert f"commitment {sealing.commitment(ciphertext).hex()}\n" in note.text
    # Both requests went over one connection: the server keeps connections alive.
    assert sockets[0] is not None and sockets[0] is sockets[1]
    # The receipts are signed with the receipt key; nothing asked for the checkpoint key.
    assert not checkpoint_key(tmp_path).parent.exists()

    conn.request("POST", f"/api/v1/auctions/{a.pk}/bids", body="{not json", headers=headers)
    r = conn.getresponse()
    error = json.loads(r.read())
    assert r.status == 400 and set(error) == {"code", "message", "detail"}
    conn.close()


def test_a_terminated_database_connection_fails_no_request(server: int):
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL backend to terminate (SQLite has no server connection)")
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)

    def get() -> tuple[int, bytes]:
        # One kept-alive connection: every request goes to the same web worker, whose database
        # connection persists between requests (CONN_MAX_AGE).
        conn.request("GET", "/api/v1/ledger/entries?limit=1")
        r = conn.getresponse()
        return r.status, r.read()

    assert get()[0] == 200
    with connection.cursor() as cursor:
        # What a database restart, a failover or an administrator does to the web's connections.
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 1
    status, body = get()
    assert status == 200, body[:500]
    conn.close()


def test_the_readme_command_answers_malformed_bodies_in_the_error_shape(server: int):
    from ledger.models import Role
    from tests import factories

    _, secret = services.apikey_create(
        organization=factories.organization(Role.DEVELOPER).pk, name="k", scopes=["transfer"]
    )
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    deep = "[" * 100_000 + "]" * 100_000
    bulk = '{"operations": [{"op": "transfer", "batch": @}]}'.replace("@", deep)
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    for body, status, code in (
        (bulk, 400, "parse_error"),
        (
            json.dumps({"reason": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}),
            413,
            "request_too_large",
        ),
    ):
        conn.request("POST", "/api/v1/bulk", body=body, headers=headers)
        r = conn.getresponse()
        assert r.status == status and r.getheader("Content-Type") == "application/json"
        error = json.loads(r.read())
        assert set(error) == {"code", "message", "detail"}
        assert error["code"] == code
    conn.close()


def test_a_second_server_on_an_occupied_port_exits_instead_of_sharing_it(server: int, tmp_path):
    # Granian alone binds with SO_REUSEPORT: the second would start, say it listens, and take
    # a share of the first one's connections.
    log = tmp_path / "second.log"
    second = subprocess.Popen(
        readme_command(server),
        cwd=ROOT,
        env={**worker_env("unused"), "DJANGO_SETTINGS_MODULE": "bluecarbon.settings"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        returncode = second.wait(timeout=30)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
    output = log.read_text()
    assert returncode not in (None, 0), output[-2000:]
    assert f"127.0.0.1:{server} is already in use" in output
    assert "Listening at" not in output
    # The first goes on serving, alone.
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    conn.request("GET", "/api/v1/ledger/checkpoints")
    assert conn.getresponse().status == 200
    conn.close()
