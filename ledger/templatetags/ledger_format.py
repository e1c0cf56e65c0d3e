from __future__ import annotations

import base64

from django import template

from ledger.core.quantity import format_tonnes

register = template.Library()


@register.filter
def tonnes(kg: int | None) -> str:
    """kgCO2e -> "2340.100" (the only way quantities reach a page)."""
    return format_tonnes(kg or 0)


@register.filter
def b64(data: bytes | memoryview) -> str:
    """A hash as the API writes one: base64."""
    return base64.b64encode(bytes(data)).decode()


@register.filter(name="hex")
def hex_(data: bytes | memoryview) -> str:
    return bytes(data).hex()


@register.filter
def utf8(data: bytes) -> str:
    """Bytes that are UTF-8 text (a ledger entry, RFC 8785), as that text."""
    return bytes(data).decode()
