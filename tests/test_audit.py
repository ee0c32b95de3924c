"""The daily audit, `balance` and `verify` at central, through the real command.

Counters work in real ledgers (SQLite files, CounterService, their clocks pinned to two
business days); their events are pushed into a real central store made by
``onecard-central init`` and reconciled as the server does; then the real
``onecard-central audit daily`` runs as a process.  A clean day balances to the fen
(exit 0); every injected anomaly is found and raised once in the conflict book (exit 1).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from central.conflicts import ConflictWatch
from central.store import CentralStore
from edge_node.config import RuleConfig
from edge_node.ledger import Ledger
from edge_node.reports import day_bounds
from edge_node.service import CounterService
from edge_node.staff import Approval
from protocol.event import sign_event
from protocol.hlc import Hlc
from tests.conftest import ID_FEMALE, ID_MALE, FakeClock, node_key
from tests.support.sync_cluster import CENTRAL_CLI, Central, central_trail

CHEN = Approval("dr.chen", "陈医生", "supervisor")  # a supervisor's checked approval
SUP = Approval("sup.li", "李主管", "supervisor")  # a supervisor's checked approval

TZ = "Asia/Shanghai"
DAY1, DAY2 = dt.date(2026, 11, 30), dt.date(2026, 12, 1)
HOUR = 3_600_000
LAB = [{"code": "LAB-CBC", "name": "血常规", "qty": 1, "unit_price": 2_500}]


def at(day: dt.date, hours: float) -> int:
    return day_bounds(day, TZ).start_ms + int(hours * HOUR)


def cli(central: Central, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONECARD_DEBUG": ""}
    return subprocess.run([CENTRAL_CLI, "--config", str(central.config), *args],
                          capture_output=True, text=True, timeout=120, env=env)


async def work(central: Central, node: str, when: int, steps: Any) -> None:
    """Open ``node``'s ledger with its clock at ``when``, run ``steps(service-maker)``,
    then push its chain to central and reconcile as the server does."""
    path = central.dir / f"{node}.sqlite3"
    led = await Ledger.open(path, node, node_key(node), rule_config=RuleConfig(),
                            clock=FakeClock(when))
    try:
        await steps(lambda op: CounterService(led, op), led)
    finally:
        await led.close()
    await push(central, node)


async def push(central: Central, node: str, extra: list[bytes] = ()) -> None:
    with sqlite3.connect(central.dir / f"{node}.sqlite3") as c:
        data = [bytes(r[0]) for r in c.execute(
            "SELECT data FROM events WHERE node = ? ORDER BY seq", (node,))]
    store = await CentralStore.open(central.db)
    try:
        await store.ingest(node, [*data, *extra])
        await ConflictWatch(store, announce=False).catch_up()
    finally:
        await store.close()


def conflicts(central: Central) -> list[tuple[str, str, str]]:
    with sqlite3.connect(central.db) as c:
        return sorted(c.execute("SELECT id, severity, title FROM conflicts"
                                " WHERE kind = 'audit_finding'"))


@pytest.fixture
def central(tmp_path: Path) -> Central:
    c = Central.init(tmp_path / "central")
    with open(c.config, "a", encoding="utf-8") as f:
        f.write('\n[audit]\ntimezone = "Asia/Shanghai"\nrefund_above = 20000\n'
                "credit_above = 100000\nloss_reports_above = 1\n")
    for node in ("cashier-01", "cashier-02"):
        c.enrol(node, node_key(node), "cashier")
    return c


async def clean_day(central: Central) -> dict[str, str]:
    """DAY1: two counters, honest work, each day closed with the right cash."""
    cards: dict[str, str] = {}

    async def one(svc: Any, led: Ledger) -> None:
        wang, li = svc("wang"), svc("li")
        r = await wang.register_patient(name="张三", national_id=ID_MALE, phone="13800138000",
                                        card_no="8600000001", first_deposit=10_000)
        cards["a"] = r.patient.patient_id
        await wang.register_patient(name="李梅", national_id=ID_FEMALE, phone="13900139000",
                                    card_no="8600000002", first_deposit=20_000)
        await wang.deposit("8600000001", 5_000, "bank_card", reference="POS-1")
        c = await wang.charge("8600000002", LAB, "lab")
        await li.refund(c.number, 1_000, "cash", "dr.zhao", "not done", approval=SUP)
        await wang.charge("8600000001", LAB, "lab")
        day = day_bounds(DAY1, TZ)
        await wang.close_day(day, 30_000 - 1_000, all_operators=True)

    async def two(svc: Any, led: Ledger) -> None:
        zhao = svc("zhao")
        await zhao.register_patient(name="王五", phone="13700137000", card_no="8600000003",
                                    sex="M", birth_date="1980-01-01",
                                    first_deposit=8_000)
        await zhao.charge("8600000003", LAB, "lab")
        await zhao.close_day(day_bounds(DAY1, TZ), 8_000)  # zhao's own day

    await work(central, "cashier-01", at(DAY1, 9), one)
    await work(central, "cashier-02", at(DAY1, 10), two)
    return cards


def test_a_clean_day_balances_to_the_fen(central: Central) -> None:
    asyncio.run(clean_day(central))
    r = cli(central, "audit", "daily", "--date", DAY1.isoformat())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "balance" in r.stdout or "平衡" in r.stdout
    assert "Traceback" not in r.stderr and "WARNING" not in r.stderr
    out = central.dir / "audit"
    html_text = (out / f"audit-{DAY1}.html").read_text(encoding="utf-8")
    assert "<svg" in html_text and "¥430.00" in html_text  # deposits 100 + 200 + 50 + 80
    rows = list(csv.reader((out / f"audit-{DAY1}.csv").open(encoding="utf-8")))
    fig = {(r[0], r[1]): r for r in rows}
    assert fig[("flow", "deposit")][2:4] == ["4", "43000"]
    assert fig[("flow", "charge")][2:4] == ["3", "-7500"]
    assert fig[("flow", "refund_cash")][3] == "1000"
    assert fig[("balance", "opening")][3] == "0"
    # every balance: 430.00 in, 75.00 charged (the cash refund moved no balance)
    assert fig[("balance", "closing")][3] == fig[("balance", "all_balances")][3] == "35500"
    assert fig[("balance", "balanced")][3] == "1"
    assert fig[("close", "cashier-01/* counted")][3] == "29000"
    assert fig[("close", "cashier-02/zhao recomputed")][3] == "8000"
    assert not [r for r in rows if r[0] == "finding"]
    assert conflicts(central) == []


def test_each_anomaly_is_found_and_raised_once(central: Central) -> None:
    cards = asyncio.run(clean_day(central))

    async def one(svc: Any, led: Ledger) -> None:
        wang, li = svc("wang"), svc("li")
        await wang.deposit("8600000001", 50_000, "cash")  # wang deposits on A's account
        c = await li.charge("8600000001", [{**LAB[0], "unit_price": 30_000}], "ct")
        await wang.refund(c.number, 30_000, "deposit", "dr.zhao", "wrong patient",
                          approval=SUP)  # big
        await li.grant_credit("8600000002", 200_000, "trauma", CHEN)  # big credit
        await li.report_lost("8600000002", "id_card")
        await li.replace_card("8600000002", "8600000009")
        await li.report_lost("8600000009", "id_card")  # the second loss report today
        await wang.close_day(day_bounds(DAY2, TZ), 49_000, all_operators=True)  # ¥10 short
        await li.deposit("8600000001", 1_000, "cash")  # after the close: it no longer adds up

    async def two(svc: Any, led: Ledger) -> None:
        await svc("zhao").deposit("8600000003", 2_000, "cash")  # and no close

    asyncio.run(work(central, "cashier-01", at(DAY2, 9), one))
    asyncio.run(work(central, "cashier-02", at(DAY2, 11), two))
    # a newer counter's kind: stored by central, counted and skipped by the audit
    led = sqlite3.connect(central.dir / "cashier-02.sqlite3")
    seq = led.execute("SELECT seq, hash FROM events WHERE node = 'cashier-02'"
                      " ORDER BY seq DESC").fetchone()
    led.close()
    _, unknown, _h = sign_event(node_key("cashier-02"), node="cashier-02", seq=seq[0] + 1,
                               prev=bytes(seq[1]), hlc=Hlc(at(DAY2, 12), 0), operator="zhao",
                               kind="stock.counted", body={"item": "x"})
    asyncio.run(push(central, "cashier-02", [unknown]))

    r = cli(central, "audit", "daily", "--date", DAY2.isoformat())
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    found = conflicts(central)
    rules = sorted(t.split(": ", 1)[1].split(" ")[0] for _, _, t in found)
    text = "\n".join(t for _, _, t in found)
    assert "Refund ¥300.00" in text  # above ¥200.00
    assert "Green channel ¥2,000.00" in text  # above ¥1,000.00
    assert "2 loss reports" in text
    assert f"Deposit and refund by wang — {cards['a']}" in text
    assert "Cash short ¥10.00 — cashier-01" in text
    assert "Day close of cashier-01 differs from the events" in text
    assert "No day close — cashier-02 (zhao)" in text
    assert len(found) == 7, rules
    assert r.stderr.count("WARNING onecard.audit") >= 7 and "unknown" in r.stderr
    assert "未知类型 1" in r.stdout  # central's language: zh
    # a second run: the same findings, raised once
    again = cli(central, "audit", "daily", "--date", DAY2.isoformat())
    assert again.returncode == 1
    assert conflicts(central) == found
    # the day before is still clean
    assert cli(central, "audit", "daily", "--date", DAY1.isoformat()).returncode == 0
    # findings are for central's people: the reconciler never announces them to counters
    asyncio.run(announce(central))
    with sqlite3.connect(central.db) as c:
        # (central's own events are only its audit trail: the counters it enrolled)
        assert c.execute("SELECT COUNT(*) FROM events WHERE node = 'central'").fetchone()[0] \
            == central_trail(central)
        assert c.execute("SELECT COUNT(*) FROM conflicts WHERE kind = 'audit_finding'"
                         " AND announced = 1").fetchone()[0] == 0


async def announce(central: Central) -> None:
    from central.config import load_key
    from central.store import enrol_central

    store = await CentralStore.open(central.db)
    try:
        key = load_key(central.dir / "central.key")
        await enrol_central(store, key)
        await ConflictWatch(store, key=key).catch_up()
    finally:
        await store.close()


def test_usage_and_config_errors_exit_2(central: Central) -> None:
    r = cli(central, "audit", "daily", "--date", "2026-13-01")
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr
    with open(central.config, "a", encoding="utf-8") as f:
        f.write("bogus = 1\n")
    r = cli(central, "audit", "daily")
    assert r.returncode == 2 and "bogus" in r.stderr and "Traceback" not in r.stderr


def test_default_day_is_yesterday_and_an_empty_day_is_clean(central: Central) -> None:
    asyncio.run(clean_day(central))
    r = cli(central, "audit", "daily")
    assert r.returncode == 0, r.stdout + r.stderr
    from zoneinfo import ZoneInfo
    # (a run just after midnight in Shanghai could see the date turn: accept either)
    today = dt.datetime.now(ZoneInfo(TZ)).date()
    made = {p.name for p in (central.dir / "audit").iterdir()}
    assert made & {f"audit-{today - dt.timedelta(days=d)}.csv" for d in (1, 2)}, made


def test_balance_and_verify(central: Central) -> None:
    cards = asyncio.run(clean_day(central))
    r = cli(central, "balance", "8600000001")
    assert r.returncode == 0, r.stderr
    assert "张三" in r.stdout and cards["a"] in r.stdout  # the sealed name, opened
    assert "sb1:" not in r.stdout
    assert "¥125.00" in r.stdout  # 100 + 50 − 25
    by_patient = cli(central, "balance", cards["a"])
    assert by_patient.stdout == r.stdout
    keys = central.dir / "patient-data.key"  # without central's patient keys: sealed
    keys.rename(keys.with_name("elsewhere.key"))
    sealed = cli(central, "balance", cards["a"])
    keys.with_name("elsewhere.key").rename(keys)
    assert sealed.returncode == 0, sealed.stderr
    assert "患者    ***（" in sealed.stdout and "张三" not in sealed.stdout
    assert "sb1:" not in sealed.stdout
    assert cli(central, "balance", "nobody").returncode == 1
    ok = cli(central, "verify")
    held = len(central.event_ids())  # 11 at cashier-01, 5 at cashier-02
    assert held - central_trail(central) == 16  # (and central's trail: their enrolment)
    assert ok.returncode == 0 and f" {held} " in ok.stdout, ok.stdout + ok.stderr
    # one byte of a stored event flipped
    with sqlite3.connect(central.db) as c:
        data = bytearray(c.execute("SELECT data FROM events WHERE node = 'cashier-01'"
                                   " AND seq = 3").fetchone()[0])
        data[-5] ^= 0x01
        c.execute("UPDATE events SET data = ? WHERE node = 'cashier-01' AND seq = 3",
                  (bytes(data),))
    bad = cli(central, "verify")
    assert bad.returncode == 1 and "cashier-01 #3" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_balance_changed_in_centrals_database_is_found(central: Central) -> None:
    cards = asyncio.run(clean_day(central))
    with sqlite3.connect(central.db) as c:  # the reconciler kept every balance there
        held = dict(c.execute("SELECT patient_id, balance FROM accounts"))
        assert held[cards["a"]] == 12_500 and len(held) == 3
        c.execute("UPDATE accounts SET balance = balance + 100000 WHERE patient_id = ?",
                  (cards["a"],))
    r = cli(central, "audit", "daily", "--date", DAY1.isoformat())
    assert r.returncode == 1, r.stdout + r.stderr
    found = conflicts(central)
    assert [t for _, _, t in found] == [
        f"Audit {DAY1}: Stored balance of {cards['a']}: ¥1,125.00, its events say ¥125.00"]
    assert found[0][1] == "high" and "projection_mismatch" in r.stderr
    assert cli(central, "audit", "daily", "--date", DAY1.isoformat()).returncode == 1
    assert conflicts(central) == found  # raised once
    # a server restart alone does not refold (the reconciler goes on from its checkpoint)
    asyncio.run(push(central, "cashier-01"))
    assert cli(central, "audit", "daily", "--date", DAY1.isoformat()).returncode == 1
    # asking for a refold puts the table right: clean again
    refold = cli(central, "conflicts", "refold")
    assert refold.returncode == 0 and "refolds every event" in refold.stdout, refold.stderr
    asyncio.run(push(central, "cashier-01"))
    clean = cli(central, "audit", "daily", "--date", DAY1.isoformat())
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_the_audit_is_total_over_whatever_is_stored() -> None:
    """Bytes that do not decode, a known kind with a bad body, an unknown kind: counted
    and skipped; the rest is audited."""
    from central.audit import AuditConfig, audit

    day = day_bounds(DAY1, TZ)
    key = node_key("cashier-01")
    rows: list[tuple[int, bytes]] = [(1, b"\x00garbage"), (2, b"")]
    prev = b"\x00" * 32
    bodies = [("account.deposited", {"patient_id": "P-1", "amount": -5, "method": "cash",
                                     "receipt_no": "D-1"}),
              ("stock.counted", {"item": "x"}),
              ("account.deposited", {"patient_id": "P-1", "amount": 700, "method": "cash",
                                     "receipt_no": "D-2"}),
              ("report.closed", {"day": DAY1.isoformat(), "start_ms": day.start_ms,
                                 "end_ms": day.end_ms, "figures": "not a list",
                                 "expected_cash": 0, "counted_cash": 0})]
    for seq, (kind, body) in enumerate(bodies, 1):
        _, data, prev = sign_event(key, node="cashier-01", seq=seq, prev=prev,
                                   hlc=Hlc(at(DAY1, 2), seq), operator="wang", kind=kind,
                                   body=body)
        rows.append((seq + 2, data))
    rep = audit(rows, day, AuditConfig())
    assert (rep.events, rep.bad, rep.invalid, rep.unknown) == (6, 2, 2, 1)
    assert rep.balanced and rep.flows["deposit"] == 700 == rep.balances
    # the one good deposit was not closed (the close's body was bad): a finding
    assert [f.rule for f in rep.findings] == ["missing_close"]


def test_a_close_signed_at_the_counter_syncs_to_centrals_audit(tmp_path: Path) -> None:
    """Real processes: `onecard-central serve` and two counters' sync daemons carry the
    day's work and cashier-01's close to central; the audit compares the close and
    finds cashier-02's day not closed."""
    from edge_node import config as cfgmod
    from tests.support.sync_cluster import Counter, converged, wait_for

    central = Central.init(tmp_path / "central")
    with open(central.config, "a", encoding="utf-8") as f:
        f.write('\n[audit]\ntimezone = "Asia/Shanghai"\n')
    counters = [Counter.create(tmp_path, n, central) for n in ("cashier-01", "cashier-02")]

    async def offline(counter: Counter, card: str, close: bool) -> int:
        """A patient of its own (different people: no duplicate raised and announced)."""
        cfg = cfgmod.load(counter.config)
        led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules,
                                clock=FakeClock(at(DAY1, 9)))
        try:
            svc = CounterService(led, "wang")
            await svc.register_patient(name=f"张{card[-3:]}", sex="M", birth_date="1990-03-07",
                                       phone=f"13800{card[-6:]}", card_no=card,
                                       first_deposit=10_000)
            await svc.charge(card, LAB, "lab")
            if close:
                await svc.close_day(day_bounds(DAY1, TZ), 10_000, all_operators=True)
            return (await led.head()).seq
        finally:
            await led.close()

    total = asyncio.run(offline(counters[0], "8600000101", True))
    total += asyncio.run(offline(counters[1], "8600000201", False))
    try:
        central.start()
        for c in counters:
            c.start_sync()
        wait_for(lambda: converged(central, counters, total), 60, "convergence")
        with sqlite3.connect(f"file:{central.db}?mode=ro", uri=True) as c:
            wait_for(lambda: c.execute("SELECT COUNT(*) FROM accounts").fetchone()[0] == 2,
                     20, "the reconciler's balances")
    finally:
        for c in counters:
            c.stop()
        central.stop()
    r = cli(central, "audit", "daily", "--date", DAY1.isoformat())
    assert r.returncode == 1, r.stdout + r.stderr
    assert [t for _, _, t in conflicts(central)] == [
        f"Audit {DAY1}: No day close — cashier-02 (wang)"]
    rows = list(csv.reader((central.dir / "audit" / f"audit-{DAY1}.csv").open(encoding="utf-8")))
    fig = {(r[0], r[1]): r for r in rows}
    assert fig[("close", "cashier-01/* counted")][3] == "10000"
    assert fig[("close", "cashier-01/* recomputed")][3] == "10000"
    assert fig[("balance", "closing")][3] == "15000" and fig[("balance", "balanced")][3] == "1"


def test_a_counter_that_only_charges_has_no_drawer_to_close() -> None:
    from central.audit import AuditConfig, audit

    day = day_bounds(DAY1, TZ)
    rows, prev = [], b"\x00" * 32
    for seq, (node, kind, body) in enumerate([
            ("cashier-01", "account.deposited", {"patient_id": "P-1", "amount": 5_000,
                                                 "method": "mobile", "receipt_no": "D-1",
                                                 "reference": "WX-1"}),
            ("pharmacy-01", "account.charged", {"charge_id": "C-1", "patient_id": "P-1",
                                                "amount": 2_500, "department": "pharmacy",
                                                "items": LAB})], 1):
        _, data, _h = sign_event(node_key(node), node=node, seq=1, prev=prev,
                                hlc=Hlc(at(DAY1, 3), seq), operator="wang", kind=kind,
                                body=body)
        rows.append((seq, data))
    rep = audit(rows, day, AuditConfig())
    assert rep.balanced and rep.balances == 2_500
    assert [(f.rule, f.key) for f in rep.findings] == [("missing_close", ("cashier-01", "wang"))]
