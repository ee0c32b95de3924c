"""The IT console (`onecard-central console`) on a real central store: every action by
keyboard through Pilot, and snapshots of the queue and the detail screens (clock pinned)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from central import conflicts as cf
from central.cli import main as central_main
from central.console.app import ConsoleApp
from central.console.screens.detail import DetailScreen
from central.console.screens.nodes import NodesScreen
from central.console.screens.queue import QueueScreen
from central.console.screens.resolve import ResolveScreen
from central.console.screens.search import SearchScreen
from central.store import CentralStore
from protocol.event import CENTRAL
from tests.support.central_seed import NOW_MS, node_key, seed_central

SIZE = (130, 40)


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, Path]:
    return asyncio.run(seed_central(tmp_path))


def make(seeded: tuple[Path, Path], key: bool = True) -> ConsoleApp:
    db, key_file = seeded
    return ConsoleApp(db, key_file if key else None, "it.li", clock=lambda: NOW_MS)


async def settle(pilot: Pilot[Any]) -> None:
    """Let the screens' workers finish (bounded)."""
    for _ in range(50):
        await pilot.pause()
        busy = [w for w in pilot.app.workers if not w.is_finished]
        if not busy:
            await pilot.pause()
            return
        for w in busy:
            try:
                await asyncio.wait_for(w.wait(), 10)
            except Exception:
                pass
    raise AssertionError("workers did not finish")


