"""The auction tables compared with what replaying the ledger built (called by
``ledger.verify`` after the registry's tables)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator
from typing import Any

from django.conf import settings

from ledger.core.entry import decode_entry
from ledger.models import LedgerEntry

from . import records
from .core import parties
from .core.replay import AuctionState
from .models import (
    Application,
    Auction,
    Award,
    Bid,
    Bidder,
    ClockBid,
    ClockRound,
    Deposit,
    Raise,
    TrusteeKey,
    stored,
)

Compare = Callable[[str, dict[Any, dict[str, Any]], Generator[dict[str, Any], None, None]], None]


def compare_auction_tables(
    state: AuctionState, compare_rows: Compare, error: type[Exception]
) -> list[str]:
    """Each auction table against the replay's records of it, through ``compare_rows`` (the
    registry's comparison, which names the first difference); returns notes on what the ledger
    cannot yet determine (pseudonymous bidders before a reveal, committed round bids)."""
    # The replay keeps each auction's id in its record (the rules name it); the table's id is
    # the key.
    auctions = {k: {f: v for f, v in a.items() if f != "id"} for k, a in state.auctions.items()}

    def auction(a: Auction) -> dict[str, Any]:
        _check_stored_result(a, error)
        return records.auction_state(a)

    compare_rows("auction", auctions, _rows(Auction, auction))
    # Until an auction's reveal, its bids and deposits are pseudonyms on the ledger: who bid is
    # not derivable from it, so those columns are not compared (docs/auctions.md §3.7), and
    # deposits are named by their pseudonym.
    revealed = set(Auction.objects.filter(revealed_seq__isnull=False).values_list("pk", flat=True))
    _compare_bids(state, compare_rows, error, revealed)
    compare_rows("award", state.awards, _rows(Award, records.award_state))
    compare_rows("trustee key", state.trustee_keys, _rows(TrusteeKey, records.trustee_key_state))
    compare_rows(
        "bidder",
        {k: {"status": v} for k, v in state.bidders.items()},
        _rows(Bidder, records.bidder_state),
    )
    _compare_deposits(state, compare_rows, revealed)
    # Applications likewise: by (auction, bidder) once revealed, by the applicant's pseudonym
    # before.
    compare_rows(
        "application",
        {f"{a}/{b}": v for (a, b), v in state.onboarding.applications.items()},
        (
            records.application_state(x, revealed=x.auction_id in revealed)
            for x in Application.objects.order_by("pk").iterator(chunk_size=2000)
        ),
    )
    return _unchecked_notes(revealed)


def _rows(
    model: Any, to_record: Callable[[Any], dict[str, Any]]
) -> Generator[dict[str, Any], None, None]:
    return (to_record(obj) for obj in model.objects.order_by("pk").iterator(chunk_size=2000))


def _hidden(auction: int, salt: Any, revealed: set[int]) -> bool:
    """Whether a row's party is still a pseudonym on the ledger."""
    return salt is not None and auction not in revealed


def _check_stored_result(a: Auction, error: type[Exception]) -> None:
    """The stored result document (what the pages, the demand curve and the export read) must
    be the summary of the result in the auction's clear entry, whose hash the table also holds
    (compared with the replay's)."""
    if a.result is None and a.result_seq is None:
        return
    clear = (
        LedgerEntry.objects.filter(seq=a.result_seq, type="auction.clear")
        .values_list("body", flat=True)
        .first()
        if a.result_seq is not None
        else None
    )
    data = decode_entry(bytes(clear)).data if clear is not None else {}
    result = data.get("result") or {}
    summary = {"outcome": result.get("outcome"), "bidders": result.get("bidders")}
    if (
        data.get("auction") != a.pk
        or data.get("result_sha256") != a.result_sha256
        or (summary != a.result)
    ):
        raise error(
            f"auction {a.pk}: the stored result is not the one its clear entry "
            f"({a.result_seq}) published: it was changed"
        )


def _compare_bids(
    state: AuctionState, compare_rows: Compare, error: type[Exception], revealed: set[int]
) -> None:
    """Sealed bids, English bids, clock rounds and clock round bids."""

    def bid(b: Bid) -> dict[str, Any]:
        # The row's commitment is compared with the ledger's below; its ciphertext must be what
        # that commitment commits to (the ledger entry carries the same bytes).
        want = state.bids.get(b.pk)
        same = want is not None and want.get("commitment") == b.commitment
        if same and hashlib.sha256(bytes(b.ciphertext)).hexdigest() != b.commitment:
            raise error(
                f"bid {b.pk}: the stored ciphertext does not hash to its commitment on the "
                "ledger: it was changed"
            )
        record = records.bid_state(b)
        if _hidden(b.auction_id, b.salt, revealed):
            record.update(bidder=None, account=None)
        return record

    compare_rows("bid", state.bids, _rows(Bid, bid))
    compare_rows(
        "english bid",
        state.raises,
        (
            records.raise_state(r, revealed=r.auction_id in revealed)
            for r in Raise.objects.select_related("paddle").order_by("pk").iterator(chunk_size=2000)
        ),
    )
    compare_rows(
        "clock round",
        {f"{a}/{n}": v for (a, n), v in state.clock_rounds.items()},
        (records.clock_round_state(r) for r in ClockRound.objects.order_by("pk").iterator(2000)),
    )
    compare_rows(
        "clock bid",
        state.clock_bids,
        (
            records.clock_bid_state(b, revealed=b.auction_id in revealed)
            for b in ClockBid.objects.select_related("paddle", "round")
            .order_by("pk")
            .iterator(chunk_size=2000)
        ),
    )


def _compare_deposits(state: AuctionState, compare_rows: Compare, revealed: set[int]) -> None:
    """Deposits are named by (auction, bidder) on the ledger, not by row id; by the depositor's
    pseudonym before the reveal."""
    deposits = {f"{a}/{b}": d for (a, b), d in state.deposits.items()}

    def deposit_id(d: Deposit) -> str:
        if _hidden(d.auction_id, d.salt, revealed):
            return f"{d.auction_id}/" + parties.depositor(
                settings.LEDGER_ORIGIN, d.auction_id, d.bidder_id, stored(d.salt, "salt")
            )
        return f"{d.auction_id}/{d.bidder_id}"

    compare_rows(
        "deposit",
        deposits,
        (
            {"id": deposit_id(d), "amount": d.amount, "state": d.state}
            for d in Deposit.objects.order_by("pk").iterator(chunk_size=2000)
        ),
    )


def _unchecked_notes(revealed: set[int]) -> list[str]:
    notes = []
    hidden_bids = Bid.objects.filter(salt__isnull=False).exclude(auction_id__in=revealed).count()
    hidden_bids += Raise.objects.exclude(auction_id__in=revealed).count()
    if hidden_bids:
        notes.append(
            f"the bidders of {hidden_bids} bids are pseudonyms on the ledger until their "
            "auctions' close (docs/auctions.md §3.7): their bidder and account columns were not "
            "compared"
        )
    committed = ClockBid.objects.exclude(auction_id__in=revealed).count()
    if committed:
        notes.append(
            f"{committed} clock round bids are commitments until their auctions end "
            "(docs/auctions-ascending.md §6): their rounds' aggregates are checked then"
        )
    return notes
