"""The auction calendar and each auction's result report, read from what the auctions publish.

* The calendar: the auction list grouped into open now (by closing time), upcoming (by opening
  time) and past (by the end of bidding, newest first), each group by month; and the upcoming
  and open auctions as an iCalendar feed (RFC 5545).
* The result report: an auction's rules, lot and result (clearing price, lots and tonnes
  awarded, bidders, bids, the allocation per winner, the result's hash and the ledger entry
  that published it), for a printable page and a CSV with the same figures.

Nothing here is more than the public auction page and the public API's result show (docs/
auctions.md §3.7, §5): a winner's name only once the reveal named the bidders behind the
paddles (the sealed formats' result names its bidders anyway), no receiving account, no bid
of a loser. Amounts are integers inside and decimal strings in the CSV.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from django.conf import settings
from icalendar import Calendar, Event

from auctions import selectors as auction_selectors
from auctions.models import SEALED_FORMATS, Auction, ClockBid
from ledger.core.entry import decode_entry
from ledger.core.quantity import format_money, format_tonnes
from ledger.models import LedgerEntry, Organization

from . import selectors

# ---- the calendar --------------------------------------------------------------------------


@dataclass(frozen=True)
class Month:
    """The auctions of one calendar month (UTC), ``first`` its first day."""

    first: dt.date
    auctions: list[Auction]


def _months(auctions: Iterable[Auction], when: Any) -> list[Month]:
    return [
        Month(dt.date(year, month, 1), list(rows))
        for (year, month), rows in groupby(auctions, key=lambda a: (when(a).year, when(a).month))
    ]


def calendar(*, ecosystem: str = "", vintage: int | None = None, format: str = "") -> dict:
    """``open`` by closing time, ``upcoming`` by opening time, ``past`` by the end of bidding
    (newest first, the ``selectors.PAGE`` most recent), each a list of months."""
    groups = selectors.auctions(ecosystem=ecosystem, vintage=vintage, format=format)
    opened = sorted(groups["open"], key=lambda a: (a.bidding_ends_at, a.pk))
    upcoming = sorted(groups["upcoming"], key=lambda a: (a.opens_at, a.pk))
    past = sorted(groups["closed"], key=lambda a: (a.bidding_ends_at, a.pk), reverse=True)
    for kind, rows, when in (
        ("open", opened, "bidding_ends_at"),
        ("upcoming", upcoming, "opens_at"),
        ("past", past, "bidding_ends_at"),
    ):
        for a in rows:  # the date its card leads with (templates/portal/_calendar_when.html)
            a.calendar_kind = kind  # type: ignore[attr-defined]
            a.calendar_at = getattr(a, when)  # type: ignore[attr-defined]
    return {
        "open": _months(opened, lambda a: a.bidding_ends_at),
        "upcoming": _months(upcoming, lambda a: a.opens_at),
        "past": _months(past, lambda a: a.bidding_ends_at),
    }


def _uid_domain() -> str:
    """The host part of the ledger's origin: a UID stays the same whatever host served it."""
    return settings.LEDGER_ORIGIN.split("/", 1)[0]


