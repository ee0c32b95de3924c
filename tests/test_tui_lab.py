"""The lab and exam window's desk through the real TUI on real ledgers (Textual's pilot):
tap → the patient's orders → check in (number, charge, specimen label printed and
shown) → collected → executed → result; refusals in the counter's language; the
worklist follows the ledger; a snapshot at 80×25 in Chinese."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from edge_node.clinic import ClinicService
from edge_node.config import EdgeConfig, write_key
from edge_node.lab import LabService
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.tui.screens.ask import AskScreen
from edge_node.tui.screens.lab import LabDesk, LabelScreen, bars
from edge_node.visits import VisitService
from protocol.order import Order
from tests.conftest import ID_FEMALE, node_key
from tests.support.clinic import LAB, give_catalogue
from tests.tui_harness import (
    NOW_MS,
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
POOR = "8600000002"  # 李梅: ¥10.00 on deposit
TTY = (80, 25)
DOCTOR = "dr.qian"


def config(tmp_path: Path, language: str = "en", **kw: Any) -> EdgeConfig:
    kw.setdefault("printer", str(tmp_path / "labels.bin"))
    cfg = EdgeConfig(node_id="lab-01", role="lab", department=LAB,
                     db=tmp_path / "lab-01.sqlite3", key_file=tmp_path / "node.key",
                     language=language, **kw)
    write_key(cfg.key_file, node_key("lab-01"))
    return cfg


async def send(led: Ledger, pid: str, *codes: str) -> list[Order]:
    """A visit for ``pid`` and one order per code's department, as the doctor sends it."""
    visit = await VisitService(led, "op.wang").register(dept="IM", channel="cashier",
                                                        patient_id=pid, again=True)
    clinic = ClinicService(led, DOCTOR)
    lines = [await clinic.line(c) for c in codes]
    r = await clinic.send_order(visit.visit.visit_id, lines,
                                accept_warnings=("order.not_covered", "order.partly_covered"))
    return list(r.orders)


async def seeded(cfg: EdgeConfig, charge_at: str = "send") -> tuple[Ledger, str, str]:
    led = await open_ledger(cfg)
    await seed_staff(led)
    pid = await seed_patient(led, CARD, deposit=20_000)
    poor = await seed_patient(led, POOR, deposit=1_000, national_id=ID_FEMALE, name="李梅")
    await give_catalogue(led, charge_at=charge_at)
    return led, pid, poor


