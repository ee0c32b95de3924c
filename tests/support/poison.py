"""Poison bodies: for every registered kind, each field missing, mistyped and at its extremes.

Each case starts from the kind's valid example (``tests/test_kinds.py``) and breaks one
thing; only cases the registry really refuses are kept (a value at a limit may be
valid).  Central-only kinds also get their valid body, which a counter may not sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.core import CENTRAL_ONLY
from protocol.domain import REGISTRY
from protocol.fields import Field
from tests.test_kinds import VALID

I64_MAX, I64_MIN = 2**63 - 1, -(2**63)
#: a value of another wire type, for each type a field may have
MISTYPED: dict[type, tuple[Any, ...]] = {
    int: ("100", None, True, [1]),
    str: (1, None, b"x", ["x"], {"x": 1}),
    list: ("x", {"0": 1}, 1),
    dict: ([], "x"),
}


@dataclass(frozen=True)
class Case:
    kind: str
    what: str  # e.g. "amount: missing"
    body: dict[str, Any]
    field: str = ""


def _extremes(f: Field) -> list[Any]:
    if f.type is int:
        lo = f.lo if f.lo is not None else 0
        hi = f.hi if f.hi is not None else 0
        return [lo - 1, hi + 1, I64_MAX, I64_MIN, 0, -1]
    if f.type is str:
        return ["", "x" * ((f.hi or 64) + 1), "x" * 40_000, "\u0000", "١٢٣"]
    if f.type is list:
        return [[], ["x"] * ((f.hi or 50) + 1), [[]], [None]]
    return []


def cases() -> list[Case]:
    out: list[Case] = []
    for name in sorted(REGISTRY.kinds):
        valid = VALID[name]
        schema = REGISTRY.kinds[name].body.SCHEMA
        candidates: list[tuple[str, dict[str, Any], str]] = []
        for field, f in schema.items():
            if field in valid:
                rest = {k: v for k, v in valid.items() if k != field}
                candidates.append((f"{field}: missing", rest, field))
            for v in MISTYPED.get(f.type, ()):
                candidates.append((f"{field}: {type(v).__name__}", {**valid, field: v}, field))
            for v in _extremes(f):
                shown = repr(v) if len(repr(v)) < 24 else f"{type(v).__name__} of {len(repr(v))}"
                candidates.append((f"{field}: {shown}", {**valid, field: v}, field))
        candidates.append(("unknown field", {**valid, "surprise": 1}, "surprise"))
        candidates.append(("empty body", {}, ""))
        for what, body, field in candidates:
            if REGISTRY.validate(name, body):
                out.append(Case(name, what, body, field))
        if REGISTRY.kinds[name].signer == CENTRAL_ONLY:
            out.append(Case(name, "signed by a counter", dict(valid)))
    return out
