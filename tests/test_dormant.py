"""Dormant accounts (DOMAIN 5.6): report, select, approve by another supervisor, settle.

A real central store is filled from a real counter ledger whose clock we set years back
(tests/support/dormant_site.py): the report finds exactly the dormant accounts with their
bands and totals to the fen; a batch one person selects is approved by another and
settled by central's signed events (balances 0, money conserved); approving one's own
batch, an unknown batch, or a batch whose account moved is refused; an approval that
crashed half-way finishes on a re-run without settling anyone twice; a counter syncing
from central sees the settlement in the patient's history.  Commands run as processes.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central import dormant
from central.cli import main
from central.config import CentralConfig, load_key
from central.reconcile import reconcile
from central.store import CentralStore, enrol_central
from edge_node import reports
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from protocol.account import Account
from protocol.core import State
from protocol.crypto import ZERO_HASH
from protocol.domain import REGISTRY
from protocol.dormant import DormantSettled
from protocol.event import CENTRAL, Event, decode_event, sign_event
from protocol.hlc import Hlc
from protocol.privacy import SEALED_NAME
from tests.conftest import install_test_patient_keys, node_key
from tests.support.dormant_site import DAY, DORMANT_6, ID_MALE, Filled, fill, fill_many
from tests.support.sync_cluster import (
    CENTRAL_CLI,
    Central,
    Counter,
    central_trail,
    run_cli,
    wait_for,
)
from tests.test_core_properties import histories, interleave, mixed_body

TZ = dormant.timezone(None)


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Filled]:
    """Central (English messages) holding cashier-01's four years of work."""
    cfg = tmp_path / "central" / "central.toml"
    assert main(["--config", str(cfg), "init", "--dir", str(cfg.parent)]) == 0
    install_test_patient_keys(cfg.parent / "patient-data.key")
    capsys.readouterr()
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace('language = "zh"', 'language = "en"', 1), encoding="utf-8")
    filled = asyncio.run(_fill_and_push(CentralConfig.load(cfg).db, tmp_path))
    return cfg, filled


async def _fill_and_push(db: Path, tmp_path: Path) -> Filled:
    ledger = tmp_path / "cashier-01.sqlite3"
    filled = await fill(ledger, "cashier-01", node_key("cashier-01"), _now_ms())
    await push(db, ledger, "cashier-01")
    return filled


async def push(db: Path, ledger: Path, node: str) -> None:
    """What the counter's sync does: its events not yet at central, pushed."""
    store = await CentralStore.open(db)
    led = await Ledger.open(ledger, node, node_key(node))
    try:
        if await store.node(node) is None:
            await store.enrol(node, node_key(node).public_key, "cashier")
        head = (await store.head(node)).seq
        data = await led.own_events_after(head, limit=100_000)
        await store.ingest(node, data)
    finally:
        await led.close()
        await store.close()


def _central_events(cfg: Path) -> list[Event]:
    with sqlite3.connect(f"file:{CentralConfig.load(cfg).db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT data FROM events WHERE node = 'central' ORDER BY seq")
        return [decode_event(bytes(r[0])) for r in rows]


def _all_events(cfg: Path) -> list[Event]:
    with sqlite3.connect(f"file:{CentralConfig.load(cfg).db}?mode=ro", uri=True) as c:
        return [decode_event(bytes(r[0])) for r in c.execute("SELECT data FROM events")]


def _settlements(cfg: Path) -> list[DormantSettled]:
    out = []
    for ev in _central_events(cfg):
        f = REGISTRY.fact(ev)
        if f is not None and isinstance(f.body, DormantSettled):
            out.append(f.body)
    return out


def _report_csv(cfg: Path, tmp_path: Path, months: int = 6) -> tuple[Path, list[dict[str, str]]]:
    out = tmp_path / "dormant.csv"
    r = run_cli("--config", str(cfg), "dormant", "report", "--months", str(months), "--csv",
                str(out))
    assert r.returncode == 0, r.stderr
    return out, list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))


