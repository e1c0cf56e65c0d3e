"""Witness cosignatures of checkpoints: c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``.

A cosignature is a signed-note signature line on a checkpoint::

    — <cosigner name> base64(key ID[4] || timestamp[8, big-endian] || Ed25519 signature[64])

over the message ``"cosignature/v1\\ntime <timestamp>\\n" + <checkpoint body>`` (tlog-cosignature
§Ed25519 signed message). The key ID uses signature type 0x04, not the 0x01 of a plain Ed25519
note key, so a log's verifier never mistakes a witness's line for the log's own and the other
way round (signed-note §Signature types).

Key files are Go ``note`` signer keys (``PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed)``), as
transparency-dev/formats' ``NewSignerForCosignatureV1`` reads them; the published verifier key
is the 0x04 form, ``<name>+<hex key ID>+base64(0x04 || public key)``.

Pure: no I/O but the clock when no timestamp is given.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .note import (
    ALG_ED25519,
    Checkpoint,
    NoteError,
    Signer,
    _b64encode,
    _check_name,
    _parse_signature_line,
    _split_key,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "MAX_TIMESTAMP",
    "Cosignature",
    "CosignatureError",
    "CosignatureVerifier",
    "Cosigner",
    "checkpoint_body",
    "cosignatures_in",
    "key_id",
    "signed_message",
    "verify_cosignature",
]

# signed-note §Signature types: 0x04 is "Timestamped Ed25519 checkpoint cosignatures".
ALG_COSIGNATURE_V1 = 0x04
# tlog-cosignature §Format: the timestamp "MUST NOT exceed 2^63 - 1".
MAX_TIMESTAMP = 2**63 - 1
_HEADER = "cosignature/v1\n"
_TIMESTAMP = struct.Struct(">Q")  # RFC 8446 §3.3: u64, big-endian
_SIGNATURE_SIZE = 64


class CosignatureError(NoteError):
    """A cosignature, witness key or the checkpoint it is checked against is wrong."""


def _name(name: str) -> None:
    try:
        _check_name(name)
    except NoteError as exc:
        raise CosignatureError(str(exc)) from None


def key_id(name: str, public_key: bytes) -> bytes:
    """tlog-cosignature §Format: SHA-256(<name> || "\\n" || 0x04 || public key)[:4]."""
    _name(name)
    if len(public_key) != 32:
        raise CosignatureError("Ed25519 public key must be 32 bytes")
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key
    ).digest()[:4]


def checkpoint_body(checkpoint: str) -> str:
    """The checkpoint's body (origin, size, root, extensions), from a signed note or the body.

    A body has no empty line (tlog-checkpoint §Note text: every line is non-empty), so text with
    one is a note, whose body ends at its last empty line (signed-note §Format)."""
    split = checkpoint.rfind("\n\n")
    body = checkpoint if split < 0 else checkpoint[: split + 1]
    try:
        Checkpoint.from_text(body)
    except NoteError as exc:
        raise CosignatureError(f"not a checkpoint: {exc}") from None
    return body


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    """tlog-cosignature §Ed25519 signed message: a header line, a time line, then the whole
    checkpoint body including extension lines and the final newline."""
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError(f"timestamp must be an integer in [0, {MAX_TIMESTAMP}]")
    body = checkpoint_body(checkpoint_text)
    return f"{_HEADER}time {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class Cosignature:
    """One cosignature line, decoded: cosigner name, key ID, timestamp and Ed25519 signature."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    def to_line(self) -> str:
        """The signature line, with its final newline (signed-note §Signatures)."""
        raw = self.key_id + _TIMESTAMP.pack(self.timestamp) + self.signature
        return f"\u2014 {self.name} {_b64encode(raw)}\n"

    @classmethod
    def from_line(cls, line: str) -> Cosignature:
        """Parse one signature line (its final newline optional) as a ``cosignature/v1``."""
        try:
            parsed = _parse_signature_line(line.removesuffix("\n"))
        except NoteError as exc:
            raise CosignatureError(str(exc)) from None
        raw = parsed.signature  # what follows the key ID: timestamp || signature
        if len(raw) != _TIMESTAMP.size + _SIGNATURE_SIZE:
            raise CosignatureError(
                f"a cosignature/v1 is 4 + 8 + 64 bytes, this one is {4 + len(raw)}"
            )
        (timestamp,) = _TIMESTAMP.unpack(raw[: _TIMESTAMP.size])
        if timestamp > MAX_TIMESTAMP:
            raise CosignatureError("cosignature timestamp exceeds 2^63 - 1")
        return cls(parsed.name, parsed.key_hash, timestamp, raw[_TIMESTAMP.size :])


