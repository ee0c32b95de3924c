"""Executing orders (DOMAIN 3.8–3.10): the lab and exam window, and the pharmacy.

Theory of operation
-------------------
An order (:mod:`protocol.order`) reaches its executing department by sync.  There:

* ``order.checked_in`` — the patient taps at the lab or exam window: the order is checked
  in with a queue number of the window's series (the same per-counter series as visits,
  so two offline windows never give one number twice) and, for lab items, the specimen
  id printed on the tube's label.  When the hospital charges at execution it charges the
  order's total from the deposit in the same event; a second check-in of one order is
  refused at the counter (offline at two windows it is the reconciler's conflict).
* ``order.progressed`` — collected (lab specimens), executed, resulted (a short text
  result or a reference to the LIS/PACS report).  An executed order can no longer be
  cancelled: its money stays charged.
* ``order.dispensed`` — the pharmacy prices, charges (when the hospital charges at
  execution) and takes the drugs from its stock in one event; it may dispense part of a
  line when stock is short, the rest stays open.
* ``order.returned`` — what was not dispensed is returned (approved by a doctor): its
  charge goes back to the deposit in the same event, and it is no longer waited for.
* ``order.charge_returned`` — central gives back a charge made twice offline (a second
  check-in or dispensing, a charge for an order cancelled elsewhere): a conflict's remedy.

Everything an order gathers here is a sum or the earliest claim or a status that only
becomes more final, so every arrival order gives the same record.
"""

from __future__ import annotations

from protocol.account import Account, add, approver, charge_checks, offline_mark
from protocol.core import (
    CENTRAL_ONLY,
    COUNTER,
    At,
    Fen,
    Kind,
    Money,
    PatientId,
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
    choice,
    ident,
    spec,
    text,
)
from protocol.money import yuan
from protocol.order import LABELS, Order, add_qty, set_status
from protocol.patient import Patient, patient_known
from protocol.stock import Stock, add_stock, on_hand
from protocol.visit import TAG_RE, QueueSeries, queue_key, queue_label

STEPS = ("collected", "executed", "resulted")
#: which statuses each step may follow (a result may be corrected by a later one)
FROM = {"collected": {"checked_in"}, "executed": {"checked_in", "collected"},
        "resulted": {"checked_in", "collected", "executed", "resulted"}}
EXECUTED = frozenset({"executed", "resulted"})
#: what a refused step reads as ("order … is checked in: it cannot be dispensed")
STEP_LABELS = {"step.checked_in": ("签到", "checked in"), "step.collected": ("采样", "collected"),
               "step.executed": ("执行", "executed"), "step.resulted": ("出报告", "resulted"),
               "step.dispensed": ("发药", "dispensed"), "step.returned": ("退药", "returned")}


def _named(o: Order, pid: PatientId, at: At) -> dict[str, object]:
    """Whose order it is, before its placement arrives (the placement says for good)."""
    if not o.placed_at and earlier(at.order, o.patient_at):
        return {"patient_id": pid, "patient_at": at.order}
    return {}


def _executed(o: Order, at: At) -> dict[str, object]:
    if earlier(at.order, o.executed_at):
        return {"executed_at": at.order, "executed_node": at.node}
    return {}


def order_of(state: State, order_id: str, pid: PatientId,
             types: tuple[str, ...]) -> Order | list[Problem]:
    """The placed order ``order_id`` of patient ``pid``, of one of ``types``."""
    out = patient_known(state, pid)
    if out:
        return out
    o = state.get(Order, order_id)
    if o is None or not o.placed_at:
        return [Problem("order.unknown", f"order {order_id} is not known at this counter",
                        "order_id", {"order": order_id})]
    if o.patient_id != pid:
        return [Problem("order.wrong_patient", "that order is another patient's",
                        "order_id", {"order": order_id})]
    if o.type not in types:
        return [Problem("order.wrong_window", f"order {order_id} is a {o.type} order",
                        "order_id", {"order": order_id, "dept": o.exec_dept})]
    return o


