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
from tests.support.central_seed import (
    ID_MALE,
    NOW_MS,
    node_key,
    patient_keys_file,
    seed_central,
)

SIZE = (130, 40)


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, Path]:
    return asyncio.run(seed_central(tmp_path))


def make(seeded: tuple[Path, Path], key: bool = True, language: str = "en",
         patient_keys: bool = True) -> ConsoleApp:
    db, key_file = seeded
    return ConsoleApp(db, key_file if key else None, "it.li", clock=lambda: NOW_MS,
                      language=language,
                      patient_keys_file=patient_keys_file(db) if patient_keys else None)


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


async def search_for(pilot: Pilot[Any], value: str) -> list[list[str]]:
    """Open the search screen (unless it is open), type ``value`` and Enter: the hits."""
    if not isinstance(pilot.app.screen, SearchScreen):
        await pilot.press("slash")
        await settle(pilot)
    q = pilot.app.screen.query_one("#q", Input)
    q.value = value
    q.focus()
    await pilot.press("enter")
    await settle(pilot)
    return rows(pilot, "#hits")


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
        assert set(by_node) == {"cashier-01", "cashier-02", "cashier-03"}  # not central
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

        async def search(value: str) -> list[list[str]]:
            return await search_for(pilot, value)

        [hit] = await search("8600000002")  # a card number
        assert hit[:5] == ["P-cashier-01-000005", "李四", "cashier-01", "8600000002", "¥80.00"]
        assert hit[6].startswith("lost_card_used-")
        assert [h[0] for h in await search("P-cashier-02-000003")] == ["P-cashier-02-000003"]
        assert [h[0] for h in await search("王五")] == ["P-cashier-01-000009",
                                                       "P-cashier-02-000003"]
        assert [h[1] for h in rows(pilot, "#hits")] == ["王五", "王五"]  # opened
        assert [h[0] for h in await search("王 五")] == ["P-cashier-01-000009",  # normalised
                                                        "P-cashier-02-000003"]
        assert await search("nobody") == []
        assert "nothing matches" in text(pilot, "#message")
        await search("8600000002")
        await pilot.press("enter")  # on the hit: open its conflict
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
        assert "Lost card used" in text(pilot, "#head")


async def test_names_are_opened_for_the_screen_and_never_in_the_book(seeded) -> None:
    """The book names patients by number; the console shows the names it opens with
    central's patient keys next to them, and without the keys shows them sealed."""
    for row in (await book(seeded[0])).values():
        said = " ".join([row.title, row.explanation,
                         *(f"{r.label} {r.effect}" for r in row.remedies)])
        assert not any(n in said for n in ("张三", "李四", "王五", "赵六", "sb1:")), said
    async with make(seeded).run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {r[2]: r[6] for r in rows(pilot, "#queue")}
        assert titles["overdraft"] == "Overdraft ¥35.00 — P-cashier-01-000001 (张三)"
        await open_kind(pilot, "duplicate_patient")
        events = [str(s.render()) for s in pilot.app.screen.query("#events Static")]
        assert "P-cashier-01-000009 (王五)" in text(pilot, "#explanation")
        assert all("name: 王五" in e and "sb1:" not in e.split("name: ")[1].split("\n")[0]
                   for e in events), events
        timelines = [str(s.render()) for s in pilot.app.screen.query("Static.timeline")]
        assert "  P-cashier-01-000009 (王五)" in timelines, timelines
    async with make(seeded, patient_keys=False).run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {r[2]: r[6] for r in rows(pilot, "#queue")}
        assert titles["overdraft"] == "Overdraft ¥35.00 — P-cashier-01-000001 (***)"
        [hit] = await search_for(pilot, "8600000002")
        assert hit[:2] == ["P-cashier-01-000005", "***"]
        assert await search_for(pilot, "李四") == []  # a name it cannot open: not found


