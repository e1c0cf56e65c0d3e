"""Independent checks of the Blue Carbon registry, and a C2SP tlog-witness.

The pure cores here (entry bytes, RFC 9162 Merkle proofs, signed notes and checkpoints,
replay, auction clearing and sealing) are the one implementation: the registry's server
imports them, and auditors run them without the server. Nothing here imports Django.
"""

from __future__ import annotations

__version__ = "0.1.0"
