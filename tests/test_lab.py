"""The lab and exam window's service (edge_node.lab) on real SQLite ledgers: waiting
orders and the worklist, check-in (queue number, specimen id, charge at send or at
execution), the steps after it, every refusal, the label, and cancelling around it."""

from __future__ import annotations

import pytest

from edge_node.clinic import ClinicService
from edge_node.errors import OperationRefused
from edge_node.i18n import Translator
from edge_node.lab import LabService
from edge_node.labels import label_escpos, parse_specimen_id
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.visits import VisitService
from protocol.order import Order
from tests.conftest import ID_FEMALE, LedgerFactory, registered
from tests.support.clinic import EXAM, LAB, give_catalogue

DOCTOR = "dr.qian"
NODE = "lab-01"  # its queue tag: L01


class Window:
    """A lab counter's ledger with the catalogue, a patient, their visit, and the doctor's
    orders sent to it (through the same ledger: sync is another test's business)."""

    def __init__(self, led: Ledger, pid: str, visit_id: str) -> None:
        self.led, self.pid, self.visit_id = led, pid, visit_id
        self.clinic = ClinicService(led, DOCTOR)
        self.lab = LabService(led, "tech.liu", dept=LAB)
        self.exam = LabService(led, "tech.zhou", dept=EXAM)

    async def send(self, *codes: str, pid: str = "", visit_id: str = "") -> list[Order]:
        lines = [await self.clinic.line(c) for c in codes]
        r = await self.clinic.send_order(visit_id or self.visit_id, lines,
                                         accept_warnings=("order.not_covered",
                                                          "order.partly_covered"))
        return list(r.orders)

    async def balance(self, pid: str = "") -> int:
        return await self.lab.balance(pid or self.pid)


async def window(make_ledger: LedgerFactory, *, charge_at: str = "send",
                 deposit: int = 100_000, node: str = NODE) -> Window:
    led = await make_ledger(node)
    await give_catalogue(led, charge_at=charge_at)
    pid = await registered(CounterService(led, "op.wang"), deposit=deposit)
    r = await VisitService(led, "op.wang").register(dept="IM", channel="cashier",
                                                     patient_id=pid, doctor_id=DOCTOR)
    return Window(led, pid, r.visit.visit_id)


async def refused(coro: object) -> OperationRefused:
    with pytest.raises(OperationRefused) as exc:
        await coro  # type: ignore[misc]
    return exc.value


# -- waiting and the worklist -----------------------------------------------------------------
async def test_waiting_is_this_windows_active_orders_oldest_first(
        make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger)
    (cbc,) = await w.send("LAB-CBC")
    (cxr,) = await w.send("RAD-CXR")
    (crp,) = await w.send("LAB-CRP")
    assert [o.order_id for o in await w.lab.waiting(w.pid)] == [cbc.order_id, crp.order_id]
    assert [o.order_id for o in await w.exam.waiting(w.pid)] == [cxr.order_id]
    assert [o.order_id for o in await w.lab.elsewhere(w.pid)] == [cxr.order_id]
    await w.lab.check_in(cbc.order_id)
    await w.lab.execute(cbc.order_id)
    assert [o.order_id for o in await w.lab.waiting(w.pid)] == [cbc.order_id, crp.order_id]
    await w.lab.result(cbc.order_id, "WBC 6.1")
    await w.clinic.cancel_order(crp.order_id, "not needed")
    assert await w.lab.waiting(w.pid) == [], "resulted and cancelled orders wait no more"


async def test_worklist_groups_the_day_by_stage_with_names(make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger)
    orders = [o for c in ("LAB-CBC", "LAB-CRP", "LAB-GLU", "LAB-CBC") for o in
              await w.send(c)]
    a, b, c, d = (o.order_id for o in orders)
    for oid in (a, b, c):
        await w.lab.check_in(oid)
    await w.lab.collect(b)
    await w.lab.collect(c)
    await w.lab.execute(c)
    wl = await w.lab.worklist()
    assert wl.day == w.lab.today()
    assert [x.order.order_id for x in wl["placed"]] == [d]
    assert [x.order.order_id for x in wl["checked_in"]] == [a]
    assert [x.order.order_id for x in wl["collected"]] == [b]
    assert [x.order.order_id for x in wl["executed"]] == [c]
    assert wl.counts() == {"placed": 1, "checked_in": 1, "collected": 1, "executed": 1,
                           "resulted": 0}
    assert {x.name for x in wl.items} == {"张三"}
    assert wl["checked_in"][0].number == "L01-001" and wl["placed"][0].number == ""
    assert (await w.exam.worklist()).items == []
    assert (await w.lab.worklist("2020-01-02")).items == [], "another day: nothing"


