"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.auctions.onboarding import *  # noqa: F403
from bluecarbon_audit.auctions.onboarding import (  # noqa: F401
    DEPOSIT_OUT_STATES,
    MAX_REASON,
    admitted,
    applicant,
)
