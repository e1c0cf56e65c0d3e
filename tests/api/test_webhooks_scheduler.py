"""Webhook endpoints per organization are capped; each endpoint has a circuit breaker, shown in
the API; and deliveries go out in bounded batches per endpoint, one sender per endpoint at a
time, instead of one Celery task per delivery (ledger/webhooks.py; issue 14, item 2).

A "turn" here is what one ``webhook_endpoint_send_task`` does, run in this process with the
lease the scheduler would have given it; the receivers are real HTTP servers on loopback."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection, transaction
from django.test import Client as DjangoClient
from django.utils import timezone

from bluecarbon import queues
from ledger import services, webhooks
from ledger.exceptions import Conflict
from ledger.metrics import queue_depths
from ledger.models import WebhookDelivery, WebhookEndpoint
from tests.factories import World
from tests.worker import Worker, routed


class Receiver:
    """Records the ledger seq of each delivery POSTed to it, by path; answers ``status``
    (after ``fail_next`` answers of 500)."""

    def __init__(self) -> None:
        self.seqs: dict[str, list[int]] = {}
        self.status = 200
        self.fail_next = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.seqs.setdefault(self.path, []).append(body["seq"])
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(500)
                else:
                    self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        return sum(len(s) for s in self.seqs.values())


@pytest.fixture(autouse=True)
def _loopback_receivers(settings) -> None:
    settings.WEBHOOK_ALLOW_LOOPBACK = True


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def transfers(world: World, n: int) -> None:
    """``n`` transfers to the buyer (each an entry touching it), from one batch per world."""
    batch = getattr(world, "webhook_test_batch", None) or world.issue(5_000_000)
    world.webhook_test_batch = batch  # type: ignore[attr-defined]
    for _ in range(n):
        services.credit_transfer(
            actor=world.dev,
            batch=batch.pk,
            sender=world.dev_account.pk,
            recipient=world.buyer_account.pk,
            quantity=1000,
        )


def hook_with_deliveries(world: World, url: str, n: int) -> WebhookEndpoint:
    """An endpoint of the buyer's for transfers, with ``n`` pending deliveries."""
    endpoint, _ = webhooks.webhook_endpoint_create(
        actor=world.buy, url=url, event_types=["credit.transfer"]
    )
    transfers(world, n)
    webhooks.webhooks_dispatch()
    assert pending(endpoint) == n
    return endpoint


def pending(endpoint: WebhookEndpoint) -> int:
    return WebhookDelivery.objects.filter(endpoint=endpoint, status="pending").count()


def turn(endpoint: WebhookEndpoint) -> int:
    """One sender's turn at the endpoint, with a lease of its own (as if scheduled)."""
    token = f"turn-{time.monotonic_ns()}"
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        lease_token=token, lease_until=timezone.now() + dt.timedelta(minutes=1)
    )
    return webhooks.webhook_endpoint_send(endpoint=endpoint.pk, token=token)


def circuit(client, endpoint: WebhookEndpoint) -> dict:
    (listed,) = [e for e in client.get("/api/v1/webhooks").json() if e["id"] == endpoint.pk]
    return listed["circuit"]


# ---- the cap on endpoints per organization -----------------------------------------------------


def test_an_organization_has_at_most_the_cap_of_active_endpoints(world, client_for, settings):
    settings.WEBHOOK_MAX_ENDPOINTS = 3
    client = client_for(world.buyer, "read")
    hooks = [
        client.post("/api/v1/webhooks", {"url": f"http://127.0.0.1:9/{i}"}, format="json")
        for i in range(4)
    ]
    assert [r.status_code for r in hooks] == [201, 201, 201, 409]
    assert hooks[3].json() == {
        "code": "webhook_endpoint_limit",
        "message": "your organization has 3 active webhook endpoints, the most it may have: "
        "deactivate one (DELETE /webhooks/{id}) before registering another",
        "detail": {"limit": 3, "active": 3},
    }
    assert WebhookEndpoint.objects.filter(organization=world.buyer).count() == 3
    # Another organization's endpoints are its own count.
    other = client_for(world.developer, "read")
    r = other.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/"}, format="json")
    assert r.status_code == 201
    # A deactivated endpoint makes room.
    assert client.delete(f"/api/v1/webhooks/{hooks[0].json()['id']}").status_code == 200
    again = client.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/4"}, format="json")
    assert again.status_code == 201
    r = client.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/5"}, format="json")
    assert r.status_code == 409


