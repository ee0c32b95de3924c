"""What staff see: home, patient panel, new-patient form and daily report, pixel for pixel;
and the desk at a tty console's 80×25 (zh) and a wide 160×48 (en): home with a patient,
the registration form, the charge form.

Clock pinned (``NOW_MS``), ledger seeded with a fixed clock, cursor blink off; each
snapshot is taken once the layout has settled (:func:`tests.tui_harness.laid_out`).
Update after a deliberate change with ``pytest --snapshot-update`` and review the SVGs.
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
    laid_out,
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


def seed_counter(tmp_path: Path, language: str) -> EdgeConfig:
    cfg = make_config(tmp_path, language=language)
    write_key(cfg.key_file, node_key(cfg.node_id))

    async def seed() -> None:
        led = await open_ledger(cfg)
        await seed_staff(led)
        await seed_patient(led, "8600000001", 25_000)
        await led.close()
    asyncio.run(seed())
    return cfg


@pytest.fixture
def seeded(tmp_path: Path) -> EdgeConfig:
    return seed_counter(tmp_path, "zh")


def steps(*then: Callable[[Pilot[Any]], Awaitable[None]]) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot)
        for step in then:
            await step(pilot)
        await settle_down(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await laid_out(pilot)
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


# -- the desk at 80×25 (zh) and 160×48 (en) ------------------------------------------------
DESK_SIZES = [pytest.param("zh", (80, 25), id="zh-80x25"),
              pytest.param("en", (160, 48), id="en-160x48")]


async def tapped(pilot: Pilot[Any]) -> None:
    await tap(pilot, "8600000001")


async def registration(pilot: Pilot[Any]) -> None:
    await pilot.press("f2")
    await settle_down(pilot)
    await fill(pilot, "#name", "李梅")
    await fill(pilot, "#national_id", "11010519491231002X")
    await fill(pilot, "#phone", "13912345678")


async def charging(pilot: Pilot[Any]) -> None:
    await tap(pilot, "8600000001")
    await pilot.press("f4")
    await settle_down(pilot)
    await fill(pilot, "#search", "REG01")
    await pilot.press("enter")  # into the cart
    await fill(pilot, "#search", "CON")


@pytest.mark.parametrize(("language", "size"), DESK_SIZES)
def test_desk_home(tmp_path: Path, snap_compare: Any, language: str,
                   size: tuple[int, int]) -> None:
    cfg = seed_counter(tmp_path, language)
    assert snap_compare(make_app(cfg), terminal_size=size, run_before=steps(tapped))


@pytest.mark.parametrize(("language", "size"), DESK_SIZES)
def test_desk_registration(tmp_path: Path, snap_compare: Any, language: str,
                           size: tuple[int, int]) -> None:
    cfg = seed_counter(tmp_path, language)
    assert snap_compare(make_app(cfg), terminal_size=size, run_before=steps(registration))


@pytest.mark.parametrize(("language", "size"), DESK_SIZES)
def test_desk_charge(tmp_path: Path, snap_compare: Any, language: str,
                     size: tuple[int, int]) -> None:
    cfg = seed_counter(tmp_path, language)
    assert snap_compare(make_app(cfg), terminal_size=size, run_before=steps(charging))
