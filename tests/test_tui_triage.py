"""The triage desk, the kiosk, the cashier's visit key and the waiting-room display, through
the real TUI on real ledgers (Textual's pilot); snapshots of the triage queue at 80×25
(zh) and 160×48 (en)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from edge_node.config import EdgeConfig, write_key
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.tui.display import DisplayApp
from edge_node.tui.messages import CardTapped
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.home import HomeScreen
from edge_node.tui.screens.keyhelp import KeyHelpScreen
from edge_node.tui.screens.kiosk import KioskScreen
from edge_node.tui.screens.picker import PickScreen
from edge_node.tui.screens.triage import TriageScreen
from edge_node.tui.screens.visit import VisitForm
from edge_node.tui.widgets.queue import QueueTable
from edge_node.visits import VisitService
from tests.conftest import ID_FEMALE, node_key
from tests.support.clinic import give_catalogue
from tests.tui_harness import (
    NOW_MS,
    IdleClock,
    form_error,
    laid_out,
    log_in,
    make_app,
    open_ledger,
    seed_patient,
    seed_staff,
    settle_down,
    tap,
)

CARD = "8600000001"
POOR = "8600000002"  # a patient with 10.00 on deposit
TTY = (80, 25)


def config(tmp_path: Path, role: str = "triage", node: str = "triage-01",
           language: str = "en", **kw: Any) -> EdgeConfig:
    cfg = EdgeConfig(node_id=node, role=role, db=tmp_path / f"{node}.sqlite3",
                     key_file=tmp_path / "node.key", language=language, **kw)
    write_key(cfg.key_file, node_key(node))
    return cfg


async def seeded(cfg: EdgeConfig, catalogue: bool = True) -> Ledger:
    led = await open_ledger(cfg)
    await seed_staff(led)
    await seed_patient(led, CARD, deposit=10_000)
    await seed_patient(led, POOR, deposit=1_000, national_id=ID_FEMALE, name="李梅")
    if catalogue:
        await give_catalogue(led)
    return led


async def until(pilot: Pilot[Any], what: str, cond: Callable[[], bool],
                timeout: float = 60.0) -> None:
    """Wait (bounded) for ``cond``: the screen's own interval work included."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await settle_down(pilot)
        await asyncio.sleep(0.05)


def desk(pilot: Pilot[Any]) -> TriageScreen:
    screen = pilot.app.home  # type: ignore[attr-defined]
    assert isinstance(screen, TriageScreen)
    return screen


def rows(pilot: Pilot[Any]) -> list[str]:
    return desk(pilot).query_one(QueueTable).rows_text()


async def confirm(pilot: Pilot[Any]) -> None:
    """Ctrl+S in the form, then yes at the question (after the dry run's checks)."""
    await pilot.press("ctrl+s")
    await until(pilot, "the question", lambda: isinstance(pilot.app.screen, ConfirmScreen))
    await pilot.press("y")
    await until(pilot, "the form closed", lambda: not isinstance(pilot.app.screen,
                                                                 (ConfirmScreen, VisitForm)))


async def open_form(pilot: Pilot[Any], key: str = "f2") -> VisitForm:
    await pilot.press(key)
    await until(pilot, "the visit form", lambda: isinstance(pilot.app.screen, VisitForm))
    form = pilot.app.screen
    assert isinstance(form, VisitForm)
    return form


def fee_text(pilot: Pilot[Any]) -> str:
    return str(pilot.app.screen.query_one("#fee", Static).render())


