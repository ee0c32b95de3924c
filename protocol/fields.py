"""Body fields: types and limits, checked on the wire, and typed frozen bodies built from them.

Theory of operation
-------------------
A kind's body is a frozen dataclass declared with :func:`body`; each field carries a
:class:`Field` (its wire type and limits) in its metadata.  :func:`decode` checks a
wire map against those fields — unknown, missing and mistyped fields, lengths, ranges,
choices, formats, nested lists — and only then builds the typed body and runs its own
semantic check (``problems()``).  Every problem is a value naming the field; nothing
here raises on any input, whatever its shape, so whatever arrives signed can be
checked.

Every integer a body may carry is bounded (``lo``/``hi`` within :data:`SAFE_INT`), and
so is every text and list: whatever the fold sums or stores fits a signed 64-bit
column in every store.  A test holds every registered kind to that.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, dataclass_transform

from protocol.errors import Amount, Problem
from protocol.event import SAFE_INT

Fen = int
MAX_AMOUNT: Fen = 10**10  # ¥100,000,000.00 in one event is certainly a typo

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CARD_RE = re.compile(r"^[A-Za-z0-9]{4,32}$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
#: What each usual pattern expects, by name: a format problem's ``variant`` (a message
#: says what the field should look like).
PATTERNS: dict[re.Pattern[str], str] = {ID_RE: "ident", CARD_RE: "card_no",
                                        PHONE_RE: "phone", DATE_RE: "date"}


class Body:
    """Base of every typed body: :func:`body` fills ``SCHEMA`` from the fields' specs."""

    __slots__ = ()
    SCHEMA: ClassVar[dict[str, Field]]

    def problems(self) -> list[Problem]:
        """Semantic problems beyond each field's shape (a total that does not add up …)."""
        return []


B = TypeVar("B", bound=Body)


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """One body field: its wire type and limits.

    ``lo``/``hi`` bound an int's value and a str's or list's length.  A list holds
    maps of ``item`` (a body type) or scalars checked by ``each``.  ``money``: an int
    in fen (its problems carry its bounds as :class:`~protocol.errors.Amount`).
    """

    type: type
    required: bool = True
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] | None = None
    pattern: re.Pattern[str] | None = None
    item: builtins.type[Any] | None = None  # a @body type, for lists of maps
    each: Field | None = None  # for lists of scalars
    money: bool = False

    def check(self, value: Any, path: str) -> list[Problem]:
        if type(value) is not self.type:
            return [Problem("field.type", f"{path}: expected {self.type.__name__}, got "
                            f"{type(value).__name__}", path,
                            {"expected": self.type.__name__, "got": type(value).__name__})]
        return self._check_typed(value, path)

    def _range(self, path: str, size: int, bound: int, side: str) -> Problem:
        """``size`` is ``side`` (above/below) ``bound``: a value's or a length's."""
        if self.type is int:
            shown = Amount(bound) if self.money else bound
            return Problem("field.range", f"{path}: {size} is {side} {bound}", path,
                           {"variant": side, "bound": shown, "value": size})
        if self.type is list:
            variant = f"count_{side}"
        elif side == "below" and size == 0:
            variant = "empty"  # an empty text where one is needed: a required entry
        else:
            variant = f"length_{side}"
        return Problem("field.range", f"{path}: length {size} is {side} {bound}", path,
                       {"variant": variant, "bound": bound, "value": size})

    def _check_typed(self, value: Any, path: str) -> list[Problem]:
        if self.type is str or self.type is int or self.type is list:
            size = value if self.type is int else len(value)
            if self.lo is not None and size < self.lo:
                return [self._range(path, size, self.lo, "below")]
            if self.hi is not None and size > self.hi:
                return [self._range(path, size, self.hi, "above")]
        if self.choices is not None and value not in self.choices:
            return [Problem("field.choice", f"{path}: {_show(value)} is not one of "
                            f"{', '.join(self.choices)}", path,
                            {"value": _show(value), "choices": ", ".join(self.choices)})]
        if self.pattern is not None and not self.pattern.match(value):
            return [Problem("field.format", f"{path}: {_show(value)} is not in the expected "
                            "format", path, {"variant": PATTERNS.get(self.pattern, ""),
                                             "value": _show(value)})]
        out: list[Problem] = []
        items: list[Any] = value if self.type is list else []
        if self.item is not None:
            for i, x in enumerate(items):
                out += check_map(x, self.item.SCHEMA, f"{path}[{i}]")
        elif self.each is not None:
            for i, x in enumerate(items):
                out += self.each.check(x, f"{path}[{i}]")
        return out

    def convert(self, value: Any) -> Any:
        """The typed value of a checked wire value (lists become tuples)."""
        if self.item is not None:
            return tuple(_build(self.item, x) for x in value)
        if self.type is list:
            return tuple(value)
        return value

    def to_wire(self, value: Any) -> Any:
        if self.item is not None:
            return [to_wire(x) for x in value]
        if self.type is list:
            return list(value)
        return value


