"""Each kind of work has a Celery queue of its own (bluecarbon/queues.py), and webhooks are sent
by a scheduler, one sender per endpoint in bounded turns (ledger/webhooks.py), so thousands of
deliveries waiting on a slow receiver hold up neither an auction's close nor the checkpoints.

Issue 14, item 2: with one task per delivery on the one queue the auction pipeline and the
checkpoints used, 165 endpoints queued 40,500 tasks, an auction stayed open 5 minutes past its
closing time and checkpoints lagged 20-25 s. Here 2,200 deliveries wait on a receiver that
takes half a second per request: on that design the auction's close would have waited behind
them for about nine minutes."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auctions.models import Auction
from bluecarbon import queues
from ledger import services, webhooks
from ledger.core.entry import decode_entry
from ledger.metrics import queue_depths
from ledger.models import Checkpoint, LedgerEntry, WebhookDelivery, WebhookEndpoint
from tests.auctions.conftest import TONNE, Market
from tests.conftest import ARTIFACTS
from tests.worker import Worker, own_worker, routes

KIND_OF = {
    "auctions.tasks.auction_advance_task": "auctions",
    "auctions.tasks.auction_close_task": "auctions",
    "auctions.tasks.auction_open_bids_task": "auctions",
    "auctions.tasks.auction_clear_task": "auctions",
    "auctions.tasks.auction_settle_task": "auctions",
    "auctions.tasks.auction_notify_task": "auctions",
    "auctions.tasks.auctions_due_task": "auctions",
    "auctions.tasks.demo_trustees_release_task": "auctions",
    "listings.tasks.listing_expire_task": "auctions",
    "listings.tasks.listings_due_task": "auctions",
    "ledger.tasks.ledger_checkpoint_task": "checkpoints",
    "ledger.tasks.witness_submit_task": "witnesses",
    "ledger.tasks.webhooks_dispatch_task": "webhooks",
    "ledger.tasks.webhook_endpoint_send_task": "webhooks",
    "ledger.tasks.webhook_deliver_task": "webhooks",
    "ledger.tasks.idempotency_records_expire_task": "default",
    "ledger.tasks.mail_send_task": "default",
    "ledger.tasks.worker_heartbeat_task": "default",
    "portal.tasks.verification_run_task": "default",
    "portal.tasks.verification_runs_due_task": "default",
}


def test_each_task_goes_to_the_queue_of_its_kind():
    from bluecarbon.celery import app

    app.loader.import_default_modules()
    ours = sorted(name for name in app.tasks if not name.startswith("celery."))
    assert ours == sorted(KIND_OF)
    now = routes()
    assert len(set(now.values())) == len(queues.KINDS)  # five queues, none shared
    for name in ours:
        queue = app.amqp.router.route({}, name)["queue"].name
        assert queue == now[queues.KINDS[KIND_OF[name]][0]], name


def test_a_kind_whose_queue_is_empty_goes_to_the_default_queue(settings):
    from bluecarbon.celery import app

    settings.WEBHOOK_QUEUE = ""
    route = app.amqp.router.route({}, "ledger.tasks.webhook_endpoint_send_task")
    assert route["queue"].name == app.conf.task_default_queue


def test_a_worker_started_without_a_queue_list_consumes_every_queue():
    from bluecarbon.celery import app

    names = set(queues.from_environment(os.environ).values())
    assert {q.name for q in app.conf.task_queues} == names


ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_and_bin_demo_start_a_worker_for_every_queue():
    defaults = {kind: name for kind, (_, name) in queues.KINDS.items()}
    readme = (ROOT / "README.md").read_text()
    consumed = [q.split(",") for q in re.findall(r"celery -A bluecarbon worker -Q (\S+)", readme)]
    assert {name for names in consumed for name in names} == set(defaults.values())
    # Checkpoints on one worker command (one host), and not mixed with other work.
    assert [names for names in consumed if defaults["checkpoints"] in names] == [["checkpoints"]]
    demo = (ROOT / "bin" / "demo").read_text()
    kinds = re.findall(r"bluecarbon\.queues ([a-z ]+)\)", demo)
    assert sorted(kind for found in kinds for kind in found.split()) == sorted(defaults)


# ---- under load ------------------------------------------------------------------------------


class SlowReceiver:
    """A webhook receiver on loopback that takes ``delay`` seconds to answer each request (200),
    recording the path, the entry's seq and the delivery id of each."""

    def __init__(self, delay: float) -> None:
        self.received: list[tuple[str, int, str]] = []
        self.closing = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.closing.wait(delay)
                receiver.received.append(
                    (self.path, body["seq"], self.headers["BlueCarbon-Delivery"])
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_receiver(settings) -> Iterator[SlowReceiver]:
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    receiver = SlowReceiver(delay=0.5)
    yield receiver
    receiver.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, log: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log[-3000:]}")
        time.sleep(0.2)


def entry_time(seq: int) -> dt.datetime:
    body = LedgerEntry.objects.values_list("body", flat=True).get(seq=seq)
    return dt.datetime.fromisoformat(decode_entry(bytes(body)).time)


