"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.scan import *  # noqa: F403
from bluecarbon_audit.scan import (  # noqa: F401
    HEADER,
    TRAILER,
    Run,
    parse_row,
    serve,
)
