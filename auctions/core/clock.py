"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.auctions.clock import *  # noqa: F403
