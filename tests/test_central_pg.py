"""Central on PostgreSQL: the config's ``database``, the CLI, and `serve` as a real process
with counters syncing — one instance, and two instances on one database.

The PostgreSQL is the machine's (127.0.0.1:5432); each test makes its own database and
drops it.  Unreachable: the tests fail saying so, never skip.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.cli import main
from central.config import CentralConfig, CentralConfigError, write_key
from protocol.crypto import SigningKey
from tests.support.pg import fresh_database_sync, rows
from tests.support.sync_cluster import (
    Central,
    Counter,
    free_port,
    offline_work,
    wait_for,
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database_sync() as url:
        yield url


def write(tmp_path: Path, central: str) -> Path:
    p = tmp_path / "central.toml"
    p.write_text("[central]\n" + central, encoding="utf-8")
    return p


def test_the_config_names_postgresql_or_sqlite_by_url(tmp_path: Path) -> None:
    cfg = CentralConfig.load(write(tmp_path, 'database = "postgresql://onecard@db.local:5432/'
                                             'onecard"\n'))
    assert cfg.postgres and cfg.store_at == "postgresql://onecard@db.local:5432/onecard"
    cfg = CentralConfig.load(write(tmp_path, 'database = "postgresql://u:pw@h/onecard"\n'))
    assert cfg.where == "postgresql://u:***@h/onecard"
    cfg = CentralConfig.load(write(tmp_path, 'database = "sqlite:///data/c.sqlite3"\n'))
    assert not cfg.postgres and cfg.store_at == tmp_path / "data" / "c.sqlite3"
    cfg = CentralConfig.load(write(tmp_path, 'database = "sqlite:////var/lib/c.sqlite3"\n'))
    assert cfg.store_at == Path("/var/lib/c.sqlite3")
    cfg = CentralConfig.load(write(tmp_path, 'db = "x.sqlite3"\n'))
    assert not cfg.postgres and cfg.store_at == tmp_path / "x.sqlite3"
    for text, says in [
        ('db = "a.sqlite3"\ndatabase = "postgresql://h/d"\n', "both db and database"),
        ('database = "mysql://h/d"\n', 'must start with "postgresql://"'),
        ('database = "postgresql:///d"\n', "names no host"),
        ('database = "postgresql://h:5432"\n', "names no database"),
        ('database = "sqlite://rel.db"\n', "sqlite:///relative/path"),
        ("database = 5\n", "must be a URL string"),
    ]:
        with pytest.raises(CentralConfigError, match=says):
            CentralConfig.load(write(tmp_path, text))


def test_the_cli_runs_on_postgresql_and_refuses_sqlite_only_commands_in_one_line(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c" / "central.toml"
    assert main(["--config", str(cfg), "init", "--dir", str(tmp_path / "c"),
                 "--database", pg_url]) == 0
    out = capsys.readouterr().out
    assert f"database    {pg_url}" in out
    assert f'database = "{pg_url}"' in cfg.read_text(encoding="utf-8")
    assert not (tmp_path / "c" / "central.sqlite3").exists()
    key = "ab" * 32
    assert main(["--config", str(cfg), "enrol", "cashier-01", "--key", key, "--role",
                 "cashier", "--operator", "it.li"]) == 0
    assert main(["--config", str(cfg), "nodes"]) == 0
    assert "cashier-01" in capsys.readouterr().out
    # in the database, with the enrolment's signed trail
    assert rows(pg_url, "SELECT id, role FROM nodes ORDER BY id") == [
        ("cashier-01", "cashier"), ("central", "central")]
    assert rows(pg_url, "SELECT count(*) FROM events WHERE node = 'central'")[0][0] >= 1
    for command in (["backup"], ["restore", str(tmp_path / "x.sqlite3")], ["verify"]):
        assert main(["--config", str(cfg), *command]) == 1, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert "works on central's SQLite file" in err and pg_url in err, err
        assert ("pg_dump" in err) == (command[0] != "verify"), err


def test_an_unreachable_postgresql_is_one_line_and_init_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://postgres@127.0.0.1:1/onecard"
    d = tmp_path / "c"
    assert main(["--config", str(d / "central.toml"), "init", "--dir", str(d),
                 "--database", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"onecard-central: cannot reach the central database {url}: ")
    assert err.count("\n") == 1 and not d.exists()
    cfg = write(tmp_path, f'database = "{url}"\n')
    write_key(tmp_path / "central.key", SigningKey.generate())
    for command in (["serve"], ["nodes"], ["conflicts", "list"]):
        assert main(["--config", str(cfg), *command]) == 1, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot reach the central database" in err, err


def converged(central: Central, counters: list[Counter], total: int) -> bool:
    """Central and every counter hold the counters' ``total`` events and all of central's
    own (its trail, key grants, and the conflicts it announced meanwhile: these counters
    register lookalike patients)."""
    ids = central.event_ids()
    own = sum(1 for n, _, _ in ids if n == "central")
    return len(ids) == total + own and all(c.event_count() == len(ids) for c in counters)


def assert_identical(central: Central, counters: list[Counter]) -> None:
    ids = central.event_ids()
    assert central.positions() == list(range(1, len(ids) + 1))  # gapless cursor
    for c in counters:
        assert c.event_ids() == ids, c.node
    balances = [c.balances() for c in counters]
    assert balances[0] and all(b == balances[0] for b in balances)


@pytest.mark.slow
def test_counters_converge_through_central_serving_from_postgresql(
        tmp_path: Path, pg_url: str) -> None:
    central = Central.init(tmp_path / "central", database=pg_url)
    counters = [Counter.create(tmp_path, f"cashier-0{i}", central) for i in range(1, 4)]
    total = sum(asyncio.run(offline_work(c, patients=5, charges=2)) for c in counters)
    assert total == 3 * 5 * 5
    central.start()
    for c in counters:
        c.start_sync()
    try:
        wait_for(lambda: converged(central, counters, total), 60, "convergence")
        assert_identical(central, counters)
        more = asyncio.run(offline_work(counters[1], patients=2, charges=0))
        total += more
        wait_for(lambda: converged(central, counters, total), 20, "live propagation")
        assert_identical(central, counters)
    finally:
        for c in counters:
            c.stop()
        central.stop()
    assert not (tmp_path / "central" / "central.sqlite3").exists()


@pytest.mark.slow
def test_two_central_instances_on_one_postgresql_database_relay_between_counters(
        tmp_path: Path, pg_url: str) -> None:
    """Counter 1 syncs with one `serve`, counter 2 with another, both on one database:
    each gets the other's events at once — each instance polls only every 60 s here, so
    what relays them is PostgreSQL's NOTIFY — positions stay gapless, and central's own
    chain has no fork (one writer at a time)."""
    one = Central.init(tmp_path / "central", database=pg_url)
    two = dataclasses.replace(one, port=free_port(), proc=None)  # same config and key
    a = Counter.create(tmp_path, "cashier-01", one)
    b = Counter.create(tmp_path, "cashier-02", two, url=two.url)
    total = sum(asyncio.run(offline_work(c, patients=4, charges=1)) for c in (a, b))
    slow_poll = {"ONECARD_CENTRAL_WATCH_S": "60"}
    one.start(env=slow_poll)
    two.start(env=slow_poll)
    for c in (a, b):
        c.start_sync()
    try:
        wait_for(lambda: converged(one, [a, b], total), 40, "convergence via two instances")
        assert_identical(one, [a, b])
        more = asyncio.run(offline_work(b, patients=2, charges=0))
        total += more
        wait_for(lambda: converged(one, [a, b], total), 20, "live relay between instances")
        assert_identical(one, [a, b])
        assert a.sync_state()["online"] == 1 and b.sync_state()["online"] == 1
    finally:
        for c in (a, b):
            c.stop()
        one.stop()
        two.stop()
    # central's chain: consecutive seqs, each linked to the one before (no equivocation)
    seqs = [int(r[0]) for r in rows(pg_url, "SELECT seq FROM events WHERE node = 'central'"
                                            " ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    assert rows(pg_url, "SELECT count(*) FROM quarantine") == [(0,)]


def test_central_commands_run_on_postgresql(tmp_path: Path, pg_url: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The commands that work through the store — import, catalogue, dormant, audit,
    conflicts, balance, the trail, limits — on a PostgreSQL central, in process."""
    from tests.conftest import install_test_patient_keys
    from tests.support.old_system import export

    cfg = tmp_path / "c" / "central.toml"
    assert main(["--config", str(cfg), "init", "--dir", str(cfg.parent),
                 "--database", pg_url]) == 0
    install_test_patient_keys(cfg.parent / "patient-data.key")
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace('language = "zh"', 'language = "en"', 1), encoding="utf-8")
    capsys.readouterr()

    def run(*args: str, status: int = 0) -> str:
        got = main(["--config", str(cfg), *args])
        out, err = capsys.readouterr()
        assert got == status, (args, out, err)
        assert "Traceback" not in err
        return out

    old = export(40)
    path = tmp_path / "old.csv"
    path.write_text(old.text, encoding="utf-8")
    out = run("import", str(path), "--batch-rows", "15", "--operator", "it.li")
    assert "rows        40" in out
    run("import", str(path), "--operator", "it.li")  # again: every line already there
    card = next(r["card_no"] for r in old.rows if r["card_no"])
    assert "¥" in run("balance", card)
    run("catalogue", "import", "--sample", "--operator", "it.li")
    shown = run("catalogue", "show")
    assert shown.startswith("version     1\n") and "items       339" in shown
    run("limits", "set", "--floor", "20000", "--cap", "50000", "--operator", "it.li")
    assert "200.00" in run("limits", "show")
    run("dormant", "report", "--months", "1")
    run("dormant", "list")
    run("conflicts", "list")
    run("audit", "daily", "--date", "2026-01-01")
    assert "it.li" in run("audit", "log", "--since", "2000-01-01", "--limit", "500")
    imported = rows(pg_url, "SELECT count(*) FROM events WHERE node = 'central'")[0][0]
    assert int(imported) >= 40 * 2  # each patient's registration and opening balance


