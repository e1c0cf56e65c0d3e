"""The trustee's program: its keys, and the checks it makes before it releases one.

A trustee holds one secret, a 32-byte seed, in a directory of its own; key ``i`` is derived
from it (``auctions.trustee_keys``). The directory also holds ``state.json``: the next index to
derive, the public keys registered (index, the registry's key id) and the auctions released.
Both are written atomically (a temporary file, fsync, rename, fsync of the directory), and one
command at a time holds the directory (an exclusive ``flock`` on ``DIR/.lock``).

Before a release (``release_check``) two things must hold, and the registry is trusted for
neither:

1. The key the auction assigns this trustee, in ``GET /auctions/{id}`` and in the auction's
   ``auction.schedule`` entry on the ledger, is one this trustee made (in the state, or
   derivable from its seed), and one it has not released for another auction. A key that is
   not its own was registered by someone else in its name (an insider): the bids' shares for
   this position are sealed to that someone, and releasing would say the trustee vouched for
   the opening. Refused, loudly.
2. A checkpoint its witness policy accepts (signed by a pinned log key, cosigned by the
   witness quorum: ``policy`` and ``proof.proof_verify``, exactly what ``verify`` and
   ``proof`` check) includes the auction's ``auction.close`` entry and its ``auction.schedule``
   entry, each proven by an RFC 9162 inclusion proof against that checkpoint's root. So the
   close is on a history the witnesses have seen and will never let the log take back or
   show differently to others: a registry that showed the trustee a close that is not in the
   one log everybody else sees gets nothing.

Only then is the private key sent. The HTTP client (``Registry``) speaks the registry's API
with urllib, as ``sources`` does; tests give ``TrusteeRun`` a fake with the same methods.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from . import __version__
from .auctions import trustee_keys
from .cosignature import CosignatureError
from .entry import Entry, EntryError, decode_canonical_entry
from .note import NoteError, checkpoint_open
from .policy import Policy
from .proof import ProofFileError, TlogProof, VerifiedProof, proof_verify

__all__ = [
    "ApiError",
    "Event",
    "NotYet",
    "Refused",
    "Registry",
    "RegistryApi",
    "State",
    "TrusteeDir",
    "TrusteeError",
    "TrusteeRun",
]

SEED_FILE = "seed"
STATE_FILE = "state.json"
LOCK_FILE = ".lock"
STATE_VERSION = 1
MAX_KEYS_PER_CALL = 100  # the registry's limit (auctions/trustees.py)
# Keys registered before a crash kept the state from recording them lie at most this far past
# the state's next index (a call registers at most 100): that is where they are looked for.
FIND_WINDOW = 1000
FEED_LIMIT = 1000
CHECKPOINT_PAGES = 20  # at most this many pages of checkpoints are searched for a witnessed one
RECENT_CHECKPOINTS = 100  # sizes below the latest's searched first
WAITING_STATES = ("draft", "scheduled", "open")


class TrusteeError(Exception):
    """A problem with the trustee's directory, its flags, or the registry's answers."""


class Refused(Exception):
    """A check before a release failed: nothing is released. ``code`` names the check."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NotYet(Exception):
    """Nothing wrong, but the release must wait (the close, or a witnessed checkpoint)."""


