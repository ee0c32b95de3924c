"""Visits (挂号, DOMAIN 3.4–3.5): registration to a department or doctor, the queue, the
consultation fee and the diagnoses.

Theory of operation
-------------------
A visit is registered at the cashier, at a triage desk by tap, or at a self-service
kiosk (``channel``); the registration fee is charged from the deposit in the same event.

**Queue numbers cannot collide between offline counters.**  A number is drawn from the
registering counter's own series for its department and day: the body carries the
counter's *queue tag* (``T01`` for ``triage-01``: :func:`default_tag`, or the config's
``queue_tag``) and the next number of that tag's series, which only that counter
draws — its rule refuses a number it has already given, and it knows every number it
gave because they are in its own chain.  The displayed number is tag and number
(``T01-007``), so two counters offline at once hand out ``T01-007`` and ``T02-007``,
never the same.  (Two counters configured with the same tag would share a series: tags
are per counter, and :func:`default_tag` keeps a node id's role letter and digits.)
The queue is called in registration order (the merge order), not by number.

A visit's status moves waiting → called (→ skipped → recalled) → in consultation →
done or no-show.  Order-independence: a final status (done, no-show) beats any other,
and among equals the last writer in the merge order holds; ``calls`` is a sum.
The consultation fee is its own event (``visit.fee_charged``), charged once per visit:
the counter's rule refuses a second, and the fold keeps the earliest as the visit's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from protocol import catalogue
from protocol.account import Account, add, approver, charge_checks, offline_mark
from protocol.card import CARD_ENTRY, Card, usable_card
from protocol.catalogue import Department, Doctor, vkey
from protocol.core import (
    CENTRAL_ONLY,
    COUNTER,
    At,
    Fen,
    Kind,
    Money,
    PatientId,
    Record,
    Ref,
    ReportLine,
    RuleConfig,
    State,
    Tx,
    earlier,
    later,
    no_money,
    no_notice,
    no_report,
    no_rule,
    record,
    refs,
    say,
)
from protocol.errors import Amount, Problem
from protocol.fields import (
    DATE_RE,
    MAX_AMOUNT,
    Body,
    Field,
    body,
    card_no,
    choice,
    ident,
    spec,
    text,
)
from protocol.money import yuan
from protocol.patient import Patient, patient_known

CHANNELS = ("cashier", "triage", "kiosk", "doctor")
STEPS = ("called", "skipped", "recalled", "started", "done", "no_show")
#: the status each step leaves the visit in
STATUS_OF = {"called": "called", "skipped": "skipped", "recalled": "called",
             "started": "consulting", "done": "done", "no_show": "no_show"}
FINAL = frozenset({"done", "no_show"})
#: the statuses each step may follow (the counter's rule; the fold takes any order)
FROM = {"called": {"waiting", "called", "skipped"}, "recalled": {"called", "skipped"},
        "skipped": {"called"}, "started": {"waiting", "called", "skipped"},
        "done": {"consulting"}, "no_show": {"waiting", "called", "skipped"}}
TAG_RE = re.compile(r"^[A-Z0-9]{1,6}$")
ICD10_RE = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")
LABELS = {"channel.cashier": ("收费处", "cashier"), "channel.triage": ("分诊台", "triage"),
          "channel.kiosk": ("自助机", "kiosk"), "channel.doctor": ("诊室", "doctor"),
          "status.waiting": ("候诊", "waiting"), "status.called": ("已呼叫", "called"),
          "status.skipped": ("过号", "skipped"), "status.consulting": ("就诊中", "in consultation"),
          "status.done": ("已完成", "done"), "status.no_show": ("未到", "no-show"),
          "step.called": ("呼叫", "called"), "step.skipped": ("过号", "skipped"),
          "step.recalled": ("重呼", "recalled"), "step.started": ("开始就诊", "started"),
          "step.done": ("就诊结束", "done"), "step.no_show": ("未到", "no-show")}


def default_tag(node: str) -> str:
    """A counter's queue tag from its node id: each word's first letter and every digit,
    upper case (``triage-01`` → ``T01``, ``kiosk-lobby-2`` → ``KL2``), at most 6."""
    words = re.findall(r"[A-Za-z]+|[0-9]+", node)
    tag = "".join(w if w.isdigit() else w[0].upper() for w in words)
    return (tag or "Q")[:6]


def queue_label(tag: str, number: int) -> str:
    return f"{tag}-{number:03d}"


def queue_key(dept: str, day: str) -> str:
    return f"{dept}|{day}"


# -- records ------------------------------------------------------------------------------
@record("visits", ("visit_id",), indexes=(("patient_id",), ("queue",)))
@dataclass(frozen=True, slots=True)
class Visit(Record):
    visit_id: str
    patient_id: PatientId = ""
    dept: str = ""
    doctor_id: str = ""
    day: str = ""
    queue: str = ""  # department|day: the queue it waits in
    queue_tag: str = ""
    queue_no: int = 0
    channel: str = ""
    fee: Fen = 0
    fee_code: str = ""
    catalogue_version: int = 0
    registered_node: str = ""
    registered_ms: int = 0
    registered_at: str = ""  # merge order of the registration (the earliest, if twice)
    patient_at: str = ""  # before the registration arrives: the earliest event naming it
    status: str = "waiting"
    status_final: int = 0
    status_at: str = ""
    status_ms: int = 0
    room: str = ""  # the room the latest step naming one said (the waiting room shows it)
    room_at: str = ""
    calls: int = 0
    consult_fee: Fen = 0  # sums of every consultation fee charged (one, unless offline twice)
    consult_at: str = ""  # the earliest
    doctor_seen: str = ""  # the operator who started the consultation (latest start)
    doctor_at: str = ""
    fee_returned: Fen = 0  # consultation fees central gave back (a double fee's remedy)

    @property
    def label(self) -> str:
        return queue_label(self.queue_tag, self.queue_no) if self.queue_tag else ""


@record("queue_series", ("queue", "tag"))
@dataclass(frozen=True, slots=True)
class QueueSeries(Record):
    """The highest number a counter's tag has given in a department's queue of a day."""

    queue: str
    tag: str
    last: int = 0


@record("diagnoses", ("diagnosis_id",), indexes=(("patient_id",), ("visit_id",)))
@dataclass(frozen=True, slots=True)
class Diagnosis(Record):
    diagnosis_id: str
    visit_id: str = ""
    patient_id: PatientId = ""
    icd10: str = ""
    text: str = ""
    doctor: str = ""
    wall_ms: int = 0
    at: str = ""  # last writer


# -- visit.registered ---------------------------------------------------------------------
@body
class Registered(Body):
    visit_id: str = spec(ident())
    patient_id: str = spec(ident())
    dept: str = spec(text(32))
    doctor_id: str = spec(text(32, required=False, lo=0), "")
    day: str = spec(Field(str, pattern=DATE_RE))
    queue_tag: str = spec(Field(str, pattern=TAG_RE))
    queue_no: int = spec(Field(int, lo=1, hi=9999))
    channel: str = spec(choice(CHANNELS))
    fee: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    fee_code: str = spec(text(32, required=False, lo=0), "")
    catalogue_version: int = spec(Field(int, lo=1, hi=catalogue.MAX_VERSION))
    card_no: str = spec(card_no(required=False), "")
    card_entry: str = spec(choice(CARD_ENTRY, required=False), "")
    supervisor: str = approver()
    offline_from: int = offline_mark()

    def problems(self) -> list[Problem]:
        if self.fee and not self.fee_code:
            return [Problem("visit.fee_code", "a registration fee names its catalogue item",
                            "fee_code")]
        return []


def _fold_registered(tx: Tx, at: At, b: Registered) -> None:
    v = tx.get_or_new(Visit, b.visit_id)
    if earlier(at.order, v.registered_at):
        tx.put(v.evolve(patient_id=b.patient_id, dept=b.dept, doctor_id=b.doctor_id,
                        day=b.day, queue=queue_key(b.dept, b.day), queue_tag=b.queue_tag,
                        queue_no=b.queue_no, channel=b.channel, fee=b.fee,
                        fee_code=b.fee_code, catalogue_version=b.catalogue_version,
                        registered_node=at.node, registered_ms=at.wall,
                        registered_at=at.order, patient_at=""))
    s = tx.get_or_new(QueueSeries, (queue_key(b.dept, b.day), b.queue_tag))
    if b.queue_no > s.last:
        tx.put(s.evolve(last=b.queue_no))
    if b.fee:
        add(tx, b.patient_id, charged=b.fee)


def priced_as(state: State, version: int, code: str, price: Fen, types: tuple[str, ...],
              what: str) -> list[Problem]:
    """``code`` is an item of one of ``types`` in catalogue ``version`` at ``price``."""
    item = catalogue.priced(state, version, code)
    if item is None or item.type not in types:
        return [Problem("catalogue.unknown_item", f"{code} is not a {'/'.join(types)} item "
                        f"of catalogue version {version}", what, {"code": code})]
    if item.price != price:
        return [Problem("catalogue.price", f"{code} costs {yuan(item.price)} in catalogue "
                        f"version {version}, not {yuan(price)}", what,
                        {"code": code, "price": Amount(item.price), "amount": Amount(price)})]
    return []


def _rule_registered(state: State, b: Registered, cfg: RuleConfig) -> list[Problem]:
    out = patient_known(state, b.patient_id)
    if out:
        return out
    if b.card_no:
        out += usable_card(state, b.card_no, b.patient_id)
    v = state.get(Visit, b.visit_id)
    if v is not None and v.registered_at:
        out.append(Problem("visit.exists", f"visit {b.visit_id} already exists", "visit_id"))
    if cfg.today and b.day < cfg.today:
        out.append(Problem("visit.past_day", f"a visit cannot be registered for {b.day}, "
                           f"before today ({cfg.today})", "day",
                           {"date": b.day, "today": cfg.today}))
    out += catalogue.check_version(state, b.catalogue_version)
    if out:
        return out
    ver = vkey(b.catalogue_version)
    dept = state.get(Department, (ver, b.dept))
    if dept is None or dept.type != "clinic":
        out.append(Problem("visit.unknown_dept", f"{b.dept} is not a clinic department in "
                           "the catalogue", "dept", {"dept": b.dept}))
    if b.doctor_id:
        doc = state.get(Doctor, (ver, b.doctor_id))
        if doc is None or doc.dept != b.dept:
            out.append(Problem("visit.unknown_doctor", f"{b.doctor_id} is not a doctor of "
                               f"{b.dept}", "doctor_id", {"doctor": b.doctor_id}))
    if b.fee_code:
        out += priced_as(state, b.catalogue_version, b.fee_code, b.fee, ("registration",),
                         "fee")
    s = state.get_or_new(QueueSeries, (queue_key(b.dept, b.day), b.queue_tag))
    if b.queue_no <= s.last:
        given, nxt = queue_label(b.queue_tag, b.queue_no), queue_label(b.queue_tag, s.last + 1)
        out.append(Problem("visit.queue_taken", f"queue number {given} was already given; "
                           f"the next is {nxt}", "queue_no", {"number": given, "next": nxt}))
    return out + charge_checks(state, b, b.fee, cfg, "fee")


def _registered_refs(b: Registered) -> set[Ref]:
    ver = vkey(b.catalogue_version)
    out = refs(Patient, b.patient_id) | refs(Account, b.patient_id) | refs(Visit, b.visit_id)
    out |= refs(QueueSeries, (queue_key(b.dept, b.day), b.queue_tag))
    out |= refs(Department, (ver, b.dept)) | catalogue.item_refs(b.catalogue_version,
                                                                 [b.fee_code])
    if b.doctor_id:
        out |= refs(Doctor, (ver, b.doctor_id))
    if b.card_no:
        out |= refs(Card, b.card_no)
    return out


def _describe_registered(b: Registered, lang: str) -> str:
    who = f" {b.doctor_id}" if b.doctor_id else ""
    fee = f" {yuan(b.fee)}" if b.fee else ""
    return f"{b.dept}{who} {b.day} {queue_label(b.queue_tag, b.queue_no)}{fee}"


REGISTERED = Kind(
    name="visit.registered", body=Registered, signer=COUNTER, title=("挂号", "Visit registered"),
    records=_registered_refs, patients=lambda b: (b.patient_id,),
    fold=_fold_registered,
    money=lambda b: Money("charge", ((b.patient_id, -b.fee),) if b.fee else ()),
    rule=_rule_registered, describe=_describe_registered,
    report=lambda b: ReportLine("charges", "", b.fee) if b.fee else None,
    notice=no_notice,
)


# -- visit.progressed ---------------------------------------------------------------------
@body
class Progressed(Body):
    visit_id: str = spec(ident())
    patient_id: str = spec(ident())
    step: str = spec(choice(STEPS))
    room: str = spec(text(32, required=False, lo=0), "")


def named(v: Visit, pid: PatientId, at: At) -> dict[str, object]:
    """Whose visit it is, before its registration arrives: the earliest event naming it
    (the registration, whenever it comes, says for good)."""
    if not v.registered_at and earlier(at.order, v.patient_at):
        return {"patient_id": pid, "patient_at": at.order}
    return {}


def _fold_progressed(tx: Tx, at: At, b: Progressed) -> None:
    v = tx.get_or_new(Visit, b.visit_id)
    status = STATUS_OF[b.step]
    final = 1 if status in FINAL else 0
    changes = named(v, b.patient_id, at)
    if b.step in ("called", "recalled"):
        changes["calls"] = v.calls + 1
    if (final, at.order) > (v.status_final, v.status_at):
        changes.update(status=status, status_final=final, status_at=at.order,
                       status_ms=at.wall)
    # each its own last writer, whatever step won the status (any order agrees)
    if b.room and later(at.order, v.room_at):
        changes.update(room=b.room, room_at=at.order)
    if b.step == "started" and later(at.order, v.doctor_at):
        changes.update(doctor_seen=at.operator, doctor_at=at.order)
    if changes:
        tx.put(v.evolve(**changes))


def _visit_of(state: State, visit_id: str, pid: PatientId) -> Visit | list[Problem]:
    v = state.get(Visit, visit_id)
    if v is None or not v.registered_at:
        return [Problem("visit.unknown", f"visit {visit_id} is not known at this counter",
                        "visit_id", {"visit": visit_id})]
    if v.patient_id != pid:
        return [Problem("visit.wrong_patient", f"visit {visit_id} is another patient's",
                        "visit_id", {"visit": visit_id})]
    return v


def _rule_progressed(state: State, b: Progressed, cfg: RuleConfig) -> list[Problem]:
    v = _visit_of(state, b.visit_id, b.patient_id)
    if isinstance(v, list):
        return v
    if v.status not in FROM[b.step]:
        return [Problem("visit.step", f"visit {v.label or b.visit_id} is "
                        f"{v.status.replace('_', '-')}: it cannot be {b.step.replace('_', '-')}",
                        "step", {"visit": v.label or b.visit_id, "status": v.status,
                                 "step": b.step})]
    return []


PROGRESSED = Kind(
    name="visit.progressed", body=Progressed, signer=COUNTER,
    title=("候诊状态", "Queue step"),
    records=lambda b: refs(Visit, b.visit_id), patients=lambda b: (b.patient_id,),
    fold=_fold_progressed, money=no_money, rule=_rule_progressed,
    describe=lambda b, lang: say(LABELS["step." + b.step], lang) + (
        f" {b.room}" if b.room else ""),
    report=no_report, notice=no_notice,
)


# -- visit.fee_charged (the consultation fee, once per visit) -----------------------------
@body
class FeeCharged(Body):
    visit_id: str = spec(ident())
    patient_id: str = spec(ident())
    code: str = spec(text(32))
    name: str = spec(text(64))
    amount: int = spec(Field(int, lo=1, hi=MAX_AMOUNT, money=True))
    catalogue_version: int = spec(Field(int, lo=1, hi=catalogue.MAX_VERSION))
    supervisor: str = approver()
    offline_from: int = offline_mark()


def _fold_fee(tx: Tx, at: At, b: FeeCharged) -> None:
    v = tx.get_or_new(Visit, b.visit_id)
    changes = {"consult_fee": v.consult_fee + b.amount, **named(v, b.patient_id, at)}
    if earlier(at.order, v.consult_at):
        changes["consult_at"] = at.order
    tx.put(v.evolve(**changes))
    add(tx, b.patient_id, charged=b.amount)


def _rule_fee(state: State, b: FeeCharged, cfg: RuleConfig) -> list[Problem]:
    v = _visit_of(state, b.visit_id, b.patient_id)
    if isinstance(v, list):
        return v
    if v.consult_at:
        return [Problem("visit.fee_charged", f"the consultation fee of visit "
                        f"{v.label or b.visit_id} was already charged", "visit_id",
                        {"visit": v.label or b.visit_id})]
    if v.status in FINAL:
        return [Problem("visit.step", f"visit {v.label} is {v.status.replace('_', '-')}",
                        "visit_id", {"visit": v.label, "status": v.status, "step": "fee"})]
    out = catalogue.check_version(state, b.catalogue_version)
    out = out or priced_as(state, b.catalogue_version, b.code, b.amount, ("consultation",),
                           "amount")
    return out or charge_checks(state, b, b.amount, cfg)


FEE_CHARGED = Kind(
    name="visit.fee_charged", body=FeeCharged, signer=COUNTER,
    title=("诊查费", "Consultation fee"),
    records=lambda b: (refs(Visit, b.visit_id) | refs(Patient, b.patient_id)
                       | refs(Account, b.patient_id)
                       | catalogue.item_refs(b.catalogue_version, [b.code])),
    patients=lambda b: (b.patient_id,),
    fold=_fold_fee, money=lambda b: Money("charge", ((b.patient_id, -b.amount),)),
    rule=_rule_fee, describe=lambda b, lang: f"{b.name} {yuan(b.amount)}",
    report=lambda b: ReportLine("charges", "", b.amount), notice=no_notice,
)


# -- visit.diagnosed ----------------------------------------------------------------------
@body
class Diagnosed(Body):
    diagnosis_id: str = spec(ident())
    visit_id: str = spec(ident())
    patient_id: str = spec(ident())
    icd10: str = spec(Field(str, False, pattern=ICD10_RE), "")
    text: str = spec(text(200))


def _fold_diagnosed(tx: Tx, at: At, b: Diagnosed) -> None:
    d = tx.get_or_new(Diagnosis, b.diagnosis_id)
    if later(at.order, d.at):
        tx.put(d.evolve(visit_id=b.visit_id, patient_id=b.patient_id, icd10=b.icd10,
                        text=b.text, doctor=at.operator, wall_ms=at.wall, at=at.order))


def _rule_diagnosed(state: State, b: Diagnosed, cfg: RuleConfig) -> list[Problem]:
    v = _visit_of(state, b.visit_id, b.patient_id)
    return v if isinstance(v, list) else []


DIAGNOSED = Kind(
    name="visit.diagnosed", body=Diagnosed, signer=COUNTER, title=("诊断", "Diagnosis"),
    records=lambda b: refs(Visit, b.visit_id) | refs(Diagnosis, b.diagnosis_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_diagnosed, money=no_money, rule=_rule_diagnosed,
    describe=lambda b, lang: f"{b.icd10} {b.text}".strip(),
    report=no_report, notice=no_notice,
)


# -- visit.fee_returned (central: a consultation fee charged twice, given back) ------------
@body
class FeeReturned(Body):
    conflict_id: str = spec(text(64))
    visit_id: str = spec(ident())
    patient_id: str = spec(ident())
    amount: int = spec(Field(int, lo=1, hi=MAX_AMOUNT, money=True))
    reason: str = spec(text(200))


def _fold_fee_returned(tx: Tx, at: At, b: FeeReturned) -> None:
    v = tx.get_or_new(Visit, b.visit_id)
    tx.put(v.evolve(fee_returned=v.fee_returned + b.amount, **named(v, b.patient_id, at)))
    add(tx, b.patient_id, adjusted=b.amount)


FEE_RETURNED = Kind(
    name="visit.fee_returned", body=FeeReturned, signer=CENTRAL_ONLY,
    title=("退还诊查费", "Consultation fee returned"),
    records=lambda b: refs(Visit, b.visit_id) | refs(Account, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_fee_returned, money=lambda b: Money("adjust", ((b.patient_id, b.amount),)),
    rule=no_rule, describe=lambda b, lang: f"{yuan(b.amount)} {b.reason}",
    report=no_report, notice=no_notice,
)


def dump(value: object) -> str:
    """A record's structured text field, deterministic (sorted keys, no spaces)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


KINDS = (REGISTERED, PROGRESSED, FEE_CHARGED, DIAGNOSED, FEE_RETURNED)
RECORDS = (Visit, QueueSeries, Diagnosis)
