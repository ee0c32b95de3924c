"""The reconciler on executing orders and stock (DOMAIN 3.8-3.10): an order checked in at
two offline windows, a prescription dispensed by two pharmacies, stock taken below zero,
an order refunded at one counter while done at another, an order charged after it was
cancelled elsewhere.  Each is raised once with its amount and events, whatever order the
events arrive in; each remedy folds back (balances and stock right afterwards) and
resolves it; honest days raise nothing."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.reconcile import Conflict, Reconciler, reconcile
from protocol.event import CENTRAL, Event
from protocol.stock import Stock
from tests.support import domain
from tests.test_reconcile import History

DEPOSIT = 100_000
FEE = 500
VISIT = {"visit_id": "V-triage-01-000004", "patient_id": "P-1", "dept": "IM",
         "day": "2026-12-01", "queue_tag": "T01", "queue_no": 1, "channel": "triage",
         "fee": FEE, "fee_code": "REG-GEN", "catalogue_version": 1}
LAB_ID, DRUG_ID = "O-doctor-01-000007", "O-doctor-01-000008"
LAB_PRICE, DRUG_PRICE = 2500, 300


def lab(charged: int = 0) -> dict[str, Any]:
    return {"order_id": LAB_ID, "visit_id": VISIT["visit_id"], "patient_id": "P-1",
            "type": "lab", "exec_dept": "LAB", "catalogue_version": 1,
            "lines": [{"code": "LAB-CBC", "name": "血常规", "qty": 1, "unit_price": LAB_PRICE}],
            "total": LAB_PRICE, "charged": charged}


def drug(charged: int = 0, qty: int = 10) -> dict[str, Any]:
    return {"order_id": DRUG_ID, "visit_id": VISIT["visit_id"], "patient_id": "P-1",
            "type": "drug", "exec_dept": "PHARM", "catalogue_version": 1,
            "lines": [{"code": "AMOX", "name": "阿莫西林", "qty": qty, "unit_price": DRUG_PRICE,
                       "dose": 500, "per_day": 3, "days": 3}],
            "total": qty * DRUG_PRICE, "charged": charged}


def day(h: History) -> None:
    h.patient("cashier-01", 0, "P-1", "8600000001", DEPOSIT)
    h.add("triage-01", 10, "visit.registered", VISIT)
    h.add("store-01", 11, "stock.received", {"pharmacy": "WEST", "code": "AMOX", "qty": 20})
    h.add("store-01", 12, "stock.received", {"pharmacy": "EAST", "code": "AMOX", "qty": 20})


def check_in(h: History, node: str, wall: int, charged: int, no: int = 1) -> Event:
    return h.add(node, wall, "order.checked_in", {
        "order_id": LAB_ID, "patient_id": "P-1", "dept": "LAB", "day": "2026-12-01",
        "queue_tag": node[-2:], "queue_no": no, "specimen_id": f"S{node[-2:]}{no}",
        "charged": charged})


def executed(h: History, node: str, wall: int) -> Event:
    return h.add(node, wall, "order.progressed", {"order_id": LAB_ID, "patient_id": "P-1",
                                                  "step": "executed"})


def dispense(h: History, node: str, wall: int, pharmacy: str, qty: int, charged: bool,
             n: int) -> Event:
    return h.add(node, wall, "order.dispensed", {
        "dispense_id": f"D-{node}-{n:06d}", "order_id": DRUG_ID, "patient_id": "P-1",
        "pharmacy": pharmacy, "lines": [{"code": "AMOX", "qty": qty, "unit_price": DRUG_PRICE}],
        "amount": qty * DRUG_PRICE if charged else 0})


def cancel(h: History, node: str, wall: int, order_id: str, refund: int) -> Event:
    return h.add(node, wall, "order.cancelled", {"order_id": order_id, "patient_id": "P-1",
                                                 "refund": refund, "reason": "not needed",
                                                 "approved_by": "dr.zhao"})


def balance(events: list[Event]) -> int:
    return domain.fold(events).accounts["P-1"].balance


def on_hand(events: list[Event], pharmacy: str, code: str = "AMOX") -> int:
    s = domain.fold(events).state.get(Stock, (pharmacy, code))
    return 0 if s is None else s.on_hand


def apply_remedy(h: History, c: Conflict, code: str, wall: int = 1_000) -> list[Event]:
    option = c.remedy(code)
    assert option is not None, (code, [r.code for r in c.remedies])
    return [h.add(CENTRAL, wall + i, kind, {**body, "reason": "by IT"}, operator="it.li")
            for i, (kind, body) in enumerate(option.events)]


def in_any_order(events: list[Event], seed: int) -> dict[str, tuple[str, int]]:
    """The conflicts standing after feeding ``events`` shuffled, in random batches."""
    rnd = random.Random(seed)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    r = Reconciler()
    standing: dict[str, tuple[str, int]] = {}
    i = 0
    while i < len(shuffled):
        n = rnd.randint(1, 4)
        rep = r.add(shuffled[i:i + n])
        for c in rep.conflicts:
            standing[c.id] = (c.kind, c.amount)
        for cid in rep.withdrawn:
            standing.pop(cid, None)
        i += n
    return standing


def assert_order_independent(events: list[Event]) -> None:
    expected = {c.id: (c.kind, c.amount) for c in reconcile(events)}
    for seed in range(8):
        assert in_any_order(events, seed) == expected, seed


def resolved_by(events: list[Event], cid: str) -> list[str]:
    """The conflicts central's events in ``events`` resolve (each once)."""
    return sorted({x.conflict_id for x in Reconciler().add(events).resolutions
                   if x.conflict_id == cid})