def test_conflicts_show_names_the_patients_it_opens(seeded, capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    """`onecard-central conflicts show`: the book's patient numbers, each with its name
    opened with central's patient keys (sealed without them)."""
    from types import SimpleNamespace

    from central.cli import _conflicts

    db = seeded[0]
    cid = asyncio.run(book(db))["duplicate_patient"].id
    cfg = SimpleNamespace(db=db, store_at=db, max_skew_ms=300_000,
                          patient_keys_file=patient_keys_file(db))
    show = SimpleNamespace(action="show", id=cid)
    assert asyncio.run(_conflicts(cfg, show)) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "patients: P-cashier-01-000009 (王五), P-cashier-02-000003 (王五)\n" in out
    cfg.patient_keys_file = db.parent / "no-such.key"
    assert asyncio.run(_conflicts(cfg, show)) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "patients: P-cashier-01-000009 (***), P-cashier-02-000003 (***)\n" in out
    assert "王五" not in out and "sb1:" not in out


# -- the console in Chinese (central's `language = "zh"`, the default) ----------------------

def footer_words(pilot: Pilot[Any]) -> set[str]:
    return {b.binding.description for b in pilot.app.screen.active_bindings.values()
            if b.binding.show}


def headers(pilot: Pilot[Any], selector: str) -> list[str]:
    table = pilot.app.screen.query_one(selector, DataTable)
    return [str(c.label) for c in table.ordered_columns]


async def test_the_console_speaks_chinese(seeded) -> None:
    app = ConsoleApp(seeded[0], seeded[1], "it.li", clock=lambda: NOW_MS,  # default: zh
                     patient_keys_file=patient_keys_file(seeded[0]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.title == "一卡通 信息科控制台"
        assert headers(pilot, "#queue") == ["状态", "严重度", "类型", "金额", "发生时间", "窗口",
                                            "标题"]
        queue = rows(pilot, "#queue")
        assert sorted(r[2] for r in queue) == ["挂失卡被使用", "时钟超前", "离线透支", "重复建档"]
        assert {r[0] for r in queue} == {"未处理"}
        overdraft = next(r for r in queue if r[2] == "离线透支")
        # the book names the patient by number; the console adds the name it opened
        assert overdraft[1] == "高" and overdraft[6] == "离线透支 — P-cashier-01-000001（张三）"
        assert "4 个冲突" in text(pilot, "#counts") and "离线透支 1" in text(pilot, "#counts")
        assert "状态 未处理+已受理" in text(pilot, "#filters")
        assert {"类型", "搜索", "节点", "退出"} <= footer_words(pilot)
        await pilot.press("k")
        await settle(pilot)
        assert "类型 时钟超前" in text(pilot, "#filters")
        await pilot.press("x")
        await settle(pilot)

        # one conflict: sections, kinds, remedies and their effect in Chinese
        kinds = [r[2] for r in rows(pilot, "#queue")]
        pilot.app.screen.query_one("#queue", DataTable).move_cursor(row=kinds.index("离线透支"))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
        head = text(pilot, "#head")
        assert "离线透支 — P-cashier-01-000001（张三）" in head
        assert "严重度 高" in head and "金额 ¥35.00" in head
        assert "多个离线窗口" in text(pilot, "#explanation")
        assert "详情：" in text(pilot, "#explanation")  # the book's figures, kept
        events = [str(s.render()) for s in pilot.app.screen.query("#events Static")]
        assert all("收费" in e and "操作员 op.wang" in e and "金额: ¥50.00" in e
                   and "科室: lab" in e and "项目: 血常规×1" in e for e in events)
        remedies = text(pilot, "#remedies")
        assert "1 记录欠费 (debt)" in remedies
        assert "2 撤销收费 C-cashier-02-000001 (reverse)" in remedies
        assert "3 维持原状 (accept)" in remedies and "按数字键" in remedies
        timeline = [[str(c) for c in t.get_row_at(i)] for t in pilot.app.screen.query(DataTable)
                    for i in range(t.row_count)]
        assert [r[3] for r in timeline] == ["建档", "发卡", "充值", "收费", "收费"]
        await pilot.press("1")
        plan = text(pilot, "#plan")
        assert "记录 P-cashier-01-000001（张三） 欠费 ¥35.00" in plan
        assert "中心签署 记录欠费：金额=¥35.00, 扣回=¥0.00, 病人号=P-cashier-01-000001" in plan
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ResolveScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert "必须填写原因" in text(pilot, "#error")
        await pilot.press("escape", "escape")
        await settle(pilot)

        # node health: counters only, in Chinese
        await pilot.press("n")
        await settle(pilot)
        assert headers(pilot, "#nodes")[:4] == ["窗口", "角色", "状态", "最后联系"]
        by_node = {r[0]: r for r in rows(pilot, "#nodes")}
        assert set(by_node) == {"cashier-01", "cashier-02", "cashier-03"}
        assert by_node["cashier-01"][1:4] == ["收费挂号", "在线", "5秒前"]
        assert by_node["cashier-03"][2] == "离线"
        await pilot.press("escape")
        await settle(pilot)

        # search by national ID number finds both records of the same person
        assert [h[0] for h in await search_for(pilot, ID_MALE)] == ["P-cashier-01-000009",
                                                                    "P-cashier-02-000003"]
        assert "2 位病人" in text(pilot, "#message")
        assert headers(pilot, "#hits")[:2] == ["病人号", "姓名"]


@pytest.mark.parametrize("language", ["zh", "en"])
async def test_a_search_while_the_index_is_made_again_says_it_read_everyone(
        seeded, language: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the reconciler makes the search index again (an upgrade, other keys) the
    console finds patients by reading every one — slow at a big hospital — and says so."""
    from central.recon_store import StoredView

    async def being_made(*_: Any) -> None:
        return None
    monkeypatch.setattr(StoredView, "search", being_made)
    async with make(seeded, language=language).run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert [h[0] for h in await search_for(pilot, "王五")] == ["P-cashier-01-000009",
                                                                  "P-cashier-02-000003"]
        assert ("索引正在建立" if language == "zh" else "index is being made") in text(
            pilot, "#message")


async def test_search_by_national_id(seeded) -> None:
    async with make(seeded).run_test(size=SIZE) as pilot:
        await settle(pilot)
        for typed in (ID_MALE, f"  {ID_MALE} "):
            hits = await search_for(pilot, typed)
            assert [h[0] for h in hits] == ["P-cashier-01-000009", "P-cashier-02-000003"]
            assert all(h[6].startswith("duplicate_patient-") for h in hits)
        # one digit off: nobody
        assert await search_for(pilot, ID_MALE[:-1] + "9") == []
        assert "nothing matches" in text(pilot, "#message")


@pytest.mark.parametrize("language", ["zh", "en"])
async def test_q_closes_every_screen_and_quits_from_the_queue(seeded, language: str) -> None:
    app = make(seeded, language=language)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_kind(pilot, "overdraft" if language == "en" else "离线透支")
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(pilot.app.screen, QueueScreen)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(pilot.app.screen, NodesScreen)
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(pilot.app.screen, QueueScreen)
        await pilot.press("slash")
        await settle(pilot)
        q = pilot.app.screen.query_one("#q", Input)
        await pilot.press("q")  # in the search field q is a letter
        assert isinstance(pilot.app.screen, SearchScreen) and q.value == "q"
        q.value = "王五"
        await pilot.press("enter")
        await settle(pilot)
        assert pilot.app.screen.query_one("#hits", DataTable).has_focus
        await pilot.press("q")  # from the hits: closes
        await settle(pilot)
        assert isinstance(pilot.app.screen, QueueScreen)
        assert app.is_running
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


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


def test_queue_snapshot_zh(seeded, snap_compare: Any) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await laid_out(pilot)
    assert snap_compare(make(seeded, language="zh"), terminal_size=SIZE, run_before=ready)


def test_detail_snapshot_zh(seeded, snap_compare: Any) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await open_kind(pilot, "离线透支")
        await pilot.press("2")
        await settle(pilot)
        await laid_out(pilot)
    assert snap_compare(make(seeded, language="zh"), terminal_size=(130, 60), run_before=ready)


def test_detail_snapshot(seeded, snap_compare: Any) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await open_kind(pilot, "overdraft")
        await pilot.press("1")
        await settle(pilot)
        await laid_out(pilot)
    assert snap_compare(make(seeded), terminal_size=(130, 60), run_before=ready)


def test_every_console_word_is_in_the_table_in_both_languages() -> None:
    """Every key the console's code asks for exists, with a Chinese text; every conflict
    kind and status has its word."""
    import re

    from central.console import i18n
    from central.reconcile import KINDS, SEVERITIES, STATUSES

    root = Path(__file__).parents[1] / "central" / "console"
    used = {k for f in root.rglob("*.py")
            for k in re.findall(r"""\btr\(\s*["']([a-z_]+\.[a-z_.]+)["']""", f.read_text())}
    used |= {f"key.{k}" for k in ("open", "quit", "back", "close")}
    assert len(used) > 60
    missing = sorted(k for k in used if k not in i18n.STRINGS)
    assert not missing, missing
    for key, (zh, en) in i18n.STRINGS.items():
        assert zh.strip() or key == "col.mark", key
        assert en.strip() or key == "col.mark" or key.split(".")[0] in (
            "explain", "remedy", "effect"), key
    for kind in KINDS:
        assert f"conflict.{kind}" in i18n.STRINGS and f"explain.{kind}" in i18n.STRINGS
    for word in (*(f"status.{s}" for s in STATUSES), *(f"severity.{s}" for s in SEVERITIES)):
        assert word in i18n.STRINGS


def test_remedy_words_are_total_over_any_body() -> None:
    from central.console.i18n import Translator

    tr = Translator("zh")
    odd: tuple[tuple[str, Any], ...] = (("debt.recorded", {"amount": "x", "debit": None}),
                                         ("charge.reversed", {"charge_id": 5}), ("x", "nope"))
    for code in ("debt", "reverse", "block", "move", "merge", "accept", "unheard-of"):
        assert tr.remedy_label("overdraft", code, "L", odd)
        assert tr.remedy_effect(code, "E", odd)
    assert tr.remedy_effect("debt", "E", (("debt.recorded", {"patient_id": "P-1", "amount": 700,
                                                              "debit": 700}),)) == \
        "从 P-1 的账户扣回 ¥7.00（余额不足部分记为欠费，下次就诊时收取）。"
    assert Translator("en").remedy_effect("debt", "E", odd) == "E"
    assert tr("no.such.key") == "[no.such.key]"


async def test_the_console_reads_the_reconcilers_state_and_folds_only_when_no_serve_does(
        tmp_path: Path) -> None:
    """At its start the console folds nothing: with a `serve` reconciling (here: another
    store holding the reconciler's lease) it reads that state as it stands — names,
    search, a person's timeline — and reconciles nothing itself; alone, it brings the
    state up to date and gives the lease straight back (a `serve` started then takes it)."""
    from central.config import load_key
    from central.console.data import ConsoleData, Filters
    from protocol.privacy import PatientKeys
    from tests.support.central_seed import patient_keys_file, seed_central

    db, _key = await seed_central(tmp_path)
    keys = PatientKeys.read(patient_keys_file(db))
    serve = await CentralStore.open(db)
    console = await CentralStore.open(db)
    try:
        assert await cf.ConflictWatch(serve, announce=False).catch_up() == 0  # seeded: done
        assert await serve.reconciler_lease()
        data = ConsoleData(console, patient_keys=keys)
        assert await data.refresh() == 0  # serve holds the lease: nothing folded here
        assert data.watch.stored.size() == 0 and data.watch.stored.loads == 0
        [hit] = await data.search("8600000003")
        assert (hit.patient_id, hit.name, hit.balance) == ("P-cashier-01-000009", "王五", 1_000)
        # serve's reconciler indexed names without keys here (the seed's): the console
        # reads every patient instead, and says so
        assert data.searched_everyone
        assert [h.patient_id for h in await data.search("王五")] == ["P-cashier-01-000009",
                                                                    "P-cashier-02-000003"]
        row = (await data.conflicts(Filters(kind="overdraft")))[0]
        detail = await data.detail(row.id)
        assert detail is not None and [s.balance for s in detail.timelines[0][1]][-1] < 0
        # a remedy signed here while serve reconciles: resolve returns once serve folded it
        data.key = load_key(_key)
        lost = (await data.conflicts(Filters(kind="lost_card_used")))[0]
        watch = cf.ConflictWatch(serve, announce=False)

        async def serve_reconciles() -> None:
            await asyncio.sleep(0.3)
            await watch.catch_up()
        task = asyncio.create_task(serve_reconciles())
        signed = await data.resolve(lost.id, lost.remedies[-1].code, reason="checked",
                                    operator="it.li")
        # resolve returned once serve had folded it (serve goes on with its catch-up)
        assert not data.watch.leased  # serve folded it, not the console
        assert signed[-1].id in {s.event.id for s in await _steps(data, lost.patients[0])}
        await task
        await serve.close()  # central stopped: the console is alone
        serve = None
        code = row.remedies[0].code
        events = await data.resolve(row.id, code, reason="finance", operator="it.li")
        # resolve refreshed: this console folded the remedy itself (no serve did)
        assert data.watch.leased and data.watch.pos == (await console.cursor())
        detail = await data.detail(row.id)
        assert detail is not None and detail.conflict.status == "resolved"
        assert events[-1].id in {s.event.id for s in await _steps(data, row.patients[0])}
        again = await CentralStore.open(db)
        try:
            assert await again.reconciler_lease()  # a serve starting now reconciles
        finally:
            await again.close()
    finally:
        if serve is not None:
            await serve.close()
        await console.close()


async def _steps(data: Any, pid: str) -> list[Any]:
    return (await data.view.person_timeline(pid)).steps()
