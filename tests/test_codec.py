"""Canonical msgpack: round trips, and precise refusals of everything non-canonical."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import codec
from protocol.errors import DecodeError, SchemaError

values = st.recursive(
    st.none() | st.booleans() | st.integers(codec.INT_MIN, codec.INT_MAX) | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=5),
    max_leaves=30,
)


@given(values)
def test_round_trip(v: object) -> None:
    data = codec.encode(v)
    assert codec.decode(data) == v
    assert codec.encode(codec.decode(data)) == data


def test_map_keys_are_sorted_whatever_the_insertion_order() -> None:
    assert codec.encode({"b": 1, "a": 2}) == codec.encode({"a": 2, "b": 1})


@pytest.mark.parametrize("bad", [1.5, math.nan, math.inf, {"amount": 12.5}, [1, [2.0]]])
def test_floats_are_refused_on_encode(bad: object) -> None:
    with pytest.raises(SchemaError, match="float"):
        codec.encode(bad)


def test_float_path_is_named() -> None:
    with pytest.raises(SchemaError, match=r"items\[1\]\.price"):
        codec.encode({"items": [{"price": 1}, {"price": 2.5}]})


@pytest.mark.parametrize("raw", [msgpack.packb(1.5), msgpack.packb({"a": float("nan")}),
                                 msgpack.packb([1, 2.0])])
def test_floats_are_refused_on_decode(raw: bytes) -> None:
    with pytest.raises(DecodeError, match="float"):
        codec.decode(raw)


def test_unsorted_keys_are_not_canonical() -> None:
    raw = b"\x82\xa1b\x01\xa1a\x02"  # {"b":1,"a":2} in that order
    assert msgpack.unpackb(raw) == {"b": 1, "a": 2}
    with pytest.raises(DecodeError, match="non-canonical"):
        codec.decode(raw)


def test_long_form_integer_is_not_canonical() -> None:
    with pytest.raises(DecodeError, match="non-canonical"):
        codec.decode(b"\xcd\x00\x01")  # uint16 1, where a fixint is shortest


@pytest.mark.parametrize("raw,match", [
    (b"", "empty"),
    (b"\x92\x01", "malformed"),          # truncated array
    (b"\x01\x02", "trailing"),
    (b"\xc1", "malformed"),              # never-used byte
    (b"\xd4\x01\x00", "extension"),
    (b"\x81\x01\x02", "malformed"),      # int map key
])
def test_malformed_input_is_a_decode_error(raw: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        codec.decode(raw)


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(DecodeError, match="over the 100-byte limit"):
        codec.decode(codec.encode("x" * 200), max_size=100)


def test_out_of_range_int_and_odd_types() -> None:
    with pytest.raises(SchemaError, match="64 bits"):
        codec.encode(2**64)
    with pytest.raises(SchemaError, match="not a string"):
        codec.encode({1: 2})
    with pytest.raises(SchemaError, match="set"):
        codec.encode({1, 2})


@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_protocol_errors(raw: bytes) -> None:
    try:
        codec.decode(raw)
    except (DecodeError, SchemaError):
        pass