# ---------------------------------------------------------------------------- honest days


def test_an_honest_day_of_check_ins_dispensing_in_parts_and_cancels_raises_nothing() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", lab())  # charged at execution
    check_in(h, "lab-01", 30, LAB_PRICE)
    executed(h, "lab-01", 31)
    h.add("doctor-01", 40, "order.placed", drug())
    dispense(h, "pharmacy-01", 50, "WEST", 6, True, 1)  # short: part now
    dispense(h, "pharmacy-01", 51, "WEST", 4, True, 2)  # the rest, adding up to the order
    second = {**lab(charged=LAB_PRICE), "order_id": "O-doctor-01-000009"}
    h.add("doctor-01", 60, "order.placed", second)  # charged when sent
    cancel(h, "doctor-01", 61, "O-doctor-01-000009", LAB_PRICE)  # before it was done
    third = {**lab(), "order_id": "O-doctor-01-000010"}
    h.add("doctor-01", 70, "order.placed", third)
    h.add("lab-01", 71, "order.checked_in", {
        "order_id": "O-doctor-01-000010", "patient_id": "P-1", "dept": "LAB",
        "day": "2026-12-01", "queue_tag": "L1", "queue_no": 2, "specimen_id": "S2",
        "charged": LAB_PRICE})
    cancel(h, "doctor-01", 72, "O-doctor-01-000010", LAB_PRICE)  # knew the check-in's charge
    assert reconcile(h.events) == []
    assert balance(h.events) == DEPOSIT - FEE - LAB_PRICE - 10 * DRUG_PRICE
    assert on_hand(h.events, "WEST") == 10


# ---------------------------------------------------------------------------- double_execution


def test_an_order_checked_in_at_two_windows_is_one_conflict_and_its_charge_given_back() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", lab())
    first = check_in(h, "lab-01", 30, LAB_PRICE)
    second = check_in(h, "lab-02", 31, LAB_PRICE)
    done = executed(h, "lab-02", 32)
    [c] = reconcile(h.events)
    assert (c.kind, c.amount, c.patients) == ("double_execution", LAB_PRICE, ("P-1",))
    assert c.events == (first.id, second.id, done.id) and c.nodes == ("lab-01", "lab-02")
    assert LAB_ID in c.explanation and "lab-02" in c.explanation
    assert [r.code for r in c.remedies] == ["return", "accept"]
    assert balance(h.events) == DEPOSIT - FEE - 2 * LAB_PRICE
    assert_order_independent(h.events)
    [given] = apply_remedy(h, c, "return")
    assert given.kind == "order.charge_returned" and given.body["amount"] == LAB_PRICE
    assert resolved_by(h.events, c.id) == [c.id]
    assert balance(h.events) == DEPOSIT - FEE - LAB_PRICE
    assert domain.fold(reversed(h.events)).accounts == domain.fold(h.events).accounts
    [again] = reconcile(h.events)  # still listed (resolved), nothing more to give back
    assert again.id == c.id and again.remedy("return") is None


