"""A C2SP tlog-witness (c2sp.org/tlog-witness): its HTTP server, its state, and a client.

The witness cosigns a log's checkpoint only when it is consistent with the last checkpoint it
cosigned for that log, so a log operator who shows different trees to different parties (a
fork) or rolls its tree back is caught: no witness cosigns both sides. For each log it keeps
one record, the size and root hash of the latest cosigned checkpoint, in a state file.

Server: ``POST <prefix>/add-checkpoint`` (answers 200, 400, 403, 404, 409, 422 exactly as
tlog-witness §add-checkpoint says) and ``GET <prefix>/<hex SHA-256 of origin>/checkpoint``
(§Monitor Retrieval Mechanism). Standard library only (``http.server``).

Client: :func:`witness_add_checkpoint` submits a checkpoint and returns the cosignature lines;
:func:`bluecarbon_audit.cosignature.verify_cosignature` checks one of them.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import merkle
from .cosignature import Cosigner
from .note import (
    Checkpoint,
    NoteError,
    SignatureVerificationError,
    UnverifiedNoteError,
    Verifier,
    open_note,
)

__all__ = [
    "MAX_PROOF_LINES",
    "LogConfig",
    "Rejection",
    "WitnessConflictError",
    "WitnessError",
    "WitnessServer",
    "WitnessState",
    "add_checkpoint",
    "load_logs_file",
    "parse_log_flag",
    "witness_add_checkpoint",
    "write_key_file",
]

# tlog-witness §add-checkpoint: "The client MUST NOT send more than 63 consistency proof lines."
MAX_PROOF_LINES = 63
# A checkpoint with 100 ML-DSA-44 signatures (signed-note's largest) is under 400 KB.
MAX_BODY = 1 << 20
SIZE_CONTENT_TYPE = "text/x.tlog.size"  # tlog-witness §add-checkpoint, the 409 answer
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]*)")
_STATE_VERSION = 1


# --- Configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LogConfig:
    """A log the witness cosigns: its origin and the keys trusted to sign its checkpoints."""

    origin: str
    verifiers: tuple[Verifier, ...]


def parse_log_flag(text: str) -> tuple[str, Verifier]:
    """``ORIGIN=VERIFIERKEY`` (split at the first ``=``: an origin holding one cannot be given
    this way; use a logs file)."""
    origin, sep, vkey = text.partition("=")
    if not sep or not origin:
        raise ValueError(f"expected ORIGIN=VERIFIERKEY, got {text!r}")
    return origin, Verifier.from_string(vkey.strip())


def load_logs_file(path: str | os.PathLike[str]) -> list[tuple[str, Verifier]]:
    """One ``<origin> <verifier key>`` per line (a log with several keys has several lines);
    blank lines and lines starting with ``#`` are skipped."""
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected '<origin> <verifier key>'")
        pairs.append((fields[0], Verifier.from_string(fields[1])))
    return pairs


def logs_of(pairs: Iterable[tuple[str, Verifier]]) -> dict[str, LogConfig]:
    keys: dict[str, list[Verifier]] = {}
    for origin, verifier in pairs:
        keys.setdefault(origin, []).append(verifier)
    return {origin: LogConfig(origin, tuple(vs)) for origin, vs in keys.items()}