def test_the_schema_documents_the_cap_and_the_circuit(db, client):
    schema = client.get("/api/v1/schema/?format=json").json()
    create = schema["paths"]["/api/v1/webhooks"]["post"]
    assert "409" in create["responses"]
    assert "webhook_endpoint_limit" in create["description"]
    endpoint = schema["components"]["schemas"]["EndpointOutput"]["properties"]
    assert endpoint["circuit"]["allOf"] == [{"$ref": "#/components/schemas/CircuitOutput"}]
    circuit = schema["components"]["schemas"]["CircuitOutput"]["properties"]
    assert circuit["state"]["allOf"] == [{"$ref": "#/components/schemas/CircuitStateEnum"}]
    states = schema["components"]["schemas"]["CircuitStateEnum"]["enum"]
    assert states == ["closed", "open", "half_open"]


def test_concurrent_registrations_never_pass_the_cap(committed_db, settings):
    settings.WEBHOOK_MAX_ENDPOINTS = 3
    world = World()
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def register(i: int) -> None:
        start.wait()
        try:
            with transaction.atomic(durable=True):
                webhooks.webhook_endpoint_create(actor=world.buy, url=f"http://127.0.0.1:9/{i}")
            outcomes.append("created")
        except Conflict as exc:
            outcomes.append(str(exc.code))
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] * 3 + ["webhook_endpoint_limit"] * 5
    assert WebhookEndpoint.objects.filter(organization=world.buyer, active=True).count() == 3


# ---- the circuit breaker ---------------------------------------------------------------------


def test_the_circuit_opens_after_failures_in_a_row_and_the_deliveries_wait(
    world, client_for, receiver, settings
):
    settings.WEBHOOK_CIRCUIT_FAILURES = 3
    client = client_for(world.buyer, "read")
    endpoint = hook_with_deliveries(world, receiver.url + "/hook", 6)
    assert circuit(client, endpoint) == {
        "state": "closed",
        "consecutive_failures": 0,
        "open_until": None,
    }
    receiver.status = 503
    for failures in (1, 2):
        assert turn(endpoint) == 0
        assert receiver.count() == failures  # a turn stops at its first failure
        assert circuit(client, endpoint)["state"] == "closed"
    assert turn(endpoint) == 0
    opened = circuit(client, endpoint)
    assert (opened["state"], opened["consecutive_failures"]) == ("open", 3)
    open_until = dt.datetime.fromisoformat(opened["open_until"])
    cooldown = dt.timedelta(seconds=settings.WEBHOOK_CIRCUIT_COOLDOWN_SECONDS)
    assert timezone.now() < open_until <= timezone.now() + cooldown

    # Open: nothing is sent, and nothing is lost.
    WebhookDelivery.objects.filter(endpoint=endpoint).update(due_at=timezone.now())
    assert turn(endpoint) == 0
    assert receiver.count() == 3
    assert pending(endpoint) == 6
    assert sum(WebhookDelivery.objects.values_list("attempts", flat=True)) == 3
    # The scheduler gives it no sender before the cool-down is over.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(lease_token="", lease_until=None)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        circuit_open_until=timezone.now() + webhooks.SCHEDULE_AHEAD + dt.timedelta(minutes=1)
    )
    assert webhooks.webhooks_schedule() == []


def open_circuit(endpoint: WebhookEndpoint, settings, *, cooled_down: bool) -> None:
    at = timezone.now() + dt.timedelta(minutes=-1 if cooled_down else 1)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        consecutive_failures=settings.WEBHOOK_CIRCUIT_FAILURES, circuit_open_until=at
    )


def test_after_the_cool_down_one_probe_goes_and_its_failure_opens_the_circuit_again(
    world, client_for, receiver, settings
):
    client = client_for(world.buyer, "read")
    endpoint = hook_with_deliveries(world, receiver.url + "/hook", 5)
    open_circuit(endpoint, settings, cooled_down=True)
    assert circuit(client, endpoint)["state"] == "half_open"
    receiver.status = 500
    assert turn(endpoint) == 0
    assert receiver.count() == 1  # one probe, not a batch
    again = circuit(client, endpoint)
    assert again["state"] == "open"
    assert again["consecutive_failures"] == settings.WEBHOOK_CIRCUIT_FAILURES + 1
    assert dt.datetime.fromisoformat(again["open_until"]) > timezone.now()
    assert pending(endpoint) == 5


