"""The doctor's desk, driven by keys as a doctor would (Textual pilot, real SQLite ledger):
the queue and call next, a tap opening the patient, diagnosis, allergy and insurance,
orders with each check shown (a block prevents sending, a warning needs Ctrl+Y), a
template, cancelling with the refund, finishing the visit; and the patient view's
snapshots at 80×25 (zh) and 160×48 (en)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from edge_node import staff
from edge_node.clinic import ClinicService
from edge_node.config import EdgeConfig, write_key
from edge_node.ledger import Ledger, Op
from edge_node.service import CounterService
from edge_node.tui.messages import CardTapped
from edge_node.tui.screens.ask import AskScreen
from edge_node.tui.screens.doctor import DoctorDesk, PatientScreen
from edge_node.tui.screens.keyhelp import KeyHelpScreen
from edge_node.tui.screens.order import OrderScreen
from edge_node.visits import VisitService
from protocol.account import Account
from protocol.clinical import Profile
from protocol.order import Order
from protocol.visit import Visit
from tests.conftest import ID_FEMALE, ID_MALE, FakeClock, node_key
from tests.support.clinic import PHARMACY, give_catalogue
from tests.tui_harness import NOW_MS, fill, laid_out, log_in, make_app, settle_down

NODE = "doctor-01"
DOCTOR = "dr.qian"
CARD_A, CARD_B = "8600000001", "8600000002"


def doctor_config(tmp_path: Path, language: str = "en") -> EdgeConfig:
    return EdgeConfig(node_id=NODE, role="doctor", department="IM", room="3",
                      db=tmp_path / "ledger.sqlite3", key_file=tmp_path / "node.key",
                      language=language, printer=str(tmp_path / "printer.bin"))


async def open_ledger(cfg: EdgeConfig) -> Ledger:
    return await Ledger.open(cfg.db, cfg.node_id, node_key(cfg.node_id),
                             rule_config=cfg.rules, clock=FakeClock(NOW_MS - 3_600_000))


async def seed(led: Ledger, deposit: int = 50_000, history: bool = False) -> dict[str, str]:
    """The doctor, the catalogue, two patients in the queue (A first); with ``history``
    A has allergies, insurance, a finished earlier visit with a diagnosis and orders."""
    await staff.add_staff(led, DOCTOR, "钱程", "1234", hasher=staff.cheap_hasher(),
                          now_ms=NOW_MS)
    await give_catalogue(led)
    svc = CounterService(led, "op.wang")
    a = await svc.register_patient(name="张三", national_id=ID_MALE, phone="13800138000",
                                   card_no=CARD_A, first_deposit=deposit, method="cash")
    b = await svc.register_patient(name="李梅", national_id=ID_FEMALE, phone="13900139000",
                                   card_no=CARD_B, first_deposit=50_000, method="cash")
    pa, pb = a.patient.patient_id, b.patient.patient_id
    visits = VisitService(led, "op.wang")
    out = {"A": pa, "B": pb}
    if history:
        clinic = ClinicService(led, DOCTOR)
        first = await visits.register(dept="IM", channel="cashier", patient_id=pa)
        await clinic.start(first.visit.visit_id)
        await clinic.diagnose(first.visit.visit_id, "急性上呼吸道感染", "J06.9")
        await clinic.record_allergy(pa, "青霉素类", "皮疹")
        await clinic.set_insurance(pa, "employee")
        await led.append(Op("stock.received", {"pharmacy": PHARMACY, "code": "D-IBU",
                                               "qty": 50}), "store")
        lines = await clinic.template_lines("TPL-FEVER")
        sent = await clinic.send_order(first.visit.visit_id, lines,
                                       accept_warnings={"order.partly_covered"})
        await clinic.send_order(first.visit.visit_id, [await clinic.line("D-IBU", 1, 300, 2, 3)])
        await clinic.cancel_order(sent.orders[0].order_id, "已在外院检查")
        await clinic.finish(first.visit.visit_id)
    out["visit_A"] = (await visits.register(dept="IM", channel="cashier", patient_id=pa,
                                            doctor_id=DOCTOR)).visit.visit_id
    out["visit_B"] = (await visits.register(dept="IM", channel="cashier",
                                            patient_id=pb)).visit.visit_id
    return out


Started = Callable[..., Awaitable[tuple[EdgeConfig, Ledger, dict[str, str]]]]


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[Started]:
    """A doctor's counter: its config, its open ledger (closed after the test), the ids."""
    opened: list[Ledger] = []

    async def start(language: str = "en", **kw: Any
                    ) -> tuple[EdgeConfig, Ledger, dict[str, str]]:
        cfg = doctor_config(tmp_path, language)
        led = await open_ledger(cfg)
        opened.append(led)
        return cfg, led, await seed(led, **kw)
    yield start
    for led in opened:
        await led.close()