# -- the triage desk --------------------------------------------------------------------------
async def test_tap_register_and_the_number_in_the_queue(tmp_path: Path) -> None:
    cfg = config(tmp_path, department="IM", room="诊室3")
    led = await seeded(cfg)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        assert "内科 (IM)" in str(desk(pilot).query_one("#dept-name", Static).render())
        await tap(pilot, CARD)
        assert desk(pilot).view is not None and "张三" in str(
            desk(pilot).panel.query_one("#who", Static).render())
        form = await open_form(pilot)
        assert form.query_one("#dept", Select).value == "IM"
        assert "普通挂号 ¥5.00" in fee_text(pilot) and "¥100.00" in fee_text(pilot)
        form.query_one("#doctor", Select).value = "dr.zhao"  # an expert: his own fee
        await settle_down(pilot)
        assert "专家挂号 ¥15.00" in fee_text(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, "the question", lambda: isinstance(pilot.app.screen, ConfirmScreen))
        question = str(pilot.app.screen.query_one("#question", Static).render())
        assert "赵敏" in question and "¥15.00" in question and "¥85.00" in question
        await pilot.press("y")
        await until(pilot, "back at the desk", lambda: pilot.app.screen is desk(pilot))
        assert "queue number T01-001" in desk(pilot).message_text
        assert "¥85.00" in desk(pilot).message_text
        await until(pilot, "the visit in the queue", lambda: len(rows(pilot)) == 1)
        assert rows(pilot)[0].split("  ")[:4] == ["T01-001", "张三", "赵敏", "waiting"]
        assert "today 1" in str(desk(pilot).query_one("#counts", Static).render())
    await led.close()


async def test_refusals_are_said_at_the_desk(tmp_path: Path) -> None:
    cfg = config(tmp_path, department="IM")
    led = await seeded(cfg)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        # an unknown card
        await tap(pilot, "8600009999")
        assert "Card refused" in desk(pilot).message_text and desk(pilot).view is None
        # the deposit short: by how much
        await tap(pilot, POOR)
        form = await open_form(pilot)
        form.query_one("#doctor", Select).value = "dr.zhao"
        await settle_down(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, "the refusal", lambda: bool(form_error(pilot)))
        assert "¥5.00 short" in form_error(pilot) and isinstance(pilot.app.screen, VisitForm)
        await pilot.press("escape")
        await settle_down(pilot)
        # a lost card: the panel says so, and the registration is refused
        await CounterService(led, "seed").report_lost(CARD, "id_card")
        await tap(pilot, CARD)
        assert "lost" in str(desk(pilot).panel.query_one("#flags", Static).render()).lower()
        await open_form(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, "the refusal", lambda: bool(form_error(pilot)))
        assert "reported lost" in form_error(pilot)
        await pilot.press("escape")
        await settle_down(pilot)
        assert await VisitService(led).queue("IM") == []
    await led.close()


async def test_no_catalogue_yet(tmp_path: Path) -> None:
    cfg = config(tmp_path, department="IM")
    led = await seeded(cfg, catalogue=False)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f2")
        await settle_down(pilot)
        assert pilot.app.screen is desk(pilot)
        assert "holds no catalogue yet" in desk(pilot).message_text
    await led.close()


async def test_call_next_skip_recall_no_show(tmp_path: Path) -> None:
    cfg = config(tmp_path, department="IM", room="Room 3")
    led = await seeded(cfg)
    visits = VisitService(led, "seed")
    for _ in range(3):
        await visits.register(dept="IM", channel="triage", card_no=CARD, again=True)

    def status_of(label: str) -> str:
        row = next(r for r in rows(pilot) if r.startswith(label))
        return row.split("  ")[3]
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        await until(pilot, "the queue", lambda: len(rows(pilot)) == 3)
        assert [status_of(f"T01-00{i}") for i in (1, 2, 3)] == ["waiting"] * 3
        await pilot.press("f3")
        await until(pilot, "called", lambda: status_of("T01-001") == "called Room 3")
        assert "called T01-001" in desk(pilot).message_text
        assert desk(pilot).queue_table.selected.visit.label == "T01-001"  # type: ignore[union-attr]
        await pilot.press("f5")  # skip the one called
        await until(pilot, "skipped", lambda: status_of("T01-001") == "skipped")
        await pilot.press("f4")  # recall them
        await until(pilot, "recalled", lambda: status_of("T01-001") == "called Room 3")
        await pilot.press("f5")  # skip again: a waiting patient cannot be skipped…
        await until(pilot, "skipped", lambda: status_of("T01-001") == "skipped")
        table = desk(pilot).queue_table
        table.select(next(e.visit.visit_id for e in table.entries
                          if e.visit.label == "T01-003"))
        await pilot.press("f5")
        await settle_down(pilot)
        assert "T01-003 is waiting" in desk(pilot).message_text  # …refused, said plainly
        assert status_of("T01-003") == "waiting"
        await pilot.press("f6")  # …but marked no-show
        await until(pilot, "no-show", lambda: status_of("T01-003") == "no-show")
        counts = str(desk(pilot).query_one("#counts", Static).render())
        assert "waiting 1" in counts and "skipped 1" in counts and "no-show 1" in counts
    await led.close()