def test_a_double_check_in_of_an_order_charged_when_sent_costs_nothing_but_is_flagged() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", lab(charged=LAB_PRICE))
    check_in(h, "lab-01", 30, 0)
    check_in(h, "lab-02", 31, 0)
    [c] = reconcile(h.events)
    assert (c.kind, c.amount, c.severity) == ("double_execution", 0, "low")
    assert [r.code for r in c.remedies] == ["accept"]


# ---------------------------------------------------------------------------- double_dispense


def test_a_prescription_dispensed_and_charged_at_two_pharmacies() -> None:
    h = History()
    day(h)
    placed = h.add("doctor-01", 20, "order.placed", drug())
    one = dispense(h, "pharmacy-01", 30, "WEST", 10, True, 1)
    two = dispense(h, "pharmacy-02", 31, "EAST", 10, True, 1)
    [c] = reconcile(h.events)
    assert (c.kind, c.amount) == ("double_dispense", 10 * DRUG_PRICE)
    assert c.events == (placed.id, one.id, two.id)
    assert c.nodes == ("pharmacy-01", "pharmacy-02")
    assert "WEST" in c.explanation and "EAST" in c.explanation
    assert "AMOX×10 at EAST" in c.explanation  # the second dispensing is the extra one
    assert [r.code for r in c.remedies] == ["bring_back", "write_off", "accept"]
    assert_order_independent(h.events)
    assert on_hand(h.events, "EAST") == 10 and balance(h.events) == DEPOSIT - FEE - 6_000

    back = History()
    back.events, back.seqs = list(h.events), dict(h.seqs)
    apply_remedy(back, c, "bring_back")  # the patient brings the extra back
    assert [e.kind for e in back.events[-2:]] == ["stock.corrected", "order.charge_returned"]
    assert on_hand(back.events, "EAST") == 20 and on_hand(back.events, "WEST") == 10
    assert balance(back.events) == DEPOSIT - FEE - 10 * DRUG_PRICE
    assert resolved_by(back.events, c.id) == [c.id]

    apply_remedy(h, c, "write_off")  # the patient keeps them: money back, drugs written off
    assert on_hand(h.events, "EAST") == 10
    assert balance(h.events) == DEPOSIT - FEE - 10 * DRUG_PRICE
    assert resolved_by(h.events, c.id) == [c.id]
    [again] = reconcile(h.events)
    assert again.id == c.id and [r.code for r in again.remedies] == ["accept"]


def test_a_prescription_charged_when_sent_and_dispensed_twice_is_charged_if_kept() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", drug(charged=10 * DRUG_PRICE))
    dispense(h, "pharmacy-01", 30, "WEST", 10, False, 1)
    dispense(h, "pharmacy-02", 31, "EAST", 4, False, 1)  # a part of it again, uncharged
    [c] = reconcile(h.events)
    assert (c.kind, c.amount, c.severity) == ("double_dispense", 4 * DRUG_PRICE, "high")
    assert "not charged" in c.explanation
    assert [r.code for r in c.remedies] == ["bring_back", "keep", "accept"]
    bring = c.remedy("bring_back")
    assert bring is not None and [k for k, _ in bring.events] == ["stock.corrected"]
    apply_remedy(h, c, "keep")
    assert balance(h.events) == DEPOSIT - FEE - 10 * DRUG_PRICE - 4 * DRUG_PRICE
    assert resolved_by(h.events, c.id) == [c.id]


# ---------------------------------------------------------------------------- stock_below_zero


