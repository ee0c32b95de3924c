"""`make demo` and `make walkthrough`: what a new user sees is what really happened.

The demo stack runs headless here (central and both sync daemons as real processes, the
cashier's app under the pilot); the walkthrough runs as the subprocess `make` starts.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from edge_node import config as cfgmod
from edge_node import demo
from edge_node.tui.screens.login import LoginScreen
from tests.tui_harness import home, log_in, settle_down


def _ro(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return list(c.execute(sql, args))
    finally:
        c.close()


def _hint(app: Any) -> str:
    screen = app.screen
    assert isinstance(screen, LoginScreen), screen
    return str(screen.query_one("#hint", Static).render())


async def _flags_after_taps(pilot: Any, taps: int) -> str:
    for _ in range(taps):
        await pilot.press("ctrl+t")
    for _ in range(40):
        await settle_down(pilot)
        view = home(pilot).panel.view
        if view is not None and view.patient.name == "李梅":
            break
    return str(home(pilot).panel.query_one("#flags", Static).render())


@pytest.mark.slow
def test_demo_stack_holds_an_offline_double_spend_that_central_raised(tmp_path: Path) -> None:
    stack = demo.DemoStack.start(tmp_path, "en")
    procs = dict(stack.procs)
    try:
        assert set(procs) == {"central", "sync-demo-cashier", "sync-demo-pharmacy"}
        assert all(p.poll() is None for p in procs.values())
        # central's reconciler raised the overdraft itself from the two synced charges
        [(cid, kind, status, amount)] = stack.conflicts()
        assert (kind, status, amount) == ("overdraft", "open", 2_000 + 1_280 - 2_000)
        assert stack.conflict == (cid, amount)
        assert stack.synced()
        assert stack.cashier is not None and stack.pharmacy is not None
        for cfg in (stack.cashier, stack.pharmacy):
            charged = _ro(cfg.db, "SELECT node, amount FROM charges WHERE card_no = ? "
                          "ORDER BY node", demo.DOUBLE_SPEND_CARD)
            assert charged == [("demo-cashier", 2_000), ("demo-pharmacy", 1_280)]
            [(balance,)] = _ro(cfg.db, "SELECT a.balance FROM accounts a JOIN cards c "
                               "USING (patient_id) WHERE c.card_no = ?", demo.DOUBLE_SPEND_CARD)
            assert balance == -1_280
            assert ("conflict.raised",) in _ro(cfg.db, "SELECT kind FROM events "
                                               "WHERE node = 'central'")
            # central published the sample catalogue at setup: every counter uses it
            assert _ro(cfg.db, "SELECT version FROM catalogue_head") == [("00000001",)]
            [(items,)] = _ro(cfg.db, "SELECT COUNT(*) FROM catalogue_items")
            assert items >= 300
        # the cashier's config, as its sync daemon reads it, names the reader the app uses
        assert stack.cashier.path is not None
        assert cfgmod.load(stack.cashier.path).reader.kind == "simulated"

        async def at_the_counter() -> None:
            app = stack.app("make console")
            async with app.run_test(size=(80, 25)) as pilot:
                await settle_down(pilot)
                hint = _hint(app)
                assert "demo / 1234" in hint and "make console" in hint
                assert "Offline double spend on 李梅's card: ¥12.80" in hint  # the app's language
                await log_in(pilot, "demo", "1234")
                flags = await _flags_after_taps(pilot, 2)  # 张三, then 李梅
                assert "Open conflict: an offline overdraft of ¥12.80" in flags, flags

        asyncio.run(at_the_counter())
    finally:
        stack.stop()
    assert all(p.poll() is not None for p in procs.values())
    assert stack.procs == {}


async def test_login_screen_shows_the_demo_hint_and_the_lock_screen_too(tmp_path: Path) -> None:
    _config, app = await asyncio.to_thread(demo.build, tmp_path, "zh",
                                           login_hint="演示：工号 demo，密码 1234")
    async with app.run_test(size=(80, 25)) as pilot:
        await settle_down(pilot)
        assert _hint(app) == "演示：工号 demo，密码 1234"
        await log_in(pilot, "demo", "1234")
        assert not isinstance(app.screen, LoginScreen)
        app.lock()
        await settle_down(pilot)
        assert _hint(app) == "演示：工号 demo，密码 1234"


async def test_no_hint_line_outside_the_demo(tmp_path: Path) -> None:
    _config, app = await asyncio.to_thread(demo.build, tmp_path, "en")
    async with app.run_test(size=(80, 25)) as pilot:
        await settle_down(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert not app.screen.query("#hint")


def _walk(*args: str, lang: str = "C.UTF-8") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANG": lang}
    return subprocess.run([sys.executable, "-m", "edge_node.walkthrough", *args],
                          capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_walkthrough_tells_the_whole_day_with_one_conflict_resolved_in_zh() -> None:
    """The default story: five counters, the day's businesses in order, the double
    dispense raised by central and resolved by IT, every counter agreeing at the end."""
    r = _walk()
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    steps = ["[cashier-01] 新病人 张伟", "[doctor-01] 挂号：张伟 内科 D01-001，挂号费 ¥5.00",
             "[doctor-01] 医生接诊，诊查费 ¥10.00", "→ LAB：血常规(五分类)、空腹血糖，¥33.00",
             "[lab-01] 检验签到", "扣费 ¥33.00 → 余额 ¥252.00，标本号 L01-", "检验标本",
             "[doctor-01] 医生撤销医嘱", "退回 ¥40.00 → 余额 ¥252.00",
             "[pharmacy-02] 发药", "[pharmacy-01] 发药", "中心：对账发现冲突 double_dispense-",
             "多收 ¥33.70", "冲突已解决", "[cashier-01] 结算：退还余额 ¥218.30",
             "5 个窗口与中心一致：余额已结清，处方已发药，库存 布洛芬 18、阿莫西林 9", "完成："]
    at = [out.find(s) for s in steps]
    assert all(i >= 0 for i in at), [s for s, i in zip(steps, at, strict=True) if i < 0]
    assert at == sorted(at), "the story is told in the order it happens"
    assert out.count("链与签名完好") == 5 and "出错了" not in out
    assert r.stderr == ""


@pytest.mark.slow
def test_walkthrough_raises_and_resolves_the_conflict_through_central_in_zh() -> None:
    r = _walk("--story", "overdraft")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "中心：对账发现冲突 overdraft-" in out and "合计透支 ¥5.50" in out
    assert "[pharmacy-01] 刷卡时提示：未决冲突：离线透支 ¥5.50" in out
    assert "冲突已解决" in out
    for node in ("cashier-01", "pharmacy-01"):
        assert f"[{node}] 收到处理结果：余额 -¥5.50，刷卡时提示：欠费 ¥5.50（离线透支）" in out
    assert "完成：" in out and "出错了" not in out
    # the folder it deletes is not named (nor claimed to be kept)
    assert "onecard-walk-" not in out and "保留" not in out
    assert r.stderr == ""


@pytest.mark.slow
def test_walkthrough_in_english_by_lang_and_keeps_the_folder_it_names(tmp_path: Path) -> None:
    kept = tmp_path / "walk"
    r = _walk("--story", "overdraft", "--keep", str(kept), lang="en_US.UTF-8")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "central: the reconciler raised overdraft-" in out
    # (central's chain: the two counters' patient keys, the conflict raised, the remedy)
    assert "central: signed debt.recorded (central #4); the conflict is resolved" in out
    assert "tapping the card shows: Owes ¥5.50 from an offline overdraft" in out
    assert f"files kept in {kept.resolve()}" in out
    # what it says it kept is there: central's store holds the resolved conflict
    [(kind, status)] = _ro(kept / "central" / "central.sqlite3",
                           "SELECT kind, status FROM conflicts")
    assert (kind, status) == ("overdraft", "resolved")
    assert cfgmod.load(kept / "cashier-01" / "onecard-edge.toml").node_id == "cashier-01"


@pytest.mark.slow
@pytest.mark.parametrize("desk", ["triage", "doctor", "lab", "pharmacy"])
def test_the_demo_opens_another_desk_on_its_own_counter(tmp_path: Path, desk: str) -> None:
    """``make demo DESK=…``: that role's counter, enrolled and synced, with the day's first
    visits to internal medicine in its queue; at the lab window and the pharmacy, the
    orders the doctor sent them (and the pharmacy's stock); its app opens that desk."""
    from edge_node.tui.desks import DESKS

    stack = demo.DemoStack.start(tmp_path, "en", desk=desk)
    try:
        cfg = stack.desk_config
        assert cfg is not None and f"sync-{cfg.node_id}" in stack.procs
        assert cfg is not None and cfg.role == desk
        assert cfg.department == demo.DEPARTMENT.get(desk, demo.DESK_DEPT)
        visits = _ro(cfg.db, "SELECT queue_tag, queue_no, status FROM visits ORDER BY queue_no")
        if desk in ("lab", "pharmacy"):  # seen by the doctor: each sent a lab order and drugs
            assert [(n, s) for _, n, s in visits] == [(1, "consulting"), (2, "consulting")]
            orders = _ro(cfg.db, "SELECT exec_dept, COUNT(*) FROM orders GROUP BY exec_dept")
            assert orders == [("LAB", 2), ("PHA-OP", 2)]
            stock = _ro(cfg.db, "SELECT code, received FROM stock ORDER BY code")
            assert stock == (sorted(demo.DEMO_STOCK) if desk == "pharmacy" else [])
        else:
            assert [(n, s) for _, n, s in visits] == [(1, "waiting"), (2, "waiting")]

        async def at_the_desk() -> None:
            app = stack.app("make console")
            async with app.run_test(size=(80, 25)) as pilot:
                await settle_down(pilot)
                assert type(app.home) is type(DESKS[desk](app.counter))  # type: ignore[arg-type]
                await log_in(pilot, "demo", "1234")
                await settle_down(pilot)
                assert "OneCard" in app.title and "cashier" not in app.title

        asyncio.run(at_the_desk())
    finally:
        stack.stop()
