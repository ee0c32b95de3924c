"""What staff see: home, patient panel, new-patient form and daily report, pixel for pixel.

Clock pinned (``NOW_MS``), ledger seeded with a fixed clock, cursor blink off.  Update
after a deliberate change with ``pytest --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from edge_node.config import EdgeConfig, write_key
from tests.conftest import node_key
from tests.tui_harness import (
    fill,
    log_in,
    make_app,
    make_config,
    open_ledger,
    seed_patient,
    seed_staff,
    settle_down,
    tap,
)

SIZE = (110, 36)


@pytest.fixture
def seeded(tmp_path: Path) -> EdgeConfig:
    cfg = make_config(tmp_path, language="zh")
    write_key(cfg.key_file, node_key(cfg.node_id))

    async def seed() -> None:
        led = await open_ledger(cfg)
        await seed_staff(led)
        await seed_patient(led, "8600000001", 25_000)
        await led.close()
    asyncio.run(seed())
    return cfg


def steps(*then: Callable[[Pilot[Any]], Awaitable[None]]) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot)
        for step in then:
            await step(pilot)
        await settle_down(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()
    return run_before


def test_home_screen(seeded: EdgeConfig, snap_compare: Any) -> None:
    assert snap_compare(make_app(seeded), terminal_size=SIZE, run_before=steps())


def test_patient_panel(seeded: EdgeConfig, snap_compare: Any) -> None:
    async def tapped(pilot: Pilot[Any]) -> None:
        await tap(pilot, "8600000001")
    assert snap_compare(make_app(seeded), terminal_size=SIZE, run_before=steps(tapped))


def test_new_patient_form(seeded: EdgeConfig, snap_compare: Any) -> None:
    async def form(pilot: Pilot[Any]) -> None:
        await pilot.press("f2")
        await settle_down(pilot)
        await fill(pilot, "#name", "李梅")
        await fill(pilot, "#national_id", "11010519491231002X")
        await fill(pilot, "#phone", "13912345678")
    assert snap_compare(make_app(seeded), terminal_size=SIZE, run_before=steps(form))


def test_daily_report(seeded: EdgeConfig, snap_compare: Any) -> None:
    async def report(pilot: Pilot[Any]) -> None:
        await pilot.press("f11")
        await settle_down(pilot)
        await pilot.press("a")  # all operators (the seed was done by "seed")
    assert snap_compare(make_app(seeded), terminal_size=SIZE, run_before=steps(report))
