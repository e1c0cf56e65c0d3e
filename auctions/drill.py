"""The tamper drill's attacks on a settled auction (``ledger/drill.py`` finds ``ATTACKS`` here).

Each picks the latest settled auction of its kind (sealed, or English) of the copy; a ledger
without one skips them.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from ledger.drill_attacks import DATABASE, SIGNING_KEY, Attack, Scene, Step, rewrite

from .core.result import result_sha256
from .models import SEALED_FORMATS, Auction, Bid, ClockBid, Format, Raise


def _settled(*formats: str) -> Auction | None:
    return (
        Auction.objects.filter(
            state=Auction.State.SETTLED,
            result_seq__isnull=False,
            format__in=formats or SEALED_FORMATS,
        )
        .order_by("-pk")
        .first()
    )


_NONE = "no settled auction in this ledger (the demo data, `manage.py seed_demo`, has one)"
_NO_ENGLISH = "no settled English auction in this ledger (the demo's Xiangshan lot is one)"


def _plan_english_bid_table(scene: Scene) -> Step | str:
    """A settled English auction's accepted bid, its price changed in the table (what the
    auction room and the API show)."""
    auction = _settled(Format.ENGLISH)
    if auction is None:
        return _NO_ENGLISH
    bid = Raise.objects.filter(auction=auction).order_by("entry_seq").first()
    if bid is None:
        return f"auction {auction.pk} has no bid"
    pk, price, tick = bid.pk, bid.price, auction.tick

    def step(scene: Scene) -> str:
        Raise.objects.filter(pk=pk).update(price=price - tick)
        return f"bid {pk} of English auction {auction.pk}: its stored price lowered by a tick"

    return step


def _plan_english_bid_in_ledger(scene: Scene) -> Step | str:
    """What only the operator can do: the winning bid.raise rewritten to a lower price (the
    winner pays less), the result, its hash and the settlement left to match would need more;
    here the bid alone, re-chained and signed with the log's key, the row to match."""
    auction = _settled(Format.ENGLISH)
    if auction is None:
        return _NO_ENGLISH
    bid = Raise.objects.filter(auction=auction).order_by("-entry_seq").first()
    if bid is None:
        return f"auction {auction.pk} has no bid"
    seq, pk, tick = bid.entry_seq, bid.pk, auction.tick

    def change(entry: dict[str, Any]) -> None:
        entry["data"]["price"] -= tick

    def tables() -> None:
        Raise.objects.filter(pk=pk).update(price=bid.price - tick)

    def step(scene: Scene) -> str:
        rewrite(seq, change, tables, mac=True, sign_with=scene.log_key)
        return (
            f"entry {seq} (bid.raise {pk}, the winning bid of English auction {auction.pk}): "
            "price lowered by a tick, the row to match; chain, MACs and tree rebuilt, later "
            "checkpoints deleted, the ledger signed with the log's key"
        )

    return step


def _plan_bid_ciphertext(scene: Scene) -> Step | str:
    auction = _settled()
    if auction is None:
        return _NONE
    bid = Bid.objects.filter(auction=auction).order_by("pk").first()
    if bid is None:
        return f"auction {auction.pk} has no bid"
    pk = bid.pk

    def step(scene: Scene) -> str:
        ciphertext = bytearray(Bid.objects.values_list("ciphertext", flat=True).get(pk=pk))
        ciphertext[-1] ^= 0x01
        Bid.objects.filter(pk=pk).update(ciphertext=bytes(ciphertext))
        return f"bid {pk} of auction {auction.pk}: one bit of its stored ciphertext flipped"

    return step


