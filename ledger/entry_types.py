"""Which entry types the ledger holds, and how each app's entries are replayed and checked.

The ledger writes entries for other apps (auctions) without knowing them: each app registers
its types here from its ``AppConfig.ready``, with what verification needs of it (a replay
state that sees every entry, and a comparison of the app's tables with that state). The feed's
and the webhooks' type filters, the portal's explorer and ``ledger_verify`` all read this one
list, so ``ledger`` imports nothing of the apps that build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from django.apps import apps
from django.core.exceptions import AppRegistryNotReady, ImproperlyConfigured

from .core.entry import Entry
from .core.replay import ENTRY_TYPES as REGISTRY_TYPES
from .core.replay import RegistryState

CompareRows = Callable[
    [str, dict[Any, dict[str, Any]], Generator[dict[str, Any], None, None]], None
]


class ReplayExtension(Protocol):
    """An app's replay state: it sees every entry in order (its own, and the registry's that
    touch it, such as the escrow hold behind an auction's lot)."""

    def apply(self, entry: Entry, registry: RegistryState, prev: bytes) -> None: ...

    def finish(self) -> None: ...

    def to_json(self) -> Any: ...


@dataclass(frozen=True)
class EntryTypes:
    app: str  # also the key of this app's replay state in the verifier's state file
    types: frozenset[str]
    # A fresh replay state for a ledger of this origin, and one read back from its JSON.
    replay: Callable[[str], ReplayExtension] | None = None
    replay_from_json: Callable[[Any, str], ReplayExtension] | None = None
    # Compares the app's tables with the replay: (state, compare_rows, error class); what it
    # returns are notes for the report (what the ledger cannot show yet, say).
    compare_tables: Callable[[Any, CompareRows, type[Exception]], list[str] | None] | None = None


_registered: dict[str, EntryTypes] = {
    "ledger": EntryTypes(app="ledger", types=frozenset(REGISTRY_TYPES)),
}


def register(types: EntryTypes) -> None:
    """Called from an app's ``ready()``. A type belongs to one app only."""
    for other in _registered.values():
        if other.app != types.app and other.types & types.types:
            raise ImproperlyConfigured(
                f"entry types {sorted(other.types & types.types)} registered by both "
                f"{other.app} and {types.app}"
            )
    _registered[types.app] = types


def _ready() -> None:
    # Read before every app has registered, a list would silently miss that app's types.
    if not apps.ready:
        raise AppRegistryNotReady("entry types are known once every app is ready")


def all_types() -> frozenset[str]:
    _ready()
    return frozenset().union(*(t.types for t in _registered.values()))


def registry_types() -> frozenset[str]:
    """The registry's own types, which ``RegistryState.apply`` replays."""
    return _registered["ledger"].types


def extensions() -> list[EntryTypes]:
    """The apps that replay entries of their own, in registration order."""
    _ready()
    return [t for t in _registered.values() if t.replay is not None]
