"""Moving in from the old system: `onecard-central import` of patients, cards and balances.

The file is read and checked line by line (every bad line named with its column, nothing
imported if one is bad); a real import signs each line as central's events in batches of
store transactions; re-running imports nothing; a failure between batches leaves whole
lines and a re-run finishes; the opening balances add up to the file's to the fen, the
daily report counts them apart from deposits, and a counter that syncs from central finds
the patients and charges their cards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from central import importer
from central.cli import main
from central.config import CentralConfig, load_key
from central.importer import ImportFailed, LineError, patient_id_for, read_rows
from central.store import CentralStore, enrol_central
from edge_node import reports
from edge_node.i18n import Translator
from protocol.domain import REGISTRY
from protocol.event import CENTRAL, Event, decode_event
from protocol.hlc import Hlc
from protocol.moving_in import OpeningBalance
from tests.conftest import ID_FEMALE, ID_MALE, TEST_PATIENT_KEYS, install_test_patient_keys
from tests.support.old_system import HEADER, export, make_rows, render
from tests.support.sync_cluster import CENTRAL_CLI, Central, Counter, run_cli, wait_for

TODAY = dt.date(2026, 12, 1)
EN = Translator("en")


def _read(text: str) -> importer.Parsed:
    return read_rows(text, TODAY, "old.csv")


def _said(errors: list[LineError]) -> list[str]:
    return [e.say(EN) for e in errors]


def _csv(*lines: str, header: str = ",".join(HEADER)) -> str:
    return "\n".join((header, *lines)) + "\n"


# -------------------------------------------------------------------- reading the file
def test_every_bad_line_is_named_with_its_column_and_what_is_wrong() -> None:
    bad_id = ID_FEMALE[:-1] + "1"  # check digit wrong
    parsed = _read(_csv(
        f"A1,张三,{ID_MALE},M,1990-03-07,13800138000,,8600000001,12.50,2026-11-30",  # fine
        "A2,,,M,1980-01-01,13800138000,,8600000002,1.00,",  # no name
        f"A3,李四,{bad_id},,,13800138000,,8600000003,5,",  # bad checksum
        "A4,王五,,M,1980-01-01,13800138000,,8600000004,abc,",  # not a number
        "A5,赵六,,F,1980-01-01,13800138000,,8600000005,-3.00,",  # negative
        "A6,钱七,,F,1980-01-01,13800138000,,8600000006,1.234,",  # three decimals
        "A7,孙八,,F,1980-01-01,13800138000,,8600000001,1,",  # card of line 2 again
        f"A8,周九,{ID_MALE},M,1990-03-07,13800138000,,8600000008,1,",  # ID of line 2 again
        "A1,吴十,,F,1980-01-01,13800138000,,8600000009,1,",  # old number of line 2 again
        "A10,郑一,,F,1980-02-30,1,,86-1,1,",  # no such date, phone, card number
        "A11,冯二,,,,13800138000,,8600000011,1,",  # no sex or birth date and no ID
    ))
    said = _said(parsed.errors)
    assert [r.line for r in parsed.rows] == [2]
    assert said == [
        "line 3, name: required, but empty",
        "line 4, national_id: ID number check digit is wrong (mistyped digit?)",
        "line 5, balance: abc is not an amount: write yuan, e.g. 123.45",
        "line 6, balance: -3.00 is negative: a balance cannot be below zero (settle the debt"
        " in the old system first)",
        "line 7, balance: 1.234 has more than 2 decimals: amounts are in fen",
        "line 8, card_no: 8600000001 repeats line 2",
        "line 9, national_id: 110101********0011 repeats line 2",
        "line 10, old_patient_no: A1 repeats line 2",
        "line 11, birth_date: 1980-02-30 is not a date: write YYYY-MM-DD",
        "line 11, phone: 1 is not a phone number: 5–20 digits, maybe a + and spaces",
        "line 11, card_no: 86-1 is not a card number: 4–32 letters or digits",
        "line 12, sex: required when there is no national ID (M or F)",
        "line 12, birth_date: required when there is no national ID (YYYY-MM-DD)",
    ]
    # in Chinese too, line and column kept
    assert LineError(3, "姓名", "import.required").say(Translator("zh")) == \
        "第 3 行，姓名：必填，不能为空"


def test_a_line_becomes_the_bodies_central_will_sign() -> None:
    parsed = _read(_csv(f"A1,张三,{ID_MALE.lower()},,,,+86 138 0013 8000,,12.5,2026/11/3"))
    assert not parsed.errors
    (row,) = parsed.rows
    assert row.amount == 1250 and row.card_no == "" and row.national_id == ID_MALE
    batch = "imp-20261201T000000-00aa11bb"
    assert row.items(batch) == [
        ("patient.registered", {"patient_id": "P-central-A1", "name": "张三", "sex": "M",
                                "birth_date": "1990-03-07", "national_id": ID_MALE,
                                "contact": "+86 138 0013 8000"}),
        ("account.opening_balance", {"patient_id": "P-central-A1", "amount": 1250,
                                     "old_patient_no": "A1", "batch_id": batch,
                                     "last_activity": "2026-11-03"})]
    for kind, body in row.items(batch):
        assert REGISTRY.validate(kind, body, CENTRAL) == []


@pytest.mark.parametrize(("text", "fen"), [("0", 0), ("0.00", 0), ("12", 1200), ("12.5", 1250),
                                           ("12.05", 1205), ("¥1,234.56", 123456),
                                           ("100000000.00", 10_000_000_000)])
def test_balances_in_yuan_become_fen_exactly(text: str, fen: int) -> None:
    parsed = _read(_csv(f'A1,张三,,F,1980-01-01,13800138000,,8600000001,"{text}",'))
    assert not parsed.errors, _said(parsed.errors)
    assert parsed.rows[0].amount == fen


@pytest.mark.parametrize("text", ["", "1.", "1.2.3", "1e3", "100000000.01", "12.345", "-0.01"])
def test_a_balance_that_is_not_exact_yuan_is_refused(text: str) -> None:
    parsed = _read(_csv(f'A1,张三,,F,1980-01-01,13800138000,,8600000001,"{text}",'))
    assert [e.column for e in parsed.errors] == ["balance"] and not parsed.rows


def test_chinese_headers_a_bom_and_extra_columns() -> None:
    text = ("\ufeff病历号,姓名,性别,出生日期,电话,卡号,余额,备注\n"
            "B-7,王芳,女,1975/6/1,13900139000,8600000007,88.80,VIP\n\n")
    parsed = _read(importer.decode_text(text.encode("utf-8"), "old.csv"))
    assert not parsed.errors and parsed.ignored == ["备注"] and parsed.lines == 1
    assert parsed.rows[0].registered == {"patient_id": "P-central-B-7", "name": "王芳",
                                         "sex": "F", "birth_date": "1975-06-01",
                                         "phone": "13900139000"}


def test_a_file_that_cannot_be_read_says_why() -> None:
    with pytest.raises(ImportFailed) as gbk:
        importer.decode_text("old_patient_no\nA1\n王\n".encode("gbk"), "old.csv")
    assert gbk.value.key == "import.not_utf8" and gbk.value.values["line"] == 3
    with pytest.raises(ImportFailed) as cols:
        _read("old_patient_no,name\nA1,张三\n")
    assert EN(cols.value.key, **cols.value.values) == \
        "the header lacks column(s): card_no, balance (see docs/import.md)"
    with pytest.raises(ImportFailed) as empty:
        _read("\n\n")
    assert empty.value.key == "import.empty"
    short = _read(_csv("A1,张三,,F", 'A2,李四,,F,1980-01-01,13800138000,,,1,,"x"'))
    assert _said(short.errors) == ["line 2: this line has 4 columns, the header 10 "
                                   "(unbalanced quotes?)",
                                   "line 3: this line has 11 columns, the header 10 "
                                   "(unbalanced quotes?)"]
    trailing = _read(_csv("A1,张三,,F,1980-01-01,13800138000,,,1,,,"))  # empty cells after
    assert not trailing.errors and len(trailing.rows) == 1


def test_patient_ids_come_from_the_old_number_and_never_meet_a_counters() -> None:
    assert patient_id_for("A0000123") == "P-central-A0000123"
    hashed = patient_id_for("门诊/2003/17")
    assert hashed == patient_id_for("门诊/2003/17") and hashed.startswith("P-central-x.")
    assert patient_id_for("x." + hashed.split(".", 1)[1]) != hashed  # plain ids have no dot
    assert len(patient_id_for("9" * 54)) == 64 and "x." in patient_id_for("9" * 55)


# ------------------------------------------------------------- the command, on SQLite
@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    cfg = tmp_path / "central" / "central.toml"
    assert main(["--config", str(cfg), "init", "--dir", str(cfg.parent)]) == 0
    install_test_patient_keys(cfg.parent / "patient-data.key")
    capsys.readouterr()
    # these tests read the English messages (the Chinese ones: the test further down)
    text = cfg.read_text(encoding="utf-8")
    assert 'language = "zh"' in text
    cfg.write_text(text.replace('language = "zh"', 'language = "en"', 1), encoding="utf-8")
    return cfg


def _central_events(cfg: Path) -> list[Event]:
    db = CentralConfig.load(cfg).db
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT data FROM events WHERE node = 'central' ORDER BY seq")
        return [decode_event(bytes(r[0])) for r in rows]


def _openings(events: list[Event]) -> dict[str, OpeningBalance]:
    out = {}
    for ev in events:
        fact = REGISTRY.fact(ev)
        if fact is not None and isinstance(fact.body, OpeningBalance):
            assert fact.body.old_patient_no not in out, "one opening balance per old number"
            out[fact.body.old_patient_no] = fact.body
    return out


def _lines_complete(events: list[Event]) -> set[str]:
    """Patient ids with all their line's events (registered, card if any, balance), and
    assert no patient has only part of them."""
    kinds: dict[str, set[str]] = {}
    for ev in events:
        kinds.setdefault(str(ev.body["patient_id"]), set()).add(ev.kind)
    for pid, got in kinds.items():
        assert {"patient.registered", "account.opening_balance"} <= got, (pid, got)
    return set(kinds)


@pytest.mark.slow
def test_three_thousand_rows_through_the_real_command(site: Path, tmp_path: Path) -> None:
    old = export(3000)
    path = tmp_path / "old.csv"
    path.write_bytes(b"\xef\xbb\xbf" + old.text.encode("utf-8"))  # as spreadsheets save it
    cards = sum(1 for r in old.rows if r["card_no"])

    dry = run_cli("--config", str(site), "import", str(path), "--dry-run", timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "rows        3000" in dry.stdout and "patients    3000" in dry.stdout
    assert f"opening     ¥{old.total_fen // 100:,}.{old.total_fen % 100:02d}" in dry.stdout
    assert _central_events(site) == [], "a dry run writes nothing"

    real = run_cli("--config", str(site), "import", str(path), "--batch-rows", "400",
                   "--operator", "it.li", timeout=300)
    assert real.returncode == 0, real.stderr
    events = _central_events(site)
    assert len(events) == 3000 * 2 + cards
    assert f"events      {len(events)} signed by central" in real.stdout
    openings = _openings(events)
    assert set(openings) == {r["old_patient_no"] for r in old.rows}
    assert sum(b.amount for b in openings.values()) == old.total_fen  # to the fen
    assert len(_lines_complete(events)) == 3000
    assert {ev.operator for ev in events} == {"it.li"}
    assert len({b.batch_id for b in openings.values()}) == 1
    # every line's balance where the file put it
    for r in old.rows[:50]:
        whole, _, frac = r["balance"].partition(".")
        assert openings[r["old_patient_no"]].amount == int(whole) * 100 + int(
            frac.ljust(2, "0"))
    # the daily audit counts the moved-in money apart from deposits
    day = reports.business_day(events[0].hlc.wall)
    report = reports.build(events, day, CENTRAL)
    assert (report.opening.count, report.opening.amount) == (3000, old.total_fen)
    assert report.total(report.deposits).count == 0
    assert report.registrations == 3000 and report.cards_issued == cards
    assert "Opening balances (moved in)" in reports.render_text(report, "en")

    again = run_cli("--config", str(site), "import", str(path), timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already in  3000 (skipped)" in again.stdout and "nothing new" in again.stdout
    assert _central_events(site) == events, "a re-run imports nothing"


@pytest.mark.slow
def test_a_file_with_bad_lines_imports_nothing_and_names_each(site: Path,
                                                              tmp_path: Path) -> None:
    rows = make_rows(3000, seed=7)
    rows[10]["balance"] = "12.345"
    nid = rows[501]["national_id"]
    rows[501]["national_id"] = nid[:-1] + ("0" if nid[-1] != "0" else "1")
    rows[502]["card_no"] = rows[20]["card_no"]
    rows[2999]["name"] = ""
    path = tmp_path / "bad.csv"
    path.write_text(render(rows), encoding="utf-8")
    r = run_cli("--config", str(site), "import", str(path), timeout=120)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert [x.split(":")[0] for x in lines[:-1]] == [
        "line 12, balance", "line 503, national_id", "line 504, card_no", "line 3001, name"]
    assert lines[-1] == "4 error(s) in 4 line(s): nothing imported"
    assert _central_events(site) == []
    assert run_cli("--config", str(site), "import", str(tmp_path / "nope.csv")).returncode == 2
    assert run_cli("--config", str(site), "import", str(path),
                   "--batch-rows", "0").returncode == 2


async def _site_store(cfg: Path) -> tuple[CentralStore, Any]:
    conf = CentralConfig.load(cfg)
    store = await CentralStore.open(conf.db)
    key = load_key(conf.key_file)
    await enrol_central(store, key)
    return store, key


def test_lines_already_in_the_store_are_skipped_and_clashes_refused(
        site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = make_rows(40)
    first = tmp_path / "first.csv"
    first.write_text(render(rows[:30]), encoding="utf-8")
    assert main(["--config", str(site), "import", str(first), "--batch-rows", "7"]) == 0
    capsys.readouterr()
    # a second file: 25 lines already in, 10 new, 2 of them clashing with what is held
    clash = [dict(r) for r in rows[30:]]
    clash[0]["card_no"] = rows[0]["card_no"]
    clash[1]["national_id"], clash[1]["sex"], clash[1]["birth_date"] = (
        rows[1]["national_id"], "", "")
    second = tmp_path / "second.csv"
    second.write_text(render(rows[5:30] + clash), encoding="utf-8")
    assert main(["--config", str(site), "import", str(second)]) == 1
    err = capsys.readouterr().err.splitlines()
    pid0, pid1 = patient_id_for(rows[0]["old_patient_no"]), patient_id_for(
        rows[1]["old_patient_no"])
    assert err == [f"line 27, card_no: card {rows[0]['card_no']} is already issued "
                   f"(patient {pid0})",
                   f"line 28, national_id: national ID {rows[1]['national_id'][:6]}********"
                   f"{rows[1]['national_id'][-4:]} is already registered (patient {pid1})",
                   "2 error(s) in 2 line(s): nothing imported"]
    before = _central_events(site)
    second.write_text(render(rows[5:]), encoding="utf-8")
    assert main(["--config", str(site), "import", str(second)]) == 0
    out = capsys.readouterr().out
    assert "already in  25 (skipped)" in out and "patients    10" in out
    after = _central_events(site)
    assert after[:len(before)] == before
    assert len(_openings(after)) == 40 and len(_lines_complete(after)) == 40


def test_a_failure_mid_import_leaves_whole_lines_and_a_rerun_finishes(
        site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    old = export(500, seed=3)
    path = tmp_path / "old.csv"
    path.write_text(old.text, encoding="utf-8")
    real_append = CentralStore.append_central
    calls = 0

    async def failing(self: CentralStore, key: Any, plan: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:  # the third batch dies after signing, before its commit
            async def doomed(query: Any) -> Any:
                items, _ = await plan(query)
                assert items
                return items, [("INSERT INTO no_such_table VALUES (1)", ())]
            return await real_append(self, key, doomed, **kw)
        return await real_append(self, key, plan, **kw)

    monkeypatch.setattr(CentralStore, "append_central", failing)
    assert main(["--config", str(site), "import", str(path), "--batch-rows", "100"]) == 1
    assert capsys.readouterr().err.strip() == (
        "onecard-central: the import stopped: no such table: no_such_table. Lines imported "
        "so far stay: run it again to finish")
    events = _central_events(site)
    assert len(_lines_complete(events)) == 200, "two whole batches, nothing of the third"
    monkeypatch.setattr(CentralStore, "append_central", real_append)
    assert main(["--config", str(site), "import", str(path), "--batch-rows", "100"]) == 0
    assert "already in  200 (skipped)" in capsys.readouterr().out
    events = _central_events(site)
    assert len(_lines_complete(events)) == 500
    assert sum(b.amount for b in _openings(events).values()) == old.total_fen
    assert [ev.seq for ev in events] == list(range(1, len(events) + 1))


@pytest.mark.slow
def test_sigkill_mid_import_leaves_whole_lines_and_a_rerun_finishes(site: Path,
                                                                    tmp_path: Path) -> None:
    """The real command killed (SIGKILL) while it writes: small batches, so the kill lands
    between two of its many commits or inside one; either way each line is whole or
    absent, and running the file again finishes it, to the fen."""
    old = export(3000, seed=11)
    path = tmp_path / "old.csv"
    path.write_text(old.text, encoding="utf-8")
    db = CentralConfig.load(site).db
    proc = subprocess.Popen([CENTRAL_CLI, "--config", str(site), "import", str(path),
                             "--batch-rows", "3"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def some_written() -> bool:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as c:
                return bool(c.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        wait_for(some_written, 120, "the first batch to commit", interval=0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    partial = _central_events(site)
    assert 0 < len(_lines_complete(partial)) < 3000, "killed before it finished"
    again = run_cli("--config", str(site), "import", str(path), timeout=300)
    assert again.returncode == 0, again.stderr
    events = _central_events(site)
    assert events[:len(partial)] == partial
    assert len(_lines_complete(events)) == 3000
    assert sum(b.amount for b in _openings(events).values()) == old.total_fen


def test_a_line_made_bad_by_a_counter_during_the_import_stops_it_cleanly(
        site: Path, tmp_path: Path) -> None:
    """A counter issues one of the file's card numbers between the check and the batch
    that holds it: that batch is refused, the ones before stay, nothing is half-written."""
    from protocol.crypto import ZERO_HASH, SigningKey
    from protocol.event import sign_event
    from protocol.hlc import Hlc

    rows = make_rows(30)
    text = render(rows)

    async def go() -> tuple[importer.Imported | None, list[LineError]]:
        store, key = await _site_store(site)
        try:
            parsed = read_rows(text, TODAY)
            state, pos = await importer.fold_store(store)
            checked = importer.check_rows(parsed.rows, state, TEST_PATIENT_KEYS)
            assert len(checked.todo) == 30
            counter = SigningKey(b"c" * 32)
            await store.enrol("cashier-01", counter.public_key, "cashier")
            taken = next(r for r in rows[20:] if r["card_no"])["card_no"]
            _, data, _ = sign_event(counter, node="cashier-01", seq=1, prev=ZERO_HASH,
                                    hlc=Hlc(1_790_000_000_000, 0), operator="op",
                                    kind="card.issued",
                                    body={"card_no": taken, "patient_id": "P-cashier-01-1"})
            done = await importer.import_rows(store, key, checked.todo[:20], state, pos,
                                              batch_id="imp-a", operator="it", batch_rows=10,
                                              keys=TEST_PATIENT_KEYS)
            await store.ingest("cashier-01", [data])
            try:
                await importer.import_rows(store, key, checked.todo[20:], state, done.pos,
                                           batch_id="imp-a", operator="it", batch_rows=10,
                                              keys=TEST_PATIENT_KEYS)
            except importer.Changed as exc:
                return done, exc.errors
            return None, []
        finally:
            await store.close()

    done, errors = asyncio.run(go())
    assert done is not None and done.patients == 20
    assert [e.key for e in errors] == ["import.card_taken"]
    events = _central_events(site)
    assert len(_lines_complete(events)) == 20


# ------------------------------------------------------------------- a counter syncs
@pytest.mark.slow
def test_a_counter_syncing_from_central_finds_the_patients_and_charges_their_cards(
        tmp_path: Path) -> None:
    from edge_node.ledger import Ledger
    from edge_node.service import CounterService

    central = Central.init(tmp_path / "central")
    old = export(3000, seed=5)
    path = tmp_path / "old.csv"
    path.write_text(old.text, encoding="utf-8")
    r = run_cli("--config", str(central.config), "import", str(path), timeout=300)
    assert r.returncode == 0, r.stderr
    counter = Counter.create(tmp_path, "cashier-01", central)
    # the import, central's enrolment on its trail, and the counter's patient keys (granted
    # as it connects)
    total = len(central.event_ids()) + 1
    central.start()
    try:
        counter.start_sync()
        wait_for(lambda: counter.event_count() == total, 120, "the counter to pull the import")
        with_card = [x for x in old.rows if x["card_no"] and x["national_id"]]
        rich = next(x for x in with_card if float(x["balance"]) >= 30)
        poor = next(x for x in with_card if x["balance"] in ("0", "0.0", "0.00"))

        async def at_the_counter() -> None:
            led = await Ledger.open(counter.db, "cashier-01", counter.key)
            try:
                svc = CounterService(led, "op.wang")
                found = await svc.find_by_national_id(rich["national_id"])
                assert [p.patient_id for p in found] == [patient_id_for(rich["old_patient_no"])]
                view = await svc.lookup_card(rich["card_no"])
                fen = round(float(rich["balance"]) * 100)
                assert view.account.balance == fen and view.patient.name == rich["name"]
                await svc.charge(rich["card_no"], [{"code": "LAB-CBC", "name": "血常规",
                                                    "qty": 1, "unit_price": 2_500}], "lab")
                assert (await svc.lookup_card(rich["card_no"])).account.balance == fen - 2_500
                # moved in: registered in the old system, so ¥1 is a fine first top-up
                await svc.deposit(poor["card_no"], 100, "cash")
                assert (await svc.lookup_card(poor["card_no"])).account.balance == 100
            finally:
                await led.close()

        asyncio.run(at_the_counter())
        assert sum(b for _, b in counter.balances()) == old.total_fen - 2_500 + 100
        wait_for(lambda: len(central.event_ids()) == total + 2, 60, "the counter's push")
        conflicts = run_cli("--config", str(central.config), "conflicts", "list", "--all")
        assert conflicts.stdout.strip().endswith("0 conflict(s)"), conflicts.stdout
    finally:
        counter.stop()
        central.stop()


def test_the_documented_sample_checks_out() -> None:
    sample = Path(__file__).resolve().parents[1] / "docs" / "import-sample.csv"
    parsed = _read(importer.decode_text(sample.read_bytes(), str(sample)))
    assert not parsed.errors, _said(parsed.errors)
    assert len(parsed.rows) == 5 and sum(r.amount for r in parsed.rows) == 161_545


def test_messages_follow_centrals_language(site: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """With a `language` in central's config the command speaks it (Chinese here)."""
    from types import SimpleNamespace

    conf = CentralConfig.load(site)
    zh = SimpleNamespace(db=conf.db, store_at=conf.db, key_file=conf.key_file,
                         max_skew_ms=conf.max_skew_ms,
                         language="zh", patient_keys_file=conf.patient_keys_file)
    path = tmp_path / "bad.csv"
    path.write_text(_csv("A1,张三,,F,1980-01-01,13800138000,,8600000001,-1,"),
                    encoding="utf-8")
    assert asyncio.run(importer.run(zh, path, operator="it")) == 1  # type: ignore[arg-type]
    assert capsys.readouterr().err.splitlines() == [
        "第 2 行，balance：-1 是负数：余额不能为负（欠费请在旧系统结清后再导入）",
        "1 处错误，涉及 1 行：未导入任何数据"]


