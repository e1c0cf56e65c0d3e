"""Projects' documents: what a file is, and the store that keeps each file once by its hash.

A file's type is what its first bytes say (``sniff``): a PDF starts ``%PDF-``, a PNG and a JPEG
with their signatures, and plain text is UTF-8 without control characters. The type an
uploader claims must be that one, so a file is never served as something it is not.

The store is a directory (``settings.DOCUMENTS_DIR``) of files named by their SHA-256:
``sha256/ab/abcdef...``. A file is written (to a temporary name, synced, renamed) before the
transaction that records it commits, so a crash can leave a file that no row names, never a
row without its file. Such an orphan is harmless: the same bytes attached again find it and
keep it. Nothing here trusts what it reads back: ``read_verified`` re-hashes the file and
refuses bytes whose hash is not the one on the ledger.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings

from .core.replay import DOCUMENT_MAX_BYTES, DOCUMENT_MEDIA_TYPES
from .exceptions import (
    ErrorCode,
    IntegrityFailure,
    InvalidInput,
    TooLarge,
    Unprocessable,
    UnsupportedMediaType,
)

logger = logging.getLogger(__name__)

MAX_BYTES = DOCUMENT_MAX_BYTES
MEDIA_TYPES = DOCUMENT_MEDIA_TYPES
EXTENSIONS = {
    "application/pdf": "pdf",
    "text/plain": "txt",
    "image/png": "png",
    "image/jpeg": "jpg",
}
_CHUNK = 1 << 20
# C0 controls that plain text may hold: tab, line feed, form feed, carriage return.
_TEXT_CONTROLS = frozenset(b"\t\n\x0c\r")
_BINARY = bytes(c for c in range(32) if c not in _TEXT_CONTROLS) + b"\x7f"


def sniff(content: bytes) -> str | None:
    """The accepted media type ``content`` is, by its bytes; None for anything else."""
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(c in _BINARY for c in content):
        return None
    return "text/plain"


def media_type_of(claimed: object) -> str:
    """The claimed type without its parameters (``text/plain; charset=utf-8``), lowercased."""
    if not isinstance(claimed, str):
        raise UnsupportedMediaType("media_type must be text", code=ErrorCode.DOCUMENT_MEDIA_TYPE)
    return claimed.split(";", 1)[0].strip().lower()


def check(content: bytes, claimed: object) -> str:
    """The media type of an upload: one of ``MEDIA_TYPES``, the one claimed, and the one its
    bytes are. Raises (changing nothing) otherwise."""
    if not isinstance(content, bytes | bytearray | memoryview):
        raise InvalidInput("the file must be bytes", detail={"file": "invalid"})
    if len(content) == 0:
        raise InvalidInput(
            "the file is empty", code=ErrorCode.DOCUMENT_EMPTY, detail={"file": "empty"}
        )
    if len(content) > MAX_BYTES:
        raise too_large(len(content))
    media = media_type_of(claimed)
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"documents may be {', '.join(sorted(MEDIA_TYPES))}; not {media or 'untyped'}",
            code=ErrorCode.DOCUMENT_MEDIA_TYPE,
            detail={"media_type": "not_accepted", "accepted": sorted(MEDIA_TYPES)},
        )
    found = sniff(bytes(content[:_CHUNK]) if len(content) > _CHUNK else bytes(content))
    if found == "text/plain" and len(content) > _CHUNK:
        found = sniff(bytes(content))  # text must be text throughout
    if found != media:
        raise Unprocessable(
            f"the file is not {media}: its bytes are "
            + (found if found is not None else "of no accepted type"),
            code=ErrorCode.DOCUMENT_CONTENT_MISMATCH,
            detail={"media_type": "content_mismatch", "detected": found},
        )
    return media


def too_large(size: int | None = None) -> TooLarge:
    return TooLarge(
        f"a document may be at most {MAX_BYTES:,} bytes"
        + (f"; this one is {size:,}" if size is not None else ""),
        code=ErrorCode.DOCUMENT_TOO_LARGE,
        detail={"file": "too_large", "limit_bytes": MAX_BYTES},
    )


def path_for(sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a SHA-256: {sha256!r}")
    return Path(settings.DOCUMENTS_DIR) / "sha256" / sha256[:2] / sha256


def _hash_file(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def store(content: bytes) -> str:
    """Keep ``content`` under its SHA-256 and return that. Idempotent: a file already there
    with these bytes is kept (an orphan of an attach that never committed, or another
    project's copy); one there with other bytes (damaged, or swapped) is replaced by them."""
    digest = hashlib.sha256(content).hexdigest()
    target = path_for(digest)
    if _hash_file(target) == digest:
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)  # atomic: a reader sees the old file or the whole new one
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
    return digest


def read_verified(sha256: str, *, what: str) -> bytes:
    """The stored bytes of ``sha256``, re-hashed: ``IntegrityFailure`` if the file is missing
    or its bytes hash to anything else (then nothing of it is served)."""
    target = path_for(sha256)
    try:
        content = target.read_bytes()
    except FileNotFoundError:
        logger.error("%s: its file %s is missing from the document store", what, target)
        raise IntegrityFailure(
            f"{what}: the registry has lost its file; nothing is served",
            code=ErrorCode.DOCUMENT_MISSING,
            detail={"sha256": sha256},
        ) from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        logger.error(
            "%s: the stored file hashes to %s, the ledger says %s: refused", what, actual, sha256
        )
        raise IntegrityFailure(
            f"{what}: the stored file does not match the SHA-256 on the ledger "
            f"({sha256}); it has been changed and is not served",
            code=ErrorCode.DOCUMENT_INTEGRITY,
            detail={"sha256": sha256, "stored_sha256": actual},
        )
    return content


def filename(title: str, media_type: str, sha256: str) -> str:
    """A download's name: the title made safe for a file name (no path separators, nothing
    Windows refuses, no control characters), the type's extension."""
    safe = "".join("_" if c in '/\\:*?"<>|' or not c.isprintable() else c for c in title).strip(
        " ._"
    )
    return f"{(safe or sha256[:12])[:120]}.{EXTENSIONS[media_type]}"
