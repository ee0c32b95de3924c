"""The signed envelope: signatures, hashes, chains, fingerprints, and tamper detection."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.crypto import SigningKey, fingerprint
from protocol.errors import DecodeError, ProtocolError, SchemaError, SignatureError
from protocol.event import (
    ChainError,
    ChainHead,
    Event,
    checked_event_from_map,
    decode_event,
    event_from_map,
    sign_event,
    verify_chain,
)
from protocol.hlc import Hlc
from tests.conftest import node_key

KEY = node_key("cashier-01")
BODY = {"patient_id": "P-1", "amount": 500, "method": "cash", "receipt_no": "D-1"}


def make(seq: int = 1, prev: bytes = bytes(32), body: dict | None = None, key: SigningKey = KEY):
    return sign_event(key, node="cashier-01", seq=seq, prev=prev, hlc=Hlc(1000 + seq, 0),
                      operator="op.wang", kind="account.deposited", body=body or BODY)


def test_sign_encode_decode_verify() -> None:
    ev, data, h = make()
    assert decode_event(data) == ev
    ev.verify_signature(KEY.public_key)
    assert ev.hash() == h and len(h) == 32


def test_wrong_key_or_altered_field_fails_verification() -> None:
    ev, _, _ = make()
    with pytest.raises(SignatureError):
        ev.verify_signature(node_key("other").public_key)
    with pytest.raises(SignatureError):
        replace(ev, body={**BODY, "amount": 50000}).verify_signature(KEY.public_key)
    with pytest.raises(SignatureError):
        replace(ev, operator="someone.else").verify_signature(KEY.public_key)


def test_fingerprint_is_short_grouped_hex() -> None:
    fp = KEY.fingerprint
    assert re.fullmatch(r"ed25519:([0-9a-f]{4}-){7}[0-9a-f]{4}", fp)
    assert fp == fingerprint(KEY.public_key) != node_key("x").fingerprint
    assert "seed" not in repr(KEY) and KEY.seed.hex() not in repr(KEY)


def test_chain_links_and_breaks() -> None:
    e1, _, h1 = make(1)
    e2, _, h2 = make(2, h1)
    e3, _, _ = make(3, h2)
    assert verify_chain([e1, e2, e3], KEY.public_key) == ChainHead(3, e3.hash())
    with pytest.raises(ChainError, match="expected seq 2"):
        verify_chain([e1, e3], KEY.public_key)
    e2_bad, _, _ = make(2, bytes(32))
    with pytest.raises(ChainError, match="prev does not match"):
        verify_chain([e1, e2_bad], KEY.public_key)


def test_envelope_shape_errors_are_precise() -> None:
    ev, _, _ = make()
    m = ev.to_map()
    with pytest.raises(SchemaError, match="missing field.*sig"):
        event_from_map({k: v for k, v in m.items() if k != "sig"})
    with pytest.raises(SchemaError, match="unknown field.*extra"):
        event_from_map({**m, "extra": 1})
    with pytest.raises(SchemaError, match="seq: expected int"):
        event_from_map({**m, "seq": "1"})
    with pytest.raises(SchemaError, match="envelope version 2"):
        event_from_map({**m, "v": 2})
    with pytest.raises(SchemaError, match="first event"):
        event_from_map({**m, "prev": b"\x01" * 32})
    with pytest.raises(SchemaError, match="node"):
        event_from_map({**m, "node": "Bad Node!"})
    with pytest.raises(SchemaError, match="float"):
        make(body={**BODY, "amount": 5.0})


def test_oversized_body_is_refused() -> None:
    with pytest.raises((SchemaError, DecodeError), match="limit"):
        make(body={**BODY, "note": "x" * 70_000})


_ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.binary(max_size=70)
    | st.text(max_size=70) | st.sampled_from(["cashier-01", "account.deposited", "op", ""])
    | st.sampled_from([0, 1, 2, 2**53 - 1, 2**53, 253402300799999, 253402300800000, 65535]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=6)


@given(st.data())
def test_the_one_pass_shape_check_agrees_with_the_field_by_field_one(data: st.DataObject) -> None:
    """event_from_map's fast path builds exactly what the checks field by field build, and
    whatever they refuse it refuses too: a body, field or hlc missing, mistyped, extreme."""
    seq = data.draw(st.sampled_from([1, 2, 2**53 - 1]))
    ev, _, _ = sign_event(KEY, node="cashier-01", seq=seq,
                          prev=bytes(32) if seq == 1 else b"\x07" * 32, hlc=Hlc(1000, 0),
                          operator="op.wang", kind="account.deposited", body=BODY)
    m = ev.to_map()
    for _ in range(data.draw(st.integers(0, 3))):
        name = data.draw(st.sampled_from([*m, "hlc0", "hlc1", "extra", "drop"]))
        if name == "drop":
            m.pop(data.draw(st.sampled_from(sorted(m))), None)
        elif name in ("hlc0", "hlc1") and type(m.get("hlc")) is list and len(m["hlc"]) == 2:
            m["hlc"] = list(m["hlc"])
            m["hlc"][name == "hlc1"] = data.draw(_ANY)
        else:
            m[name] = data.draw(_ANY)
    try:
        want: Event | str = checked_event_from_map(m)
    except SchemaError as exc:
        want = str(exc)
    try:
        got: Event | str = event_from_map(m)
    except SchemaError as exc:
        got = str(exc)
    assert got == want


@given(st.data())
def test_flipping_any_byte_of_an_encoded_event_is_detected(data: st.DataObject) -> None:
    _, raw, _ = make()
    i = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(raw)
    tampered[i] ^= 1 << bit
    try:
        got = decode_event(bytes(tampered))
        got.verify_signature(KEY.public_key)
    except ProtocolError:
        return
    raise AssertionError(f"flip at byte {i} bit {bit} went unnoticed: {got}")


@given(st.dictionaries(st.text(max_size=6), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
                       max_size=6),
       st.integers(1, 10**6))
def test_signed_bytes_cut_from_the_wire_equal_re_encoding(body: dict, seq: int) -> None:
    ev, data, _ = sign_event(KEY, node="cashier-01", seq=seq,
                             prev=bytes(32) if seq == 1 else b"\x07" * 32, hlc=Hlc(seq, 3),
                             operator="op", kind="account.deposited", body=body)
    decoded = decode_event(data)
    assert decoded.signed  # the fast path was taken
    assert decoded.signing_bytes() == ev.signing_bytes() == replace(decoded,
                                                                    signed=b"").signing_bytes()
    decoded.verify_signature(KEY.public_key)