async def until(pilot: Pilot[Any], what: str, cond: Callable[[], bool],
                timeout: float = 60.0) -> None:
    """Wait (bounded) for ``cond``: the screen's own interval work included."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await settle_down(pilot)
        await asyncio.sleep(0.05)


def desk(pilot: Pilot[Any]) -> LabDesk:
    screen = pilot.app.home  # type: ignore[attr-defined]
    assert isinstance(screen, LabDesk)
    return screen


def rows(pilot: Pilot[Any], table: str) -> list[list[str]]:
    t = desk(pilot).query_one(f"#{table}", DataTable)
    return [[str(c) for c in t.get_row_at(i)] for i in range(t.row_count)]


def text_of(pilot: Pilot[Any], selector: str) -> str:
    return str(pilot.app.screen.query_one(selector, Static).render())


async def test_tap_check_in_collect_execute_result(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    led, pid, _ = await seeded(cfg)
    (cbc,) = await send(led, pid, "LAB-CBC")
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        d = desk(pilot)
        assert "检验科 (LAB)" in text_of(pilot, "#dept-name")
        assert rows(pilot, "worklist")[0][1:4] == ["张三", "血常规", "to check in"]
        await tap(pilot, CARD)
        assert "张三" in text_of(pilot, "#who") and "¥170.00" in text_of(pilot, "#who")
        assert rows(pilot, "orders") == [["血常规", "to check in", "", "", "¥25.00 paid",
                                          cbc.order_id]]
        assert "1 to do here" in d.message_text
        await pilot.press("enter")  # in the card field: the selected order
        await until(pilot, "the label", lambda: isinstance(pilot.app.screen, LabelScreen))
        specimen = (await led.get(Order, cbc.order_id)).specimen_id
        assert specimen.startswith("L01-")
        assert f"Specimen label {specimen}" in text_of(pilot, "#label-title")
        assert "█" in text_of(pilot, "#label-bars")
        assert "张三" in text_of(pilot, "#label-text")
        assert "Label printed" in text_of(pilot, "#label-print")
        assert specimen.encode() in (tmp_path / "labels.bin").read_bytes()
        await pilot.press("enter")
        await until(pilot, "back at the desk", lambda: pilot.app.screen is d)
        assert "number L01-001" in d.message_text and "(paid when sent)" in d.message_text
        assert f"specimen {specimen}" in d.message_text and "¥170.00" in d.message_text
        assert rows(pilot, "orders")[0][1:4] == ["checked in", "L01-001", specimen]

        await pilot.press("f5")
        await until(pilot, "collected", lambda: "specimen collected" in d.message_text)
        assert rows(pilot, "orders")[0][1] == "collected"
        await pilot.press("f6")
        await until(pilot, "executed", lambda: ": done" in d.message_text)
        assert rows(pilot, "worklist")[0][3] == "awaiting result"
        await pilot.press("f7")
        await until(pilot, "the result form", lambda: isinstance(pilot.app.screen, AskScreen))
        await pilot.press("ctrl+s")  # nothing entered: refused in the form
        await until(pilot, "the refusal", lambda: bool(text_of(pilot, "#ask-error")))
        assert "give the result or the report's number" in text_of(pilot, "#ask-error")
        pilot.app.screen.query_one("#result", Input).value = "WBC 6.1"
        await pilot.press("ctrl+s")
        await until(pilot, "the result saved", lambda: pilot.app.screen is d)
        assert "result recorded" in d.message_text
        o = await led.get(Order, cbc.order_id)
        assert (o.stage, o.result) == ("resulted", "WBC 6.1")
        await until(pilot, "the worklist", lambda: rows(pilot, "worklist")[0][3]
                    == "result ready")
        assert rows(pilot, "orders") == [], "resulted: nothing waits here any more"
    await led.close()


async def test_refusals_are_said_at_the_window(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    led, pid, poor = await seeded(cfg, charge_at="execution")
    (cxr,) = await send(led, pid, "RAD-CXR")
    (glu,) = await send(led, pid, "LAB-GLU")
    (crp,) = await send(led, poor, "LAB-CRP")  # ¥40.00 at check-in; ¥5.00 left
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        d = desk(pilot)
        await tap(pilot, "8600009999")
        assert "Card refused" in d.message_text and d.view is None
        # an order of another window: listed dimmed with where to go; Enter is refused
        await tap(pilot, CARD)
        assert [r[1] for r in rows(pilot, "orders")] == ["to check in", "at RAD"]
        await pilot.press("down", "enter")
        await settle_down(pilot)
        assert f"order {cxr.order_id} is done at RAD" in d.message_text
        # checked in once, then again: refused, saying why
        await pilot.press("up", "enter")
        await until(pilot, "the label", lambda: isinstance(pilot.app.screen, LabelScreen))
        await pilot.press("escape")
        await until(pilot, "back", lambda: pilot.app.screen is d)
        assert "charged ¥8.00" in d.message_text
        await pilot.press("f2")
        await settle_down(pilot)
        assert f"order {glu.order_id} is checked in: it cannot be checked in now" \
            in d.message_text
        # the deposit short: by how much, nothing written
        await tap(pilot, POOR)
        await pilot.press("enter")
        await settle_down(pilot)
        assert "¥35.00 short" in d.message_text
        assert (await led.get(Order, crp.order_id)).stage == "placed"
        # no patient on the desk: the keys work on the worklist (a step out of turn)
        await pilot.press("escape")
        await settle_down(pilot)
        assert d.target == "worklist" and rows(pilot, "worklist")[0][-1] == crp.order_id
        await pilot.press("up", "f5")  # (the cursor was on the order checked in)
        await settle_down(pilot)
        assert f"order {crp.order_id} is to be done: it cannot be collected now" \
            in d.message_text
        await pilot.press("enter")  # and a check-in needs the patient here
        await settle_down(pilot)
        assert "tap their card first" in d.message_text
    await led.close()


async def test_the_messages_read_in_chinese(tmp_path: Path) -> None:
    cfg = config(tmp_path, language="zh")
    led, pid, poor = await seeded(cfg, charge_at="execution")
    await send(led, poor, "LAB-CRP")
    await send(led, pid, "RAD-CT")
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        d = desk(pilot)
        await tap(pilot, POOR)
        await pilot.press("enter")
        await settle_down(pilot)
        assert "还差 ¥35.00" in d.message_text
        await tap(pilot, CARD)
        assert "放射科 (RAD)" in d.message_text and "请指引过去" in d.message_text
        await pilot.press("enter")
        await settle_down(pilot)
        assert "应在 RAD 执行" in d.message_text
        await pilot.press("ctrl+l")  # English, the patient and the lists stay
        await settle_down(pilot)
        table = d.query_one("#orders", DataTable)
        assert [str(c.label) for c in table.columns.values()][:2] == ["Items", "Status"]
        assert rows(pilot, "orders")[0][1] == "at RAD" and "balance" in text_of(pilot, "#who")
        assert "Window: 检验科 (LAB)" in text_of(pilot, "#dept-name")
    await led.close()


async def test_the_worklist_follows_the_ledger(tmp_path: Path) -> None:
    """An order sent at a doctor's counter (arriving as sync writes it into this ledger)
    shows without a key pressed; a check-in at another window of the department too."""
    cfg = config(tmp_path)
    led, pid, _ = await seeded(cfg)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        assert rows(pilot, "worklist") == []
        (o,) = await send(led, pid, "LAB-CBC")
        await until(pilot, "the doctor's order", lambda: len(rows(pilot, "worklist")) == 1)
        await LabService(led, "tech.ma", dept=LAB, queue_tag="L02").check_in(o.order_id)
        await until(pilot, "the other window's check-in",
                    lambda: rows(pilot, "worklist")[0][0] == "L02-001")
        assert "checked in 1" in text_of(pilot, "#counts")
    await led.close()


def test_bars_are_the_symbol_in_half_blocks() -> None:
    line = bars("L01-2609210001", 78)
    assert 60 < len(line) <= 78 and set(line) <= {"█", "▌", "▐", " "}
    assert line.startswith("  ") and line[2] in "█▌", "quiet zone, then the start bar"
    assert bars("L01-2609210001", 40) == "", "too narrow: no picture, the text says it"


# -- the snapshot -----------------------------------------------------------------------------
@pytest.mark.parametrize(("language", "size"), [pytest.param("zh", (80, 25), id="zh-80x25")])
def test_lab_desk_snapshot(tmp_path: Path, snap_compare: Any, language: str,
                           size: tuple[int, int]) -> None:
    cfg = config(tmp_path, language=language)

    async def seed() -> None:
        led, pid, poor = await seeded(cfg)
        lab = LabService(led, "tech.liu", dept=LAB)
        await CounterService(led, "op.wang").deposit(POOR, 5_000, "cash")
        first = await send(led, poor, "LAB-GLU")
        await lab.check_in(first[0].order_id)
        await lab.collect(first[0].order_id)
        await send(led, pid, "LAB-CBC", "RAD-CXR")
        await send(led, pid, "LAB-CRP")
        await led.close()
    asyncio.run(seed())

    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot)
        await tap(pilot, CARD)
        await until(pilot, "the lists", lambda: len(rows(pilot, "orders")) == 3
                    and len(rows(pilot, "worklist")) == 3)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await laid_out(pilot)
    app = make_app(cfg, ledger_clock=lambda: NOW_MS)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