def test_a_successful_probe_closes_the_circuit_and_the_backlog_follows_in_order(
    world, client_for, receiver, settings
):
    client = client_for(world.buyer, "read")
    endpoint = hook_with_deliveries(world, receiver.url + "/hook", 5)
    seqs = sorted(WebhookDelivery.objects.values_list("entry_seq", flat=True))
    open_circuit(endpoint, settings, cooled_down=True)
    assert turn(endpoint) == 1  # the probe alone
    assert circuit(client, endpoint) == {
        "state": "closed",
        "consecutive_failures": 0,
        "open_until": None,
    }
    assert turn(endpoint) == 4
    assert receiver.seqs["/hook"] == seqs
    assert pending(endpoint) == 0


def test_a_success_forgets_earlier_failures(world, client_for, receiver, settings):
    settings.WEBHOOK_CIRCUIT_FAILURES = 3
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0  # a failed delivery is due again at once
    client = client_for(world.buyer, "read")
    endpoint = hook_with_deliveries(world, receiver.url + "/hook", 3)
    receiver.fail_next = 2
    assert [turn(endpoint) for _ in range(3)] == [0, 0, 3]
    assert circuit(client, endpoint)["consecutive_failures"] == 0
    transfers(world, 2)
    webhooks.webhooks_dispatch()
    receiver.fail_next = 2
    assert [turn(endpoint) for _ in range(2)] == [0, 0]
    assert circuit(client, endpoint) == {
        "state": "closed",
        "consecutive_failures": 2,
        "open_until": None,
    }


def test_a_replay_closes_the_circuit(world, client_for, receiver, settings):
    client = client_for(world.buyer, "read")
    endpoint = hook_with_deliveries(world, receiver.url + "/hook", 1)
    open_circuit(endpoint, settings, cooled_down=False)
    assert circuit(client, endpoint)["state"] == "open"
    r = client.post(f"/api/v1/webhooks/{endpoint.pk}/replay", {"after": -1}, format="json")
    assert r.status_code == 200
    assert r.json()["circuit"] == {"state": "closed", "consecutive_failures": 0, "open_until": None}


# ---- batches per endpoint --------------------------------------------------------------------


def test_a_turn_sends_a_bounded_batch_in_ledger_order_and_schedules_the_next(
    world, receiver, settings
):
    settings.WEBHOOK_BATCH_SIZE = 4
    endpoint = hook_with_deliveries(world, receiver.url + "/hook", 10)
    seqs = sorted(WebhookDelivery.objects.values_list("entry_seq", flat=True))
    assert turn(endpoint) == 4
    assert receiver.seqs["/hook"] == seqs[:4]
    assert pending(endpoint) == 6
    # Its next turn is claimed (enqueued after commit, behind the senders already queued).
    token, until = WebhookEndpoint.objects.values_list("lease_token", "lease_until").get(
        pk=endpoint.pk
    )
    assert not token.startswith("turn-") and until > timezone.now()
    assert turn(endpoint) == 4
    assert turn(endpoint) == 2
    assert receiver.seqs["/hook"] == seqs
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).lease_token == ""  # nothing left


def test_a_turn_ends_at_its_time_budget(world, receiver, settings):
    settings.WEBHOOK_BATCH_SECONDS = 0
    endpoint = hook_with_deliveries(world, receiver.url + "/hook", 3)
    assert [turn(endpoint) for _ in range(3)] == [1, 1, 1]


def test_a_turn_ends_at_its_first_failure_and_the_failed_delivery_waits_its_backoff(
    world, receiver, settings
):
    endpoint = hook_with_deliveries(world, receiver.url + "/hook", 4)
    seqs = sorted(WebhookDelivery.objects.values_list("entry_seq", flat=True))
    receiver.fail_next = 1
    assert turn(endpoint) == 0
    assert receiver.seqs["/hook"] == seqs[:1]
    assert turn(endpoint) == 3  # the others; the failed one is not due yet
    assert receiver.seqs["/hook"] == seqs
    failed = WebhookDelivery.objects.get(entry_seq=seqs[0])
    assert (failed.status, failed.attempts, failed.last_status_code) == ("pending", 1, 500)
    assert failed.due_at > timezone.now()


