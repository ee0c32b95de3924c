"""The Desk base (edge_node.tui.screens.shift) at each desk built on it — the cashier's,
triage, the doctor's, the lab window's and the pharmacy's (Textual pilot, real SQLite
ledgers): a reader's notice shows in the status bar, a card tap reaches the desk's own
lookup (every offline check first: an unknown card is refused on the message line), and
the doctor's queue (the shared QueueTable with the doctor's columns) follows a language
switch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from edge_node.config import EdgeConfig
from edge_node.ledger import Ledger
from edge_node.tui.messages import CardTapped, ReaderNotice
from edge_node.tui.screens.doctor import DoctorDesk
from edge_node.tui.screens.home import HomeScreen
from edge_node.tui.screens.lab import LabDesk
from edge_node.tui.screens.pharmacy import PharmacyDesk
from edge_node.tui.screens.shift import Desk
from edge_node.tui.screens.triage import TriageScreen
from edge_node.tui.widgets.queue import QueueTable
from edge_node.tui.widgets.status import StatusBar
from tests import test_tui_doctor as doctor
from tests import test_tui_lab as lab
from tests import test_tui_pharmacy as pharmacy
from tests import test_tui_triage as triage
from tests.tui_harness import log_in, make_app, seeded_counter, settle_down

UNKNOWN = "8699999999"

Opened = tuple[EdgeConfig, Ledger, str]  # config, ledger, who logs in


async def _cashier(tmp_path: Path) -> Opened:
    cfg, led, _pid = await seeded_counter(tmp_path)
    return cfg, led, "wang"


async def _triage(tmp_path: Path) -> Opened:
    cfg = triage.config(tmp_path, department="IM")
    return cfg, await triage.seeded(cfg), "wang"


async def _doctor(tmp_path: Path) -> Opened:
    cfg = doctor.doctor_config(tmp_path)
    led = await doctor.open_ledger(cfg)
    await doctor.seed(led)
    return cfg, led, doctor.DOCTOR


async def _lab(tmp_path: Path) -> Opened:
    cfg = lab.config(tmp_path)
    return cfg, (await lab.seeded(cfg))[0], "wang"


async def _pharmacy(tmp_path: Path) -> Opened:
    cfg = pharmacy.config(tmp_path)
    return cfg, (await pharmacy.seeded(cfg))[0], "wang"


DESKS: dict[str, tuple[Callable[[Path], Awaitable[Opened]], type[Desk]]] = {
    "cashier": (_cashier, HomeScreen), "triage": (_triage, TriageScreen),
    "doctor": (_doctor, DoctorDesk), "lab": (_lab, LabDesk),
    "pharmacy": (_pharmacy, PharmacyDesk)}


@pytest.fixture
async def ledgers() -> AsyncIterator[list[Ledger]]:
    opened: list[Ledger] = []
    yield opened
    for led in opened:
        await led.close()


@pytest.mark.parametrize("role", list(DESKS))
async def test_reader_notices_and_taps_reach_every_desk(role: str, tmp_path: Path,
                                                         ledgers: list[Ledger]) -> None:
    start, kind = DESKS[role]
    cfg, led, who = await start(tmp_path)
    ledgers.append(led)
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, who)
        desk: Any = pilot.app.home  # type: ignore[attr-defined]
        assert type(desk) is kind and isinstance(desk, Desk)
        desk.post_message(ReaderNotice("no reader connected", problem=True))
        await settle_down(pilot)
        status = desk.query_one(StatusBar)
        assert (status.reader_text, status.reader_problem) == ("no reader connected", True)
        reader = status.query_one("#reader", Static)
        assert "no reader connected" in str(reader.render()) and reader.has_class("problem")
        desk.post_message(ReaderNotice("reader ready"))
        await settle_down(pilot)
        assert (status.reader_text, status.reader_problem) == ("reader ready", False)
        assert not reader.has_class("problem")
        desk.post_message(CardTapped(UNKNOWN, "manual"))  # the desk's lookup: refused
        await settle_down(pilot)
        assert pilot.app.screen is desk
        assert UNKNOWN in desk.message_text
        assert desk.query_one("#message", Static).has_class("problem")


async def test_the_doctors_queue_follows_the_language(tmp_path: Path,
                                                      ledgers: list[Ledger]) -> None:
    cfg, led, who = await _doctor(tmp_path)
    ledgers.append(led)
    async with make_app(cfg, led).run_test(size=(100, 30)) as pilot:
        await log_in(pilot, who)
        desk = pilot.app.home  # type: ignore[attr-defined]
        assert isinstance(desk, DoctorDesk)
        table = desk.query_one("#queue", QueueTable)

        def headings() -> list[str]:
            return [c.label.plain for c in table.columns.values()]
        assert headings() == ["No.", "Name", "Status", "Doctor", "Registered"]
        await pilot.press("down")  # the second visit selected
        assert table.selected is not None and table.selected.name == "李梅"
        await pilot.press("ctrl+l")
        await settle_down(pilot)
        assert headings() == ["号", "姓名", "状态", "医生", "挂号时间"]
        assert [table.get_row_at(i)[2].plain for i in range(2)] == ["候诊", "候诊"]
        assert [str(table.get_row_at(i)[3]) for i in range(2)] == [doctor.DOCTOR, "-"]
