"""A supervisor's approval asked in place at the staff desks (issue 11), through the real
TUI on real ledgers (Textual's pilot): offline past the floor limit, the lab's check-in,
the pharmacy's dispensing and the triage desk's registration are refused for want of a
supervisor; the supervisor types their id and PIN where the operator is, the step is
done, and the signed event names them.  A wrong PIN, the operator approving themselves
and a staff member who is not a supervisor are refused on the PIN field, nothing
written."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static

from edge_node import staff
from edge_node.clinic import WARNINGS, ClinicService
from edge_node.config import EdgeConfig, write_key
from edge_node.ledger import Ledger
from edge_node.pharmacy import PharmacyService
from edge_node.tui.screens.approval import ApprovalForm
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.lab import LabDesk, LabelScreen
from edge_node.tui.screens.pharmacy import PharmacyDesk
from edge_node.tui.screens.triage import TriageScreen
from edge_node.tui.screens.visit import VisitForm
from edge_node.visits import VisitService
from protocol.event import Event
from protocol.order import Order
from protocol.visit import Visit
from tests.conftest import node_key
from tests.support.clinic import LAB, PHARMACY, give_catalogue
from tests.test_offline_limits import give_limits
from tests.tui_harness import (
    NOW_MS,
    fill,
    form_error,
    log_in,
    make_app,
    open_ledger,
    seed_patient,
    seed_staff,
    settle_down,
    tap,
)

CARD = "8600000001"
TTY = (80, 25)


def config(tmp_path: Path, node: str, role: str, department: str,
           language: str = "en") -> EdgeConfig:
    cfg = EdgeConfig(node_id=node, role=role, department=department,
                     db=tmp_path / f"{node}.sqlite3", key_file=tmp_path / "node.key",
                     language=language, printer=str(tmp_path / "labels.bin"))
    write_key(cfg.key_file, node_key(node))
    return cfg


async def seeded(cfg: EdgeConfig) -> tuple[Ledger, str]:
    """Staff (wang the operator, li a supervisor, zhao a cashier), 张三 with ¥200.00, the
    catalogue charging at execution."""
    led = await open_ledger(cfg)
    await seed_staff(led)
    await staff.add_staff(led, "zhao", "赵敏", "2468", hasher=staff.cheap_hasher(),
                          now_ms=NOW_MS)
    pid = await seed_patient(led, CARD, deposit=20_000)
    await give_catalogue(led, charge_at="execution")
    return led, pid


async def until(pilot: Pilot[Any], what: str, cond: Callable[[], bool],
                timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await settle_down(pilot)
        await asyncio.sleep(0.05)


def text(pilot: Pilot[Any], selector: str) -> str:
    return str(pilot.app.screen.query_one(selector, Static).render())


async def approve(pilot: Pilot[Any], approver: str, pin: str) -> None:
    """The supervisor's id and PIN typed in the form on screen, Ctrl+S, and yes at the
    question (the dry run does not check the PIN: doing it does)."""
    await fill(pilot, "#approver", approver)
    await fill(pilot, "#approver_pin", pin)
    await pilot.press("ctrl+s")
    await until(pilot, "the question", lambda: isinstance(pilot.app.screen, ConfirmScreen))
    await pilot.press("y")
    await until(pilot, "the question answered",
                lambda: not isinstance(pilot.app.screen, ConfirmScreen))


async def refused_on_the_pin(pilot: Pilot[Any], approver: str, pin: str, says: str) -> None:
    form = pilot.app.screen
    await approve(pilot, approver, pin)
    assert pilot.app.screen is form, "refused: the form stays open"
    # the PIN is checked by a worker after the question: the refusal comes when it ends
    await until(pilot, "the refusal", lambda: bool(form_error(pilot)))
    assert says in form_error(pilot)
    assert form.focused is not None and form.focused.id == "approver_pin"


def charged_by(events: list[Event], kind: str) -> Event:
    (ev,) = [e for e in events if e.kind == kind]
    return ev


async def send(led: Ledger, pid: str, *lines: Any) -> str:
    """A visit and one order sent by the doctor (online: this is not the point here)."""
    visit = await VisitService(led, "seed").register(dept="IM", channel="cashier",
                                                     patient_id=pid, again=True)
    clinic = ClinicService(led, "dr.qian")
    built = [await clinic.line(*ln) for ln in lines]
    r = await clinic.send_order(visit.visit.visit_id, built, accept_warnings=WARNINGS)
    return str(r.orders[0].order_id)


async def test_lab_check_in_past_the_offline_limit_is_approved_at_the_window(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, "lab-01", "lab", LAB)
    led, pid = await seeded(cfg)
    order = await send(led, pid, ("LAB-GLU",))
    await give_limits(led, floor=1, cap=0)  # offline (never synced): every charge past it
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        desk = pilot.app.home  # type: ignore[attr-defined]
        assert isinstance(desk, LabDesk)
        await tap(pilot, CARD)
        await pilot.press("enter")  # check the order in: ¥8.00 now, past the floor
        await until(pilot, "the approval", lambda: isinstance(pilot.app.screen, ApprovalForm))
        assert "supervisor" in desk.message_text
        assert f"Check in {order}" in text(pilot, "#approval-about")
        assert "above ¥0.01 (¥8.00 here)" in text(pilot, "#approval-why")
        assert pilot.app.screen.focused is not None
        assert pilot.app.screen.focused.id == "approver"
        # the operator cannot approve their own check-in
        await refused_on_the_pin(pilot, "wang", "1234", "another person must approve")
        assert (await led.get(Order, order)).stage == "placed"
        await approve(pilot, "li", "5678")
        await until(pilot, "the label", lambda: isinstance(pilot.app.screen, LabelScreen))
        await pilot.press("enter")
        await until(pilot, "back at the desk", lambda: pilot.app.screen is desk)
        assert "charged ¥8.00" in desk.message_text
    o = await led.get(Order, order)
    assert o.stage == "checked_in"
    ev = charged_by(await led.history(pid), "order.checked_in")
    assert ev.body["supervisor"] == "li" and ev.operator == "wang"
    assert ev.body["charged"] == 800 and ev.body["offline_from"] >= 1
    await led.close()


async def test_pharmacy_dispensing_past_the_offline_limit_is_approved_at_the_desk(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, "pharmacy-01", "pharmacy", PHARMACY, language="zh")
    led, pid = await seeded(cfg)
    await PharmacyService(led, "seed", pharmacy=PHARMACY).receive("D-AMX", 5)
    order = await send(led, pid, ("D-AMX", 2, 250, 2, 3))
    await give_limits(led, floor=1, cap=0)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        desk = pilot.app.home  # type: ignore[attr-defined]
        assert isinstance(desk, PharmacyDesk)
        await tap(pilot, CARD)
        await pilot.press("enter")  # dispense: ¥37.00 now, past the floor
        await until(pilot, "the approval", lambda: isinstance(pilot.app.screen, ApprovalForm))
        assert "主管" in desk.message_text
        assert f"发药 {order}：阿莫西林胶囊×2" in text(pilot, "#approval-about")
        assert "脱机时单笔收费超过 ¥0.01（本笔 ¥37.00）" in text(pilot, "#approval-why")
        # a wrong PIN: refused, nothing given
        await refused_on_the_pin(pilot, "li", "0000", "主管工号或密码错误")
        assert (await led.get(Order, order)).stage == "placed"
        await fill(pilot, "#approver_pin", "5678")
        await pilot.press("ctrl+s")
        await until(pilot, "the question", lambda: isinstance(pilot.app.screen, ConfirmScreen))
        assert "阿莫西林胶囊×2" in text(pilot, "#question")
        await pilot.press("y")
        await until(pilot, "back at the desk", lambda: pilot.app.screen is desk)
        await until(pilot, "dispensed", lambda: "¥37.00" in desk.message_text)
    assert (await led.get(Order, order)).stage == "dispensed"
    ev = charged_by(await led.history(pid), "order.dispensed")
    assert ev.body["supervisor"] == "li" and ev.operator == "wang"
    assert ev.body["amount"] == 3_700 and ev.body["offline_from"] >= 1
    await led.close()


async def test_triage_registration_past_the_offline_limit_asks_in_the_form(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, "triage-01", "triage", "IM")
    led, pid = await seeded(cfg)
    await give_limits(led, floor=1, cap=0)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        desk = pilot.app.home  # type: ignore[attr-defined]
        assert isinstance(desk, TriageScreen)
        await tap(pilot, CARD)
        await pilot.press("f2")
        await until(pilot, "the visit form", lambda: isinstance(pilot.app.screen, VisitForm))
        form = pilot.app.screen
        assert not form.query_one("#approver-row").display  # not asked before
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert pilot.app.screen is form and "above ¥0.01 (¥5.00 here)" in form_error(pilot)
        assert form.query_one("#approver-row").display
        assert form.focused is not None and form.focused.id == "approver"
        # someone who is not a supervisor cannot approve
        await refused_on_the_pin(pilot, "zhao", "2468", "zhao is not a supervisor")
        await approve(pilot, "li", "5678")
        await until(pilot, "back at the desk", lambda: pilot.app.screen is desk)
        assert "queue number" in desk.message_text and "¥195.00" in desk.message_text
    ev = charged_by(await led.history(pid), "visit.registered")
    assert ev.body["supervisor"] == "li" and ev.operator == "wang"
    assert ev.body["fee"] == 500 and ev.body["offline_from"] >= 1
    await led.close()


async def test_doctor_consultation_fee_and_an_order_past_the_offline_limit(
        tmp_path: Path) -> None:
    """Enter on the called visit starts it and charges the consultation fee: past the
    floor, the supervisor approves it; an order charged when sent is blocked for want of
    a supervisor, and Ctrl+S asks for one."""
    from edge_node.tui.screens.doctor import DoctorDesk, PatientScreen
    from edge_node.tui.screens.order import OrderScreen
    from tests.test_tui_doctor import DOCTOR, add_item, doctor_config, seed
    from tests.test_tui_doctor import open_ledger as doctor_ledger

    cfg = doctor_config(tmp_path)
    led = await doctor_ledger(cfg)
    ids = await seed(led)
    await staff.add_staff(led, "li", "李强", "5678", role="supervisor",
                          hasher=staff.cheap_hasher(), now_ms=NOW_MS)
    await give_limits(led, floor=1, cap=0)
    pid = ids["A"]
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, DOCTOR)
        desk = pilot.app.home  # type: ignore[attr-defined]
        assert isinstance(desk, DoctorDesk)
        await pilot.press("f2")
        await settle_down(pilot)
        await pilot.press("enter")  # in they come: the fee, past the floor
        await until(pilot, "the approval", lambda: isinstance(pilot.app.screen, ApprovalForm))
        assert "consultation fee" in text(pilot, "#approval-about")
        assert "a charge above ¥0.01" in text(pilot, "#approval-why")
        await refused_on_the_pin(pilot, "li", "0000", "PIN is wrong")
        assert (await led.get(Visit, ids["visit_A"])).status != "consulting"
        await approve(pilot, "li", "5678")
        await until(pilot, "the patient", lambda: isinstance(pilot.app.screen, PatientScreen))
        assert (await led.get(Visit, ids["visit_A"])).status == "consulting"
        # an order charged when sent: blocked until a supervisor approves
        await pilot.press("f5")
        await settle_down(pilot)
        form = pilot.app.screen
        assert isinstance(form, OrderScreen)
        await add_item(pilot, "xcg")
        assert "a charge above ¥0.01" in form.checks_text
        assert "supervisor" in form.message_text
        await pilot.press("ctrl+s")
        await until(pilot, "the approval", lambda: isinstance(pilot.app.screen, ApprovalForm))
        await fill(pilot, "#approver", "li")
        await fill(pilot, "#approver_pin", "5678")
        await pilot.press("ctrl+s")
        await until(pilot, "the question", lambda: isinstance(pilot.app.screen, ConfirmScreen))
        assert "Send 1 order(s) for 张三, charging ¥25.00" in text(pilot, "#question")
        await pilot.press("y")
        await until(pilot, "the patient", lambda: isinstance(pilot.app.screen, PatientScreen))
    history = await led.history(pid)
    fee = charged_by(history, "visit.fee_charged")
    sent = charged_by(history, "order.placed")
    for ev in (fee, sent):
        assert ev.body["supervisor"] == "li" and ev.operator == DOCTOR
        assert ev.body["offline_from"] >= 1
    assert sent.body["charged"] == 2_500
    await led.close()


async def test_doctor_card_tap_past_the_offline_limit_asks_and_shows_the_patient_anyway(
        tmp_path: Path) -> None:
    """A tap starts the consultation: past the floor the supervisor is asked; without an
    approval (Esc) the patient is shown all the same, not started; a tap again and an
    approval start it, the event naming the supervisor."""
    from edge_node.tui.messages import CardTapped
    from edge_node.tui.screens.doctor import PatientScreen
    from tests.test_tui_doctor import CARD_A, DOCTOR, doctor_config, seed
    from tests.test_tui_doctor import open_ledger as doctor_ledger

    cfg = doctor_config(tmp_path)
    led = await doctor_ledger(cfg)
    ids = await seed(led)
    await staff.add_staff(led, "li", "李强", "5678", role="supervisor",
                          hasher=staff.cheap_hasher(), now_ms=NOW_MS)
    await give_limits(led, floor=1, cap=0)
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, DOCTOR)
        pilot.app.home.post_message(CardTapped(CARD_A, "manual"))  # type: ignore[attr-defined]
        await until(pilot, "the approval", lambda: isinstance(pilot.app.screen, ApprovalForm))
        assert "consultation fee" in text(pilot, "#approval-about")
        await pilot.press("escape")  # nobody approves: the patient, not started
        await until(pilot, "the patient", lambda: isinstance(pilot.app.screen, PatientScreen))
        assert (await led.get(Visit, ids["visit_A"])).status != "consulting"
        await pilot.press("escape")
        await settle_down(pilot)
        pilot.app.home.post_message(CardTapped(CARD_A, "manual"))  # type: ignore[attr-defined]
        await until(pilot, "the approval", lambda: isinstance(pilot.app.screen, ApprovalForm))
        await approve(pilot, "li", "5678")
        await until(pilot, "the patient", lambda: isinstance(pilot.app.screen, PatientScreen))
        assert (await led.get(Visit, ids["visit_A"])).status == "consulting"
    fee = charged_by(await led.history(ids["A"]), "visit.fee_charged")
    assert fee.body["supervisor"] == "li" and fee.operator == DOCTOR
    await led.close()