def _keep(path: Path, rows: list[dict[str, str]], pids: set[str]) -> Path:
    """Finance's edit: the file with only the lines to settle."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(r for r in rows if r["patient_id"] in pids)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _batch_of(stdout: str) -> str:
    m = re.search(r"batch (dorm-[0-9T]+-[0-9a-f]+)", stdout)
    assert m, stdout
    return m.group(1)


# ------------------------------------------------------------------------- the report
def test_the_report_finds_exactly_the_dormant_accounts_by_band_to_the_fen(
        site: tuple[Path, Filled], tmp_path: Path) -> None:
    cfg, f = site

    async def found(months: int) -> tuple[list[dormant.DormantAccount], int]:
        store = await CentralStore.open(CentralConfig.load(cfg).db)
        try:
            sc = await dormant.scan(store, TZ)
        finally:
            await store.close()
        today = dt.datetime.now(TZ).date()
        return dormant.find_dormant(sc, today, months, TZ), sc.skipped

    accounts, skipped = asyncio.run(found(6))
    who = {v: k for k, v in f.pids.items()}
    assert {who[d.patient_id]: (d.band, d.balance) for d in accounts} == DORMANT_6
    # names are sealed: without central's patient keys the report shows them as such
    assert {d.name for d in accounts} == {SEALED_NAME}
    assert skipped == 0
    assert [b for b in dormant.totals(accounts, 6)] == [
        ("6-12", 1, 7_000), ("12-24", 1, 30_001), ("24-36", 1, 14_445), ("36+", 1, 12_345)]
    accounts24, _ = asyncio.run(found(24))
    assert {who[d.patient_id] for d in accounts24} == {"A", "B"}
    assert dormant.totals(accounts24, 24) == [("24-36", 1, 14_445), ("36+", 1, 12_345)]

    # the command: printed summary in central's language, the CSV with a header
    r = run_cli("--config", str(cfg), "dormant", "report", "--months", "6")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Dormant accounts: positive balance, no activity for 6 months")
    assert [x.split() for x in lines if re.match(r"^  [0-9]+(-[0-9]+|\+) ", x)] == [
        ["6-12", "1", "¥70.00"], ["12-24", "1", "¥300.01"], ["24-36", "1", "¥144.45"],
        ["36+", "1", "¥123.45"]]
    assert "total 4 account(s), ¥637.91" in r.stdout
    assert f.phones["A"] not in r.stdout, "the printed list masks phones"
    listed = [x.split() for x in lines if x.startswith(tuple(f.pids.values()))]
    assert sorted(x[1] for x in listed) == sorted(f"患者{w}" for w in DORMANT_6), lines
    assert "sb1:" not in r.stdout
    default = run_cli("--config", str(cfg), "dormant", "report")  # [dormant] months = 24
    assert "total 2 account(s), ¥267.90" in default.stdout

    path, rows = _report_csv(cfg, tmp_path)
    assert list(rows[0]) == list(dormant.COLUMNS)
    by = {who[r["patient_id"]]: r for r in rows}
    assert set(by) == set(DORMANT_6)
    assert by["A"]["phone"] == f.phones["A"], "the notification export has phones in clear"
    assert by["A"]["national_id"] == ID_MALE[:6] + "********" + ID_MALE[-4:]
    assert ID_MALE not in path.read_text(encoding="utf-8")
    assert by["B"]["balance"] == "144.45" and by["B"]["band"] == "24-36"
    assert by["A"]["contact"] == "家属A" and by["A"]["cards"] == f.cards["A"]
    assert {w: r["name"] for w, r in by.items()} == {w: f"患者{w}" for w in DORMANT_6}
    assert by["B"]["last_activity"] == dt.datetime.fromtimestamp(
        (_now_ms() - 900 * DAY) / 1000, TZ).date().isoformat()


def test_the_months_come_from_centrals_config(site: tuple[Path, Filled]) -> None:
    cfg, _ = site
    text = cfg.read_text(encoding="utf-8")
    assert "[dormant]\nmonths = 24" in text  # init writes the key with its default
    cfg.write_text(text.replace("months = 24", "months = 12"), encoding="utf-8")
    assert CentralConfig.load(cfg).dormant_months == 12
    r = run_cli("--config", str(cfg), "dormant", "report")
    assert r.returncode == 0 and "no activity for 12 months" in r.stdout
    assert "total 3 account(s), ¥567.91" in r.stdout  # A, B, C
    cfg.write_text(text.replace("months = 24", "months = 0"), encoding="utf-8")
    bad = run_cli("--config", str(cfg), "dormant", "report")
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith("[dormant] months must be an integer 1–600")
    cfg.write_text(text.replace("months = 24", 'month = 3'), encoding="utf-8")
    assert run_cli("--config", str(cfg), "dormant", "report").returncode == 2
    cfg.write_text(text, encoding="utf-8")
    unwritable = run_cli("--config", str(cfg), "dormant", "report", "--csv",
                         str(cfg.parent / "no" / "such" / "dir.csv"))
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr
    cfg.write_text(text.replace('language = "en"', 'language = "zh"'), encoding="utf-8")
    chinese = run_cli("--config", str(cfg), "dormant", "report", "--months", "600")
    assert chinese.returncode == 0 and "合计 0 户，¥0.00" in chinese.stdout


def test_moved_in_accounts_count_the_old_systems_last_activity(
        site: tuple[Path, Filled], tmp_path: Path) -> None:
    """An import signs registration, card and opening balance today; the patient's last
    activity is the old system's date (or, without one, the import), not central's
    events — and a counter's later charge on the card is activity again."""
    cfg, f = site
    long_ago = (dt.datetime.now(TZ).date() - dt.timedelta(days=1000)).isoformat()
    old = tmp_path / "old.csv"
    old.write_text("old_patient_no,name,sex,birth_date,phone,card_no,balance,last_activity\n"
                   f"X1,老王,M,1950-01-01,13700000001,8800000001,50.00,{long_ago}\n"
                   "X2,老李,F,1950-01-01,13700000002,8800000002,60.00,\n"
                   f"X3,老张,M,1950-01-01,13700000003,8800000003,70.00,{long_ago}\n",
                   encoding="utf-8")
    r = run_cli("--config", str(cfg), "import", str(old), "--operator", "it.li")
    assert r.returncode == 0, r.stderr
    ledger = tmp_path / "cashier-01.sqlite3"

    async def x3_comes_back() -> None:  # the counter pulls the import, X3 is charged
        store = await CentralStore.open(CentralConfig.load(cfg).db)
        led = await Ledger.open(ledger, "cashier-01", node_key("cashier-01"))
        try:
            rows = await store.read("SELECT data FROM events WHERE node = 'central' ORDER BY"
                                    " seq")
            await led.set_node_keys({CENTRAL: (load_key(CentralConfig.load(cfg).key_file)
                                               .public_key, "central")})
            await led.ingest([bytes(x[0]) for x in rows])
            await CounterService(led, "op.wang").charge(
                "8800000003", [{"code": "LAB-CBC", "name": "血常规", "qty": 1,
                                "unit_price": 1_000}], "lab")
        finally:
            await led.close()
            await store.close()
        await push(CentralConfig.load(cfg).db, ledger, "cashier-01")

    asyncio.run(x3_comes_back())
    _, rows = _report_csv(cfg, tmp_path)
    by = {row["name"]: row for row in rows}
    assert by["老王"]["last_activity"] == long_ago and by["老王"]["balance"] == "50.00"
    assert by["老王"]["band"] == "24-36"
    assert "老李" not in by, "no date from the old system: counted from the import"
    assert "老张" not in by, "charged at a counter since"
    assert {row["patient_id"] for row in rows} >= {f.pids[w] for w in DORMANT_6}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(body=mixed_body), st.randoms(use_true_random=False),
       st.integers(1, 60))
