"""Bidder onboarding on the ledger: applications to bid in an auction and the operator's
decision on each, and deposits the operator releases or forfeits before the auction's pipeline
settles them (docs/auctions.md §2.1). The replay of these entries, run by
``bluecarbon_audit.auctions.replay`` beside the other auction entries.

Before an auction's reveal the ledger names an applicant by a pseudonym, as it names bidders
and depositors (``parties.py``): the lowercase hex SHA-256 of the UTF-8 text

    "bluecarbon/applicant/v1" LF origin LF auction LF bidder LF salt-hex

with a fresh 32-byte salt per application. ``auction.reveal`` opens it (``applications``:
each bidder and salt); only then can the replay check what depends on who applied: the
applicant had the bidder role if it was approved, each bid was made while its bidder was
admitted, and no bid of an applicant who withdrew, or of a depositor whose deposit was released
or forfeited, stood at that moment. No Django import.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..entry import Entry
from ..replay import RegistryState, ReplayError
from .parties import depositor

if TYPE_CHECKING:
    from .replay import AuctionState

APPLICATION_ENTRY_TYPES = frozenset(
    {"application.submit", "application.approve", "application.refuse", "application.withdraw"}
)
DEPOSIT_ENTRY_TYPES = frozenset({"deposit.release", "deposit.forfeit"})
ENTRY_TYPES = APPLICATION_ENTRY_TYPES | DEPOSIT_ENTRY_TYPES
MAX_REASON = 200
# The auction states a deposit may be released or forfeited in: before the pipeline releases,
# applies or forfeits every deposit itself (settle, cancel, fail).
DEPOSIT_OUT_STATES = ("draft", "scheduled", "open", "closing", "cleared")


def applicant(origin: str, auction: int, bidder: int, salt: bytes) -> str:
    text = "\n".join(["bluecarbon/applicant/v1", origin, str(auction), str(bidder), salt.hex()])
    return hashlib.sha256(text.encode()).hexdigest()


def admitted(application: str | None, status: str | None) -> bool:
    """Whether an organization may bid in an auction, given the state of its application to
    that auction (None: it made none) and its status as a bidder (``bidder.status``; None:
    never set). An application, once made, decides: only an approved one admits, and not while
    the organization is suspended. Without one, the standing approval does."""
    if application is not None:
        return application == "approved" and status != "suspended"
    return status == "approved"


Key = tuple[int, int | str]  # (auction, bidder id, or a pseudonym before the reveal)


@dataclass
class Onboarding:
    """The replay's state of applications, and the checks that wait for an auction's reveal."""

    applications: dict[Key, dict[str, Any]] = field(default_factory=dict)  # state, reason
    history: dict[Key, list[list[Any]]] = field(default_factory=dict)  # [entry seq, state]
    # (auction, pseudonym) -> [[entry seq, entry type]]: at each, the organization behind the
    # pseudonym had no bid standing in the auction (checked at the reveal).
    unbid: dict[tuple[int, str], list[list[Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "applications": [[a, b, v] for (a, b), v in self.applications.items()],
            "history": [[a, b, v] for (a, b), v in self.history.items()],
            "unbid": [[a, b, v] for (a, b), v in self.unbid.items()],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any] | None) -> Onboarding:
        o = cls()
        if obj:
            o.applications = {(a, b): v for a, b, v in obj["applications"]}
            o.history = {(a, b): v for a, b, v in obj["history"]}
            o.unbid = {(a, b): v for a, b, v in obj["unbid"]}
        return o

    def state_of(self, auction: int, bidder: int) -> str | None:
        app = self.applications.get((auction, bidder))
        return None if app is None else str(app["state"])

    def state_at(self, auction: int, bidder: int, seq: int) -> str | None:
        """The state of the bidder's application to the auction just before entry ``seq``."""
        state = None
        for at, value in self.history.get((auction, bidder), []):
            if at >= seq:
                break
            state = value
        return state


def _hex64(value: Any, what: str) -> str:
    if type(value) is not str or len(value) != 64 or value.strip("0123456789abcdef"):
        raise ReplayError(f"{what} must be 64 lowercase hex digits")
    return value


def _reason(value: Any) -> str:
    if type(value) is not str or not value.strip() or len(value) > MAX_REASON:
        raise ReplayError(f"a reason is 1 to {MAX_REASON} characters of text")
    return value


# ---- handlers --------------------------------------------------------------------------------

# What each application entry needs the application to be, and makes it.
_APPLICATION_MOVES = {
    "application.submit": ((None, "refused", "withdrawn"), "pending"),
    "application.approve": (("pending",), "approved"),
    "application.refuse": (("pending",), "refused"),
    "application.withdraw": (("pending", "approved"), "withdrawn"),
}


