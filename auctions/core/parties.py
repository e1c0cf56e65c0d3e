"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.auctions.parties import *  # noqa: F403
