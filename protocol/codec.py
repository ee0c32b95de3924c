"""Canonical msgpack: one byte string for one value, so signatures and hashes are stable.

Theory of operation
-------------------
A value is canonical when it is built only from ``None``, ``bool``, signed 64-bit
``int``, ``str``, ``bytes``, ``list`` and ``dict`` with ``str`` keys, and it is packed
with maps' keys in sorted (code point) order and msgpack's shortest forms.  There are
no floats anywhere: money is integer fen and time is integer milliseconds.

:func:`decode` accepts exactly the bytes :func:`encode` produces: it unpacks with
strict limits, rejects floats, extension types and non-string keys, and finally
re-encodes the value and compares, so a non-canonical but otherwise valid encoding
(unsorted keys, a long form of a short integer) is refused too.  Every rejection is a
:class:`~protocol.errors.DecodeError` or :class:`~protocol.errors.SchemaError` naming
the path of the offending field.
"""

from __future__ import annotations

from typing import Any

import msgpack

from protocol.errors import DecodeError, SchemaError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_DEPTH = 16

Value = Any  # None | bool | int | str | bytes | list[Value] | dict[str, Value]


def _canon(value: Value, path: str, depth: int) -> Value:
    """Check ``value`` is canonical-encodable and return it with maps' keys sorted."""
    if depth > MAX_DEPTH:
        raise SchemaError(f"{path or 'value'}: nested deeper than {MAX_DEPTH} levels")
    if value is None or value is True or value is False:
        return value
    t = type(value)
    if t is int:
        if not INT_MIN <= value <= INT_MAX:
            raise SchemaError(f"{path or 'value'}: integer {value} is outside signed 64 bits")
        return value
    if t is str or t is bytes:
        return value
    if t is dict:
        out = {}
        for k in sorted(value):
            if type(k) is not str:
                raise SchemaError(f"{path or 'value'}: map key {k!r} is not a string")
            out[k] = _canon(value[k], f"{path}.{k}" if path else k, depth + 1)
        return out
    if t is list or t is tuple:
        return [_canon(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if t is float:
        raise SchemaError(f"{path or 'value'}: floats are not allowed (use integer fen or ms)")
    if isinstance(value, bool | int | str | bytes):  # subclasses (IntEnum, StrEnum …)
        return _canon(_base(value), path, depth)
    raise SchemaError(f"{path or 'value'}: type {t.__name__} cannot be encoded")


def _base(value: Any) -> Any:
    bases: tuple[type[Any], ...] = (bool, int, str, bytes)
    for base in bases:
        if isinstance(value, base):
            return base(value)
    raise AssertionError("unreachable")


def encode(value: Value) -> bytes:
    """The canonical msgpack bytes of ``value`` (raises SchemaError if it has none)."""
    data: bytes = msgpack.packb(_canon(value, "", 0), use_bin_type=True)
    return data


def _reject_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} is not allowed")


def decode(data: bytes, *, max_size: int = 1 << 20) -> Value:
    """Decode canonical msgpack ``data``; raise DecodeError/SchemaError otherwise."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"{len(data)} bytes is over the {max_size}-byte limit")
    if not data:
        raise DecodeError("empty input")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_reject_ext,
        )
    except DecodeError:
        raise
    except msgpack.ExtraData:
        raise DecodeError("trailing bytes after the value") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise DecodeError(f"malformed msgpack: {exc.__class__.__name__}: {exc}") from None
    _check_decoded(value, "", 0)
    # Maps keep their wire order and were checked to be sorted, so packing the value
    # again reproduces the input exactly when (and only when) every form was shortest.
    if msgpack.packb(value, use_bin_type=True) != data:
        raise DecodeError("non-canonical encoding (non-shortest form)")
    return value


def _check_decoded(value: Value, path: str, depth: int) -> None:
    """Refuse floats, out-of-range ints, unsorted map keys and too-deep nesting.

    Scalars are checked inline by the container loops: this runs once per event on
    every ingest, so it recurses only into maps and lists.
    """
    if depth > MAX_DEPTH:
        raise DecodeError(f"{path or 'value'}: nested deeper than {MAX_DEPTH} levels")
    t = type(value)
    if t is dict:
        prev = None
        for k, v in value.items():
            if prev is not None and k <= prev:
                raise DecodeError(f"{path or 'value'}: non-canonical encoding (map keys not "
                                  "in sorted order)")
            prev = k
            tv = type(v)
            if tv is dict or tv is list:
                _check_decoded(v, f"{path}.{k}" if path else str(k), depth + 1)
            elif tv is float or (tv is int and not INT_MIN <= v <= INT_MAX):
                _check_scalar(v, f"{path}.{k}" if path else str(k))
    elif t is list:
        for i, v in enumerate(value):
            tv = type(v)
            if tv is dict or tv is list:
                _check_decoded(v, f"{path}[{i}]", depth + 1)
            elif tv is float or (tv is int and not INT_MIN <= v <= INT_MAX):
                _check_scalar(v, f"{path}[{i}]")
    else:
        _check_scalar(value, path or "value")


def _check_scalar(value: Value, path: str) -> None:
    if type(value) is float:
        raise DecodeError(f"{path}: floats are not allowed")
    if type(value) is int and not INT_MIN <= value <= INT_MAX:
        raise DecodeError(f"{path}: integer outside signed 64 bits")