def screen(pilot: Pilot[Any]) -> Any:
    return pilot.app.screen


def text_of(pilot: Pilot[Any], selector: str) -> str:
    return str(screen(pilot).query_one(selector, Static).render())


async def call_next(pilot: Pilot[Any]) -> PatientScreen:
    """F2 calls the next patient; Enter (they came in) starts the consultation."""
    await pilot.press("f2")
    await settle_down(pilot)
    assert isinstance(screen(pilot), DoctorDesk), screen(pilot)
    await pilot.press("enter")
    await settle_down(pilot)
    assert isinstance(screen(pilot), PatientScreen), screen(pilot)
    return screen(pilot)


async def add_item(pilot: Pilot[Any], query: str, qty: str = "1",
                   dose: tuple[str, str, str] | None = None) -> None:
    await fill(pilot, "#search", query)
    await settle_down(pilot)
    await fill(pilot, "#qty", qty)
    if dose is not None:
        await fill(pilot, "#dose", dose[0])
        await fill(pilot, "#per_day", dose[1])
        await fill(pilot, "#days", dose[2])
    await pilot.press("enter")
    await settle_down(pilot)


async def orders(led: Ledger, pid: str) -> list[Order]:
    return [o for o in await led.find(Order, "patient_id", pid) if o.placed_at]


async def balance(led: Ledger, pid: str) -> int:
    return (await led.get(Account, pid)).balance  # type: ignore[no-any-return]


# -- the queue ------------------------------------------------------------------------------
async def test_the_queue_and_call_next_start_the_consultation(started: Started) -> None:
    cfg, led, ids = await started()
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, DOCTOR)
        desk = screen(pilot)
        assert isinstance(desk, DoctorDesk)
        table = desk.query_one("#queue", DataTable)
        assert table.row_count == 2
        assert [table.get_row_at(i)[1].plain for i in range(2)] == ["张三", "李梅"]
        before = await balance(led, ids["A"])
        await pilot.press("f2")  # called: the waiting room shows it, no fee yet
        await settle_down(pilot)
        v = await led.get(Visit, ids["visit_A"])
        assert (v.status, v.consult_fee) == ("called", 0) and await balance(led, ids["A"]) == before
        assert "press Enter or tap their card" in desk.message_text
        await pilot.press("f6")  # not there yet: skipped …
        await settle_down(pilot)
        assert (await led.get(Visit, ids["visit_A"])).status == "skipped"
        await pilot.press("f4")  # … and called again
        await settle_down(pilot)
        assert (await led.get(Visit, ids["visit_A"])).status == "called"
        await pilot.press("enter")  # in they come
        await settle_down(pilot)
        patient = screen(pilot)
        assert isinstance(patient, PatientScreen)
        assert (patient.patient_id, patient.visit_id) == (ids["A"], ids["visit_A"])
        v = await led.get(Visit, ids["visit_A"])
        assert (v.status, v.room, v.consult_fee, v.calls) == ("consulting", "3", 1000, 2)
        assert await balance(led, ids["A"]) == before - 1000
        header = text_of(pilot, "#header")
        assert "张三" in header and "in consultation" in header
        assert "¥485.00" in header  # 500.00 − 5.00 registration − 10.00 consultation
        await pilot.press("escape")
        await settle_down(pilot)
        assert screen(pilot) is desk
        assert desk.query_one("#queue", DataTable).get_row_at(0)[2].plain == "in consultation"
        await pilot.press("down")
        await pilot.press("f3")  # B did not come
        await settle_down(pilot)
        assert (await led.get(Visit, ids["visit_B"])).status == "no_show"
        await pilot.press("f2")
        await settle_down(pilot)
        assert desk.message_text == "Nobody is waiting"


async def test_a_tap_opens_the_patient_and_their_visit_of_today(started: Started) -> None:
    cfg, led, ids = await started()
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, DOCTOR)
        await fill(pilot, "#card_no", CARD_B)
        await pilot.press("enter")
        await settle_down(pilot)
        p = screen(pilot)
        assert isinstance(p, PatientScreen)
        assert (p.patient_id, p.visit_id) == (ids["B"], ids["visit_B"])
        assert "李梅" in text_of(pilot, "#header")
        v = await led.get(Visit, ids["visit_B"])  # the tap started the consultation
        assert (v.status, v.consult_fee, v.doctor_seen) == ("consulting", 1000, DOCTOR)
        assert "in consultation" in text_of(pilot, "#header")
        # the next card, tapped while a patient is open, opens that patient instead
        pilot.app.home.post_message(CardTapped(CARD_A, "manual"))
        await settle_down(pilot)
        p = screen(pilot)
        assert isinstance(p, PatientScreen) and p.patient_id == ids["A"]
        assert len([s for s in pilot.app.screen_stack if isinstance(s, PatientScreen)]) == 1
        pilot.app.home.post_message(CardTapped("8699999999", "manual"))
        await settle_down(pilot)
        await pilot.press("escape")
        await settle_down(pilot)
        assert "8699999999" in pilot.app.home.message_text