def test_the_report_reads_any_events_in_any_order_and_agrees(
        chains: dict[str, list[Event]], rnd: Any, months: int) -> None:
    """Whatever verifies (bad bodies, forged central kinds, kinds of every facet), in any
    arrival order: the same dormant accounts, each with a balance, totals that add up."""
    today = dt.date(2031, 1, 1)
    results = []
    for events in (interleave(chains, rnd), interleave(chains, rnd)):
        sc = dormant.Scan()
        for ev in events:
            sc.add_event(ev, TZ)
        sc.add([(1, b"not an event")], TZ)
        found = dormant.find_dormant(sc, today, months, TZ)
        assert all(d.balance > 0 and d.months >= months for d in found)
        bands = dormant.totals(found, months)
        assert sum(n for _, n, _ in bands) == len(found)
        assert sum(fen for _, _, fen in bands) == sum(d.balance for d in found)
        dormant.render_csv(found)
        assert sc.skipped >= 1
        results.append(found)
    assert results[0] == results[1]


def test_the_report_counts_what_it_cannot_read_and_goes_on(site: tuple[Path, Filled]) -> None:
    cfg, f = site

    async def newer_kind() -> None:
        store = await CentralStore.open(CentralConfig.load(cfg).db)
        try:
            await store.enrol("cashier-09", node_key("cashier-09").public_key, "cashier")
            _, data, _ = sign_event(node_key("cashier-09"), node="cashier-09", seq=1,
                                    prev=ZERO_HASH, hlc=Hlc(_now_ms(), 0), operator="op",
                                    kind="ward.admitted",
                                    body={"patient_id": f.pids["A"]})
            await store.ingest("cashier-09", [data])
        finally:
            await store.close()

    asyncio.run(newer_kind())
    r = run_cli("--config", str(cfg), "dormant", "report", "--months", "6")
    assert r.returncode == 0, r.stderr
    assert "total 4 account(s), ¥637.91" in r.stdout
    assert "1 event(s) unreadable or of a newer version were left out" in r.stdout


