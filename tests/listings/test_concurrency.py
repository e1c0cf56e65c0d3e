"""Many buyers taking the last lots at once, really committed: the listing's row lock serves
them one at a time in ledger order, so the lots are never oversold, every take either gets
its lots or is refused with listing_insufficient_lots, and the ledger verifies. (On PostgreSQL
the takes contend on the row lock; on SQLite on the database's write lock.)"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections, transaction

from ledger.models import EscrowHold, LedgerEntry, Role
from ledger.signing import trusted_verifiers
from ledger.verify import verify_ledger
from listings import services
from listings.exceptions import Conflict
from listings.exceptions import ListingErrorCode as Code
from listings.models import Listing, Purchase
from tests import factories
from tests.listings.conftest import Board

TAKERS = 12


def _in_thread(work: Callable[[], None], failures: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connections.close_all()

    return threading.Thread(target=run)


def test_many_buyers_taking_the_last_lots_never_oversell(committed_db):
    board = Board(buyers=0)
    buyers = []
    for _ in range(TAKERS):
        org = factories.organization(Role.BIDDER)
        factories.account(org)
        buyers.append(org)
    x = board.listing(lots=7)
    start = threading.Barrier(TAKERS)
    taken: list[int] = []
    refused: list[str] = []
    failures: list[BaseException] = []

    def taker(i: int) -> Callable[[], None]:
        def work() -> None:
            start.wait()
            try:
                with transaction.atomic(durable=True):
                    p = services.listing_take(
                        actor=factories.actor_for(buyers[i]),
                        listing=x.pk,
                        lots=2,
                        up_to=i % 3 == 0,  # some take what remains, up to 2
                    )
                taken.append(p.lots)
            except Conflict as exc:
                refused.append(str(exc.code))

        return work

    threads = [_in_thread(taker(i), failures) for i in range(TAKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert set(refused) == {Code.INSUFFICIENT_LOTS.value}
    assert len(taken) + len(refused) == TAKERS
    x.refresh_from_db()
    # Never oversold; at most one lot left, if every "up to" taker came while two remained.
    assert sum(taken) + x.remaining_lots == 7 and x.remaining_lots <= 1
    assert sum(Purchase.objects.filter(listing=x).values_list("lots", flat=True)) == sum(taken)
    assert EscrowHold.objects.get(pk=x.hold_id).remaining == x.quantity
    # The ledger's order is the order they were served in.
    seqs = list(Purchase.objects.order_by("entry_seq").values_list("entry_seq", flat=True))
    assert len(seqs) == len(taken) and seqs == sorted(set(seqs))
    assert LedgerEntry.objects.filter(type="listing.take").count() == len(taken)
    verify_ledger(verifiers=trusted_verifiers())
    assert Listing.objects.count() == 1
