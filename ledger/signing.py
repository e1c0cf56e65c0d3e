"""The ledger's Ed25519 signing key and the set of verifier keys it has ever used.

The signer key lives in a file outside the database (``LEDGER_SIGNING_KEY_FILE``, in the
C2SP/Go note ``PRIVATE+KEY+...`` format). Verifier keys, old and current, are listed one per line
in ``LEDGER_VERIFIER_KEYS_FILE``; checkpoint verification trusts only that list (and keys given
on the command line), never anything stored in the database, so someone who can write the
database but not read the key cannot forge a checkpoint.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .core.note import Signer, Verifier

log = logging.getLogger(__name__)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def _append_verifier(verifier: Verifier) -> None:
    path = settings.LEDGER_VERIFIER_KEYS_FILE
    known = path.read_text().split() if path.exists() else []
    if verifier.to_string() not in known:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(verifier.to_string() + "\n")


# The signer last read, and which file it came from (path, device, inode, modification time).
_loaded: tuple[tuple[str, int, int, int], Signer] | None = None
_loading = threading.Lock()


def _identity(path: Path) -> tuple[str, int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (str(path), st.st_dev, st.st_ino, st.st_mtime_ns)


def get_signer() -> Signer:
    """The ledger's signer. Read from its key file once, and again whenever the file is
    replaced: ``manage.py ledger_key_rotate`` runs in its own process, and every web and Celery
    process then signs with the new key from its next signature on, without a restart (one
    stat per call)."""
    global _loaded
    path: Path = settings.LEDGER_SIGNING_KEY_FILE
    ident = _identity(path)
    loaded = _loaded
    if loaded is not None and ident is not None and loaded[0] == ident:
        return loaded[1]
    with _loading:
        ident = _identity(path)
        if ident is None:
            signer = _generate(path)
            ident = _identity(path)
        else:
            signer = Signer.from_string(path.read_text().strip())
            _append_verifier(signer.verifier())
        if ident is not None:
            _loaded = (ident, signer)
        return signer


def _generate(path: Path) -> Signer:
    """Development only: a key of its own when none is configured."""
    if settings.PRODUCTION:
        raise ImproperlyConfigured(
            f"ledger signing key {path} does not exist; production never generates one"
        )
    signer = Signer.generate(settings.LEDGER_ORIGIN)
    try:
        _write_private(path, signer.to_string())
    except FileExistsError:  # another process won the race: use its key
        return Signer.from_string(path.read_text().strip())
    _append_verifier(signer.verifier())
    log.warning(
        "Generated a DEVELOPMENT ledger signing key at %s (verifier key %s). "
        "Configure LEDGER_SIGNING_KEY_FILE in production.",
        path,
        signer.verifier().to_string(),
    )
    return signer


def trusted_verifiers(extra: list[str] | None = None) -> list[Verifier]:
    """Verifier keys from the keys file, plus the current signer's, plus ``extra``."""
    path: Path = settings.LEDGER_VERIFIER_KEYS_FILE
    lines = path.read_text().split() if path.exists() else []
    keys = {Verifier.from_string(line).to_string(): Verifier.from_string(line) for line in lines}
    if settings.LEDGER_SIGNING_KEY_FILE.exists() or not settings.PRODUCTION:
        current = get_signer().verifier()
        keys.setdefault(current.to_string(), current)
    for line in extra or []:
        keys.setdefault(line, Verifier.from_string(line))
    return list(keys.values())


def rotate_signing_key() -> tuple[Verifier, Verifier]:
    """Replace the signing key. The old verifier key stays in the keys file so that every
    checkpoint it signed keeps verifying; the old private key file is kept as ``*.retired-N``
    (we never delete a key, so nothing is lost by accident).

    The key file is replaced in one step (a rename over it), so a process signing meanwhile
    finds the old key or the new one, never no key; and the new verifier key is trusted before
    the new key can sign anything. Processes pick the new key up at their next signature."""
    path: Path = settings.LEDGER_SIGNING_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # One rotation at a time, across processes.
    with open(path.with_name(f"{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = get_signer()
        new = Signer.generate(settings.LEDGER_ORIGIN)
        fresh = path.with_name(f"{path.name}.new")
        fresh.unlink(missing_ok=True)  # left by a rotation that stopped before using it
        _write_private(fresh, new.to_string())
        n = 1
        while path.with_name(f"{path.name}.retired-{n}").exists():
            n += 1
        os.link(path, path.with_name(f"{path.name}.retired-{n}"))
        _append_verifier(new.verifier())
        os.replace(fresh, path)
    return old.verifier(), new.verifier()