def test_stock_taken_below_zero_lists_the_events_and_a_correction_brings_it_to_zero() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", drug())
    gone = dispense(h, "pharmacy-01", 30, "WEST", 10, True, 1)
    moved = h.add("pharmacy-02", 31, "stock.transferred", {
        "from_pharmacy": "WEST", "to_pharmacy": "EAST", "code": "AMOX", "qty": 15})
    [c] = reconcile(h.events)
    receipt = h.events[4]
    assert receipt.kind == "stock.received" and receipt.body["pharmacy"] == "WEST"
    assert (c.kind, c.patients, c.amount) == ("stock_below_zero", (), 0)
    assert c.events == (receipt.id, gone.id, moved.id)  # from the receipt, in merge order
    assert "WEST holds -5 of AMOX" in c.explanation and "transfer to EAST" in c.explanation
    fix = c.remedy("correct")
    assert fix is not None and fix.events[0][1]["delta"] == 5
    assert_order_independent(h.events)
    r = Reconciler()
    r.add(h.events)
    apply_remedy(h, c, "correct")
    rep = r.add(h.events[-1:])
    assert [x.conflict_id for x in rep.resolutions] == [c.id]
    assert rep.withdrawn == [c.id] and not rep.conflicts  # no longer below zero
    assert on_hand(h.events, "WEST") == 0 and on_hand(h.events, "EAST") == 35


def test_a_late_receipt_withdraws_stock_below_zero() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", drug(qty=30))
    dispense(h, "pharmacy-01", 30, "WEST", 30, True, 1)
    r = Reconciler()
    [c] = [x for x in r.add(h.events).conflicts if x.kind == "stock_below_zero"]
    assert "holds -10" in c.explanation
    unrelated = h.add("cashier-01", 40, "account.deposited", {
        "patient_id": "P-1", "amount": 100, "method": "cash", "receipt_no": "D2"})
    rep = r.add([unrelated])  # a batch not touching the stock does not re-check it
    assert not [x for x in rep.conflicts if x.kind == "stock_below_zero"] and not rep.withdrawn
    late = h.add("store-01", 25, "stock.received", {"pharmacy": "WEST", "code": "AMOX",
                                                    "qty": 10})  # sent before, synced now
    rep = r.add([late])
    assert rep.withdrawn == [c.id] and not rep.conflicts
    assert reconcile(h.events) == []


# ------------------------------------------------------------------ refund_after_execution


def test_an_order_refunded_at_one_counter_while_executed_at_another() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", lab(charged=LAB_PRICE))  # charged when sent
    check_in(h, "lab-01", 30, 0)
    done = executed(h, "lab-01", 31)
    undo = cancel(h, "doctor-01", 32, LAB_ID, LAB_PRICE)  # offline: did not know
    [c] = reconcile(h.events)
    assert (c.kind, c.amount) == ("refund_after_execution", LAB_PRICE)
    assert c.events == (undo.id, done.id) and c.nodes == ("doctor-01", "lab-01")
    assert "executed at lab-01" in c.explanation
    assert_order_independent(h.events)
    assert balance(h.events) == DEPOSIT - FEE
    apply_remedy(h, c, "debt")
    assert balance(h.events) == DEPOSIT - FEE - LAB_PRICE
    assert resolved_by(h.events, c.id) == [c.id]
    [again] = reconcile(h.events)
    assert again.id == c.id and again.remedy("debt") is None


def test_a_partly_dispensed_prescription_cancelled_elsewhere_owes_what_was_dispensed() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", drug(charged=10 * DRUG_PRICE))
    dispense(h, "pharmacy-01", 30, "WEST", 4, False, 1)
    cancel(h, "doctor-01", 31, DRUG_ID, 10 * DRUG_PRICE)
    [c] = reconcile(h.events)
    assert (c.kind, c.amount) == ("refund_after_execution", 4 * DRUG_PRICE)
    assert "dispensed AMOX×4 at WEST" in c.explanation
    debt = c.remedy("debt")
    assert debt is not None and debt.events[0][1]["debit"] == 4 * DRUG_PRICE


# --------------------------------------------------------------------- charge_after_cancel