# -- check-in --------------------------------------------------------------------------------
async def test_check_in_charged_at_send_charges_nothing_more(make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger, charge_at="send")
    (o,) = await w.send("LAB-CBC")
    before = await w.balance()
    assert o.charged == 2500
    r = await w.lab.check_in(o.order_id, w.pid)
    assert (r.charged, r.balance, r.number) == (0, before, "L01-001")
    assert r.order.stage == "checked_in" and r.order.total_charged == 2500
    assert r.specimen_id == r.order.specimen_id
    assert parse_specimen_id(r.specimen_id) == ("L01", w.lab.today(), 1)


async def test_check_in_charged_at_execution_charges_the_total(
        make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger, charge_at="execution")
    (o,) = await w.send("RAD-CXR")
    before = await w.balance()
    assert o.charged == 0
    preview = await w.exam.dry().check_in(o.order_id)
    assert preview.preview and preview.charged == 8000 and await w.balance() == before
    assert (await w.led.get(Order, o.order_id)).stage == "placed", "a dry run writes nothing"
    r = await w.exam.check_in(o.order_id)
    assert (r.charged, r.balance, r.specimen_id) == (8000, before - 8000, "")
    assert r.number == "L01-001" and r.order.total_charged == 8000
    assert r.order.exec_charged == 8000


async def test_queue_numbers_increase_and_survive_a_restart(make_ledger: LedgerFactory,
                                                            ) -> None:
    w = await window(make_ledger)
    orders = [o for c in ("LAB-CBC", "LAB-CRP", "LAB-GLU") for o in await w.send(c)]
    r1 = await w.lab.check_in(orders[0].order_id)
    r2 = await w.lab.check_in(orders[1].order_id)
    assert (r1.number, r2.number) == ("L01-001", "L01-002")
    await w.led.close()
    led = await make_ledger(NODE)  # the same file, opened again: nothing in memory
    r3 = await LabService(led, "tech.liu", dept=LAB).check_in(orders[2].order_id)
    assert r3.number == "L01-003"
    ids = [r1.specimen_id, r2.specimen_id, r3.specimen_id]
    assert len(set(ids)) == 3 and [parse_specimen_id(s).n for s in ids] == [1, 2, 3]


async def test_specimen_ids_are_unique_across_windows_and_from_the_ledger(
        make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger)
    orders = [o for c in ("LAB-CBC", "LAB-CRP", "LAB-GLU", "LAB-CBC") for o in
              await w.send(c)]
    other = LabService(w.led, "tech.ma", dept=LAB, queue_tag="L02")
    got = [await w.lab.check_in(orders[0].order_id), await other.check_in(orders[1].order_id),
           await w.lab.check_in(orders[2].order_id), await other.check_in(orders[3].order_id)]
    assert [r.number for r in got] == ["L01-001", "L02-001", "L01-002", "L02-002"]
    ids = [r.specimen_id for r in got]
    assert len(set(ids)) == 4
    parsed = [parse_specimen_id(s) for s in ids]
    assert [(p.tag, p.n) for p in parsed if p is not None] == [
        ("L01", 1), ("L02", 1), ("L01", 2), ("L02", 2)]
    stored = [(await w.led.get(Order, o.order_id)).specimen_id for o in orders]
    assert stored == ids, "the specimen id is the order's, in the ledger"


async def test_label_for_a_lab_check_in_none_for_an_exam(make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger)
    (cbc,) = await w.send("LAB-CBC")
    (cxr,) = await w.send("RAD-CXR")
    r = await w.lab.check_in(cbc.order_id)
    label = w.lab.label(r, language="en")
    assert label is not None and label.barcode == r.specimen_id
    assert any("张三" in line for line in label.lines)
    assert any("血常规" in line for line in label.lines)
    assert r.specimen_id.encode() in label_escpos(label)
    assert w.exam.label(await w.exam.check_in(cxr.order_id)) is None


