"""Replay of the auction entries: the auditor's model of the auction house.

It runs beside the registry's replay (``bluecarbon_audit.replay.RegistryState``), which
applies the credit effects (escrow holds, releases, deliveries); this checks that each auction
moved through its states in order and by its rules, that every bid counted was committed while
the auction was open, and, at each ``auction.clear``, reopens every counted bid with the
published key and re-runs the clearing: the published result must be exactly what comes out.

Escrow movements of an auction's hold must be made by the auction itself: each appears in the
entry right before the auction entry that accounts for it (services append both in one
transaction, which holds the ledger head, so they are adjacent); any other movement is an error.
No Django import.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..entry import Entry
from ..managed_escrow import ESCROW_ENTRY_TYPES, ManagedEscrow
from ..replay import RegistryState, ReplayError
from . import clearing, clock, english, onboarding, parties, sealing
from . import result as results
from .onboarding import Onboarding

AUCTION_ENTRY_TYPES = frozenset(
    {
        "bidder.status",
        "deposit.record",
        "auction.create",
        "auction.schedule",
        "auction.open",
        "auction.cancel",
        "auction.close",
        "auction.clear",
        "auction.settle",
        "auction.fail",
        "bid.submit",
        "bid.amend",
        "bid.withdraw",
        "award.deliver",
        "award.default",
        "trustee.keys",
        "auction.key_release",
        "auction.reveal",
        # English auctions (english.py): an accepted open bid.
        "bid.raise",
        # Clock auctions (clock.py): rounds and committed round bids.
        "clock.round_open",
        "clock.bid",
        "clock.round_close",
        # Onboarding (onboarding.py): applications, deposits released or forfeited.
        "application.submit",
        "application.approve",
        "application.refuse",
        "application.withdraw",
        "deposit.release",
        "deposit.forfeit",
    }
)
SEALING_RULES = ("sealing", "trustees", "threshold", "release_by")
# An auction created before the rules said who opens the bids was sealed to a key the operator
# held: its record on the ledger lacks these members.
OPERATOR_KEY_RULES: dict[str, Any] = {
    "sealing": "operator_key",
    "trustees": [],
    "threshold": None,
    "release_by": None,
}
MANAGED_PREFIX = "auction:"


def _b64(value: Any, what: str) -> bytes:
    if type(value) is not str:
        raise ReplayError(f"{what} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise ReplayError(f"{what} is not base64") from None


@dataclass
class AuctionState:
    origin: str = ""  # the ledger's checkpoint origin: the HPKE info of every bid names it
    bidders: dict[int, str] = field(default_factory=dict)
    auctions: dict[int, dict[str, Any]] = field(default_factory=dict)
    bids: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Ciphertexts of bids in auctions not cleared yet (freed at clearing).
    ciphertexts: dict[int, bytes] = field(default_factory=dict)
    deposits: dict[tuple[int, int | str], dict[str, Any]] = field(default_factory=dict)
    awards: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The auctions' escrow holds (hold -> auction) and the movement waiting for its auction
    # entry. A hold made under the prefix but never scheduled is named "None", as it always was.
    escrow: ManagedEscrow = field(
        default_factory=lambda: ManagedEscrow(MANAGED_PREFIX, "auction", unassigned="None")
    )
    # Trustees' one-time keys: id -> organization, public key, the auction and position it is
    # assigned to, the private key once released (and the entry that released it).
    trustee_keys: dict[int, dict[str, Any]] = field(default_factory=dict)
    released_at: dict[int, int] = field(default_factory=dict)  # key id -> release entry
    # Pseudonyms (parties.py) until auction.reveal: bid -> its party and, per version, [entry
    # seq, version, account commitment or None]; each bidder's status changes [seq, status];
    # each deposit's totals [seq, total] (key: auction, then bidder or depositor).
    bid_parties: dict[int, dict[str, Any]] = field(default_factory=dict)
    bidder_history: dict[int, list[list[Any]]] = field(default_factory=dict)
    deposit_totals: dict[tuple[int, int | str], list[list[int]]] = field(default_factory=dict)
    revealed: set[int] = field(default_factory=set)
    # Bookkeeping that is not a table: auction -> its bid ids; auction -> what its clearing
    # decided (for settling).
    books: dict[int, list[int]] = field(default_factory=dict)
    cleared: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Applications, and the checks that wait for an auction's reveal (onboarding.py).
    onboarding: Onboarding = field(default_factory=Onboarding)
    # English auctions: each accepted bid (compared with the raises table), and per auction
    # the time of its last bid, its bids in ledger order and, until the reveal, each paddle's
    # bids' entry seqs (its bidder's admission and deposit are checked at the reveal).
    raises: dict[int, dict[str, Any]] = field(default_factory=dict)
    english: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Clock auctions: rounds (auction, number) -> what they published; round bids (their
    # commitments, what they say once revealed); per auction the current round, its bids,
    # the paddles' bid entries and where the last round close and the open were.
    clock_rounds: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    clock_bids: dict[int, dict[str, Any]] = field(default_factory=dict)
    clock: dict[int, dict[str, Any]] = field(default_factory=dict)

    # ---- applying entries -----------------------------------------------------------------

    def apply(self, entry: Entry, registry: RegistryState, entry_hash: bytes) -> None:
        """Apply an auction entry, or note an escrow movement, after the registry's replay
        applied its credit effects. Other entries only check that no movement is left."""
        try:
            if entry.type in ESCROW_ENTRY_TYPES:
                self.escrow.note(entry)
                return
            handler = _HANDLERS.get(entry.type)
            if handler is None:
                return
            handler(self, entry.data, entry, registry, entry_hash)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ReplayError(f"malformed {entry.type} data: {exc!r}") from None
        self.escrow.check_after(entry.seq)

    def finish(self) -> None:
        self.escrow.finish()

    def _auction(self, auction_id: Any, *states: str) -> dict[str, Any]:
        a = self.auctions.get(auction_id) if type(auction_id) is int else None
        if a is None:
            raise ReplayError(f"unknown auction {auction_id!r}")
        if states and a["state"] not in states:
            raise ReplayError(
                f"auction {auction_id} is {a['state']}; the entry needs it {' or '.join(states)}"
            )
        return a

    def _release_remaining(self, a: dict[str, Any], seq: int, registry: RegistryState) -> None:
        """Cancel or fail: whatever was left of the lot went back to the seller just before."""
        if a["hold"] is None:
            return  # a draft: nothing was escrowed (a movement before it is caught by apply)
        if self.escrow.pending is not None:
            self.escrow.take(seq, "escrow.release", a["hold"], self.escrow.pending.quantity)
        if registry.holds[a["hold"]]["remaining"] != 0:
            raise ReplayError(f"auction {a['id']} ended with credits left in its escrow")

    def _release_deposits(self, auction_id: int, listed: Any, exclude: set[int]) -> None:
        # Bidders by id, then (an auction cancelled before its reveal) depositors' pseudonyms.
        held = sorted(
            (
                bidder
                for (auction, bidder), d in self.deposits.items()
                if auction == auction_id and d["state"] == "held" and bidder not in exclude
            ),
            key=lambda b: (isinstance(b, str), b),
        )
        if listed != held:
            raise ReplayError(
                f"deposits released {listed!r}, but the held deposits to release are {held!r}"
            )
        for bidder in held:
            self.deposits[(auction_id, bidder)]["state"] = "released"

    # ---- snapshot (for incremental verification) ------------------------------------------

    def to_json(self) -> dict[str, Any]:
        self.escrow.check_saveable()
        return {
            "bidders": sorted(self.bidders.items()),
            "auctions": sorted(self.auctions.items()),
            "bids": sorted(self.bids.items()),
            "ciphertexts": [
                [k, base64.b64encode(v).decode()] for k, v in sorted(self.ciphertexts.items())
            ],
            "deposits": [[a, b, d] for (a, b), d in self.deposits.items()],
            "awards": sorted(self.awards.items()),
            "holds": sorted(self.escrow.holds.items()),
            "trustee_keys": sorted(self.trustee_keys.items()),
            "released_at": sorted(self.released_at.items()),
            "bid_parties": sorted(self.bid_parties.items()),
            "bidder_history": sorted(self.bidder_history.items()),
            "deposit_totals": [[a, b, t] for (a, b), t in self.deposit_totals.items()],
            "revealed": sorted(self.revealed),
            "books": sorted(self.books.items()),
            "cleared": sorted(self.cleared.items()),
            "onboarding": self.onboarding.to_json(),
            "raises": sorted(self.raises.items()),
            "english": sorted(self.english.items()),
            "clock_rounds": [[a, n, v] for (a, n), v in sorted(self.clock_rounds.items())],
            "clock_bids": sorted(self.clock_bids.items()),
            "clock": sorted(self.clock.items()),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], origin: str) -> AuctionState:
        s = cls(origin=origin)
        s.bidders = {k: v for k, v in obj["bidders"]}
        s.auctions = {k: v for k, v in obj["auctions"]}
        s.bids = {k: v for k, v in obj["bids"]}
        s.ciphertexts = {k: base64.b64decode(v) for k, v in obj["ciphertexts"]}
        s.deposits = {(a, b): d for a, b, d in obj["deposits"]}
        s.awards = {k: v for k, v in obj["awards"]}
        s.escrow.holds = {k: v for k, v in obj["holds"]}
        s.trustee_keys = {k: v for k, v in obj.get("trustee_keys", [])}
        s.released_at = {k: v for k, v in obj.get("released_at", [])}
        s.bid_parties = {k: v for k, v in obj.get("bid_parties", [])}
        s.bidder_history = {k: v for k, v in obj.get("bidder_history", [])}
        s.deposit_totals = {(a, b): t for a, b, t in obj.get("deposit_totals", [])}
        s.revealed = set(obj.get("revealed", []))
        s.books = {k: v for k, v in obj["books"]}
        s.cleared = {k: v for k, v in obj["cleared"]}
        s.onboarding = Onboarding.from_json(obj.get("onboarding"))
        s.raises = {k: v for k, v in obj.get("raises", [])}
        s.english = {k: v for k, v in obj.get("english", [])}
        s.clock_rounds = {(a, n): v for a, n, v in obj.get("clock_rounds", [])}
        s.clock_bids = {k: v for k, v in obj.get("clock_bids", [])}
        s.clock = {k: v for k, v in obj.get("clock", [])}
        return s


# ---- handlers --------------------------------------------------------------------------------


def _bidder_status(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    org, status = d["organization"], d["status"]
    r._need(r.organizations, org, "organization")
    if status not in ("approved", "suspended"):
        raise ReplayError(f"unknown bidder status {status!r}")
    if status == "approved" and "bidder" not in r.organizations[org]["roles"]:
        raise ReplayError(f"organization {org} is approved to bid without the bidder role")
    s.bidders[org] = status
    s.bidder_history.setdefault(org, []).append([e.seq, status])


def _auction_create(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    rec = dict(d["auction"])
    key = rec["id"]
    if type(key) is not int or key in s.auctions:
        raise ReplayError(f"auction id {key!r} is not new")
    account = r._need(r.accounts, rec["account"], "account")
    r._need(r.batches, rec["batch"], "batch")
    if account["organization"] != rec["seller"] or account["kind"] != "holding":
        raise ReplayError("an auction sells from a holding account of the seller")
    # A record without "v" is rules version 1, recomputed as results were before version 2.
    rec.setdefault("v", 1)
    is_english = rec["format"] == english.FORMAT
    try:
        if is_english:
            english.rules_of(rec)
        elif rec["format"] == clock.FORMAT:
            clock.rules_of(rec)
        else:
            results.rules_of(rec)
        results.rules_version(rec)
    except clearing.RulesError as exc:
        raise ReplayError(f"auction rules are invalid: {exc}") from None
    if rec["quantity"] % rec["lot_kg"] or rec["closes_at"] <= rec["opens_at"]:
        raise ReplayError("auction quantity or times are invalid")
    if not any(k in rec for k in SEALING_RULES):
        rec.update(OPERATOR_KEY_RULES)
    _check_sealing_rules(rec, r)
    rec.update(
        hold=None,
        state="draft",
        public_key=None,
        private_key=None,
        book_size=None,
        book_root=None,
        seed=None,
        result_sha256="",
        clearing_price=None,
    )
    if is_english:
        rec.update(standing_price=None, ends_at=None)
    elif rec["format"] == clock.FORMAT:
        rec.update(ends_at=None)
    s.auctions[key] = rec


def _check_sealing_rules(rec: dict[str, Any], r: RegistryState) -> None:
    mode, trustees, threshold = rec["sealing"], rec["trustees"], rec["threshold"]
    if (mode == "open") != (rec["format"] == english.FORMAT):
        raise ReplayError("open bids are the English format's, and only its")
    if (mode == "operator_rounds") != (rec["format"] == clock.FORMAT):
        raise ReplayError("committed round bids are the clock format's, and only its")
    if mode in ("operator_key", "open", "operator_rounds"):
        if trustees != [] or threshold is not None or rec["release_by"] is not None:
            raise ReplayError("an auction sealed to the operator's key names no trustees")
        return
    if mode != "trustees":
        raise ReplayError(f"unknown sealing {mode!r}")
    if (
        type(trustees) is not list
        or not 1 <= len(trustees) <= sealing.MAX_TRUSTEES
        or len(set(map(repr, trustees))) != len(trustees)
    ):
        raise ReplayError(f"trustees must be 1 to {sealing.MAX_TRUSTEES} distinct organizations")
    for org in trustees:
        if (
            type(org) is not int
            or "trustee" not in r._need(r.organizations, org, "organization")["roles"]
        ):
            raise ReplayError(f"organization {org!r} named a trustee without the trustee role")
    if type(threshold) is not int or not 1 <= threshold <= len(trustees):
        raise ReplayError(f"threshold {threshold!r} is not from 1 to {len(trustees)}")
    if type(rec["release_by"]) is not str or rec["release_by"] <= rec["closes_at"]:
        raise ReplayError("the trustees' release deadline must be after the closing time")


def _trustee_keys(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    org = d["organization"]
    if "trustee" not in r._need(r.organizations, org, "organization")["roles"]:
        raise ReplayError(f"organization {org} registered trustee keys without the trustee role")
    if not d["keys"]:
        raise ReplayError("a trustee.keys entry registers at least one key")
    known = {k["public_key"] for k in s.trustee_keys.values()}
    for k in d["keys"]:
        key_id, public = k["key"], k["public_key"]
        if type(key_id) is not int or key_id in s.trustee_keys:
            raise ReplayError(f"trustee key id {key_id!r} is not new")
        if len(_b64(public, "public_key")) != 32 or public in known:
            raise ReplayError(f"trustee key {key_id}: not a new 32-byte public key")
        known.add(public)
        s.trustee_keys[key_id] = {
            "organization": org,
            "public_key": public,
            "auction": None,
            "position": None,
            "private_key": None,
        }


def _assign_trustee_keys(s: AuctionState, a: dict[str, Any], listed: Any) -> None:
    """The schedule entry's keys: each trustee's oldest unused key, in the order of the
    rules."""
    want = []
    for position, org in enumerate(a["trustees"], 1):
        free = [
            k
            for k, v in sorted(s.trustee_keys.items())
            if v["organization"] == org and v["auction"] is None
        ]
        if not free:
            raise ReplayError(f"auction {a['id']}: trustee {org} had no unused key")
        key = free[0]
        want.append(
            {
                "position": position,
                "trustee": org,
                "key": key,
                "public_key": s.trustee_keys[key]["public_key"],
            }
        )
        s.trustee_keys[key].update(auction=a["id"], position=position)
    if listed != want:
        raise ReplayError(
            f"auction {a['id']}: the trustee keys scheduled are {listed!r}; each trustee's "
            f"oldest unused key is {want!r}"
        )


def _key_release(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    a = s._auction(d["auction"], "closing")
    key_id = d["key"]
    k = s.trustee_keys.get(key_id) if type(key_id) is int else None
    if (
        k is None
        or a["sealing"] != "trustees"
        or (k["auction"], k["position"], k["organization"])
        != (a["id"], d["position"], d["trustee"])
    ):
        raise ReplayError(f"trustee key {key_id!r} is not that trustee's key for auction {a['id']}")
    if k["private_key"] is not None:
        raise ReplayError(f"trustee key {key_id} was already released")
    raw = _b64(d["private_key"], "private_key")
    if len(raw) != 32 or base64.b64encode(sealing.public_key_of(raw)).decode() != k["public_key"]:
        raise ReplayError(
            f"auction {a['id']}: the key released by trustee {d['trustee']} is not the private "
            "key of its registered public key"
        )
    k["private_key"] = d["private_key"]
    s.released_at[key_id] = e.seq


def _opening_keys(s: AuctionState, a: dict[str, Any]) -> dict[int, X25519PrivateKey]:
    """The first ``threshold`` keys released for the auction, in ledger order."""
    released = sorted(
        (s.released_at[k], v["position"], v["private_key"])
        for k, v in s.trustee_keys.items()
        if v["auction"] == a["id"] and v["private_key"] is not None
    )[: a["threshold"]]
    return {
        position: X25519PrivateKey.from_private_bytes(base64.b64decode(private))
        for _, position, private in released
    }


def _auction_schedule(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    a = s._auction(d["auction"], "draft")
    hold_id = d["hold"]
    hold = r._need(r.holds, hold_id, "escrow hold")
    if (hold["account"], hold["batch"], hold["quantity"], hold["reference"]) != (
        a["account"],
        a["batch"],
        a["quantity"],
        f"{MANAGED_PREFIX}{a['id']}",
    ):
        raise ReplayError(f"escrow hold {hold_id} is not this auction's lot")
    s.escrow.take(e.seq, "escrow.hold", hold_id, a["quantity"])
    if a["format"] == english.FORMAT:
        if "public_key" in d or "trustee_keys" in d:
            raise ReplayError(f"auction {a['id']} takes open bids: it has no keys")
        public_key = None
        a["ends_at"] = english.format_time(english.rules_of(a).deadline(None))
        s.english[a["id"]] = {"last": None, "bids": [], "paddles": {}}
    elif a["format"] == clock.FORMAT:
        if "public_key" in d or "trustee_keys" in d:
            raise ReplayError(f"auction {a['id']} takes committed round bids: it has no keys")
        public_key = None
        s.clock[a["id"]] = {"round": 0, "bids": [], "paddles": {}, "at": None}
    elif a["sealing"] == "trustees":
        if "public_key" in d:
            raise ReplayError(f"auction {a['id']} is sealed to trustees: it has no public key")
        _assign_trustee_keys(s, a, d["trustee_keys"])
        public_key = None
    else:
        if len(_b64(d["public_key"], "public_key")) != 32 or "trustee_keys" in d:
            raise ReplayError("an auction's public key is 32 bytes (X25519)")
        public_key = d["public_key"]
    s.escrow.holds[hold_id] = a["id"]
    a.update(hold=hold_id, public_key=public_key, state="scheduled")


def _auction_open(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    a = s._auction(d["auction"], "scheduled")
    if e.time < a["opens_at"]:
        raise ReplayError(f"auction {a['id']} opened before its opening time")
    a["state"] = "open"
    if a["format"] == clock.FORMAT:
        s.clock[a["id"]]["at"] = e.seq  # round 1 opens in the next entry


def _deposit_record(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    a = s._auction(d["auction"], "draft", "scheduled", "open")
    bidder: int | str
    if "depositor" in d:  # a pseudonym until the reveal (parties.py)
        bidder = _hex64(d["depositor"], "depositor")
    else:
        bidder = d["bidder"]
        r._need(r.organizations, bidder, "organization")
    amount, total = d["amount"], d["total"]
    before = s.deposits.get((a["id"], bidder), {"amount": 0, "state": "held"})
    if before["state"] != "held":  # released or forfeited by the operator: a new deposit
        before = {"amount": 0, "state": "held"}
    if type(amount) is not int or amount <= 0 or total != before["amount"] + amount:
        raise ReplayError("deposit amount and total do not add up")
    s.deposits[(a["id"], bidder)] = {"amount": total, "state": "held"}
    s.deposit_totals.setdefault((a["id"], bidder), []).append([e.seq, total])


def _hex64(value: Any, what: str) -> str:
    if type(value) is not str or len(value) != 64 or value.strip("0123456789abcdef"):
        raise ReplayError(f"{what} must be 64 lowercase hex digits")
    return value


def _bid_or_new(
    s: AuctionState, a: dict[str, Any], d: dict[str, Any], action: str, bidder: int | None
) -> tuple[dict[str, Any], bool]:
    """The bid an entry acts on, and whether this entry made it: only a first submission
    (version 1) of an id not seen before may. ``bidder`` is None for a bid under its pseudonym
    (named at the reveal)."""
    bid_id = d["bid"]
    bid = s.bids.get(bid_id) if type(bid_id) is int else None
    if bid is not None:
        return bid, False
    if action != "submit" or d["version"] != 1 or type(bid_id) is not int:
        raise ReplayError(f"bid {bid_id!r} is unknown")
    s.books.setdefault(a["id"], []).append(bid_id)
    bid = {
        "auction": a["id"],
        "bidder": bidder,
        "account": None,
        "version": 0,
        "commitment": "",
        "status": "withdrawn",
        "reason": "",
        "awarded_lots": None,
    }
    s.bids[bid_id] = bid
    return bid, True


def _bid(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    a = s._auction(d["auction"], "open")
    if a["format"] == english.FORMAT:
        raise ReplayError(f"a sealed bid in auction {a['id']}, an English auction")
    if e.time >= a["closes_at"]:
        raise ReplayError(f"bid taken at {e.time}, after auction {a['id']} closed")
    if "party" in d:
        _party_bid(s, a, d, e)
        return
    bidder, bid_id, action = d["bidder"], d["bid"], e.type.split(".")[1]
    if not onboarding.admitted(s.onboarding.state_of(a["id"], bidder), s.bidders.get(bidder)):
        raise ReplayError(f"organization {bidder} is not an approved bidder")
    if bidder == a["seller"]:
        raise ReplayError("a seller bid in its own auction")
    deposit = s.deposits.get((a["id"], bidder))
    held = deposit["amount"] if deposit and deposit["state"] == "held" else 0
    if held < a["deposit_required"]:
        raise ReplayError(f"bidder {bidder} bid without the required deposit")
    bid, _ = _bid_or_new(s, a, d, action, bidder)
    if (bid["auction"], bid["bidder"]) != (a["id"], bidder) or d["version"] != bid["version"] + 1:
        raise ReplayError(f"bid {bid_id} version {d['version']} does not follow {bid['version']}")
    # A new bid starts "withdrawn" at version 0 above: only a submit can follow that.
    wanted = {"submit": "withdrawn", "amend": "sealed", "withdraw": "sealed"}[action]
    if bid["status"] != wanted or (action == "submit" and bid["version"] != 0):
        raise ReplayError(f"bid {bid_id} cannot be {action}ed while {bid['status']}")
    bid["version"] = d["version"]
    if action == "withdraw":
        bid["status"] = "withdrawn"
        s.ciphertexts.pop(bid_id, None)
        return
    ciphertext = _b64(d["ciphertext"], "ciphertext")
    try:
        if a["sealing"] == "trustees":
            sealing.check_envelope(ciphertext, len(a["trustees"]))
        else:
            sealing.check_ciphertext(ciphertext)
    except sealing.SealError as exc:
        raise ReplayError(f"bid {bid_id}: {exc}") from None
    if hashlib.sha256(ciphertext).hexdigest() != d["commitment"]:
        raise ReplayError(f"bid {bid_id}: the commitment is not the ciphertext's SHA-256")
    account = r._need(r.accounts, d["account"], "account")
    if account["organization"] != bidder or account["kind"] != "holding":
        raise ReplayError(f"bid {bid_id}: awards go to a holding account of the bidder")
    bid.update(account=d["account"], commitment=d["commitment"], status="sealed")
    s.ciphertexts[bid_id] = ciphertext


def _party_bid(s: AuctionState, a: dict[str, Any], d: dict[str, Any], e: Entry) -> None:
    """A bid under its pseudonym: everything about who bid is checked at the reveal."""
    bid_id, action, party = d["bid"], e.type.split(".")[1], _hex64(d["party"], "party")
    bid, new = _bid_or_new(s, a, d, action, None)
    if new:
        s.bid_parties[bid_id] = {"party": party, "versions": []}
    hidden = s.bid_parties.get(bid_id)
    if hidden is None or hidden["party"] != party or bid["auction"] != a["id"]:
        raise ReplayError(f"bid {bid_id} changed its party")
    if d["version"] != bid["version"] + 1:
        raise ReplayError(f"bid {bid_id} version {d['version']} does not follow {bid['version']}")
    wanted = {"submit": "withdrawn", "amend": "sealed", "withdraw": "sealed"}[action]
    if bid["status"] != wanted or (action == "submit" and bid["version"] != 0):
        raise ReplayError(f"bid {bid_id} cannot be {action}ed while {bid['status']}")
    bid["version"] = d["version"]
    if action == "withdraw":
        bid["status"] = "withdrawn"
        s.ciphertexts.pop(bid_id, None)
        hidden["versions"].append([e.seq, d["version"], None])
        return
    ciphertext = _b64(d["ciphertext"], "ciphertext")
    try:
        if a["sealing"] == "trustees":
            sealing.check_envelope(ciphertext, len(a["trustees"]))
        else:
            sealing.check_ciphertext(ciphertext)
    except sealing.SealError as exc:
        raise ReplayError(f"bid {bid_id}: {exc}") from None
    if hashlib.sha256(ciphertext).hexdigest() != d["commitment"]:
        raise ReplayError(f"bid {bid_id}: the commitment is not the ciphertext's SHA-256")
    hidden["versions"].append(
        [e.seq, d["version"], _hex64(d["account_commitment"], "account_commitment")]
    )
    bid.update(commitment=d["commitment"], status="sealed")
    s.ciphertexts[bid_id] = ciphertext


def _raise(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    """An English auction's accepted bid: in time, beating the standing price by the rules'
    increment, not from the paddle already standing, and moving the end as the rules say. Who
    is behind the paddle (admitted, with its deposit, not the seller) is checked at the
    reveal."""
    a = s._auction(d["auction"], "open")
    if a["format"] != english.FORMAT:
        raise ReplayError(f"an open bid in auction {a['id']}, which takes sealed bids")
    rules = english.rules_of(a)
    book = s.english[a["id"]]
    last = english.parse_time(book["last"]) if book["last"] is not None else None
    now = english.parse_time(e.time)
    bid_id, paddle, price = d["bid"], _hex64(d["paddle"], "paddle"), d["price"]
    if not rules.bidding_at(now, last):
        raise ReplayError(
            f"bid {bid_id!r} taken at {e.time}, after auction {a['id']}'s bidding ended at "
            f"{english.format_time(rules.deadline(last))}"
        )
    refusal = rules.refusal(price, a["standing_price"])
    if refusal is not None:
        raise ReplayError(
            f"bid {bid_id!r} of {price!r} in auction {a['id']}: {refusal} (the lowest valid bid "
            f"was {rules.minimum(a['standing_price'])})"
        )
    if type(bid_id) is not int or bid_id in s.raises:
        raise ReplayError(f"bid id {bid_id!r} is not new")
    if book["bids"] and s.raises[book["bids"][-1]]["paddle"] == paddle:
        raise ReplayError(f"bid {bid_id}: paddle {paddle[:8]} raised its own standing bid")
    ends_at = english.format_time(rules.deadline(now))
    if d["ends_at"] != ends_at:
        raise ReplayError(
            f"bid {bid_id}: the entry says bidding now ends at {d['ends_at']!r}; the rules give "
            f"{ends_at}"
        )
    s.raises[bid_id] = {
        "auction": a["id"],
        "paddle": paddle,
        "bidder": None,
        "account": None,
        "price": price,
        "time": e.time,
    }
    book["bids"].append(bid_id)
    book["last"] = e.time
    book["paddles"].setdefault(paddle, []).append(e.seq)
    a.update(standing_price=price, ends_at=ends_at)


def _english_close(a: dict[str, Any], d: dict[str, Any], e: Entry, s: AuctionState) -> None:
    book = s.english[a["id"]]
    want = {
        "auction": a["id"],
        "bids": len(book["bids"]),
        "standing_price": a["standing_price"],
        "ends_at": a["ends_at"],
    }
    if d != want:
        raise ReplayError(
            f"auction {a['id']}: the close says {d!r}; its bids on the ledger give {want!r}"
        )
    if e.time < a["ends_at"]:
        raise ReplayError(f"auction {a['id']} closed at {e.time}, before bidding ended")


def _reveal_paddles(
    s: AuctionState, a: dict[str, Any], listed: Any, r: RegistryState, book: dict[str, Any]
) -> dict[str, tuple[int, int]]:
    """An ascending auction's reveal: who is behind each paddle (``book["paddles"]``: each
    paddle's bid entries), checked as each sealed bid's party is (admitted and with its
    deposit at each of its bids, not the seller). Returns paddle -> (bidder, account)."""
    auction_id = a["id"]
    named: dict[str, tuple[int, int]] = {}
    for item in listed:
        bidder, account = item["bidder"], item["account"]
        salt = bytes.fromhex(_hex64(item["salt"], "salt"))
        if type(bidder) is not int or type(account) is not int:
            raise ReplayError(f"auction {auction_id}: a paddle's bidder and account are ids")
        key = parties.paddle(s.origin, auction_id, bidder, account, salt)
        if key not in book["paddles"] or key in named:
            raise ReplayError(
                f"auction {auction_id}: the reveal names bidder {bidder} for no paddle that bid"
            )
        named[key] = (bidder, account)
    if sorted(named) != sorted(book["paddles"]) or len({b for b, _ in named.values()}) != len(
        named
    ):
        raise ReplayError(f"auction {auction_id}: the reveal leaves paddles unnamed")
    for key, (bidder, account) in named.items():
        acc = r._need(r.accounts, account, "account")
        if acc["organization"] != bidder or acc["kind"] != "holding":
            raise ReplayError(f"paddle {key[:8]}: awards go to a holding account of the bidder")
        if bidder == a["seller"]:
            raise ReplayError(f"paddle {key[:8]}: a seller bid in its own auction")
        for seq in book["paddles"][key]:
            if not onboarding.admitted(
                s.onboarding.state_at(auction_id, bidder, seq),
                _at(s.bidder_history.get(bidder, []), seq),
            ):
                raise ReplayError(
                    f"paddle {key[:8]}: organization {bidder} was not an approved bidder at "
                    f"entry {seq}"
                )
            held = _at(s.deposit_totals.get((auction_id, bidder), []), seq) or 0
            if held < a["deposit_required"]:
                raise ReplayError(
                    f"paddle {key[:8]}: bidder {bidder} bid at entry {seq} without the required "
                    "deposit"
                )
    book["paddles"] = {}
    return named


def _english_clear(s: AuctionState, a: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
    """The English result recomputed from the accepted bids."""
    if d.get("sealing") != "open" or "private_key" in d or "opened_with" in d:
        raise ReplayError(f"auction {a['id']} takes open bids: its clearing opens nothing")
    bids = [
        english.Raise(
            bid=b,
            price=s.raises[b]["price"],
            time=s.raises[b]["time"],
            bidder=s.raises[b]["bidder"],
            account=s.raises[b]["account"],
        )
        for b in s.english[a["id"]]["bids"]
    ]
    deposits = {
        bidder: dep["amount"]
        for (auction, bidder), dep in s.deposits.items()
        if auction == a["id"] and dep["state"] == "held" and type(bidder) is int
    }
    record = {k: v for k, v in a.items() if k in _RULE_KEYS}
    return english.build_result(record=record, bids=bids, deposits=deposits)


def _round_open(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    """A clock round: round 1 at the start price right after the auction's open, until the
    rules' closes_at; round n after round n-1 closed with demand above the supply, at the next
    price, for round_s seconds."""
    a = s._auction(d["auction"], "open")
    if a["format"] != clock.FORMAT:
        raise ReplayError(f"a clock round in auction {a['id']}, which is not a clock auction")
    book, rules = s.clock[a["id"]], clock.rules_of(a)
    number = book["round"] + 1
    if d["round"] != number or book["at"] != e.seq - 1:
        raise ReplayError(
            f"auction {a['id']}: round {d['round']!r} opened at entry {e.seq}; round {number} "
            "opens right after the open or the close of the round before"
        )
    if number == 1:
        price, closes_at = rules.start, a["closes_at"]
    else:
        before = s.clock_rounds[(a["id"], number - 1)]
        price = rules.next_price(before["price"])
        closes_at = english.format_time(
            english.parse_time(e.time) + dt.timedelta(seconds=rules.round_s)
        )
    if (d["price"], d["closes_at"]) != (price, closes_at):
        raise ReplayError(
            f"auction {a['id']}: round {number} at {d['price']!r} until {d['closes_at']!r}; the "
            f"rules give {price} until {closes_at}"
        )
    s.clock_rounds[(a["id"], number)] = {
        "price": price,
        "opens_at": e.time,
        "closes_at": closes_at,
        "aggregate": None,
        "active": None,
        "final": None,
    }
    book.update(round=number, at=None)
    a["ends_at"] = closes_at


def _clock_bid(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    """A committed round bid: in the current round, in time, one per paddle and round (a new
    version replaces it). What it says is checked when the auction's reveal opens it."""
    a = s._auction(d["auction"], "open")
    book = s.clock.get(a["id"])
    if book is None or not book["round"] or d["round"] != book["round"]:
        raise ReplayError(f"clock bid {d.get('bid')!r} is not in auction {a['id']}'s open round")
    rnd = s.clock_rounds[(a["id"], book["round"])]
    if rnd["final"] is not None or e.time >= rnd["closes_at"]:
        raise ReplayError(
            f"clock bid {d['bid']!r} taken at {e.time}, after round {book['round']} of auction "
            f"{a['id']} ended at {rnd['closes_at']}"
        )
    bid_id, paddle = d["bid"], _hex64(d["paddle"], "paddle")
    commitment = _hex64(d["commitment"], "commitment")
    bid = s.clock_bids.get(bid_id) if type(bid_id) is int else None
    if bid is None:
        same = [
            b
            for b in book["bids"]
            if s.clock_bids[b]["round"] == book["round"] and s.clock_bids[b]["paddle"] == paddle
        ]
        if type(bid_id) is not int or d["version"] != 1 or same:
            raise ReplayError(f"clock bid {bid_id!r} is not new, or its paddle bid this round")
        bid = {
            "auction": a["id"],
            "round": book["round"],
            "paddle": paddle,
            "version": 0,
            "commitment": "",
            "lots": None,
            "exit_price": None,
        }
        s.clock_bids[bid_id] = bid
        book["bids"].append(bid_id)
    if (bid["auction"], bid["round"], bid["paddle"]) != (a["id"], book["round"], paddle) or d[
        "version"
    ] != bid["version"] + 1:
        raise ReplayError(f"clock bid {bid_id} version {d['version']!r} does not follow")
    bid.update(version=d["version"], commitment=commitment)
    book["paddles"].setdefault(paddle, []).append(e.seq)


