"""Orders (医嘱, DOMAIN 3.6–3.7, 3.10): e-requisitions for exams and lab tests and
e-prescriptions, sent by the doctor's station and executed by the lab, exam window
and pharmacy, which learn of them through sync.

Theory of operation
-------------------
``order.placed`` carries the lines as the doctor's counter priced them from its newest
catalogue version (recorded in the order), and the amount charged from the deposit in
the same event — all of it when the hospital charges orders when they are sent, none
when it charges at execution (the catalogue header's ``charge_at``; the counter's rule
holds the order to it).  ``order.cancelled`` cancels an order not executed yet and
returns what it charged to the deposit in the same event, approved by a doctor.

Before the doctor sends an order, the counter's rule refuses what must never be sent:
items not in the catalogue version or at another price, a dose above the item's
maximum, a drug the patient is recorded as allergic to, a deposit that does not cover
what is charged now.  The softer checks (stock as this counter knows it, the same drug
already active, insurance cover) are warnings the doctor sees first
(:mod:`edge_node.clinic`).

A status only ever becomes more final (:data:`STATUS_RANK`), so every order of the
events agrees; ``refunded`` is a sum.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from protocol import catalogue
from protocol.account import Account, add, approver, charge_checks, offline_mark
from protocol.catalogue import CatalogueItem
from protocol.clinical import Profile, norm
from protocol.core import (
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
    no_notice,
    record,
    refs,
    say,
)
from protocol.errors import Amount, Problem
from protocol.fields import MAX_AMOUNT, Body, Field, body, choice, ident, spec, text
from protocol.money import yuan
from protocol.patient import Patient, patient_known
from protocol.visit import Visit

ORDER_TYPES = ("exam", "lab", "drug")
#: the item type each order type may hold
ITEM_TYPE = {"exam": "exam", "lab": "lab", "drug": "drug"}
#: a status only ever becomes more final (lab and exam steps; dispensing is a sum, see
#: :attr:`Order.stage`); an order cancelled at one counter and executed at another ends
#: cancelled here, and the reconciler raises the conflict (:mod:`central.reconcile`)
STATUS_RANK = {"placed": 0, "checked_in": 1, "collected": 2, "executed": 3, "resulted": 4,
               "cancelled": 9}
#: stages in which an order may still be cancelled (nothing of it executed or dispensed)
CANCELLABLE = frozenset({"placed", "checked_in", "collected"})
#: stages in which an order still waits for its executing department
OPEN_STAGES = frozenset({"placed", "checked_in", "collected", "executed", "part_dispensed"})
LABELS = {"order.exam": ("检查申请", "exam requisition"),
          "order.lab": ("检验申请", "lab requisition"),
          "order.drug": ("处方", "prescription"),
          "status.placed": ("待执行", "to be done"), "status.cancelled": ("已撤销", "cancelled"),
          "status.checked_in": ("已签到", "checked in"),
          "status.collected": ("已采样", "specimen collected"),
          "status.executed": ("已执行", "done"), "status.resulted": ("已出报告", "result ready"),
          "status.part_dispensed": ("部分发药", "partly dispensed"),
          "status.dispensed": ("已发药", "dispensed"), "status.returned": ("已退药", "returned")}


@record("orders", ("order_id",), indexes=(("patient_id",), ("exec_dept",), ("visit_id",)))
@dataclass(frozen=True, slots=True)
class Order(Record):
    order_id: str
    patient_id: PatientId = ""
    visit_id: str = ""
    type: str = ""
    exec_dept: str = ""
    total: Fen = 0
    charged: Fen = 0
    refunded: Fen = 0
    status: str = "placed"
    status_at: str = ""
    catalogue_version: int = 0
    lines: str = ""  # JSON: [[code, name, qty, unit_price, dose, per_day, days], …]
    doctor: str = ""
    node: str = ""
    seq: int = 0
    wall_ms: int = 0
    placed_at: str = ""  # merge order of the placement (the earliest, if one id came twice)
    patient_at: str = ""  # before the placement arrives: the earliest event naming it
    # -- execution (protocol.execution) --
    exec_charged: Fen = 0  # sums charged at check-in or dispensing (charge at execution)
    checked_in_at: str = ""  # the earliest check-in says the queue number and specimen
    checkin_node: str = ""
    day: str = ""
    queue_tag: str = ""
    queue_no: int = 0
    specimen_id: str = ""
    executed_at: str = ""  # the earliest event that executed or dispensed any of it
    executed_node: str = ""
    result: str = ""  # the latest result (a correction is a later one)
    report_ref: str = ""
    result_at: str = ""
    dispensed: str = ""  # JSON {code: qty}: sums of every dispensing
    returned: str = ""  # JSON {code: qty}: sums of undispensed quantities returned

    def line_list(self) -> list[tuple[str, str, int, int, int, int, int]]:
        try:
            raw = json.loads(self.lines) if self.lines else []
        except ValueError:
            return []
        out: list[tuple[str, str, int, int, int, int, int]] = []
        for x in raw if isinstance(raw, list) else ():
            if isinstance(x, list) and len(x) == 7:
                out.append((str(x[0]), str(x[1]), int(x[2]), int(x[3]), int(x[4]), int(x[5]),
                            int(x[6])))
        return out

    def dispensed_qty(self) -> dict[str, int]:
        return qty_map(self.dispensed)

    def returned_qty(self) -> dict[str, int]:
        return qty_map(self.returned)

    def remaining(self) -> dict[str, int]:
        """What is left to dispense of each line (ordered − dispensed − returned)."""
        d, r = self.dispensed_qty(), self.returned_qty()
        return {c: max(0, q - d.get(c, 0) - r.get(c, 0)) for c, _, q, *_ in self.line_list()}

    @property
    def stage(self) -> str:
        """Where the order is: its status, or for a prescription what dispensing made it."""
        if self.status == "cancelled" or self.type != "drug":
            return self.status
        d = self.dispensed_qty()
        left = self.remaining()
        if left and not any(left.values()):
            return "dispensed" if any(d.values()) else "returned"
        return "part_dispensed" if any(d.values()) else self.status

    @property
    def total_charged(self) -> Fen:
        """Everything charged for it: when sent and at execution."""
        return self.charged + self.exec_charged

    @property
    def active(self) -> bool:
        """Sent and not finished: it still waits for its executing department."""
        return bool(self.placed_at) and self.stage in OPEN_STAGES


def qty_map(text: str) -> dict[str, int]:
    """A ``{code: qty}`` JSON field (anything unreadable reads as nothing)."""
    try:
        raw = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if type(v) is int}


def add_qty(text: str, add: dict[str, int]) -> str:
    """``text`` with ``add`` summed in (sorted keys: the same sums read the same)."""
    m = qty_map(text)
    for k, v in add.items():
        m[k] = m.get(k, 0) + v
    return json.dumps(dict(sorted(m.items())), ensure_ascii=False, separators=(",", ":"))


def set_status(tx: Tx, order_id: str, status: str, at: At) -> Order:
    """Keep the most final status seen (ties: the earliest that set it)."""
    o = tx.get_or_new(Order, order_id)
    old = STATUS_RANK.get(o.status, 0)
    new = STATUS_RANK.get(status, 0)
    if new > old or (new == old and new > 0 and earlier(at.order, o.status_at)):
        o = o.evolve(status=status, status_at=at.order)
        tx.put(o)
    return o


# -- order.placed -------------------------------------------------------------------------
@body
class Line(Body):
    code: str = spec(text(32))
    name: str = spec(text(64))
    qty: int = spec(Field(int, lo=1, hi=10_000))
    unit_price: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    dose: int = spec(Field(int, False, lo=0, hi=1_000_000), 0)  # per take, dose units
    per_day: int = spec(Field(int, False, lo=0, hi=24), 0)
    days: int = spec(Field(int, False, lo=0, hi=366), 0)


@body
class Placed(Body):
    order_id: str = spec(ident())
    visit_id: str = spec(ident())
    patient_id: str = spec(ident())
    type: str = spec(choice(ORDER_TYPES))
    exec_dept: str = spec(text(32))
    catalogue_version: int = spec(Field(int, lo=1, hi=catalogue.MAX_VERSION))
    lines: tuple[Line, ...] = spec(Field(list, lo=1, hi=50, item=Line))
    total: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    charged: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    template: str = spec(text(32, required=False, lo=0), "")
    supervisor: str = approver()
    offline_from: int = offline_mark()

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        total = sum(x.qty * x.unit_price for x in self.lines)
        if total != self.total:
            out.append(Problem("order.total", f"the lines add up to {yuan(total)}, but the "
                               f"order says {yuan(self.total)}", "total",
                               {"total": Amount(total), "amount": Amount(self.total)}))
        if self.charged not in (0, self.total):
            out.append(Problem("order.charged", "an order is charged in full or not at all",
                               "charged"))
        codes = [x.code for x in self.lines]
        if len(set(codes)) != len(codes):
            out.append(Problem("order.line_twice", "an item appears twice in one order",
                               "lines"))
        if self.type == "drug":
            for x in self.lines:
                if not (x.dose and x.per_day and x.days):
                    out.append(Problem("order.dose_missing", f"{x.name}: give the dose, how "
                                       "often a day and for how many days", "lines",
                                       {"item": x.name}))
        return out


def _fold_placed(tx: Tx, at: At, b: Placed) -> None:
    o = tx.get_or_new(Order, b.order_id)
    if earlier(at.order, o.placed_at):
        lines = [[x.code, x.name, x.qty, x.unit_price, x.dose, x.per_day, x.days]
                 for x in b.lines]
        tx.put(o.evolve(patient_id=b.patient_id, visit_id=b.visit_id, type=b.type,
                        exec_dept=b.exec_dept, total=b.total, charged=b.charged,
                        catalogue_version=b.catalogue_version, doctor=at.operator,
                        node=at.node, seq=at.seq, wall_ms=at.wall, placed_at=at.order,
                        patient_at="",
                        lines=json.dumps(lines, ensure_ascii=False, separators=(",", ":"))))
    if b.charged:
        add(tx, b.patient_id, charged=b.charged)


def allergy_hits(profile: Profile | None, item: CatalogueItem | None, code: str,
                 name: str) -> list[str]:
    """The recorded allergies a drug matches: its allergen class, its code or its name."""
    if profile is None:
        return []
    names = {norm(code), norm(name)}
    if item is not None:
        names |= {norm(item.allergen), norm(item.name)} - {""}
    return [s for s, _ in profile.active_allergies()
            if s in names or any(s and s in n for n in names)]


def line_problems(state: State, b: Placed) -> list[Problem]:
    """Each line against the catalogue version it was priced from, the item's maximum
    dose and the patient's recorded allergies."""
    out: list[Problem] = []
    profile = state.get(Profile, b.patient_id)
    for x in b.lines:
        item = catalogue.priced(state, b.catalogue_version, x.code)
        if item is None or item.type != ITEM_TYPE[b.type]:
            out.append(Problem("catalogue.unknown_item", f"{x.code} is not a {b.type} item "
                               f"of catalogue version {b.catalogue_version}", "lines",
                               {"code": x.code}))
            continue
        if item.price != x.unit_price:
            out.append(Problem("catalogue.price", f"{x.code} costs {yuan(item.price)} in "
                               f"catalogue version {b.catalogue_version}, not "
                               f"{yuan(x.unit_price)}", "lines",
                               {"code": x.code, "price": Amount(item.price),
                                "amount": Amount(x.unit_price)}))
        if b.type != "drug":
            continue
        if item.max_single and x.dose > item.max_single:
            out.append(Problem("order.dose_single", f"{item.name}: {x.dose}{item.dose_unit} "
                               f"a time is above the maximum {item.max_single}"
                               f"{item.dose_unit}", "lines",
                               {"item": item.name, "dose": f"{x.dose}{item.dose_unit}",
                                "max": f"{item.max_single}{item.dose_unit}"}))
        daily = x.dose * x.per_day
        if item.max_daily and daily > item.max_daily:
            out.append(Problem("order.dose_daily", f"{item.name}: {daily}{item.dose_unit} a "
                               f"day is above the maximum {item.max_daily}{item.dose_unit}",
                               "lines", {"item": item.name, "dose": f"{daily}{item.dose_unit}",
                                         "max": f"{item.max_daily}{item.dose_unit}"}))
        for s in allergy_hits(profile, item, x.code, x.name):
            out.append(Problem("order.allergy", f"{item.name}: the patient is recorded as "
                               f"allergic to {s}", "lines", {"item": item.name,
                                                             "substance": s}))
    return out


