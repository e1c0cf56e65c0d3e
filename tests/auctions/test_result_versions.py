"""Issue 13, part 4: a bid the cap or the deposit cut out entirely carries that reason itself,
and ``stats.valid_bids``/``rejected_bids`` count sealed bids, for auctions whose rules are
version 2. An auction created before (rules without ``v``) is recomputed the old way, so every
result already on a ledger still verifies (docs/auctions.md §5)."""

from __future__ import annotations

from typing import Any

import pytest

from auctions import records, selectors
from auctions.core import result as results
from auctions.models import Auction, Bid
from ledger import services as registry
from ledger.core.entry import decode_entry
from ledger.models import LedgerEntry
from tests.auctions.conftest import Market, run_to_settlement
from tests.auctions.test_verify_auctions import _close_and_open, _forged_clear, verify_fails

pytestmark = pytest.mark.usefixtures("verifier_path")


def _trimmed_market(m: Market) -> tuple[Auction, dict[str, Any]]:
    """100 lots of 1 t, cap 30 lots, bids guaranteed by deposits. A's third bid is beyond its
    cap, B's third beyond its deposit; A's second and B's second are cut in part; C's second
    is below the reserve. Returns the auction (settled) and its bids by name."""
    a = m.auction(closes_in=1.5, cap_bp=3000, bid_guarantee=True, reserve=3000)
    A, B, C = m.bidders
    m.deposit(a, A, 1_000_000)
    m.deposit(a, B, 150_000)  # 25 lots at 60.00
    m.deposit(a, C, 1_000_000)
    bids = {
        "a1": m.bid(a, A, [(5000, 25)]),
        "a2": m.bid(a, A, [(4500, 10)]),  # 5 of its 10 lots fit under the cap of 30
        "a3": m.bid(a, A, [(4000, 5)]),  # none fits
        "b1": m.bid(a, B, [(6000, 20)]),
        "b2": m.bid(a, B, [(6000, 10)]),  # the same price: 5 of its 10 lots are covered
        "b3": m.bid(a, B, [(5000, 4)]),  # nothing is left of the deposit
        "c1": m.bid(a, C, [(7000, 10)]),
        "c2": m.bid(a, C, [(2900, 1)]),  # below the reserve
    }
    return run_to_settlement(a), {name: r.bid_id for name, r in bids.items()}


def _rows(a: Auction) -> dict[int, dict[str, Any]]:
    return {row["bid"]: row for row in selectors.auction_result(a)["bids"]}


def test_a_bid_cut_out_entirely_by_the_cap_or_the_deposit_carries_the_reason(market, verify_ledger):
    a, ids = _trimmed_market(market)
    result = selectors.auction_result(a)
    assert result["v"] == 2
    rows = _rows(a)
    got = {
        name: (rows[i]["status"], rows[i]["reason"], rows[i]["awarded_lots"])
        for name, i in ids.items()
    }
    assert got == {
        "a1": ("valid", None, 25),
        "a2": ("valid", None, 5),
        "a3": ("rejected", "over_cap", 0),
        "b1": ("valid", None, 20),
        "b2": ("valid", None, 5),
        "b3": ("rejected", "over_deposit", 0),
        "c1": ("valid", None, 10),
        "c2": ("rejected", "below_reserve", 0),
    }
    # The bid rows say so too, and the bidders' trimming is as before.
    assert Bid.objects.get(pk=ids["a3"]).reason == "over_cap"
    assert Bid.objects.get(pk=ids["b3"]).status == Bid.Status.REJECTED
    bidders = {row["bidder"]: row for row in result["bidders"]}
    A, B, _ = market.bidders
    assert bidders[A.pk]["trimmed"] == [["over_cap", 10]]
    assert bidders[B.pk]["trimmed"] == [["over_deposit", 9]]
    # The statistics count sealed bids: 5 valid and 3 rejected of the 8 in the book.
    stats = result["outcome"]["stats"]
    assert (stats["valid_bids"], stats["rejected_bids"], stats["bidders"]) == (5, 3, 3)
    assert stats["valid_bids"] + stats["rejected_bids"] == result["book_size"]
    create = LedgerEntry.objects.get(seq=a.created_seq)
    assert decode_entry(bytes(create.body)).data["auction"]["v"] == 2
    verify_ledger()


def test_an_auction_created_before_rules_versions_is_recomputed_the_old_way(
    market, verify_ledger, monkeypatch
):
    """Its auction.create record has no "v", as on every ledger written before version 2: the
    result is built, and verified, as it was then."""
    monkeypatch.setattr(results, "RULES_VERSION", 1)
    a, ids = _trimmed_market(market)
    create = decode_entry(bytes(LedgerEntry.objects.get(seq=a.created_seq).body)).data
    assert "v" not in create["auction"] and a.rules_version == 1
    result = selectors.auction_result(a)
    assert result["v"] == 1
    rows = _rows(a)
    assert (rows[ids["a3"]]["status"], rows[ids["a3"]]["reason"]) == ("valid", None)
    assert (rows[ids["b3"]]["status"], rows[ids["b3"]]["reason"]) == ("valid", None)
    stats = result["outcome"]["stats"]
    assert (stats["valid_bids"], stats["rejected_bids"]) == (3, 0)  # bidders' schedules
    verify_ledger()
    # Recomputed by version 2 it would not be the published result: the version matters.
    from auctions.models import Deposit

    held = dict(Deposit.objects.filter(auction=a).values_list("bidder_id", "amount"))
    book = [
        results.BookBid(
            bid=b.pk,
            bidder=b.bidder_id,
            account=b.account_id,
            commitment=b.commitment,
            deposit=held.get(b.bidder_id, 0),
            tiers=b.opened.get("tiers"),
            error=b.opened.get("error"),
        )
        for b in Bid.objects.filter(auction=a).order_by("pk")
    ]
    again = {"record": records.auction_rules(a), "book": book, "seed": bytes(a.seed)}
    root = bytes(a.book_root)
    assert results.build_result(**again, root=root) == result
    assert (
        results.build_result(**{**again, "record": {**again["record"], "v": 2}}, root=root)
        != result
    )


def test_a_version_2_result_with_the_old_statistics_fails_verification(market, verify_ledger):
    a = _close_and_open(market)

    def old_stats(data: dict[str, Any]) -> None:
        data["result"]["outcome"]["stats"]["rejected_bids"] += 1
        data["result_sha256"] = results.result_sha256(data["result"])

    seq = _forged_clear(a, old_stats)
    registry.ledger_checkpoint_issue()
    verify_fails(
        verify_ledger,
        f"entry {seq}",
        "published result differs from the recomputation",
        "outcome.stats.rejected_bids",
    )


def test_an_auction_row_with_another_rules_version_fails_verification(market, verify_ledger):
    a = market.auction()
    Auction.objects.filter(pk=a.pk).update(rules_version=1)
    verify_fails(verify_ledger, f"auction {a.pk}", "differs from the ledger", "v")


def test_a_rules_version_no_verifier_knows_fails_at_the_create_entry():
    from auctions.core import clearing

    with pytest.raises(clearing.RulesError):
        results.rules_version({"v": 3})
    assert results.rules_version({}) == 1 and results.rules_version({"v": 2}) == 2
