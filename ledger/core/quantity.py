"""Moved to the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.quantity import *  # noqa: F403
from bluecarbon_audit.quantity import (  # noqa: F401
    CURRENCY_EXPONENTS,
    KG_PER_TONNE,
    MAX_AREA_M2,
    MAX_KG,
    MAX_MINOR,
    MAX_SHARE_BP,
    QuantityError,
    buffer_withheld,
    check_kg,
    format_hectares,
    format_money,
    format_share,
    format_tonnes,
    parse_hectares,
    parse_money,
    parse_share,
    parse_tonnes,
)
