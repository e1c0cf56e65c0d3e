"""Each format's own part of the one pipeline (schedule, open, close, reveal, clear): the sealed
formats' in ``auctions/sealed.py``, the English auction's in ``auctions/english.py``, the clock
auction's in ``auctions/clock.py``. The services take the locks, open the transactions and
append the entries; a format says only what goes into them, so adding one is a module with
these steps and a line in ``STEPS``, not a branch in every service.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from .. import clock, english, sealed
from ..models import SEALED_FORMATS, Auction, Format


class FormatSteps(Protocol):
    """What a format module provides. Each step runs inside the service's transaction, under
    the auction's row lock, at one fixed point of it."""

    def scheduled(self, a: Auction) -> dict[str, Any]:
        """At ``auction.schedule``, before its append: set what the format sets on the row and
        return the entry's members of its own (the keys bids are sealed to)."""
        ...

    def opened(self, a: Auction, now: dt.datetime) -> None:
        """After ``auction.open``: what begins with the opening (a clock auction's first
        round)."""
        ...

    def bidding_over(self, a: Auction, now: dt.datetime) -> bool:
        """At the bidding's end, before ``auction.close``: False if bidding goes on (a clock
        auction's round closed and the next one opened) and the auction does not close."""
        ...

    def close_entry(self, a: Auction) -> tuple[dict[str, Any], int, bytes | None]:
        """The ``auction.close`` entry's data, the book's size and its Merkle root (sealed
        formats only)."""
        ...

    def reveal_data(self, a: Auction) -> dict[str, Any]:
        """The ``auction.reveal`` entry's members of the format's own."""
        ...

    def clearing(self, a: Auction) -> tuple[dict[str, Any], dict[str, Any], bytes | None]:
        """Before ``auction.clear``: how the bids were opened, the result, and the private key
        to publish (None where there is none). May raise ``sealed.NotReady``."""
        ...

    def bid_outcomes(self, a: Auction, result: dict[str, Any]) -> None:
        """After ``auction.clear``: each bid's outcome written from the result, where bids have
        one."""
        ...


STEPS: dict[str, FormatSteps] = {
    **dict.fromkeys(SEALED_FORMATS, sealed),
    Format.ENGLISH: english,
    Format.CLOCK: clock,
}


def steps_of(a: Auction) -> FormatSteps:
    return STEPS[a.format]
