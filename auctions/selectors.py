"""Reads of the auction house, shaped for the API and the portal (no N+1: every list fetches
what its rows show in a fixed number of queries)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from .models import Auction, Bid, BidReceipt


def _auctions() -> QuerySet[Auction]:
    return Auction.objects.select_related(
        "batch", "batch__project", "batch__project__methodology"
    ).defer("private_key_sealed", "result")


def auction_list(
    *,
    state: str | None = None,
    format: str | None = None,
    ecosystem: str | None = None,
    vintage: int | None = None,
    seller: int | None = None,
) -> QuerySet[Auction]:
    qs = _auctions()
    if state:
        qs = qs.filter(state=state)
    if format:
        qs = qs.filter(format=format)
    if ecosystem:
        qs = qs.filter(batch__project__ecosystem=ecosystem)
    if vintage:
        qs = qs.filter(batch__vintage=vintage)
    if seller:
        qs = qs.filter(seller_id=seller)
    return qs.order_by("pk")


def auction_get(pk: int) -> Auction | None:
    return (
        Auction.objects.select_related("batch", "batch__project", "batch__project__methodology")
        .defer("private_key_sealed")
        .filter(pk=pk)
        .first()
    )


def _bids() -> QuerySet[Bid]:
    return Bid.objects.defer("ciphertext", "opened").prefetch_related(
        Prefetch("receipts", queryset=BidReceipt.objects.order_by("pk"))
    )


def bid_get(pk: int) -> Bid | None:
    return _bids().filter(pk=pk).first()


def bids_of(organization: int | None) -> QuerySet[Bid]:
    return _bids().filter(bidder_id=organization or 0).order_by("pk")


def auction_result(a: Auction) -> dict | None:
    """The whole published result (every opened bid), as its auction.clear entry carries it;
    None before the auction is cleared."""
    from ledger.core.entry import decode_entry
    from ledger.models import LedgerEntry

    if a.result_seq is None:
        return None
    body = LedgerEntry.objects.values_list("body", flat=True).get(seq=a.result_seq)
    return decode_entry(bytes(body)).data["result"]