def auction_entry(auction: Auction, type: str) -> int:
    for seq, body in LedgerEntry.objects.filter(type=type).values_list("seq", "body"):
        if decode_entry(bytes(body)).data.get("auction") == auction.pk:
            return int(seq)
    raise AssertionError(f"no {type} entry for auction {auction.pk}")


ENDPOINTS = 10  # the cap
TRANSFERS = 220  # each an entry for every endpoint: 2,200 deliveries


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.parametrize(
    "webhook_kinds",
    [None, ["webhooks"]],
    ids=["one-worker-for-every-queue", "a-worker-of-its-own-for-webhooks"],
)
def test_an_auction_closes_on_time_and_checkpoints_keep_their_cadence_behind_thousands_of_deliveries(  # noqa: E501
    worker: Worker, slow_receiver: SlowReceiver, webhook_kinds: list[str] | None
):
    """Two arrangements of workers: one worker consuming every queue, as bin/demo runs and as
    the test suite's worker does (the bounded turns of the senders alone keep the auction and
    the checkpoints moving); and production's, where webhooks have a worker of their own."""
    with own_worker(ARTIFACTS, {}, kinds=webhook_kinds) as senders:
        log = senders.log
        m = Market(bidders=2)
        world = m.world
        endpoints = [
            webhooks.webhook_endpoint_create(
                actor=world.buy, url=f"{slow_receiver.url}/{i}", event_types=["credit.transfer"]
            )[0]
            for i in range(ENDPOINTS)
        ]
        for _ in range(TRANSFERS):
            services.credit_transfer(
                actor=world.dev,
                batch=m.batch.pk,
                sender=world.dev_account.pk,
                recipient=world.buyer_account.pk,
                quantity=TONNE,
            )
        # The workers' dispatcher writes the deliveries (and senders start on them).
        wait_until(
            lambda: WebhookDelivery.objects.count() == ENDPOINTS * TRANSFERS,
            timeout=60,
            what="the deliveries",
            log=log(),
        )

        a = m.auction(closes_in=8, quantity=100 * TONNE, reserve=3000)
        b1, b2 = m.bidders
        m.bid(a, b1, [(11000, 60)])
        m.bid(a, b2, [(10500, 50)])
        webhooks_queue = queues.queue_for("webhooks")
        others = [queues.queue_for(k) for k in ("auctions", "checkpoints")]
        samples: list[tuple[int, int, int]] = []  # webhooks queue, others, pending deliveries

        def settled() -> bool:
            depths = queue_depths([webhooks_queue, *others]) or {}
            pending = WebhookDelivery.objects.filter(status="pending").count()
            samples.append(
                (depths.get(webhooks_queue, -1), sum(depths.get(q, 0) for q in others), pending)
            )
            return Auction.objects.get(pk=a.pk).state == Auction.State.SETTLED

        wait_until(settled, timeout=120, what="the auction's settlement", log=log())
        head = LedgerEntry.objects.count()
        wait_until(
            lambda: Checkpoint.objects.filter(size__gte=head).exists(),
            timeout=60,
            what="a checkpoint of the whole ledger",
            log=log(),
        )

        # The auction closed on time: its close entry within seconds of its closing time
        # (behind 2,200 delivery tasks, about nine minutes).
        closed_at = entry_time(auction_entry(a, "auction.close"))
        late = (closed_at - a.closes_at).total_seconds()
        assert 0 <= late < 10, f"closed {late:.1f} s late"
        # ... while thousands of deliveries were waiting on the slow receiver.
        assert min(pending for _, _, pending in samples) >= 1_500

        # Checkpoints kept their cadence: every entry since the auction was scheduled was in a
        # signed checkpoint within seconds (one a second after writes, LEDGER_CHECKPOINT_INTERVAL).
        first = auction_entry(a, "auction.schedule")
        checkpoints = list(
            Checkpoint.objects.filter(size__gt=first).values_list("size", "created_at")
        )
        lags = []
        for seq in range(first, head):
            signed = min(at for size, at in checkpoints if size > seq)
            lags.append((signed - entry_time(seq)).total_seconds())
        assert max(lags) < 15, lags

        # Why: the webhooks queue held about one sender per endpoint, never a task per
        # delivery, and the auctions' and checkpoints' queues never backed up.
        assert samples and all(0 <= depth <= 2 * ENDPOINTS + 5 for depth, _, _ in samples), samples
        assert max(other for _, other, _ in samples) <= 5, samples

        # Every endpoint had its turns (none starved by another's backlog); each endpoint's
        # deliveries arrived in ledger order, none twice.
        wait_until(
            lambda: (
                {path for path, _, _ in slow_receiver.received}
                == {f"/{i}" for i in range(ENDPOINTS)}
            ),
            timeout=120,
            what="a delivery to every endpoint",
            log=log(),
        )
        received = list(slow_receiver.received)
        for i in range(ENDPOINTS):
            seqs = [seq for path, seq, _ in received if path == f"/{i}"]
            assert seqs == sorted(seqs)
        ids = [delivery for _, _, delivery in received]
        assert len(ids) == len(set(ids))

        # Stop the senders before the worker goes (the rest of the backlog is not this test's).
        WebhookEndpoint.objects.filter(pk__in=[e.pk for e in endpoints]).update(active=False)
