from __future__ import annotations

from django import template

from ledger.core.quantity import format_tonnes

register = template.Library()


@register.filter
def tonnes(kg: int | None) -> str:
    """kgCO2e -> "2340.100" (the only way quantities reach a page)."""
    return format_tonnes(kg or 0)
