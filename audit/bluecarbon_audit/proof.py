"""Offline proof that an entry is in the log: c2sp.org/tlog-proof.

::

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry's exact bytes>
    index 34
    <base64 hash>            (the RFC 9162 inclusion proof, leaf's sibling first)
    ...
    <empty line>
    <the checkpoint note, verbatim, with the log's signature and any witness cosignatures>

What the ``extra`` line holds is the application's choice (tlog-proof §Format); this registry
puts the entry itself there, so one file is enough: the verifier hashes it into the leaf, so a
changed byte breaks the proof (it is never trusted as such). ``--entry FILE`` gives the entry
out of band instead, or as well (then the two must be the same bytes).

Verification follows tlog-proof §Verifying a tlog proof: (1) the leaf hash of the entry, which
here must also be a canonical version-1 entry whose ``seq`` is the proof's index; (2) the
checkpoint's origin and a signature by a trusted log key; (3) the cosignatures of the known
witnesses, against the policy's quorum; (4) the inclusion proof to the checkpoint's root.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .cosignature import CosignatureError
from .entry import Entry, EntryError, decode_canonical_entry
from .merkle import HASH_SIZE, ProofError, leaf_hash, verify_inclusion
from .note import Checkpoint, NoteError, checkpoint_open
from .policy import Policy, Witnessed

__all__ = ["HEADER", "ProofFileError", "TlogProof", "VerifiedProof", "proof_verify"]

HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]*)")
_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class ProofFileError(ValueError):
    """A proof file that is malformed, or that does not prove what it claims."""


def _b64(text: str, what: str) -> bytes:
    if not _B64.fullmatch(text):
        raise ProofFileError(f"{what} is not standard base64")
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        raise ProofFileError(f"{what} is not standard base64") from None


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed (and cosigned) note, verbatim
    extra: bytes | None = None

    def to_text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode() for h in self.proof]
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str) -> TlogProof:
        """tlog-proof §Format, strictly."""
        head, sep, checkpoint = text.partition("\n\n")
        if not sep:
            raise ProofFileError("no empty line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise ProofFileError(f"the first line must be {HEADER}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            extra = _b64(rest[0][len("extra ") :], "the extra line")
            rest = rest[1:]
        if not rest or not (found := _INDEX.fullmatch(rest[0])):
            raise ProofFileError("expected the line 'index N' (decimal, no leading zeros)")
        hashes = []
        for i, line in enumerate(rest[1:]):
            h = _b64(line, f"proof line {i + 1}")
            if len(h) != HASH_SIZE:
                raise ProofFileError(f"proof line {i + 1} is not a 32-byte SHA-256 hash")
            hashes.append(h)
        if not checkpoint:
            raise ProofFileError("the checkpoint is missing")
        return cls(int(found.group(1)), tuple(hashes), checkpoint, extra)


@dataclass(frozen=True)
class VerifiedProof:
    entry: Entry
    entry_bytes: bytes
    checkpoint: Checkpoint
    log_keys: tuple[str, ...]  # "name+hash" of the log keys whose signature verified
    witnessed: Witnessed


def proof_verify(proof: TlogProof, *, policy: Policy, entry: bytes | None = None) -> VerifiedProof:
    """Verify ``proof`` with the entry it carries, or ``entry`` given out of band. Raises
    ``ProofFileError`` naming the first step that fails."""
    if not policy.logs:
        raise ProofFileError("no trusted log key: pass --key or --policy")
    # Step 1: the leaf.
    if entry is None:
        if proof.extra is None:
            raise ProofFileError("the proof carries no entry (no extra line): pass --entry FILE")
        entry = proof.extra
    elif proof.extra is not None and proof.extra != entry:
        raise ProofFileError("the entry given is not the one the proof carries in its extra line")
    try:
        decoded = decode_canonical_entry(entry)
    except EntryError as exc:
        raise ProofFileError(f"the entry is not a valid ledger entry ({exc})") from None
    if decoded.seq != proof.index:
        raise ProofFileError(
            f"the entry is seq {decoded.seq} but the proof is for index {proof.index}"
        )
    # Step 2: origin and the log's signature.
    try:
        body, opened = checkpoint_open(proof.checkpoint, policy.logs)
    except NoteError as exc:
        raise ProofFileError(
            f"the checkpoint's signature does not verify with a trusted log key ({exc})"
        ) from None
    if body.origin not in {s.name for s in opened.verified}:
        raise ProofFileError(
            f"checkpoint origin {body.origin!r} is not the name of the key that signed it"
        )
    # Step 3: witnesses.
    try:
        witnessed = policy.witnessed(proof.checkpoint)
    except CosignatureError as exc:
        raise ProofFileError(f"a witness cosignature does not verify ({exc})") from None
    if not witnessed.quorum_met:
        raise ProofFileError(
            "the checkpoint does not meet the witness quorum "
            f"{policy.describe_quorum()}: cosigned by {_names(witnessed.cosigners)}"
        )
    # Step 4: inclusion.
    try:
        verify_inclusion(leaf_hash(entry), proof.index, body.size, proof.proof, body.root)
    except ProofError as exc:
        raise ProofFileError(f"the inclusion proof does not verify ({exc})") from None
    keys = tuple(f"{s.name}+{s.key_hash.hex()}" for s in opened.verified)
    return VerifiedProof(decoded, entry, body, keys, witnessed)


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "no known witness"
