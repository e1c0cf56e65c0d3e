"""Webhooks delivered by a real Celery worker to a real local HTTP server."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
from rest_framework.test import APIClient

from ledger import services, webhooks
from ledger.models import WebhookDelivery
from tests.factories import World


class Receiver:
    """An HTTP server on 127.0.0.1 that records what it is sent and can fail on purpose."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.fail_next = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(500)
                else:
                    receiver.received.append((self.headers, body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 30) -> list[tuple[dict, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


@pytest.fixture(autouse=True)
def _loopback_receivers(settings) -> None:
    """The receivers here listen on 127.0.0.1 (the worker process allows it too:
    tests/worker.py); tests/api/test_webhooks_egress.py checks what is refused without it."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def key_client(org, *scopes: str) -> APIClient:
    _, secret = services.apikey_create(
        organization=org.pk, name="k", scopes=scopes or ["read", "transfer"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def register(client: APIClient, url: str, **extra) -> dict:
    r = client.post("/api/v1/webhooks", {"url": url, **extra}, format="json")
    assert r.status_code == 201, r.json()
    return r.json()


def test_a_transfer_reaches_both_parties_signed_and_once(worker, receiver):
    world = World()
    b = world.issue(5_000_000)
    seller = register(key_client(world.developer), receiver.url)
    other = Receiver()
    buyer = register(key_client(world.buyer), other.url)
    stranger_org = World().buyer
    stranger = Receiver()
    register(key_client(stranger_org), stranger.url)

    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=1000,
    )

    for r, secret in ((receiver, seller["secret"]), (other, buyer["secret"])):
        (headers, body), *rest = r.wait_for(1)
        assert rest == []
        assert webhooks.verify_signature(secret, headers["BlueCarbon-Signature"], body)
        assert not webhooks.verify_signature("whsec_wrong", headers["BlueCarbon-Signature"], body)
        event = json.loads(body)
        assert event["type"] == "credit.transfer"
        assert json.loads(event["canonical"])["data"]["quantity"] == 1000
    time.sleep(1.5)  # a second dispatch (beat, duplicate) must not send it again
    assert len(receiver.received) == 1
    assert stranger.received == []
    other.server.shutdown()
    stranger.server.shutdown()


def test_a_failing_endpoint_gets_the_delivery_on_a_retry(worker, receiver):
    world = World()
    b = world.issue(5_000_000)
    client = key_client(world.buyer)
    hook = register(client, receiver.url, event_types=["credit.transfer"])
    receiver.fail_next = 2
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=1000,
    )
    assert len(receiver.wait_for(1)) == 1
    # The receiver answers before the worker records the answer: wait for the record.
    deadline = time.monotonic() + 30
    while True:
        deliveries = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["results"]
        if (deliveries and deliveries[0]["status"] != "pending") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(d["status"], d["attempts"]) for d in deliveries] == [("delivered", 3)]

    # Replay from the cursor before the transfer: delivered again.
    seq = deliveries[0]["entry_seq"]
    r = client.post(f"/api/v1/webhooks/{hook['id']}/replay", {"after": seq - 1}, format="json")
    assert r.status_code == 200
    assert len(receiver.wait_for(2)) == 2


@pytest.mark.django_db
def test_registration_rejects_bad_urls_and_types(world):
    client = key_client(world.buyer)
    assert client.post("/api/v1/webhooks", {"url": "ftp://x"}, format="json").status_code == 400
    assert (
        client.post(
            "/api/v1/webhooks", {"url": "http://x", "event_types": ["nope"]}, format="json"
        ).status_code
        == 400
    )
    hook = register(client, "http://127.0.0.1:9/hook")
    listed = client.get("/api/v1/webhooks").json()
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]
    assert key_client(world.developer).delete(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    assert client.delete(f"/api/v1/webhooks/{hook['id']}").json()["active"] is False
    assert WebhookDelivery.objects.count() == 0
