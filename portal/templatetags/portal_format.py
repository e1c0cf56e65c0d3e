"""Amounts reach pages only through these: integers inside, exact decimal strings here."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.template.context import Context
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, pgettext

from ledger.core.quantity import format_share
from ledger.models import Ecosystem
from portal.labels import REASONS
from portal.names import Names, local_name
from portal.numbers import group_digits, money_text, tonnes_text

register = template.Library()

__all__ = ["group_digits"]  # live_room.py groups its prices with the same function


@register.filter
def tonnes(kg: int | None) -> str:
    """Exact tonnes, grouped, no unit: ``2340100`` -> ``2,340.1`` (the page says "t")."""
    return tonnes_text(kg or 0)


def tonne_unit() -> str:
    return pgettext("unit of mass", "t")


@register.filter
def qty(kg: int | None) -> str:
    """Exact tonnes with the unit in the reader's language: ``2,340.1 t``, ``2,340.1 吨``."""
    return f"{tonnes_text(kg or 0)} {tonne_unit()}"


@register.filter
def money(minor: int | None, currency: str) -> str:
    """The amount with the currency's decimals, grouped, no unit: ``248,050.60``."""
    return "" if minor is None else money_text(minor, currency)


def currency_unit(currency: str) -> str:
    """How a page names the currency: ``CNY`` in English, 元 on Chinese pages (other
    currencies keep their ISO 4217 code in both)."""
    return pgettext("currency unit", "CNY") if currency == "CNY" else currency


@register.filter(name="currency")
def currency_filter(currency: str) -> str:
    """The currency as the page names it in a sentence: ``CNY``, 元."""
    return currency_unit(currency)


@register.filter
def amount(minor: int | None, currency: str) -> str:
    """Money with its unit: ``248,050.60 CNY``, ``248,050.60 元``."""
    if minor is None:
        return ""
    return f"{money_text(minor, currency)} {currency_unit(currency)}"


@register.filter
def price_unit(currency: str) -> str:
    """The unit of a price per tonne: ``CNY/t``, ``元/吨``."""
    return f"{currency_unit(currency)}/{tonne_unit()}"


@register.filter
def price(minor: int | None, currency: str) -> str:
    """A price per tonne with its unit: ``106.00 CNY/t``, ``106.00 元/吨``."""
    if minor is None:
        return ""
    return f"{money_text(minor, currency)} {price_unit(currency)}"


@register.filter
def grouped(decimal: Any) -> str:
    """A decimal string or an integer with its whole part grouped by threes."""
    if decimal is None or decimal == "":
        return ""
    return group_digits(str(decimal))


@register.filter
def share(bp: int | None) -> str:
    return "" if bp is None else format_share(bp)


@register.filter
def lot_tonnes(lots: int | None, lot_kg: int) -> str:
    return tonnes_text((lots or 0) * lot_kg)


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


@register.simple_tag
def colon() -> str:
    """A label's colon: ": " in English, the full-width "\uff1a" on Chinese pages."""
    return pgettext("label separator", ": ")


@register.filter
def local(obj: Any) -> str:
    """A project's, organization's or methodology's name in the reader's language (its
    ``name_zh`` on Chinese pages when one was given, else its ``name``)."""
    return local_name(obj)


def _names(context: Context) -> Names:
    """The page's resolved names (a view puts a ``Names`` under ``names``); a page that did not
    gets one for the request, so every lookup after the first of an id is free."""
    names = context.get("names")
    if isinstance(names, Names):
        return names
    request = context.get("request")
    names = getattr(request, "_portal_names", None)
    if not isinstance(names, Names):
        names = Names()
        if request is not None:
            request._portal_names = names
    return names


def _is_auditor(context: Context) -> bool:
    viewer = context.get("viewer") or {}
    return bool(viewer.get("is_auditor")) if isinstance(viewer, dict) else False


def _with_id(context: Context, name: str, ident: str) -> SafeString:
    if _is_auditor(context) and ident:
        return format_html('{} <small class="ledger-id">{}</small>', name, ident)
    return format_html("{}", name)


@register.simple_tag(takes_context=True)
def actor(context: Context, actor_id: str) -> SafeString:
    """A ledger actor (``user:4``, ``apikey:ab12cd34``, ``system:clear``) by name; auditors see
    the ledger's id beside it, small and muted."""
    return _with_id(context, _names(context).actor(actor_id), actor_id)


@register.simple_tag(takes_context=True)
def org(context: Context, pk: int | None) -> SafeString:
    """An organization (a bidder, a seller, a developer) by id, by name; auditors see the id."""
    if pk is None:
        return format_html("")
    return _with_id(context, _names(context).organization(pk), f"#{pk}")


@register.inclusion_tag("portal/_hash.html", name="hash")
def hash_(value: str | None, label: str = "") -> dict[str, Any]:
    """A hash (hex or base64) shortened to its first 8 and last 4 characters, with a copy
    button and the whole value on demand."""
    text = str(value or "")
    short = text if len(text) <= 16 else f"{text[:8]}\u2026{text[-4:]}"
    return {"value": text, "short": short, "label": label}