def write_key_file(path: str | os.PathLike[str], cosigner: Cosigner) -> None:
    """Write the witness's private key, readable by its owner only; never over an existing
    file (a lost witness key cannot be replaced without telling every verifier)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(cosigner.to_string() + "\n")
        out.flush()
        os.fsync(out.fileno())


def read_key_file(path: str | os.PathLike[str]) -> Cosigner:
    return Cosigner.from_string(Path(path).read_text(encoding="utf-8").strip())


# --- State -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """The latest checkpoint cosigned for one log."""

    size: int
    root: bytes
    checkpoint: str  # the submitted note with our cosignature appended, for monitors


class WitnessState:
    """Per origin, the latest cosigned (size, root), in one JSON file.

    :meth:`transaction` holds a thread lock and an exclusive ``flock`` on ``<path>.lock`` while
    it reads the file, lets the caller check and change the records, and writes the file back
    (temporary file, fsync, rename, fsync of the directory). So the check of the old size and
    the update are one atomic step, across threads and across processes sharing the file
    (tlog-witness §add-checkpoint: otherwise two requests could roll the stored size back).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()
        self.read()  # a corrupt state file stops the witness at start-up, never resets it

    def read(self) -> dict[str, Record]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(raw)
            if data.get("version") != _STATE_VERSION:
                raise ValueError(f"unknown state version {data.get('version')!r}")
            return {
                origin: Record(
                    size=int(r["size"]),
                    root=base64.b64decode(r["root"], validate=True),
                    checkpoint=str(r["checkpoint"]),
                )
                for origin, r in data["logs"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            # Starting empty would let the log roll back everything this witness cosigned.
            raise RuntimeError(f"witness state {self.path} is unreadable: {exc}") from exc

    def _write(self, records: Mapping[str, Record]) -> None:
        data = {
            "version": _STATE_VERSION,
            "logs": {
                origin: {
                    "size": r.size,
                    "root": base64.b64encode(r.root).decode(),
                    "checkpoint": r.checkpoint,
                }
                for origin, r in sorted(records.items())
            },
        }
        directory = self.path.parent
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(data, indent=1).encode() + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        # The rename is durable only once the directory entry is.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextmanager
    def transaction(self) -> Iterator[dict[str, Record]]:
        """Yield the records under the lock; write them back if the block changed them."""
        with self._thread_lock, open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            records = self.read()
            before = dict(records)
            yield records
            if records != before:
                self._write(records)

    def get(self, origin: str) -> Record | None:
        with self._thread_lock:
            return self.read().get(origin)


# --- add-checkpoint --------------------------------------------------------------------------


class Rejection(Exception):
    """An add-checkpoint request refused with an HTTP status (tlog-witness §add-checkpoint)."""

    def __init__(
        self, status: int, message: str, *, body: str | None = None, content_type: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else message + "\n"
        self.content_type = content_type or "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Request:
    old_size: int
    proof: tuple[bytes, ...]
    note: str


def parse_request(body: bytes) -> Request:
    """tlog-witness §add-checkpoint: ``old <size>``, at most 63 base64 hashes, an empty line,
    the checkpoint note; every line ends in a newline. Anything else is a 400."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejection(400, "request body is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise Rejection(400, "request body has no empty line before the checkpoint")
    old_line, *proof_lines = head.split("\n")
    match = _OLD_LINE.fullmatch(old_line)
    if not match:
        raise Rejection(400, "first line must be 'old <size>' (decimal, no leading zeroes)")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise Rejection(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in proof_lines:
        try:
            digest = binascii.a2b_base64(line, strict_mode=True)
        except binascii.Error:
            raise Rejection(400, "a consistency proof line is not base64") from None
        if len(digest) != merkle.HASH_SIZE or base64.b64encode(digest).decode() != line:
            raise Rejection(400, "a consistency proof line is not the base64 of 32 bytes")
        proof.append(digest)
    return Request(int(match[1]), tuple(proof), note)


def _checkpoint_of(note: str, logs: Mapping[str, LogConfig]) -> Checkpoint:
    split = note.rfind("\n\n")
    if split < 0:
        raise Rejection(400, "checkpoint note has no signatures")
    try:
        checkpoint = Checkpoint.from_text(note[: split + 1])
    except NoteError as exc:
        raise Rejection(400, f"malformed checkpoint: {exc}") from None
    log = logs.get(checkpoint.origin)
    if log is None:
        raise Rejection(404, f"unknown log origin {checkpoint.origin!r}")
    try:
        open_note(note, log.verifiers)  # ignores lines by other keys (signed-note)
    except (UnverifiedNoteError, SignatureVerificationError) as exc:
        raise Rejection(403, f"no valid signature by a trusted key of the log: {exc}") from None
    except NoteError as exc:
        raise Rejection(400, f"malformed checkpoint note: {exc}") from None
    return checkpoint


def add_checkpoint(
    *, body: bytes, logs: Mapping[str, LogConfig], state: WitnessState, cosigner: Cosigner
) -> str:
    """Run tlog-witness §add-checkpoint on a request body; return the cosignature line(s).

    Raises :class:`Rejection` with the status the specification requires."""
    request = parse_request(body)
    checkpoint = _checkpoint_of(request.note, logs)
    if request.old_size > checkpoint.size:
        raise Rejection(400, f"old size {request.old_size} is above {checkpoint.size}")
    # §add-checkpoint: a checkpoint of size zero must have the empty tree's root.
    if checkpoint.size == 0 and checkpoint.root != merkle.EMPTY_ROOT:
        raise Rejection(422, "a checkpoint of size 0 must have the root of the empty tree")
    with state.transaction() as records:
        held = records.get(checkpoint.origin)
        held_size = held.size if held else 0
        if request.old_size != held_size:
            raise Rejection(
                409,
                f"old size {request.old_size} is not {held_size}, the last cosigned size",
                body=f"{held_size}\n",
                content_type=SIZE_CONTENT_TYPE,
            )
        if request.old_size == 0:
            # The empty tree is consistent with any tree: no proof, and none may be sent.
            if request.proof:
                raise Rejection(422, "a consistency proof from size 0 must be empty")
        else:
            assert held is not None  # held_size == old_size > 0
            try:
                # RFC 6962 §2.1.2 / RFC 9162 §2.1.4.2; equal sizes need equal roots (a fork).
                merkle.verify_consistency(
                    held.size, checkpoint.size, held.root, checkpoint.root, request.proof
                )
            except merkle.ProofError as exc:
                raise Rejection(422, f"not consistent with the last cosigned tree: {exc}") from None
        # Signed under the lock: "as of this time, the largest tree seen" stays true until the
        # record is written, and nobody is answered before it is durable.
        line = cosigner.cosign(checkpoint.to_text()).to_line()
        records[checkpoint.origin] = Record(checkpoint.size, checkpoint.root, request.note + line)
    return line


# --- HTTP ------------------------------------------------------------------------------------


class WitnessServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of logs submitting at once would see
    # connections reset before a thread ever takes them.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        cosigner: Cosigner,
        logs: Mapping[str, LogConfig],
        state: WitnessState,
        prefix: str = "",
        quiet: bool = False,
    ) -> None:
        self.cosigner = cosigner
        self.logs = dict(logs)
        self.state = state
        self.prefix = prefix.rstrip("/")
        self.quiet = quiet
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}{self.prefix}"


class _Handler(BaseHTTPRequestHandler):
    server: WitnessServer
    protocol_version = "HTTP/1.1"  # keep-alive (tlog-witness §HTTP Interface: SHOULD)

    def _send(
        self, status: int, body: str, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        if self.path != f"{self.server.prefix}/add-checkpoint":
            self._send(404, "not found\n")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._send(411, "Content-Length required\n")
            return
        if int(length) > MAX_BODY:
            self.close_connection = True
            self._send(413, "request body too large\n")
            return
        body = self.rfile.read(int(length))
        try:
            line = add_checkpoint(
                body=body,
                logs=self.server.logs,
                state=self.server.state,
                cosigner=self.server.cosigner,
            )
        except Rejection as rejection:
            # §add-checkpoint: the witness MAY log refused requests (they may prove misbehavior).
            self.log_message("add-checkpoint refused (%d): %s", rejection.status, rejection)
            self._send(rejection.status, rejection.body, rejection.content_type)
            return
        self._send(200, line)

    def do_GET(self) -> None:
        # §Monitor Retrieval Mechanism: GET <prefix>/<hex SHA-256 of the origin>/checkpoint.
        prefix = f"{self.server.prefix}/"
        parts = self.path[len(prefix) :].split("/") if self.path.startswith(prefix) else []
        if len(parts) == 2 and parts[1] == "checkpoint":
            for origin in self.server.logs:
                if hashlib.sha256(origin.encode()).hexdigest() == parts[0]:
                    record = self.server.state.get(origin)
                    if record is not None:
                        self._send(200, record.checkpoint)
                        return
        self._send(404, "not found\n")

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")


# --- Client ----------------------------------------------------------------------------------


class WitnessError(Exception):
    """The witness refused the checkpoint or could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"witness answered {status}: {message}" if status else message)
        self.status = status
        self.message = message


class WitnessConflictError(WitnessError):
    """409: ``old`` was not the size the witness last cosigned; ``size`` is that size."""

    def __init__(self, size: int) -> None:
        super().__init__(409, f"the witness last cosigned size {size}")
        self.size = size


def witness_add_checkpoint(
    url: str,
    old_size: int,
    proof: Sequence[bytes],
    note_text: str,
    *,
    timeout: float = 10.0,
) -> list[str]:
    """Submit a signed checkpoint to the witness at ``url`` (its submission prefix, e.g.
    ``http://127.0.0.1:8080``) with a consistency proof from ``old_size``.

    Returns the cosignature lines (each ``— <name> <base64>\\n``), ready to be appended to the
    note and checked with :func:`bluecarbon_audit.cosignature.verify_cosignature`. Raises
    :class:`WitnessConflictError` (with the witness's size) on 409, :class:`WitnessError`
    otherwise."""
    if len(proof) > MAX_PROOF_LINES:
        raise ValueError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"witness URL must be http:// or https://, got {url!r}")
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    body = ("".join(lines) + note_text).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url.rstrip("/") + "/add-checkpoint",
        data=body,
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer: str = response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        if error.code == 409 and error.headers.get_content_type() == SIZE_CONTENT_TYPE:
            size = text.strip()
            if size.isdigit():
                raise WitnessConflictError(int(size)) from None
        raise WitnessError(error.code, text.strip()) from None
    except (urllib.error.URLError, OSError) as error:
        raise WitnessError(0, f"witness at {url} unreachable: {error}") from None
    cosignatures = answer.splitlines(keepends=True)
    # §add-checkpoint: one or more signature lines, each "—" ... newline.
    if not cosignatures or not all(
        line.startswith("\u2014 ") and line.endswith("\n") for line in cosignatures
    ):
        raise WitnessError(200, "the answer is not a list of signature lines")
    return cosignatures
