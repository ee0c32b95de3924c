"""The reconciler on the clinical kinds: an order cancelled at two offline counters (its
charge refunded twice) and a visit's consultation fee charged twice; honest visits and
orders raise nothing; each remedy folds back and resolves the conflict."""

from __future__ import annotations

from central.reconcile import Reconciler, reconcile
from protocol.event import CENTRAL
from tests.support import domain
from tests.test_reconcile import History

VISIT = {"visit_id": "V-triage-01-000004", "patient_id": "P-1", "dept": "IM",
         "day": "2026-12-01", "queue_tag": "T01", "queue_no": 1, "channel": "triage",
         "fee": 500, "fee_code": "REG-GEN", "catalogue_version": 1}
ORDER = {"order_id": "O-doctor-01-000007", "visit_id": VISIT["visit_id"], "patient_id": "P-1",
         "type": "lab", "exec_dept": "LAB", "catalogue_version": 1,
         "lines": [{"code": "LAB-CBC", "name": "血常规", "qty": 1, "unit_price": 2500}],
         "total": 2500, "charged": 2500}
FEE = {"visit_id": VISIT["visit_id"], "patient_id": "P-1", "code": "CONSULT",
       "name": "诊查费", "amount": 1000, "catalogue_version": 1}


def _day(h: History) -> None:
    h.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    h.add("triage-01", 10, "visit.registered", VISIT)
    h.add("doctor-01", 20, "visit.fee_charged", FEE)
    h.add("doctor-01", 30, "order.placed", ORDER)


def _cancel(h: History, node: str, wall: int) -> None:
    h.add(node, wall, "order.cancelled", {"order_id": ORDER["order_id"], "patient_id": "P-1",
                                          "refund": 2500, "reason": "patient declined",
                                          "approved_by": "dr.zhao"})


def test_an_honest_visit_with_an_order_and_one_cancel_raises_nothing() -> None:
    h = History()
    _day(h)
    _cancel(h, "doctor-01", 40)
    assert reconcile(h.events) == []
    acct = domain.fold(h.events).accounts["P-1"]
    assert acct.balance == 10_000 - 500 - 1000 - 2500 + 2500


def test_an_order_cancelled_at_two_offline_counters_is_one_conflict_with_the_excess() -> None:
    h = History()
    _day(h)
    _cancel(h, "doctor-01", 40)
    _cancel(h, "doctor-02", 41)
    [c] = reconcile(h.events)
    assert c.kind == "double_cancel" and c.amount == 2500
    assert c.nodes == ("doctor-01", "doctor-02") and "O-doctor-01-000007" in c.explanation
    assert domain.fold(h.events).accounts["P-1"].balance == 10_000 - 1500 + 2500
    debt = c.remedy("debt")
    assert debt is not None
    kind, body = debt.events[0]
    h.add(CENTRAL, 100, kind, {**body, "reason": "taken back"}, operator="it.li")
    r = Reconciler()
    rep = r.add(h.events)
    assert [x.conflict_id for x in rep.resolutions] == [c.id]
    assert domain.fold(h.events).accounts["P-1"].balance == 10_000 - 1500
    assert domain.fold(reversed(h.events)).accounts == domain.fold(h.events).accounts


def test_a_consultation_fee_charged_twice_is_flagged_and_given_back() -> None:
    h = History()
    _day(h)
    h.add("doctor-02", 21, "visit.fee_charged", FEE)  # a second station, offline
    [c] = reconcile(h.events)
    assert c.kind == "double_fee" and c.amount == 1000
    ret = c.remedy("return")
    assert ret is not None
    kind, body = ret.events[0]
    assert kind == "visit.fee_returned" and body["amount"] == 1000
    h.add(CENTRAL, 100, kind, {**body, "reason": "charged twice"}, operator="it.li")
    r = Reconciler()
    rep = r.add(h.events)
    assert [x.conflict_id for x in rep.resolutions] == [c.id]
    state = domain.fold(h.events)
    assert state.accounts["P-1"].balance == 10_000 - 500 - 1000 - 2500
    [again] = reconcile(h.events)  # still listed (resolved by the remedy), nothing left open
    assert again.id == c.id and again.remedy("return") is None


def test_cancels_that_arrive_before_their_order_wait_for_it() -> None:
    h = History()
    _day(h)
    _cancel(h, "doctor-01", 40)
    _cancel(h, "doctor-02", 41)
    placed = next(e for e in h.events if e.kind == "order.placed")
    r = Reconciler()
    first = r.add([e for e in h.events if e is not placed])
    assert first.conflicts == []  # the order has not reached central: nothing to judge yet
    second = r.add([placed])
    assert [c.kind for c in second.conflicts] == ["double_cancel"]