async def test_the_queue_follows_the_ledger(tmp_path: Path) -> None:
    """A visit another counter registered (arriving as sync writes it into this ledger)
    shows without a key pressed."""
    cfg = config(tmp_path, department="IM")
    led = await seeded(cfg)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        assert rows(pilot) == []
        other = VisitService(led, "nurse.zhou", queue_tag="T02")
        await other.register(dept="IM", channel="triage", card_no=CARD, again=True)
        await until(pilot, "the other counter's visit", lambda: len(rows(pilot)) == 1)
        assert rows(pilot)[0].startswith("T02-001")
    await led.close()


async def test_help_lists_the_desk_keys_and_a_department_is_picked(tmp_path: Path) -> None:
    cfg = config(tmp_path)  # no department configured: the nurse picks one
    led = await seeded(cfg)
    await VisitService(led, "seed").register(dept="SURG", channel="triage", card_no=CARD,
                                             again=True)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        assert "F7" in str(desk(pilot).query_one("#dept-name", Static).render())
        await pilot.press("f1")
        await settle_down(pilot)
        helpscreen = pilot.app.screen
        assert isinstance(helpscreen, KeyHelpScreen)
        lines = "\n".join(helpscreen.lines)
        for key in ("F2  Visit", "F3  Call next", "F4  Recall", "F5  Skip", "F6  No-show",
                    "F7  Department"):
            assert key in lines
        await pilot.press("escape")
        await settle_down(pilot)
        await pilot.press("f3")  # no department yet
        await settle_down(pilot)
        assert "F7" in desk(pilot).message_text
        await pilot.press("f7")
        await until(pilot, "the department list", lambda: isinstance(pilot.app.screen,
                                                                     PickScreen))
        pick = pilot.app.screen
        assert isinstance(pick, PickScreen)
        assert [k for k, _ in pick.options] == ["IM", "PED", "SURG"]
        await pilot.press("down", "down", "enter")
        await until(pilot, "the surgery queue", lambda: len(rows(pilot)) == 1)
        assert "外科 (SURG)" in str(desk(pilot).query_one("#dept-name", Static).render())
    await led.close()


async def test_a_configured_department_has_no_pick_key(tmp_path: Path) -> None:
    cfg = config(tmp_path, department="IM", language="zh")
    led = await seeded(cfg)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        await pilot.press("f7")
        await settle_down(pilot)
        assert not isinstance(pilot.app.screen, PickScreen)
        assert "内科 (IM)" in str(desk(pilot).query_one("#dept-name", Static).render())
    await led.close()


