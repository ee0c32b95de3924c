"""Helpers for the counter TUI tests: a real ledger in a temp dir, a logged-in app, typing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from edge_node import staff
from edge_node.config import EdgeConfig
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.tui.app import CounterApp
from edge_node.tui.screens.home import HomeScreen
from tests.conftest import ID_MALE, TEST_PATIENT_KEYS, FakeClock, node_key

NODE = "cashier-01"
NOW_MS = 1_790_000_000_000  # 2026-09-21 (Asia/Shanghai), pinned for every screen


class IdleClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_config(tmp_path: Path, language: str = "en", **kw: Any) -> EdgeConfig:
    kw.setdefault("printer", str(tmp_path / "printer.bin"))
    return EdgeConfig(node_id=NODE, db=tmp_path / "ledger.sqlite3",
                      key_file=tmp_path / "node.key", language=language, **kw)


async def open_ledger(config: EdgeConfig) -> Ledger:
    return await Ledger.open(config.db, config.node_id, node_key(config.node_id),
                             rule_config=config.rules, clock=FakeClock(NOW_MS - 3_600_000),
                             patient_keys=TEST_PATIENT_KEYS)  # (also in child processes)


async def seed_staff(ledger: Ledger) -> None:
    hasher = staff.cheap_hasher()
    await staff.add_staff(ledger, "wang", "王丽", "1234", hasher=hasher, now_ms=NOW_MS)
    await staff.add_staff(ledger, "li", "李强", "5678", role="supervisor", hasher=hasher,
                          now_ms=NOW_MS)


async def seed_patient(ledger: Ledger, card_no: str = "8600000001", deposit: int = 10_000,
                       national_id: str = ID_MALE, name: str = "张三") -> str:
    svc = CounterService(ledger, "seed")
    r = await svc.register_patient(name=name, national_id=national_id, phone="13800138000",
                                   card_no=card_no, first_deposit=deposit, method="cash")
    return r.patient.patient_id


async def seeded_counter(tmp_path: Path, language: str = "en", card_no: str = "8600000001",
                         deposit: int = 10_000) -> tuple[EdgeConfig, Ledger, str]:
    """A counter's config and open ledger with the two staff and one patient with a card
    (the patient id last): what most screen tests start from."""
    cfg = make_config(tmp_path, language=language)
    led = await open_ledger(cfg)
    await seed_staff(led)
    return cfg, led, await seed_patient(led, card_no, deposit=deposit)


def make_app(config: EdgeConfig, ledger: Ledger | None = None, **kw: Any) -> CounterApp:
    kw.setdefault("clock", lambda: NOW_MS)
    return CounterApp(config, ledger=ledger, **kw)


async def type_text(pilot: Pilot[Any], text: str) -> None:
    for ch in text:
        await pilot.press(ch)


async def fill(pilot: Pilot[Any], selector: str, text: str) -> None:
    """Focus a field and put ``text`` in it (as a paste: typing key by key is ~50 ms a key).

    ``Input.Changed`` fires as for typing; tests that matter type key by key with
    :func:`type_text`.
    """
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    field.value = text
    field.cursor_position = len(text)
    await pilot.pause()


async def settle_down(pilot: Pilot[Any], timeout: float = 30.0) -> None:
    """Let workers (lookups, service calls) finish and the screen catch up.

    Bounded: fails naming the workers still busy after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    idle_passes = 0
    while True:
        await pilot.pause()
        # every worker but the card reader's, which runs as long as the app
        busy = [w for w in pilot.app.workers if w.group not in ("reader", "status")
                and not w.is_finished]
        if not busy:
            idle_passes += 1
            if idle_passes >= 2:  # two quiet passes: messages that start workers are done
                return
            continue
        idle_passes = 0
        if time.monotonic() >= deadline:
            raise AssertionError(f"workers still busy after {timeout} s: "
                                 f"{[w.name for w in busy]}")
        for w in busy:
            try:
                await asyncio.wait_for(w.wait(), max(0.01, deadline - time.monotonic()))
            except Exception:  # a failed worker is the test's business to notice
                pass


async def laid_out(pilot: Pilot[Any], timeout: float = 10.0) -> None:
    """Wait until the screen's layout has caught up with what it shows, then one pause.

    A key bar is as high as its lines at its width; a table has measured its rows (on
    idle, after they were added); a status bar has read the sync state and knows its
    width; the focused widget is inside what its scroll container shows.
    """
    from textual.widgets import DataTable
    from textual.worker import WorkerCancelled

    from edge_node.tui.widgets.keybar import KeyBar
    from edge_node.tui.widgets.status import NARROW, StatusBar

    def waiting() -> list[str]:
        screen = pilot.app.screen
        out = []
        for bar in screen.query(KeyBar):
            if not bar.items or bar.size.height != len(bar.lines()):
                out.append(f"key bar {bar.size} {len(bar.items)} items")
        for table in screen.query(DataTable):
            want = table.row_count + (table.header_height if table.show_header else 0)
            if table.virtual_size.height != want:
                out.append(f"table #{table.id} {table.virtual_size} rows {table.row_count}")
        for status in screen.query(StatusBar):
            if status.sync is None or status.narrow != (status.size.width < NARROW):
                out.append("status bar")
        focused = screen.focused
        if focused is not None:
            box = next((a for a in focused.ancestors if getattr(a, "is_scrollable", False)
                        and a.allow_vertical_scroll), None)
            if box is not None and not box.region.contains_region(focused.region):
                out.append(f"focused #{focused.id} {focused.region} outside {box.region}")
        return out

    # A status bar reads the ledger's sync state on a real-time interval (POLL_S), so what
    # it shows would depend on how long the test took (on a busy machine an event signed
    # last, such as the audit trail's, is counted or not): read it once more now, after
    # the workers that sign are done, so it shows what the ledger holds.
    for screen in pilot.app.screen_stack:
        for status in screen.query(StatusBar):
            while True:  # (a poll of its own that starts meanwhile cancels this read)
                try:
                    await status.refresh_status().wait()
                except WorkerCancelled:
                    continue
                break
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause()
        left = waiting()
        if not left:
            await pilot.pause()
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"layout not settled after {timeout} s: {left}")
        await asyncio.sleep(0.02)


async def log_in(pilot: Pilot[Any], staff_id: str = "wang", pin: str = "1234") -> None:
    await settle_down(pilot)
    await fill(pilot, "#staff_id", staff_id)
    await pilot.press("enter")
    await type_text(pilot, pin)
    await pilot.press("enter")
    await settle_down(pilot)


def home(pilot: Pilot[Any]) -> HomeScreen:
    app = pilot.app
    assert isinstance(app, CounterApp) and app.home is not None
    return app.home


async def tap(pilot: Pilot[Any], card_no: str) -> None:
    """Type a card number at the home screen (a wedge scanner does exactly this)."""
    await fill(pilot, "#card_no", card_no)
    await pilot.press("enter")
    await settle_down(pilot)


def message(pilot: Pilot[Any]) -> str:
    return home(pilot).message_text


def form_error(pilot: Pilot[Any]) -> str:
    from textual.widgets import Static

    return str(pilot.app.screen.query_one("#form-error", Static).render())
