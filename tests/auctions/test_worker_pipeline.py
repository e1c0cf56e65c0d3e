"""Auctions closed, opened, cleared and settled by a real Celery worker process, on the
configured broker and database (Redis and PostgreSQL in CI; the file-system broker and SQLite
by default): the deadline passes, the worker does the rest; racing and late bids; a worker
killed mid-close and restarted; close tasks delivered many times."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from auctions import selectors, services, tasks
from auctions.core import result as results
from auctions.models import Auction, Award, Bid
from ledger.exceptions import DomainError
from ledger.models import LedgerEntry, Membership, OutboxMail
from tests.auctions.conftest import TONNE, Market
from tests.conftest import ARTIFACTS
from tests.worker import Worker, own_worker

pytestmark = pytest.mark.worker


def entries_of(auction_id: int, type: str) -> int:
    """How many entries of this type name this auction."""
    from ledger.core.entry import decode_entry

    return sum(
        1
        for (body,) in LedgerEntry.objects.filter(type=type).values_list("body")
        if decode_entry(bytes(body)).data.get("auction") == auction_id
    )


def wait_until(
    condition: Callable[[], bool], *, timeout: float = 90, sweep: bool = False, what: str = ""
) -> None:
    """Poll; with ``sweep``, also do what beat does every few seconds (enqueue the sweep)."""
    deadline = time.monotonic() + timeout
    last_sweep = 0.0
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        if sweep and time.monotonic() - last_sweep > 1.0:
            tasks.auctions_due_task.delay()
            last_sweep = time.monotonic()
        time.sleep(0.1)


def state_of(a: Auction) -> str:
    return Auction.objects.get(pk=a.pk).state


def test_the_worker_closes_clears_and_settles_after_the_deadline(worker, verify_ledger):
    m = Market()
    a = m.auction(closes_in=3, quantity=100 * TONNE, reserve=3000)
    b1, b2, b3 = m.bidders
    mails_to = [[f"bidder{i}@example.org"] for i in range(3)]
    for org, to in zip(m.bidders, mails_to, strict=True):
        user = get_user_model().objects.create_user(to[0], email=to[0])
        Membership.objects.create(user=user, organization=org)
    m.bid(a, b1, [(11000, 60)])
    m.bid(a, b1, [(10000, 30)])  # a second bid: with the first, one demand schedule
    m.bid(a, b2, [(10500, 50)])
    m.bid(a, b3, [(9900, 40)])
    assert state_of(a) == "open"
    assert Auction.objects.get(pk=a.pk).private_key is None

    # Nothing but the ETA task scheduled at the closing time moves it now.
    wait_until(lambda: state_of(a) == "settled", timeout=60, what="settlement")
    a.refresh_from_db()
    assert a.clearing_price == 10500
    assert a.private_key is not None  # revealed with the result
    result = selectors.auction_result(a)  # the whole result, from its ledger entry
    assert result["outcome"]["awarded_lots"] == 100
    assert {w["bidder"]: w["lots"] for w in result["outcome"]["awards"]} == {
        b1.pk: 60,
        b2.pk: 40,
    }
    assert results.result_sha256(result) == a.result_sha256
    assert sorted(Award.objects.filter(auction=a).values_list("lots", flat=True)) == [40, 60]
    # Everyone was told, after the commit: the mail written to the outbox with the mark, then
    # sent by the worker (ledger/mail.py), once each.
    wait_until(lambda: Auction.objects.get(pk=a.pk).notified_at is not None, what="mark")
    expected = {tuple(sorted(x)) for x in mails_to}
    wait_until(
        lambda: set(OutboxMail.objects.values_list("status", flat=True)) == {"sent"},
        what="mail",
    )
    assert {tuple(sorted(row.to)) for row in OutboxMail.objects.all()} == expected
    assert set(OutboxMail.objects.values_list("attempts", flat=True)) == {1}
    verify_ledger()


def test_a_bid_racing_the_close_is_either_counted_or_refused(worker, verify_ledger):
    m = Market(bidders=8)
    a = m.auction(closes_in=2.5, quantity=100 * TONNE)
    refused: list[str] = []
    crashed: list[str] = []

    def hammer(bidder) -> None:
        # New bids and amendments, right up to and across the closing time.
        try:
            mine: list[int] = []
            price = 5000
            while timezone.now() < a.closes_at + dt.timedelta(milliseconds=300):
                price += 100
                if len(mine) < 5:  # a few new bids, then amendments of them
                    mine.append(m.bid(a, bidder, [(price, 1)]).bid_id)
                    continue
                services.bid_amend(
                    actor=m.actor(bidder),
                    auction=a.pk,
                    bid=mine[price // 100 % len(mine)],
                    ciphertext=m.seal(a, bidder, [(price, 2)]),
                )
        except DomainError as exc:
            refused.append(str(exc.code))
        except Exception as exc:  # a crash must fail the test, not vanish with its thread
            crashed.append(repr(exc))
        finally:
            connection.close()

    # Some bidders start late, so their first bid itself races the close.
    threads = []
    for i, b in enumerate(m.bidders):
        delay = (a.closes_at - timezone.now()).total_seconds() - 0.05 + i * 0.02 if i >= 4 else 0
        t = threading.Timer(max(delay, 0), hammer, args=(b,))
        threads.append(t)
        t.start()
    for t in threads:
        t.join(30)
    assert crashed == []
    assert refused and set(refused) == {"auction_closed"}  # every thread ran into the close
    wait_until(lambda: state_of(a) == "settled", timeout=60, what="settlement")
    a.refresh_from_db()
    # Every bid that got a receipt is counted, at the last version it got a receipt for: the
    # book the close committed to is exactly the bids with receipts.
    receipted = {
        bid.pk: max(bid.receipts.values_list("version", flat=True))
        for bid in Bid.objects.filter(auction=a)
    }
    counted = {row["bid"] for row in selectors.auction_result(a)["bids"]}
    assert counted == set(receipted) and len(counted) > 8
    assert {b.pk: b.version for b in Bid.objects.filter(auction=a)} == receipted
    assert a.book_size == len(counted)
    # The verifier also checks that no bid entry is timed at or after the closing time.
    verify_ledger()


@pytest.mark.django_db
def test_a_bid_after_the_deadline_is_refused_even_before_the_worker_closes(market):
    # No worker here: the auction is still "open" in the table when the bid comes.
    m = market
    a = m.auction(closes_in=0.5)
    time.sleep(0.6)
    assert state_of(a) == "open"
    before = LedgerEntry.objects.count()
    with pytest.raises(DomainError) as err:
        m.bid(a, m.bidders[0], [(5000, 1)])
    assert err.value.code == "auction_closed"
    assert LedgerEntry.objects.count() == before


@pytest.fixture
def slow_worker(celery_worker_process: Worker, committed_db: None) -> Iterator[Worker]:
    """A worker of its own that opens bids one per task (so a kill lands mid-opening)."""
    with own_worker(ARTIFACTS, {"AUCTION_OPEN_CHUNK": "1"}) as worker:
        yield worker


def test_a_worker_killed_while_opening_bids_restarts_and_settles_once(slow_worker, verify_ledger):
    m = Market(bidders=40)
    a = m.auction(closes_in=4, quantity=100 * TONNE)
    for i, b in enumerate(m.bidders):
        m.bid(a, b, [(3000 + 100 * (i % 7), 5)])
    total = len(m.bidders)

    def opened() -> int:
        return Bid.objects.filter(auction=a, opened__isnull=False).count()

    wait_until(lambda: opened() > 0, timeout=60, what="the first bids opened")
    slow_worker.kill()
    assert state_of(a) == "closing"
    assert 0 < opened() < total, "the kill should land while bids are being opened"
    time.sleep(2.5)  # past AUCTION_STALL_SECONDS: the sweep sees it stalled
    slow_worker.start()
    wait_until(lambda: state_of(a) == "settled", timeout=90, sweep=True, what="settlement")
    assert opened() == total
    assert entries_of(a.pk, "auction.close") == 1
    assert entries_of(a.pk, "auction.clear") == 1
    assert entries_of(a.pk, "auction.settle") == 1
    verify_ledger()


def test_a_worker_killed_before_the_deadline_leaves_the_sweep_to_close(slow_worker, verify_ledger):
    m = Market()
    a = m.auction(closes_in=2, quantity=10 * TONNE)
    m.bid(a, m.bidders[0], [(4000, 10)])
    slow_worker.kill()  # its ETA task for the closing time dies with it
    time.sleep(2.2)
    slow_worker.start()
    wait_until(lambda: state_of(a) == "settled", timeout=60, sweep=True, what="settlement")
    assert entries_of(a.pk, "auction.clear") == 1
    verify_ledger()


def test_close_clear_and_settle_tasks_delivered_many_times_act_once(worker, verify_ledger):
    m = Market()
    a = m.auction(closes_in=1.5, quantity=50 * TONNE)
    m.bid(a, m.bidders[0], [(4000, 30)])
    m.bid(a, m.bidders[1], [(3500, 30)])
    time.sleep(1.6)
    for _ in range(6):
        tasks.auction_close_task.delay(a.pk)
        tasks.auction_clear_task.delay(a.pk)
        tasks.auction_settle_task.delay(a.pk)
        tasks.auction_advance_task.delay(a.pk)
    wait_until(lambda: state_of(a) == "settled", timeout=60, what="settlement")
    time.sleep(1.0)  # let the duplicates that are still queued run too
    for _ in range(3):
        tasks.auction_settle_task.delay(a.pk)
        tasks.auction_clear_task.delay(a.pk)
    time.sleep(1.0)
    assert entries_of(a.pk, "auction.close") == 1
    assert entries_of(a.pk, "auction.clear") == 1
    assert entries_of(a.pk, "auction.settle") == 1
    assert Award.objects.filter(auction=a).count() == 2
    verify_ledger()