def test_a_check_in_charging_an_order_cancelled_elsewhere() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", lab())  # charged at execution
    undo = cancel(h, "doctor-01", 30, LAB_ID, 0)  # nothing charged yet: nothing refunded
    charge = check_in(h, "lab-01", 31, LAB_PRICE)  # offline: did not know of the cancel
    [c] = reconcile(h.events)
    assert (c.kind, c.amount) == ("charge_after_cancel", LAB_PRICE)
    assert c.events == (undo.id, charge.id)
    assert_order_independent(h.events)
    apply_remedy(h, c, "return")
    assert balance(h.events) == DEPOSIT - FEE
    assert resolved_by(h.events, c.id) == [c.id]
    [again] = reconcile(h.events)
    assert again.id == c.id and again.remedy("return") is None


def test_a_charge_for_a_cancelled_order_that_was_done_anyway_says_so() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", lab())
    check_in(h, "lab-01", 30, LAB_PRICE)
    executed(h, "lab-01", 31)
    cancel(h, "doctor-01", 32, LAB_ID, 0)  # knew nothing of the check-in
    [c] = reconcile(h.events)  # nothing was refunded for what was done: not that kind
    assert (c.kind, c.amount) == ("charge_after_cancel", LAB_PRICE)
    assert "It was done" in c.explanation and "executed at lab-01" in c.explanation


def test_a_second_check_in_after_a_cancel_is_counted_once() -> None:
    h = History()
    day(h)
    h.add("doctor-01", 20, "order.placed", lab())
    cancel(h, "doctor-01", 30, LAB_ID, 0)
    check_in(h, "lab-01", 31, LAB_PRICE)
    check_in(h, "lab-02", 32, LAB_PRICE)
    got = {c.kind: c.amount for c in reconcile(h.events)}
    assert got == {"charge_after_cancel": LAB_PRICE, "double_execution": LAB_PRICE}
    assert_order_independent(h.events)


# ---------------------------------------------------------------------------- any order

ACTIONS = st.lists(st.tuples(
    st.sampled_from(("check_in", "executed", "dispense", "cancel", "receipt", "transfer")),
    st.integers(0, 2), st.integers(20, 60), st.integers(1, 12), st.booleans()), max_size=10)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS, st.booleans(), st.integers(0, 10_000))
def test_the_same_conflicts_whatever_order_the_events_arrive_in(
        actions: list[tuple[str, int, int, int, bool]], at_send: bool, seed: int) -> None:
    """Random offline days at three counters of each kind: one batch or shuffled batches,
    the same conflicts stand, and nothing fails."""
    h = History()
    day(h)
    h.add("doctor-01", 15, "order.placed", lab(charged=LAB_PRICE if at_send else 0))
    h.add("doctor-01", 16, "order.placed", drug(charged=10 * DRUG_PRICE if at_send else 0))
    for i, (what, n, wall, qty, flag) in enumerate(actions):
        if what == "check_in":
            check_in(h, f"lab-0{n}", wall, 0 if at_send else LAB_PRICE, no=i + 1)
        elif what == "executed":
            executed(h, f"lab-0{n}", wall)
        elif what == "dispense":
            dispense(h, f"pharmacy-0{n}", wall, ("WEST", "EAST")[n % 2], qty,
                     not at_send, i + 1)
        elif what == "cancel":
            cancel(h, f"doctor-0{n}", wall, LAB_ID if flag else DRUG_ID,
                   LAB_PRICE if flag and at_send else 0)
        elif what == "receipt":
            h.add(f"store-0{n}", wall, "stock.received", {"pharmacy": "WEST", "code": "AMOX",
                                                         "qty": qty})
        else:
            h.add(f"pharmacy-0{n}", wall, "stock.transferred", {
                "from_pharmacy": "WEST", "to_pharmacy": "EAST", "code": "AMOX", "qty": qty})
    found = reconcile(h.events)
    assert not [c for c in found if c.kind == "reconcile_error"], found
    expected = {c.id: (c.kind, c.amount) for c in found}
    assert in_any_order(h.events, seed) == expected
