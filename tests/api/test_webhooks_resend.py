"""Deliveries are sent at least once: what a lost broker message, a killed worker or a database
error leaves pending, beat sends again (ledger/webhooks.py ``webhook_deliveries_resend``); and a
delivery is never sent by two tasks at the same time."""

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

from ledger import services, webhooks
from ledger.models import WebhookDelivery
from tests.api.test_webhooks import key_client, register
from tests.conftest import ARTIFACTS
from tests.factories import World
from tests.worker import Worker, own_worker


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


@pytest.mark.django_db
def test_beat_sends_again_a_delivery_whose_message_was_lost(monkeypatch, settings):
    assert django_settings.CELERY_BEAT_SCHEDULE["webhooks-resend"]["task"] == (
        "ledger.tasks.webhook_deliveries_resend_task"
    )
    a_transfer_with_a_hook("http://127.0.0.1:9/hook")
    lost: list[int] = []
    monkeypatch.setattr(webhooks, "_enqueue", lost.extend)
    (pk,) = webhooks.webhooks_dispatch()
    lost.clear()  # the broker lost it

    assert webhooks.webhook_deliveries_resend() == []  # not stale yet: its task may be queued
    WebhookDelivery.objects.filter(pk=pk).update(
        due_at=timezone.now() - dt.timedelta(seconds=settings.WEBHOOK_STALE_SECONDS + 1)
    )
    assert webhooks.webhook_deliveries_resend() == [pk]
    assert lost == [pk]
    assert webhooks.webhook_deliveries_resend() == []  # claimed: the next run leaves it
    assert lost == [pk]


@pytest.mark.django_db
def test_beat_leaves_a_retry_that_is_not_due_and_what_is_not_pending(monkeypatch, settings):
    a_transfer_with_a_hook("http://127.0.0.1:9/hook")
    monkeypatch.setattr(webhooks, "_enqueue", lambda ids: None)
    (pk,) = webhooks.webhooks_dispatch()
    settings.WEBHOOK_STALE_SECONDS = 0
    WebhookDelivery.objects.filter(pk=pk).update(due_at=timezone.now() + dt.timedelta(hours=1))
    assert webhooks.webhook_deliveries_resend() == []
    WebhookDelivery.objects.filter(pk=pk).update(
        due_at=timezone.now() - dt.timedelta(hours=1), status=WebhookDelivery.Status.FAILED
    )
    assert webhooks.webhook_deliveries_resend() == []


def test_concurrent_beat_runs_enqueue_a_stale_delivery_once(committed_db, monkeypatch, settings):
    a_transfer_with_a_hook("http://127.0.0.1:9/hook")
    enqueued: list[int] = []
    monkeypatch.setattr(webhooks, "_enqueue", enqueued.extend)
    pks = webhooks.webhooks_dispatch()
    enqueued.clear()
    settings.WEBHOOK_STALE_SECONDS = 5
    WebhookDelivery.objects.update(due_at=timezone.now() - dt.timedelta(seconds=6))
    start = threading.Barrier(6)

    def run() -> None:
        start.wait()
        try:
            webhooks.webhook_deliveries_resend()
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(enqueued) == sorted(pks)


def test_two_tasks_for_one_delivery_never_send_it_at_the_same_time(committed_db, receiver):
    a_transfer_with_a_hook(receiver.url)
    pks: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(webhooks, "_enqueue", pks.extend)
        webhooks.webhooks_dispatch()
    (pk,) = pks
    results: list[bool] = []

    def first() -> None:
        try:
            results.append(webhooks.webhook_deliver(pk))
        finally:
            connection.close()

    sending = threading.Thread(target=first)
    sending.start()
    assert receiver.arrived.wait(10)
    # A second task for it (beat's resend of a late one, a redelivered message): nothing sent.
    assert webhooks.webhook_deliver(pk) is False
    receiver.release.set()
    sending.join(20)
    assert results == [True]
    assert receiver.requests == [str(pk)]
    d = WebhookDelivery.objects.get(pk=pk)
    assert (d.status, d.attempts) == ("delivered", 1)
    assert webhooks.webhook_deliver(pk) is True  # delivered: a late duplicate sends nothing
    assert receiver.requests == [str(pk)]


@pytest.fixture
def hook_worker(celery_worker_process: Worker, committed_db: None) -> Iterator[Worker]:
    """A worker of its own whose claim on a delivery it sends lasts 3 s."""
    with own_worker(ARTIFACTS, {"WEBHOOK_TIMEOUT_SECONDS": "3"}) as worker:
        yield worker


def sent_and_delivered(receiver: HoldingReceiver, hook: dict, settings, *, sends: int) -> None:
    """Run beat's resend (every 0.2 s here) until the delivery is recorded as delivered."""
    settings.WEBHOOK_STALE_SECONDS = 0.5
    until(
        lambda: WebhookDelivery.objects.filter(
            endpoint_id=hook["id"], status=WebhookDelivery.Status.DELIVERED
        ).exists(),
        timeout=60,
        what="the delivery sent again and recorded",
        each=webhooks.webhook_deliveries_resend,
    )
    (d,) = WebhookDelivery.objects.filter(endpoint_id=hook["id"])
    assert d.attempts == 1
    assert receiver.requests == [str(d.pk)] * sends


@pytest.mark.worker
def test_a_delivery_whose_worker_was_killed_mid_send_is_sent_again(hook_worker, receiver, settings):
    hook = a_transfer_with_a_hook(receiver.url)
    webhooks.webhooks_dispatch()
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