def due_at_execution(o: Order) -> Fen:
    """What executing ``o`` charges now: its total, unless it was charged already."""
    return o.total if o.total_charged == 0 else 0


def _step_problem(o: Order, step: str) -> Problem:
    return Problem("order.step", f"order {o.order_id} is {o.stage}: it cannot be {step}",
                   "order_id", {"order": o.order_id, "status": o.stage, "step": step})


# -- order.checked_in ---------------------------------------------------------------------
@body
class CheckedIn(Body):
    order_id: str = spec(ident())
    patient_id: str = spec(ident())
    dept: str = spec(text(32))  # the window's department (its queue)
    day: str = spec(Field(str, pattern=DATE_RE))
    queue_tag: str = spec(Field(str, pattern=TAG_RE))
    queue_no: int = spec(Field(int, lo=1, hi=9999))
    specimen_id: str = spec(text(24, required=False, lo=0), "")
    charged: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    supervisor: str = approver()
    offline_from: int = offline_mark()


def _fold_checked_in(tx: Tx, at: At, b: CheckedIn) -> None:
    o = set_status(tx, b.order_id, "checked_in", at)
    changes: dict[str, object] = {"exec_charged": o.exec_charged + b.charged,
                                  **_named(o, b.patient_id, at)}
    if earlier(at.order, o.checked_in_at):
        changes.update(checked_in_at=at.order, checkin_node=at.node, day=b.day,
                       queue_tag=b.queue_tag, queue_no=b.queue_no, specimen_id=b.specimen_id)
    tx.put(o.evolve(**changes))
    s = tx.get_or_new(QueueSeries, (queue_key(b.dept, b.day), b.queue_tag))
    if b.queue_no > s.last:
        tx.put(s.evolve(last=b.queue_no))
    if b.charged:
        add(tx, b.patient_id, charged=b.charged)


def _rule_checked_in(state: State, b: CheckedIn, cfg: RuleConfig) -> list[Problem]:
    o = order_of(state, b.order_id, b.patient_id, ("lab", "exam"))
    if isinstance(o, list):
        return o
    if o.exec_dept != b.dept:
        return [Problem("order.wrong_window", f"order {b.order_id} is done at {o.exec_dept}",
                        "order_id", {"order": b.order_id, "dept": o.exec_dept})]
    if o.stage != "placed" or o.checked_in_at:
        return [_step_problem(o, "checked_in")]
    out: list[Problem] = []
    if o.type == "lab" and not b.specimen_id:
        out.append(Problem("order.specimen_missing", "a lab order is checked in with its "
                           "specimen id", "specimen_id"))
    due = due_at_execution(o)
    if b.charged != due:
        out.append(Problem("order.charge_due", f"checking in order {b.order_id} charges "
                           f"{yuan(due)}, not {yuan(b.charged)}", "charged",
                           {"due": Amount(due), "amount": Amount(b.charged)}))
    s = state.get_or_new(QueueSeries, (queue_key(b.dept, b.day), b.queue_tag))
    if b.queue_no <= s.last:
        given, nxt = queue_label(b.queue_tag, b.queue_no), queue_label(b.queue_tag, s.last + 1)
        out.append(Problem("visit.queue_taken", f"queue number {given} was already given; "
                           f"the next is {nxt}", "queue_no", {"number": given, "next": nxt}))
    return out + charge_checks(state, b, b.charged, cfg, "charged")


CHECKED_IN = Kind(
    name="order.checked_in", body=CheckedIn, signer=COUNTER,
    title=("检查检验签到", "Checked in"),
    records=lambda b: (refs(Order, b.order_id) | refs(Patient, b.patient_id)
                       | refs(Account, b.patient_id)
                       | refs(QueueSeries, (queue_key(b.dept, b.day), b.queue_tag))),
    patients=lambda b: (b.patient_id,),
    fold=_fold_checked_in,
    money=lambda b: Money("charge", ((b.patient_id, -b.charged),) if b.charged else ()),
    rule=_rule_checked_in,
    describe=lambda b, lang: " ".join(x for x in (
        b.order_id, queue_label(b.queue_tag, b.queue_no), b.specimen_id,
        yuan(b.charged) if b.charged else "") if x),
    report=lambda b: ReportLine("charges", "", b.charged) if b.charged else None,
    notice=no_notice,
)