def _rule_placed(state: State, b: Placed, cfg: RuleConfig) -> list[Problem]:
    out = patient_known(state, b.patient_id)
    if out:
        return out
    v = state.get(Visit, b.visit_id)
    if v is None or not v.registered_at or v.patient_id != b.patient_id:
        return [Problem("visit.unknown", f"visit {b.visit_id} is not this patient's visit at "
                        "this counter", "visit_id", {"visit": b.visit_id})]
    if v.status == "no_show":
        return [Problem("visit.step", f"visit {v.label} was a no-show", "visit_id",
                        {"visit": v.label, "status": v.status, "step": "order"})]
    o = state.get(Order, b.order_id)
    if o is not None and o.placed_at:
        return [Problem("order.exists", f"order {b.order_id} already exists", "order_id",
                        {"order": b.order_id})]
    out += catalogue.check_version(state, b.catalogue_version)
    if out:
        return out
    charge_at = catalogue.head(state).charge_at
    if (b.charged > 0) != (charge_at == "send" and b.total > 0):
        out.append(Problem("order.charge_setting", "this hospital charges orders "
                           + ("when they are sent" if charge_at == "send"
                              else "when they are executed"), "charged",
                           {"variant": charge_at}))
    out += line_problems(state, b)
    return out + charge_checks(state, b, b.charged, cfg, "total")