async def test_the_console_reads_filters_and_resolves_on_postgresql(
        tmp_path: Path, pg_url: str) -> None:
    """The IT console (its queries: the book, quarantine, node health) on PostgreSQL."""
    from textual.widgets import Input

    from central import conflicts as cf
    from central.console.app import ConsoleApp
    from central.console.screens.detail import DetailScreen
    from central.console.screens.resolve import ResolveScreen
    from central.store import CentralStore
    from tests.support.central_seed import NOW_MS, patient_keys_file, seed_central
    from tests.test_console import SIZE, open_kind, rows, settle, text

    db, key_file = await seed_central(tmp_path, pg_url)
    app = ConsoleApp(pg_url, key_file, "it.li", clock=lambda: NOW_MS, language="en",
                     patient_keys_file=patient_keys_file(db))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert sorted(r[2] for r in rows(pilot, "#queue")) == [
            "clock_skew", "duplicate_patient", "lost_card_used", "overdraft"]
        assert "4 conflict(s)" in text(pilot, "#counts")
        await open_kind(pilot, "overdraft")
        await pilot.press("2", "c")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ResolveScreen)
        pilot.app.screen.query_one("#reason", Input).value = "written off by finance"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
        assert "1 central event(s) signed" in text(pilot, "#message")
    assert not db.exists()  # all of it in PostgreSQL
    store = await CentralStore.open(pg_url)
    try:
        row = {r.kind: r for r in await cf.list_conflicts(store)}["overdraft"]
        assert (row.status, row.resolved_kind) == ("resolved", "charge.reversed")
    finally:
        await store.close()