def application_entry(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    a = s._auction(d["auction"], "draft", "scheduled", "open")
    if e.type == "application.submit" and e.time >= a["closes_at"]:
        raise ReplayError(f"an application to auction {a['id']} after its closing time")
    who = _hex64(d["applicant"], "applicant")
    key: Key = (a["id"], who)
    app = s.onboarding.applications.get(key)
    before, after = _APPLICATION_MOVES[e.type]
    if (app["state"] if app else None) not in before:
        raise ReplayError(
            f"{e.type}: the application is {app['state'] if app else 'not made'}; "
            f"this needs it {' or '.join(str(b or 'not made') for b in before)}"
        )
    reason = _reason(d["reason"]) if e.type == "application.refuse" else ""
    s.onboarding.applications[key] = {"state": after, "reason": reason}
    s.onboarding.history.setdefault(key, []).append([e.seq, after])
    if e.type == "application.withdraw":
        s.onboarding.unbid.setdefault((a["id"], who), []).append([e.seq, e.type])


def deposit_out(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    """``deposit.release`` or ``deposit.forfeit`` by the operator: a held deposit of a bidder
    with no bid standing, before the pipeline settles the auction's deposits."""
    a = s._auction(d["auction"], *DEPOSIT_OUT_STATES)
    who: int | str = _hex64(d["depositor"], "depositor") if "depositor" in d else d["bidder"]
    deposit = s.deposits.get((a["id"], who))
    if deposit is None or deposit["state"] != "held":
        raise ReplayError(f"{e.type}: no deposit held by {who!r} in auction {a['id']}")
    if d["amount"] != deposit["amount"]:
        raise ReplayError(f"{e.type}: the deposit held is {deposit['amount']}, not {d['amount']}")
    _reason(d["reason"])
    if isinstance(who, str):
        s.onboarding.unbid.setdefault((a["id"], who), []).append([e.seq, e.type])
    else:
        standing = [
            b
            for b in s.books.get(a["id"], [])
            if s.bids[b]["bidder"] == who and s.bids[b]["status"] != "withdrawn"
        ]
        if standing:
            raise ReplayError(f"{e.type}: bid {standing[0]} of bidder {who} stands")
    deposit["state"] = "released" if e.type == "deposit.release" else "forfeited"
    # Bids checked at the reveal see no deposit from here on.
    s.deposit_totals.setdefault((a["id"], who), []).append([e.seq, 0])


# ---- at the reveal ---------------------------------------------------------------------------


def reveal(s: AuctionState, auction: dict[str, Any], d: dict[str, Any], r: RegistryState) -> None:
    """Before the reveal's other checks: name every applicant of the auction, and check the
    moments an applicant withdrew or a depositor's deposit went out against its bids."""
    auction_id, origin = auction["id"], s.origin
    hidden = {b for (x, b) in s.onboarding.applications if x == auction_id and isinstance(b, str)}
    named: dict[str, int] = {}
    for item in d.get("applications", []):
        bidder, salt = item["bidder"], bytes.fromhex(_hex64(item["salt"], "salt"))
        r._need(r.organizations, bidder, "organization")
        key = applicant(origin, auction_id, bidder, salt)
        if key not in hidden or key in named or bidder in named.values():
            raise ReplayError(
                f"auction {auction_id}: the reveal names bidder {bidder} for no application "
                "of its own"
            )
        named[key] = bidder
    if set(named) != hidden:
        raise ReplayError(f"auction {auction_id}: the reveal leaves applications unnamed")
    for key, bidder in named.items():
        history = s.onboarding.history.pop((auction_id, key))
        if (
            "approved" in (state for _, state in history)
            and "bidder" not in r.organizations[bidder]["roles"]
        ):
            raise ReplayError(f"organization {bidder} was admitted to bid without the bidder role")
        s.onboarding.applications[(auction_id, bidder)] = s.onboarding.applications.pop(
            (auction_id, key)
        )
        s.onboarding.history[(auction_id, bidder)] = history
    # Who is behind each pseudonym the checks below wait on, and each bidder's bids.
    behind = dict(named)
    for item in d["deposits"]:
        salt = bytes.fromhex(_hex64(item["salt"], "salt"))
        behind[depositor(origin, auction_id, item["bidder"], salt)] = item["bidder"]
    bids_of: dict[int, list[int]] = {}
    for item in d["bids"]:
        bids_of.setdefault(item["bidder"], []).append(item["bid"])
    for waiting in [k for k in s.onboarding.unbid if k[0] == auction_id]:
        bidder = behind.get(waiting[1])
        if bidder is None:
            raise ReplayError(f"auction {auction_id}: the reveal does not name {waiting[1]}")
        for seq, what in s.onboarding.unbid.pop(waiting):
            for bid in bids_of.get(bidder, []):
                if _stood(s.bid_parties.get(bid, {}).get("versions", []), seq):
                    raise ReplayError(f"entry {seq}: {what} while bid {bid} of {bidder} stood")


def _stood(versions: list[list[Any]], seq: int) -> bool:
    """Whether a bid (its versions: [entry seq, version, account commitment or None for a
    withdrawal]) stood just before entry ``seq``."""
    last = None
    for at, _, account in versions:
        if at >= seq:
            break
        last = account
    return last is not None