class ApiError(Exception):
    """The registry answered with an error (``status`` 0: it could not be reached)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} (HTTP {status}, {code})" if status else message)
        self.status = status
        self.code = code
        self.message = message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise TrusteeError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise TrusteeError(f"{what} is not standard base64") from None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the directory: seed and state ----------------------------------------------------------


@dataclass
class State:
    """What ``state.json`` holds. ``keys``: index -> (public key, the registry's key id);
    ``released``: auction id -> what was released for it; ``finished``: auctions that no
    longer wait for keys, with the state they were found in."""

    next_index: int = 0
    organization: int | None = None
    keys: dict[int, dict[str, Any]] = field(default_factory=dict)
    released: dict[int, dict[str, Any]] = field(default_factory=dict)
    finished: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "organization": self.organization,
            "next_index": self.next_index,
            "keys": [{"index": i, **self.keys[i]} for i in sorted(self.keys)],
            "released": [{"auction": a, **self.released[a]} for a in sorted(self.released)],
            "finished": {str(a): self.finished[a] for a in sorted(self.finished)},
        }

    @classmethod
    def from_json(cls, data: Any) -> State:
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {data.get('version') if data else None!r}")
        organization = data["organization"]
        state = cls(
            next_index=int(data["next_index"]),
            organization=None if organization is None else int(organization),
        )
        for k in data["keys"]:
            state.keys[int(k["index"])] = {"public_key": str(k["public_key"]), "id": k["id"]}
        for r in data["released"]:
            state.released[int(r["auction"])] = {
                name: r[name] for name in ("index", "key", "seq", "time")
            }
        state.finished = {int(a): str(s) for a, s in data["finished"].items()}
        return state

    def index_of(self, public_key: bytes) -> int | None:
        encoded = b64(public_key)
        for index, record in self.keys.items():
            if record["public_key"] == encoded:
                return index
        return None


class TrusteeDir:
    """DIR/seed (hex, mode 0600) and DIR/state.json."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.seed_path = self.path / SEED_FILE
        self.state_path = self.path / STATE_FILE
        self._seed: bytes | None = None
        self._derived: dict[bytes, int] = {}
        self._derived_upto = 0

    @classmethod
    def init(cls, path: str | os.PathLike[str]) -> TrusteeDir:
        """Make the directory (mode 0700 if new), a new seed and an empty state. Never over an
        existing seed: every key registered so far is derived from it."""
        d = cls(path)
        d.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if d.state_path.exists() or d.seed_path.exists():
            raise FileExistsError(f"{d.path} holds a trustee already")
        seed = trustee_keys.new_seed()
        fd = os.open(d.seed_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(seed.hex() + "\n")
            out.flush()
            os.fsync(out.fileno())
        d.save(State())
        return d

    @property
    def seed(self) -> bytes:
        if self._seed is None:
            try:
                mode = self.seed_path.stat().st_mode
                text = self.seed_path.read_text(encoding="ascii").strip()
            except FileNotFoundError:
                raise TrusteeError(
                    f"{self.seed_path} not found: make the directory with 'trustee init'"
                ) from None
            if mode & 0o077:
                # As ssh does with a private key: a seed others can read is not the trustee's.
                raise TrusteeError(
                    f"{self.seed_path} is readable by others (mode {mode & 0o777:o}): "
                    f"chmod 600 {self.seed_path}"
                )
            try:
                seed = bytes.fromhex(text)
            except ValueError:
                seed = b""
            if len(seed) != trustee_keys.SEED_LENGTH:
                raise TrusteeError(f"{self.seed_path} is not {trustee_keys.SEED_LENGTH} hex bytes")
            self._seed = seed
        return self._seed

    def read(self) -> State:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            raise TrusteeError(
                f"{self.state_path} not found: make the directory with 'trustee init'"
            ) from None
        try:
            return State.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            # Starting again from an empty state would forget what was released.
            raise TrusteeError(f"{self.state_path} is unreadable: {exc}") from None

    def save(self, state: State) -> None:
        fd, temp = tempfile.mkstemp(dir=self.path, prefix=f".{STATE_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(state.to_json(), indent=1).encode() + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.state_path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path, os.O_RDONLY)  # the rename is durable once the entry is
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One command at a time: two would derive and register the same indexes."""
        if not self.path.is_dir():
            raise TrusteeError(f"{self.path} is not a directory: make it with 'trustee init'")
        with open(self.path / LOCK_FILE, "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TrusteeError(f"another trustee command is using {self.path}") from None
            yield

    def private_key(self, index: int) -> bytes:
        return trustee_keys.private_key(self.seed, index)

    def public_key(self, index: int) -> bytes:
        return trustee_keys.public_key(self.seed, index)

    def find(self, public_key: bytes, below: int) -> int | None:
        """The index of ``public_key`` among this seed's keys ``0 .. below - 1``, or None."""
        while self._derived_upto < below:
            self._derived[self.public_key(self._derived_upto)] = self._derived_upto
            self._derived_upto += 1
        index = self._derived.get(public_key)
        return index if index is not None and index < below else None


# ---- the registry's API ---------------------------------------------------------------------


class RegistryApi(Protocol):
    """What the trustee program asks the registry (``Registry`` over HTTP; tests fake it)."""

    def trustee_keys(self) -> list[dict[str, Any]]: ...

    def register(self, public_keys: Sequence[bytes], idempotency_key: str) -> Any: ...

    def auction(self, auction: int) -> Any: ...

    def release(self, auction: int, private_key: bytes) -> Any: ...

    def entries(self, after: int, types: Sequence[str]) -> Any: ...

    def checkpoint_latest(self) -> str | None: ...

    def checkpoints(self, after: int) -> Any: ...

    def inclusion_proof(self, seq: int, tree_size: int) -> Any: ...


def api_base(server: str) -> str:
    """The API's base URL: ``--server`` is the site (``https://host``) or its API
    (``https://host/api/v1``)."""
    base = server.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise TrusteeError(f"--server {server!r}: only http and https URLs")
    return base if base.endswith("/api/v1") else base + "/api/v1"


class Registry:
    """The registry's API over HTTP (urllib), with the trustee's API key (scope ``trustee``)."""

    def __init__(self, server: str, api_key: str, timeout: float = 30.0) -> None:
        self.base = api_base(server)
        self.api_key = api_key
        self.timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, object]] = (),
        body: Any = None,
        headers: dict[str, str] | None = None,
        text: bool = False,
    ) -> Any:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode([(k, str(v)) for k, v in query])
        sent = {
            "Accept": "text/plain" if text else "application/json",
            "User-Agent": f"bluecarbon-audit/{__version__} (trustee)",
            "Authorization": f"Bearer {self.api_key}",
            **(headers or {}),
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(  # noqa: S310 - api_base checked the scheme
            url, data=data, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw: bytes = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", raw.decode("utf-8", "replace")[:200]
            raise ApiError(exc.code, code, f"{method} {url}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, "unreachable", f"{method} {url}: {exc}") from None
        if text:
            return raw.decode("utf-8")
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(200, "not_json", f"{method} {url}: the answer is not JSON") from None

    def trustee_keys(self) -> list[dict[str, Any]]:
        """Every key of the caller's organization (all pages)."""
        rows: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self._call("GET", "/trustee-keys", query=[("after", after), ("limit", 500)])
            rows += page["results"]
            if page.get("next_after") is None:
                return rows
            after = int(page["next_after"])

    def register(self, public_keys: Sequence[bytes], idempotency_key: str) -> Any:
        return self._call(
            "POST",
            "/trustee-keys",
            body={"public_keys": [b64(k) for k in public_keys]},
            headers={"Idempotency-Key": idempotency_key},
        )

    def auction(self, auction: int) -> Any:
        return self._call("GET", f"/auctions/{auction}")

    def release(self, auction: int, private_key: bytes) -> Any:
        return self._call(
            "POST",
            f"/auctions/{auction}/key-release",
            body={"private_key": b64(private_key)},
            headers={"Idempotency-Key": f"bluecarbon-trustee/release/{auction}"},
        )

    def entries(self, after: int, types: Sequence[str]) -> Any:
        query: list[tuple[str, object]] = [("after", after), ("limit", FEED_LIMIT)]
        return self._call("GET", "/ledger/entries", query=query + [("type", t) for t in types])

    def checkpoint_latest(self) -> str | None:
        try:
            note: str = self._call("GET", "/ledger/checkpoints/latest", text=True)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return note

    def checkpoints(self, after: int) -> Any:
        return self._call("GET", "/ledger/checkpoints", query=[("after", after), ("limit", 100)])

    def inclusion_proof(self, seq: int, tree_size: int) -> Any:
        return self._call(
            "GET", "/ledger/proofs/inclusion", query=[("seq", seq), ("tree_size", tree_size)]
        )


# ---- what a run did -------------------------------------------------------------------------


@dataclass
class Event:
    """One thing the program did or found: ``kind`` is registered, recovered, released,
    already, waiting, skipped, refused, alert or failed."""

    kind: str
    message: str
    auction: int | None = None
    code: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def bad(self) -> bool:
        """A refusal, an alert or a failure: the command exits non-zero."""
        return self.kind in ("refused", "alert", "failed")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.kind, "message": self.message}
        if self.auction is not None:
            data["auction"] = self.auction
        if self.code is not None:
            data["code"] = self.code
        return {**data, **self.detail}


# ---- the program ----------------------------------------------------------------------------


def _size(note: str) -> int:
    """The tree size of a checkpoint note its policy accepted (its second line)."""
    return int(note.split("\n", 2)[1])


def _key_rows_by_public(rows: Sequence[dict[str, Any]]) -> dict[bytes, dict[str, Any]]:
    return {unb64(r["public_key"], "a trustee key's public_key"): r for r in rows}


@dataclass(frozen=True)
class LedgerRecord:
    """The auction's schedule and close entries, proven in one witnessed checkpoint."""

    schedule: VerifiedProof
    close: VerifiedProof


class TrusteeRun:
    """One trustee directory against one registry, under a witness policy."""

    def __init__(
        self,
        directory: TrusteeDir,
        registry: RegistryApi,
        policy: Policy | None = None,
        origin: str | None = None,
    ) -> None:
        self.dir = directory
        self.registry = registry
        self.policy = policy
        self.origin = origin
        self.state = directory.read()

    # ---- keys ------------------------------------------------------------------------------

    def _organization(self, organization: int) -> None:
        if self.state.organization is None:
            self.state.organization = organization
        elif self.state.organization != organization:
            raise TrusteeError(
                f"the API key acts for organization {organization}, but {self.dir.path} holds "
                f"the keys of organization {self.state.organization}"
            )

    def reconcile(self, rows: Sequence[dict[str, Any]]) -> list[Event]:
        """Bring the state up to what the registry lists: keys of this seed registered by a
        call whose answer was lost are recorded; a key this trustee did not make is an alert
        (someone registered it in the trustee's name)."""
        events = []
        for row in rows:
            self._organization(int(row["organization"]))
            public = unb64(row["public_key"], "a trustee key's public_key")
            index = self.state.index_of(public)
            if index is None:
                index = self.dir.find(public, self.state.next_index + FIND_WINDOW)
                if index is None:
                    events.append(
                        Event(
                            "alert",
                            f"key {row['id']} ({row['public_key']}) is registered for this "
                            "trustee but is not one it made: someone else registered it in its "
                            "name; an auction given this key will not get this trustee's release",
                            auction=row.get("auction"),
                            code="foreign_key",
                            detail={"key": row["id"]},
                        )
                    )
                    continue
                self.state.keys[index] = {"public_key": b64(public), "id": row["id"]}
                self.state.next_index = max(self.state.next_index, index + 1)
                events.append(
                    Event(
                        "recovered",
                        f"key {index} was registered (as key {row['id']}) by an earlier call "
                        "whose answer was not recorded",
                        detail={"index": index, "key": row["id"]},
                    )
                )
            elif self.state.keys[index].get("id") is None:
                self.state.keys[index]["id"] = row["id"]
        self.dir.save(self.state)
        return events

    def register(self, count: int) -> list[Event]:
        """Derive and register ``count`` more keys, at most 100 a call. Each call carries an
        Idempotency-Key derived from its first index, so the same call retried after a crash
        is answered from the registry's record instead of registering twice; a retry with
        another count finds the keys already registered and records them instead."""
        if count < 1:
            raise TrusteeError("--count must be at least 1")
        events: list[Event] = []
        target = self.state.next_index + count
        while self.state.next_index < target:
            first = self.state.next_index
            last = min(first + MAX_KEYS_PER_CALL, target)
            keys = [self.dir.public_key(i) for i in range(first, last)]
            # Derived from the seed (its first key's public half) and the first index: the
            # same call, and only it, has the same key.
            idempotency = f"bluecarbon-trustee/keys/{keys[0].hex()[:16]}/{first}"
            try:
                rows = self.registry.register(keys, idempotency)
            except ApiError as exc:
                if exc.code not in ("key_registered", "idempotency_mismatch"):
                    raise
                events += self.reconcile(self.registry.trustee_keys())
                if self.state.next_index == first:
                    raise
                continue
            if (
                not isinstance(rows, list)
                or [unb64(r.get("public_key"), "public_key") for r in rows] != keys
            ):
                raise TrusteeError("the registry answered with other keys than were sent")
            for index, row in zip(range(first, last), rows, strict=True):
                self._organization(int(row["organization"]))
                self.state.keys[index] = {"public_key": b64(keys[index - first]), "id": row["id"]}
            self.state.next_index = last
            self.dir.save(self.state)
            events.append(
                Event(
                    "registered",
                    f"registered keys {first}..{last - 1} ({last - first}) for organization "
                    f"{self.state.organization}",
                    detail={"first": first, "last": last - 1, "ids": [r["id"] for r in rows]},
                )
            )
        return events

    # ---- the checks ------------------------------------------------------------------------

    def own_key(self, auction: int, public_key: bytes) -> int:
        """Check (1): the index of this trustee's own key ``public_key``, unreleased for any
        other auction; ``Refused`` otherwise."""
        index = self.state.index_of(public_key)
        if index is None:
            index = self.dir.find(public_key, self.state.next_index + FIND_WINDOW)
        if index is None:
            raise Refused(
                "key_not_ours",
                f"auction {auction} assigns this trustee the public key {b64(public_key)}, which "
                "it did not make: someone registered a key in its name (bids' shares for its "
                "position are sealed to them). Nothing released; tell the registry's operator "
                "and the other trustees",
            )
        for other, record in self.state.released.items():
            if other != auction and record["index"] == index:
                raise Refused(
                    "key_reused",
                    f"auction {auction} assigns key {index}, which this trustee released for "
                    f"auction {other}: a key opens one auction only. Nothing released",
                )
        return index

    def _scan(
        self, auction: int, after: int, public_key: bytes
    ) -> tuple[tuple[Entry, bytes], tuple[Entry, bytes]]:
        """The auction's schedule and close entries from the feed (seq > after), decoded and as
        exact bytes (unproven yet); refuses a schedule entry of another auction with this key."""
        schedule: tuple[Entry, bytes] | None = None
        close: tuple[Entry, bytes] | None = None
        encoded = b64(public_key)
        while True:
            page = self.registry.entries(after, ("auction.schedule", "auction.close"))
            for item in page["entries"]:
                body = str(item["canonical"]).encode()
                try:
                    entry = decode_canonical_entry(body)
                except EntryError:
                    continue  # not an entry: no proof would hold for it anyway
                if entry.type == "auction.schedule":
                    listed = {str(k.get("public_key")) for k in entry.data.get("trustee_keys", [])}
                    if entry.data.get("auction") == auction:
                        schedule = schedule or (entry, body)
                    elif encoded in listed:
                        raise Refused(
                            "key_reused",
                            f"the ledger's entry {entry.seq} assigns this trustee's key for "
                            f"auction {auction} to auction {entry.data.get('auction')} as well: "
                            "releasing it would open both. Nothing released",
                        )
                elif entry.data.get("auction") == auction and close is None:
                    close = (entry, body)
            if page.get("next_after") is None:
                break
            after = int(page["next_after"])
        if schedule is None:
            raise NotYet(f"auction {auction} has no auction.schedule entry on the ledger yet")
        if close is None:
            raise NotYet(f"auction {auction} has no auction.close entry on the ledger yet")
        return schedule, close

    def _accepted(self, note: str, covering: int) -> str | None:
        """Why ``note`` is not a checkpoint the policy accepts covering entry ``covering``, or
        None if it is (the same checks as ``proof_verify``'s steps 2 and 3)."""
        assert self.policy is not None
        try:
            body, opened = checkpoint_open(note, self.policy.logs, self.origin)
        except NoteError as exc:
            return f"not signed by a pinned log key ({exc})"
        if body.origin not in {s.name for s in opened.verified}:
            return f"origin {body.origin!r} is not the name of the key that signed it"
        if body.size <= covering:
            return f"size {body.size} does not cover entry {covering}"
        try:
            witnessed = self.policy.witnessed(note)
        except CosignatureError as exc:
            return f"a witness cosignature does not verify ({exc})"
        if not witnessed.quorum_met:
            names = ", ".join(witnessed.cosigners) or "no known witness"
            return f"cosigned by {names}, short of the quorum {self.policy.describe_quorum()}"
        return None

    def witnessed_checkpoint(self, covering: int) -> tuple[str, int]:
        """A checkpoint note the policy accepts whose tree includes entry ``covering``: the
        latest; else, as the latest may not be cosigned yet, one of the hundred before it (the
        witnesses cosign the latest they are sent, not every checkpoint), else the first after
        the entry."""
        latest = self.registry.checkpoint_latest()
        if latest is None:
            raise NotYet("the registry has issued no checkpoint yet")
        why = self._accepted(latest, covering)
        if why is None:
            return latest, _size(latest)
        starts = [covering]
        with contextlib.suppress(ValueError, IndexError):  # a malformed latest: from the entry
            if _size(latest) - RECENT_CHECKPOINTS > covering:
                starts.insert(0, _size(latest) - RECENT_CHECKPOINTS)
        for after in starts:
            for _ in range(CHECKPOINT_PAGES):
                page = self.registry.checkpoints(after)
                for item in page["checkpoints"]:
                    lines = [
                        line if line.endswith("\n") else line + "\n"
                        for _, line in sorted(item.get("cosignatures", {}).items())
                    ]
                    note = str(item["note"]) + "".join(lines)
                    if self._accepted(note, covering) is None:
                        return note, _size(note)
                if page.get("next_after") is None:
                    break
                after = int(page["next_after"])
        raise NotYet(
            f"no checkpoint that includes entry {covering} meets the witness policy yet (the "
            f"latest: {why})"
        )

    def _prove(self, found: tuple[Entry, bytes], note: str, size: int) -> VerifiedProof:
        assert self.policy is not None
        entry, body = found
        answer = self.registry.inclusion_proof(entry.seq, size)
        try:
            hashes = tuple(unb64(h, "an inclusion proof hash") for h in answer["proof"])
            proof = TlogProof(index=entry.seq, proof=hashes, checkpoint=note, extra=body)
            return proof_verify(proof, policy=self.policy)
        except (ProofFileError, TrusteeError, KeyError, TypeError) as exc:
            raise Refused(
                "ledger_proof",
                f"the registry's entry {entry.seq} ({entry.type}) is not proven in the "
                f"witnessed checkpoint of size {size}: {exc}. The registry shows this trustee "
                "something that is not in the log the witnesses saw. Nothing released",
            ) from None

    def ledger_record(self, auction: int, public_key: bytes, after: int) -> LedgerRecord:
        """Check (2): the auction's schedule and close entries, in a witnessed checkpoint."""
        schedule, close = self._scan(auction, after, public_key)
        note, size = self.witnessed_checkpoint(close[0].seq)
        return LedgerRecord(
            schedule=self._prove(schedule, note, size), close=self._prove(close, note, size)
        )

    # ---- release ---------------------------------------------------------------------------

    def release(self, auction: int, rows: Sequence[dict[str, Any]] | None = None) -> Event:
        """Release this trustee's key for ``auction`` once both checks hold. Returns what
        happened; never raises for a refusal or a wait."""
        try:
            return self._release(auction, rows)
        except Refused as exc:
            return Event("refused", str(exc), auction=auction, code=exc.code)
        except NotYet as exc:
            return Event("waiting", str(exc), auction=auction)
        except (ApiError, TrusteeError) as exc:
            code = exc.code if isinstance(exc, ApiError) else "error"
            return Event("failed", str(exc), auction=auction, code=code)

    def _release(self, auction: int, rows: Sequence[dict[str, Any]] | None) -> Event:
        if self.policy is None or not self.policy.logs or not self.policy.requires_witnesses:
            raise TrusteeError("a release needs a log key and a witness quorum")
        if rows is None:
            rows = self.registry.trustee_keys()
        for listed_key in rows:
            self._organization(int(listed_key["organization"]))
        org = self.state.organization
        if org is None:
            raise TrusteeError("this trustee has no key registered, so no auction names it")
        a = self.registry.auction(auction)
        sealing = a.get("sealing") or {}
        mine = [t for t in sealing.get("trustees") or [] if t.get("trustee") == org]
        if sealing.get("mode") != "trustees" or not mine:
            raise TrusteeError(f"auction {auction} is not sealed to this trustee ({org})")
        if len(mine) > 1:
            raise Refused(
                "key_not_ours", f"auction {auction} names this trustee twice. Nothing released"
            )
        public = unb64(mine[0]["public_key"], "the auction's trustee public_key")
        index = self.own_key(auction, public)
        done = self.state.released.get(auction)
        if done is not None:
            return Event(
                "already",
                f"auction {auction}: key {index} was released already (entry {done['seq']})",
                auction=auction,
                detail={"index": index, "seq": done["seq"]},
            )
        if a.get("state") in WAITING_STATES:
            raise NotYet(f"auction {auction} is {a.get('state')} until {a.get('closes_at')}")
        if a.get("state") != "closing":
            return self._finished(auction, str(a.get("state")))
        row = _key_rows_by_public(rows).get(public)
        if row is not None and row.get("auction") != auction:
            raise Refused(
                "key_reused",
                f"the registry lists key {index} for auction {row.get('auction')}, but auction "
                f"{auction} assigns it too. Nothing released",
            )
        after = int(row["entry_seq"]) if row is not None else -1
        record = self.ledger_record(auction, public, after)
        listed = [
            k for k in record.schedule.entry.data.get("trustee_keys", []) if k.get("trustee") == org
        ]
        if [k.get("public_key") for k in listed] != [b64(public)]:
            raise Refused(
                "schedule_mismatch",
                f"the ledger's auction.schedule entry {record.schedule.entry.seq} assigns this "
                f"trustee {[k.get('public_key') for k in listed]}, not the key the API shows "
                f"({b64(public)}). Nothing released",
            )
        try:
            answer = self.registry.release(auction, self.dir.private_key(index))
        except ApiError as exc:
            if exc.code == "key_mismatch":
                raise Refused(
                    "key_mismatch",
                    f"the registry refused key {index} for auction {auction} as not matching "
                    f"the public key it holds for this trustee ({exc.message}): its key table "
                    "was changed after the auction was scheduled. Tell its operator",
                ) from None
            if exc.code == "auction_wrong_state":
                return self._finished(auction, "past closing")
            raise
        if answer.get("public_key") != b64(public) or answer.get("released_seq") is None:
            raise TrusteeError(f"the registry's answer to the release is not this key: {answer}")
        seq = int(answer["released_seq"])
        self.state.released[auction] = {
            "index": index,
            "key": answer.get("id"),
            "seq": seq,
            "time": _now(),
        }
        self.dir.save(self.state)
        cp = record.close.checkpoint
        cosigners = ", ".join(record.close.witnessed.cosigners)
        return Event(
            "released",
            f"released key {index} for auction {auction} (entry {seq}): its close, entry "
            f"{record.close.entry.seq}, is in checkpoint {cp.size} signed by "
            f"{', '.join(record.close.log_keys)} and cosigned by {cosigners}",
            auction=auction,
            detail={
                "index": index,
                "seq": seq,
                "close_seq": record.close.entry.seq,
                "checkpoint_size": cp.size,
                "cosigned_by": list(record.close.witnessed.cosigners),
            },
        )

    def _finished(self, auction: int, state: str) -> Event:
        """The auction no longer waits for keys (cleared with others' keys, failed,
        cancelled): nothing to release, and ``run`` does not ask again."""
        self.state.finished[auction] = state
        self.dir.save(self.state)
        return Event(
            "skipped",
            f"auction {auction} is {state}: its bids no longer wait for keys",
            auction=auction,
        )

    # ---- one pass of the unattended program ------------------------------------------------

    def run_pass(self, *, min_free: int, count: int) -> list[Event]:
        """Keep ``min_free`` unused keys registered, and release for every auction that
        assigned this trustee a key, once the checks hold."""
        rows = self.registry.trustee_keys()
        events = self.reconcile(rows)
        by_public = _key_rows_by_public(rows)
        free = [
            p
            for p, r in by_public.items()
            if r.get("auction") is None and self.state.index_of(p) is not None
        ]
        if len(free) < min_free:
            events += self.register(max(count, min_free - len(free)))
        pending = sorted(
            {
                int(r["auction"])
                for r in rows
                if r.get("auction") is not None
                and r.get("released_seq") is None
                and int(r["auction"]) not in self.state.released
                and int(r["auction"]) not in self.state.finished
            }
        )
        for auction in pending:
            events.append(self.release(auction, rows))
        return events
