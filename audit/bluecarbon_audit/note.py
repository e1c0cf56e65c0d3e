"""Signed notes (c2sp.org/signed-note, Ed25519 only) and checkpoints (c2sp.org/tlog-checkpoint).

Behaviour follows the reference implementation, Go's golang.org/x/mod/sumdb/note (note.go).
Pure functions: no I/O, no Django.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "Checkpoint",
    "Note",
    "NoteError",
    "Signature",
    "SignatureVerificationError",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "checkpoint_open",
    "checkpoint_sign",
    "key_hash",
    "open_note",
    "sign_note",
]

# signed-note §Signature types: 0x01 is Ed25519, the only type supported here.
ALG_ED25519 = 1
# Go's note.Open rejects notes with more than 100 signature lines
# (signed-note §Format: verifiers SHOULD limit, and MUST accept at least 16).
MAX_SIGNATURES = 100
# tlog-checkpoint §Note text: the tree size; uint64 as in transparency-dev/formats.
MAX_TREE_SIZE = 2**64 - 1

_PRIVATE_PREFIX = "PRIVATE+KEY+"
# signed-note §Format: each signature line starts with em dash (U+2014) and a space.
_SIG_PREFIX = "\u2014 "
# Go's unicode.IsSpace (the Unicode White_Space property), used by isValidName.
_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# RFC 4648 §4 standard base64 with padding, the grammar Go's base64.StdEncoding accepts.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_HASH_HEX = re.compile(r"[0-9a-fA-F]{8}")
# tlog-checkpoint §Note text: ASCII decimal, no leading zeroes unless the size is 0.
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")


class NoteError(ValueError):
    """A signed note, key string or checkpoint is malformed or fails to verify."""


class SignatureVerificationError(NoteError):
    """A signature line names a known key but does not verify (signed-note §Signatures).

    A witness answers it with 403, like a note with no known signature (c2sp.org/tlog-witness),
    where any other malformation is a 400, so it has its own class."""


class UnverifiedNoteError(NoteError):
    """The note parsed, but no signature came from a known key (Go: UnverifiedNoteError)."""

    def __init__(self, note: Note) -> None:
        super().__init__("note has no verifiable signatures")
        self.note = note


def _utf8(text: str, what: str) -> bytes:
    """Encode as UTF-8, rejecting lone surrogates (signed-note §Format: valid UTF-8)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid UTF-8") from None


def _note_bytes(text: str, what: str) -> bytes:
    """Check signed-note §Format: valid UTF-8, no ASCII control character but newline."""
    if any(ch < " " and ch != "\n" for ch in text):
        raise NoteError(f"{what} contains a control character")
    return _utf8(text, what)


