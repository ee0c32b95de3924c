"""The patient: registration and details (DOMAIN 3.2), one record per patient number.

Patient numbers are made by the registering counter (``P-<node>-<seq>``), so two
offline counters never make the same one.  Every detail field is last-writer-wins in
the merge order: ``versions`` keeps, per field, the order of the event that last set
it, so a registration and updates arriving in any order leave the same record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from protocol import nationalid, privacy
from protocol.core import (
    COUNTER,
    At,
    Kind,
    PatientId,
    Record,
    ReportLine,
    RuleConfig,
    State,
    Tx,
    earlier,
    no_money,
    no_notice,
    no_report,
    record,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import DATE_RE, PHONE_RE, Body, Field, body, choice, ident, spec, text

SEXES = ("M", "F")
CONTACT_MAX = 128  # characters of an address or other contact
NAME_MAX = 64  # characters of a name, in clear
DETAILS = ("name", "sex", "birth_date", "national_id", "phone", "contact")
#: the lookup tags that go with the sealed details (:mod:`protocol.privacy`): a tag is set
#: with its detail, so it has that detail's last writer
TAG_FIELDS = ("id_tag", "phone_tag", "name_tag")
LABELS = {"sex.M": ("男", "M"), "sex.F": ("女", "F"),
          "detail.name": ("姓名", "name"), "detail.sex": ("性别", "sex"),
          "detail.birth_date": ("出生日期", "birth date"),
          "detail.national_id": ("身份证号", "ID number"), "detail.phone": ("电话", "phone"),
          "detail.contact": ("联系方式", "contact")}


@record("patients", ("patient_id",),
        indexes=(("national_id",), ("id_tag",), ("merged_into",)))
@dataclass(frozen=True, slots=True)
class Patient(Record):
    patient_id: PatientId
    name: str = ""
    sex: str = ""
    birth_date: str = ""
    national_id: str = ""  # sealed (protocol.privacy); clear only in legacy ledgers
    phone: str = ""  # sealed
    contact: str = ""  # sealed: the address or another way to reach them
    id_tag: str = ""  # keyed tag of the ID number (lookups, duplicate checks)
    phone_tag: str = ""  # keyed tags of the phone and of its last four digits
    name_tag: str = ""  # keyed tag of the name, normalised (central's duplicate checks)
    registered_node: str = ""
    registered_seq: int = 0
    registered_ms: int = 0
    registered_at: str = ""  # merge order of the registration (the earliest, if several)
    merged_into: str = ""  # central merged this record into that one (a duplicate)
    merged_at: str = ""
    versions: str = ""  # detail field=merge order of its last writer;… (sorted by field)


def set_details(tx: Tx, pid: PatientId, at: At, details: dict[str, str],
                **also: object) -> None:
    """Set each detail whose last writer so far is earlier than ``at`` (order-independent),
    and the fields ``also`` as they are given, in one copy of the record."""
    old = tx.get_or_new(Patient, pid)
    versions = _versions(old.versions)
    order = at.order
    changes: dict[str, object] = dict(also)
    for name, value in details.items():
        if order > versions.get(name, ""):
            changes[name] = value
            versions[name] = order
    if changes:
        if len(changes) > len(also):
            changes["versions"] = ";".join(f"{k}={v}" for k, v in sorted(versions.items()))
        tx.put(old.evolve(**changes))


def _versions(text: str) -> dict[str, str]:
    """``name=order;…`` (an order holds no ``;`` or ``=``: digits, a node id, a space)."""
    if not text:
        return {}
    return dict(part.split("=", 1) for part in text.split(";"))


def patient_known(state: State, pid: PatientId) -> list[Problem]:
    """Refuse work on a patient this counter does not know, or on a merged record."""
    p = state.get(Patient, pid)
    if p is None or not p.registered_at:
        return [Problem("patient.unknown", f"no patient {pid} is known at this counter",
                        "patient_id", {"patient": pid})]
    if p.merged_into:
        return [Problem("patient.merged", f"patient {pid} was merged into {p.merged_into}; "
                        "use that record", "patient_id", {"patient": pid, "into": p.merged_into})]
    return []


EARLIEST_BIRTH = "1900-01-01"  # a birth date before this is a typo, not a patient


def plausible_birth(birth_date: str | None, cfg: RuleConfig) -> list[Problem]:
    """Refuse a birth date after the counter's today or before :data:`EARLIEST_BIRTH`.

    A counter rule (the body check only knows the date is real): the fold never reads
    the day, so every node still folds the same events to the same records.
    """
    if not birth_date or not DATE_RE.match(birth_date):
        return []
    if cfg.today and birth_date > cfg.today:
        return [Problem("patient.birth_date_future", f"birth date {birth_date} is after "
                        f"today ({cfg.today})", "birth_date",
                        {"date": birth_date, "today": cfg.today})]
    if birth_date < EARLIEST_BIRTH:
        return [Problem("patient.birth_date_too_early", f"birth date {birth_date} is before "
                        f"{EARLIEST_BIRTH}: check it", "birth_date",
                        {"date": birth_date, "earliest": EARLIEST_BIRTH})]
    return []


def check_id_number(national_id: str, birth_date: str | None, sex: str | None
                    ) -> list[Problem]:
    """An ID number in clear: well formed, and agreeing with the birth date and sex given.

    The counter checks this before it seals the number (:mod:`protocol.privacy`); in the
    event only a legacy clear number can still be checked."""
    parsed = nationalid.parse(national_id)
    if isinstance(parsed, Problem):
        return [parsed]
    out: list[Problem] = []
    if parsed.number != national_id:
        out.append(Problem("national_id.format", "ID number must be stored in capitals",
                           "national_id"))
    if birth_date and birth_date != parsed.birth_date:
        out.append(Problem("patient.birth_date_mismatch", f"birth date {birth_date}"
                           f" differs from the ID number's {parsed.birth_date}",
                           "birth_date", {"date": birth_date, "id_date": parsed.birth_date}))
    if sex and sex != parsed.sex:
        out.append(Problem("patient.sex_mismatch",
                           f"sex {sex} differs from the ID number's {parsed.sex}", "sex"))
    return out


_CLEAR = {"name": text(NAME_MAX), "phone": Field(str, False, pattern=PHONE_RE),
          "contact": text(CONTACT_MAX, required=False)}


def clear_problems(clear: dict[str, str]) -> list[Problem]:
    """A name, a phone and an address in clear, checked as the form has them (the counter
    checks them before it seals them; in an event only legacy clear ones can still be)."""
    return [p for d, f in _CLEAR.items() if d in clear for p in f.check(clear[d], d)]


def _check_details(b: Registered | Updated, *, registering: bool) -> list[Problem]:
    out: list[Problem] = []
    if registering and not (b.phone or b.contact):
        out.append(Problem("patient.contact_required",
                           "at least one contact (phone or other) is required", "phone"))
    if b.birth_date:
        try:
            dt.date.fromisoformat(b.birth_date)
        except ValueError:
            out.append(Problem("patient.birth_date", f"birth date {b.birth_date} is not a "
                               "real date", "birth_date", {"date": b.birth_date}))
    out += privacy.detail_problems("name", b.name, b.name_tag)
    if b.name and not privacy.is_sealed(b.name):  # a legacy clear name
        out += clear_problems({"name": b.name})
    out += privacy.detail_problems("national_id", b.national_id, b.id_tag)
    out += privacy.detail_problems("phone", b.phone, b.phone_tag)
    out += privacy.detail_problems("contact", b.contact, None)
    if b.national_id and not privacy.is_sealed(b.national_id):  # a legacy clear number
        out += check_id_number(b.national_id, b.birth_date, b.sex)
    out += clear_problems({d: v for d in ("phone", "contact")
                           if (v := getattr(b, d)) and not privacy.is_sealed(v)})
    return out


# -- patient.registered ------------------------------------------------------------------
_SEALED = Field(str, False, lo=0, hi=privacy.SEALED_MAX)
_TAG = Field(str, False, lo=0, hi=65)
#: a name: sealed (``sb1:…``, longer than the clear name), a legacy ledger's in clear
_NAME = Field(str, lo=1, hi=privacy.SEALED_MAX)


@body
class Registered(Body):
    patient_id: str = spec(ident())
    name: str = spec(_NAME)
    sex: str = spec(choice(SEXES))
    birth_date: str = spec(Field(str, pattern=DATE_RE))
    #: sealed (protocol.privacy): ``sb1:…``; a legacy ledger's are in clear
    national_id: str = spec(_SEALED, "")
    phone: str = spec(_SEALED, "")
    contact: str = spec(_SEALED, "")
    id_tag: str = spec(_TAG, "")
    phone_tag: str = spec(_TAG, "")
    name_tag: str = spec(_TAG, "")

    def problems(self) -> list[Problem]:
        return _check_details(self, registering=True)


def _fold_registered(tx: Tx, at: At, b: Registered) -> None:
    p = tx.get_or_new(Patient, b.patient_id)
    first = earlier(at.order, p.registered_at)  # registered twice: the first one holds
    also = {"registered_node": at.node, "registered_seq": at.seq, "registered_ms": at.wall,
            "registered_at": at.order} if first else {}
    set_details(tx, b.patient_id, at, {d: getattr(b, d) for d in DETAILS + TAG_FIELDS},
                **also)


def _rule_registered(state: State, b: Registered, cfg: RuleConfig) -> list[Problem]:
    p = state.get(Patient, b.patient_id)
    if p is not None and p.registered_at:
        return [Problem("patient.exists", f"patient {b.patient_id} already exists",
                        "patient_id", {"patient": b.patient_id})]
    return privacy.clear_details(b) or plausible_birth(b.birth_date, cfg)


REGISTERED = Kind(
    name="patient.registered", body=Registered, signer=COUNTER, title=("建档", "Registered"),
    records=lambda b: refs(Patient, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_registered, money=no_money, rule=_rule_registered,
    # (a sealed name is not described: screens that may read it open it themselves)
    describe=lambda b, lang: "" if privacy.is_sealed(b.name) else b.name,
    report=lambda b: ReportLine("counts", "registrations"),
    notice=no_notice,
)


# -- patient.updated ---------------------------------------------------------------------
def _optional(f: Field) -> Field:
    return Field(f.type, False, f.lo, f.hi, f.choices, f.pattern)


@body
class Updated(Body):
    """Changed details only; a field left out (None) is unchanged."""

    patient_id: str = spec(ident())
    name: str | None = spec(_optional(_NAME), None)
    sex: str | None = spec(_optional(choice(SEXES)), None)
    birth_date: str | None = spec(_optional(Field(str, pattern=DATE_RE)), None)
    national_id: str | None = spec(_SEALED, None)
    phone: str | None = spec(_SEALED, None)
    contact: str | None = spec(_SEALED, None)
    id_tag: str | None = spec(_TAG, None)
    phone_tag: str | None = spec(_TAG, None)
    name_tag: str | None = spec(_TAG, None)

    def changed(self) -> dict[str, str]:
        """The details given, each sealed one with its tag (so they share a writer)."""
        out = {d: v for d in DETAILS if (v := getattr(self, d)) is not None}
        for detail, tag in privacy.TAGS.items():
            if detail in out:
                out[tag] = getattr(self, tag) or ""
        return out

    def problems(self) -> list[Problem]:
        if not self.changed():
            return [Problem("patient.nothing_to_update",
                            "an update must change at least one field")]
        return _check_details(self, registering=False)


def _rule_updated(state: State, b: Updated, cfg: RuleConfig) -> list[Problem]:
    return (patient_known(state, b.patient_id) or privacy.clear_details(b)
            or plausible_birth(b.birth_date, cfg))


UPDATED = Kind(
    name="patient.updated", body=Updated, signer=COUNTER,
    title=("修改资料", "Details changed"),
    records=lambda b: refs(Patient, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=lambda tx, at, b: set_details(tx, b.patient_id, at, b.changed()),
    money=no_money, rule=_rule_updated,
    describe=lambda b, lang: ", ".join(say(LABELS[f"detail.{d}"], lang) for d in b.changed()
                                       if d in DETAILS),
    report=no_report, notice=no_notice,
)

KINDS = (REGISTERED, UPDATED)
RECORDS = (Patient,)