async def _patients(counter: Counter, n: int, li: int = 0, tag: str = "") -> int:
    """``n`` patients of their own (distinct names and phones) and ``li`` registrations of
    one person, 李四 (same name, birth date and phone at every counter): each a likely
    duplicate of the others.  Returns the events written."""
    from edge_node import config as cfgmod
    from edge_node.ledger import Ledger
    from edge_node.service import CounterService

    cfg = cfgmod.load(counter.config)
    led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
    try:
        svc = CounterService(led, "op.wang")
        before = (await led.head()).seq
        digits = "".join(ch for ch in counter.node if ch.isdigit()) + tag
        for i in range(n + li):
            own = i < n
            await svc.register_patient(
                name=f"病人{digits}{i}" if own else "李四", sex="M", birth_date="1990-03-07",
                phone=f"139{digits:0>3}{before + i:05d}" if own else "13700137000",
                card_no=f"86{digits:0>4}{before + i:06d}", first_deposit=10_000)
        return (await led.head()).seq - before
    finally:
        await led.close()


def _reconciled(url: str) -> bool:
    """Whether the reconciler's checkpoint has reached the cursor (it runs behind acks)."""
    import json

    [(value,)] = rows(url, "SELECT value FROM meta WHERE key = 'recon'")
    [(top,)] = rows(url, "SELECT pos FROM cursor WHERE id = 1")
    return bool(value) and int(json.loads(value)["pos"]) >= int(top)


