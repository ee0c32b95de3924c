"""The doctor's station service (edge_node.clinic) on real SQLite ledgers: the patient
view, the consultation and its fee, diagnoses and allergies, and each order check's
blocking and warning case, sending (charged at send or at execution, split per
executing department) and cancelling (refunds exactly what was charged, once)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edge_node.clinic import BLOCK, WARNING, ClinicService, Finding, OrderLine, amount_short
from edge_node.errors import OperationRefused
from edge_node.i18n import Translator
from edge_node.ledger import Ledger, Op
from edge_node.service import CounterService
from edge_node.visits import VisitService
from protocol.event import decode_event
from protocol.order import Order
from protocol.visit import Visit
from tests.conftest import LedgerFactory, registered
from tests.support.clinic import LAB, PHARMACY, catalogue_events, give_catalogue

DOCTOR = "dr.qian"


class Desk:
    """A doctor's counter: a ledger with the test catalogue, a patient and their visit."""

    def __init__(self, led: Ledger, pid: str, visit: Visit) -> None:
        self.led, self.pid, self.visit = led, pid, visit
        self.clinic = ClinicService(led, DOCTOR)
        self.counter = CounterService(led, "op.wang")

    async def balance(self) -> int:
        return (await self.clinic.patient_view(self.pid)).balance

    async def lines(self, *specs: tuple[str, int, int, int, int]) -> list[OrderLine]:
        return [await self.clinic.line(*s) for s in specs]

    async def stock(self, code: str, qty: int, pharmacy: str = PHARMACY) -> None:
        await self.led.append(Op("stock.received", {"pharmacy": pharmacy, "code": code,
                                                    "qty": qty}), "store.keeper")


async def desk(make_ledger: LedgerFactory, deposit: int = 50_000, charge_at: str = "send",
               node: str = "doctor-01") -> Desk:
    led = await make_ledger(node)
    await give_catalogue(led, charge_at=charge_at)
    pid = await registered(CounterService(led, "op.wang"), deposit=deposit)
    r = await VisitService(led, "op.wang").register(dept="IM", channel="cashier",
                                                     patient_id=pid, doctor_id=DOCTOR)
    return Desk(led, pid, r.visit)


def codes(findings: list[Finding], level: str) -> list[str]:
    return [f.code for f in findings if f.level == level]


IBU = ("D-IBU", 1, 300, 2, 3)  # 布洛芬 ¥12.60, 300 mg twice a day for 3 days