async def test_diagnosis_allergy_and_insurance(started: Started) -> None:
    cfg, led, ids = await started()
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, DOCTOR)
        await call_next(pilot)
        assert text_of(pilot, "#allergies") == "No allergies recorded"
        await pilot.press("f2")
        await settle_down(pilot)
        assert isinstance(screen(pilot), AskScreen)
        await fill(pilot, "#diagnosis", "急性咽炎")
        await fill(pilot, "#icd10", "J2")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert isinstance(screen(pilot), AskScreen), "a bad code keeps the form open"
        assert "ICD-10 code" in text_of(pilot, "#ask-error")
        await fill(pilot, "#icd10", "j02.9")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert isinstance(screen(pilot), PatientScreen)
        assert "J02.9 急性咽炎" in text_of(pilot, "#visits")
        assert text_of(pilot, "#message") == "Diagnosis recorded: 急性咽炎"
        await pilot.press("f3")
        await settle_down(pilot)
        await fill(pilot, "#substance", "青霉素类")
        await fill(pilot, "#reaction", "皮疹")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert text_of(pilot, "#allergies") == "⚠ Allergies: 青霉素类 (皮疹)"
        await pilot.press("f4")
        await settle_down(pilot)
        await pilot.press("3")  # resident
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert "Insurance resident" in text_of(pilot, "#header")
        profile = await led.get(Profile, ids["A"])
        assert (profile.insurance, profile.active_allergies()) == ("resident",
                                                                   [("青霉素类", "皮疹")])
        await pilot.press("f1")
        await settle_down(pilot)
        help_screen = screen(pilot)
        assert isinstance(help_screen, KeyHelpScreen)
        assert any("F6" in line and "Prescription" in line for line in help_screen.lines)
        assert any("F7" in line and "Cancel order" in line for line in help_screen.lines)


# -- orders and their checks ------------------------------------------------------------------
async def test_an_allergy_block_prevents_sending(started: Started) -> None:
    cfg, led, ids = await started()
    await ClinicService(led, DOCTOR).record_allergy(ids["A"], "青霉素类")
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, DOCTOR)
        await call_next(pilot)
        await pilot.press("f6")
        await settle_down(pilot)
        form = screen(pilot)
        assert isinstance(form, OrderScreen)
        await add_item(pilot, "amx", "1", ("500", "3", "5"))
        assert [ln.code for ln in form.lines] == ["D-AMX"]
        checks = form.checks_text
        assert "BLOCKED:" in checks and "allergic to 青霉素类" in checks
        await pilot.press("ctrl+y")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert screen(pilot) is form, "a block cannot be sent"
        assert form.message_text.startswith("Red items block this order")
        assert await orders(led, ids["A"]) == []
        await pilot.press("ctrl+l")  # 中文: the form, its checks and keys follow
        await settle_down(pilot)
        assert "不能开：" in form.checks_text and "青霉素类 过敏史" in form.checks_text
        assert str(form.query_one("#order-title", Static).render()).startswith("处方")
        await pilot.press("ctrl+l")
        await settle_down(pilot)
        # take the drug out, prescribe another: the block is gone
        form.query_one("#lines", DataTable).focus()
        await pilot.press("delete")
        await settle_down(pilot)
        assert form.lines == [] and form.checks_text == ""


async def test_dose_and_deposit_blocks_are_shown_with_their_figures(started: Started) -> None:
    cfg, led, ids = await started(deposit=2_000)  # 5.00 left after both fees
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, DOCTOR)
        await call_next(pilot)
        await pilot.press("f6")
        await settle_down(pilot)
        form = screen(pilot)
        await add_item(pilot, "D-IBU", "1", ("800", "2", "3"))
        checks = form.checks_text
        assert "800mg a time is above the maximum 600mg" in checks
        assert "1600mg a day is above the maximum 1200mg" in checks
        assert "¥7.60 short" in checks  # 12.60 against the 5.00 left
        await pilot.press("escape")
        await settle_down(pilot)
        assert isinstance(screen(pilot), PatientScreen)
        assert await orders(led, ids["A"]) == []


