"""In the audit package (audit/): the server and auditors run one implementation."""

from bluecarbon_audit.origin import *  # noqa: F403
from bluecarbon_audit.origin import (  # noqa: F401
    ORIGIN_RULE,
    OTHER,
    REGISTRIES,
    OriginError,
    Registry,
    legacy_project_key,
    legacy_tx_key,
    normalise,
    origin_key,
    registry_code,
    tx_key,
)
