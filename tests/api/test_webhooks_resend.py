"""Deliveries are sent at least once: what a lost broker message, a killed worker or a database
error leaves pending is sent by the next sender once the lost one's lease on the endpoint has
run out (ledger/webhooks.py ``webhooks_schedule``, which beat runs); an endpoint has one sender
at a time, and a delivery is never sent by two senders at the same time."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from bluecarbon import queues
from ledger import services, webhooks
from ledger.models import WebhookDelivery, WebhookEndpoint
from tests.api.test_webhooks import key_client, register
from tests.conftest import ARTIFACTS
from tests.factories import World
from tests.worker import Worker, own_worker, routed


class HoldingReceiver:
    """Answers 200, but holds the first request until ``release`` is set."""

    def __init__(self) -> None:
        self.requests: list[str] = []  # the BlueCarbon-Delivery header of each request
        self.answered = 0
        self.arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(self.headers["BlueCarbon-Delivery"])
                if len(receiver.requests) == 1:
                    receiver.arrived.set()
                    receiver.release.wait(60)
                self.send_response(200)
                self.end_headers()
                receiver.answered += 1

            def log_message(self, *args: object) -> None:
                pass

            def handle_one_request(self) -> None:
                with contextlib.suppress(OSError):  # the worker that sent it was killed
                    super().handle_one_request()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(autouse=True)
def _loopback_receivers(settings) -> None:
    settings.WEBHOOK_ALLOW_LOOPBACK = True


@pytest.fixture
def receiver() -> Iterator[HoldingReceiver]:
    r = HoldingReceiver()
    yield r
    r.release.set()
    r.server.shutdown()


def a_transfer_with_a_hook(url: str) -> dict:
    world = World()
    b = world.issue(5_000_000)
    hook = register(key_client(world.buyer), url, event_types=["credit.transfer"])
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=1000,
    )
    return hook


def until(condition: Callable[[], bool], timeout: float, what: str, each: Callable = lambda: 0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        each()
        time.sleep(0.2)


def lease_of(endpoint_id: int) -> tuple[str, dt.datetime | None]:
    return WebhookEndpoint.objects.values_list("lease_token", "lease_until").get(pk=endpoint_id)


@pytest.fixture
def no_worker(committed_db: None) -> Iterator[None]:
    """Real commits, and what they enqueue (the dispatch kicked after a write) goes to queues
    no worker reads: only the test schedules and sends."""
    with routed(queues.isolated(f"nobody-{time.monotonic_ns()}")):
        yield


@pytest.mark.django_db
def test_a_sender_lost_with_its_message_is_replaced_once_its_lease_runs_out():
    assert django_settings.CELERY_BEAT_SCHEDULE["webhooks-dispatch"]["task"] == (
        "ledger.tasks.webhooks_dispatch_task"
    )
    hook = a_transfer_with_a_hook("http://127.0.0.1:9/hook")
    (pk,) = webhooks.webhooks_dispatch()
    # Claimed, and its task enqueued after commit: the broker lost it.
    assert webhooks.webhooks_schedule() == [hook["id"]]
    lost, _ = lease_of(hook["id"])
    assert lost
    assert webhooks.webhooks_schedule() == []  # the lease still runs: its task may be queued

    WebhookEndpoint.objects.filter(pk=hook["id"]).update(
        lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert webhooks.webhooks_schedule() == [hook["id"]]
    token, until = lease_of(hook["id"])
    assert token != lost and until > timezone.now()
    assert webhooks.webhooks_schedule() == []  # claimed again: the next run leaves it
    # The lost task turning up after all sends nothing: its lease is someone else's.
    assert webhooks.webhook_endpoint_send(endpoint=hook["id"], token=lost) == 0
    d = WebhookDelivery.objects.get(pk=pk)
    assert (d.status, d.attempts) == ("pending", 0)
    assert lease_of(hook["id"])[0] == token


@pytest.mark.django_db
def test_the_schedule_leaves_what_is_not_due_soon_what_is_not_pending_and_what_is_inactive():
    hook = a_transfer_with_a_hook("http://127.0.0.1:9/hook")
    (pk,) = webhooks.webhooks_dispatch()
    later = timezone.now() + webhooks.SCHEDULE_AHEAD + dt.timedelta(minutes=1)
    WebhookDelivery.objects.filter(pk=pk).update(due_at=later)
    assert webhooks.webhooks_schedule() == []  # beat comes back for it
    WebhookDelivery.objects.filter(pk=pk).update(
        due_at=timezone.now() - dt.timedelta(hours=1), status=WebhookDelivery.Status.FAILED
    )
    assert webhooks.webhooks_schedule() == []
    WebhookDelivery.objects.filter(pk=pk).update(status=WebhookDelivery.Status.PENDING)
    WebhookEndpoint.objects.filter(pk=hook["id"]).update(active=False)
    assert webhooks.webhooks_schedule() == []
    WebhookEndpoint.objects.filter(pk=hook["id"]).update(active=True)
    assert webhooks.webhooks_schedule() == [hook["id"]]


def test_concurrent_schedules_give_an_endpoint_one_sender(no_worker, monkeypatch):
    hook = a_transfer_with_a_hook("http://127.0.0.1:9/hook")
    webhooks.webhooks_dispatch()
    enqueued: list[tuple[int, str, float]] = []
    monkeypatch.setattr(webhooks, "_enqueue", enqueued.extend)
    claims: list[int] = []
    start = threading.Barrier(6)

    def run() -> None:
        start.wait()
        try:
            claims.extend(webhooks.webhooks_schedule())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    token = lease_of(hook["id"])[0]
    assert token
    # One claim among them: none only if a dispatch an earlier test kicked reached the session's
    # worker late and claimed it first.
    assert claims in ([hook["id"]], [])
    assert enqueued == [(hook["id"], token, 0.0)] * len(claims)


def test_two_senders_never_send_one_delivery_at_the_same_time(no_worker, receiver):
    a_transfer_with_a_hook(receiver.url)
    (pk,) = webhooks.webhooks_dispatch()
    results: list[webhooks.Sent] = []

    def first() -> None:
        try:
            results.append(webhooks.webhook_deliver(pk))
        finally:
            connection.close()

    sending = threading.Thread(target=first)
    sending.start()
    assert receiver.arrived.wait(10)
    # A second sender (one whose lease ran out, and its successor): nothing sent.
    assert webhooks.webhook_deliver(pk) == webhooks.Sent.NOT_SENT
    receiver.release.set()
    sending.join(20)
    assert results == [webhooks.Sent.DELIVERED]
    assert receiver.requests == [str(pk)]
    d = WebhookDelivery.objects.get(pk=pk)
    assert (d.status, d.attempts) == ("delivered", 1)
    # Delivered: a late sender sends nothing.
    assert webhooks.webhook_deliver(pk) == webhooks.Sent.NOT_SENT
    assert receiver.requests == [str(pk)]


@pytest.fixture
def hook_worker(celery_worker_process: Worker, committed_db: None) -> Iterator[Worker]:
    """A worker of its own whose claim on a delivery it sends, and its lease on the endpoint,
    last 3 s."""
    env = {"WEBHOOK_TIMEOUT_SECONDS": "3", "WEBHOOK_LEASE_SECONDS": "3"}
    with own_worker(ARTIFACTS, env) as worker:
        yield worker


def sent_and_delivered(receiver: HoldingReceiver, hook: dict, settings, *, sends: int) -> None:
    """Run beat's schedule (every 0.2 s here) until the delivery is recorded as delivered."""
    settings.WEBHOOK_LEASE_SECONDS = 3
    until(
        lambda: WebhookDelivery.objects.filter(
            endpoint_id=hook["id"], status=WebhookDelivery.Status.DELIVERED
        ).exists(),
        timeout=60,
        what="the delivery sent again and recorded",
        each=webhooks.webhooks_schedule,
    )
    (d,) = WebhookDelivery.objects.filter(endpoint_id=hook["id"])
    assert d.attempts == 1
    assert receiver.requests == [str(d.pk)] * sends