def _placed_refs(b: Placed) -> set[Ref]:
    return (refs(Patient, b.patient_id) | refs(Account, b.patient_id)
            | refs(Profile, b.patient_id) | refs(Visit, b.visit_id) | refs(Order, b.order_id)
            | catalogue.item_refs(b.catalogue_version, [x.code for x in b.lines]))


def _describe_placed(b: Placed, lang: str) -> str:
    names = ", ".join(f"{x.name}×{x.qty}" for x in b.lines[:3])
    more = "…" if len(b.lines) > 3 else ""
    return f"{say(LABELS['order.' + b.type], lang)} {b.order_id} {names}{more} {yuan(b.total)}"


PLACED = Kind(
    name="order.placed", body=Placed, signer=COUNTER, title=("开单", "Order sent"),
    records=_placed_refs, patients=lambda b: (b.patient_id,),
    fold=_fold_placed,
    money=lambda b: Money("charge", ((b.patient_id, -b.charged),) if b.charged else ()),
    rule=_rule_placed, describe=_describe_placed,
    report=lambda b: ReportLine("charges", "", b.charged) if b.charged else None,
    notice=no_notice,
)


# -- order.cancelled ----------------------------------------------------------------------
@body
class Cancelled(Body):
    order_id: str = spec(ident())
    patient_id: str = spec(ident())
    refund: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    reason: str = spec(text(200))
    approved_by: str = spec(text(64))


