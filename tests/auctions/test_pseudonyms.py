"""Anonymous until the close (docs/auctions.md §3.7): before an auction's reveal, its bid and
deposit entries name pseudonyms, so the ledger, its feed, the book and the portal show how many
bid and nothing about who; the reveal at the close opens every pseudonym and the verifier checks
each, and only then what it could not check before."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from auctions import services
from auctions.core import parties
from auctions.models import Auction, Bid, Deposit
from auctions.services import closing
from ledger.core.entry import decode_entry
from ledger.models import LedgerEntry

from .conftest import OPERATOR, Market, run_to_settlement, wait_for_close


def _entries(*types: str) -> list[Any]:
    return [
        decode_entry(bytes(body))
        for body in LedgerEntry.objects.filter(type__in=types)
        .order_by("seq")
        .values_list("body", flat=True)
    ]


def _public_text(a: Auction) -> str:
    """Everything the public reads about the auction's bids: the feed, the book."""
    client = APIClient()
    feed = client.get("/api/v1/ledger/entries?after=-1&limit=1000").content.decode()
    book = client.get(f"/api/v1/auctions/{a.pk}/book").content.decode()
    return feed + book


def test_before_the_close_no_entry_names_a_bidder_or_its_account(market: Market) -> None:
    a = market.auction(closes_in=30, deposit_required=100)
    b1, b2 = market.bidders[:2]
    for bidder in (b1, b2):
        market.deposit(a, bidder, 100)
    market.bid(a, b1, [(10_600, 10)])
    receipt = market.bid(a, b2, [(10_000, 5)])
    services.bid_amend(
        actor=market.actor(b2),
        auction=a.pk,
        bid=receipt.bid_id,
        ciphertext=market.seal(a, b2, [(10_100, 5)]),
    )
    for entry in _entries("bid.submit", "bid.amend", "deposit.record"):
        assert "bidder" not in entry.data and "account" not in entry.data, entry.data
    for bid in _entries("bid.submit"):
        assert len(bid.data["party"]) == 64 and len(bid.data["account_commitment"]) == 64
    # Two bids of two bidders: two parties; the amend keeps its bid's party.
    parties_seen = {e.data["party"] for e in _entries("bid.submit", "bid.amend")}
    assert len(parties_seen) == 2
    book = APIClient().get(f"/api/v1/auctions/{a.pk}/book").json()["results"]
    assert [row["bidder"] for row in book] == [None, None]
    # Nothing public holds the bidders' ids in a field of theirs.
    text = _public_text(a)
    for bidder in (b1, b2):
        for key in ("bidder", "depositor", "organization"):
            assert f'"{key}":{bidder.pk},' not in text.replace(" ", "")
    # The salts are secret: no API or entry carries them before the reveal.
    for bid in Bid.objects.filter(auction=a):
        assert bytes(bid.salt).hex() not in text


def test_the_close_reveals_every_pseudonym_and_the_ledger_verifies(
    market: Market, verify_ledger
) -> None:
    a = market.auction(closes_in=1, deposit_required=100)
    for bidder in market.bidders:
        market.deposit(a, bidder, 100)
    b1, b2, b3 = market.bidders
    market.bid(a, b1, [(10_600, 60)])
    market.bid(a, b2, [(10_000, 50)])
    w = market.bid(a, b3, [(3_100, 10)])
    services.bid_withdraw(actor=market.actor(b3), auction=a.pk, bid=w.bid_id)
    verify_ledger()  # before the close: the pseudonyms stand for the tables' bidders
    a = run_to_settlement(a)
    (reveal,) = _entries("auction.reveal")
    assert [b["bidder"] for b in reveal.data["bids"]] == [b1.pk, b2.pk, b3.pk]
    assert sorted(d["bidder"] for d in reveal.data["deposits"]) == sorted(
        b.pk for b in market.bidders
    )
    book = APIClient().get(f"/api/v1/auctions/{a.pk}/book").json()["results"]
    assert [row["bidder"] for row in book] == [b1.pk, b2.pk, b3.pk]
    for item in reveal.data["bids"]:
        bid = Bid.objects.get(pk=item["bid"])
        assert (
            parties.party(
                settings.LEDGER_ORIGIN, a.pk, bid.pk, item["bidder"], bytes.fromhex(item["salt"])
            )
            == _entries("bid.submit")[
                [e.data["bid"] for e in _entries("bid.submit")].index(bid.pk)
            ].data["party"]
        )
    verify_ledger()