# -- order.progressed ---------------------------------------------------------------------
@body
class OrderProgressed(Body):
    order_id: str = spec(ident())
    patient_id: str = spec(ident())
    step: str = spec(choice(STEPS))
    result: str = spec(text(500, required=False, lo=0), "")
    report_ref: str = spec(text(64, required=False, lo=0), "")


def _fold_progressed(tx: Tx, at: At, b: OrderProgressed) -> None:
    o = set_status(tx, b.order_id, b.step, at)
    changes: dict[str, object] = dict(_named(o, b.patient_id, at))
    if b.step in EXECUTED:
        changes.update(_executed(o, at))
    if b.step == "resulted" and later(at.order, o.result_at):
        changes.update(result=b.result, report_ref=b.report_ref, result_at=at.order)
    if changes:
        tx.put(o.evolve(**changes))


def _rule_progressed(state: State, b: OrderProgressed, cfg: RuleConfig) -> list[Problem]:
    o = order_of(state, b.order_id, b.patient_id, ("lab", "exam"))
    if isinstance(o, list):
        return o
    if o.stage not in FROM[b.step] or (b.step == "collected" and o.type != "lab"):
        return [_step_problem(o, b.step)]
    if b.step == "resulted" and not (b.result.strip() or b.report_ref.strip()):
        return [Problem("order.result_missing", "give the result or the report's number",
                        "result")]
    return []


def _describe_progressed(b: OrderProgressed, lang: str) -> str:
    extra = " ".join(x for x in (b.result[:40], b.report_ref) if x)
    return f"{b.order_id} {say(LABELS['status.' + b.step], lang)} {extra}".strip()


PROGRESSED = Kind(
    name="order.progressed", body=OrderProgressed, signer=COUNTER,
    title=("检查检验执行", "Order step"),
    records=lambda b: refs(Order, b.order_id) | refs(Patient, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_progressed, money=no_money, rule=_rule_progressed,
    describe=_describe_progressed, report=no_report, notice=no_notice,
)


# -- order.dispensed ----------------------------------------------------------------------
@body
class DispensedLine(Body):
    code: str = spec(text(32))
    qty: int = spec(Field(int, lo=1, hi=10_000))
    unit_price: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))


@body
class Dispensed(Body):
    dispense_id: str = spec(ident())
    order_id: str = spec(ident())
    patient_id: str = spec(ident())
    pharmacy: str = spec(text(32))
    lines: tuple[DispensedLine, ...] = spec(Field(list, lo=1, hi=50, item=DispensedLine))
    amount: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    supervisor: str = approver()
    offline_from: int = offline_mark()

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        codes = [x.code for x in self.lines]
        if len(set(codes)) != len(codes):
            out.append(Problem("order.line_twice", "an item appears twice in one order",
                               "lines"))
        total = sum(x.qty * x.unit_price for x in self.lines)
        if self.amount not in (0, total):
            out.append(Problem("order.charged", "an order is charged in full or not at all",
                               "amount"))
        return out


def _fold_dispensed(tx: Tx, at: At, b: Dispensed) -> None:
    o = tx.get_or_new(Order, b.order_id)
    tx.put(o.evolve(dispensed=add_qty(o.dispensed, {x.code: x.qty for x in b.lines}),
                    exec_charged=o.exec_charged + b.amount,
                    **_named(o, b.patient_id, at), **_executed(o, at)))
    for x in b.lines:
        add_stock(tx, b.pharmacy, x.code, dispensed=x.qty)
    if b.amount:
        add(tx, b.patient_id, charged=b.amount)