@pytest.fixture
def nobody(committed_db: None, celery_worker_process: Worker) -> Iterator[dict[str, str]]:
    """Real commits; what they enqueue goes to queues no worker reads, where it is counted.
    The session's worker is stopped meanwhile: a dispatch an earlier test set off, reaching it
    late, would otherwise claim this test's endpoints, make a turn at them and let go, so that
    the second schedule below found one free (CI, twice)."""
    celery_worker_process.stop()
    names = queues.isolated(f"nobody-{time.monotonic_ns()}")
    try:
        with routed(names):
            yield names
    finally:
        celery_worker_process.start()


def test_thousands_of_deliveries_make_one_sender_task_per_endpoint(nobody):
    """The fan-out of issue 14: every delivery was a task. Now the webhooks queue holds one
    sender per endpoint with work, whatever the number of deliveries, and no other kind's
    queue gets any of it."""
    world = World()
    for i in range(10):
        webhooks.webhook_endpoint_create(actor=world.buy, url=f"http://127.0.0.1:9/{i}")
    transfers(world, 210)
    before = queue_depths(list(nobody.values()))
    assert before is not None

    webhooks.webhooks_dispatch()
    assert WebhookDelivery.objects.count() == 2_100
    claimed = webhooks.webhooks_schedule()
    # Each endpoint has its one sender, and a second schedule adds none.
    assert sorted(claimed) == sorted(WebhookEndpoint.objects.values_list("pk", flat=True))
    assert webhooks.webhooks_schedule() == []
    after = queue_depths(list(nobody.values()))
    webhooks_queue = nobody[queues.KINDS["webhooks"][0]]
    assert after == {**before, webhooks_queue: before[webhooks_queue] + 10}


def test_metrics_show_the_backlog_and_the_circuits(world, receiver, settings):
    endpoint = hook_with_deliveries(world, receiver.url + "/hook", 4)
    webhooks.webhook_endpoint_create(actor=world.buy, url=receiver.url + "/other")
    open_circuit(endpoint, settings, cooled_down=False)
    text = DjangoClient().get("/metrics").content.decode()
    assert "bluecarbon_webhook_deliveries_pending 4\n" in text
    assert 'bluecarbon_webhook_endpoints{circuit="open"} 1\n' in text
    assert 'bluecarbon_webhook_endpoints{circuit="closed"} 1\n' in text
    assert 'bluecarbon_webhook_endpoints{circuit="half_open"} 0\n' in text


# ---- the dispatch's cost does not grow with the endpoints ------------------------------------


def dispatch_queries() -> int:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        webhooks.webhooks_dispatch()
    return len(captured)


def test_a_dispatch_costs_the_same_queries_for_ten_endpoints_as_for_one(world, settings):
    """The closing-rush benchmark's webhooks worker spent 33 CPU-seconds of 130 in 65 s (the web
    server 56) with 704 endpoints: each dispatch walked every endpoint against every entry and
    made three queries per endpoint. Now an entry finds its endpoints by the organizations it
    touches, and the deliveries, cursors and created ids take one query each."""
    settings.WEBHOOK_MAX_ENDPOINTS = 50
    orgs = [world.buyer, world.developer]
    webhooks.webhook_endpoint_create(actor=world.buy, url="http://127.0.0.1:9/0")
    transfers(world, 5)
    one = dispatch_queries()
    for i in range(1, 10):
        actor = world.buy if i % 2 else world.dev
        webhooks.webhook_endpoint_create(actor=actor, url=f"http://127.0.0.1:9/{i}")
    transfers(world, 5)
    assert dispatch_queries() == one
    # Every endpoint of both organizations got each of the 5 transfers once (and the first
    # endpoint the first 5 too), none twice.
    counts = {
        ep.pk: WebhookDelivery.objects.filter(endpoint=ep).count()
        for ep in WebhookEndpoint.objects.order_by("pk")
    }
    assert list(counts.values()) == [10] + [5] * 9
    assert {ep.organization_id for ep in WebhookEndpoint.objects.all()} == {o.pk for o in orgs}