def ics(
    auctions: Iterable[Auction], *, url_of: Any, describe: Any, name: str, now: dt.datetime
) -> bytes:
    """An iCalendar object (RFC 5545) with one VEVENT per auction: bidding from its opening
    to its (current) end. ``url_of(a)`` is the auction page's absolute URL, ``describe(a)`` its
    description; ``now`` the DTSTAMP."""
    cal = Calendar()
    cal.add("prodid", "-//Blue carbon registry//Auction calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    for a in auctions:
        event = Event()
        event.add("uid", f"auction-{a.pk}@{_uid_domain()}")  # §3.8.4.7: stable per auction
        event.add("dtstamp", now)
        event.add("dtstart", a.opens_at)
        # An English auction's end moves with its countdown: the end known now.
        event.add("dtend", a.bidding_ends_at)
        event.add("summary", a.title)
        event.add("description", describe(a))
        event.add("url", url_of(a))
        event.add("status", "CONFIRMED")
        event.add("transp", "TRANSPARENT")  # an auction does not make anyone busy
        cal.add_component(event)
    return cal.to_ical()


# ---- the result report ---------------------------------------------------------------------


@dataclass(frozen=True)
class Winner:
    bidder: int | None  # the organization's id, once public (with its name)
    name: str | None  # None until the reveal names the bidders behind the paddles
    paddle: str  # an English or clock auction's paddle label; "" for the sealed formats
    lots: int
    kg: int
    amount: int  # minor units: what the winner owes
    name_zh: str = ""  # the registrar's Chinese name, shown on Chinese pages (``|local``)


@dataclass(frozen=True)
class ResultReport:
    auction: Auction
    status: str  # the outcome's status: "cleared", or how it ended otherwise
    clearing_price: int | None  # minor units per tonne (the hammer price of an English lot)
    offered_lots: int
    awarded_lots: int
    bidders: int | None
    bids: int | None
    rounds: int | None  # a clock auction's
    winners: list[Winner]
    result_sha256: str
    result_seq: int
    published_at: str  # the publishing entry's time, RFC 3339 UTC

    @property
    def published(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.published_at)

    @property
    def unsold_lots(self) -> int:
        return self.offered_lots - self.awarded_lots

    @property
    def awarded_kg(self) -> int:
        return self.awarded_lots * self.auction.lot_kg

    @property
    def unsold_kg(self) -> int:
        return self.unsold_lots * self.auction.lot_kg

    @property
    def total_amount(self) -> int:
        return sum(w.amount for w in self.winners)

    @property
    def names_public(self) -> bool:
        return all(w.name is not None for w in self.winners)


def _names(ids: list[int]) -> dict[int, tuple[str, str]]:
    rows = Organization.objects.filter(pk__in=ids).values_list("pk", "name", "name_zh")
    return {pk: (name, name_zh) for pk, name, name_zh in rows}


def result_report(a: Auction) -> ResultReport | None:
    """The report of an auction whose result is published; None before (or without) one."""
    if a.result_seq is None or not a.result:
        return None
    summary: dict[str, Any] = a.result
    outcome = summary["outcome"]
    rows = [r for r in summary.get("bidders", []) if r.get("awarded_lots")]
    revealed = a.revealed_seq is not None
    rounds = None
    if a.format in SEALED_FORMATS:
        # The sealed result names its bidders (docs/auctions.md §5), published after the reveal.
        winners = [Winner(r["bidder"], "", "", r["awarded_lots"], 0, r["amount"]) for r in rows]
        stats = outcome.get("stats", {})
        bidders, bids = stats.get("bidders"), a.book_size
    elif a.is_english:
        top = selectors.room_winner(a)
        winners = [
            Winner(
                r["bidder"],
                top[1] if top else None,
                top[0] if top else "",
                r["awarded_lots"],
                0,
                r["amount"],
            )
            for r in rows
        ]
        bidders, bids = outcome.get("bidders"), outcome.get("bids")
    else:  # clock
        clock = selectors.clock_result(a) or {"winners": []}
        winners = [
            Winner(w.organization, w.name, w.paddle, w.lots, 0, w.amount)
            for w in clock["winners"]
            if w.lots
        ]
        bidders = len(summary.get("bidders", []))
        # Round bids are public once the reveal opened them (GET …/rounds).
        bids = ClockBid.objects.filter(auction=a).count() if revealed else None
        rounds = outcome.get("rounds")
    if not revealed and a.format not in SEALED_FORMATS:
        winners = [Winner(None, None, w.paddle, w.lots, 0, w.amount) for w in winners]
    # Names, in both scripts, of the winners whose names are public (one query).
    names = _names([w.bidder for w in winners if w.bidder is not None and w.name is not None])
    winners = [
        Winner(
            w.bidder,
            names[w.bidder][0] if w.bidder in names else None,
            w.paddle,
            w.lots,
            w.lots * a.lot_kg,
            w.amount,
            names[w.bidder][1] if w.bidder in names else "",
        )
        for w in winners
    ]
    awarded = outcome.get("awarded_lots")
    if awarded is None:  # an English result counts its one lot in its bidders
        awarded = sum(w.lots for w in winners)
    body = LedgerEntry.objects.values_list("body", flat=True).get(seq=a.result_seq)
    return ResultReport(
        auction=a,
        status=outcome.get("status", ""),
        clearing_price=outcome.get("clearing_price"),
        offered_lots=a.offered_lots,
        awarded_lots=awarded,
        bidders=bidders,
        bids=bids,
        rounds=rounds,
        winners=winners,
        result_sha256=a.result_sha256,
        result_seq=a.result_seq,
        published_at=decode_entry(bytes(body)).time,
    )


def auction_for_report(pk: int) -> Auction | None:
    """The auction with its lot's batch and project (one query); None if not public."""
    a = auction_selectors.auction_get(pk)
    if a is None or a.state == Auction.State.DRAFT:
        return None
    return a


# ---- the CSV -------------------------------------------------------------------------------


def csv_header(currency: str) -> list[str]:
    """The columns, in this order (docs/portal.md, "Result report as CSV"); a unit in brackets:
    ``t`` is tonnes of CO2e, the currency is the auction's (ISO 4217)."""
    return [
        "auction",
        "title",
        "format",
        "state",
        "status",
        "project",
        "batch",
        "vintage",
        "currency",
        "lot_size [t]",
        "offered [t]",
        f"clearing_price [{currency}/t]",
        "awarded [t]",
        "unsold [t]",
        "bidders",
        "bids",
        "rounds",
        "result_sha256",
        "result_entry",
        "published_at",
        "winner_bidder",
        "winner_name",
        "winner_name_zh",
        "winner_paddle",
        "winner_lots",
        "winner_quantity [t]",
        f"winner_amount [{currency}]",
    ]


def _blank(value: int | None) -> str:
    return "" if value is None else str(value)


def csv_rows(r: ResultReport) -> Iterator[list[str]]:
    """The header, then one row per winner (one row with the winner's columns empty when
    nobody won): every row carries the auction's figures, so any row stands alone."""
    a = r.auction
    cur = a.currency
    yield csv_header(cur)
    head = [
        str(a.pk),
        a.title,
        a.format,
        a.state,
        r.status,
        a.batch.project.code,
        a.batch.serial,
        str(a.batch.vintage),
        cur,
        format_tonnes(a.lot_kg),
        format_tonnes(a.quantity),
        "" if r.clearing_price is None else format_money(r.clearing_price, cur),
        format_tonnes(r.awarded_kg),
        format_tonnes(r.unsold_kg),
        _blank(r.bidders),
        _blank(r.bids),
        _blank(r.rounds),
        r.result_sha256,
        str(r.result_seq),
        r.published_at,
    ]
    if not r.winners:
        yield [*head, "", "", "", "", "", "", ""]
    for w in r.winners:
        yield [
            *head,
            _blank(w.bidder),
            w.name or "",
            w.name_zh if w.name is not None else "",
            w.paddle,
            str(w.lots),
            format_tonnes(w.kg),
            format_money(w.amount, cur),
        ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_stream(r: ResultReport) -> Iterator[str]:
    """RFC 4180 lines (CRLF), UTF-8 with a byte order mark so spreadsheets read Chinese names."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield "\ufeff"
    for row in csv_rows(r):
        yield writer.writerow(row)
