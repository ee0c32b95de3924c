"""The audit log (issue 11): logins and wrong PINs, records opened, refunds and central's
node commands are signed events; ``onecard-central audit log`` lists them from central's
events (who, what, where), through real processes: central's CLI, a counter's ledger
file and its sync daemon."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest

from edge_node import config as cfgmod
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.staff import LoginRefused, add_staff, cheap_hasher, login
from protocol.crypto import SigningKey
from protocol.domain import REGISTRY
from protocol.event import ZERO_HASH, Event
from protocol.hlc import Hlc
from protocol.trail import Login
from tests.conftest import item
from tests.support.sync_cluster import Central, Counter, run_cli, wait_for


async def _counter_work(counter: Counter) -> str:
    """At the counter: a wrong PIN, an unknown id, a good login, a patient registered,
    their record opened (a search), a charge and its refund.  Return the patient id."""
    cfg = cfgmod.load(counter.config)
    led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
    try:
        await add_staff(led, "wang", "王芳", "1234", hasher=cheap_hasher())
        with pytest.raises(LoginRefused):
            await login(led, "wang", "9999", desk="cashier")
        with pytest.raises(LoginRefused):
            await login(led, "13800138000", "9999", desk="cashier")  # a phone typed as id
        staff = await login(led, "wang", "1234", desk="cashier")
        svc = CounterService(led, staff.staff_id, desk="cashier")
        r = await svc.register_patient(name="张三", sex="M", birth_date="1990-03-07",
                                       phone="13800138000", card_no="8600000001",
                                       first_deposit=50_000)
        pid = r.patient.patient_id
        await svc.open_patient(pid)
        charge = (await svc.charge("8600000001", [item(3_000)], "检验科")).number
        await svc.refund(charge, 1_000, "deposit", "dr.zhao", "not done")
        kinds = await led.run(lambda c: [k for (k,) in c.execute(
            "SELECT kind FROM events WHERE kind LIKE 'audit.%' ORDER BY seq")])
        assert kinds == ["audit.login"] * 3 + ["audit.record_opened"]
        return pid
    finally:
        await led.close()


def _csv(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


def test_the_audit_log_lists_who_did_what_where(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    counter = Counter.create(tmp_path, "cashier-01", central)
    spare = Counter.create(tmp_path, "cashier-09", central)
    cfg = ["--config", str(central.config)]
    r = run_cli(*cfg, "revoke", spare.node, "--operator", "it.zhou")
    assert r.returncode == 0, r.stderr
    pid = asyncio.run(_counter_work(counter))
    central.start()
    try:
        counter.start_sync()
        wait_for(lambda: any(n == "cashier-01" for n, _, _ in central.event_ids())
                 and len([1 for n, _, _ in central.event_ids() if n == "cashier-01"])
                 == sum(1 for n, _, _ in counter.event_ids() if n == "cashier-01"),
                 30, "the counter's events at central")
    finally:
        counter.stop()
        central.stop()

    # who: wang's logins (a wrong PIN and a good one), the record opened, the refund
    r = run_cli(*cfg, "audit", "log", "--who", "wang", "--csv")
    assert r.returncode == 0, r.stderr
    rows = _csv(r.stdout)
    kinds = [x["kind"] for x in rows]
    assert kinds.count("audit.login") == 2
    assert {"audit.record_opened", "account.refunded"} <= set(kinds)
    assert all(x["where"] == "cashier-01" and x["who"].startswith("wang") for x in rows)
    logins = [x["detail"] for x in rows if x["kind"] == "audit.login"]
    assert any("密码错误" in d for d in logins) and any("成功" in d for d in logins)
    assert rows == sorted(rows, key=lambda x: x["when"], reverse=True)  # newest first
    assert "13800138000" not in r.stdout  # the phone typed as an id is not on the trail

    # the unknown id is logged without the id it was
    r = run_cli(*cfg, "audit", "log", "--what", "audit.login", "--csv")
    unknown = [x for x in _csv(r.stdout) if x["who"] == "-"]
    assert len(unknown) == 1 and "13800138000" not in r.stdout

    # a patient's record: opened, refunded (by patient id)
    r = run_cli(*cfg, "audit", "log", "--patient", pid, "--csv")
    assert {x["kind"] for x in _csv(r.stdout)} >= {"audit.record_opened", "account.refunded"}

    # central's node commands: enrol (both counters) and the revoke, by it.zhou
    r = run_cli(*cfg, "audit", "log", "--what", "audit.node_changed", "--node", "central",
                "--csv")
    assert r.returncode == 0, r.stderr
    nodes = _csv(r.stdout)
    assert sorted(x["detail"].split()[0] for x in nodes) == ["cashier-01", "cashier-09",
                                                              "cashier-09"]
    revoked = [x for x in nodes if x["who"] == "it.zhou"]
    assert len(revoked) == 1 and "吊销" in revoked[0]["detail"]

    # the human-readable lines; the CSV export itself went on the trail
    r = run_cli(*cfg, "audit", "log", "--who", "wang", "--limit", "1")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stdout
    r = run_cli(*cfg, "audit", "log", "--what", "audit.exported", "--csv")
    assert len(_csv(r.stdout)) == 4  # the four CSV exports above

    # filters that cannot be used: a clear message, exit 2
    for bad in (["--what", "account.teleported"], ["--since", "yesterday"],
                ["--limit", "0"]):
        r = run_cli(*cfg, "audit", "log", *bad)
        assert r.returncode == 2 and "audit log:" in r.stderr and "Traceback" not in r.stderr, \
            (bad, r.stderr)


def test_limits_set_signs_the_change_on_the_trail(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    cfg = ["--config", str(central.config)]
    for floor in ("20000", "30000"):
        r = run_cli(*cfg, "limits", "set", "--floor", floor, "--operator", "fin.wang")
        assert r.returncode == 0, r.stderr
    r = run_cli(*cfg, "audit", "log", "--what", "audit.config_changed", "--csv")
    rows = _csv(r.stdout)
    assert [x["who"] for x in rows] == ["fin.wang", "fin.wang"]
    assert "¥200.00" in rows[0]["detail"] and "¥300.00" in rows[0]["detail"]


def test_a_login_the_ledger_cannot_sign_still_logs_in(tmp_path: Path) -> None:
    """The trail never fails a login: a ledger opened without its key cannot sign the
    audit event, and the outcome stands."""
    async def go() -> None:
        led = await Ledger.open(tmp_path / "c.sqlite3", "cashier-01", SigningKey.generate())
        await add_staff(led, "wang", "王芳", "1234", hasher=cheap_hasher())
        await led.close()
        led = await Ledger.open(tmp_path / "c.sqlite3", "cashier-01", None)
        try:
            assert (await login(led, "wang", "1234")).staff_id == "wang"
            with pytest.raises(LoginRefused):
                await login(led, "wang", "0000")
        finally:
            await led.close()
    asyncio.run(go())


def test_a_login_event_never_holds_a_long_number() -> None:
    ev = Event(1, "cashier-01", 1, ZERO_HASH, Hlc(1_790_000_000_000, 0), "-", "audit.login",
               {"outcome": "unknown"})
    fact = REGISTRY.fact(ev)
    assert fact is not None and isinstance(fact.body, Login)
    assert REGISTRY.describe(ev, "en") == "(unknown id) unknown id"


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_the_console_lists_the_audit_log(tmp_path: Path, language: str) -> None:
    """The console's audit log (``l`` on the queue): the node commands signed by IT, most
    recent first, filtered by who (``w``), in the console's language."""
    from central.config import write_key
    from central.console.app import ConsoleApp
    from central.console.screens.audit_log import AuditLogScreen
    from central.store import CentralStore, enrol_central
    from tests.test_console import rows, settle

    key, key_file, db = SigningKey.generate(), tmp_path / "central.key", tmp_path / "c.sqlite3"
    write_key(key_file, key)
    store = await CentralStore.open(db)
    try:
        await enrol_central(store, key)
        await store.enrol("cashier-01", SigningKey.generate().public_key, "cashier",
                          signer=(key, "it.zhou"))
        await store.enrol("cashier-02", SigningKey.generate().public_key, "cashier",
                          signer=(key, "it.wu"))
        assert await store.revoke("cashier-02", signer=(key, "it.zhou"))
    finally:
        await store.close()
    app = ConsoleApp(db, key_file, "it.li", language=language)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert isinstance(pilot.app.screen, AuditLogScreen)
        got = rows(pilot, "#audit")
        assert [(r[1], r[2]) for r in got] == [("central", "it.zhou"), ("central", "it.wu"),
                                               ("central", "it.zhou")]
        assert got[0][3] == ("Counter changed" if language == "en" else "柜台变更")
        assert got[0][4].startswith("cashier-02 " + ("revoked" if language == "en" else "吊销"))
        await pilot.press("w")  # the first person in the log: it.wu
        await settle(pilot)
        assert [r[2] for r in rows(pilot, "#audit")] == ["it.wu"]
        await pilot.press("x", "escape")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, AuditLogScreen)