async def laid_out(pilot: Pilot[Any], timeout: float = 10.0) -> None:
    """Wait until every table on the screen has measured its rows (a DataTable does so on
    idle, after the rows were added): its virtual height is then its rows and header."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = [t for t in pilot.app.screen.query(DataTable)
                   if t.virtual_size.height != t.row_count + (t.header_height if t.show_header
                                                              else 0)]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"tables not laid out after {timeout} s: "
                                 f"{[(t.id, t.row_count, t.virtual_size) for t in waiting]}")
        await pilot.pause()


def rows(pilot: Pilot[Any], selector: str) -> list[list[str]]:
    table = pilot.app.screen.query_one(selector, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text(pilot: Pilot[Any], selector: str) -> str:
    return str(pilot.app.screen.query_one(selector, Static).render())


async def book(db: Path) -> dict[str, cf.ConflictRow]:
    store = await CentralStore.open(db)
    try:
        return {r.kind: r for r in await cf.list_conflicts(store)}
    finally:
        await store.close()


async def central_seq(db: Path) -> int:
    store = await CentralStore.open(db)
    try:
        return (await store.head(CENTRAL)).seq
    finally:
        await store.close()


async def open_kind(pilot: Pilot[Any], kind: str) -> None:
    """From the queue: move the cursor to the conflict of ``kind`` and open it."""
    assert isinstance(pilot.app.screen, QueueScreen)
    kinds = [r[2] for r in rows(pilot, "#queue")]
    pilot.app.screen.query_one("#queue", DataTable).move_cursor(row=kinds.index(kind))
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, DetailScreen)


async def test_queue_filters_by_kind_status_node_and_date_with_counts(seeded) -> None:
    async with make(seeded).run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert sorted(r[2] for r in rows(pilot, "#queue")) == [
            "clock_skew", "duplicate_patient", "lost_card_used", "overdraft"]
        counts = text(pilot, "#counts")
        assert "4 conflict(s)" in counts and "overdraft 1" in counts
        await pilot.press("k")  # first kind, alphabetically
        await settle(pilot)
        assert [r[2] for r in rows(pilot, "#queue")] == ["clock_skew"]
        assert "kind clock_skew" in text(pilot, "#filters")
        assert "overdraft 1" in text(pilot, "#counts")  # counts stay per kind
        await pilot.press("x", "o", "o", "o")  # nodes: any → cashier-01 → -02 → -03
        await settle(pilot)
        assert [r[2] for r in rows(pilot, "#queue")] == ["clock_skew"]
        await pilot.press("x", "d")  # the last day: the 3-day-old overdraft drops out
        await settle(pilot)
        assert "overdraft" not in [r[2] for r in rows(pilot, "#queue")]
        assert len(rows(pilot, "#queue")) == 3
        await pilot.press("x", "a")  # acknowledge the row under the cursor
        await settle(pilot)
        assert "acknowledged by it.li" in text(pilot, "#message")
        await pilot.press("s")  # status: open only
        await settle(pilot)
        assert len(rows(pilot, "#queue")) == 3
    acked = [r for r in (await book(seeded[0])).values() if r.status == "acknowledged"]
    assert len(acked) == 1 and acked[0].acknowledged_by == "it.li"


async def test_detail_shows_events_side_by_side_timeline_and_remedy_effect(seeded) -> None:
    async with make(seeded).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_kind(pilot, "overdraft")
        screen = pilot.app.screen
        events = [str(s.render()) for s in screen.query("#events Static")]
        assert len(events) == 2
        assert "cashier-01 #4" in events[0] and "cashier-02 #1" in events[1]
        assert all("amount: ¥50.00" in e for e in events)
        timeline = [
            [str(c) for c in t.get_row_at(i)] for t in screen.query(DataTable)
            for i in range(t.row_count)]
        assert [r[5] for r in timeline] == ["¥0.00", "¥0.00", "¥65.00", "¥15.00", "-¥35.00"]
        assert [r[0] for r in timeline] == ["", "", "", "▶", "▶"]
        assert "1 Record the debt" in text(pilot, "#remedies")
        await pilot.press("2")
        plan = text(pilot, "#plan")
        assert "Cancels charge C-cashier-02-000001" in plan
        assert "central signs charge.reversed" in plan and "amount=¥50.00" in plan
    assert await central_seq(seeded[0]) == 0  # looking signs nothing


async def test_resolve_requires_a_reason_then_signs_and_resolves(seeded) -> None:
    db = seeded[0]
    async with make(seeded).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_kind(pilot, "overdraft")
        await pilot.press("c")
        assert "choose a remedy first" in text(pilot, "#message")
        await pilot.press("2", "c")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ResolveScreen)
        await pilot.press("enter")  # no reason
        await settle(pilot)
        assert isinstance(pilot.app.screen, ResolveScreen)
        assert "reason is required" in text(pilot, "#error")
        assert await central_seq(db) == 0
        await pilot.press("space", "space", "enter")  # blanks are no reason either
        await settle(pilot)
        assert isinstance(pilot.app.screen, ResolveScreen) and await central_seq(db) == 0
        pilot.app.screen.query_one("#reason", Input).value = "written off by finance"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
        assert "1 central event(s) signed" in text(pilot, "#message")
        assert "Resolved by it.li with charge.reversed" in text(pilot, "#remedies")
        timeline = [[str(c) for c in t.get_row_at(i)] for t in pilot.app.screen.query(DataTable)
                    for i in range(t.row_count)]
        assert timeline[-1][3:] == ["charge.reversed", "+¥50.00", "¥15.00"]
        await pilot.press("escape")
        await settle(pilot)
        assert "overdraft" not in [r[2] for r in rows(pilot, "#queue")]  # left the queue
    row = (await book(db))["overdraft"]
    assert (row.status, row.resolved_by, row.resolved_kind, row.resolved_reason) == (
        "resolved", "it.li", "charge.reversed", "written off by finance")
    assert await central_seq(db) == 1


async def test_a_console_without_the_key_cannot_resolve(seeded) -> None:
    async with make(seeded, key=False).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_kind(pilot, "duplicate_patient")
        await pilot.press("1", "c")
        await settle(pilot)
        pilot.app.screen.query_one("#reason", Input).value = "same ID card"
        await pilot.press("enter")
        await settle(pilot)
        assert "no central key" in text(pilot, "#error")
    assert await central_seq(seeded[0]) == 0


async def test_node_health(seeded) -> None:
    async with make(seeded).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(pilot.app.screen, NodesScreen)
        by_node = {r[0]: r for r in rows(pilot, "#nodes")}
        assert set(by_node) == {"central", "cashier-01", "cashier-02", "cashier-03"}
        one = by_node["cashier-01"]
        assert one[1:4] == ["cashier", "online", "5s ago"]
        assert one[4] == "11"  # head seq: 11 events from cashier-01
        assert one[8] == node_key("cashier-01").fingerprint
        assert by_node["cashier-03"][2] == "offline" and by_node["cashier-03"][7] == "1"
        assert by_node["cashier-01"][7] == "3"  # open conflicts naming it
        # pending: what a counter said it holds that central has not received
        assert (by_node["cashier-01"][6], by_node["cashier-02"][6]) == ("0", "7")
        # lag: cashier-02 has been sent none of the 11 + 3 events the others signed
        assert by_node["cashier-02"][5] == "14"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(pilot.app.screen, QueueScreen)


async def test_search_by_card_patient_number_and_name_opens_the_conflict(seeded) -> None:
    async with make(seeded).run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await settle(pilot)
        assert isinstance(pilot.app.screen, SearchScreen)
        q = pilot.app.screen.query_one("#q", Input)

        async def search(value: str) -> list[list[str]]:
            q.value = value
            q.focus()
            await pilot.press("enter")
            await settle(pilot)
            return rows(pilot, "#hits")

        [hit] = await search("8600000002")  # a card number
        assert hit[:5] == ["P-cashier-01-000005", "李四", "cashier-01", "8600000002", "¥80.00"]
        assert hit[6].startswith("lost_card_used-")
        assert [h[0] for h in await search("P-cashier-02-000003")] == ["P-cashier-02-000003"]
        assert [h[0] for h in await search("王五")] == ["P-cashier-01-000009",
                                                       "P-cashier-02-000003"]
        assert await search("nobody") == []
        assert "nothing matches" in text(pilot, "#message")
        await search("8600000002")
        await pilot.press("enter")  # on the hit: open its conflict
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
        assert "Lost card used" in text(pilot, "#head")


def test_cli_has_a_console_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        central_main(["console", "--help"])
    assert exc.value.code == 0
    assert "--operator" in capsys.readouterr().out


# -- snapshots (update deliberately with --snapshot-update and review the SVGs) ------------

def test_queue_snapshot(seeded, snap_compare: Any) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await laid_out(pilot)
    assert snap_compare(make(seeded), terminal_size=SIZE, run_before=ready)


def test_detail_snapshot(seeded, snap_compare: Any) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await open_kind(pilot, "overdraft")
        await pilot.press("1")
        await settle(pilot)
        await laid_out(pilot)
    assert snap_compare(make(seeded), terminal_size=(130, 60), run_before=ready)
