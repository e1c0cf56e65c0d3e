"""Listing sales (挂牌): the rules and the replay of their entries (docs/listings.md).

A seller lists whole lots of one batch at a fixed price per tonne for a period; the lots go
into an escrow hold referenced ``listing:<id>`` at once. Buyers take whole lots, first come by
ledger order; a take is a pending purchase whose lots stay in the hold until the operator
confirms payment (the hold delivers them to the buyer: delivery versus payment) or declares a
default (they return to the listing while it is open, else to the seller). The seller may
withdraw the unsold remainder; at the closing time the remainder is released (expiry).

The rules (``check_terms``, ``take_fill``, ``amount_due``) are the ones the registry's services
apply; ``ListingState`` replays the entries beside the registry's replay, which applies their
escrow movements. Each movement of a listing's hold must be made by the listing itself: it is
the entry right before the listing entry that accounts for it (the services append both in one
transaction, under the ledger head), and any other movement is an error. No Django import.
"""

from __future__ import annotations

from typing import Any

from .entry import Entry
from .managed_escrow import ESCROW_ENTRY_TYPES, ManagedEscrow
from .quantity import CURRENCY_EXPONENTS, KG_PER_TONNE, MAX_KG, MAX_MINOR
from .replay import RegistryState, ReplayError

LISTING_ENTRY_TYPES = frozenset(
    {
        "listing.create",
        "listing.take",
        "listing.purchase_confirm",
        "listing.purchase_default",
        "listing.withdraw",
        "listing.expire",
    }
)
# An escrow hold whose reference starts with this is a listing's: only the listing moves it.
LISTING_PREFIX = "listing:"

# The listing's states: open (takes are accepted between its opening and closing times),
# withdrawn (the seller took back the unsold lots), closed (expired at its closing time).
OPEN, WITHDRAWN, CLOSED = "open", "withdrawn", "closed"
# A purchase's: pending (awaiting payment, its lots in the listing's escrow), delivered,
# defaulted.
PENDING, DELIVERED, DEFAULTED = "pending", "delivered", "defaulted"
TERMS = (
    "seller",
    "account",
    "batch",
    "lots",
    "lot_kg",
    "currency",
    "price",
    "opens_at",
    "closes_at",
    "max_lots_per_buyer",
    "min_lots",
)