@pytest.mark.worker
def test_a_delivery_whose_worker_was_killed_mid_send_is_sent_again(hook_worker, receiver, settings):
    hook = a_transfer_with_a_hook(receiver.url)
    webhooks.webhooks_dispatch()
    webhooks.webhooks_schedule()
    assert receiver.arrived.wait(30), hook_worker.log()[-3000:]
    hook_worker.kill()
    receiver.release.set()  # the request died with the worker
    hook_worker.start()
    sent_and_delivered(receiver, hook, settings, sends=2)


@pytest.mark.worker
@pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="pg_terminate_backend is PostgreSQL's",
)
def test_a_delivery_whose_database_connection_was_terminated_is_sent_again(
    hook_worker, receiver, settings
):
    hook = a_transfer_with_a_hook(receiver.url)
    webhooks.webhooks_dispatch()
    webhooks.webhooks_schedule()
    assert receiver.arrived.wait(30), hook_worker.log()[-3000:]
    # The worker is waiting for the receiver, its connection open: cut it from the server side.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 1
    receiver.release.set()  # answered 200; the worker cannot record it
    until(lambda: receiver.answered == 1, timeout=10, what="the answer")
    time.sleep(0.5)
    assert WebhookDelivery.objects.get(endpoint_id=hook["id"]).status == "pending"
    sent_and_delivered(receiver, hook, settings, sends=2)
