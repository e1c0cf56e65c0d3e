"""The worker's steps from open to cleared: the close (the book committed to), the reveal of who
is behind the pseudonyms, the opening of sealed bids, the clearing and its published result; or
the failure of an auction that cannot be cleared. One pipeline for every format: each step asks
the format (``formats.py``) for its own part and keeps the locks, the transaction and the
entries.

Each transition is a compare-and-set under the auction's row lock: a step run twice does its
work once and then returns False.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ledger.core.entry import entry_hash

from .. import keys, trustees
from ..core import result as results
from ..core import sealing
from ..models import Application, Auction, Bid, Deposit, stored
from ..rows import update_rows
from .common import SYSTEM, State, _append, _auction, _end
from .formats import steps_of


@transaction.atomic
def auction_close(*, auction: int) -> bool:
    """open -> closing, once the closing time has passed: commit to the book of counted bids
    (the Merkle root of their commitments). Its entry's hash seeds every draw."""
    # The gate: waits for every bid transaction in flight to commit, and keeps new ones out.
    a = _auction(auction, close_gate=True)
    now = timezone.now()
    if a.state != State.OPEN or now < a.bidding_ends_at:
        return False
    steps = steps_of(a)
    if not steps.bidding_over(a, now):
        return False  # not a clock auction's final round: the next one opened
    data, size, root = steps.close_entry(a)
    entry = _append("auction.close", SYSTEM, data, at=now)
    a.state, a.state_seq = State.CLOSING, entry.seq
    a.book_size, a.book_root, a.seed = size, root, entry_hash(entry.body)
    reveal = _reveal(a, now)
    a.revealed_seq = reveal.seq if reveal is not None else None
    a.save(update_fields=["state", "state_seq", "book_size", "book_root", "seed", "revealed_seq"])
    return True


def _reveal(a: Auction, now: dt.datetime) -> Any:
    """Bidding is over: name the bidder, account and salt behind every bid's pseudonym, and
    the bidder and salt behind every deposit's (``auction.reveal``, parties.py). None if the
    auction has none (only bids and deposits from before pseudonyms)."""
    bids = [
        {"bid": pk, "bidder": bidder, "account": account, "salt": stored(salt, "salt").hex()}
        for pk, bidder, account, salt in Bid.objects.filter(auction=a, salt__isnull=False)
        .order_by("pk")
        .values_list("pk", "bidder_id", "account_id", "salt")
        .iterator(chunk_size=5000)
    ]
    deposits = [
        {"bidder": bidder, "salt": stored(salt, "salt").hex()}
        for bidder, salt in Deposit.objects.filter(auction=a, salt__isnull=False)
        .order_by("bidder_id")
        .values_list("bidder_id", "salt")
    ]
    # The applicants too (onboarding.py), a member only auctions with applications have.
    applications = [
        {"bidder": bidder, "salt": bytes(salt).hex()}
        for bidder, salt in Application.objects.filter(auction=a)
        .order_by("bidder_id")
        .values_list("bidder_id", "salt")
    ]
    # The format's own members: an ascending auction's bidders are its paddles (english.py),
    # and a clock auction's round bids are opened (clock.py).
    own = steps_of(a).reveal_data(a)
    if not bids and not deposits and not applications and not any(own.values()):
        return None
    data: dict[str, Any] = {"auction": a.pk, "bids": bids, "deposits": deposits}
    if applications:
        data["applications"] = applications
    data |= own
    return _append("auction.reveal", SYSTEM, data, at=now)


