"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.entry import *  # noqa: F403
from bluecarbon_audit.entry import (  # noqa: F401
    TRANSFER_BYTES,
    ZERO_HASH,
    Entry,
    EntryError,
    decode_canonical_entry,
    decode_entry,
    encode_entry,
    entry_hash,
    format_time,
)