# ------------------------------------------------------------------- select, approve
def test_select_then_another_supervisor_approves_and_central_settles(
        site: tuple[Path, Filled], tmp_path: Path) -> None:
    cfg, f = site
    _, rows = _report_csv(cfg, tmp_path)
    chosen = {f.pids[w] for w in ("A", "B", "C")}
    sel = _keep(tmp_path / "selected.csv", rows, chosen)
    made = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(sel),
                   "--operator", "fin.wang", "--months", "6")
    assert made.returncode == 0, made.stderr
    batch = _batch_of(made.stdout)
    assert "3 account(s), ¥567.91 (selected by fin.wang)" in made.stdout
    assert _central_events(cfg) == [], "selecting signs nothing"

    own = run_cli("--config", str(cfg), "dormant", "approve", batch, "--operator", "FIN.WANG")
    assert own.returncode == 1
    assert own.stderr.strip() == (f"onecard-central: you cannot approve batch {batch} you "
                                  "selected yourself (fin.wang): another supervisor must")
    unknown = run_cli("--config", str(cfg), "dormant", "approve", "dorm-nope",
                      "--operator", "fin.li")
    assert unknown.returncode == 1 and "no batch dorm-nope" in unknown.stderr
    again = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(sel),
                    "--operator", "fin.zhao", "--months", "6")
    assert again.returncode == 1 and "already in open batch " + batch in again.stderr
    assert _central_events(cfg) == []

    ok = run_cli("--config", str(cfg), "dormant", "approve", batch, "--operator", "fin.li")
    assert ok.returncode == 0, ok.stderr
    assert f"batch {batch} approved by fin.li: 3 account(s) settled now, ¥567.91" in ok.stdout
    settled = _settlements(cfg)
    assert {(s.patient_id, s.amount) for s in settled} == {
        (f.pids[w], DORMANT_6[w][1]) for w in ("A", "B", "C")}
    assert {(s.selected_by, s.approved_by, s.dormant_batch) for s in settled} == {
        ("fin.wang", "fin.li", batch)}
    events = _central_events(cfg)
    assert {ev.operator for ev in events} == {"fin.li"}
    key = load_key(CentralConfig.load(cfg).key_file)
    for ev in events:
        ev.verify_signature(key.public_key)

    state = REGISTRY.fold(_all_events(cfg))
    for w in ("A", "B", "C"):
        acct = state.get(Account, f.pids[w])
        assert acct is not None and (acct.balance, acct.closed) == (0, 1), w
    assert state.get(Account, f.pids["D"]).balance == 7_000  # type: ignore[union-attr]
    _conserved(state, _all_events(cfg))
    # central's daily report puts them with the settlements, on a line of their own
    day = reports.business_day(events[0].hlc.wall)
    rep = reports.build(events, day, CENTRAL)
    assert (rep.settlements["dormant"].count, rep.settlements["dormant"].amount) == (3, 56_791)
    assert rep.expected_cash == 0, "no cash left any drawer"
    assert "Dormant, settled" in reports.render_text(rep, "en")

    shown = run_cli("--config", str(cfg), "dormant", "show", batch)
    assert shown.returncode == 0
    assert shown.stdout.count("settled central #") == 3 and "status: settled" in shown.stdout
    listed = run_cli("--config", str(cfg), "dormant", "list")
    assert batch in listed.stdout and "fin.wang / fin.li" in listed.stdout
    twice = run_cli("--config", str(cfg), "dormant", "approve", batch, "--operator", "fin.li")
    assert twice.returncode == 1 and "already settled" in twice.stderr
    assert len(_settlements(cfg)) == 3
    # the next report: they are gone
    r = run_cli("--config", str(cfg), "dormant", "report", "--months", "6")
    assert "total 1 account(s), ¥70.00" in r.stdout