def _book(url: str) -> dict[str, tuple[str, str]]:
    return {str(r[0]): (str(r[1]), str(r[2])) for r in rows(
        url, "SELECT id, kind, status FROM conflicts WHERE kind = 'likely_duplicate'")}


def _announced(url: str) -> dict[tuple[str, str], int]:
    """How many times central's chain announced each conflict: (kind, conflict id) → n."""
    from protocol.event import decode_event

    out: dict[tuple[str, str], int] = {}
    for (data,) in rows(url, "SELECT data FROM events WHERE node = 'central'"):
        ev = decode_event(bytes(data))
        if ev.kind in ("conflict.raised", "conflict.withdrawn"):
            k = (ev.kind, str(ev.body["conflict_id"]))
            out[k] = out.get(k, 0) + 1
    return out


@pytest.mark.slow
def test_two_instances_one_killed_mid_stream_lose_nothing_and_raise_each_conflict_once(
        tmp_path: Path, pg_url: str) -> None:
    """Counters spread over two `serve` instances on one database, each given both URLs.
    The instance that reconciles (the lease holder: started first) is killed while a
    counter pushes: that counter fails over to the other instance, which takes over the
    reconciler from its checkpoint — every event arrives once, and each conflict is raised
    and announced once (the one found before the kill, withdrawn once after it, when a
    third registration of the same person makes a bigger group; that group's by the
    survivor)."""
    import signal

    one = Central.init(tmp_path / "central", database=pg_url)
    two = dataclasses.replace(one, port=free_port(), proc=None)
    a = Counter.create(tmp_path, "cashier-01", one)
    b = Counter.create(tmp_path, "cashier-02", two, url=two.url)
    from edge_node import config as cfgmod
    for counter, urls in ((a, (one.url, two.url)), (b, (two.url, one.url))):
        cfg = cfgmod.load(counter.config)
        cfg = dataclasses.replace(cfg, sync=dataclasses.replace(cfg.sync, central_urls=urls))
        counter.config.write_text(cfgmod.render(cfg), encoding="utf-8")
    total = sum(asyncio.run(_patients(c, 40, li=1)) for c in (a, b))
    one.start()  # first: its start-up catch-up takes the reconciler's lease
    two.start()
    for c in (a, b):
        c.start_sync()
    try:
        wait_for(lambda: converged(one, [a, b], total), 60, "first convergence")
        wait_for(lambda: list(_book(pg_url).values()) == [("likely_duplicate", "open")]
                 and len(_announced(pg_url)) == 1, 30, "the first conflict, announced")
        [first] = _book(pg_url)
        # a writes a lot, and the reconciling instance dies while a pushes it
        held = total
        total += asyncio.run(_patients(a, 150, li=1, tag="9"))
        wait_for(lambda: sum(1 for e in one.event_ids() if e[0] != "central") > held, 30,
                 "a pushing")
        assert one.proc is not None
        one.proc.send_signal(signal.SIGKILL)
        one.proc.wait(10)
        wait_for(lambda: sum(1 for e in two.event_ids() if e[0] != "central") == total, 60,
                 "every counter event at central")
        wait_for(lambda: len(_book(pg_url)) == 2 and _book(pg_url)[first][1] == "withdrawn",
                 30, "the survivor reconciling")
        # the reconciler runs behind the acks: every event folded and its announcements
        # made, then delivered (counts alone can match while one is still on its way)
        wait_for(lambda: _reconciled(pg_url) and len(_announced(pg_url)) == 3, 30,
                 "every event reconciled and announced")
        wait_for(lambda: a.event_ids() == b.event_ids() == two.event_ids(), 60,
                 "the announcements delivered")
    finally:
        for c in (a, b):
            c.stop()
        one.stop()
        two.stop()
    # nothing lost or doubled: every event once, gapless positions, central's chain whole
    assert two.positions() == list(range(1, len(two.event_ids()) + 1))
    assert a.event_ids() == b.event_ids() == two.event_ids()
    seqs = [int(r[0]) for r in rows(pg_url, "SELECT seq FROM events WHERE node = 'central'"
                                            " ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    # each conflict raised once, the first withdrawn once, the bigger group open
    book = _book(pg_url)
    [second] = [cid for cid in book if cid != first]
    assert book[second] == ("likely_duplicate", "open")
    assert _announced(pg_url) == {("conflict.raised", first): 1,
                                  ("conflict.withdrawn", first): 1,
                                  ("conflict.raised", second): 1}


async def test_an_instance_is_woken_by_the_others_events_not_by_its_own(pg_url: str) -> None:
    """NOTIFY comes back to the LISTEN of the process that sent it: its feeds were woken
    at its own commit, so only another instance's announcement calls back; and a pooled
    connection goes back to the pool without a reset round trip, but never inside a
    transaction a cancelled caller left open."""
    from central.db import PgDatabase

    a, b = await PgDatabase.open(pg_url), await PgDatabase.open(pg_url)
    try:
        woken = {"a": 0, "b": 0}
        await a.listen(lambda: woken.__setitem__("a", woken["a"] + 1))
        await b.listen(lambda: woken.__setitem__("b", woken["b"] + 1))
        async with a.transaction() as tx:
            await a.announce_events(tx)
        async with asyncio.timeout(10):
            while woken["b"] < 1:
                await asyncio.sleep(0.01)
        async with b.transaction() as tx:
            await b.announce_events(tx)
        async with asyncio.timeout(10):
            while woken["a"] < 1:
                await asyncio.sleep(0.01)
        # (a's own NOTIFY committed before b's, and a listener hears them in commit
        # order: had a been called back for its own, it would have been by now)
        assert woken == {"a": 1, "b": 1}

        conn = await a._pool.acquire()  # a caller cancelled inside its transaction
        await conn.execute("BEGIN")
        await a._pool.release(conn)
        for _ in range(10):  # the pool's connections in turn: none still in it
            async with a._pool.acquire() as c:
                assert not c.is_in_transaction()
    finally:
        await a.close()
        await b.close()


async def test_many_rows_inserted_as_one_statement_are_the_rows_with_the_same_errors(
        pg_url: str) -> None:
    """executemany of a plain INSERT (many rows: one statement over arrays) stores the
    rows as given, NULLs and bytes included, and a row breaking a key fails the whole
    transaction as a row-by-row insert does."""
    from central.db import PgDatabase, PgIntegrityError

    db = await PgDatabase.open(pg_url)
    try:
        await db.execute("CREATE TABLE t (a BIGINT PRIMARY KEY, b TEXT, c BYTEA NOT NULL)")
        rows = [(i, None if i % 3 == 0 else f"行{i}", bytes([i % 256]) * (i % 7))
                for i in range(100)]
        few = [(1000 + i, "x", b"") for i in range(3)]
        async with db.transaction() as tx:
            await tx.executemany("INSERT INTO t (a, b, c) VALUES (?, ?, ?)", rows)
            await tx.executemany("INSERT INTO t (a, b, c) VALUES (?, ?, ?)", few)
        assert await db.read("SELECT a, b, c FROM t ORDER BY a") == rows + few
        with pytest.raises(PgIntegrityError):
            async with db.transaction() as tx:
                await tx.executemany("INSERT INTO t (a, b, c) VALUES (?, ?, ?)",
                                     [(200 + i, "y", b"") for i in range(20)] + [(5, "dup", b"")])
        assert (await db.read("SELECT count(*) FROM t"))[0][0] == 103
    finally:
        await db.close()
