"""Signed-note keys held in files, and the set of verifier keys each has ever used.

Two keys sign for this registry, each a C2SP/Go note ``PRIVATE+KEY+...`` in a file outside the
database, with every verifier key it has had (old and current) listed one per line in a keys
file of its own:

* the **checkpoint key** (``LEDGER_SIGNING_KEY_FILE``, ``LEDGER_VERIFIER_KEYS_FILE``): only the
  checkpoint signer reads it (``ledger/signer.py``, run by the Celery workers and by
  ``manage.py ledger_checkpoint``). Web processes never do, so it need not be on a web host.
* the **receipt key** (``AUCTION_RECEIPT_KEY_FILE``, ``AUCTION_RECEIPT_VERIFIER_KEYS_FILE``;
  ``auctions/receipts.py``): web processes sign bid receipts with it.

Verification trusts only a keys file (and keys given on the command line), never anything
stored in the database, so someone who can write the database but not read a key cannot forge
what it signs.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
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


def _identity(path: Path) -> tuple[str, int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (str(path), st.st_dev, st.st_ino, st.st_mtime_ns)


class KeyFile:
    """One signing key: its file, its verifier-keys file (both named by settings, read at each
    use so tests and tools can point them elsewhere) and the name new keys get."""

    def __init__(
        self, *, what: str, key_setting: str, keys_setting: str, name: Callable[[], str]
    ) -> None:
        self.what = what
        self.key_setting = key_setting
        self.keys_setting = keys_setting
        self.name = name
        # The signer last read, and which file it came from (path, device, inode, mtime).
        self._loaded: tuple[tuple[str, int, int, int], Signer] | None = None
        self._loading = threading.Lock()

    @property
    def path(self) -> Path:
        return Path(getattr(settings, self.key_setting))

    @property
    def keys_path(self) -> Path:
        return Path(getattr(settings, self.keys_setting))

    def signer(self) -> Signer:
        """The signer. Read from its key file once, and again whenever the file is replaced: a
        rotation runs in its own process, and every process holding the key then signs with
        the new one from its next signature on, without a restart (one stat per call)."""
        path = self.path
        ident = _identity(path)
        loaded = self._loaded
        if loaded is not None and ident is not None and loaded[0] == ident:
            return loaded[1]
        with self._loading:
            ident = _identity(path)
            if ident is None:
                signer = self._generate(path)
                ident = _identity(path)
            else:
                signer = Signer.from_string(path.read_text().strip())
                self._trust(signer.verifier())
            if ident is not None:
                self._loaded = (ident, signer)
            return signer

    def _generate(self, path: Path) -> Signer:
        """Development only: a key of its own when none is configured."""
        if settings.PRODUCTION:
            raise ImproperlyConfigured(
                f"{self.what} {path} ({self.key_setting}) does not exist; production never "
                "generates one"
            )
        signer = Signer.generate(self.name())
        try:
            _write_private(path, signer.to_string())
        except FileExistsError:  # another process won the race: use its key
            return Signer.from_string(path.read_text().strip())
        self._trust(signer.verifier())
        log.warning(
            "Generated a DEVELOPMENT %s at %s (verifier key %s). Configure %s in production.",
            self.what,
            path,
            signer.verifier().to_string(),
            self.key_setting,
        )
        return signer

    def _trust(self, verifier: Verifier) -> None:
        path = self.keys_path
        known = path.read_text().split() if path.exists() else []
        if verifier.to_string() not in known:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                fh.write(verifier.to_string() + "\n")

    def verifiers(self, extra: list[str] | None = None, *, current: bool = False) -> list[Verifier]:
        """The verifier keys in the keys file, plus ``extra``; with ``current``, also the
        current signer's (which reads the key: only where it is held). A key is written to the
        keys file before it first signs, so the file alone lists every key that ever signed."""
        path = self.keys_path
        lines = path.read_text().split() if path.exists() else []
        keys = {line: Verifier.from_string(line) for line in lines}
        if current:
            verifier = self.signer().verifier()
            keys.setdefault(verifier.to_string(), verifier)
        for line in extra or []:
            keys.setdefault(line, Verifier.from_string(line))
        return list(keys.values())

    def create(self) -> Verifier:
        """The first key, where there is none (``FileExistsError`` otherwise): how production
        gets one. Trusted before it is in place, as in a rotation."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f"{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists():
                raise FileExistsError(f"{path} exists: rotate it instead")
            new = Signer.generate(self.name())
            fresh = path.with_name(f"{path.name}.new")
            fresh.unlink(missing_ok=True)
            _write_private(fresh, new.to_string())
            self._trust(new.verifier())
            os.link(fresh, path)  # never over a key: fails if one appeared meanwhile
            fresh.unlink()
        return new.verifier()

    def rotate(self) -> tuple[Verifier, Verifier]:
        """Replace the key. The old verifier key stays in the keys file so that everything it
        signed keeps verifying; the old private key file is kept as ``*.retired-N`` (we never
        delete a key, so nothing is lost by accident).

        The key file is replaced in one step (a rename over it), so a process signing meanwhile
        finds the old key or the new one, never no key; and the new verifier key is trusted
        before the new key can sign anything. Processes pick the new key up at their next
        signature."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One rotation at a time, across processes.
        with open(path.with_name(f"{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            old = self.signer()
            new = Signer.generate(self.name())
            fresh = path.with_name(f"{path.name}.new")
            fresh.unlink(missing_ok=True)  # left by a rotation that stopped before using it
            _write_private(fresh, new.to_string())
            n = 1
            while path.with_name(f"{path.name}.retired-{n}").exists():
                n += 1
            os.link(path, path.with_name(f"{path.name}.retired-{n}"))
            self._trust(new.verifier())
            os.replace(fresh, path)
        return old.verifier(), new.verifier()


CHECKPOINT_KEY = KeyFile(
    what="ledger signing key",
    key_setting="LEDGER_SIGNING_KEY_FILE",
    keys_setting="LEDGER_VERIFIER_KEYS_FILE",
    name=lambda: settings.LEDGER_ORIGIN,
)


def get_signer() -> Signer:
    """The checkpoint signer's key. Only the checkpoint signer calls this (and tools run where
    it runs): web processes never read the checkpoint key."""
    return CHECKPOINT_KEY.signer()


def trusted_verifiers(extra: list[str] | None = None) -> list[Verifier]:
    """Every verifier key the log has signed checkpoints with (the keys file), plus ``extra``.
    The checkpoint key itself is not read: the signer adds a key to the file before it signs
    with it, and web processes, which publish this list, do not hold the key."""
    return CHECKPOINT_KEY.verifiers(extra)


def rotate_signing_key() -> tuple[Verifier, Verifier]:
    """Start signing checkpoints with a new key (``manage.py ledger_key_rotate``)."""
    return CHECKPOINT_KEY.rotate()