class CosignatureVerifier:
    """A witness's public key and name; checks its ``cosignature/v1`` lines."""

    def __init__(self, name: str, public_key: bytes) -> None:
        self.key_id = key_id(name, public_key)  # validates name and length
        self.name = name
        self.public_key = bytes(public_key)
        try:
            self._key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise CosignatureError("invalid Ed25519 public key") from None

    @classmethod
    def from_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse ``<name>+<hex key ID>+base64(0x04 || public key)``.

        A plain Ed25519 note key (type 0x01) of the same key is accepted too and read as its
        0x04 form, as transparency-dev/formats' ``NewVerifierForCosignatureV1`` does; its key
        ID must still be right for 0x01."""
        try:
            name, hash_, key = _split_key(vkey, "witness verifier")
        except NoteError as exc:
            raise CosignatureError(str(exc)) from None
        if key[0] not in (ALG_COSIGNATURE_V1, ALG_ED25519) or len(key) != 33:
            raise CosignatureError("witness verifier key must be Ed25519 (type 0x04 or 0x01)")
        expected = (
            key_id(name, key[1:])
            if key[0] == ALG_COSIGNATURE_V1
            else hashlib.sha256(name.encode("utf-8") + b"\n" + key).digest()[:4]
        )
        if hash_ != expected:
            raise CosignatureError("witness verifier key ID does not match the key")
        return cls(name, key[1:])

    def to_string(self) -> str:
        """The verifier key in its 0x04 form (public)."""
        encoded = _b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def matches(self, cosignature: Cosignature) -> bool:
        """Whether the line claims to be by this key (signed-note §Signatures: name and ID)."""
        return (cosignature.name, cosignature.key_id) == (self.name, self.key_id)

    def verify(self, checkpoint: str, cosignature: Cosignature) -> bool:
        """Whether ``cosignature`` is this key's valid cosignature of ``checkpoint`` (a signed
        note or its body)."""
        if not self.matches(cosignature) or len(cosignature.signature) != _SIGNATURE_SIZE:
            return False
        try:
            message = signed_message(checkpoint, cosignature.timestamp)
            self._key.verify(cosignature.signature, message)
        except (CosignatureError, InvalidSignature):
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CosignatureVerifier):
            return NotImplemented
        return (self.name, self.public_key) == (other.name, other.public_key)

    def __hash__(self) -> int:
        return hash((self.name, self.public_key))

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.to_string()!r})"


class Cosigner:
    """A witness's Ed25519 private key and name. Never log it or its to_string()."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key().public_bytes_raw()
        self.key_id = key_id(name, self.public_key)
        self.name = name

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        _name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_string(cls, skey: str) -> Cosigner:
        """Read a Go note signer key, ``PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed)``.

        Error messages never include the key."""
        try:  # Signer checks the format, the algorithm and the hash
            signer = Signer.from_string(skey)
        except NoteError as exc:
            raise CosignatureError(str(exc)) from None
        # PRIVATE+KEY+<name>+<hash>+<base64>: neither the name nor the hash holds a "+", the
        # base64 may.
        seed = base64.b64decode(skey.split("+", 4)[4])[1:]
        return cls(signer.name, Ed25519PrivateKey.from_private_bytes(seed))

    def to_string(self) -> str:
        """The private key in the Go note format (0x01 and its key hash). It is a secret."""
        return Signer(self.name, self._private_key).to_string()

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.public_key)

    def cosign(self, checkpoint: str, timestamp: int | None = None) -> Cosignature:
        """Cosign the checkpoint (a signed note or its body) at ``timestamp`` (now if None).

        Only a caller that has checked the checkpoint is consistent with every one it cosigned
        before may call this: the signature says so (tlog-cosignature §Ed25519 signed
        message)."""
        when = int(time.time()) if timestamp is None else timestamp
        message = signed_message(checkpoint, when)
        return Cosignature(self.name, self.key_id, when, self._private_key.sign(message))

    def __repr__(self) -> str:
        return f"Cosigner(name={self.name!r}, key_id={self.key_id.hex()!r})"


def _verifier(key: str | CosignatureVerifier) -> CosignatureVerifier:
    return key if isinstance(key, CosignatureVerifier) else CosignatureVerifier.from_string(key)


def verify_cosignature(
    witness_key: str | CosignatureVerifier, checkpoint: str, line: str
) -> Cosignature:
    """Check one cosignature line against a witness's verifier key and a checkpoint (a signed
    note or its body). Returns the decoded cosignature; raises CosignatureError."""
    verifier = _verifier(witness_key)
    cosignature = Cosignature.from_line(line)
    if not verifier.matches(cosignature):
        raise CosignatureError(
            f"line is by {cosignature.name}+{cosignature.key_id.hex()}, "
            f"not by {verifier.name}+{verifier.key_id.hex()}"
        )
    if not verifier.verify(checkpoint, cosignature):
        raise CosignatureError(f"cosignature by {verifier.name} does not verify")
    return cosignature


def cosignatures_in(
    note: str, witness_keys: Iterable[str | CosignatureVerifier]
) -> list[Cosignature]:
    """The valid cosignatures by the given witnesses on a (cosigned) checkpoint note.

    signed-note §Signatures: lines by other keys (the log's own, unknown witnesses) are
    ignored; a line by a given witness's name and key ID that fails to verify rejects the
    note (CosignatureError). Each witness counts once, for a quorum."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CosignatureError("malformed note: no signature lines")
    known = {(v.name, v.key_id): v for v in map(_verifier, witness_keys)}
    found: dict[tuple[str, bytes], Cosignature] = {}
    for line in note[split + 2 : -1].split("\n"):
        try:
            signature = _parse_signature_line(line)
        except NoteError as exc:
            raise CosignatureError(str(exc)) from None
        verifier = known.get((signature.name, signature.key_hash))
        if verifier is None:
            continue
        cosignature = Cosignature.from_line(line)
        if not verifier.verify(note, cosignature):
            raise CosignatureError(f"cosignature by {verifier.name} does not verify")
        found.setdefault((verifier.name, verifier.key_id), cosignature)
    return list(found.values())
