"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.auctions.replay import *  # noqa: F403
from bluecarbon_audit.auctions.replay import (  # noqa: F401
    AUCTION_ENTRY_TYPES,
    RULE_KEYS,
    AuctionState,
)