def unopened_bid_ids(auction_id: int) -> list[int]:
    return list(
        Bid.objects.filter(auction_id=auction_id, status=Bid.Status.SEALED, opened__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def auction_bids_open(*, auction: int, first: int, last: int) -> int:
    """Decrypt the counted bids with ids in [first, last] that are not opened yet and keep
    what they say (or why they do not open) for clearing. Not ledger state: the result entry
    is the record, and the verifier reopens every bid itself. Safe to run twice or in
    parallel: both write the same thing."""
    a = Auction.objects.filter(pk=auction).first()
    if a is None or a.state != State.CLOSING:
        return 0
    released = trustees.opening_keys(a) if a.by_trustees else None
    if a.by_trustees and released is None:
        return 0  # waiting for the trustees
    private = (
        None
        if a.by_trustees
        else sealing.load_private_key(
            keys.open_private_key(a.pk, stored(a.private_key_sealed, "sealed key"))
        )
    )
    rows = list(
        Bid.objects.filter(
            auction=a,
            status=Bid.Status.SEALED,
            opened__isnull=True,
            pk__gte=first,
            pk__lte=last,
        ).only("pk", "bidder_id", "ciphertext")
    )
    opened_rows = []
    opener = sealing.Opener(private_key=private, released=released, trustees=len(a.trustees))
    for bid in rows:
        tiers, error = opener.for_book(
            bytes(bid.ciphertext), origin=settings.LEDGER_ORIGIN, auction=a.pk, bidder=bid.bidder_id
        )
        opened_rows.append((bid.pk, {"error": error} if error else {"tiers": tiers}))
    with transaction.atomic():
        update_rows("auctions_bid", [("opened", "json")], opened_rows)
    return len(rows)


@transaction.atomic
def auction_clear(*, auction: int) -> bool:
    """closing -> cleared: publish the private key and the result of the clearing (or, if the
    rules say an undersubscribed auction is cancelled, publish it and cancel). Raises
    ``NotReady`` while a sealed auction's bids cannot all be opened yet."""
    a = _auction(auction)
    if a.state != State.CLOSING:
        return False
    opening, result, private = steps_of(a).clearing(a)
    _publish_result(a, opening, result, private=private)
    return True


def _publish_result(
    a: Auction, opening: dict[str, Any], result: dict[str, Any], private: bytes | None
) -> None:
    """The auction.clear entry and what it changes: the bids' outcomes, the auction's result;
    an undersubscribed auction its rules cancel is cancelled."""
    digest = results.result_sha256(result)
    entry = _append(
        "auction.clear",
        SYSTEM,
        {"auction": a.pk, **opening, "result": result, "result_sha256": digest},
    )
    outcome = result["outcome"]
    steps_of(a).bid_outcomes(a, result)
    a.private_key, a.result_sha256, a.result_seq = private, digest, entry.seq
    a.result = {"outcome": outcome, "bidders": result["bidders"]}
    a.clearing_price = outcome["clearing_price"]
    a.state, a.state_seq = State.CLEARED, entry.seq
    a.save(
        update_fields=[
            "private_key",
            "result",
            "result_seq",
            "result_sha256",
            "clearing_price",
            "state",
            "state_seq",
        ]
    )
    if outcome["status"] == "cancelled":
        _end(a, SYSTEM, State.CANCELLED, "auction.cancel", "undersubscribed")


# ---- an auction that cannot be cleared -----------------------------------------------------


def keys_ready(auction: int) -> bool:
    """Whether the auction's bids can be opened: an operator-held key always can; trustee
    sealing once the threshold of trustees released their keys."""
    a = Auction.objects.filter(pk=auction).first()
    return a is not None and (not a.by_trustees or trustees.opening_keys(a) is not None)


@transaction.atomic
def auction_release_overdue(*, auction: int) -> bool:
    """closing -> failed, when the trustees' deadline passed with fewer keys released than the
    threshold: the bids are never opened, the lot returns to the seller, deposits are
    released."""
    a = _auction(auction)
    if not trustees.release_overdue(a):
        return False
    _end(a, SYSTEM, State.FAILED, "auction.fail", trustees.overdue_reason(a))
    return True


@transaction.atomic
def auction_fail(*, auction: int, reason: str) -> bool:
    """closing -> failed, when the auction cannot be cleared (its key does not open): the lot
    returns to the seller and deposits are released; the key is not published."""
    a = _auction(auction)
    if a.state != State.CLOSING:
        return False
    _end(a, SYSTEM, State.FAILED, "auction.fail", reason[:200])
    return True
