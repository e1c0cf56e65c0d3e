"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.auctions.result import *  # noqa: F403
from bluecarbon_audit.auctions.result import (  # noqa: F401
    BookBid,
    Counted,
    assemble_book,
    book_root,
    build_result,
    result_sha256,
)