class RuleError(ValueError):
    """A listing's terms or a take that the rules refuse; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def check_terms(
    *,
    lots: Any,
    lot_kg: Any,
    currency: Any,
    price: Any,
    min_lots: Any,
    max_lots_per_buyer: Any,
) -> None:
    """Raise ``RuleError`` unless the terms are a valid listing's."""
    if not _int(lot_kg, 1, MAX_KG):
        raise RuleError("lot_size", f"a lot is 1 to {MAX_KG} kg")
    if not _int(lots, 1, MAX_KG // lot_kg):
        raise RuleError("quantity", "a listing offers at least one whole lot")
    if currency not in CURRENCY_EXPONENTS:
        raise RuleError("currency", f"unsupported currency {currency!r}")
    if not _int(price, 1, MAX_MINOR):
        raise RuleError("price", "the price per tonne is more than zero")
    if price * lot_kg % KG_PER_TONNE:
        # Every amount due is exact: a lot costs a whole number of minor units.
        raise RuleError(
            "inexact_price", "the price of a lot (price per tonne x lot size) is not exact"
        )
    if lots * lot_kg * price // KG_PER_TONNE > MAX_MINOR:
        raise RuleError("price", "the listing's value is too large")
    if not _int(min_lots, 1, lots):
        raise RuleError("min_lots", "the minimum take is 1 lot to all the listed lots")
    if max_lots_per_buyer is not None and not _int(max_lots_per_buyer, min_lots, MAX_KG):
        raise RuleError("max_lots_per_buyer", "the per-buyer limit is at least the minimum take")


def amount_due(lots: int, lot_kg: int, price: int) -> int:
    """Minor units for ``lots`` lots at ``price`` per tonne: exact (``check_terms``)."""
    return lots * lot_kg * price // KG_PER_TONNE


def take_fill(
    *, requested: int, up_to: bool, remaining: int, bought: int, listing: dict[str, Any]
) -> int:
    """How many lots a take of ``requested`` gets, given the ``remaining`` lots and the lots
    the buyer ``bought`` (pending or delivered) in this listing; or ``RuleError``.

    Without ``up_to`` the take is all or nothing. With it, the most it can get up to
    ``requested``. Either way at least the listing's minimum take, unless it takes the whole
    remainder (the last lots of a listing can always be sold)."""
    cap = listing["max_lots_per_buyer"]
    room = remaining if cap is None else min(remaining, cap - bought)
    if remaining == 0:
        raise RuleError("sold_out", "no lots remain")
    if cap is not None and room <= 0:
        raise RuleError("buyer_cap", f"the buyer has bought the {cap} lots one buyer may")
    lots = min(requested, room) if up_to else requested
    if lots > remaining:
        raise RuleError("insufficient_lots", f"{remaining} lots remain, {requested} asked")
    if cap is not None and lots > room:
        raise RuleError(
            "buyer_cap", f"one buyer may buy {cap} lots; this buyer may take {room} more"
        )
    if lots < listing["min_lots"] and lots != remaining:
        raise RuleError(
            "below_minimum", f"the minimum take is {listing['min_lots']} lots (or all that remain)"
        )
    return lots


class ListingState:
    """The replayed listings and purchases (their tables' records, ``listings/records.py``),
    each listing's escrow hold, and the escrow movement waiting for its listing entry."""

    def __init__(self, origin: str = "") -> None:
        # origin: the ledger's, as every app's replay state is made (unused: nothing here is
        # bound to it).
        self.listings: dict[int, dict[str, Any]] = {}
        self.purchases: dict[int, dict[str, Any]] = {}
        self.escrow = ManagedEscrow(LISTING_PREFIX, "listing")  # its holds: hold -> listing

    # ---- applying entries -----------------------------------------------------------------

    def apply(self, entry: Entry, registry: RegistryState, entry_hash: bytes = b"") -> None:
        """Apply a listing entry, or note a movement of a listing's escrow, after the
        registry's replay applied the credit effects."""
        try:
            if entry.type in ESCROW_ENTRY_TYPES:
                self.escrow.note(entry)
                return
            handler = _HANDLERS.get(entry.type)
            if handler is not None:
                handler(self, entry.data, entry, registry)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ReplayError(f"malformed {entry.type} data: {exc!r}") from None
        self.escrow.check_after(entry.seq)

    def finish(self) -> None:
        self.escrow.finish()

    def _listing(self, listing_id: Any, *states: str) -> dict[str, Any]:
        a = self.listings.get(listing_id) if type(listing_id) is int else None
        if a is None:
            raise ReplayError(f"unknown listing {listing_id!r}")
        if states and a["state"] not in states:
            raise ReplayError(
                f"listing {listing_id} is {a['state']}; the entry needs it {' or '.join(states)}"
            )
        return a

    def _purchase(self, d: dict[str, Any], listing: dict[str, Any]) -> dict[str, Any]:
        p = self.purchases.get(d["purchase"]) if type(d["purchase"]) is int else None
        if p is None or p["listing"] != listing["id"]:
            raise ReplayError(f"unknown purchase {d['purchase']!r} of listing {listing['id']}")
        if p["state"] != PENDING:
            raise ReplayError(f"purchase {d['purchase']} is already {p['state']}")
        return p

    def _escrow_balances(self, listing: dict[str, Any], registry: RegistryState) -> None:
        """The hold keeps the unsold lots (while open) and every pending purchase's."""
        pending = sum(
            p["lots"]
            for p in self.purchases.values()
            if p["listing"] == listing["id"] and p["state"] == PENDING
        )
        unsold = listing["remaining_lots"] if listing["state"] == OPEN else 0
        held = registry.holds[listing["hold"]]["remaining"]
        if held != (unsold + pending) * listing["lot_kg"]:
            raise ReplayError(
                f"listing {listing['id']}: its escrow holds {held} kg; unsold and pending lots "
                f"are {(unsold + pending) * listing['lot_kg']} kg"
            )

    def bought(self, listing_id: int, buyer: int) -> int:
        return sum(
            p["lots"]
            for p in self.purchases.values()
            if p["listing"] == listing_id
            and p["buyer"] == buyer
            and p["state"] in (PENDING, DELIVERED)
        )

    # ---- snapshot (for incremental verification) ------------------------------------------

    def to_json(self) -> dict[str, Any]:
        self.escrow.check_saveable()
        return {
            "listings": sorted(self.listings.items()),
            "purchases": sorted(self.purchases.items()),
            "holds": sorted(self.escrow.holds.items()),
        }

    @classmethod
    def from_json(cls, obj: Any, origin: str = "") -> ListingState:
        s = cls(origin)
        if obj is None:  # a state saved before listings existed: none were replayed
            return s
        s.listings = {k: v for k, v in obj["listings"]}
        s.purchases = {k: v for k, v in obj["purchases"]}
        s.escrow.holds = {k: v for k, v in obj["holds"]}
        return s


# ---- handlers --------------------------------------------------------------------------------


def _time(value: Any, what: str) -> str:
    # Entry times are RFC 3339 UTC with microseconds (entry.format_time): they sort as strings.
    if type(value) is not str or len(value) != 27 or not value.endswith("Z"):
        raise ReplayError(f"{what} is not an entry time")
    return value


def _create(s: ListingState, d: dict[str, Any], e: Entry, r: RegistryState) -> None:
    rec = d["listing"]
    key = rec["id"]
    if type(key) is not int or key in s.listings:
        raise ReplayError(f"listing id {key!r} is not new")
    if set(rec) != {"id", "hold", *TERMS}:
        raise ReplayError(f"listing {key}: its record has members {sorted(rec)}")
    account = r._need(r.accounts, rec["account"], "account")
    r._need(r.batches, rec["batch"], "batch")
    if account["organization"] != rec["seller"] or account["kind"] != "holding":
        raise ReplayError("a listing sells from a holding account of the seller")
    try:
        check_terms(**{k: rec[k] for k in TERMS if k not in _NOT_RULES})
    except RuleError as exc:
        raise ReplayError(f"listing {key}: {exc.message}") from None
    opens, closes = _time(rec["opens_at"], "opens_at"), _time(rec["closes_at"], "closes_at")
    if closes <= opens or closes <= e.time:
        raise ReplayError(f"listing {key} closes before it opens or before it was listed")
    hold_id = rec["hold"]
    hold = r._need(r.holds, hold_id, "escrow hold")
    quantity = rec["lots"] * rec["lot_kg"]
    if (hold["account"], hold["batch"], hold["quantity"], hold["reference"]) != (
        rec["account"],
        rec["batch"],
        quantity,
        f"{LISTING_PREFIX}{key}",
    ):
        raise ReplayError(f"escrow hold {hold_id} is not listing {key}'s lots")
    if hold_id in s.escrow.holds:
        raise ReplayError(f"escrow hold {hold_id} is already listing {s.escrow.holds[hold_id]}'s")
    s.escrow.take(e.seq, "escrow.hold", hold_id, quantity)
    s.escrow.holds[hold_id] = key
    s.listings[key] = {
        **rec,
        "state": OPEN,
        "remaining_lots": rec["lots"],
        "created_seq": e.seq,
        "state_seq": e.seq,
    }


_NOT_RULES = ("seller", "account", "batch", "opens_at", "closes_at")


def _take_lots(s: ListingState, d: dict[str, Any], e: Entry, r: RegistryState) -> None:
    a = s._listing(d["listing"], OPEN)
    if not a["opens_at"] <= e.time < a["closes_at"]:
        raise ReplayError(
            f"listing {a['id']} was taken at {e.time}, outside {a['opens_at']} to {a['closes_at']}"
        )
    buyer, account = d["buyer"], r._need(r.accounts, d["account"], "account")
    if buyer == a["seller"]:
        raise ReplayError(f"listing {a['id']}: the seller took its own lots")
    if account["organization"] != buyer or account["kind"] != "holding":
        raise ReplayError("lots are delivered to a holding account of the buyer")
    if "bidder" not in r._need(r.organizations, buyer, "organization")["roles"]:
        raise ReplayError(f"organization {buyer} took lots without the buyer role")
    key = d["purchase"]
    if type(key) is not int or key in s.purchases:
        raise ReplayError(f"purchase id {key!r} is not new")
    lots = d["lots"]
    up_to = "up_to" in d
    requested = d["up_to"] if up_to else lots
    if not _int(lots, 1, MAX_KG) or not _int(requested, lots, MAX_KG):
        raise ReplayError(f"purchase {key}: lots must be a positive integer")
    try:
        fill = take_fill(
            requested=requested,
            up_to=up_to,
            remaining=a["remaining_lots"],
            bought=s.bought(a["id"], buyer),
            listing=a,
        )
    except RuleError as exc:
        raise ReplayError(f"purchase {key} of listing {a['id']}: {exc.message}") from None
    if fill != lots:
        raise ReplayError(f"purchase {key}: the rules give {fill} lots, the entry {lots}")
    due = amount_due(lots, a["lot_kg"], a["price"])
    if d["amount_due"] != due:
        raise ReplayError(f"purchase {key}: the amount due is {due}, not {d['amount_due']!r}")
    a["remaining_lots"] -= lots
    s.purchases[key] = {
        "listing": a["id"],
        "buyer": buyer,
        "account": d["account"],
        "lots": lots,
        "quantity": lots * a["lot_kg"],
        "amount_due": due,
        "state": PENDING,
        "entry_seq": e.seq,
        "resolved_seq": None,
    }
    s._escrow_balances(a, r)


def _confirm(s: ListingState, d: dict[str, Any], e: Entry, r: RegistryState) -> None:
    a = s._listing(d["listing"])
    p = s._purchase(d, a)
    s.escrow.take(e.seq, "escrow.deliver", a["hold"], p["quantity"], to=p["account"])
    p.update(state=DELIVERED, resolved_seq=e.seq)
    s._escrow_balances(a, r)


def _default(s: ListingState, d: dict[str, Any], e: Entry, r: RegistryState) -> None:
    a = s._listing(d["listing"])
    p = s._purchase(d, a)
    back = "listing" if a["state"] == OPEN else "seller"
    if d["to"] != back:
        raise ReplayError(f"purchase {d['purchase']}: its lots go back to the {back}")
    if type(d["reason"]) is not str or not d["reason"]:
        raise ReplayError(f"purchase {d['purchase']}: a default states its reason")
    if back == "listing":
        a["remaining_lots"] += p["lots"]
    else:
        s.escrow.take(e.seq, "escrow.release", a["hold"], p["quantity"])
    p.update(state=DEFAULTED, resolved_seq=e.seq)
    s._escrow_balances(a, r)


def _end(s: ListingState, d: dict[str, Any], e: Entry, r: RegistryState) -> None:
    a = s._listing(d["listing"], OPEN)
    if e.type == "listing.expire" and e.time < a["closes_at"]:
        raise ReplayError(f"listing {a['id']} expired at {e.time}, before {a['closes_at']}")
    if d["lots"] != a["remaining_lots"]:
        raise ReplayError(
            f"listing {a['id']}: {a['remaining_lots']} lots were unsold, the entry releases "
            f"{d['lots']!r}"
        )
    if d["lots"]:
        s.escrow.take(e.seq, "escrow.release", a["hold"], d["lots"] * a["lot_kg"])
    a.update(
        state=WITHDRAWN if e.type == "listing.withdraw" else CLOSED,
        remaining_lots=0,
        state_seq=e.seq,
    )
    s._escrow_balances(a, r)


_HANDLERS: dict[str, Any] = {
    "listing.create": _create,
    "listing.take": _take_lots,
    "listing.purchase_confirm": _confirm,
    "listing.purchase_default": _default,
    "listing.withdraw": _end,
    "listing.expire": _end,
}
assert set(_HANDLERS) == LISTING_ENTRY_TYPES