def _show(value: Any) -> str:
    """A value for a message: short, whatever was sent."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def check_map(value: Any, schema: Mapping[str, Field], path: str = "") -> list[Problem]:
    """Shape problems of ``value`` against ``schema`` (unknown/missing/mistyped fields)."""
    if type(value) is not dict:
        return [Problem("field.type", f"{path or 'body'}: expected a map", path,
                        {"expected": "dict", "got": type(value).__name__})]
    out: list[Problem] = []
    unknown = sorted(k for k in value if k not in schema)
    for name in unknown[:5]:
        p = _join(path, name if len(name) <= 40 else name[:39] + "…")
        out.append(Problem("field.unknown", f"{p}: unknown field", p, {"name": p}))
    if len(unknown) > 5:
        out.append(Problem("field.unknown", f"{len(unknown) - 5} more unknown fields", path,
                           {"variant": "more", "n": len(unknown) - 5}))
    for name, spec in schema.items():
        p = _join(path, name)
        if name not in value:
            if spec.required:
                out.append(Problem("field.missing", f"{p}: required", p))
            continue
        out += spec.check(value[name], p)
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- declaring bodies -----------------------------------------------------------------------
def spec(field: Field, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field carrying its wire :class:`Field` (optional ones need a default)."""
    if not field.required and default is dataclasses.MISSING:
        raise TypeError("an optional field needs a default")
    return dataclasses.field(default=default, metadata={"spec": field})


@dataclass_transform(kw_only_default=True, frozen_default=True)
def body(cls: type[B]) -> type[B]:
    """Make ``cls`` (a :class:`Body`) a frozen, slotted, keyword-only dataclass and fill
    its wire ``SCHEMA`` from its fields' :func:`spec`."""
    out = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
    schema: dict[str, Field] = {}
    for f in dataclasses.fields(out):  # type: ignore[arg-type]
        s = f.metadata.get("spec")
        if not isinstance(s, Field):
            raise TypeError(f"{cls.__name__}.{f.name} has no wire Field (use spec(...))")
        schema[f.name] = s
    out.SCHEMA = schema
    _FAST[out] = _compile(out)
    return out


# The checks of a schema compiled, as ``dataclasses`` compiles ``__init__``, into one
# function per body type that checks a wire map and builds the typed body in one pass,
# for the common case of a valid body (every event folded, every push checked).  It
# answers None for anything else, which the field-by-field check then names.  A property
# test holds the two to the same verdicts (tests/test_core_properties.py).
_FAST: dict[type[Any], Callable[[dict[str, Any]], Any]] = {}


def _compile(cls: type[Any]) -> Callable[[dict[str, Any]], Any]:
    schema: dict[str, Field] = cls.SCHEMA
    ns: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__, "_cls": cls,
                          "_names": frozenset(schema),
                          "_required": frozenset(n for n, f in schema.items() if f.required)}
    lines = ["def fast(raw):",
             "    keys = raw.keys()",
             "    if not (keys <= _names and _required <= keys):",
             "        return None",
             "    obj = _new(_cls)"]
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for i, (name, f) in enumerate(schema.items()):
        v = f"v{i}"
        body = [f"        {v} = raw[{name!r}]",
                f"        if not ({_condition(f, v, i, ns)}):",
                "            return None"]
        if f.item is not None:
            ns[f"_item{i}"] = _fast_item(f.item)
            body += [f"        {v} = tuple(_item{i}(x) for x in {v})",
                     f"        if None in {v}:",
                     "            return None"]
        elif f.type is list:
            body.append(f"        {v} = tuple({v})")
        if f.required:
            lines += [line[4:] for line in body]
        else:
            ns[f"_d{i}"] = defaults[name]
            lines += [f"    if {name!r} in raw:", *body, "    else:", f"        {v} = _d{i}"]
        lines.append(f"    _set(obj, {name!r}, {v})")
    lines.append("    return obj")
    exec("\n".join(lines), ns)  # code made from the class's own declared fields
    fast: Callable[[dict[str, Any]], Any] = ns["fast"]
    return fast


