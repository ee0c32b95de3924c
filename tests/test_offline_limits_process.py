"""Offline limits through real processes (issue 11): central publishes its config's
``[limits]`` at start, the counter takes them at sync; offline, a charge past them is
refused until a supervisor approves at the counter; on reconnect central flags the
overrun, naming the supervisor, and ``limits show``/``set`` say and change them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from edge_node import config as cfgmod
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.staff import Approval
from tests.support.sync_cluster import Central, Counter, run_cli, wait_for

CARD = "8600001234"
LAB = {"code": "LAB-CBC", "name": "血常规", "qty": 1, "unit_price": 2_500}


def _one(db: Path, sql: str, *args: object) -> tuple[object, ...] | None:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return c.execute(sql, args).fetchone()  # type: ignore[no-any-return]
    finally:
        c.close()


async def _work(counter: Counter, step: str) -> list[str]:
    cfg = cfgmod.load(counter.config)
    led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
    try:
        svc = CounterService(led, "op.wang")
        if step == "register":
            await svc.register_patient(name="张三", sex="M", birth_date="1990-03-07",
                                       phone="13800138000", card_no=CARD,
                                       first_deposit=10_000)
            return []
        out = []
        try:
            await svc.charge(CARD, [LAB], "lab")  # ¥25.00 > the ¥20.00 floor
        except OperationRefused as exc:
            out += [p.code for p in exc.problems]
        r = await svc.charge(CARD, [LAB], "lab",
                             approval=Approval("boss", "主管", "supervisor"))
        out.append(f"offline_from={r.events[0].body['offline_from']}")
        return out
    finally:
        await led.close()


def test_offline_overrun_with_approval_is_flagged_on_reconnect(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    with central.config.open("a", encoding="utf-8") as f:
        f.write("\n[limits]\nfloor = 2000\ncap = 3000\n")
    counter = Counter.create(tmp_path, "cashier-01", central)
    central.start()
    try:
        counter.start_sync()
        wait_for(lambda: _one(counter.db, "SELECT floor, cap FROM offline_limits") ==
                 (2000, 3000), 30, "the counter to take central's limits")
        asyncio.run(_work(counter, "register"))
        head = _one(counter.db, "SELECT seq FROM heads WHERE node = 'cashier-01'")
        assert head is not None
        wait_for(lambda: counter.sync_state()["acked_seq"] == head[0], 30,
                 "central to acknowledge the registration")
        counter.stop()  # the link is down
        wait_for(lambda: counter.sync_state()["online"] == 0, 10, "the counter offline")
        got = asyncio.run(_work(counter, "charge"))
        assert got == ["approval.offline_limit", f"offline_from={head[0] + 1}"]
        counter.start_sync()  # reconnect: central flags the run
        wait_for(lambda: _one(central.db, "SELECT severity, nodes, explanation FROM "
                              "conflicts WHERE kind = 'offline_overrun'") is not None, 30,
                 "central to flag the offline overrun")
        row = _one(central.db, "SELECT severity, nodes, explanation, amount FROM conflicts "
                   "WHERE kind = 'offline_overrun'")
        assert row is not None and row[0] == "low" and "cashier-01" in str(row[1])
        assert "approved by boss" in str(row[2]) and row[3] == 2_500
        shown = run_cli("--config", str(central.config), "limits", "show")
        assert shown.returncode == 0 and "¥20.00" in shown.stdout and "¥30.00" in shown.stdout
        changed = run_cli("--config", str(central.config), "limits", "set", "--cap", "0",
                          "--operator", "it.zhang")
        assert changed.returncode == 0 and "the next `serve`" in changed.stdout
        wait_for(lambda: _one(counter.db, "SELECT floor, cap FROM offline_limits") ==
                 (2000, 0), 30, "the counter to take the new limits")
    finally:
        counter.stop()
        central.stop()
