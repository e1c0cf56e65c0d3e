"""ledger/core/quantity.py: decimal strings at the edges, integers inside."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.quantity import (
    KG_PER_TONNE,
    MAX_KG,
    MAX_SHARE_BP,
    QuantityError,
    buffer_withheld,
    check_kg,
    format_hectares,
    format_share,
    format_tonnes,
    parse_hectares,
    parse_share,
    parse_tonnes,
)


def code_of(call) -> str:
    with pytest.raises(QuantityError) as err:
        call()
    assert err.value.message
    assert str(err.value) == err.value.message
    assert isinstance(err.value, ValueError)
    return err.value.code


# ---- parse_tonnes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kg"),
    [
        ("2340.1", 2_340_100),
        ("2340.100", 2_340_100),
        ("0.001", 1),
        ("1", 1000),
        ("007.5", 7500),
        ("+12.5", 12_500),
        ("  3.25 ", 3250),
        ("1.2300", 1230),  # trailing zeros add no precision
        (42, 42_000),  # an int is a whole number of tonnes
        ("1000000000000", MAX_KG),
    ],
)
def test_it_parses_decimal_tonnes_into_kg(text, kg):
    assert parse_tonnes(text) == kg


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("0.0001", "too_precise"),
        ("1.2345", "too_precise"),
        ("0", "zero"),
        ("0.000", "zero"),
        ("-1", "negative"),
        ("-0.5", "negative"),
        (-3, "negative"),
        ("", "not_a_decimal"),
        ("abc", "not_a_decimal"),
        ("1e3", "not_a_decimal"),
        ("1,5", "not_a_decimal"),
        ("1.", "not_a_decimal"),
        (".5", "not_a_decimal"),
        ("1 000", "not_a_decimal"),
        ("++1", "not_a_decimal"),
        ("NaN", "not_a_decimal"),
        ("\u0661", "not_a_decimal"),  # ARABIC-INDIC DIGIT ONE is not an ASCII digit
        (1.5, "not_a_decimal"),
        (Decimal("1.5"), "not_a_decimal"),
        (True, "not_a_decimal"),
        (None, "not_a_decimal"),
        ("1000000000000.001", "too_large"),
        ("9" * 31, "too_large"),
    ],
)
def test_it_rejects_bad_tonne_strings_with_a_stable_code(text, code):
    assert code_of(lambda: parse_tonnes(text)) == code


def test_zero_tonnes_is_accepted_only_when_allowed():
    assert parse_tonnes("0", allow_zero=True) == 0
    assert parse_tonnes("0.000", allow_zero=True) == 0
    assert code_of(lambda: parse_tonnes("0")) == "zero"


def test_format_tonnes_always_writes_three_decimals():
    assert format_tonnes(2_340_100) == "2340.100"
    assert format_tonnes(1) == "0.001"
    assert format_tonnes(0) == "0.000"
    assert format_tonnes(MAX_KG) == "1000000000000.000"
    assert format_tonnes(-1500) == "-1.500"


# ---- check_kg ---------------------------------------------------------------------------------


def test_check_kg_accepts_positive_integers_up_to_the_maximum():
    assert check_kg(1) == 1
    assert check_kg(MAX_KG) == MAX_KG
    assert check_kg(0, allow_zero=True) == 0


@pytest.mark.parametrize(
    ("kg", "code"),
    [
        (0, "zero"),
        (-1, "negative"),
        (MAX_KG + 1, "too_large"),
        (1.0, "not_an_integer"),
        (1.5, "not_an_integer"),
        ("10", "not_an_integer"),
        (True, "not_an_integer"),
        (False, "not_an_integer"),
        (None, "not_an_integer"),
        (Decimal(10), "not_an_integer"),
    ],
)
def test_check_kg_rejects_everything_else(kg, code):
    assert code_of(lambda: check_kg(kg)) == code


def test_the_maximum_is_an_exact_json_number():
    assert MAX_KG < 2**53
    assert KG_PER_TONNE == 1000


# ---- shares and areas -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bp"),
    [("20", 2000), ("0", 0), ("100", 10_000), ("100.00", 10_000), ("12.34", 1234), ("0.01", 1)],
)
def test_it_parses_a_percentage_into_basis_points(text, bp):
    assert parse_share(text) == bp


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("100.01", "out_of_range"),
        ("101", "out_of_range"),
        ("-1", "negative"),
        ("12.345", "too_precise"),
        ("20%", "not_a_decimal"),
        (20.0, "not_a_decimal"),
    ],
)
def test_it_rejects_a_bad_percentage(text, code):
    assert code_of(lambda: parse_share(text)) == code


def test_format_share_writes_two_decimals():
    assert [format_share(bp) for bp in (0, 1, 2000, 1234, 10_000)] == [
        "0.00",
        "0.01",
        "20.00",
        "12.34",
        "100.00",
    ]


@pytest.mark.parametrize(
    ("text", "m2"), [("380", 3_800_000), ("0.0001", 1), ("1.5", 15_000), ("0", 0)]
)
def test_it_parses_hectares_into_square_metres(text, m2):
    assert parse_hectares(text) == m2


@pytest.mark.parametrize(
    ("text", "code"),
    [("0.00001", "too_precise"), ("1000000000.0001", "too_large"), ("-1", "negative")],
)
def test_it_rejects_bad_hectares(text, code):
    assert code_of(lambda: parse_hectares(text)) == code


def test_format_hectares_writes_four_decimals():
    assert format_hectares(3_800_000) == "380.0000"
    assert format_hectares(1) == "0.0001"


# ---- properties -------------------------------------------------------------------------------

kgs = st.integers(min_value=1, max_value=MAX_KG)
shares = st.integers(min_value=0, max_value=MAX_SHARE_BP)


@given(kgs)
def test_formatted_tonnes_parse_back_to_the_same_kg_and_string(kg):
    text = format_tonnes(kg)

    assert parse_tonnes(text) == kg
    assert format_tonnes(parse_tonnes(text)) == text


@given(
    whole=st.integers(min_value=0, max_value=10**12 - 1),
    frac=st.text(alphabet="0123456789", min_size=0, max_size=3),
)
def test_any_decimal_with_at_most_three_places_round_trips_to_its_canonical_form(whole, frac):
    text = f"{whole}.{frac}" if frac else str(whole)
    value = Decimal(text)
    if value == 0:
        return
    canonical = f"{value.quantize(Decimal('0.001'))}"

    assert format_tonnes(parse_tonnes(text)) == canonical
    assert parse_tonnes(text) == int(value * 1000)


@given(
    whole=st.integers(min_value=0, max_value=10**12),
    first=st.text(alphabet="0123456789", min_size=3, max_size=3),
    last=st.sampled_from("123456789"),
)
def test_a_fourth_decimal_place_is_always_too_precise(whole, first, last):
    assert code_of(lambda: parse_tonnes(f"{whole}.{first}{last}")) == "too_precise"


@given(
    whole=st.integers(min_value=0, max_value=10**15),
    frac=st.text(alphabet="0123456789", min_size=4, max_size=12).filter(lambda f: f[3:].strip("0")),
)
def test_any_nonzero_digit_past_the_third_decimal_is_too_precise(whole, frac):
    assert code_of(lambda: parse_tonnes(f"{whole}.{frac}")) == "too_precise"


@given(issued=kgs, share=shares)
def test_the_buffer_withholding_is_the_rounded_down_share_and_never_more_than_issued(issued, share):
    withheld = buffer_withheld(issued, share)
    remainder = issued - withheld

    assert 0 <= withheld <= issued
    assert withheld + remainder == issued
    assert remainder >= 0
    assert withheld == int(Fraction(issued * share, MAX_SHARE_BP))  # floor for non-negatives
    assert Fraction(withheld) <= Fraction(issued * share, MAX_SHARE_BP) < withheld + 1


@given(issued=kgs)
def test_no_share_withholds_nothing_and_a_full_share_withholds_everything(issued):
    assert buffer_withheld(issued, 0) == 0
    assert buffer_withheld(issued, MAX_SHARE_BP) == issued


@given(st.integers(min_value=0, max_value=MAX_SHARE_BP))
def test_formatted_shares_parse_back(bp):
    assert parse_share(format_share(bp)) == bp


@given(st.integers(min_value=0, max_value=10**13))
def test_formatted_hectares_parse_back(m2):
    assert parse_hectares(format_hectares(m2)) == m2


# ---- regressions: bugs found while writing these tests, since fixed ---------------------------


def test_leading_zeros_do_not_make_a_small_quantity_too_large():
    try:
        kg = parse_tonnes("0" * 30 + "1")
    except QuantityError as exc:
        raise AssertionError(f"refused with {exc.code}") from None
    assert kg == 1000


@contextmanager
def passing_through() -> Iterator[None]:
    yield


def test_a_quantity_error_passes_through_a_context_manager_unchanged():
    with pytest.raises(QuantityError) as err, passing_through():
        check_kg(0)
    assert err.value.code == "zero"
