"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.auctions.english import *  # noqa: F403