def _round_close(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    """A round's end: what it publishes (aggregate, active bidders, final) is recomputed from
    the round's bids once the reveal opens them."""
    a = s._auction(d["auction"], "open")
    book = s.clock.get(a["id"])
    if book is None or d["round"] != book["round"]:
        raise ReplayError(f"auction {a['id']}: round {d['round']!r} is not the open round")
    rnd = s.clock_rounds[(a["id"], book["round"])]
    if rnd["final"] is not None or e.time < rnd["closes_at"]:
        raise ReplayError(
            f"auction {a['id']}: round {book['round']} closed at {e.time}, before its end "
            f"{rnd['closes_at']}"
        )
    agg, active, final = d["aggregate"], d["active"], d["final"]
    if type(agg) is not int or type(active) is not int or type(final) is not bool or agg < 0:
        raise ReplayError(f"auction {a['id']}: round {book['round']}'s close is malformed")
    rnd.update(aggregate=agg, active=active, final=final)
    if final != (agg <= clock.rules_of(a).offered_lots):
        raise ReplayError(
            f"auction {a['id']}: round {book['round']} published demand {agg} and final={final}"
        )
    book["at"] = e.seq  # the next round, or the auction's close, comes right after


def _clock_close(s: AuctionState, a: dict[str, Any], d: dict[str, Any], e: Entry) -> None:
    book = s.clock[a["id"]]
    last = s.clock_rounds.get((a["id"], book["round"]))
    if last is None or not last["final"] or book["at"] != e.seq - 1:
        raise ReplayError(f"auction {a['id']} closed, but not right after its final round")
    want = {"auction": a["id"], "rounds": book["round"], "bids": len(book["bids"])}
    if d != want:
        raise ReplayError(f"auction {a['id']}: the close says {d!r}; the ledger gives {want!r}")


def _reveal_clock_bids(s: AuctionState, a: dict[str, Any], listed: Any) -> None:
    """Open every round bid, then re-run the rounds: each bid against the activity rule, each
    round's published aggregate, active bidders and finality."""
    auction_id, book = a["id"], s.clock[a["id"]]
    if [item["bid"] for item in listed] != sorted(book["bids"]):
        raise ReplayError(f"auction {auction_id}: the reveal does not open every round bid")
    for item in listed:
        bid = s.clock_bids[item["bid"]]
        salt = bytes.fromhex(_hex64(item["salt"], "salt"))
        lots, exit_price = item["lots"], item["exit_price"]
        if type(lots) is not int or (exit_price is not None and type(exit_price) is not int):
            raise ReplayError(f"clock bid {item['bid']}: lots and exit price are integers")
        opened = clock.commitment(
            s.origin, auction_id, bid["round"], bid["paddle"], lots, exit_price, salt
        )
        if opened != bid["commitment"]:
            raise ReplayError(f"clock bid {item['bid']}: the reveal does not open its commitment")
        bid.update(lots=lots, exit_price=exit_price)
    rules = clock.rules_of(a)
    demand: dict[str, int] = {}  # paddle -> lots in the round before
    for number in range(1, book["round"] + 1):
        rnd = s.clock_rounds[(auction_id, number)]
        before = s.clock_rounds.get((auction_id, number - 1))
        bids = [s.clock_bids[b] for b in book["bids"] if s.clock_bids[b]["round"] == number]
        for bid in bids:
            refusal = rules.refusal(
                round_no=number,
                price=rnd["price"],
                previous_price=before["price"] if before else None,
                previous_lots=demand.get(bid["paddle"], 0) if number > 1 else None,
                lots=bid["lots"],
                exit_price=bid["exit_price"],
            )
            if refusal is not None:
                raise ReplayError(
                    f"auction {auction_id}: round {number}: paddle {bid['paddle'][:8]}'s bid "
                    f"breaks a rule: {refusal}"
                )
        published = (rnd["aggregate"], rnd["active"])
        recomputed = (sum(b["lots"] for b in bids), sum(1 for b in bids if b["lots"]))
        if published != recomputed:
            raise ReplayError(
                f"auction {auction_id}: round {number} published aggregate and active "
                f"{published}, its bids give {recomputed}"
            )
        demand = {b["paddle"]: b["lots"] for b in bids}


def _clock_clear(s: AuctionState, a: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
    """The clock allocation recomputed from the opened round bids."""
    if d.get("sealing") != "operator_rounds" or "private_key" in d or "opened_with" in d:
        raise ReplayError(f"auction {a['id']}: a clock auction's clearing opens no key")
    book = s.clock[a["id"]]
    last = book["round"]
    named = {k: tuple(v) for k, v in book.get("named", {}).items()}
    rounds = [
        {"round": n, "price": v["price"], "aggregate": v["aggregate"], "active": v["active"]}
        for (auction, n), v in sorted(s.clock_rounds.items())
        if auction == a["id"]
    ]

    def lots_in(number: int) -> dict[str, tuple[int, int | None]]:
        return {
            s.clock_bids[b]["paddle"]: (s.clock_bids[b]["lots"], s.clock_bids[b]["exit_price"])
            for b in book["bids"]
            if s.clock_bids[b]["round"] == number
        }

    final_bids, before = lots_in(last), lots_in(last - 1)
    final = []
    for paddle, (bidder, account) in sorted(named.items(), key=lambda kv: kv[1][0]):
        lots, exit_price = final_bids.get(paddle, (0, None))
        previous = lots if last == 1 else before.get(paddle, (0, None))[0]
        if previous == 0 and lots == 0:
            continue
        final.append(
            clock.Demand(
                bidder=bidder,
                account=account,
                previous=previous,
                lots=lots,
                exit_price=exit_price,
            )
        )
    record = {k: v for k, v in a.items() if k in _RULE_KEYS}
    return clock.build_result(
        record=record, rounds=rounds, final=final, seed=bytes.fromhex(a["seed"])
    )


def _at(history: list[list[Any]], seq: int) -> Any:
    """The value a history ([seq, value], ascending) held just before entry ``seq``."""
    value = None
    for at, v in history:
        if at >= seq:
            break
        value = v
    return value


def _auction_reveal(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    """The bidders behind the pseudonyms: every hidden bid and deposit of the auction, each
    commitment opened, and what could not be checked at the bid checked now."""
    a = s._auction(d["auction"], "closing")
    auction_id, origin = a["id"], s.origin
    if auction_id in s.revealed:
        raise ReplayError(f"auction {auction_id} was already revealed")
    if ("paddles" in d) != (a["format"] in (english.FORMAT, clock.FORMAT)):
        raise ReplayError(f"auction {auction_id}: paddles are revealed for ascending auctions only")
    # The applicants, and the withdrawals and deposits gone out that waited for the reveal.
    onboarding.reveal(s, a, d, r)
    # Deposits first: the bids' checks need each bidder's deposit.
    hidden_deposits = sorted(b for (x, b) in s.deposits if x == auction_id and isinstance(b, str))
    opened: dict[str, int] = {}
    for item in d["deposits"]:
        bidder, salt = item["bidder"], bytes.fromhex(_hex64(item["salt"], "salt"))
        r._need(r.organizations, bidder, "organization")
        key = parties.depositor(origin, auction_id, bidder, salt)
        if key not in hidden_deposits or key in opened or (auction_id, bidder) in s.deposits:
            raise ReplayError(
                f"auction {auction_id}: the reveal names bidder {bidder} for no deposit of its own"
            )
        opened[key] = bidder
    if sorted(opened) != hidden_deposits:
        raise ReplayError(f"auction {auction_id}: the reveal leaves deposits unnamed")
    for key, bidder in opened.items():
        s.deposits[(auction_id, bidder)] = s.deposits.pop((auction_id, key))
        s.deposit_totals[(auction_id, bidder)] = s.deposit_totals.pop((auction_id, key))
    # In id order, as the reveal lists them (concurrent bids' entries need not be in id order).
    hidden_bids = sorted(b for b in s.books.get(auction_id, []) if b in s.bid_parties)
    if [item["bid"] for item in d["bids"]] != hidden_bids:
        raise ReplayError(
            f"auction {auction_id}: the reveal names bids {[i['bid'] for i in d['bids']]}, "
            f"the bids under pseudonyms are {hidden_bids}"
        )
    for item in d["bids"]:
        bid_id, bidder, account = item["bid"], item["bidder"], item["account"]
        salt = bytes.fromhex(_hex64(item["salt"], "salt"))
        hidden = s.bid_parties.pop(bid_id)
        if (
            type(bidder) is not int
            or parties.party(origin, auction_id, bid_id, bidder, salt) != hidden["party"]
        ):
            raise ReplayError(f"bid {bid_id}: the reveal does not open its party")
        last = [v for v in hidden["versions"] if v[2] is not None][-1]
        if (
            parties.account_commitment(origin, auction_id, bid_id, last[1], account, salt)
            != last[2]
        ):
            raise ReplayError(f"bid {bid_id}: the reveal does not open its account commitment")
        acc = r._need(r.accounts, account, "account")
        if acc["organization"] != bidder or acc["kind"] != "holding":
            raise ReplayError(f"bid {bid_id}: awards go to a holding account of the bidder")
        if bidder == a["seller"]:
            raise ReplayError(f"bid {bid_id}: a seller bid in its own auction")
        for seq, version, _ in hidden["versions"]:
            if not onboarding.admitted(
                s.onboarding.state_at(auction_id, bidder, seq),
                _at(s.bidder_history.get(bidder, []), seq),
            ):
                raise ReplayError(
                    f"bid {bid_id} version {version}: organization {bidder} was not an approved "
                    f"bidder at entry {seq}"
                )
            held = _at(s.deposit_totals.get((auction_id, bidder), []), seq) or 0
            if held < a["deposit_required"]:
                raise ReplayError(
                    f"bid {bid_id} version {version}: bidder {bidder} bid without the required "
                    "deposit"
                )
        s.bids[bid_id].update(bidder=bidder, account=account)
    if a["format"] == english.FORMAT:
        named = _reveal_paddles(s, a, d["paddles"], r, s.english[auction_id])
        for bid_id in s.english[auction_id]["bids"]:
            bid = s.raises[bid_id]
            bid["bidder"], bid["account"] = named[bid["paddle"]]
    elif a["format"] == clock.FORMAT:
        named = _reveal_paddles(s, a, d["paddles"], r, s.clock[auction_id])
        s.clock[auction_id]["named"] = {k: list(v) for k, v in named.items()}
        _reveal_clock_bids(s, a, d["clock_bids"])
    elif "clock_bids" in d:
        raise ReplayError(f"auction {auction_id}: round bids are revealed for clock auctions only")
    s.revealed.add(auction_id)


def _counted(s: AuctionState, auction_id: int) -> list[int]:
    return sorted(b for b in s.books.get(auction_id, []) if s.bids[b]["status"] == "sealed")


def _auction_close(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    a = s._auction(d["auction"], "open")
    if a["format"] == english.FORMAT:
        _english_close(a, d, e, s)
        a.update(state="closing", book_size=d["bids"], seed=h.hex())
        return
    if a["format"] == clock.FORMAT:
        _clock_close(s, a, d, e)
        a.update(state="closing", book_size=d["bids"], seed=h.hex())
        return
    if e.time < a["closes_at"]:
        raise ReplayError(f"auction {a['id']} closed before its closing time")
    counted = _counted(s, a["id"])
    size, root = results.book_root(bytes.fromhex(s.bids[b]["commitment"]) for b in counted)
    if (size, root.hex()) != (d["bids"], d["book_root"]):
        raise ReplayError(
            f"auction {a['id']}: the close commits to {d['bids']} bids with root {d['book_root']}, "
            f"the ledger's counted bids are {size} with root {root.hex()}"
        )
    a.update(state="closing", book_size=size, book_root=root.hex(), seed=h.hex())


def _first_difference(want: Any, got: Any, path: str = "result") -> str:
    if type(want) is not type(got):
        return f"{path}: recomputed {want!r}, published {got!r}"
    if isinstance(want, dict):
        for k in sorted(set(want) | set(got)):
            if want.get(k) != got.get(k):
                return _first_difference(want.get(k), got.get(k), f"{path}.{k}")
    if isinstance(want, list):
        if len(want) != len(got):
            return f"{path}: recomputed {len(want)} items, published {len(got)}"
        for i, (x, y) in enumerate(zip(want, got, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path}: recomputed {want!r}, published {got!r}"


def _auction_clear(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    a = s._auction(d["auction"], "closing")
    if any(b in s.bid_parties for b in s.books.get(a["id"], [])) or (
        a["format"] == english.FORMAT and s.english[a["id"]]["paddles"]
    ):
        raise ReplayError(f"auction {a['id']} was cleared before its bidders were revealed")
    if a["format"] in (english.FORMAT, clock.FORMAT):
        want = _english_clear(s, a, d) if a["format"] == english.FORMAT else _clock_clear(s, a, d)
        _check_result(a, want, d)
        _cleared(s, a, want)
        return
    private: X25519PrivateKey | None = None
    released: dict[int, X25519PrivateKey] = {}
    if d.get("sealing", "operator_key") != a["sealing"]:
        raise ReplayError(f"auction {a['id']} is sealed by {a['sealing']}, not {d.get('sealing')}")
    if a["sealing"] == "trustees":
        released = _opening_keys(s, a)
        if len(released) < a["threshold"] or "private_key" in d:
            raise ReplayError(
                f"auction {a['id']} was cleared with {len(released)} trustee keys released; its "
                f"rules need {a['threshold']}"
            )
        if d["opened_with"] != sorted(released):
            raise ReplayError(
                f"auction {a['id']}: opened with trustees {d['opened_with']!r}; the first "
                f"{a['threshold']} released are {sorted(released)!r}"
            )
    else:
        raw = _b64(d["private_key"], "private_key")
        try:
            private = X25519PrivateKey.from_private_bytes(raw)
        except ValueError:
            raise ReplayError("the published private key is not an X25519 key") from None
        if base64.b64encode(sealing.public_key_of(raw)).decode() != a["public_key"]:
            raise ReplayError(f"auction {a['id']}: the published private key is not the auction's")
    record = {k: v for k, v in a.items() if k in _RULE_KEYS}
    opener = sealing.Opener(
        private_key=private,
        released=released if private is None else None,
        trustees=len(a["trustees"]),
    )
    counted = [(i, s.bids[i]) for i in _counted(s, a["id"])]
    held = {}
    for _, bid in counted:
        deposit = s.deposits.get((a["id"], bid["bidder"]))
        if deposit and deposit["state"] == "held":
            held[bid["bidder"]] = deposit["amount"]
    book = results.assemble_book(
        (results.Counted(i, b["bidder"], b["account"], b["commitment"]) for i, b in counted),
        deposits=held,
        opening=lambda c: opener.for_book(
            s.ciphertexts[c.bid], origin=s.origin, auction=a["id"], bidder=c.bidder
        ),
    )
    want = results.build_result(
        record=record, book=book, seed=bytes.fromhex(a["seed"]), root=bytes.fromhex(a["book_root"])
    )
    _check_result(a, want, d)
    for row in want["bids"]:
        bid = s.bids[row["bid"]]
        bid.update(
            status="valid" if row["status"] == "valid" else "rejected",
            reason=row["reason"] or "",
            awarded_lots=row["awarded_lots"],
        )
        s.ciphertexts.pop(row["bid"], None)
    a["private_key"] = d.get("private_key")
    _cleared(s, a, want)


def _check_result(a: dict[str, Any], want: dict[str, Any], d: dict[str, Any]) -> None:
    if want != d["result"]:
        raise ReplayError(
            f"auction {a['id']}: the published result differs from the recomputation: "
            + _first_difference(want, d["result"])
        )
    if results.result_sha256(d["result"]) != d["result_sha256"]:
        raise ReplayError(f"auction {a['id']}: result_sha256 is not the result's hash")
    a.update(
        state="cleared",
        result_sha256=d["result_sha256"],
        clearing_price=want["outcome"]["clearing_price"],
    )


def _cleared(s: AuctionState, a: dict[str, Any], want: dict[str, Any]) -> None:
    s.cleared[a["id"]] = {
        "status": want["outcome"]["status"],
        "awards": [
            [w["bidder"], w["awarded_lots"], w["amount"], w["account"]]
            for w in want["bidders"]
            if w["awarded_lots"]
        ],
    }


# The rules an auction.create entry records besides its id and its version "v" (the ascending
# formats add their own: english.RULE_KEYS, clock.RULE_KEYS). The server's records.auction_rules
# writes exactly these, and its admin shows them.
RULE_KEYS = (
    "title",
    "seller",
    "account",
    "batch",
    "format",
    "quantity",
    "lot_kg",
    "currency",
    "tick",
    "reserve",
    "cap_bp",
    "deposit_required",
    "bid_guarantee",
    "tie_rule",
    "undersubscribed",
    "opens_at",
    "closes_at",
    *SEALING_RULES,
)
_RULE_KEYS = frozenset({"id", "v", *RULE_KEYS, *english.RULE_KEYS, *clock.RULE_KEYS})


def _auction_settle(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    a = s._auction(d["auction"], "cleared")
    cleared = s.cleared[a["id"]]
    if cleared["status"] != "cleared":
        raise ReplayError(f"auction {a['id']} was cancelled by its rules, not settled")
    want = [
        [bidder, lots * a["lot_kg"], amount, account]
        for bidder, lots, amount, account in cleared["awards"]
    ]
    got = [[w["bidder"], w["quantity"], w["amount_due"], w["account"]] for w in d["awards"]]
    if want != got:
        raise ReplayError(f"auction {a['id']}: settlement awards differ from the result")
    sold = sum(w[1] for w in want)
    if d["unsold"] != a["quantity"] - sold:
        raise ReplayError(f"auction {a['id']}: unsold should be {a['quantity'] - sold} kg")
    if d["unsold"]:
        s.escrow.take(e.seq, "escrow.release", a["hold"], d["unsold"])
    if registry_remaining(r, a["hold"]) != sold:
        raise ReplayError(
            f"auction {a['id']}: escrow holds {registry_remaining(r, a['hold'])} kg, awards {sold}"
        )
    s._release_deposits(a["id"], d["deposits_released"], exclude={w[0] for w in want})
    for w in d["awards"]:
        if type(w["award"]) is not int or w["award"] in s.awards:
            raise ReplayError(f"award id {w['award']!r} is not new")
        lots = w["quantity"] // a["lot_kg"]
        s.awards[w["award"]] = {
            "auction": a["id"],
            "bidder": w["bidder"],
            "account": w["account"],
            "lots": lots,
            "quantity": w["quantity"],
            "amount_due": w["amount_due"],
            "state": "pending",
        }
    a["state"] = "settled"


def registry_remaining(r: RegistryState, hold: int) -> int:
    remaining: int = r.holds[hold]["remaining"]
    return remaining


def _award_resolve(
    s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes
) -> None:
    a = s._auction(d["auction"], "settled")
    w = s.awards.get(d["award"])
    if w is None or w["auction"] != a["id"]:
        raise ReplayError(f"unknown award {d['award']!r}")
    if w["state"] != "pending":
        raise ReplayError(f"award {d['award']} is already {w['state']}")
    deliver = e.type == "award.deliver"
    if deliver:
        s.escrow.take(e.seq, "escrow.deliver", a["hold"], w["quantity"], to=w["account"])
    else:
        s.escrow.take(e.seq, "escrow.release", a["hold"], w["quantity"])
    deposit = s.deposits.get((a["id"], w["bidder"]))
    amount = deposit["amount"] if deposit and deposit["state"] == "held" else 0
    if d["deposit_applied" if deliver else "deposit_forfeited"] != amount:
        raise ReplayError(f"award {d['award']}: the deposit outcome should be {amount}")
    if deposit and amount:
        deposit["state"] = "applied" if deliver else "forfeited"
    w["state"] = "delivered" if deliver else "defaulted"


def _auction_end(s: AuctionState, d: dict[str, Any], e: Entry, r: RegistryState, h: bytes) -> None:
    if e.type == "auction.fail":
        a = s._auction(d["auction"], "closing")
    else:
        a = s._auction(d["auction"], "draft", "scheduled", "open", "cleared")
        if a["state"] == "cleared" and s.cleared[a["id"]]["status"] != "cancelled":
            raise ReplayError(f"auction {a['id']} cleared; it can no longer be cancelled")
    s._release_remaining(a, e.seq, r)
    s._release_deposits(a["id"], d["deposits_released"], exclude=set())
    a["state"] = "failed" if e.type == "auction.fail" else "cancelled"


_HANDLERS: dict[str, Any] = {
    "bidder.status": _bidder_status,
    "auction.create": _auction_create,
    "auction.schedule": _auction_schedule,
    "auction.open": _auction_open,
    "deposit.record": _deposit_record,
    "bid.submit": _bid,
    "bid.amend": _bid,
    "bid.withdraw": _bid,
    "auction.close": _auction_close,
    "auction.clear": _auction_clear,
    "auction.settle": _auction_settle,
    "award.deliver": _award_resolve,
    "award.default": _award_resolve,
    "auction.cancel": _auction_end,
    "auction.fail": _auction_end,
    "trustee.keys": _trustee_keys,
    "auction.key_release": _key_release,
    "auction.reveal": _auction_reveal,
    "bid.raise": _raise,
    "clock.round_open": _round_open,
    "clock.bid": _clock_bid,
    "clock.round_close": _round_close,
    **{t: onboarding.application_entry for t in onboarding.APPLICATION_ENTRY_TYPES},
    **{t: onboarding.deposit_out for t in onboarding.DEPOSIT_ENTRY_TYPES},
}
assert set(_HANDLERS) == AUCTION_ENTRY_TYPES
