"""entry_body, the encoder of every append, is encode_entry (RFC 8785), byte for byte: its fast
template for transfers included, whatever the values (the one place the two are compared)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import services
from ledger.core.entry import TRANSFER_BYTES, encode_entry, format_time
from ledger.services import append

# Mostly what the template takes (ids and quantities of up to 15 digits), and around and beyond
# its edges: 16 digits, zero, negative, 2**53, booleans (an int subclass), strings of digits.
numbers = st.one_of(
    st.integers(1, 10**15 - 1),
    st.integers(10**15 - 2, 2**53),
    st.integers(-(2**53), 0),
    st.booleans(),
    st.from_regex(r"\A[0-9]{1,5}\Z"),
)
# Actors as the services write them, and any text (quotes, backslashes, controls, non-ASCII,
# characters beyond the BMP).
actors = st.one_of(
    st.from_regex(r"\A(user|apikey|system):[a-z0-9]{1,12}\Z"),
    st.text(max_size=20),
)
times = st.one_of(
    st.datetimes(
        min_value=dt.datetime(1970, 1, 1),
        max_value=dt.datetime(9999, 1, 1),
        timezones=st.just(dt.UTC),
    ).map(format_time),
    st.text(max_size=30),
)
prevs = st.binary(min_size=32, max_size=32)
transfer_data = st.fixed_dictionaries(
    {"batch": numbers, "from": numbers, "quantity": numbers, "to": numbers}
)
other_data = st.one_of(
    transfer_data.map(lambda d: {**d, "extra": 1}),  # a transfer's shape, plus a member
    st.dictionaries(st.sampled_from(["batch", "from", "to"]), numbers),  # fewer members
    st.fixed_dictionaries({"hold": numbers, "quantity": numbers}),
)


def both(**fields: Any) -> tuple[bytes | Exception, bytes | Exception]:
    def run(encoder: Any) -> bytes | Exception:
        try:
            return encoder(**fields)
        except Exception as exc:  # both encoders must refuse the same values alike
            return exc

    return run(services.entry_body), run(encode_entry)


def same(fast: bytes | Exception, exact: bytes | Exception) -> None:
    if isinstance(exact, Exception):
        assert type(fast) is type(exact), (fast, exact)
    else:
        assert fast == exact


@given(
    seq=st.one_of(st.integers(0, 10**15), st.integers(10**15, 2**53)),
    prev=prevs,
    time=times,
    actor=actors,
    data=transfer_data,
)
def test_a_transfer_s_bytes_are_its_canonical_encoding(seq, prev, time, actor, data):
    same(*both(seq=seq, prev=prev, time=time, type="credit.transfer", actor=actor, data=data))


@given(
    seq=st.integers(0, 10**6),
    prev=prevs,
    time=times,
    actor=actors,
    type_=st.sampled_from(["credit.transfer", "credit.transfer ", "escrow.release"]),
    data=other_data,
)
def test_any_other_entry_s_bytes_are_its_canonical_encoding(seq, prev, time, actor, type_, data):
    same(*both(seq=seq, prev=prev, time=time, type=type_, actor=actor, data=data))


def test_a_prev_that_is_not_a_hash_is_refused_as_by_the_encoder():
    fast, exact = both(
        seq=1,
        prev=bytes(31),
        time="2026-11-22T22:07:02.123456Z",
        type="credit.transfer",
        actor="user:1",
        data={"batch": 1, "from": 2, "to": 3, "quantity": 4},
    )
    assert isinstance(exact, Exception)
    same(fast, exact)


def test_a_plain_transfer_takes_the_template_not_the_encoder(monkeypatch):
    # Otherwise the properties above would hold vacuously, with the template never used.
    fields: dict[str, Any] = dict(
        seq=12,
        prev=bytes(range(32)),
        time=format_time(dt.datetime(2026, 11, 22, 22, 7, 2, 123456, tzinfo=dt.UTC)),
        type="credit.transfer",
        actor="apikey:0a1b2c3d",
        data={"batch": 3, "from": 41, "to": 42, "quantity": 123_456},
    )
    exact = encode_entry(**fields)

    def refuse(**_: Any) -> bytes:
        raise AssertionError("encode_entry called")

    monkeypatch.setattr(append, "encode_entry", refuse)
    assert services.entry_body(**fields) == exact
    assert TRANSFER_BYTES.fullmatch(exact)
    with pytest.raises(AssertionError, match="encode_entry called"):
        services.entry_body(**{**fields, "actor": 'user:"1"'})