# -- the patient view and the consultation ------------------------------------------------
async def test_start_charges_the_consultation_fee_once_per_visit(
        make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    before = await d.balance()
    v = await d.clinic.start(d.visit.visit_id)
    assert (v.status, v.consult_fee, v.doctor_seen) == ("consulting", 1000, DOCTOR)
    assert await d.balance() == before - 1000
    head = await d.led.head()
    again = await d.clinic.start(d.visit.visit_id)  # opening it again: no second fee
    assert again.consult_fee == 1000 and await d.balance() == before - 1000
    assert (await d.led.head()).seq == head.seq, "nothing written the second time"
    done = await d.clinic.finish(d.visit.visit_id)
    assert done.status == "done"
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.start(d.visit.visit_id)
    assert exc.value.codes == ["visit.step"]


async def test_start_writes_the_step_and_the_fee_in_one_append(
        make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger, deposit=500)  # covers the registration fee, not the 10.00
    seq = (await d.led.head()).seq
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.start(d.visit.visit_id)
    assert exc.value.codes == ["charge.insufficient"]
    assert (await d.led.head()).seq == seq, "neither the step nor the fee was written"
    v = await d.led.get(Visit, d.visit.visit_id)
    assert v.status == "waiting"


async def test_no_show_and_the_patient_view(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    await d.clinic.start(d.visit.visit_id)
    await d.clinic.diagnose(d.visit.visit_id, "上呼吸道感染", "j06.9")
    await d.clinic.record_allergy(d.pid, "青霉素类", "皮疹")
    await d.clinic.record_allergy(d.pid, "磺胺")
    await d.clinic.withdraw_allergy(d.pid, "磺胺")
    await d.clinic.set_insurance(d.pid, "employee")
    await d.stock("D-IBU", 10)
    await d.clinic.send_order(d.visit.visit_id, await d.lines(IBU),
                              accept_warnings={"order.stock_unknown"})
    view = await d.clinic.patient_view(d.pid)
    assert view.patient.name == "张三" and view.insurance == "employee"
    assert view.allergies == (("青霉素类", "皮疹"),)
    [entry] = view.visits
    assert [(x.icd10, x.text, x.doctor) for x in entry.diagnoses] == [
        ("J06.9", "上呼吸道感染", DOCTOR)]
    [order] = view.orders
    assert (order.type, order.exec_dept, order.status, order.total) == (
        "drug", PHARMACY, "placed", 1260)
    assert view.dispensed == () and view.results == ()
    assert view.balance == 50_000 - 500 - 1000 - 1260
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.diagnose(d.visit.visit_id, "x", "J6")
    assert exc.value.codes == ["field.format"]
    other = await VisitService(d.led, "op.wang").register(dept="IM", channel="cashier",
                                                         patient_id=d.pid, again=True)
    gone = await d.clinic.no_show(other.visit.visit_id)
    assert gone.status == "no_show"
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.send_order(other.visit.visit_id, await d.lines(IBU))
    assert "visit.step" in exc.value.codes


# -- items and templates ------------------------------------------------------------------
async def test_item_search_by_code_name_and_pinyin(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    s = d.clinic
    assert [i.code for i in await s.search_items("d-ibu")] == ["D-IBU"]
    assert [i.code for i in await s.search_items("LAB")] == ["LAB-CBC", "LAB-CRP", "LAB-GLU"]
    assert [i.code for i in await s.search_items("xcg")] == ["LAB-CBC"]
    assert [i.code for i in await s.search_items("阿")] == ["D-AMX", "D-AZI"]
    assert [i.code for i in await s.search_items("霉素")] == ["D-AZI"]
    assert [i.code for i in await s.search_items("a", types=("drug",))][:2] == ["D-AMX",
                                                                                 "D-AZI"]
    assert await s.search_items("xcg", types=("drug",)) == []
    assert await s.search_items("CONSULT") == [], "fees are not ordered"
    assert {t.code for t in await s.templates("prescription")} == {"TPL-URI"}
    lines = await s.template_lines("TPL-FEVER")
    assert [(x.code, x.unit_price, x.dept, x.type) for x in lines] == [
        ("LAB-CBC", 2500, LAB, "lab"), ("LAB-CRP", 4000, LAB, "lab")]
    with pytest.raises(OperationRefused) as exc:
        await s.template_lines("NOPE")
    assert exc.value.codes == ["order.unknown_template"]


# -- the blocks (the kind's rule, through the ledger's dry run) -----------------------------
async def test_allergy_blocks(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    await d.clinic.record_allergy(d.pid, "青霉素类")
    lines = await d.lines(("D-AMX", 1, 500, 3, 5))
    findings = await d.clinic.check_order(d.visit.visit_id, lines)
    assert codes(findings, BLOCK) == ["order.allergy"]
    text = Translator("en").problem(findings[0].problem)
    assert "青霉素类" in text and "阿莫西林" in text
    seq = (await d.led.head()).seq
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.send_order(d.visit.visit_id, lines,
                                  accept_warnings={f.key for f in findings})
    assert exc.value.codes == ["order.allergy"]
    assert (await d.led.head()).seq == seq


async def test_dose_above_the_single_and_the_daily_maximum_blocks(
        make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    single = await d.clinic.check_order(d.visit.visit_id,
                                        await d.lines(("D-IBU", 1, 800, 1, 3)))
    assert codes(single, BLOCK) == ["order.dose_single"]
    assert single[0].problem.values["max"] == "600mg"
    daily = await d.clinic.check_order(d.visit.visit_id,
                                       await d.lines(("D-IBU", 1, 600, 3, 3)))
    assert codes(daily, BLOCK) == ["order.dose_daily"]
    assert daily[0].problem.values["dose"] == "1800mg"
    missing = await d.clinic.check_order(d.visit.visit_id,
                                         await d.lines(("D-IBU", 1, 300, 0, 3)))
    assert codes(missing, BLOCK) == ["order.dose_missing"]
    fine = await d.clinic.check_order(d.visit.visit_id, await d.lines(IBU))
    assert codes(fine, BLOCK) == []


async def test_deposit_short_blocks_and_says_how_much(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger, deposit=5_000)  # 45.00 left after the 5.00 registration
    lines = await d.lines(("RAD-CXR", 1, 0, 0, 0), ("LAB-CBC", 1, 0, 0, 0))  # 80 + 25
    findings = await d.clinic.check_order(d.visit.visit_id, lines)
    assert codes(findings, BLOCK) == ["charge.insufficient"]
    assert amount_short(findings) == 10_500 - 4_500
    assert "¥60.00" in Translator("en").problem(findings[0].problem)
    assert "¥60.00" in Translator("zh").problem(findings[0].problem)
    with pytest.raises(OperationRefused):
        await d.clinic.send_order(d.visit.visit_id, lines)
    # each order alone would pass: the shortfall is over both together
    assert codes(await d.clinic.check_order(d.visit.visit_id, lines[:1]), BLOCK) == [
        "charge.insufficient"]
    assert codes(await d.clinic.check_order(d.visit.visit_id, lines[1:]), BLOCK) == []


async def test_not_in_the_catalogue_and_a_wrong_price_block(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    [cbc] = await d.lines(("LAB-CBC", 1, 0, 0, 0))
    ghost = replace(cbc, code="LAB-XYZ", name="LAB-XYZ")
    findings = await d.clinic.check_order(d.visit.visit_id, [ghost])
    assert codes(findings, BLOCK) == ["catalogue.unknown_item"]
    cheap = replace(cbc, unit_price=100)
    assert codes(await d.clinic.check_order(d.visit.visit_id, [cheap]), BLOCK) == [
        "catalogue.price"]
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.line("CONSULT")
    assert exc.value.codes == ["catalogue.unknown_item"]


async def test_a_stale_catalogue_version_blocks(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    lines = await d.lines(("LAB-CBC", 1, 0, 0, 0))
    last = decode_event(catalogue_events(1)[-1])  # central's chain continues from it
    assert await d.led.ingest(catalogue_events(2, seq=last.seq + 1, prev=last.hash(),
                                               wall=1_789_000_100_000)) > 0
    findings = await d.clinic.check_order(d.visit.visit_id, lines)
    assert codes(findings, BLOCK) == ["catalogue.stale"]
    assert "version 1" in Translator("en").problem(findings[0].problem)
    fresh = await d.lines(("LAB-CBC", 1, 0, 0, 0))
    assert fresh[0].version == 2
    assert codes(await d.clinic.check_order(d.visit.visit_id, fresh), BLOCK) == []


# -- the warnings (the service's own) --------------------------------------------------------
async def test_stock_unknown_and_short_warn(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    lines = await d.lines(("D-IBU", 3, 300, 2, 3))
    assert codes(await d.clinic.check_order(d.visit.visit_id, lines), WARNING) == [
        "order.stock_unknown"]
    await d.stock("D-IBU", 2)
    findings = await d.clinic.check_order(d.visit.visit_id, lines)
    assert codes(findings, WARNING) == ["order.stock_short"]
    assert Translator("en").problem(findings[0].problem).startswith(
        "布洛芬缓释胶囊: only 2 盒 on hand at PHA-OP")
    await d.stock("D-IBU", 5)
    assert codes(await d.clinic.check_order(d.visit.visit_id, lines), WARNING) == []
    await d.stock("D-IBU", 5, pharmacy="PHA-ER")  # another pharmacy's stock: not this one
    assert (await d.clinic.check_order(d.visit.visit_id, lines)) == []


async def test_a_warning_must_be_accepted_before_sending(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    lines = await d.lines(IBU)
    seq = (await d.led.head()).seq
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.send_order(d.visit.visit_id, lines)
    assert exc.value.codes == ["order.unconfirmed", "order.stock_unknown"]
    assert (await d.led.head()).seq == seq
    with pytest.raises(OperationRefused):
        await d.clinic.send_order(d.visit.visit_id, lines, accept_warnings={"order.same_drug"})
    r = await d.clinic.send_order(d.visit.visit_id, lines,
                                  accept_warnings={"order.stock_unknown:D-IBU"})
    assert [o.total for o in r.orders] == [1260]


async def test_the_same_drug_already_active_warns(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    await d.stock("D-IBU", 10)
    r = await d.clinic.send_order(d.visit.visit_id, await d.lines(IBU))
    [order] = r.orders
    findings = await d.clinic.check_order(d.visit.visit_id, await d.lines(IBU))
    assert codes(findings, WARNING) == ["order.same_drug"]
    assert findings[0].problem.values["order"] == order.order_id
    await d.clinic.cancel_order(order.order_id, "开错了")
    assert await d.clinic.check_order(d.visit.visit_id, await d.lines(IBU)) == []


async def test_insurance_not_covered_and_partly_covered_warn(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    lines = await d.lines(("RAD-CT", 1, 0, 0, 0), ("LAB-CRP", 1, 0, 0, 0),
                          ("LAB-CBC", 1, 0, 0, 0))  # classes 丙, 乙, 甲
    assert await d.clinic.check_order(d.visit.visit_id, lines) == [], "self-pay: no warning"
    await d.clinic.set_insurance(d.pid, "resident")
    findings = await d.clinic.check_order(d.visit.visit_id, lines)
    assert [(f.code, f.item) for f in findings] == [("order.not_covered", "RAD-CT"),
                                                    ("order.partly_covered", "LAB-CRP")]
    zh = Translator("zh").problem(findings[0].problem)
    assert "自费" in zh and "头颅CT平扫" in zh


# -- sending and cancelling ---------------------------------------------------------------
async def test_charged_when_sent(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    before = await d.balance()
    r = await d.clinic.send_order(d.visit.visit_id, await d.lines(("LAB-CBC", 2, 0, 0, 0)))
    [o] = r.orders
    assert (o.total, o.charged, o.doctor, o.order_id) == (5000, 5000, DOCTOR,
                                                          f"O-doctor-01-{r.events[0].seq:06d}")
    assert r.balance == before - 5000 == await d.balance()
    assert o.catalogue_version == 1


async def test_charged_at_execution(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger, charge_at="execution", deposit=600)  # 1.00 after registering
    before = await d.balance()
    lines = await d.lines(("RAD-CT", 1, 0, 0, 0))  # 260.00: far above the deposit
    assert await d.clinic.check_order(d.visit.visit_id, lines) == []
    r = await d.clinic.send_order(d.visit.visit_id, lines)
    [o] = r.orders
    assert (o.total, o.charged) == (26000, 0)
    assert await d.balance() == before
    c = await d.clinic.cancel_order(o.order_id, "no longer needed")
    assert c.orders[0].refunded == 0 and await d.balance() == before


async def test_a_prescription_and_requisition_split_per_executing_department(
        make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    await d.stock("D-IBU", 10)
    await d.stock("D-AZI", 10)
    lines = [*await d.clinic.template_lines("TPL-URI"), *await d.clinic.template_lines(
        "TPL-FEVER"), await d.clinic.line("RAD-CXR")]
    before = await d.balance()
    r = await d.clinic.send_order(d.visit.visit_id, lines,
                                  accept_warnings={"order.partly_covered"})
    assert sorted((o.exec_dept, o.type, o.total) for o in r.orders) == [
        (LAB, "lab", 6500), (PHARMACY, "drug", 1260 + 2390), ("RAD", "exam", 8000)]
    assert len({e.seq for e in r.events}) == 3
    assert len({o.order_id for o in r.orders}) == 3
    assert await d.balance() == before - 6500 - 3650 - 8000
    at_lab = await d.led.find(Order, "exec_dept", LAB)
    assert [o.lines for o in at_lab] and at_lab[0].line_list()[0][:4] == (
        "LAB-CBC", "血常规", 1, 2500)


async def test_cancel_refunds_exactly_what_was_charged_and_only_once(
        make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    before = await d.balance()
    r = await d.clinic.send_order(d.visit.visit_id, await d.lines(("LAB-CRP", 1, 0, 0, 0)))
    [o] = r.orders
    assert await d.balance() == before - 4000
    preview = await d.clinic.dry().cancel_order(o.order_id, "患者拒绝")
    assert preview.preview and preview.balance == before
    assert (await d.led.get(Order, o.order_id)).status == "placed", "the dry run wrote nothing"
    c = await d.clinic.cancel_order(o.order_id, "患者拒绝")
    [ev] = c.events
    assert (ev.body["refund"], ev.body["approved_by"]) == (4000, DOCTOR)
    assert c.orders[0].status == "cancelled" and c.balance == before == await d.balance()
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.cancel_order(o.order_id, "again")
    assert exc.value.codes == ["order.not_cancellable"]
    assert await d.balance() == before
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.cancel_order(o.order_id, " ")
    assert exc.value.codes == ["order.reason"]
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.cancel_order("O-nowhere-000001", "x")
    assert exc.value.codes == ["order.unknown"]


async def test_an_empty_order_and_an_unknown_visit(make_ledger: LedgerFactory) -> None:
    d = await desk(make_ledger)
    assert codes(await d.clinic.check_order(d.visit.visit_id, []), BLOCK) == ["order.empty"]
    with pytest.raises(OperationRefused) as exc:
        await d.clinic.check_order("V-nowhere-000001", await d.lines(IBU))
    assert exc.value.codes == ["visit.unknown"]