def test_a_counter_that_charged_offline_after_the_settlement_raises_an_overdraft(
        site: tuple[Path, Filled], tmp_path: Path) -> None:
    """The counter had not heard of the settlement and charged the old balance: the
    money is not lost silently — central's reconciler flags the overdraft for IT."""
    cfg, f = site
    _, rows = _report_csv(cfg, tmp_path)
    sel = _keep(tmp_path / "sel.csv", rows, {f.pids["A"]})
    made = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(sel),
                   "--operator", "fin.wang", "--months", "6")
    assert made.returncode == 0, made.stderr
    ok = run_cli("--config", str(cfg), "dormant", "approve", _batch_of(made.stdout),
                 "--operator", "fin.li")
    assert ok.returncode == 0, ok.stderr

    async def offline_charge() -> None:
        ledger = tmp_path / "cashier-01.sqlite3"
        led = await Ledger.open(ledger, "cashier-01", node_key("cashier-01"))
        try:
            await CounterService(led, "op.wang").charge(
                f.cards["A"], [{"code": "LAB-CBC", "name": "血常规", "qty": 1,
                                "unit_price": 2_000}], "lab")
        finally:
            await led.close()
        await push(CentralConfig.load(cfg).db, ledger, "cashier-01")

    asyncio.run(offline_charge())
    conflicts = reconcile(_all_events(cfg))
    assert [(c.kind, c.patients, c.amount) for c in conflicts] == [
        ("overdraft", (f.pids["A"],), 2_000)]
    state = REGISTRY.fold(_all_events(cfg))
    assert state.get(Account, f.pids["A"]).balance == -2_000  # type: ignore[union-attr]
    _conserved(state, _all_events(cfg))


def _conserved(state: State, events: list[Event]) -> None:
    """Every balance is its account's flows; all balances are what the events' money
    facets moved, to the fen."""
    moved = sum(d for ev in events for _, d in REGISTRY.money(ev).deltas)
    accounts = state.all(Account)
    for a in accounts:
        assert a.balance == (a.deposited - a.charged + a.refunded_to_deposit - a.settled
                             + a.adjusted + a.transferred + a.opening), a
    assert sum(a.balance for a in accounts) == moved


