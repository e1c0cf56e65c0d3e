"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.replay import *  # noqa: F403
from bluecarbon_audit.replay import (  # noqa: F401
    ENTRY_TYPES,
    RegistryState,
    ReplayError,
)
