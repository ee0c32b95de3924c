"""Event kinds: the body schema of each kind and pure validators that return problems.

A schema is a map of field name → :class:`Field`.  :func:`validate_body` checks the
shape (unknown, missing and mistyped fields, sizes, choices) and then the kind's own
semantic check (a national ID's checksum, a charge's total).  Nothing here looks at
state: whether a card is lost or a balance suffices is :mod:`protocol.rules`' job.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol import nationalid
from protocol.errors import Problem

Fen = int
MAX_AMOUNT: Fen = 10**10  # ¥100,000,000.00 in one event is certainly a typo
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CARD_RE = re.compile(r"^[A-Za-z0-9]{4,32}$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

PAYMENT_METHODS = ("cash", "bank_card", "mobile")
REFUND_TO = ("deposit", "cash")
SEXES = ("M", "F")
CARD_MEDIA = ("chip", "magstripe", "qr")
CARD_ENTRY = ("chip", "wedge", "manual")
IDENTITY_PROOFS = ("id_card", "deposit_receipt", "record_book", "other")


@dataclass(frozen=True, slots=True)
class Field:
    """One body field: its type and limits (``lo``/``hi`` bound ints' values, strs' lengths)."""

    type: type
    required: bool = True
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] | None = None
    pattern: re.Pattern[str] | None = None
    items: Mapping[str, Field] | None = None  # for lists of maps

    def check(self, value: Any, path: str) -> list[Problem]:
        if type(value) is not self.type:
            return [Problem("field.type", f"{path}: expected {self.type.__name__}, got "
                            f"{type(value).__name__}", path)]
        return self._check_typed(value, path)

    def _check_typed(self, value: Any, path: str) -> list[Problem]:
        if self.type is str or self.type is int or self.type is list:
            size = value if self.type is int else len(value)
            what = "" if self.type is int else "length "
            if self.lo is not None and size < self.lo:
                return [Problem("field.range", f"{path}: {what}{size} is below {self.lo}", path)]
            if self.hi is not None and size > self.hi:
                return [Problem("field.range", f"{path}: {what}{size} is above {self.hi}", path)]
        if self.choices is not None and value not in self.choices:
            return [Problem("field.choice", f"{path}: {value!r} is not one of "
                            f"{', '.join(self.choices)}", path)]
        if self.pattern is not None and not self.pattern.match(value):
            return [Problem("field.format", f"{path}: {value!r} is not in the expected format",
                            path)]
        if self.items is not None:
            out: list[Problem] = []
            for i, item in enumerate(value):
                out += check_map(item, self.items, f"{path}[{i}]")
            return out
        return []


def text(hi: int = 64, *, required: bool = True, lo: int = 1) -> Field:
    return Field(str, required, lo=lo, hi=hi)


def ident(*, required: bool = True) -> Field:
    return Field(str, required, pattern=ID_RE)


def card_no(*, required: bool = True) -> Field:
    return Field(str, required, pattern=CARD_RE)


def amount(lo: int = 1) -> Field:
    return Field(int, lo=lo, hi=MAX_AMOUNT)


def choice(options: tuple[str, ...], *, required: bool = True) -> Field:
    return Field(str, required, choices=options)


#: Optional on every money event: the wallet stamp the counter wrote (or is writing) to
#: the card after it — its per-account sequence and the balance it carries.  Old events
#: have neither; both or none (see :func:`_check_stamp`).
STAMP_FIELDS: dict[str, Field] = {
    "stamp_seq": Field(int, False, lo=1, hi=2**53),
    "stamp_balance": Field(int, False, lo=-MAX_AMOUNT, hi=MAX_AMOUNT),
}

ITEM = {
    "code": text(32),
    "name": text(64),
    "qty": Field(int, lo=1, hi=10_000),
    "unit_price": Field(int, lo=0, hi=MAX_AMOUNT),
}

PATIENT_FIELDS: dict[str, Field] = {
    "name": text(64),
    "sex": choice(SEXES),
    "birth_date": Field(str, pattern=DATE_RE),
    "national_id": Field(str, False, lo=18, hi=18),
    "phone": Field(str, False, pattern=PHONE_RE),
    "contact": text(128, required=False),
}

SCHEMAS: dict[str, dict[str, Field]] = {
    "patient.registered": {"patient_id": ident(), **PATIENT_FIELDS},
    "patient.updated": {
        "patient_id": ident(),
        **{k: Field(f.type, False, f.lo, f.hi, f.choices, f.pattern) for k, f in
           PATIENT_FIELDS.items()},
    },
    "card.issued": {
        "card_no": card_no(),
        "patient_id": ident(),
        "medium": choice(CARD_MEDIA, required=False),
    },
    "card.reported_lost": {
        "card_no": card_no(),
        "patient_id": ident(),
        "verified_by": choice(IDENTITY_PROOFS),
        "reason": text(200, required=False),
    },
    "card.replaced": {
        "old_card_no": card_no(),
        "new_card_no": card_no(),
        "patient_id": ident(),
        "medium": choice(CARD_MEDIA, required=False),
    },
    "account.deposited": {
        "patient_id": ident(),
        "amount": amount(),
        "method": choice(PAYMENT_METHODS),
        "receipt_no": ident(),
        "card_no": card_no(required=False),
        "card_entry": choice(CARD_ENTRY, required=False),
        **STAMP_FIELDS,
    },
    "account.charged": {
        "charge_id": ident(),
        "patient_id": ident(),
        "card_no": card_no(required=False),
        "card_entry": choice(CARD_ENTRY, required=False),
        "items": Field(list, lo=1, hi=200, items=ITEM),
        "amount": amount(),
        "department": text(64),
        "order_ref": text(64, required=False),
        **STAMP_FIELDS,
    },
    "account.refunded": {
        "refund_id": ident(),
        "charge_id": ident(),
        "patient_id": ident(),
        "amount": amount(),
        "to": choice(REFUND_TO),
        "approved_by": text(64),
        "reason": text(200),
        **STAMP_FIELDS,
    },
    "account.settled": {
        "patient_id": ident(),
        "amount": amount(lo=0),
        "method": choice(PAYMENT_METHODS),
        "invoice_no": ident(),
        **STAMP_FIELDS,
    },
    "account.credit_granted": {
        "patient_id": ident(),
        "limit": amount(lo=0),
        "reason": text(200),
        "authorised_by": text(64),
    },
}

MONEY_KINDS = frozenset(
    {"account.deposited", "account.charged", "account.refunded", "account.settled"}
)


def check_map(value: Any, schema: Mapping[str, Field], path: str = "") -> list[Problem]:
    """Shape problems of ``value`` against ``schema`` (unknown/missing/mistyped fields)."""
    if type(value) is not dict:
        return [Problem("field.type", f"{path or 'body'}: expected a map", path)]
    out: list[Problem] = []
    for name in sorted(set(value) - set(schema)):
        out.append(Problem("field.unknown", f"{_join(path, name)}: unknown field",
                           _join(path, name)))
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


def _check_patient(body: Mapping[str, Any], *, registering: bool) -> list[Problem]:
    out: list[Problem] = []
    if registering and not (body.get("phone") or body.get("contact")):
        out.append(Problem("patient.contact_required",
                           "at least one contact (phone or other) is required", "phone"))
    if "birth_date" in body:
        try:
            dt.date.fromisoformat(body["birth_date"])
        except ValueError:
            out.append(Problem("patient.birth_date", f"birth date {body['birth_date']} is not a "
                               "real date", "birth_date"))
    if "national_id" in body:
        parsed = nationalid.parse(body["national_id"])
        if isinstance(parsed, Problem):
            out.append(parsed)
        else:
            if parsed.number != body["national_id"]:
                out.append(Problem("national_id.format", "ID number must be stored in capitals",
                                   "national_id"))
            if "birth_date" in body and body["birth_date"] != parsed.birth_date:
                out.append(Problem("patient.birth_date_mismatch", f"birth date {body['birth_date']}"
                                   f" differs from the ID number's {parsed.birth_date}",
                                   "birth_date"))
            if "sex" in body and body["sex"] != parsed.sex:
                out.append(Problem("patient.sex_mismatch",
                                   f"sex {body['sex']} differs from the ID number's {parsed.sex}",
                                   "sex"))
    return out


def _check_updated(body: Mapping[str, Any]) -> list[Problem]:
    if not set(body) - {"patient_id"}:
        return [Problem("patient.nothing_to_update", "an update must change at least one field")]
    return _check_patient(body, registering=False)


def _check_charge(body: Mapping[str, Any]) -> list[Problem]:
    total = sum(i["qty"] * i["unit_price"] for i in body["items"])
    if total != body["amount"]:
        return [Problem("charge.total_mismatch",
                        f"items add up to {total} fen but the charge says {body['amount']}",
                        "amount")]
    return []


def _check_stamp(body: Mapping[str, Any]) -> list[Problem]:
    if ("stamp_seq" in body) != ("stamp_balance" in body):
        return [Problem("stamp.incomplete", "stamp_seq and stamp_balance go together",
                        "stamp_seq")]
    return []


def _check_replaced(body: Mapping[str, Any]) -> list[Problem]:
    if body["old_card_no"] == body["new_card_no"]:
        return [Problem("card.same_number", "the new card must have a different number",
                        "new_card_no")]
    return []


SEMANTIC: dict[str, Callable[[Mapping[str, Any]], list[Problem]]] = {
    "patient.registered": lambda b: _check_patient(b, registering=True),
    "patient.updated": _check_updated,
    "account.charged": lambda b: _check_charge(b) + _check_stamp(b),
    "account.deposited": _check_stamp,
    "account.refunded": _check_stamp,
    "account.settled": _check_stamp,
    "card.replaced": _check_replaced,
}


def register_kind(
    kind: str,
    schema: dict[str, Field],
    semantic: Callable[[Mapping[str, Any]], list[Problem]] | None = None,
) -> None:
    """Add an event kind (later modules: conflict remedies, visits, dispensing …)."""
    if kind in SCHEMAS:
        raise ValueError(f"event kind {kind} is already registered")
    SCHEMAS[kind] = schema
    if semantic is not None:
        SEMANTIC[kind] = semantic


def validate_body(kind: str, body: Any) -> list[Problem]:
    """Every problem with ``body`` as the body of an event of ``kind`` (empty: valid)."""
    schema = SCHEMAS.get(kind)
    if schema is None:
        return [Problem("kind.unknown", f"unknown event kind {kind!r}", "kind")]
    problems = check_map(body, schema)
    if problems:
        return problems
    semantic = SEMANTIC.get(kind)
    return semantic(body) if semantic else []
