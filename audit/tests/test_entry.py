"""Entry bytes: RFC 8785, and the verifier's fast canonical-form check agrees with the slow one."""

from __future__ import annotations

import json

import orjson
import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from bluecarbon_audit.entry import (
    EntryError,
    EntryMacs,
    canonical_json,
    decode_canonical_entry,
    decode_entry,
    encode_entry,
    entry_hash,
    entry_mac,
    has_float_token,
    is_canonical,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def entry(data: dict) -> bytes:
    return encode_entry(
        seq=7,
        prev=bytes(32),
        time="2026-11-22T22:07:02.123456Z",
        type="credit.transfer",
        actor="user:1",
        data=data,
    )


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_every_encoded_entry_is_accepted_as_canonical(data):
    body = entry(data)
    assert decode_canonical_entry(body).data == data
    assert is_canonical(body)


@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, min_size=1, max_size=5))
def test_the_fast_check_agrees_with_rfc8785_on_other_encodings(data):
    obj = json.loads(entry(data))
    for variant in (
        json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(),  # unsorted
        json.dumps(obj, sort_keys=True).encode(),  # spaces, \\u escapes
        json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False).encode(),
    ):
        canonical = rfc8785.dumps(obj) == variant
        if canonical:
            assert decode_canonical_entry(variant).data == data
        else:
            with pytest.raises(EntryError, match="canonical"):
                decode_canonical_entry(variant)


def test_keys_beyond_the_bmp_sort_by_utf16_code_units():
    # U+1F600 sorts before U+FFFF in UTF-16 (surrogates D83D...), after it in code points.
    body = entry({"\U0001f600": 1, "\uffff": 2})
    assert decode_canonical_entry(body).data == {"\U0001f600": 1, "\uffff": 2}
    wrong = body.replace(
        b'"\xf0\x9f\x98\x80":1,"\xef\xbf\xbf":2', b'"\xef\xbf\xbf":2,"\xf0\x9f\x98\x80":1'
    )
    assert wrong != body
    with pytest.raises(EntryError, match="canonical"):
        decode_canonical_entry(wrong)


def test_integers_without_an_exact_json_form_are_refused():
    body = entry({"quantity": 1}).replace(b'"quantity":1', b'"quantity":9007199254740993')
    with pytest.raises(EntryError, match="canonical"):
        decode_canonical_entry(body)
    assert decode_entry(body).data["quantity"] == 9007199254740993


def test_malformed_bytes_are_entry_errors():
    for bad in (b"", b"not json", b"\xff\xfe", b"[]", b'{"v":1}'):
        with pytest.raises(EntryError):
            decode_canonical_entry(bad)


def test_the_chain_hash_is_sha256_of_the_exact_bytes():
    import hashlib

    body = entry({"a": 1})
    assert entry_hash(body) == hashlib.sha256(body).digest()


any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)


@given(any_json)
def test_the_fast_encoder_gives_the_rfc8785_bytes_or_the_same_refusal(value):
    try:
        want = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_json(value)
        return
    assert canonical_json(value) == want


@given(st.binary(min_size=0, max_size=100), st.lists(st.binary(min_size=32, max_size=32)))
def test_entry_macs_are_hmac_sha256_as_entry_mac_makes_them(
    key: bytes, digests: list[bytes]
) -> None:
    macs = EntryMacs(key)
    want = [entry_mac(key, d) for d in digests]
    assert macs.many(digests) == want
    assert [macs(d) for d in digests] == want


@given(st.dictionaries(st.text(min_size=1, max_size=8), any_json, min_size=1, max_size=5))
def test_the_fast_check_agrees_with_rfc8785_on_fractional_and_exponent_numbers(data):
    """orjson writes an integral float as 1.0 and a large one as 1e16; RFC 8785 writes 1 and
    10000000000000000. The fast check compares with orjson's spelling, so it must not decide
    for bytes that hold such a number (it did before: ``"v":1.0`` passed)."""
    obj = json.loads(entry({}))
    obj["data"] = data
    for variant in (
        orjson.dumps(obj, option=orjson.OPT_SORT_KEYS),  # the fast check's own spelling
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
    ):
        try:
            canonical = rfc8785.dumps(json.loads(variant)) == variant
        except rfc8785.CanonicalizationError:
            canonical = False
        if canonical and not _holds_float(data):
            assert decode_canonical_entry(variant).data == data
        elif canonical:  # RFC 8785, but entries hold integers only
            with pytest.raises(EntryError, match="integers only"):
                decode_canonical_entry(variant)
        else:
            with pytest.raises(EntryError, match="canonical"):
                decode_canonical_entry(variant)