def test_a_batch_whose_account_moved_after_selection_is_refused_naming_it(
        site: tuple[Path, Filled], tmp_path: Path) -> None:
    cfg, f = site
    _, rows = _report_csv(cfg, tmp_path)
    sel = _keep(tmp_path / "sel.csv", rows, {f.pids[w] for w in ("A", "C", "D")})
    made = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(sel),
                   "--operator", "fin.wang", "--months", "6")
    assert made.returncode == 0, made.stderr
    batch = _batch_of(made.stdout)

    async def patient_comes_back() -> None:  # C tops up at the counter; it syncs
        ledger = tmp_path / "cashier-01.sqlite3"
        led = await Ledger.open(ledger, "cashier-01", node_key("cashier-01"))
        try:
            await CounterService(led, "op.wang").deposit(f.cards["C"], 1_000, "cash")
        finally:
            await led.close()
        await push(CentralConfig.load(cfg).db, ledger, "cashier-01")

    asyncio.run(patient_comes_back())
    r = run_cli("--config", str(cfg), "dormant", "approve", batch, "--operator", "fin.li")
    assert r.returncode == 1
    err = r.stderr.splitlines()
    assert err == [f"{f.pids['C']}: balance ¥300.01 when selected, ¥310.01 now",
                   f"onecard-central: 1 account(s) of batch {batch} moved since selection: "
                   "not approved, nothing settled. Cancel the batch and select again"]
    assert _central_events(cfg) == []
    # the selection file is now stale for C: refused line by line, nothing made
    stale = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(sel),
                    "--operator", "fin.zhao", "--months", "6")
    assert stale.returncode == 1
    assert f"{f.pids['C']} is not dormant: activity on " in stale.stderr
    cancelled = run_cli("--config", str(cfg), "dormant", "cancel", batch, "--operator", "fin.li")
    assert cancelled.returncode == 0, cancelled.stderr
    again = run_cli("--config", str(cfg), "dormant", "approve", batch, "--operator", "fin.li")
    assert again.returncode == 1 and "was cancelled" in again.stderr
    # select again without C: accepted, approved, settled
    _, rows = _report_csv(cfg, tmp_path)
    assert f.pids["C"] not in {r["patient_id"] for r in rows}
    sel = _keep(tmp_path / "sel2.csv", rows, {f.pids[w] for w in ("A", "D")})
    made = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(sel),
                   "--operator", "fin.wang", "--months", "6")
    assert made.returncode == 0, made.stderr
    ok = run_cli("--config", str(cfg), "dormant", "approve", _batch_of(made.stdout),
                 "--operator", "fin.li")
    assert ok.returncode == 0, ok.stderr
    assert {s.patient_id for s in _settlements(cfg)} == {f.pids["A"], f.pids["D"]}


def test_a_selection_file_with_a_changed_balance_is_refused_line_by_line(
        site: tuple[Path, Filled], tmp_path: Path) -> None:
    cfg, f = site
    _, rows = _report_csv(cfg, tmp_path)
    for row in rows:
        if row["patient_id"] == f.pids["B"]:
            row["balance"] = "144.46"
    rows.append(dict(rows[0]))
    sel = _keep(tmp_path / "sel.csv", rows, {row["patient_id"] for row in rows})
    r = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(sel),
                "--operator", "fin.wang", "--months", "6")
    assert r.returncode == 1
    assert f"{f.pids['B']}'s balance changed: ¥144.46 in the file, ¥144.45 now" in r.stderr
    assert f"line 6: {rows[0]['patient_id']} repeats line 2" in r.stderr
    assert r.stderr.splitlines()[-1] == "onecard-central: 2 line(s) refused: no batch made"
    listed = run_cli("--config", str(cfg), "dormant", "list")
    assert listed.stdout.strip().endswith("0 batch(es)")
    missing = run_cli("--config", str(cfg), "dormant", "settle", "--select",
                      str(tmp_path / "nope.csv"), "--operator", "fin.wang")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    no_op = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(sel),
                    "--operator", " ")
    assert no_op.returncode == 2 and "--operator" in no_op.stderr