def _rule_dispensed(state: State, b: Dispensed, cfg: RuleConfig) -> list[Problem]:
    o = order_of(state, b.order_id, b.patient_id, ("drug",))
    if isinstance(o, list):
        return o
    if o.stage not in ("placed", "part_dispensed"):
        return [_step_problem(o, "dispensed")]
    out: list[Problem] = []
    left = o.remaining()
    prices = {c: p for c, _, _, p, *_ in o.line_list()}
    for x in b.lines:
        if x.code not in left:
            out.append(Problem("order.line_unknown", f"{x.code} is not in order {b.order_id}",
                               "lines", {"code": x.code, "order": b.order_id}))
            continue
        if x.qty > left[x.code]:
            out.append(Problem("order.over_dispense", f"{x.code}: {left[x.code]} left to "
                               f"dispense, not {x.qty}", "lines",
                               {"code": x.code, "left": left[x.code], "qty": x.qty}))
        if x.unit_price != prices[x.code]:
            out.append(Problem("catalogue.price", f"{x.code} costs {yuan(prices[x.code])} in "
                               f"the order, not {yuan(x.unit_price)}", "lines",
                               {"code": x.code, "price": Amount(prices[x.code]),
                                "amount": Amount(x.unit_price)}))
        have = on_hand(state, b.pharmacy, x.code) or 0
        if x.qty > have:
            out.append(Problem("stock.below_zero", f"{x.code}: {have} on hand, cannot take "
                               f"{x.qty}", "lines", {"code": x.code, "have": have,
                                                     "qty": x.qty}))
    if out:
        return out
    due = sum(x.qty * x.unit_price for x in b.lines) if o.charged == 0 else 0
    if b.amount != due:
        out.append(Problem("order.charge_due", f"dispensing charges {yuan(due)}, not "
                           f"{yuan(b.amount)}", "amount",
                           {"due": Amount(due), "amount": Amount(b.amount)}))
    return out + charge_checks(state, b, b.amount, cfg)


def _dispensed_refs(b: Dispensed) -> set[Ref]:
    out = refs(Order, b.order_id) | refs(Patient, b.patient_id) | refs(Account, b.patient_id)
    return out | {(Stock, (b.pharmacy, x.code)) for x in b.lines}


DISPENSED = Kind(
    name="order.dispensed", body=Dispensed, signer=COUNTER, title=("发药", "Dispensed"),
    records=_dispensed_refs, patients=lambda b: (b.patient_id,),
    fold=_fold_dispensed,
    money=lambda b: Money("charge", ((b.patient_id, -b.amount),) if b.amount else ()),
    rule=_rule_dispensed,
    describe=lambda b, lang: (f"{b.order_id} " + ", ".join(f"{x.code}×{x.qty}"
                                                            for x in b.lines[:4])
                              + ("…" if len(b.lines) > 4 else "")
                              + (f" {yuan(b.amount)}" if b.amount else "")),
    report=lambda b: ReportLine("charges", "", b.amount) if b.amount else None,
    notice=no_notice,
)


# -- order.returned (undispensed items back to the deposit) --------------------------------
@body
class ReturnedLine(Body):
    code: str = spec(text(32))
    qty: int = spec(Field(int, lo=1, hi=10_000))


@body
class Returned(Body):
    order_id: str = spec(ident())
    patient_id: str = spec(ident())
    lines: tuple[ReturnedLine, ...] = spec(Field(list, lo=1, hi=50, item=ReturnedLine))
    refund: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    reason: str = spec(text(200))
    approved_by: str = spec(text(64))

    def problems(self) -> list[Problem]:
        codes = [x.code for x in self.lines]
        if len(set(codes)) != len(codes):
            return [Problem("order.line_twice", "an item appears twice in one order",
                            "lines")]
        return []


def return_refund(o: Order, lines: dict[str, int]) -> Fen:
    """What returning ``lines`` (code → qty) of ``o`` gives back: their price, if the
    order was charged when it was sent (charged at execution, nothing undispensed was)."""
    if not o.charged:
        return 0
    prices = {c: p for c, _, _, p, *_ in o.line_list()}
    return sum(prices.get(c, 0) * q for c, q in lines.items())