@pytest.mark.parametrize(
    "old, new",
    [
        (b'"v":1}', b'"v":1.0}'),
        (b'"v":1}', b'"v":1e0}'),
        (b'"quantity":5', b'"quantity":5.0'),
        (b'"quantity":5', b'"quantity":5E0'),
        (b'"quantity":5', b'"quantity":-0.0'),
        (b'"list":[2,3]', b'"list":[2.0,3]'),
        (b'"list":[2,3]', b'"list":[2,3.0]'),
    ],
)
def test_another_spelling_of_an_integer_is_refused(old, new):
    body = entry({"quantity": 5, "list": [2, 3]})
    assert old in body
    with pytest.raises(EntryError, match="canonical"):
        decode_canonical_entry(body.replace(old, new, 1))


def test_the_version_is_the_integer_one_not_true():
    body = entry({}).replace(b'"v":1}', b'"v":true}')
    with pytest.raises(EntryError, match="version"):
        decode_canonical_entry(body)


def test_a_number_look_alike_inside_a_string_is_still_accepted():
    data = {"note": 'a,1.5 [2e3 ":4.0', "list": ["x,1.5"]}
    body = entry(data)
    assert decode_canonical_entry(body).data == data


def test_a_fraction_is_refused_even_in_its_rfc8785_form():
    import collections

    class Ratio(float):
        pass

    for data in ({"n": [1.5]}, {"n": (1.5,)}, {"n": collections.OrderedDict(a=1.5)},
                 {"n": Ratio(2.5)}, {"n": 1e21}):  # fmt: skip
        with pytest.raises(EntryError, match="integers only"):
            entry(data)  # never written, whatever holds the float
    assert b'"n":1' in entry({"n": 1.0})  # RFC 8785 writes an integral float as an integer
    body = entry({"n": 15}).replace(b'"n":15', b'"n":1.5')
    assert is_canonical(body)
    with pytest.raises(EntryError, match="integers only"):
        decode_canonical_entry(body)


def _holds_float(value: object) -> bool:
    if isinstance(value, dict):
        return any(map(_holds_float, value.values()))
    if isinstance(value, list):
        return any(map(_holds_float, value))
    return type(value) is float


@given(any_json)
def test_the_float_finder_misses_no_float_in_orjsons_output(value):
    """In an object or an array, as entries and bundles hold them."""
    for outer in ({"k": value}, [value], [1, value]):
        body = orjson.dumps(outer, option=orjson.OPT_SORT_KEYS)
        assert has_float_token(body) or not _holds_float(value)


def test_str_and_int_subclasses_take_the_fast_path_with_the_same_bytes():
    import enum

    from bluecarbon_audit.entry import _plain

    class Mode(enum.StrEnum):
        TRUSTEES = "trustees"

    class Size(enum.IntEnum):
        BIG = 7

    value = {"sealing": Mode.TRUSTEES, "n": Size.BIG, "list": [Mode.TRUSTEES]}
    assert _plain(value)
    assert (
        canonical_json(value)
        == rfc8785.dumps(value)
        == (b'{"list":["trustees"],"n":7,"sealing":"trustees"}')
    )
    assert not _plain({"x": 1.0}) and not _plain({"x": (1,)})

    class Odd(int):  # int() of it is not its value: rfc8785 and orjson would differ
        def __int__(self) -> int:
            return 99

    assert not _plain({"x": Odd(5)})
    assert canonical_json({"x": Odd(5)}) == rfc8785.dumps({"x": Odd(5)})
