"""Replay: the registry's state rebuilt from ledger entries alone.

This is the auditor's model of the registry. It knows nothing of Django or the database; it
applies each entry's recorded effect and refuses any that would break an invariant (a balance
below zero, credits created or destroyed outside issuance, retirement and cancellation). The
verifier compares what it builds with the live tables, row by row.

State that is bounded by the number of things (organizations, accounts, projects, batches,
holdings, escrow holds) is kept in memory. Records that grow with every entry (retirements,
cancellations, reversals, projects' documents) are not kept: ``apply`` returns them, and the
verifier matches them against the database as it streams.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from .entry import Entry
from .origin import ORIGIN_RULE, OriginError, origin_key, tx_key


class ReplayError(ValueError):
    """An entry whose effect cannot be applied to the state before it."""


Record = tuple[str, dict[str, Any]]  # (table, fields), e.g. ("retirement", {...})


@dataclass
class RegistryState:
    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[int, dict[str, Any]] = field(default_factory=dict)
    methodologies: dict[int, dict[str, Any]] = field(default_factory=dict)
    projects: dict[int, dict[str, Any]] = field(default_factory=dict)
    batches: dict[int, dict[str, Any]] = field(default_factory=dict)
    # (account, batch) -> [tradable, escrowed]
    holdings: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    holds: dict[int, dict[str, Any]] = field(default_factory=dict)
    # ("project" | "batch", origin registry, key) of every keyed origin: derived from projects
    # and batches when first needed, so not part of the snapshot.
    _origin_keys: set[tuple[str, str, str]] | None = field(default=None, repr=False, compare=False)

    # ---- applying entries -----------------------------------------------------------------

    def apply(self, entry: Entry) -> list[Record]:
        handler = _HANDLERS.get(entry.type)
        if handler is None:
            raise ReplayError(f"unknown entry type {entry.type!r}")
        try:
            return handler(self, entry.data, entry) or []
        except (KeyError, TypeError) as exc:
            raise ReplayError(f"malformed {entry.type} data: {exc!r}") from None

    def _new(self, table: dict[int, Any], obj: dict[str, Any], what: str) -> None:
        key = obj["id"]
        if not isinstance(key, int) or key in table:
            raise ReplayError(f"{what} id {key!r} is not new")
        table[key] = {k: v for k, v in obj.items() if k != "id"}

    def _need(self, table: dict[int, Any], key: Any, what: str) -> dict[str, Any]:
        try:
            found: dict[str, Any] = table[key]
        except (KeyError, TypeError):
            raise ReplayError(f"unknown {what} {key!r}") from None
        return found

    def _amount(self, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ReplayError(f"amount must be a positive integer, got {value!r}")
        return value

    def _holding(self, account: int, batch: int) -> list[int]:
        self._need(self.accounts, account, "account")
        self._need(self.batches, batch, "batch")
        return self.holdings.setdefault((account, batch), [0, 0])

    def _debit(self, account: int, batch: int, qty: int, bucket: int = 0) -> None:
        holding = self._holding(account, batch)
        if holding[bucket] < qty:
            kind = "tradable" if bucket == 0 else "escrowed"
            raise ReplayError(
                f"account {account} has {holding[bucket]} kg {kind} of batch {batch}, "
                f"entry moves {qty}"
            )
        holding[bucket] -= qty

    def _credit(self, account: int, batch: int, qty: int, bucket: int = 0) -> None:
        self._holding(account, batch)[bucket] += qty

    def transfer(self, batch: int, src: int, dst: int, qty: int) -> bool:
        """Apply a valid transfer between existing holdings and return True; return False
        (changing nothing) for anything else, which ``apply`` then handles and explains."""
        held = self.holdings.get((src, batch))
        to = self.holdings.get((dst, batch))
        if held is None or to is None or src == dst or qty <= 0 or held[0] < qty:
            return False
        held[0] -= qty
        to[0] += qty
        return True

    def transfers(self, moves: Sequence[int], start: int, stop: int) -> int:
        """``transfer`` for moves ``start`` to ``stop - 1`` of a flat sequence of (batch, from,
        to, quantity), in order, in one call: applies them while ``transfer`` would, and returns
        how many it applied. The first one it stops at is left for ``apply`` to handle or
        explain, as for ``transfer``."""
        get = self.holdings.get
        flat = islice(moves, 4 * start, 4 * stop)
        applied = 0
        for batch, src, dst, qty in zip(
            flat, flat, flat, flat, strict=False
        ):  # a sliced flat sequence
            held = get((src, batch))
            to = get((dst, batch))
            # Exactly the checks of ``transfer``.
            if held is None or to is None or src == dst or qty <= 0 or held[0] < qty:
                break
            held[0] -= qty
            to[0] += qty
            applied += 1
        return applied

    # ---- invariants -----------------------------------------------------------------------

    def supply_violations(self) -> list[str]:
        """Per batch: issued = tradable + escrowed + retired + cancelled, nothing negative."""
        held: dict[int, int] = {}
        problems = []
        for (account, batch), (tradable, escrowed) in self.holdings.items():
            if tradable < 0 or escrowed < 0:
                problems.append(f"holding {account}/{batch} is negative")
            held[batch] = held.get(batch, 0) + tradable + escrowed
        for batch_id, b in self.batches.items():
            total = held.get(batch_id, 0) + b["retired"] + b["cancelled"]
            if total != b["issued"]:
                problems.append(
                    f"batch {batch_id}: issued {b['issued']} != held + retired + cancelled {total}"
                )
        return problems

    # ---- snapshot (for incremental verification) ------------------------------------------

    def to_json(self) -> dict[str, Any]:
        def table(t: dict[int, Any]) -> list[Any]:
            return [[k, v] for k, v in sorted(t.items())]

        return {
            "organizations": table(self.organizations),
            "accounts": table(self.accounts),
            "methodologies": table(self.methodologies),
            "projects": table(self.projects),
            "batches": table(self.batches),
            "holds": table(self.holds),
            "holdings": [[a, b, t, e] for (a, b), (t, e) in sorted(self.holdings.items())],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RegistryState:
        state = cls()
        for name in ("organizations", "accounts", "methodologies", "projects", "batches", "holds"):
            setattr(state, name, {k: v for k, v in obj[name]})
        state.holdings = {(a, b): [t, e] for a, b, t, e in obj["holdings"]}
        return state


# ---- one handler per entry type ---------------------------------------------------------------


def _name_zh_check(obj: dict[str, Any], what: str) -> dict[str, Any]:
    """``name_zh`` (docs/ledger-format.md) is optional and, when present, non-empty text:
    the registry writes none rather than an empty one."""
    if "name_zh" in obj and (not isinstance(obj["name_zh"], str) or not obj["name_zh"]):
        raise ReplayError(f"{what} {obj.get('id')!r}: name_zh {obj['name_zh']!r} is not a name")
    return obj


def _org_register(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    s._new(s.organizations, _name_zh_check(d["organization"], "organization"), "organization")


def _account_open(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    acc = d["account"]
    s._need(s.organizations, acc["organization"], "organization")
    s._new(s.accounts, acc, "account")


def _methodology_register(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    s._new(s.methodologies, _name_zh_check(d["methodology"], "methodology"), "methodology")


def _origin_index(s: RegistryState) -> set[tuple[str, str, str]]:
    if s._origin_keys is None:
        s._origin_keys = {
            ("project", p["origin_registry"], p["origin_key"])
            for p in s.projects.values()
            if p.get("origin_key") is not None
        } | {
            ("batch", b["origin_registry"], b["origin_tx_key"])
            for b in s.batches.values()
            if b.get("origin_tx_key") is not None
        }
    return s._origin_keys


def _origin_check(
    s: RegistryState, kind: str, obj: dict[str, Any], id_field: str, key_field: str
) -> tuple[str, str, str] | None:
    """Origin rule 1 (docs/ledger-format.md): the recorded key is the rule's key of the id as
    given, and no other project (batch) has it at the same registry of origin. Entries from
    before the rule (``origin_rule`` 0, written without the two members) record no key."""
    rule, key, given = obj["origin_rule"], obj[key_field], obj[id_field]
    if type(rule) is not int:
        raise ReplayError(f"{kind} {obj['id']!r}: origin rule {rule!r} is not an integer")
    if rule == 0:
        if key is not None:
            raise ReplayError(f"{kind} {obj['id']!r}: an origin key without an origin rule")
        return None
    if rule != ORIGIN_RULE:
        raise ReplayError(f"{kind} {obj['id']!r}: unknown origin rule {rule!r}")
    if given is None:
        want = None
    else:
        try:
            want = (origin_key if kind == "project" else _tx_key)(obj["origin_registry"], given)
        except OriginError as exc:
            raise ReplayError(f"{kind} {obj['id']!r}: origin id {given!r}: {exc.message}") from None
    if key != want:
        raise ReplayError(f"{kind} {obj['id']!r}: origin key {key!r}, rule 1 gives {want!r}")
    if key is None:
        return None
    slot = (kind, obj["origin_registry"], key)
    if slot in _origin_index(s):
        raise ReplayError(
            f"{kind} {obj['id']!r}: {obj['origin_registry']} {key!r} is already registered"
        )
    return slot


def _tx_key(registry: str, origin_tx_id: str) -> str:
    return tx_key(origin_tx_id)


def _project_register(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    # Entries from before origin rule 1 carry neither member: the table holds rule 0, no key.
    p = {"origin_key": None, "origin_rule": 0, **_name_zh_check(d["project"], "project")}
    s._need(s.methodologies, p["methodology"], "methodology")
    s._need(s.organizations, p["developer"], "organization")
    s._need(s.organizations, p["registry"], "organization")
    slot = _origin_check(s, "project", p, "origin_id", "origin_key")
    s._new(s.projects, p, "project")
    if slot is not None:
        _origin_index(s).add(slot)


def _project_update(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    project = s._need(s.projects, d["project"], "project")
    for key, value in d["changes"].items():
        if key == "name_zh":  # optional: a project registered without one may be given one
            if not isinstance(value, str):
                raise ReplayError(f"project name_zh {value!r} is not text")
            _set_name_zh(project, value)
            continue
        if key not in project or key in {"registry", "origin_registry", "origin_id", "code"}:
            raise ReplayError(f"project field {key!r} cannot be changed")
        project[key] = value


def _set_name_zh(row: dict[str, Any], value: str) -> None:
    """A Chinese name is in a row (as in an entry's record) only when there is one: "" takes
    it away, so the row is what the registry's record of the table gives."""
    if value:
        row["name_zh"] = value
    else:
        row.pop("name_zh", None)


def _batch_issue(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    # As for projects: no origin members means an entry from before origin rule 1.
    b = {"origin_tx_key": None, "origin_rule": 0, **d["batch"]}
    s._need(s.projects, b["project"], "project")
    issued, withheld = s._amount(b["issued"]), b["buffer_withheld"]
    if not isinstance(withheld, int) or not 0 <= withheld <= issued:
        raise ReplayError("buffer_withheld must be between 0 and issued")
    slot = _origin_check(s, "batch", b, "origin_tx_id", "origin_tx_key")
    b.update(retired=0, cancelled=0)
    s._new(s.batches, b, "batch")
    if slot is not None:
        _origin_index(s).add(slot)
    if issued - withheld:
        s._credit(d["holder"], b["id"], issued - withheld)
    if withheld:
        s._credit(d["buffer_account"], b["id"], withheld)


def _credit_transfer(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    qty, src, dst, batch = d["quantity"], d["from"], d["to"], d["batch"]
    if src == dst:
        raise ReplayError("transfer to the same account")
    # The common case (a holding only exists once its account and batch were checked).
    if type(qty) is int and s.transfer(batch, src, dst, qty):
        return
    qty = s._amount(qty)
    s._debit(src, batch, qty)
    s._credit(dst, batch, qty)


def _escrow_hold(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    h = d["hold"]
    qty = s._amount(h["quantity"])
    s._debit(h["account"], h["batch"], qty)
    s._credit(h["account"], h["batch"], qty, bucket=1)
    s._new(s.holds, {**h, "remaining": qty}, "escrow hold")


def _hold_take(s: RegistryState, d: dict[str, Any]) -> tuple[dict[str, Any], int]:
    hold = s._need(s.holds, d["hold"], "escrow hold")
    qty = s._amount(d["quantity"])
    if qty > hold["remaining"]:
        raise ReplayError(f"escrow hold {d['hold']} has {hold['remaining']} kg, entry takes {qty}")
    hold["remaining"] -= qty
    s._debit(hold["account"], hold["batch"], qty, bucket=1)
    return hold, qty


def _escrow_release(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    hold, qty = _hold_take(s, d)
    s._credit(hold["account"], hold["batch"], qty)


def _escrow_deliver(s: RegistryState, d: dict[str, Any], e: Entry) -> None:
    hold, qty = _hold_take(s, d)
    s._credit(d["to"], hold["batch"], qty)


def _credit_retire(s: RegistryState, d: dict[str, Any], e: Entry) -> list[Record]:
    r = d["retirement"]
    qty = s._amount(r["quantity"])
    s._debit(r["account"], r["batch"], qty)
    s.batches[r["batch"]]["retired"] += qty
    return [("retirement", r)]


def _credit_cancel(s: RegistryState, d: dict[str, Any], e: Entry) -> list[Record]:
    c = d["cancellation"]
    qty = s._amount(c["quantity"])
    s._debit(c["account"], c["batch"], qty)
    s.batches[c["batch"]]["cancelled"] += qty
    return [("cancellation", c)]


def _reversal_record(s: RegistryState, d: dict[str, Any], e: Entry) -> list[Record]:
    r = d["reversal"]
    s._need(s.projects, r["project"], "project")
    total = 0
    records: list[Record] = [("reversal", r)]
    for c in d["cancellations"]:
        qty = s._amount(c["quantity"])
        if s.accounts[c["account"]]["kind"] != "buffer":
            raise ReplayError("a reversal cancels buffer-pool credits only")
        s._debit(c["account"], c["batch"], qty)
        s.batches[c["batch"]]["cancelled"] += qty
        total += qty
        records.append(("cancellation", c))
    if total != r["quantity"]:
        raise ReplayError(f"reversal of {r['quantity']} kg cancels {total} kg of buffer credits")
    return records


# A project's documents (``document.attach``): the closed lists the registry accepts. A file's
# type is what its first bytes say it is (ledger/documents.py sniffs them), never only what
# its uploader claimed.
DOCUMENT_KINDS = frozenset(
    ("monitoring_report", "verification_report", "validation_report", "other")
)
DOCUMENT_MEDIA_TYPES = frozenset(("application/pdf", "text/plain", "image/png", "image/jpeg"))
DOCUMENT_MAX_BYTES = 20 * 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def _document_attach(s: RegistryState, d: dict[str, Any], e: Entry) -> list[Record]:
    doc = d["document"]
    s._need(s.projects, doc["project"], "project")
    where = f"document {doc['id']!r}"
    if type(doc["id"]) is not int or doc["id"] <= 0:
        raise ReplayError(f"{where}: its id is not a positive integer")
    if doc["kind"] not in DOCUMENT_KINDS:
        raise ReplayError(f"{where}: unknown kind {doc['kind']!r}")
    if doc["media_type"] not in DOCUMENT_MEDIA_TYPES:
        raise ReplayError(f"{where}: media type {doc['media_type']!r} is not accepted")
    size = doc["size"]
    if type(size) is not int or not 0 < size <= DOCUMENT_MAX_BYTES:
        raise ReplayError(f"{where}: size {size!r} is not 1 to {DOCUMENT_MAX_BYTES} bytes")
    digest = doc["sha256"]
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
        raise ReplayError(f"{where}: sha256 {digest!r} is not 64 lowercase hex digits")
    if not isinstance(doc["title"], str) or not doc["title"].strip():
        raise ReplayError(f"{where}: no title")
    # The row also keeps when it was attached: the entry's time.
    return [("document", {**doc, "attached_at": e.time})]


_HANDLERS: dict[str, Callable[[RegistryState, dict[str, Any], Entry], list[Record] | None]] = {
    "org.register": _org_register,
    "account.open": _account_open,
    "methodology.register": _methodology_register,
    "project.register": _project_register,
    "project.update": _project_update,
    "batch.issue": _batch_issue,
    "credit.transfer": _credit_transfer,
    "escrow.hold": _escrow_hold,
    "escrow.release": _escrow_release,
    "escrow.deliver": _escrow_deliver,
    "credit.retire": _credit_retire,
    "credit.cancel": _credit_cancel,
    "reversal.record": _reversal_record,
    "document.attach": _document_attach,
}
ENTRY_TYPES = frozenset(_HANDLERS)
