"""``bluecarbon-audit verify``: the whole log checked from its tiles, without the registry.

From a source (``sources``: a log URL, a tile directory or an export bundle) and a policy of
pinned keys (``policy``), in this order:

1. every checkpoint the source has: the log's signature by a trusted key for the expected
   origin, the known witnesses' cosignatures, and the witness quorum on the latest one;
2. with ``--since STATE``: no rollback (a smaller tree than the one verified before), no fork (a
   same-size tree with another root, or a newer checkpoint that an RFC 9162 consistency proof,
   computed from the tiles, does not link to the one verified before);
3. every entry bundle, in order (``scanbundle``): canonical bytes, ``seq``, ``prev`` (the hash
   chain, continued from the state), the leaf hashes against the level-0 tiles, every higher
   tile against the hashes recomputed below it, and each checkpoint's root recomputed from the
   entries when the tree reaches its size;
4. replay: the registry's state (``replay.RegistryState``) and the auction house's
   (``auctions.replay.AuctionState``, which reopens every bid of a cleared auction with its
   revealed key and re-runs the clearing) and the listing board's (``listings.ListingState``:
   every take against what remained, the time window and the per-buyer cap), applied to every
   entry exactly as the registry's own ``ledger_verify`` drives them; then the supply
   invariant of every batch;
5. consistency proofs between consecutive checkpoints, from the (now verified) tiles; an export
   bundle's auction files against the replay; the bundle's manifest.

The first failure stops the run and is named (``VerifyFailure``), in the words
``ledger_verify`` uses for the same fault. Large logs are scanned by worker processes, a bundle
at a time; memory holds one window of bundles, the Merkle frontier and the replayed state.
"""

from __future__ import annotations

import base64
import collections
import gc
import hashlib
import json
import multiprocessing
import os
import threading
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods as mp_methods
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import Any

from . import merkle
from .auctions.replay import AUCTION_ENTRY_TYPES, AuctionState
from .cosignature import CosignatureError
from .entry import ZERO_HASH, EntryError, decode_canonical_entry
from .listings import LISTING_ENTRY_TYPES, ListingState
from .note import Checkpoint, NoteError, checkpoint_open
from .policy import Policy
from .replay import ENTRY_TYPES as REGISTRY_TYPES
from .replay import RegistryState, ReplayError
from .scanbundle import TRANSFER, BundleScan, chain_message, scan_bundle, split_bundle
from .sources import Reader, Source, SourceError
from .tiledir import write_atomic
from .tiles import (
    ENTRIES,
    ENTRIES_U32,
    TILE_WIDTH,
    TileError,
    TileNodes,
    TileRef,
    bundle_kind,
    tile_width,
)

__all__ = ["STATE_FORMAT", "Report", "UsageError", "VerifyFailure", "VerifyOptions", "verify"]

STATE_FORMAT = "bluecarbon-audit-state/v1"
KNOWN_TYPES = REGISTRY_TYPES | AUCTION_ENTRY_TYPES | LISTING_ENTRY_TYPES
# Below this many entries the scan runs in this process (starting workers costs more).
PARALLEL_MIN_ENTRIES = 50_000
_WINDOW_PER_WORKER = 3  # batches in flight per worker: enough to keep them busy, memory flat

Progress = Callable[[int, int], None]


class UsageError(Exception):
    """Not a verdict on the log: the verifier was not told enough (no key, no origin)."""


