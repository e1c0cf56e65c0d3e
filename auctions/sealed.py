"""The sealed formats' own steps in the auction pipeline (uniform, pay-as-bid, first and second
price; docs/auctions.md): a key to seal bids to at scheduling, the Merkle root of the book at
the close, and at clearing the bids opened with the operator's key or the trustees' and each
bid's outcome. ``auctions/services/`` runs the pipeline and calls in here, as it calls
``english.py`` and ``clock.py`` for theirs (``services/formats.py``); the sealed bids themselves
are taken by ``services/bidding.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import keys, records, trustees
from .core import result as results
from .core import sealing
from .models import Auction, Bid, Deposit, Sealing, stored
from .rows import update_rows


class NotReady(Exception):
    """A step that must wait for another (clearing before every bid is opened)."""


def scheduled(a: Auction) -> dict[str, Any]:
    """What ``auction.schedule`` publishes to seal bids to: each trustee's key, or the public
    key of one the operator holds (sealed at rest under the KEK, ``keys.py``)."""
    if a.by_trustees:
        # Each trustee's key: the server holds no private key that opens these bids.
        return {"trustee_keys": trustees.assign_keys(a)}
    private = sealing.generate_private_key()
    a.public_key = sealing.public_key_of(private)
    a.private_key_sealed = keys.seal_private_key(a.pk, private)
    del private
    return {"public_key": records.b64(a.public_key)}


def opened(a: Auction, now: dt.datetime) -> None:
    """Nothing begins with the opening: bids are taken as they come until the closing time."""


def bidding_over(a: Auction, now: dt.datetime) -> bool:
    """Bidding ends at the closing time, which has come."""
    return True


def close_entry(a: Auction) -> tuple[dict[str, Any], int, bytes | None]:
    """The close entry commits to the book: how many bids count and their Merkle root."""
    size, root = _book(a)
    return {"auction": a.pk, "bids": size, "book_root": root.hex()}, size, root


def _book(a: Auction) -> tuple[int, bytes]:
    commitments = Bid.objects.filter(auction=a, status=Bid.Status.SEALED).order_by("pk")
    return results.book_root(
        bytes.fromhex(c) for c in commitments.values_list("commitment", flat=True).iterator(5000)
    )


def reveal_data(a: Auction) -> dict[str, Any]:
    """No members of their own: every format's bids and deposits are revealed alike."""
    return {}


def clearing(a: Auction) -> tuple[dict[str, Any], dict[str, Any], bytes | None]:
    """How the bids were opened (the private key, or which trustees' keys), the result of the
    clearing over the opened book, and the private key to publish. ``NotReady`` while the
    trustees' keys or some bid's opening are missing."""
    released = trustees.opening_keys(a) if a.by_trustees else None
    if a.by_trustees and released is None:
        raise NotReady(f"auction {a.pk} waits for its trustees' keys")
    if Bid.objects.filter(auction=a, status=Bid.Status.SEALED, opened__isnull=True).exists():
        raise NotReady(f"auction {a.pk} has bids not opened yet")
    opening: dict[str, Any]
    if released is not None:
        # The keys are on the ledger already (auction.key_release); the entry names which the
        # opening used, so that anyone reopens the bids with the same ones.
        opening = {"sealing": Sealing.TRUSTEES, "opened_with": sorted(released)}
        private = None
    else:
        private = keys.open_private_key(a.pk, stored(a.private_key_sealed, "sealed key"))
        if sealing.public_key_of(private) != stored(a.public_key, "public key"):
            raise RuntimeError(
                f"auction {a.pk}: the stored private key does not match its public key"
            )
        opening = {"sealing": Sealing.OPERATOR_KEY, "private_key": records.b64(private)}
    deposits = dict(
        Deposit.objects.filter(auction=a, state=Deposit.State.HELD).values_list(
            "bidder_id", "amount"
        )
    )
    rows = (
        Bid.objects.filter(auction=a, status=Bid.Status.SEALED)
        .order_by("pk")
        .values_list("pk", "bidder_id", "account_id", "commitment", "opened")
    )
    # Each bid was opened as it was sealed or at the close (``Bid.opened``).
    opened: dict[int, dict[str, Any]] = {}
    counted = []
    for pk, bidder, account, commitment, was_opened in rows.iterator(chunk_size=5000):
        opened[pk] = was_opened or {}
        counted.append(results.Counted(pk, bidder, account, commitment))
    book = results.assemble_book(
        counted,
        deposits=deposits,
        opening=lambda c: (opened[c.bid].get("tiers"), opened[c.bid].get("error")),
    )
    result = results.build_result(
        record=records.auction_rules(a),
        book=book,
        seed=stored(a.seed, "seed"),
        root=stored(a.book_root, "book root"),
    )
    return opening, result, private


def bid_outcomes(a: Auction, result: dict[str, Any]) -> None:
    """Each bid's outcome, as the result gives it: valid or rejected (and why), lots awarded."""
    update_rows(
        "auctions_bid",
        [("status", "text"), ("reason", "text"), ("awarded_lots", "int")],
        [
            (
                row["bid"],
                Bid.Status.VALID if row["status"] == "valid" else Bid.Status.REJECTED,
                row["reason"] or "",
                row["awarded_lots"],
            )
            for row in result["bids"]
        ],
    )
