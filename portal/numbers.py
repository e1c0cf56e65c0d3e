"""Numbers as people read them, from the integers the registry keeps. Pure: no Django.

Quantities are integers of kgCO2e and are shown in tonnes; money is integers of the currency's
minor unit and is shown with the currency's decimals. Nothing is rounded: a tonne figure shows
every kilogram it holds (``2340100`` kg is ``2,340.1`` t, ``1`` kg is ``0.001`` t), only the
trailing zeros of the kilograms are dropped. Whole parts are grouped by threes with ``,``, the
way both the English and the Chinese pages write figures (China's national carbon market and
its exchanges publish ``1,234,567`` 吨; Django's zh-hans format, four-digit groups with no
separator, is not what those readers see on a registry).
"""

from __future__ import annotations

from ledger.core.quantity import CURRENCY_EXPONENTS, KG_PER_TONNE


def group_digits(decimal: str) -> str:
    """A decimal string with its whole part in groups of three: ``"248050.60"`` ->
    ``"248,050.60"``. Anything that is not a plain decimal (already grouped, empty, a dash)
    comes back as it is, so grouping twice changes nothing."""
    sign = "-" if decimal.startswith("-") else ""
    whole, dot, frac = decimal.lstrip("-").partition(".")
    if not whole.isascii() or not whole.isdigit() or not (frac.isdigit() or not dot):
        return decimal
    return f"{sign}{int(whole):,}{dot}{frac}"


def tonnes_text(kg: int) -> str:
    """Integer kgCO2e -> exact tonnes, grouped, kilograms without trailing zeros:
    ``2340100`` -> ``"2,340.1"``, ``2340000`` -> ``"2,340"``, ``5`` -> ``"0.005"``."""
    if isinstance(kg, bool) or not isinstance(kg, int):
        raise TypeError(f"a quantity is an integer of kgCO2e, not {type(kg).__name__}")
    sign = "-" if kg < 0 else ""
    whole, frac = divmod(abs(kg), KG_PER_TONNE)
    tail = f"{frac:03d}".rstrip("0")
    return f"{sign}{whole:,}" + (f".{tail}" if tail else "")


def money_text(minor: int, currency: str) -> str:
    """Integer minor units -> the amount with all of the currency's decimals, grouped:
    ``248050060`` CNY -> ``"2,480,500.60"``."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"money is an integer of minor units, not {type(minor).__name__}")
    exponent = CURRENCY_EXPONENTS[currency]
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole:,}" + (f".{frac:0{exponent}d}" if exponent else "")


def plain(text: str) -> str:
    """A grouped figure without its separators, as ``parse_tonnes``/``parse_money`` take it."""
    return text.replace(",", "")
