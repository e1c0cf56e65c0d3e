"""Entry authentication: each entry carries a MAC made with a key the application holds and the
database does not.

Someone with database rights alone can append a row that continues the hash chain (the chain
and the Merkle tree are public arithmetic) and change a table to match. What they cannot make is
``mac = HMAC-SHA256(key, "bluecarbon/entry-mac/v1\\n" || SHA-256(entry bytes))``: the key lives
in ``LEDGER_ENTRY_KEY_FILE`` beside the signing key, read by the processes that append (web and
Celery workers), by the checkpoint signer, which signs no entry whose MAC does not verify, and
by ``ledger_verify``, which names the first entry whose MAC is missing or wrong. A MAC costs
about a microsecond, where a signature per entry would cost fifty.

The key file also says from which entry on entries are authenticated (``since``): 0 for a ledger
created with it, the ledger's size when an older ledger got its key (``manage.py
ledger_entry_key``); kept in the file, so the database cannot move it. Someone who holds the
application's secrets too can forge MACs: the signer's own state, the witnesses and the auditors
who keep earlier checkpoints are what catch that (docs/threat-model.md).
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from bluecarbon_audit.entry import EntryMacs
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

FORMAT = "bluecarbon-entry-key/v1"


@dataclass(frozen=True)
class EntryKey:
    key: bytes
    since: int  # entries from this seq on carry a MAC

    @functools.cached_property
    def _macs(self) -> EntryMacs:
        return EntryMacs(self.key)

    def mac(self, entry_hash: bytes) -> bytes:
        return self._macs(entry_hash)

    def check(self, seq: int, entry_hash: bytes, mac: bytes | memoryview | None) -> bool:
        """Whether entry ``seq``'s MAC is the one this key makes (before ``since``: no MAC)."""
        if seq < self.since:
            return mac is None
        return mac is not None and hmac.compare_digest(self.mac(entry_hash), bytes(mac))


def key_path() -> Path:
    return Path(settings.LEDGER_ENTRY_KEY_FILE)


_loaded: tuple[tuple[str, int, int], EntryKey] | None = None
_lock = threading.Lock()


def entry_key() -> EntryKey:
    """The key (read again when its file is replaced; generated in development)."""
    global _loaded
    path = key_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        with _lock:
            if not path.exists():
                _generate(path, since=0)
        st = path.stat()
    ident = (str(path), st.st_ino, st.st_mtime_ns)
    loaded = _loaded
    if loaded is not None and loaded[0] == ident:
        return loaded[1]
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ImproperlyConfigured(f"{path} is not an entry key file ({FORMAT})")
    key = EntryKey(bytes.fromhex(data["key"]), int(data["since"]))
    if len(key.key) != 32:
        raise ImproperlyConfigured(f"{path}: the key must be 32 bytes")
    _loaded = (ident, key)
    return key


def _generate(path: Path, *, since: int) -> EntryKey:
    if settings.PRODUCTION:
        raise ImproperlyConfigured(
            f"entry key {path} does not exist; create it with `manage.py ledger_entry_key`"
        )
    key = create_key(path, since=since)
    log.warning("Generated a DEVELOPMENT entry key at %s. Configure LEDGER_ENTRY_KEY_FILE.", path)
    return key


def create_key(path: Path, *, since: int) -> EntryKey:
    """A new key file (mode 0600, never over an existing one)."""
    key = EntryKey(secrets.token_bytes(32), since)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"format": FORMAT, "key": key.key.hex(), "since": since}, fh)
        fh.write("\n")
    return key