def _plan_result_in_ledger(scene: Scene) -> Step | str:
    """What only the operator can do (the log's key): the auction.clear entry published with a
    higher clearing price, its result hash recomputed, the auction row to match, history
    re-chained and signed."""
    auction = _settled()
    if auction is None:
        return _NONE
    seq, pk, tick = auction.result_seq, auction.pk, auction.tick
    assert seq is not None
    new: dict[str, Any] = {}

    def change(entry: dict[str, Any]) -> None:
        outcome = entry["data"]["result"]["outcome"]
        outcome["clearing_price"] += tick
        entry["data"]["result_sha256"] = result_sha256(entry["data"]["result"])
        new.update(price=outcome["clearing_price"], sha=entry["data"]["result_sha256"])

    def tables() -> None:
        a = Auction.objects.get(pk=pk)
        assert a.result is not None
        a.result["outcome"]["clearing_price"] = new["price"]
        Auction.objects.filter(pk=pk).update(
            result=a.result, result_sha256=new["sha"], clearing_price=new["price"]
        )

    def step(scene: Scene) -> str:
        rewrite(seq, change, tables, mac=True, sign_with=scene.log_key)
        return (
            f"entry {seq} (auction.clear of auction {pk}): clearing price + one tick, "
            "result_sha256 recomputed, the auction row to match; chain, MACs and tree rebuilt, "
            "later checkpoints deleted, the ledger signed with the log's key"
        )

    return step


def _plan_result_in_table(scene: Scene) -> Step | str:
    auction = _settled()
    if auction is None:
        return _NONE
    pk = auction.pk

    def step(scene: Scene) -> str:
        a = Auction.objects.get(pk=pk)
        assert a.result is not None
        outcome = a.result["outcome"]
        was = outcome["clearing_price"]
        outcome["clearing_price"] = was + a.tick
        winners = [b for b in a.result["bidders"] if b["awarded_lots"]]
        loser = next((b for b in a.result["bidders"] if not b["awarded_lots"]), None)
        if winners and loser is not None:  # the lot shown as won by someone else
            for key in ("awarded_lots", "amount"):
                winners[0][key], loser[key] = loser[key], winners[0][key]
        Auction.objects.filter(Q(pk=pk)).update(result=a.result)
        return (
            f"auction {pk}: its stored result (auctions_auction.result, what the auction pages "
            f"show) says clearing price {was + a.tick} and another winner"
        )

    return step


def _plan_clock_round_bid(scene: Scene) -> Step | str:
    """A clock auction's round bid, its demand raised in the table while the auction runs
    (before the reveal, the ledger has only the bid's commitment)."""
    bid = (
        ClockBid.objects.filter(auction__format=Format.CLOCK)
        .select_related("round")
        .order_by("-pk")
        .first()
    )
    if bid is None:
        return "no clock round bid in this ledger (the demo's Putian clock auction has three)"
    pk, lots, auction = bid.pk, bid.lots, bid.auction_id

    def step(scene: Scene) -> str:
        ClockBid.objects.filter(pk=pk).update(lots=lots + 1)
        return (
            f"round bid {pk} of clock auction {auction}: its stored demand raised from {lots} "
            f"to {lots + 1} lots"
        )

    return step


ATTACKS = [
    Attack(
        "bid-ciphertext",
        "a settled auction's stored bid ciphertext changed",
        DATABASE,
        ("verify",),
        _plan_bid_ciphertext,
    ),
    Attack(
        "auction-result",
        "a settled auction's result changed in its clear entry, signed with the log's real key",
        SIGNING_KEY,
        ("verify", "monitor", "signer-state", "signer", "witnesses"),
        _plan_result_in_ledger,
    ),
    Attack(
        "auction-result-table",
        "a settled auction's stored result changed (what its pages show)",
        DATABASE,
        ("verify",),
        _plan_result_in_table,
    ),
    Attack(
        "english-bid-table",
        "a settled English auction's stored bid price changed",
        DATABASE,
        ("verify",),
        _plan_english_bid_table,
    ),
    Attack(
        "english-bid",
        "a settled English auction's winning bid changed in its entry, signed with the log's "
        "real key",
        SIGNING_KEY,
        ("verify", "monitor", "signer-state", "signer", "witnesses"),
        _plan_english_bid_in_ledger,
    ),
    Attack(
        "clock-round-bid",
        "a clock auction's round bid changed in the database while the auction runs",
        DATABASE,
        ("verify",),
        _plan_clock_round_bid,
    ),
]
