"""Checks of input from outside that every service module shares: an object id, a choice, a
required condition. Each raises the domain error its caller's client gets (``InvalidInput``,
``PermissionDenied``), with a stable code, and changes nothing. The registry's and the auction
house's services both use these (they were copied between the two)."""

from __future__ import annotations

from collections.abc import Iterable

from bluecarbon.errors import Codes

from .exceptions import InvalidInput, PermissionDenied


def object_id(value: object) -> int | None:
    """An object id from outside, or None if it cannot be one (then: not found)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return None


def require(condition: bool, message: str) -> None:
    """The actor may do this, or ``PermissionDenied`` with ``message``."""
    if not condition:
        raise PermissionDenied(message)


def choice(value: object, field: str, choices: Iterable[str], *, code: Codes | None = None) -> str:
    """``value`` if it is one of ``choices``, else ``InvalidInput`` (``code``, if given)."""
    options = list(choices)
    if value not in options:
        raise InvalidInput(
            f"{field} must be one of {', '.join(options)}",
            code=code,
            detail={field: "invalid_choice"},
        )
    return str(value)


def text(value: object, field: str, *, max_length: int, required: bool = True) -> str:
    """Trimmed text of at most ``max_length`` characters (not empty, if ``required``)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", detail={field: "not_text"})
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} is required", detail={field: "required"})
    if len(value) > max_length:
        raise InvalidInput(
            f"{field} is longer than {max_length} characters", detail={field: "too_long"}
        )
    return value