# -- refusals --------------------------------------------------------------------------------
async def test_refusals_at_check_in(make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger, charge_at="execution", deposit=3000)
    other = await registered(CounterService(w.led, "op.wang"), card_no="8600000002",
                             deposit=50_000, national_id=ID_FEMALE)
    # ¥30.00 − the ¥5.00 registration: ¥25.00 left, for the CBC (¥25.00, at check-in)
    (cbc,) = await w.send("LAB-CBC")
    (crp,) = await w.send("LAB-CRP")  # ¥40.00: nothing left after the first
    (cxr,) = await w.send("RAD-CXR")
    head = (await w.led.head()).seq
    tr = Translator("en")

    exc = await refused(w.lab.check_in(cxr.order_id))
    assert exc.codes == ["order.wrong_window"] and "done at RAD" in tr.problems(exc.problems)
    exc = await refused(w.lab.check_in("O-nowhere-000001"))
    assert exc.codes == ["order.unknown"]
    exc = await refused(w.lab.check_in(cbc.order_id, other))
    assert exc.codes == ["order.wrong_patient"]
    assert (await w.led.head()).seq == head, "nothing written"

    await w.lab.check_in(cbc.order_id, w.pid)
    exc = await refused(w.lab.check_in(cbc.order_id, w.pid))
    assert exc.codes == ["order.step"]
    assert tr.problems(exc.problems) == (
        f"order {cbc.order_id} is checked in: it cannot be checked in now")
    assert "已签到" in Translator("zh").problems(exc.problems)

    exc = await refused(w.lab.check_in(crp.order_id, w.pid))
    assert exc.codes == ["charge.insufficient"]
    assert exc.problems[0].values["short"] == 4000, "nothing left, ¥40.00 due"
    assert "¥40.00 short" in tr.problems(exc.problems)
    assert "还差 ¥40.00" in Translator("zh").problems(exc.problems)
    assert (await w.led.get(Order, crp.order_id)).stage == "placed"

    nodept = LabService(w.led, "tech.liu", dept="")
    assert (await refused(nodept.check_in(crp.order_id))).codes == ["lab.no_dept"]


async def test_refusals_of_the_steps(make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger)
    (cbc,) = await w.send("LAB-CBC")
    (cxr,) = await w.send("RAD-CXR")
    exc = await refused(w.lab.collect(cbc.order_id))
    assert exc.codes == ["order.step"], "not checked in yet"
    await w.exam.check_in(cxr.order_id)
    exc = await refused(w.exam.collect(cxr.order_id))
    assert exc.codes == ["order.step"], "an exam has no specimen to collect"
    exc = await refused(w.lab.execute(cxr.order_id))
    assert exc.codes == ["order.wrong_window"], "another window's order"
    exc = await refused(w.exam.result(cxr.order_id, "  ", ""))
    assert exc.codes == ["order.result_missing"]
    exc = await refused(w.exam.execute("O-nowhere-000001"))
    assert exc.codes == ["order.unknown"]
    done = await w.exam.result(cxr.order_id, report_ref="PACS-2026-0042")
    assert (done.stage, done.report_ref, done.result) == ("resulted", "PACS-2026-0042", "")
    again = await w.exam.result(cxr.order_id, "no finding", "PACS-2026-0042")
    assert again.result == "no finding", "a later result corrects the earlier"


async def test_the_lab_steps_in_order(make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger)
    (cbc,) = await w.send("LAB-CBC")
    await w.lab.check_in(cbc.order_id)
    assert (await w.lab.collect(cbc.order_id)).stage == "collected"
    o = await w.lab.execute(cbc.order_id)
    assert o.stage == "executed" and o.executed_at
    o = await w.lab.result(cbc.order_id, "WBC 6.1 ×10⁹/L")
    assert (o.stage, o.result) == ("resulted", "WBC 6.1 ×10⁹/L")


# -- cancelling around execution -----------------------------------------------------------
async def test_cancel_after_execution_is_refused(make_ledger: LedgerFactory) -> None:
    w = await window(make_ledger)
    (cbc,) = await w.send("LAB-CBC")
    await w.lab.check_in(cbc.order_id)
    await w.lab.execute(cbc.order_id)
    exc = await refused(w.clinic.cancel_order(cbc.order_id, "changed my mind"))
    assert exc.codes == ["order.not_cancellable"]


@pytest.mark.parametrize("charge_at", ["send", "execution"])
async def test_cancel_after_check_in_refunds_all_it_charged(make_ledger: LedgerFactory,
                                                            charge_at: str) -> None:
    w = await window(make_ledger, charge_at=charge_at)
    start = await w.balance()
    (cxr,) = await w.send("RAD-CXR")
    r = await w.exam.check_in(cxr.order_id)
    assert r.order.total_charged == 8000 and await w.balance() == start - 8000
    assert r.charged == (8000 if charge_at == "execution" else 0)
    out = await w.clinic.cancel_order(cxr.order_id, "patient left")
    assert out.orders[0].refunded == 8000 and out.orders[0].stage == "cancelled"
    assert await w.balance() == start
    exc = await refused(w.exam.execute(cxr.order_id))
    assert exc.codes == ["order.step"], "a cancelled order is not executed"