def test_a_moved_in_patient_owes_no_registration_fee_again() -> None:
    """The first deposit must cover the registration fee, but not for a patient central
    registered from the old system (they registered, and paid, there)."""
    from protocol.core import RuleConfig, State

    def registered(pid: str, node: str) -> State:
        body = {"patient_id": pid, "name": "张三", "sex": "M", "birth_date": "1990-03-07",
                "phone": "13800138000"}
        return REGISTRY.fold([Event(1, node, 1, b"\0" * 32, Hlc(1, 0), "op",
                                    "patient.registered", body)])

    def first_deposit(state: State, pid: str) -> list[str]:
        body = {"patient_id": pid, "amount": 100, "method": "cash", "receipt_no": "D-1"}
        return [p.code for p in REGISTRY.check(state, "account.deposited", body, RuleConfig())]

    assert first_deposit(registered("P-central-A1", CENTRAL), "P-central-A1") == []
    assert first_deposit(registered("P-cashier-01-1", "cashier-01"), "P-cashier-01-1") == [
        "deposit.below_registration_fee"]


def test_imported_names_are_sealed_at_central_and_the_console_finds_them(
        site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A patient moved in from the old system and registered again at a counter: central
    flags the likely duplicate by the names' tags, and neither its database (nor the WAL)
    nor its log holds the name in clear, while the console opens it, finds the patient by
    it and shows it next to the patient numbers of the conflict."""
    import logging

    from central.conflicts import ConflictWatch, list_conflicts
    from central.console.data import ConsoleData
    from central.privacy import central_keys
    from protocol.crypto import ZERO_HASH, SigningKey
    from protocol.event import sign_event
    from protocol.privacy import is_sealed

    caplog.set_level(logging.DEBUG)
    name, spelt = "欧阳娜娜", "欧阳 娜娜"  # the old system wrote a space: same tag
    phone, born = "13912345678", "1985-06-15"
    path = tmp_path / "old.csv"
    path.write_text(_csv(f"Q7,{spelt},,F,{born},{phone},,8600000077,120.00,2026-10-01",
                         "Q8,司马光,,M,1970-01-02,13900000008,,8600000078,1.00,"),
                    encoding="utf-8")
    assert main(["--config", str(site), "import", str(path), "--operator", "it.li"]) == 0
    imported = patient_id_for("Q7")
    registered = next(ev for ev in _central_events(site) if ev.kind == "patient.registered"
                      and ev.body["patient_id"] == imported)
    assert is_sealed(str(registered.body["name"]))
    assert registered.body["name_tag"] == TEST_PATIENT_KEYS.name_tag(name)
    conf = CentralConfig.load(site)
    secrets = [s.encode() for s in (name, spelt, "娜娜", "司马光")]

    def leaked() -> list[str]:
        files = [Path(f"{conf.db}{suffix}") for suffix in ("", "-wal")]
        assert files[0].exists()
        return [f"{f.name}: {s.decode()}" for f in files if f.exists()
                for s in secrets if s in f.read_bytes()]

    async def go() -> None:
        store = await CentralStore.open(conf.db)
        try:
            counter = SigningKey(b"c" * 32)
            await store.enrol("cashier-01", counter.public_key, "cashier")
            pid = "P-cashier-01-000001"
            body = {"patient_id": pid, "sex": "F", "birth_date": born,
                    **TEST_PATIENT_KEYS.sealed_details(pid, {"name": name, "phone": phone})}
            assert REGISTRY.validate("patient.registered", body, "cashier-01") == []
            _, data, _ = sign_event(counter, node="cashier-01", seq=1, prev=ZERO_HASH,
                                    hlc=Hlc(1_790_000_000_000, 0), operator="op.wang",
                                    kind="patient.registered", body=body)
            await store.ingest("cashier-01", [data])
            await ConflictWatch(store).catch_up()
            [dup] = [r for r in await list_conflicts(store) if r.kind == "likely_duplicate"]
            assert set(dup.patients) == {imported, pid} and dup.severity == "low"
            book = " ".join([dup.title, dup.explanation,
                             *(f"{r.label} {r.effect}" for r in dup.remedies)])
            assert name not in book and "娜娜" not in book and "sb1:" not in book
            assert leaked() == []  # the store open: its WAL holds the latest writes

            data_ = ConsoleData(store, language="en", patient_keys=central_keys(conf))
            hits = await data_.search("娜娜")
            assert {(h.patient_id, h.name) for h in hits} == {(imported, spelt), (pid, name)}
            assert [h.patient_id for h in await data_.search(name)] == sorted([imported, pid])
            [old] = await data_.search("8600000077")
            assert (old.patient_id, old.name, old.conflicts) == (imported, spelt, (dup.id,))
            detail = await data_.detail(dup.id)
            assert detail is not None and detail.names == {imported: spelt, pid: name}
            assert f"{pid} ({name})" in data_.named(dup.explanation, dup.patients)
            assert leaked() == []  # the console only read
        finally:
            await store.close()

    asyncio.run(go())
    assert leaked() == []
    assert not any(s.decode() in caplog.text for s in secrets), caplog.text