# -- the cashier's key --------------------------------------------------------------------------
async def test_cashier_registers_a_visit_for_the_patient_on_screen(tmp_path: Path) -> None:
    cfg = config(tmp_path, role="cashier", node="cashier-01", department="PED",
                 printer=str(tmp_path / "printer.bin"))
    led = await seeded(cfg)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        assert isinstance(pilot.app.screen, HomeScreen)
        await pilot.press("ctrl+n")  # no patient yet
        await settle_down(pilot)
        assert "tap" in pilot.app.screen.message_text.lower()  # type: ignore[attr-defined]
        await tap(pilot, CARD)
        form = await open_form(pilot, "ctrl+n")
        assert form.channel == "cashier" and form.query_one("#dept", Select).value == "PED"
        await confirm(pilot)
        home = pilot.app.screen
        assert isinstance(home, HomeScreen)
        assert "C01-001" in home.message_text and "¥95.00" in home.message_text
        await settle_down(pilot)
        assert "C01-001" in home.last_receipt_text and "普通挂号" in home.last_receipt_text
    [e] = await VisitService(led).queue("PED")
    assert (e.visit.channel, e.visit.label, e.visit.fee) == ("cashier", "C01-001", 500)
    await led.close()


# -- the kiosk --------------------------------------------------------------------------------
def kiosk(pilot: Pilot[Any]) -> KioskScreen:
    screen = pilot.app.home  # type: ignore[attr-defined]
    assert isinstance(screen, KioskScreen)
    return screen


async def kiosk_tap(pilot: Pilot[Any], card: str) -> None:
    kiosk(pilot).post_message(CardTapped(card, "manual"))
    await until(pilot, "the tap handled", lambda: kiosk(pilot).step != "working"
                and kiosk(pilot).step != "welcome")


async def test_kiosk_registers_and_gives_a_big_number(tmp_path: Path) -> None:
    cfg = config(tmp_path, role="kiosk", node="kiosk-01", department="IM")
    led = await seeded(cfg)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        assert "Please tap your card" in kiosk(pilot).text
        await kiosk_tap(pilot, CARD)
        assert kiosk(pilot).step == "doctor"
        text = kiosk(pilot).text
        assert "张*" in text and "张三" not in text and "Balance ¥100.00" in text
        assert "1  any doctor (general)  ¥5.00" in text and "赵敏 主任医师  ¥15.00" in text
        await pilot.press("1")
        await until(pilot, "the question", lambda: kiosk(pilot).step == "confirm")
        assert "Fee ¥5.00, balance after ¥95.00" in kiosk(pilot).text
        await pilot.press("enter")
        await until(pilot, "the number", lambda: kiosk(pilot).step == "done")
        text = kiosk(pilot).text
        assert "K01-001" in text and "内科 waiting area" in text and "¥95.00" in text
        assert kiosk(pilot).query_one("#kiosk-number").display
        await pilot.press("enter")
        await settle_down(pilot)
        assert kiosk(pilot).step == "welcome" and kiosk(pilot).view is None
        await pilot.press("ctrl+q")  # a patient cannot quit the kiosk (IT stops the service)
        await settle_down(pilot)
        assert pilot.app.screen is kiosk(pilot) and pilot.app.is_running
    [e] = await VisitService(led).queue("IM")
    assert (e.visit.channel, e.visit.label) == ("kiosk", "K01-001")
    await led.close()


async def test_kiosk_refuses_in_plain_words(tmp_path: Path) -> None:
    cfg = config(tmp_path, role="kiosk", node="kiosk-01", language="zh")  # no dept: picks
    led = await seeded(cfg)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        await kiosk_tap(pilot, POOR)
        assert kiosk(pilot).step == "dept" and "1  内科" in kiosk(pilot).text
        await pilot.press("1")  # 内科
        await settle_down(pilot)
        assert kiosk(pilot).step == "doctor"
        await pilot.press("3")  # 赵敏, ¥15.00: 李梅 has ¥10.00
        await until(pilot, "the refusal", lambda: kiosk(pilot).step == "refused")
        assert "还差 ¥5.00" in kiosk(pilot).text and "收费处" in kiosk(pilot).text
        await pilot.press("escape")
        await settle_down(pilot)
        assert kiosk(pilot).step == "welcome"
        kiosk(pilot).post_message(CardTapped("8600009999", "manual"))
        await until(pilot, "the refusal", lambda: kiosk(pilot).step == "refused")
        assert "收费处" in kiosk(pilot).text
    assert await VisitService(led).queue("IM") == []
    await led.close()


