"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.note import *  # noqa: F403
from bluecarbon_audit.note import (  # noqa: F401
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    checkpoint_open,
    checkpoint_sign,
    open_note,
    sign_note,
)
