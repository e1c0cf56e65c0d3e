"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.auctions.draws import *  # noqa: F403
from bluecarbon_audit.auctions.draws import (  # noqa: F401
    DOMAIN,
    Draws,
)