def _fast_item(item: type[Any]) -> Callable[[Any], Any]:
    fast = _FAST[item]
    return lambda x: fast(x) if type(x) is dict else None


def _condition(f: Field, v: str, i: int, ns: dict[str, Any]) -> str:
    """The Python expression that holds when ``v`` meets ``f`` (``ns``: its constants)."""
    if f.type is int:
        out = [f"type({v}) is int"]
        if f.lo is not None:
            out.append(f"{v} >= {f.lo}")
        if f.hi is not None:
            out.append(f"{v} <= {f.hi}")
        return " and ".join(out)
    out = [f"type({v}) is {f.type.__name__}"]
    if f.type is str or f.type is list:
        if f.lo is not None:
            out.append(f"len({v}) >= {f.lo}")
        if f.hi is not None:
            out.append(f"len({v}) <= {f.hi}")
    if f.choices is not None:
        ns[f"_c{i}"] = frozenset(f.choices)
        out.append(f"{v} in _c{i}")
    if f.pattern is not None:
        ns[f"_m{i}"] = f.pattern.match
        out.append(f"_m{i}({v}) is not None")
    if f.each is not None:
        sub: dict[str, Any] = {}
        ns[f"_e{i}"] = eval(f"lambda x: {_condition(f.each, 'x', 0, sub)}", sub)
        out.append(f"all(_e{i}(x) for x in {v})")
    return " and ".join(out)


def _build(cls: type[B], raw: dict[str, Any]) -> B:
    kwargs = {name: s.convert(raw[name]) for name, s in cls.SCHEMA.items() if name in raw}
    return cls(**kwargs)


def decode(cls: type[B], raw: Any) -> B | list[Problem]:
    """The typed body of wire map ``raw``, or every problem with it (never raises)."""
    value = _FAST[cls](raw) if type(raw) is dict else None
    if value is None:
        problems = check_map(raw, cls.SCHEMA)
        if problems:
            return problems
        value = _build(cls, raw)
    problems = value.problems()
    return problems or value


def to_wire(value: Any) -> dict[str, Any]:
    """The wire map of a typed body (optional fields at their default are left out)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        s: Field = f.metadata["spec"]
        v = getattr(value, f.name)
        if not s.required and v == f.default:
            continue
        out[f.name] = s.to_wire(v)
    return out


# -- the usual fields ----------------------------------------------------------------------
def text(hi: int = 64, *, required: bool = True, lo: int = 1) -> Field:
    return Field(str, required, lo=lo, hi=hi)


def ident(*, required: bool = True) -> Field:
    return Field(str, required, pattern=ID_RE)


def card_no(*, required: bool = True) -> Field:
    return Field(str, required, pattern=CARD_RE)


def amount(lo: int = 1, hi: int = MAX_AMOUNT, *, required: bool = True) -> Field:
    return Field(int, required, lo=lo, hi=hi, money=True)


def choice(options: tuple[str, ...], *, required: bool = True) -> Field:
    return Field(str, required, choices=options)


def id_list(hi: int = 50, lo: int = 0, *, each: Callable[[], Field] = ident) -> Field:
    return Field(list, lo=lo, hi=hi, each=each())


def unbounded(field: Field) -> str | None:
    """Why ``field`` could carry a value a store cannot hold (None: it is bounded)."""
    if field.type is int and (field.lo is None or field.hi is None
                              or field.lo < -SAFE_INT or field.hi > SAFE_INT):
        return "an int field needs lo and hi within ±2^53"
    if field.type in (str, list) and field.hi is None and field.choices is None \
            and field.pattern is None:
        return "a text or list field needs a maximum length"
    if field.item is not None:
        for name, f in field.item.SCHEMA.items():
            why = unbounded(f)
            if why:
                return f"{name}: {why}"
    if field.each is not None:
        return unbounded(field.each)
    return None
