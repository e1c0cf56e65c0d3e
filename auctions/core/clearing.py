"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.auctions.clearing import *  # noqa: F403
from bluecarbon_audit.auctions.clearing import (  # noqa: F401
    FORMATS,
    MAX_TIERS,
    TIE_RULES,
    UNDERSUBSCRIBED,
    Award,
    Checked,
    Outcome,
    Rules,
    RulesError,
    Tie,
    check_bid,
    checked_to_json,
    clear,
    outcome_to_json,
    rules_to_json,
)
