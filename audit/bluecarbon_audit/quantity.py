"""Exact decimal strings at the edges, integers inside.

Credits are counted in kilograms of CO2e (a thousandth of a tonne), shares in basis points,
areas in square metres. Input with more precision than the unit allows is an error: nothing is
ever rounded silently. No floats anywhere.
"""

from __future__ import annotations

import re

# A tonne is 1,000 kgCO2e. Quantities stay below 2**53 so every one is an exact JSON number
# under RFC 8785 (which, like I-JSON, only promises IEEE 754 doubles).
KG_PER_TONNE = 1000
MAX_KG = 10**15  # a trillion tonnes: far above any real issuance, far below 2**53
MAX_AREA_M2 = 10**13  # a billion hectares
MAX_SHARE_BP = 10_000

_DECIMAL = re.compile(r"^(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")


class QuantityError(ValueError):
    """Bad amount input. ``code`` is stable and machine readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _parse_scaled(text: object, places: int, what: str) -> int:
    if isinstance(text, bool) or not isinstance(text, str | int):
        # Floats are refused outright: 0.1 is not a decimal.
        raise QuantityError("not_a_decimal", f'{what} must be a decimal string, e.g. "12.5"')
    raw = str(text).strip()
    if raw.startswith("-"):
        raise QuantityError("negative", f"{what} must not be negative")
    if raw.startswith("+"):
        raw = raw[1:]
    match = _DECIMAL.match(raw)
    if not match:
        raise QuantityError("not_a_decimal", f"{what} must be a decimal string, got {text!r}")
    frac = (match["frac"] or "").rstrip("0")
    if len(frac) > places:
        raise QuantityError(
            "too_precise", f"{what} allows at most {places} decimal places, got {text!r}"
        )
    whole = match["int"].lstrip("0") or "0"
    if len(whole) > 30:
        raise QuantityError("too_large", f"{what} is too large")
    scale: int = 10**places  # typeshed types int ** int as Any: a negative power is a float
    return int(whole) * scale + int(frac.ljust(places, "0") or 0)


def parse_tonnes(text: object, *, allow_zero: bool = False) -> int:
    """``"2340.1"`` -> ``2340100`` kgCO2e. At most three decimals; positive unless allowed."""
    kg = _parse_scaled(text, 3, "quantity")
    check_kg(kg, allow_zero=allow_zero)
    return kg


def check_kg(kg: object, *, allow_zero: bool = False) -> int:
    """Validate an integer kgCO2e amount coming from inside (services, replay)."""
    if isinstance(kg, bool) or not isinstance(kg, int):
        raise QuantityError("not_an_integer", "quantity must be an integer number of kgCO2e")
    if kg < 0:
        raise QuantityError("negative", "quantity must not be negative")
    if kg == 0 and not allow_zero:
        raise QuantityError("zero", "quantity must be greater than zero")
    if kg > MAX_KG:
        raise QuantityError("too_large", f"quantity must not exceed {format_tonnes(MAX_KG)} t")
    return kg


def format_tonnes(kg: int) -> str:
    """``2340100`` -> ``"2340.100"``: always three decimals, so strings compare and sort."""
    sign = "-" if kg < 0 else ""
    whole, frac = divmod(abs(kg), KG_PER_TONNE)
    return f"{sign}{whole}.{frac:03d}"


def parse_share(text: object) -> int:
    """A percentage with at most two decimals -> basis points, ``"20"`` -> ``2000``."""
    bp = _parse_scaled(text, 2, "buffer share")
    if bp > MAX_SHARE_BP:
        raise QuantityError("out_of_range", "buffer share must be between 0 and 100 %")
    return bp


def format_share(bp: int) -> str:
    return f"{bp // 100}.{bp % 100:02d}"


def parse_hectares(text: object) -> int:
    """Hectares with at most four decimals -> square metres."""
    m2 = _parse_scaled(text, 4, "area")
    if m2 > MAX_AREA_M2:
        raise QuantityError("too_large", "area is too large")
    return m2


def format_hectares(m2: int) -> str:
    return f"{m2 // 10_000}.{m2 % 10_000:04d}"


def buffer_withheld(issued_kg: int, share_bp: int) -> int:
    """The buffer contribution in whole kg, rounded down; the holder gets the remainder, so the
    two always add up to the issuance exactly (nothing is lost to rounding)."""
    return issued_kg * share_bp // MAX_SHARE_BP


# Money: integers of the currency's minor unit (ISO 4217 exponent). Prices are per tonne.
MAX_MINOR = 10**15  # exact in JSON (below 2**53) with room for any real auction's value
CURRENCY_EXPONENTS = {"CNY": 2, "USD": 2, "EUR": 2, "GBP": 2, "HKD": 2, "SGD": 2, "JPY": 0}


def parse_money(text: object, currency: str, what: str = "amount") -> int:
    """``"106.00"`` CNY -> ``10600``. No more decimals than the currency has; never negative."""
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        raise QuantityError("unknown_currency", f"unsupported currency {currency!r}")
    minor = _parse_scaled(text, exponent, what)
    if minor > MAX_MINOR:
        raise QuantityError("too_large", f"{what} is too large")
    return minor


def format_money(minor: int, currency: str) -> str:
    """``10600`` CNY -> ``"106.00"``: always the currency's number of decimals."""
    exponent = CURRENCY_EXPONENTS[currency]
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole}.{frac:0{exponent}d}"