def _fold_cancelled(tx: Tx, at: At, b: Cancelled) -> None:
    o = set_status(tx, b.order_id, "cancelled", at)
    changes: dict[str, object] = {"refunded": o.refunded + b.refund}
    if not o.placed_at and earlier(at.order, o.patient_at):
        changes.update(patient_id=b.patient_id, patient_at=at.order)
    tx.put(o.evolve(**changes))
    if b.refund:
        add(tx, b.patient_id, refunded_to_deposit=b.refund)


def _rule_cancelled(state: State, b: Cancelled, cfg: RuleConfig) -> list[Problem]:
    out = patient_known(state, b.patient_id)
    o = state.get(Order, b.order_id)
    if o is None or not o.placed_at:
        return [*out, Problem("order.unknown", f"order {b.order_id} is not known at this "
                              "counter", "order_id", {"order": b.order_id})]
    if o.patient_id != b.patient_id:
        return [*out, Problem("order.wrong_patient", "that order is another patient's",
                              "order_id", {"order": b.order_id})]
    if o.stage not in CANCELLABLE or o.executed_at:
        return [*out, Problem("order.not_cancellable", f"order {b.order_id} is "
                              f"{o.stage}: it cannot be cancelled", "order_id",
                              {"order": b.order_id, "status": o.stage})]
    left = o.total_charged - o.refunded
    if b.refund != left:
        out.append(Problem("order.refund", f"cancelling order {b.order_id} returns what it "
                           f"charged, {yuan(left)}, not {yuan(b.refund)}", "refund",
                           {"left": Amount(left), "amount": Amount(b.refund)}))
    return out


CANCELLED = Kind(
    name="order.cancelled", body=Cancelled, signer=COUNTER, title=("撤销医嘱", "Order cancelled"),
    records=lambda b: (refs(Order, b.order_id) | refs(Patient, b.patient_id)
                       | refs(Account, b.patient_id)),
    patients=lambda b: (b.patient_id,),
    fold=_fold_cancelled,
    money=lambda b: Money("refund", ((b.patient_id, b.refund),) if b.refund else ()),
    rule=_rule_cancelled,
    describe=lambda b, lang: f"{b.order_id} {yuan(b.refund)} {b.reason}",
    report=lambda b: ReportLine("refunds", "deposit", b.refund) if b.refund else None,
    notice=no_notice,
)


def active_codes(orders: list[Order]) -> dict[str, str]:
    """The drug codes of a patient's active prescriptions: code → order id."""
    out: dict[str, str] = {}
    for o in orders:
        if o.type == "drug" and o.active:
            for line in o.line_list():
                out.setdefault(line[0], o.order_id)
    return out


KINDS = (PLACED, CANCELLED)
RECORDS = (Order,)