def _is_valid_name(name: str) -> bool:
    """signed-note §Format: non-empty, no Unicode spaces, no '+'.

    Control characters are also refused: they can never appear in a valid note.
    """
    if not name or "+" in name or any(ch in _SPACES or ch < " " for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_name(name: str) -> None:
    if not _is_valid_name(name):
        raise NoteError(f"invalid key name {name!r}")


def _b64decode(text: str, what: str) -> bytes:
    """Decode standard padded base64 (RFC 4648 §4) exactly as Go's StdEncoding does."""
    if not _BASE64.fullmatch(text):
        raise NoteError(f"{what} is not valid base64")
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:  # pragma: no cover - the regex already enforces the grammar
        raise NoteError(f"{what} is not valid base64") from None


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hash(name: str, encoded_key: bytes) -> bytes:
    """signed-note §Signatures: key ID = SHA-256(key name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + encoded_key).digest()[:4]


def key_hash(name: str, public_key: bytes) -> bytes:
    """Return the 4-byte key ID of an Ed25519 key (signed-note §Ed25519 signatures)."""
    _check_name(name)
    if len(public_key) != 32:
        raise NoteError("Ed25519 public key must be 32 bytes")
    return _hash(name, bytes([ALG_ED25519]) + public_key)


def _split_key(text: str, kind: str) -> tuple[str, bytes, bytes]:
    """Split "<name>+<hash>+<keydata>" into name, 4-byte hash and decoded key (Go: chop)."""
    name, _, rest = text.partition("+")
    hash_hex, _, key64 = rest.partition("+")
    if not _is_valid_name(name) or not _HASH_HEX.fullmatch(hash_hex):
        raise NoteError(f"malformed {kind} key")
    key = _b64decode(key64, f"{kind} key data")
    if not key:
        raise NoteError(f"malformed {kind} key")
    return name, bytes.fromhex(hash_hex), key


class Verifier:
    """An Ed25519 public key with its name; verifies signatures by that key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        self.key_hash = key_hash(name, public_key)  # validates name and length
        self.name = name
        self.public_key = bytes(public_key)
        try:
            self._key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise NoteError("invalid Ed25519 public key") from None

    @classmethod
    def from_string(cls, vkey: str) -> Verifier:
        """Parse a verifier key "<name>+<hash>+base64(0x01 || public key)"."""
        name, hash_, key = _split_key(vkey, "verifier")
        # Go's NewVerifier checks the hash over the encoded key before the algorithm.
        if _hash(name, key) != hash_:
            raise NoteError("verifier key hash does not match the key")
        if key[0] != ALG_ED25519:
            raise NoteError(f"unknown verifier key algorithm {key[0]}")
        if len(key) != 33:
            raise NoteError("malformed verifier key: Ed25519 key must be 32 bytes")
        return cls(name, key[1:])

    def to_string(self) -> str:
        """Return the verifier key string (public)."""
        encoded = _b64encode(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_hash.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Report whether signature is a valid Ed25519 signature of message."""
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verifier):
            return NotImplemented
        return (self.name, self.public_key) == (other.name, other.public_key)

    def __hash__(self) -> int:
        return hash((self.name, self.public_key))

    def __repr__(self) -> str:
        return f"Verifier({self.to_string()!r})"


class Signer:
    """An Ed25519 private key with its name. Never log it or its to_string()."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.key_hash = key_hash(name, private_key.public_key().public_bytes_raw())
        self.name = name

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Create a signer with a fresh random key."""
        _check_name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_string(cls, skey: str) -> Signer:
        """Parse "PRIVATE+KEY+<name>+<hash>+base64(0x01 || 32-byte seed)".

        Error messages never include the key.
        """
        if not skey.startswith(_PRIVATE_PREFIX):
            raise NoteError("malformed signer key: missing PRIVATE+KEY prefix")
        name, hash_, key = _split_key(skey[len(_PRIVATE_PREFIX) :], "signer")
        if key[0] != ALG_ED25519:
            raise NoteError(f"unknown signer key algorithm {key[0]}")
        if len(key) != 33:
            raise NoteError("malformed signer key: Ed25519 seed must be 32 bytes")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(key[1:]))
        # Go's NewSigner: the hash is of the public key, so check it after deriving that key.
        if signer.key_hash != hash_:
            raise NoteError("signer key hash does not match the key")
        return signer

    def to_string(self) -> str:
        """Return the private signer key string. It is a secret."""
        seed = _b64encode(bytes([ALG_ED25519]) + self._private_key.private_bytes_raw())
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_hash.hex()}+{seed}"

    def sign(self, message: bytes) -> bytes:
        """Return the raw 64-byte Ed25519 signature of message (RFC 8032, deterministic)."""
        return self._private_key.sign(message)

    def verifier(self) -> Verifier:
        """Return the matching public Verifier."""
        return Verifier(self.name, self._private_key.public_key().public_bytes_raw())

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_hash={self.key_hash.hex()!r})"


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 4-byte key ID and the raw signature bytes."""

    name: str
    key_hash: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    """An opened note: its text and its verified and unverified signatures."""

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


def _signature_line(name: str, hash_: bytes, signature: bytes) -> str:
    # signed-note §Signatures: "— <key name> base64(32-bit key ID || signature)"
    return f"{_SIG_PREFIX}{name} {_b64encode(hash_ + signature)}\n"


def sign_note(text: str, *signers: Signer) -> str:
    """Sign text (which must end in a newline) and return the signed note."""
    # signed-note §Format: the text ends in a newline and contains no control characters.
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    message = _note_bytes(text, "note text")
    if not signers:
        raise NoteError("at least one signer is required")
    if len(signers) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    lines = [_signature_line(s.name, s.key_hash, s.sign(message)) for s in signers]
    # The blank line separates the text from the signatures; it is not signed.
    return text + "\n" + "".join(lines)


def _parse_signature_line(line: str) -> Signature:
    """Parse one signature line (without its newline), as Go's note.Open does."""
    if not line.startswith(_SIG_PREFIX):
        raise NoteError("malformed note: signature line must start with an em dash and a space")
    name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not _is_valid_name(name):
        raise NoteError(f"malformed note: invalid key name {name!r} in signature line")
    raw = _b64decode(b64, "signature")
    # 4-byte key ID plus at least one byte of signature.
    if len(raw) < 5:
        raise NoteError("malformed note: signature too short")
    return Signature(name=name, key_hash=raw[:4], signature=raw[4:])


def open_note(note: str, verifiers: Iterable[Verifier]) -> Note:
    """Parse note and verify its signatures against the known verifiers.

    Signatures by unknown keys are returned as unverified. A signature by a known key
    that fails to verify, or a note with no verified signature, raises NoteError.
    """
    _note_bytes(note, "note")

    # signed-note §Format: the text is separated from the signatures by the last blank line.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("malformed note: signature block must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    signed = text.encode("utf-8")  # the text includes its final newline

    known: dict[tuple[str, bytes], set[Verifier]] = {}
    for v in verifiers:
        known.setdefault((v.name, v.key_hash), set()).add(v)

    verified: dict[tuple[str, bytes], Signature] = {}
    unverified: dict[Signature, None] = {}  # ordered set
    for line in lines:
        sig = _parse_signature_line(line)
        candidates = known.get((sig.name, sig.key_hash))
        if not candidates:
            # signed-note §Signatures: MUST ignore signatures from unknown keys.
            # Like Go, keep them (once each) as unverified.
            unverified.setdefault(sig)
            continue
        if len(candidates) > 1:
            raise NoteError(f"ambiguous key {sig.name}+{sig.key_hash.hex()}")
        (verifier,) = candidates
        # signed-note §Signatures: a known key's signature MUST be verified, and a failure
        # rejects the whole note. (Go skips repeated lines by a key unverified; we check them.)
        if not verifier.verify(signed, sig.signature):
            raise SignatureVerificationError(
                f"invalid signature for key {sig.name}+{sig.key_hash.hex()}"
            )
        verified.setdefault((sig.name, sig.key_hash), sig)  # report each key once

    opened = Note(text=text, verified=tuple(verified.values()), unverified=tuple(unverified))
    # signed-note §Signatures: if no known key's signature verifies, MUST reject.
    if not opened.verified:
        raise UnverifiedNoteError(opened)
    return opened


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint note body: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # tlog-checkpoint §Note text: at least three non-empty lines.
        object.__setattr__(self, "extensions", tuple(self.extensions))
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise NoteError("checkpoint origin must be a non-empty single line")
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size must be an integer in [0, {MAX_TREE_SIZE}]")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise NoteError("checkpoint root hash must be 32 bytes")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext:
                raise NoteError("checkpoint extension lines must be non-empty single lines")

    def to_text(self) -> str:
        """Return the note text: one line each for origin, size, root, extensions."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly, so that to_text() gives back the same text."""
        if not text.endswith("\n"):
            raise NoteError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint needs origin, tree size and root hash lines")
        origin, size, root, *extensions = lines
        if not _TREE_SIZE.fullmatch(size):
            raise NoteError(f"malformed checkpoint tree size {size!r}")
        root_hash = _b64decode(root, "checkpoint root hash")
        # RFC 6962 SHA-256 root; require the canonical encoding of exactly 32 bytes.
        if len(root_hash) != 32 or _b64encode(root_hash) != root:
            raise NoteError("checkpoint root hash must be the base64 of 32 bytes")
        return cls(origin, int(size), root_hash, tuple(extensions))


def checkpoint_sign(checkpoint: Checkpoint, signer: Signer) -> str:
    """Return the checkpoint as a note signed by signer."""
    return sign_note(checkpoint.to_text(), signer)


def checkpoint_open(
    note: str, verifiers: Iterable[Verifier], origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Verify a checkpoint note, parse its body, and check its origin if one is given."""
    opened = open_note(note, verifiers)
    checkpoint = Checkpoint.from_text(opened.text)
    # tlog-checkpoint §Note text: the origin identifies the log; a client expecting a
    # particular log must not accept another log's checkpoint.
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(
            f"checkpoint origin {checkpoint.origin!r} does not match expected {origin!r}"
        )
    return checkpoint, opened