def test_an_approval_that_crashed_half_way_finishes_on_a_rerun_without_settling_twice(
        site: tuple[Path, Filled], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, f = site
    _, rows = _report_csv(cfg, tmp_path)
    sel = _keep(tmp_path / "sel.csv", rows, set(f.pids[w] for w in DORMANT_6))
    made = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(sel),
                   "--operator", "fin.wang", "--months", "6")
    assert made.returncode == 0, made.stderr
    batch = _batch_of(made.stdout)
    conf = CentralConfig.load(cfg)
    real_append = CentralStore.append_central
    calls = 0

    async def dying(self: CentralStore, key: Any, plan: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second chunk dies after signing, before its commit
            async def doomed(query: Any) -> Any:
                items, after = await plan(query)
                assert items
                return items, [*after, ("INSERT INTO no_such_table VALUES (1)", ())]
            return await real_append(self, key, doomed, **kw)
        return await real_append(self, key, plan, **kw)

    async def approve(chunk: int) -> dormant.Settled:
        store = await CentralStore.open(conf.db)
        try:
            key = load_key(conf.key_file)
            await enrol_central(store, key)
            return await dormant.approve(store, key, batch, operator="fin.li", tz=TZ,
                                         chunk=chunk)
        finally:
            await store.close()

    monkeypatch.setattr(CentralStore, "append_central", dying)
    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(approve(2))
    assert len(_settlements(cfg)) == 2, "the first chunk stays, the second rolled back"
    shown = run_cli("--config", str(cfg), "dormant", "show", batch)
    assert "status: settling" in shown.stdout and shown.stdout.count("to settle") == 2
    no = run_cli("--config", str(cfg), "dormant", "cancel", batch, "--operator", "fin.wang")
    assert no.returncode == 1 and "is approved and settling; it cannot be cancelled" in no.stderr
    unknown = run_cli("--config", str(cfg), "dormant", "show", "dorm-nope")
    assert unknown.returncode == 1 and unknown.stderr.startswith("onecard-central: no batch")
    monkeypatch.setattr(CentralStore, "append_central", real_append)
    # the real command finishes it (the approval stands: fin.li's)
    r = run_cli("--config", str(cfg), "dormant", "approve", batch, "--operator", "fin.zhao")
    assert r.returncode == 0, r.stderr
    assert "2 account(s) settled now" in r.stdout and "status: settled" in r.stdout
    settled = _settlements(cfg)
    assert sorted(s.patient_id for s in settled) == sorted(f.pids[w] for w in DORMANT_6)
    assert sum(s.amount for s in settled) == sum(a for _, a in DORMANT_6.values())
    assert {s.approved_by for s in settled} == {"fin.li"}
    assert [ev.seq for ev in _central_events(cfg)] == [1, 2, 3, 4]
    state = REGISTRY.fold(_all_events(cfg))
    assert all(state.get(Account, f.pids[w]).balance == 0  # type: ignore[union-attr]
               for w in DORMANT_6)
    _conserved(state, _all_events(cfg))


@pytest.mark.slow
def test_the_real_approve_killed_mid_way_finishes_on_a_rerun(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    """SIGKILL while it signs one account per transaction: every account is settled
    once or not at all; the same command again settles the rest, to the fen."""
    cfg = tmp_path / "central" / "central.toml"
    assert main(["--config", str(cfg), "init", "--dir", str(cfg.parent)]) == 0
    install_test_patient_keys(cfg.parent / "patient-data.key")
    capsys.readouterr()
    ledger = tmp_path / "cashier-01.sqlite3"
    balances = asyncio.run(fill_many(ledger, "cashier-01", node_key("cashier-01"),
                                     _now_ms(), 600))
    asyncio.run(push(CentralConfig.load(cfg).db, ledger, "cashier-01"))
    path, rows = _report_csv(cfg, tmp_path, months=24)
    assert len(rows) == 600
    made = run_cli("--config", str(cfg), "dormant", "settle", "--select", str(path),
                   "--operator", "fin.wang")
    assert made.returncode == 0, made.stderr
    batch = re.search(r"(dorm-[0-9T]+-[0-9a-f]+)", made.stdout)
    assert batch is not None
    db = CentralConfig.load(cfg).db
    proc = subprocess.Popen([CENTRAL_CLI, "--config", str(cfg), "dormant", "approve",
                             batch.group(1), "--operator", "fin.li", "--chunk", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def some_settled() -> bool:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as c:
                return bool(c.execute("SELECT COUNT(*) FROM events WHERE node = 'central'"
                                      " AND seq > 0").fetchone()[0])
        wait_for(some_settled, 120, "the first settlement to commit", interval=0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    partial = _settlements(cfg)
    assert 0 < len(partial) < 600, "killed before it finished"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        marked = c.execute("SELECT COUNT(*) FROM dormant_items WHERE status = 'settled'"
                           ).fetchone()[0]
    assert marked == len(partial), "each event and its mark commit together"
    again = run_cli("--config", str(cfg), "dormant", "approve", batch.group(1), "--operator",
                    "fin.li", timeout=300)
    assert again.returncode == 0, again.stderr
    settled = _settlements(cfg)
    assert settled[:len(partial)] == partial
    assert sorted(s.patient_id for s in settled) == sorted(balances)
    assert {s.patient_id: s.amount for s in settled} == balances
    state = REGISTRY.fold(_all_events(cfg))
    assert sum(a.balance for a in state.all(Account)) == 0
    _conserved(state, _all_events(cfg))


# ---------------------------------------------------------------- a counter syncs it
@pytest.mark.slow
def test_a_counter_syncing_from_central_sees_the_settlement_in_the_history(
        tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    text = central.config.read_text(encoding="utf-8")
    central.config.write_text(text.replace('language = "zh"', 'language = "en"', 1),
                              encoding="utf-8")
    counter = Counter.create(tmp_path, "cashier-01", central)
    f = asyncio.run(fill(counter.db, "cashier-01", counter.key, _now_ms()))
    own = asyncio.run(_count(counter.db))
    central.start()
    try:
        counter.start_sync()
        wait_for(lambda: len(central.event_ids()) == own + central_trail(central), 60,
                 "the counter's push")
        _, rows = _report_csv(central.config, tmp_path, months=24)
        assert {r["patient_id"] for r in rows} == {f.pids["A"], f.pids["B"]}
        sel = _keep(tmp_path / "sel.csv", rows, {f.pids["A"]})
        made = run_cli("--config", str(central.config), "dormant", "settle", "--select",
                       str(sel), "--operator", "fin.wang")
        assert made.returncode == 0, made.stderr
        ok = run_cli("--config", str(central.config), "dormant", "approve",
                     _batch_of(made.stdout), "--operator", "fin.li")
        assert ok.returncode == 0, ok.stderr
        wait_for(lambda: counter.event_count() == own + 1 + central_trail(central), 60,
                 "the counter to pull it")

        async def at_the_counter() -> None:
            led = await Ledger.open(counter.db, "cashier-01", counter.key)
            try:
                svc = CounterService(led, "op.wang")
                history = await svc.history(f.pids["A"])
                assert history[0].kind == "account.dormant_settled"
                assert history[0].node == CENTRAL
                assert REGISTRY.describe(history[0], "en").startswith("batch dorm-")
                view = await svc.lookup_card(f.cards["A"])
                assert (view.account.balance, view.account.closed) == (0, 1)
                await svc.deposit(f.cards["A"], 1_000, "cash")  # a deposit reopens it
                assert (await svc.lookup_card(f.cards["A"])).account.balance == 1_000
            finally:
                await led.close()

        asyncio.run(at_the_counter())
        wait_for(lambda: len(central.event_ids()) == own + 2 + central_trail(central), 60,
                 "the deposit's push")
        conflicts = run_cli("--config", str(central.config), "conflicts", "list", "--all")
        assert conflicts.stdout.strip().endswith("0 conflict(s)"), conflicts.stdout
    finally:
        counter.stop()
        central.stop()


async def _count(db: Path) -> int:
    led = await Ledger.open(db, "cashier-01")
    try:
        return await led.event_count()
    finally:
        await led.close()
