"""Amounts reach pages only through these: integers inside, exact decimal strings here."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.translation import gettext

from ledger.core.quantity import format_money, format_share, format_tonnes
from ledger.models import Ecosystem
from portal.labels import REASONS

register = template.Library()


@register.filter
def tonnes(kg: int | None) -> str:
    return format_tonnes(kg or 0)


@register.filter
def money(minor: int | None, currency: str) -> str:
    return "" if minor is None else format_money(minor, currency)


def group_digits(decimal: str) -> str:
    """A decimal string with its whole part in groups of three: ``"248050.60"`` ->
    ``"248,050.60"`` (as both the English and the Chinese pages write numbers)."""
    sign = "-" if decimal.startswith("-") else ""
    whole, dot, frac = decimal.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}{dot}{frac}" if whole.isdigit() else decimal


@register.filter
def grouped(decimal: str) -> str:
    return group_digits(str(decimal)) if decimal else ""


@register.filter
def share(bp: int | None) -> str:
    return "" if bp is None else format_share(bp)


@register.filter
def lot_tonnes(lots: int | None, lot_kg: int) -> str:
    return format_tonnes((lots or 0) * lot_kg)


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.filter
def percent(done: int, total: int) -> int:
    """How far a run is, in whole percent; 0 until it knows how much there is to do."""
    return 0 if not total else min(100, done * 100 // total)


@register.filter
def accessible(field: Any) -> str:
    """The field's widget with its help text and errors tied to it (aria-describedby,
    aria-invalid), so a screen reader reads the error with the field."""
    ids = []
    if field.help_text:
        ids.append(f"{field.auto_id}-help")
    if field.errors:
        ids.append(f"{field.auto_id}-error")
    attrs: dict[str, str] = {}
    if ids:
        attrs["aria-describedby"] = " ".join(ids)
    if field.errors:
        attrs["aria-invalid"] = "true"
    return field.as_widget(attrs=attrs)


@register.filter
def reason(code: str | None) -> str:
    """A result's reason code in words, in the reader's language (the code if unknown)."""
    return str(REASONS.get(code or "", code or ""))


@register.filter
def ecosystem(code: str) -> str:
    """An ecosystem's code as its name, in the reader's language."""
    return Ecosystem.name_of(code)


@register.filter
def tr(label: str) -> str:
    """A model's choice label in the reader's language (portal/labels.py lists them)."""
    return gettext(str(label))
