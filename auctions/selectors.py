"""Reads of the auction house, shaped for the API and the portal (no N+1: every list fetches
what its rows show in a fixed number of queries)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from ledger.actors import Actor
from ledger.core.entry import decode_entry
from ledger.core.quantity import format_money
from ledger.models import LedgerEntry

from . import clock, english, policy, records
from .core import sealing
from .models import Auction, Bid, BidReceipt, ClockRound, Raise, TrusteeKey


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


def trustee_keys(a: Auction) -> list[TrusteeKey]:
    """The trustees' keys assigned to ``a``, by position, with their organizations."""
    if not a.by_trustees:
        return []
    return list(
        TrusteeKey.objects.filter(auction=a).select_related("organization").order_by("position")
    )


def auction_sealing(a: Auction, keys: list[TrusteeKey] | None = None) -> dict[str, Any] | None:
    """How to seal a bid for ``a`` (docs/auctions.md §3), as the API's ``sealing`` and the
    portal's bid page give it to clients; None while a draft (the keys are fixed when the
    auction is scheduled). ``keys``: ``trustee_keys(a)``, if the caller has them already."""
    keys = trustee_keys(a) if keys is None else keys
    if a.public_key is None and not keys:
        return None
    origin = settings.LEDGER_ORIGIN
    return {
        "mode": a.sealing,
        "suite": sealing.SUITE_NAME,
        "origin": origin,
        "info_prefix": sealing.info(origin, a.pk, 0)[:-1].decode(),
        "share_info_prefix": (
            sealing.share_info(origin, a.pk, 0, 0)[:-3].decode() if a.by_trustees else None
        ),
        "public_key": records.b64(a.public_key),
        "threshold": a.threshold,
        "trustees": [
            {
                "position": k.position,
                "trustee": k.organization_id,
                "key": k.pk,
                "public_key": k.public_key_b64,
                "released": k.private_key is not None,
            }
            for k in keys
        ],
        "release_by": a.release_by,
    }


def _bids(qs: QuerySet[Bid] | None = None) -> QuerySet[Bid]:
    return (
        (Bid.objects.all() if qs is None else qs)
        .defer("ciphertext", "opened")
        .prefetch_related(Prefetch("receipts", queryset=BidReceipt.objects.order_by("pk")))
    )


def bid_get(pk: int) -> Bid | None:
    """Any bid: the caller asks ``policy.bid_visible_to`` before it shows one."""
    return _bids().filter(pk=pk).first()


def bid_list(*, actor: Actor) -> QuerySet[Bid]:
    """The bids the actor may read (its own: policy.bids_visible_to), with their receipts."""
    return _bids(policy.bids_visible_to(actor)).order_by("pk")


def auction_result(a: Auction) -> dict | None:
    """The whole published result (every opened bid), as its auction.clear entry carries it;
    None before the auction is cleared."""
    if a.result_seq is None:
        return None
    body = LedgerEntry.objects.values_list("body", flat=True).get(seq=a.result_seq)
    return decode_entry(bytes(body)).data["result"]


def english_state(a: Auction) -> dict[str, Any] | None:
    """An English auction's rules and bidding so far, money as decimal strings (the API's
    ``english`` and the portal's auction room); None for the sealed formats."""
    if not a.is_english:
        return None
    r = english.rules(a)

    def money(minor: int) -> str:
        return format_money(minor, a.currency)

    open_now = a.state in (Auction.State.SCHEDULED, Auction.State.OPEN)
    return {
        "start_price": money(a.reserve),
        "increments": [{"from": money(low), "step": money(step)} for low, step in r.increments],
        "countdown_seconds": a.countdown_s,
        "hard_close_at": a.hard_close_at,
        "standing_price": None if a.standing_price is None else money(a.standing_price),
        "minimum_bid": money(r.minimum(a.standing_price)) if open_now else None,
        "ends_at": a.ends_at,
    }


def raises(a: Auction) -> QuerySet[Raise]:
    """An English auction's accepted bids, in ledger order, with their paddles."""
    return Raise.objects.filter(auction=a).select_related("paddle").order_by("entry_seq")


_UNREAD = object()


def with_current_rounds(auctions: list[Auction]) -> list[Auction]:
    """Each clock auction of a page with its current round, read in one query for the page
    (``clock_state`` then reads none)."""
    ids = [a.pk for a in auctions if a.is_clock]
    latest: dict[int, ClockRound] = {}
    for r in ClockRound.objects.filter(auction_id__in=ids).order_by("auction_id", "number"):
        latest[r.auction_id] = r
    for a in auctions:
        if a.is_clock:
            a._current_round = latest.get(a.pk)  # type: ignore[attr-defined]
    return auctions


def clock_state(a: Auction) -> dict[str, Any] | None:
    """A clock auction's rules and current round (the API's ``clock``); None for the other
    formats."""
    if not a.is_clock:
        return None
    r = clock.rules(a)
    current = a.__dict__.get("_current_round", _UNREAD)
    if current is _UNREAD:  # not read with its page (with_current_rounds)
        current = clock.current_round(a)

    def money(minor: int) -> str:
        return format_money(minor, a.currency)

    return {
        "start_price": money(a.reserve),
        "increments": [{"from": money(low), "step": money(step)} for low, step in r.increments],
        "round_seconds": a.round_s,
        "round": None if current is None else current.number,
        "round_price": None if current is None else money(current.price),
        "round_closes_at": None if current is None else current.closes_at,
        "round_open": current is not None and current.close_seq is None,
    }