def _fold_returned(tx: Tx, at: At, b: Returned) -> None:
    o = tx.get_or_new(Order, b.order_id)
    tx.put(o.evolve(returned=add_qty(o.returned, {x.code: x.qty for x in b.lines}),
                    refunded=o.refunded + b.refund, **_named(o, b.patient_id, at)))
    if b.refund:
        add(tx, b.patient_id, refunded_to_deposit=b.refund)


def _rule_returned(state: State, b: Returned, cfg: RuleConfig) -> list[Problem]:
    o = order_of(state, b.order_id, b.patient_id, ("drug",))
    if isinstance(o, list):
        return o
    if o.stage not in ("placed", "part_dispensed"):
        return [_step_problem(o, "returned")]
    out: list[Problem] = []
    left = o.remaining()
    for x in b.lines:
        if x.code not in left:
            out.append(Problem("order.line_unknown", f"{x.code} is not in order {b.order_id}",
                               "lines", {"code": x.code, "order": b.order_id}))
        elif x.qty > left[x.code]:
            out.append(Problem("order.over_dispense", f"{x.code}: {left[x.code]} left, "
                               f"not {x.qty}", "lines",
                               {"code": x.code, "left": left[x.code], "qty": x.qty}))
    if out:
        return out
    due = return_refund(o, {x.code: x.qty for x in b.lines})
    if b.refund != due:
        out.append(Problem("order.return_refund", f"returning these gives back {yuan(due)}, "
                           f"not {yuan(b.refund)}", "refund",
                           {"due": Amount(due), "amount": Amount(b.refund)}))
    return out


RETURNED = Kind(
    name="order.returned", body=Returned, signer=COUNTER, title=("退药退费", "Items returned"),
    records=lambda b: (refs(Order, b.order_id) | refs(Patient, b.patient_id)
                       | refs(Account, b.patient_id)),
    patients=lambda b: (b.patient_id,),
    fold=_fold_returned,
    money=lambda b: Money("refund", ((b.patient_id, b.refund),) if b.refund else ()),
    rule=_rule_returned,
    describe=lambda b, lang: (f"{b.order_id} " + ", ".join(f"{x.code}×{x.qty}"
                                                            for x in b.lines[:4])
                              + f" {yuan(b.refund)} {b.reason}"),
    report=lambda b: ReportLine("refunds", "deposit", b.refund) if b.refund else None,
    notice=no_notice,
)


# -- order.charge_returned (central: a charge made twice, given back) ---------------------
@body
class ChargeReturned(Body):
    conflict_id: str = spec(Field(str, lo=8, hi=64))
    order_id: str = spec(ident())
    patient_id: str = spec(ident())
    amount: int = spec(Field(int, lo=1, hi=MAX_AMOUNT, money=True))
    reason: str = spec(text(500))


def _fold_charge_returned(tx: Tx, at: At, b: ChargeReturned) -> None:
    o = tx.get_or_new(Order, b.order_id)
    tx.put(o.evolve(refunded=o.refunded + b.amount, **_named(o, b.patient_id, at)))
    add(tx, b.patient_id, adjusted=b.amount)


CHARGE_RETURNED = Kind(
    name="order.charge_returned", body=ChargeReturned, signer=CENTRAL_ONLY,
    title=("退还重复收费", "Charge given back"),
    records=lambda b: refs(Order, b.order_id) | refs(Account, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_charge_returned,
    money=lambda b: Money("adjust", ((b.patient_id, b.amount),)),
    rule=no_rule, describe=lambda b, lang: f"{b.order_id} {yuan(b.amount)} {b.reason}",
    report=no_report, notice=no_notice,
)

KINDS = (CHECKED_IN, PROGRESSED, DISPENSED, RETURNED, CHARGE_RETURNED)