async def test_a_warning_needs_the_confirm_key_before_sending(started: Started) -> None:
    cfg, led, ids = await started()
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, DOCTOR)
        await call_next(pilot)
        before = await balance(led, ids["A"])
        await pilot.press("f6")
        await settle_down(pilot)
        form = screen(pilot)
        await add_item(pilot, "blf", "2", ("300", "2", "3"))
        assert "Warning:" in form.checks_text
        assert "stock at PHA-OP is not known at this counter" in form.checks_text
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert screen(pilot) is form, "not sent before the warning is confirmed"
        assert "Ctrl+Y confirms" in form.message_text
        assert await orders(led, ids["A"]) == []
        await pilot.press("ctrl+y")
        await settle_down(pilot)
        assert "confirmed" in form.checks_text
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        p = screen(pilot)
        assert isinstance(p, PatientScreen)
        [o] = await orders(led, ids["A"])
        assert (o.type, o.exec_dept, o.total, o.charged) == ("drug", PHARMACY, 2520, 2520)
        assert await balance(led, ids["A"]) == before - 2520
        assert text_of(pilot, "#message").startswith(f"1 order(s) sent: {o.order_id}")
        assert p.query_one("#orders", DataTable).row_count == 1


async def test_a_requisition_from_a_template_then_cancelled_with_the_refund(
        started: Started) -> None:
    cfg, led, ids = await started()
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, DOCTOR)
        await call_next(pilot)
        before = await balance(led, ids["A"])
        await pilot.press("f5")
        await settle_down(pilot)
        form = screen(pilot)
        await pilot.press("ctrl+t")
        await settle_down(pilot)
        await pilot.press("enter")  # the first (only) requisition template
        await settle_down(pilot)
        assert [ln.code for ln in form.lines] == ["LAB-CBC", "LAB-CRP"]
        await add_item(pilot, "xbzwp")  # 胸部正位片: the exam room, a second order
        assert "Checks passed" in form.checks_text
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert isinstance(screen(pilot), PatientScreen)
        sent = await orders(led, ids["A"])
        assert sorted((o.exec_dept, o.total) for o in sent) == [("LAB", 6500), ("RAD", 8000)]
        assert await balance(led, ids["A"]) == before - 14_500
        table = screen(pilot).query_one("#orders", DataTable)
        lab_row = next(i for i in range(table.row_count)
                       if table.get_row_at(i)[1] == "lab")
        table.move_cursor(row=lab_row)
        await pilot.press("f7")
        await settle_down(pilot)
        assert "returns ¥65.00 to the deposit" in text_of(pilot, "#ask-hint")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert "give the reason" in text_of(pilot, "#ask-error").lower()
        await fill(pilot, "#reason", "patient declined")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert isinstance(screen(pilot), PatientScreen)
        assert await balance(led, ids["A"]) == before - 8000
        assert "¥65.00 refunded" in text_of(pilot, "#message")
        table.move_cursor(row=lab_row)
        assert table.get_row_at(lab_row)[4].plain.startswith("cancelled")
        await pilot.press("f7")  # once only
        await settle_down(pilot)
        assert isinstance(screen(pilot), PatientScreen)
        assert "cannot be cancelled" in text_of(pilot, "#message")


async def test_finish_the_visit(started: Started) -> None:
    cfg, led, ids = await started(language="zh")
    async with make_app(cfg, led).run_test(size=(80, 25)) as pilot:
        await log_in(pilot, DOCTOR)
        await call_next(pilot)
        await pilot.press("f8")
        await settle_down(pilot)
        assert (await led.get(Visit, ids["visit_A"])).status == "done"
        assert "就诊结束" in text_of(pilot, "#message")
        await pilot.press("f6")  # no open visit: no order
        await settle_down(pilot)
        assert isinstance(screen(pilot), PatientScreen)
        assert "没有进行中的就诊" in text_of(pilot, "#message")


# -- snapshots --------------------------------------------------------------------------------
SIZES = [pytest.param("zh", (80, 25), id="zh-80x25"),
         pytest.param("en", (160, 48), id="en-160x48")]


@pytest.mark.parametrize(("language", "size"), SIZES)
def test_patient_view_snapshot(tmp_path: Path, snap_compare: Any, language: str,
                               size: tuple[int, int]) -> None:
    cfg = doctor_config(tmp_path, language)
    write_key(cfg.key_file, node_key(cfg.node_id))

    async def seeded() -> None:
        led = await open_ledger(cfg)
        await seed(led, history=True)
        await led.close()
    asyncio.run(seeded())

    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot, DOCTOR)
        await pilot.press("f2")  # call the next patient, who comes in (Enter)
        await settle_down(pilot)
        await pilot.press("enter")
        await settle_down(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await laid_out(pilot)
    app = make_app(cfg, ledger_clock=FakeClock(NOW_MS))
    assert snap_compare(app, terminal_size=size, run_before=run_before)
