"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.auctions.sealing import *  # noqa: F403
from bluecarbon_audit.auctions.sealing import (  # noqa: F401
    MAX_CIPHERTEXT,
    PAD_BLOCK,
    SUITE,
    SUITE_NAME,
    SealError,
    check_ciphertext,
    commitment,
    generate_private_key,
    info,
    load_private_key,
    open_bid,
    open_for_book,
    plaintext,
    public_key_of,
    seal,
)