def test_an_insider_who_changes_a_bids_bidder_is_caught_once_revealed(
    market: Market, verify_ledger
) -> None:
    a = market.auction(closes_in=1)
    b1, b2 = market.bidders[:2]
    market.bid(a, b1, [(10_600, 60)])
    bid = Bid.objects.get(auction=a)
    # Before the reveal the ledger cannot say who bid: the verifier does not compare it.
    Bid.objects.filter(pk=bid.pk).update(bidder=b2)
    verify_ledger()
    Bid.objects.filter(pk=bid.pk).update(bidder=b1)
    wait_for_close(a)
    services.auction_close(auction=a.pk)
    verify_ledger()
    Bid.objects.filter(pk=bid.pk).update(bidder=b2)
    with pytest.raises(AssertionError, match="bid"):
        verify_ledger()


def test_a_deposit_changed_under_its_pseudonym_is_caught(market: Market, verify_ledger) -> None:
    a = market.auction(closes_in=30, deposit_required=100)
    market.deposit(a, market.bidders[0], 100)
    verify_ledger()
    Deposit.objects.filter(auction=a).update(amount=1_000_000)
    with pytest.raises(AssertionError, match="deposit"):
        verify_ledger()


def test_a_cancelled_auction_releases_deposits_by_pseudonym(market: Market, verify_ledger) -> None:
    a = market.auction(closes_in=30, deposit_required=100)
    market.deposit(a, market.bidders[0], 100)
    market.bid(a, market.bidders[0], [(10_600, 1)])
    services.auction_cancel(actor=OPERATOR, auction=a.pk, reason="market halted")
    (cancel,) = _entries("auction.cancel")
    (deposit,) = _entries("deposit.record")
    assert cancel.data["deposits_released"] == [deposit.data["depositor"]]
    assert not _entries("auction.reveal")
    verify_ledger()


@pytest.mark.parametrize("forgery", ["other bidder", "missing bid", "other salt"])
def test_a_reveal_written_by_an_insider_that_does_not_open_the_pseudonyms_is_caught(
    market: Market, verify_ledger, monkeypatch, forgery: str
) -> None:
    """The operator's code writes the reveal: one that names another bidder for a bid, leaves
    a bid out, or gives a salt that does not open its commitment is named by the verifier (the
    party on the ledger since the bid was taken binds the reveal)."""
    a = market.auction(closes_in=1)
    b1, b2 = market.bidders[:2]
    market.bid(a, b1, [(10_600, 60)])
    market.bid(a, b2, [(10_400, 40)])
    real = closing._append  # the reveal's append

    def forge(type: str, actor: Any, data: dict[str, Any], at: Any = None) -> Any:
        if type == "auction.reveal":
            bids = data["bids"]
            if forgery == "other bidder":
                bids[0]["bidder"] = b2.pk
            elif forgery == "missing bid":
                del bids[1]
            else:
                bids[0]["salt"] = "00" * 32
        return real(type, actor, data, at)

    monkeypatch.setattr(closing, "_append", forge)
    wait_for_close(a)
    assert services.auction_close(auction=a.pk)
    words = {"other bidder": "does not open its party", "missing bid": "the reveal names bids"}
    with pytest.raises(AssertionError, match=words.get(forgery, "does not open its party")):
        verify_ledger()
