"""Escrow holds an app manages: an auction's lot (``auction:<id>``), a listing's lots
(``listing:<id>``).

Only the app moves a hold referenced with its prefix: each ``escrow.*`` entry that makes or
moves one is accounted for by the app's entry right after it (the services append both in one
transaction, which holds the ledger head, so they are adjacent). ``ManagedEscrow`` notes such a
movement, lets the app's replay consume it, and names any movement left over as made outside
the app. The registry's replay applies the credit effects; this only checks who made them.
No Django import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .entry import Entry
from .replay import ReplayError

ESCROW_ENTRY_TYPES = frozenset({"escrow.hold", "escrow.release", "escrow.deliver"})


@dataclass
class Movement:
    """What an escrow entry did to a managed hold, waiting for the app's entry after it."""

    seq: int
    type: str
    hold: int
    quantity: int
    to: int | None = None


@dataclass
class ManagedEscrow:
    """The holds of one app, and the movement of one of them waiting to be accounted for.

    ``prefix`` is the references' (``"auction:"``), ``noun`` names the app in messages
    (``"auction"``), and ``unassigned`` names the owner of a hold made under the prefix but
    not yet assigned to one (each app's messages have always said it their own way)."""

    prefix: str
    noun: str
    unassigned: str = "(new)"
    holds: dict[int, int] = field(default_factory=dict)  # escrow hold -> the auction or listing
    pending: Movement | None = None

    def note(self, entry: Entry) -> None:
        """Note the movement of an ``escrow.*`` entry if it makes or moves a managed hold."""
        d = entry.data
        if entry.type == "escrow.hold":
            ref = d["hold"]["reference"]
            if type(ref) is str and ref.startswith(self.prefix):
                self._set_pending(
                    Movement(entry.seq, entry.type, d["hold"]["id"], d["hold"]["quantity"])
                )
            return
        if d["hold"] in self.holds:
            self._set_pending(
                Movement(entry.seq, entry.type, d["hold"], d["quantity"], d.get("to"))
            )

    def _set_pending(self, movement: Movement) -> None:
        if self.pending is not None:
            raise ReplayError(
                f"entry {self.pending.seq} moved {self.noun} escrow outside the {self.noun}"
            )
        self.pending = movement

    def take(self, seq: int, type: str, hold: int, quantity: int, to: int | None = None) -> None:
        """Consume the movement the entry right before entry ``seq`` made."""
        m = self.pending
        if m is None or m.seq != seq - 1 or m.type != type or m.hold != hold:
            raise ReplayError(f"expected the entry before to be {type} of escrow hold {hold}")
        if m.quantity != quantity or m.to != to:
            raise ReplayError(
                f"{type} of escrow hold {hold} moved {m.quantity} kg"
                + (f" to {m.to}" if m.to is not None else "")
                + f"; the {self.noun} accounts for {quantity} kg"
                + (f" to {to}" if to is not None else "")
            )
        self.pending = None

    def check_after(self, seq: int) -> None:
        """After the app applied entry ``seq``: no earlier entry's movement may be left."""
        if self.pending is not None and self.pending.seq < seq:
            raise self._moved_outside(self.pending)

    def finish(self) -> None:
        """At the end of the replay: no movement may be left."""
        if self.pending is not None:
            raise self._moved_outside(self.pending)

    def check_saveable(self) -> None:
        """A snapshot holds no movement: it is taken between entries, never inside a pair."""
        if self.pending is not None:
            raise ReplayError("cannot save a state with an escrow movement pending")

    def _moved_outside(self, m: Movement) -> ReplayError:
        owner = self.holds.get(m.hold, self.unassigned)
        return ReplayError(
            f"entry {m.seq} moved {self.noun} {owner}'s escrowed credits outside the {self.noun}"
        )