async def test_kiosk_times_out_back_to_the_welcome(tmp_path: Path) -> None:
    cfg = config(tmp_path, role="kiosk", node="kiosk-01", department="IM", idle_lock_s=10)
    led = await seeded(cfg)
    idle = IdleClock()
    async with make_app(cfg, led, idle_clock=idle).run_test(size=TTY) as pilot:
        await log_in(pilot)
        await kiosk_tap(pilot, CARD)
        assert kiosk(pilot).step == "doctor"
        idle.t += 20  # past the idle lock, short of the kiosk's timeout: still here
        pilot.app.lock_if_idle()  # type: ignore[attr-defined]
        kiosk(pilot).check_idle()
        assert kiosk(pilot).step == "doctor" and not pilot.app.locked  # type: ignore[attr-defined]
        idle.t += 30
        await until(pilot, "the welcome", lambda: kiosk(pilot).step == "welcome")
        assert "张" not in kiosk(pilot).text and kiosk(pilot).view is None
        assert not pilot.app.locked  # type: ignore[attr-defined]
    await led.close()


# -- the waiting-room display ---------------------------------------------------------------------
async def test_display_shows_calls_and_next_with_masked_names(tmp_path: Path) -> None:
    cfg = config(tmp_path, department="IM", language="zh")
    led = await seeded(cfg)
    visits = VisitService(led, "seed")
    for card in (CARD, POOR, CARD):
        await visits.register(dept="IM", channel="triage", card_no=card, again=True)
    await visits.call_next("IM", "诊室3")
    app = DisplayApp(cfg, ledger=led, clock=lambda: NOW_MS)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, "the board", lambda: app.board is not None)
        text = app.text
        assert "内科 候诊" in text and "CALL T01-001 张* 诊室3" in text
        assert "T01-002 李*" in text and "T01-003 张*" in text and "候诊 2 人" in text
        assert "张三" not in text and "李梅" not in text
        await visits.call_next("IM", "诊室5")  # the doctor calls the next: the board follows
        await until(pilot, "the next call", lambda: "CALL T01-002 李* 诊室5" in app.text)
        assert app.text.index("T01-002") < app.text.index("T01-001")  # newest call first
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_code is not None or not app.is_running
    await led.close()


def test_display_command_has_help() -> None:
    from edge_node.cli import build_parser

    p = build_parser()
    args = p.parse_args(["display", "--dept", "IM"])
    assert args.dept == "IM" and args.func.__name__ == "cmd_display"


# -- snapshots of the triage queue -----------------------------------------------------------------
SIZES = [pytest.param("zh", (80, 25), id="zh-80x25"),
         pytest.param("en", (160, 48), id="en-160x48")]


@pytest.mark.parametrize(("language", "size"), SIZES)
def test_triage_queue_snapshot(tmp_path: Path, snap_compare: Any, language: str,
                               size: tuple[int, int]) -> None:
    cfg = config(tmp_path, department="IM", room="诊室3", language=language)

    async def seed() -> None:
        led = await seeded(cfg)
        visits = VisitService(led, "seed")
        for card, doctor in ((CARD, "dr.zhao"), (POOR, ""), (CARD, "dr.qian"), (POOR, "")):
            await visits.register(dept="IM", channel="triage", card_no=card, doctor_id=doctor,
                                  again=True)
        first = await visits.call_next("IM", "诊室3")
        await visits.call_next("IM", "诊室3")
        assert first is not None
        await visits.step(first.visit_id, "started")
        await led.close()
    asyncio.run(seed())

    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot)
        await tap(pilot, CARD)
        await until(pilot, "the queue", lambda: len(rows(pilot)) == 4)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await laid_out(pilot)
    app = make_app(cfg, ledger_clock=lambda: NOW_MS)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