class VerifyFailure(Exception):
    """The first thing found wrong. ``check`` says which check; ``seq`` names the entry where
    it shows, if there is one."""

    def __init__(self, check: str, message: str, seq: int | None = None) -> None:
        self.check = check
        self.message = message
        self.seq = seq
        super().__init__(f"entry {seq}: {message}" if seq is not None else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (VerifyFailure, (self.check, self.message, self.seq))


@dataclass
class VerifyOptions:
    policy: Policy
    origin: str | None = None
    replay: bool = True
    state_path: Path | None = None  # --since: read if present, written after success
    workers: int | None = None  # None: as many as CPUs for large logs; 0: none
    progress: Progress | None = None


@dataclass
class CheckpointSeen:
    size: int
    root: bytes
    note: str
    keys: list[str]  # log keys whose signature verified ("name+hash")
    cosigners: list[str]  # witnesses (policy names) with a valid cosignature
    quorum_met: bool


@dataclass
class Report:
    source: str = ""
    origin: str = ""
    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    start: int = 0  # first entry checked this run (after a saved state)
    entries: int = 0
    bundles: int = 0
    u32_bundles: int = 0
    tiles: int = 0
    checkpoints: list[CheckpointSeen] = field(default_factory=list)
    consistency_proofs: int = 0
    since: dict[str, Any] | None = None  # the state continued from: size, checkpoint size
    quorum: str = "none"
    replayed: bool = False
    registry: dict[str, Any] = field(default_factory=dict)
    auctions: dict[str, Any] = field(default_factory=dict)
    listings: dict[str, Any] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    bundle_auctions: int = 0
    notes: list[str] = field(default_factory=list)
    failure: VerifyFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        failure = self.failure
        return {
            "ok": self.ok,
            "failure": None
            if failure is None
            else {"check": failure.check, "seq": failure.seq, "message": failure.message},
            "source": self.source,
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "start": self.start,
            "entries_checked": self.entries,
            "entry_bundles": self.bundles,
            "u32_entry_bundles": self.u32_bundles,
            "hash_tiles": self.tiles,
            "checkpoints": [
                {
                    "size": c.size,
                    "root": base64.b64encode(c.root).decode(),
                    "keys": c.keys,
                    "cosigners": c.cosigners,
                    "quorum_met": c.quorum_met,
                }
                for c in self.checkpoints
            ],
            "consistency_proofs": self.consistency_proofs,
            "since": self.since,
            "witness_quorum": self.quorum,
            "replayed": self.replayed,
            "registry": self.registry,
            "auctions": self.auctions,
            "listings": self.listings,
            "records": self.records,
            "bundle_auctions_checked": self.bundle_auctions,
            "notes": self.notes,
        }


def verify(source: Source, options: VerifyOptions) -> Report:
    """Verify ``source``; the report's ``failure`` is the first problem, None if all passed.
    Raises ``UsageError`` when the options do not allow a verdict."""
    run = _Run(source, options)
    try:
        run.run()
    except VerifyFailure as failure:
        run.report.failure = failure
    except SourceError as exc:
        run.report.failure = VerifyFailure("source", str(exc))
    return run.report


# ---- the saved state (--since) ----------------------------------------------------------------


@dataclass
class _State:
    size: int
    last_hash: bytes
    frontier: merkle.Frontier
    checkpoint: tuple[int, bytes] | None
    checkpoint_note: str | None
    registry: RegistryState | None
    auctions: AuctionState | None
    listings: ListingState | None


def _load_state(path: Path, origin: str) -> _State:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} file")
        if data["origin"] != origin:
            raise ValueError(f"it is for the log {data['origin']!r}, not {origin!r}")
        cp = data["checkpoint"]
        replayed = data.get("registry") is not None
        return _State(
            size=data["size"],
            last_hash=bytes.fromhex(data["last_hash"]),
            frontier=merkle.Frontier(data["size"], [bytes.fromhex(h) for h in data["frontier"]]),
            checkpoint=(cp["size"], base64.b64decode(cp["root"])) if cp else None,
            checkpoint_note=cp["note"] if cp else None,
            registry=RegistryState.from_json(data["registry"]) if replayed else None,
            auctions=AuctionState.from_json(data["auctions"], origin) if replayed else None,
            # A state saved before listings were replayed has none: ``from_json(None)``.
            listings=ListingState.from_json(data.get("listings"), origin) if replayed else None,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot continue from {path}: {exc}") from None


def _save_state(path: Path, origin: str, run: _Run) -> None:
    cp = run.last_checkpoint
    payload = {
        "format": STATE_FORMAT,
        "origin": origin,
        "size": run.frontier.size,
        "last_hash": run.prev.hex(),
        "frontier": [h.hex() for h in run.frontier.hashes],
        "checkpoint": None
        if cp is None
        else {"size": cp.size, "root": base64.b64encode(cp.root).decode(), "note": cp.note},
        "registry": run.registry.to_json() if run.registry is not None else None,
        "auctions": run.auction_state.to_json() if run.auction_state is not None else None,
        "listings": run.listing_state.to_json() if run.listing_state is not None else None,
    }
    # Private: it is this verifier's record of what it checked.
    write_atomic(path, json.dumps(payload, separators=(",", ":")).encode())
    os.chmod(path, 0o600)


# ---- the run ----------------------------------------------------------------------------------


class _Level:
    """The hashes of one hash tile above level 0, as recomputed so far."""

    __slots__ = ("checked_from", "hashes", "index")

    def __init__(self, index: int, prefix: list[bytes]) -> None:
        self.index = index
        self.hashes = prefix
        self.checked_from = len(prefix)


class _Run:
    def __init__(self, source: Source, options: VerifyOptions) -> None:
        self.source = source
        self.options = options
        self.policy = options.policy
        self.report = Report(source=source.description, quorum=self.policy.describe_quorum())
        self.frontier = merkle.Frontier()
        self.prev = ZERO_HASH
        self.registry: RegistryState | None = None
        self.auction_state: AuctionState | None = None
        self.listing_state: ListingState | None = None
        self.last_checkpoint: CheckpointSeen | None = None
        self.levels: dict[int, _Level] = {}
        self.nodes: TileNodes | None = None
        self.state: _State | None = None
        self.size = 0

    # ---- setup --------------------------------------------------------------------------------

    def _origin(self) -> str:
        if self.options.origin:
            return self.options.origin
        origins = self.policy.origins
        if not self.policy.logs:
            published = self.source.published_keys()
            hint = (
                "; the source publishes " + ", ".join(published) + " (check them out of band)"
                if published
                else ""
            )
            raise UsageError(f"no log key to trust: pass --key VKEY or --policy FILE{hint}")
        if len(origins) != 1:
            raise UsageError(f"the log keys name several logs {sorted(origins)}: pass --origin")
        return next(iter(origins))

    def _checkpoints(self, origin: str) -> list[CheckpointSeen]:
        latest = self.source.read("checkpoint")
        if latest is None:
            raise VerifyFailure("source", f"{self.source.description} has no checkpoint")
        notes = [*self.source.checkpoints(), latest.decode("utf-8")]
        by_size: dict[int, CheckpointSeen] = {}
        for note in dict.fromkeys(notes):  # in order, once each
            seen = self._open_checkpoint(note, origin)
            other = by_size.get(seen.size)
            if other is not None and other.root != seen.root:
                raise VerifyFailure(
                    "fork",
                    f"two checkpoints of size {seen.size} with different roots, both signed: "
                    "the log forked",
                )
            if other is None or len(seen.cosigners) > len(other.cosigners):
                by_size[seen.size] = seen
        seen_latest = self._open_checkpoint(latest.decode("utf-8"), origin)
        checkpoints = sorted(by_size.values(), key=lambda c: c.size)
        if checkpoints[0].size == 0 and checkpoints[0].root != merkle.EMPTY_ROOT:
            raise VerifyFailure(
                "tree", "checkpoint at size 0: the root is not the hash of the empty string"
            )
        if checkpoints[-1].size > seen_latest.size:
            raise VerifyFailure(
                "checkpoint",
                f"the source holds a checkpoint of size {checkpoints[-1].size}, larger than its "
                f"latest checkpoint ({seen_latest.size})",
            )
        if self.policy.requires_witnesses and not seen_latest.quorum_met:
            raise VerifyFailure(
                "witness",
                f"the latest checkpoint (size {seen_latest.size}) does not meet the witness "
                f"quorum {self.policy.describe_quorum()}: cosigned by "
                + (", ".join(seen_latest.cosigners) or "no known witness"),
            )
        return checkpoints

    def _open_checkpoint(self, note: str, origin: str) -> CheckpointSeen:
        try:
            body = Checkpoint.from_text(note[: note.rfind("\n\n") + 1])
        except NoteError as exc:
            raise VerifyFailure("checkpoint", f"a checkpoint is malformed ({exc})") from None
        where = f"checkpoint at size {body.size}"
        try:
            body, opened = checkpoint_open(note, self.policy.logs, origin=origin)
        except NoteError as exc:
            raise VerifyFailure(
                "checkpoint", f"{where}: signature does not verify with a trusted key ({exc})"
            ) from None
        try:
            witnessed = self.policy.witnessed(note)
        except CosignatureError as exc:
            raise VerifyFailure(
                "witness", f"{where}: a witness cosignature is bad ({exc})"
            ) from None
        return CheckpointSeen(
            size=body.size,
            root=body.root,
            note=note,
            keys=[f"{s.name}+{s.key_hash.hex()}" for s in opened.verified],
            cosigners=list(witnessed.cosigners),
            quorum_met=witnessed.quorum_met,
        )

    # ---- the run ------------------------------------------------------------------------------

    def run(self) -> None:
        origin = self._origin()
        self.report.origin = origin
        checkpoints = self._checkpoints(origin)
        latest = checkpoints[-1]
        self.size = latest.size
        self.report.checkpoints = checkpoints
        self.report.size, self.report.root = latest.size, latest.root
        self.nodes = TileNodes(latest.size, self._tile_bytes)

        if self.options.state_path is not None and self.options.state_path.exists():
            self.state = _load_state(self.options.state_path, origin)
        start = self._start_from_state(checkpoints)
        bundle_from = getattr(self.source, "info", {}).get("from", 0)
        if bundle_from > start:
            raise UsageError(
                f"this bundle starts at entry {bundle_from}: verify it with --since a state "
                f"saved at size {bundle_from} or later (this run starts at {start})"
            )
        if self.options.replay:
            state = self.state
            if state is not None and state.registry is None:
                raise UsageError(
                    f"{self.options.state_path} was saved without replay: continue with "
                    "--no-replay, or verify from the start"
                )
            self.registry = state.registry if state and state.registry else RegistryState()
            self.auction_state = (
                state.auctions if state and state.auctions else AuctionState(origin=origin)
            )
            self.listing_state = state.listings if state and state.listings else ListingState()
            self.report.replayed = True

        self.report.start = start
        self._walk(start, [c for c in checkpoints if c.size > start])
        self.report.entries = latest.size - start
        if self.options.replay:
            self._finish_replay()
        self._consistency(checkpoints)
        self._bundle_auctions()
        self.source.finish()
        if self.last_checkpoint is None or self.last_checkpoint.size < latest.size:
            self.last_checkpoint = latest
        if self.options.state_path is not None:
            _save_state(self.options.state_path, origin, self)

    def _start_from_state(self, checkpoints: list[CheckpointSeen]) -> int:
        state = self.state
        if state is None:
            return 0
        self.frontier = state.frontier.copy()
        self.prev = state.last_hash
        latest = checkpoints[-1]
        self.report.since = {
            "size": state.size,
            "checkpoint": state.checkpoint[0] if state.checkpoint else None,
        }
        if state.checkpoint is not None:
            size, root = state.checkpoint
            if latest.size < size:
                raise VerifyFailure(
                    "rollback",
                    f"rollback: the log's latest checkpoint is of size {latest.size}, smaller than "
                    f"the checkpoint of size {size} verified before (state file)",
                )
            for cp in checkpoints:
                if cp.size == size and cp.root != root:
                    raise VerifyFailure(
                        "fork",
                        f"fork: the log signed another tree of size {size} than the one "
                        "verified before (state file)",
                    )
            newer = [cp for cp in checkpoints if cp.size > size]
            if newer:
                self._consistent(size, root, newer[0], "fork")
        if latest.size < state.size:
            raise VerifyFailure(
                "rollback",
                f"rollback: the log's latest checkpoint is of size {latest.size}, but "
                f"{state.size} entries were verified before (state file)",
            )
        return state.size

    def _consistent(self, size: int, root: bytes, cp: CheckpointSeen, check: str) -> None:
        assert self.nodes is not None
        try:
            proof = merkle.consistency_proof(size, cp.size, self._node)
            merkle.verify_consistency(size, cp.size, root, cp.root, proof)
        except merkle.ProofError as exc:
            before = " verified before (state file)" if check == "fork" else ""
            raise VerifyFailure(
                check,
                (f"{check}: " if check == "fork" else "")
                + f"the checkpoint at size {cp.size} is not consistent with the checkpoint at "
                f"size {size}{before}: {exc}",
            ) from None
        self.report.consistency_proofs += 1

    def _node(self, level: int, index: int) -> bytes:
        """A Merkle node for a consistency proof: from the saved state's right edge if it is
        one of its nodes (verified before, and perhaps in no tile of a ``--from`` bundle),
        else from the tiles."""
        if self.state is not None:
            ids = merkle.frontier_node_ids(self.state.size)
            if (level, index) in ids:
                return self.state.frontier.hashes[ids.index((level, index))]
        assert self.nodes is not None
        try:
            return self.nodes(level, index)
        except KeyError:
            raise VerifyFailure(
                "source", f"the tiles do not hold the Merkle node at level {level}, index {index}"
            ) from None

    def _tile_bytes(self, ref: TileRef) -> bytes:
        data = self.source.read(ref.path)
        if data is None:
            raise VerifyFailure("tile", f"{ref.path} is missing")
        return data

    # ---- entries ------------------------------------------------------------------------------

    def _walk(self, start: int, checkpoints: list[CheckpointSeen]) -> None:
        size = self.size
        cps = collections.deque(checkpoints)
        total = size - start
        progress = self.options.progress
        if progress:
            progress(0, total)
        jobs = self._jobs(start, checkpoints)
        workers = self._workers(total)
        # Neither the scan nor the replay makes reference cycles; the cyclic collector would
        # only rescan the replayed state over and over (see _init_worker).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._walk_bundles(jobs, workers, cps, start, total)
        finally:
            if collecting:
                gc.enable()
        self._close_levels()
        if self.frontier.size != size:
            raise VerifyFailure(
                "tree", f"the walk ended at {self.frontier.size} entries, not {size}"
            )

    def _walk_bundles(
        self,
        jobs: Iterator[_Job],
        workers: int,
        cps: collections.deque[CheckpointSeen],
        start: int,
        total: int,
    ) -> None:
        progress = self.options.progress
        reader = self.source.worker_reader() if workers else None
        if reader is None:
            for done in self._read_here(jobs):
                self._bundle(done, cps)
                if progress:
                    progress(done.end - start, total)
        else:
            # fork starts workers in milliseconds, but is only safe while this process runs no
            # other thread (a URL source fetches ahead with threads once it has been read).
            safe = threading.active_count() == 1 and "fork" in mp_methods()
            ctx = multiprocessing.get_context("fork" if safe else "spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(reader,)) as pool:
                for done in _in_workers(pool, workers, jobs):
                    self._bundle(done, cps)
                    if progress:
                        progress(done.end - start, total)

    def _workers(self, total: int) -> int:
        wanted = self.options.workers
        if wanted is not None:
            return wanted
        cpus = os.cpu_count() or 1
        return cpus if total >= PARALLEL_MIN_ENTRIES and cpus > 1 else 0

    def _jobs(self, start: int, checkpoints: list[CheckpointSeen]) -> Iterator[_Job]:
        size, replay = self.size, self.options.replay
        inside = {c.size for c in checkpoints if c.size % TILE_WIDTH}
        for n in range(start // TILE_WIDTH, -(-size // TILE_WIDTH)):
            width = tile_width(0, n, size)
            skip = max(0, start - n * TILE_WIDTH)
            first = n * TILE_WIDTH
            # Leaves come back only where the frontier takes them one by one.
            inner = any(first < c < first + width for c in inside) if inside else False
            yield _Job(n, width, skip, replay, width < TILE_WIDTH or skip > 0 or inner)

    def _read_here(self, jobs: Iterator[_Job]) -> Iterator[_Done]:
        """Bundles and tiles read by this process (fetched ahead from a URL), scanned here."""
        pending = list(jobs)
        names = [name for job in pending for name in (job.bundle_path, job.tile_path)]
        reads = self.source.read_many(names)
        for job in pending:
            _, data = next(reads)
            _, tile = next(reads)
            kind = ENTRIES
            if data is None:
                kind, data = ENTRIES_U32, self.source.read(job.u32_path)
            done = _process(job, kind, data, tile)
            done.data = data
            yield done

    def _bundle(self, done: _Done, cps: collections.deque[CheckpointSeen]) -> None:
        n, width, skip = done.index, done.width, done.skip
        first_seq = n * TILE_WIDTH
        if done.kind is None:
            raise VerifyFailure(
                "bundle",
                f"{TileRef(ENTRIES, n, width).path} is missing (and so is "
                f"{TileRef(ENTRIES_U32, n, width).path})",
            )
        where = TileRef(done.kind, n, width).path
        if done.error is not None or done.scan is None:
            raise VerifyFailure("bundle", f"{where}: {done.error}")
        scan = done.scan
        self.report.bundles += 1
        if done.kind == ENTRIES_U32:
            self.report.u32_bundles += 1
        problem = scan.problem
        limit = problem[0] if problem is not None else width
        if skip and scan.before_hash != self.prev:
            raise VerifyFailure(
                "fork",
                f"fork: entry {first_seq + skip - 1} in the source is not the entry verified "
                "before (state file): the history before this run was changed",
                first_seq + skip - 1,
            )
        seq = first_seq + skip
        if limit > skip and scan.first_prev != self.prev:
            assert scan.first_prev is not None
            raise VerifyFailure("chain", chain_message(seq, scan.first_prev.hex(), self.prev), seq)
        tile_ref = TileRef(0, n, width)
        if done.tile_missing:
            raise VerifyFailure("tile", f"{tile_ref.path} is missing")
        # A leaf that is not the tile's: reported where the walk would otherwise report a
        # root it cannot explain (an entry changed in place, the tile left alone), or after
        # the entries' own checks.
        tile_failure = None
        if done.tile is not None:
            tile_failure = self._tile_mismatch(tile_ref, done.tile, scan.leaves, first_seq)
        try:
            if scan.leaves:
                leaves = scan.leaves
                for i in range(skip, limit):
                    self.frontier.push(leaves[32 * i : 32 * i + 32])
                    self._reached(cps)
                    self._replay(done, i, i + 1)
            else:
                assert scan.root is not None and not skip and limit == width == TILE_WIDTH
                self.frontier.push_subtree(8, scan.root)
                self._reached(cps)
                self._replay(done, 0, width)
        except VerifyFailure as exc:
            if tile_failure is not None and exc.check == "tree":
                raise tile_failure from None
            raise
        if problem is not None:
            raise VerifyFailure(problem[1], problem[2], first_seq + problem[0])
        if not done.kind_ok:
            raise VerifyFailure(
                "bundle",
                f"{where} holds no entry over 65,535 bytes: it must be served as "
                f"{TileRef(ENTRIES, n, width).path} (docs/ledger-format.md §8)",
            )
        self.report.tiles += 1
        if tile_failure is not None:
            raise tile_failure
        self.prev = scan.last_hash
        if width == TILE_WIDTH:
            assert scan.root is not None
            self._push_level(1, n, scan.root)

    def _entries(self, done: _Done) -> list[bytes]:
        """The bundle's entries, for the few the replay takes one by one (read again if a
        worker read them)."""
        if done.entries is None:
            data = done.data
            if data is None:
                assert done.kind is not None
                data = self.source.read(TileRef(done.kind, done.index, done.width).path)
                if data is None:
                    raise VerifyFailure("bundle", f"entry bundle {done.index} vanished")
            done.entries = split_bundle(data, done.kind or ENTRIES, done.width)
        return done.entries

    def _tile_mismatch(
        self, ref: TileRef, tile: bytes, computed: bytes, first: int
    ) -> VerifyFailure:
        if len(tile) != len(computed):
            return VerifyFailure(
                "tile",
                f"{ref.path} is {len(tile)} bytes; a tile of width {ref.width} is {len(computed)}",
            )
        i = next(
            i for i in range(ref.width) if tile[32 * i : 32 * i + 32] != computed[32 * i :][:32]
        )
        level = ref.level
        if level == 0:
            return VerifyFailure(
                "tile",
                f"{ref.path}: hash {i} is not the leaf hash of entry {first + i}: the tile or "
                "the entry was changed",
                first + i,
            )
        return VerifyFailure(
            "tile",
            f"{ref.path}: hash {i} is not the hash recomputed from the entries below it: the "
            "tile was changed",
        )

    def _reached(self, cps: collections.deque[CheckpointSeen]) -> None:
        while cps and cps[0].size == self.frontier.size:
            cp = cps.popleft()
            computed = self.frontier.root()
            if computed != cp.root:
                raise VerifyFailure(
                    "tree",
                    f"checkpoint at size {cp.size}: root recomputed from the entries is "
                    f"{base64.b64encode(computed).decode()}, the signed root is "
                    f"{base64.b64encode(cp.root).decode()}: an entry up to here was changed"
                    + (" (or the log forked before this run's first entry)" if self.state else ""),
                    cp.size - 1,
                )
            self.last_checkpoint = cp

    # ---- tiles above level 0 ------------------------------------------------------------------

    def _push_level(self, level: int, position: int, h: bytes) -> None:
        n, i = divmod(position, TILE_WIDTH)
        buf = self.levels.get(level)
        if buf is None or buf.index != n:
            prefix: list[bytes] = []
            if i:  # continuing mid-tile: what is before was verified by an earlier run
                width = tile_width(level, n, self.size)
                data = self._tile_bytes(TileRef(level, n, width))
                prefix = [data[32 * k : 32 * k + 32] for k in range(i)]
            buf = self.levels[level] = _Level(n, prefix)
        buf.hashes.append(h)
        if len(buf.hashes) == TILE_WIDTH:
            self._check_level(level, buf, TILE_WIDTH)
            del self.levels[level]
            self._push_level(level + 1, n, merkle.perfect_root(buf.hashes))

    def _check_level(self, level: int, buf: _Level, width: int) -> None:
        ref = TileRef(level, buf.index, width)
        tile = self._tile_bytes(ref)
        self.report.tiles += 1
        computed = b"".join(buf.hashes)  # the hashes before checked_from are the tile's own
        if tile != computed:
            raise self._tile_mismatch(ref, tile, computed, 0)

    def _close_levels(self) -> None:
        for level, buf in sorted(self.levels.items()):
            width = tile_width(level, buf.index, self.size)
            if width != len(buf.hashes):
                raise VerifyFailure(
                    "tree",
                    f"level {level} holds {len(buf.hashes)} hashes of tile {buf.index}, the "
                    f"tree of {self.size} has {width}",
                )
            self._check_level(level, buf, width)
        self.levels.clear()

    # ---- replay -------------------------------------------------------------------------------

    def _replay(self, done: _Done, a: int, b: int) -> None:
        registry = self.registry
        if registry is None:
            return
        scan = done.scan
        assert scan is not None
        kinds, first_seq = scan.kinds, done.index * TILE_WIDTH
        moves: array[int] | None = None
        ordinal = kinds.count(TRANSFER, 0, a)  # moves hold the transfers only, in order
        i = a
        while i < b:
            if kinds[i] == TRANSFER:
                j = i
                while j < b and kinds[j] == TRANSFER:
                    j += 1
                if moves is None:
                    moves = array("q", scan.moves)
                applied = registry.transfers(moves, ordinal, ordinal + j - i)
                ordinal += applied
                i += applied
                if i == j:
                    continue
                ordinal += 1  # this one takes the general path (it may still apply)
            body = scan.others.get(i)
            self._apply(first_seq + i, body if body is not None else self._entries(done)[i])
            i += 1

    def _apply(self, seq: int, body: bytes) -> None:
        assert self.registry is not None and self.auction_state is not None
        assert self.listing_state is not None
        try:
            entry = decode_canonical_entry(body)
        except EntryError as exc:  # pragma: no cover - the scan checked it
            raise VerifyFailure("entry", f"bytes are not a valid entry ({exc})", seq) from None
        if entry.type not in KNOWN_TYPES:
            raise VerifyFailure("replay", f"unknown entry type {entry.type!r}", seq)
        try:
            produced = self.registry.apply(entry) if entry.type in REGISTRY_TYPES else []
            self.auction_state.apply(entry, self.registry, hashlib.sha256(body).digest())
            self.listing_state.apply(entry, self.registry)
        except ReplayError as exc:
            raise VerifyFailure("replay", f"cannot be replayed: {exc}", seq) from None
        for table, _ in produced:
            self.report.records[table] = self.report.records.get(table, 0) + 1

    def _finish_replay(self) -> None:
        assert self.registry is not None and self.auction_state is not None
        assert self.listing_state is not None
        try:
            self.auction_state.finish()
            self.listing_state.finish()
        except ReplayError as exc:
            raise VerifyFailure("replay", f"cannot be replayed: {exc}") from None
        problems = self.registry.supply_violations()
        if problems:
            raise VerifyFailure("supply", "supply invariant broken: " + "; ".join(problems[:5]))
        r = self.registry
        batches = r.batches.values()
        self.report.registry = {
            "organizations": len(r.organizations),
            "accounts": len(r.accounts),
            "methodologies": len(r.methodologies),
            "projects": len(r.projects),
            "batches": len(r.batches),
            "issued_kg": sum(b["issued"] for b in batches),
            "retired_kg": sum(b["retired"] for b in batches),
            "cancelled_kg": sum(b["cancelled"] for b in batches),
            "escrow_holds_open": sum(1 for h in r.holds.values() if h["remaining"]),
        }
        states = collections.Counter(a["state"] for a in self.auction_state.auctions.values())
        self.report.auctions = {
            "auctions": len(self.auction_state.auctions),
            "by_state": dict(sorted(states.items())),
            "bids": len(self.auction_state.bids),
            "english_bids": len(self.auction_state.raises),
            "clock_bids": len(self.auction_state.clock_bids),
            "recleared": sum(
                1 for a in self.auction_state.auctions.values() if a.get("result_sha256")
            ),
        }
        listed = self.listing_state
        self.report.listings = {
            "listings": len(listed.listings),
            "by_state": dict(
                sorted(collections.Counter(x["state"] for x in listed.listings.values()).items())
            ),
            "purchases": len(listed.purchases),
        }

    # ---- after the walk -----------------------------------------------------------------------

    def _consistency(self, checkpoints: list[CheckpointSeen]) -> None:
        """RFC 9162 consistency proofs between consecutive checkpoints, from the tiles (which
        the walk checked): what a client holding the older one would be given."""
        previous = None
        for cp in checkpoints:
            if previous is not None and 0 < previous.size < cp.size:
                self._consistent(previous.size, previous.root, cp, "consistency")
            previous = cp

    def _bundle_auctions(self) -> None:
        """An export bundle's auctions/<id>.json against the replay: the revealed key and the
        result's hash must be those the ledger's auction.clear entry published."""
        found = self.source.auctions()
        if not found or self.auction_state is None:
            if found:
                self.report.notes.append(f"{len(found)} auction files not compared (--no-replay)")
            return
        for item in found:
            auction_id = item.get("auction")
            replayed = (
                self.auction_state.auctions.get(auction_id) if type(auction_id) is int else None
            )
            where = f"auctions/{auction_id}.json"
            if replayed is None:
                raise VerifyFailure("auction", f"{where}: the ledger has no auction {auction_id}")
            for key in ("private_key", "result_sha256"):
                if item.get(key) != replayed.get(key):
                    raise VerifyFailure(
                        "auction",
                        f"{where}: {key} is not the one the ledger's auction.clear entry published",
                    )
            self.report.bundle_auctions += 1


@dataclass
class _Job:
    """One entry bundle to check, and whether its leaves must come back."""

    index: int
    width: int
    skip: int
    replay: bool
    want_leaves: bool

    @property
    def bundle_path(self) -> str:
        return TileRef(ENTRIES, self.index, self.width).path

    @property
    def u32_path(self) -> str:
        return TileRef(ENTRIES_U32, self.index, self.width).path

    @property
    def tile_path(self) -> str:
        return TileRef(0, self.index, self.width).path


@dataclass
class _Done:
    """A bundle checked (in this process or a worker): what the walk needs of it."""

    index: int
    width: int
    skip: int
    kind: str | None  # None: the bundle is missing
    scan: BundleScan | None = None
    error: str | None = None  # the bundle does not split into its entries
    tile_missing: bool = False
    tile: bytes | None = None  # the level-0 tile, when it does not match the leaves
    kind_ok: bool = True  # a u32 bundle holds an entry over 65,535 bytes
    data: bytes | None = None  # the bundle, when read by this process
    entries: list[bytes] | None = None

    @property
    def end(self) -> int:
        return self.index * TILE_WIDTH + self.width


def _process(job: _Job, kind: str, data: bytes | None, tile: bytes | None) -> _Done:
    """Scan one bundle and compare its level-0 tile (in a worker, or here)."""
    done = _Done(job.index, job.width, job.skip, kind if data is not None else None)
    if data is None:
        return done
    try:
        scan = scan_bundle(job.index * TILE_WIDTH, data, kind, job.width, job.skip, job.replay)
    except TileError as exc:
        done.error = str(exc)
        return done
    done.tile_missing = tile is None
    tile_ok = tile == scan.leaves
    if tile is not None and not tile_ok:
        done.tile = tile
    if kind == ENTRIES_U32:
        done.kind_ok = bundle_kind(split_bundle(data, kind, job.width)) == ENTRIES_U32
    if tile_ok and not job.want_leaves and scan.problem is None:
        scan = scan._replace(leaves=b"")
    done.scan = scan
    return done


_READER: Reader | None = None
_BATCH = 8  # bundles per task: amortizes the cost of a task


def _init_worker(reader: Reader) -> None:
    global _READER
    _READER = reader
    # A scan makes no reference cycles: reference counting frees everything, and the cyclic
    # collector would only rescan the parsed entries of a bundle while they are alive.
    gc.disable()


def _work(jobs: list[_Job]) -> list[_Done]:
    reader = _READER
    assert reader is not None
    out = []
    for job in jobs:
        kind, data = ENTRIES, reader.read(job.bundle_path)
        if data is None:
            kind, data = ENTRIES_U32, reader.read(job.u32_path)
        out.append(_process(job, kind, data, reader.read(job.tile_path)))
    return out


def _in_workers(pool: Pool, workers: int, jobs: Iterator[_Job]) -> Iterator[_Done]:
    """``_work`` over batches of jobs in the pool, results in order, a bounded window of
    batches in flight (memory stays flat whatever the log's size)."""
    pending: collections.deque[AsyncResult[list[_Done]]] = collections.deque()
    window = workers * _WINDOW_PER_WORKER
    batch: list[_Job] = []
    for job in jobs:
        batch.append(job)
        if len(batch) == _BATCH:
            pending.append(pool.apply_async(_work, (batch,)))
            batch = []
            if len(pending) >= window:
                yield from pending.popleft().get()
    if batch:
        pending.append(pool.apply_async(_work, (batch,)))
    while pending:
        yield from pending.popleft().get()
