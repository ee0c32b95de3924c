"""Backups, restores, damaged files and a counter recovering its chain from central:
real SQLite files, `onecard-edge` / `onecard-central` as processes, a writer process
charging while the backup runs, central serving on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge_node import config as cfgmod
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from tests.conftest import item, node_key
from tests.support.sync_cluster import (
    CENTRAL_CLI,
    EDGE_CLI,
    Central,
    Counter,
    offline_work,
    run_cli,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def edge(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE_CLI, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def central_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--config", str(config), *args, timeout=120)


def counter_config(d: Path, node: str = "cashier-01") -> Path:
    """A counter config whose key is the tests' key for ``node`` (the writer's)."""
    d.mkdir(parents=True, exist_ok=True)
    cfgmod.write_key(d / "node.key", node_key(node))
    path = d / "onecard-edge.toml"
    path.write_text(cfgmod.render(cfgmod.EdgeConfig(
        node_id=node, db=d / f"{node}.sqlite3", key_file=d / "node.key",
        sync=cfgmod.SyncConfig(central_key="ab" * 32))), encoding="utf-8")
    return path


def events_in(db: Path) -> int:
    c = sqlite3.connect(db)  # (read-write: it may have a WAL to read)
    try:
        return int(c.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        c.close()


def one_clear_line(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_backup_while_charging_rotate_restore_and_verify(tmp_path: Path) -> None:
    cfg_path = counter_config(tmp_path / "counter")
    cfg = cfgmod.load(cfg_path)
    writer = subprocess.Popen([sys.executable, "-m", "tests.crash_writer", str(cfg.db)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True, env=ENV)
    assert writer.stdout is not None
    try:
        for _ in range(30):  # it is charging: 30 committed seqs printed
            assert writer.stdout.readline().strip().isdigit(), "the writer is not appending"
        outs = []
        for _ in range(3):
            r = edge(cfg_path, "backup", "--keep", "2")
            assert r.returncode == 0, r.stderr
            outs.append(r.stdout)
            assert writer.poll() is None  # still charging: the backup stopped nobody
        # one line each: path, size, events, verified; the oldest rotated out
        assert all(len(o.splitlines()) == 1 and "verified" in o for o in outs)
        assert "removed 1 old" in outs[2]
        kept = sorted(cfg.backup_dir.glob("cashier-01-*.sqlite3"))
        assert len(kept) == 2 and [p.name for p in kept] == sorted(
            o.split()[1].rsplit("/", 1)[1] for o in outs[1:])
        assert not list(cfg.backup_dir.glob(".*"))  # no temporary file left behind
        newest = kept[-1]
        n_backup = events_in(newest)
        assert f"{n_backup} events" in outs[2]
        # restore refuses while the writer holds the ledger
        r = edge(cfg_path, "restore", str(newest))
        one_clear_line(r, "open in another process")
        assert not (cfg.db.parent / (cfg.db.name + ".before-restore")).exists()
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.communicate(timeout=30)
    n_live = events_in(cfg.db)
    assert n_live > n_backup
    r = edge(cfg_path, "restore", str(newest))
    assert r.returncode == 0, r.stderr
    aside = cfg.db.parent / (cfg.db.name + ".before-restore")
    assert aside.exists() and events_in(aside) == n_live  # the replaced file, kept whole
    r = edge(cfg_path, "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{n_backup} events" in r.stdout
    # a second restore keeps the first one's kept file too
    r = edge(cfg_path, "restore", str(kept[0]))
    assert r.returncode == 0 and "before-restore.2" in r.stdout, r.stdout + r.stderr
    assert events_in(aside) == n_live and events_in(cfg.db) == events_in(kept[0])
    # restored: no own event until central has confirmed the chain (a fork otherwise)
    r = edge(cfg_path, "info")
    assert "recovering from central" in r.stdout

    async def try_charge() -> None:
        led = await Ledger.open(cfg.db, "cashier-01", node_key("cashier-01"))
        try:
            with pytest.raises(OperationRefused) as refused:
                await CounterService(led, "op").charge("8600000001", [item(1)], "x")
            assert refused.value.codes == ["ledger.recover_pending"]
        finally:
            await led.close()
    asyncio.run(try_charge())


def test_backup_that_does_not_verify_is_removed(tmp_path: Path) -> None:
    cfg_path = counter_config(tmp_path / "counter")
    cfg = cfgmod.load(cfg_path)

    async def make() -> None:
        led = await Ledger.open(cfg.db, "cashier-01", node_key("cashier-01"))
        svc = CounterService(led, "op")
        await svc.register_patient(name="张三", sex="M", birth_date="1990-01-01",
                                   phone="13800138000", card_no="8600000001",
                                   first_deposit=10_000)
        await led.close()
    asyncio.run(make())
    c = sqlite3.connect(cfg.db)  # an altered event: the chain verify must catch it
    c.execute("UPDATE events SET data = data || x'00' WHERE seq = 2")
    c.commit()
    c.close()
    r = edge(cfg_path, "backup")
    one_clear_line(r, "does not verify", "removed")
    assert not list(cfg.backup_dir.iterdir())


def damage_files(good: Path, where: Path) -> dict[str, Path]:
    size = good.stat().st_size
    out = {"truncated": where / "truncated.sqlite3", "zeros": where / "zeros.sqlite3",
           "empty": where / "empty.sqlite3"}
    out["truncated"].write_bytes(good.read_bytes()[: size // 2])
    out["zeros"].write_bytes(bytes(size))
    out["empty"].write_bytes(b"")
    return out


def test_damaged_ledger_is_one_clear_message(tmp_path: Path) -> None:
    cfg_path = counter_config(tmp_path / "counter")
    cfg = cfgmod.load(cfg_path)
    asyncio.run(offline_work_at(cfg_path, 20))
    bad = damage_files(cfg.db, tmp_path)
    for what, f in bad.items():
        shutil.copyfile(f, cfg.db)
        for cmd in ("info", "verify", "sync", "run", "backup"):
            r = edge(cfg_path, cmd, timeout=60)
            one_clear_line(r, str(cfg.db))
            if cmd != "backup":
                assert "onecard-edge restore" in r.stderr and "recover" in r.stderr, r.stderr
            assert cfg.db.read_bytes() == f.read_bytes(), (what, cmd)  # left as it was


def zero_table_root(db: Path, table: str) -> None:
    """Zero the root page of ``table``: the header is intact, the file opens, and the
    table's first read finds the damage (a bad sector)."""
    c = sqlite3.connect(db)
    (root,), (size,) = (c.execute("SELECT rootpage FROM sqlite_master WHERE name=?",
                                  (table,)).fetchone(),
                        c.execute("PRAGMA page_size").fetchone())
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(bytes(size))


def test_damage_inside_a_file_that_opens_is_the_same_clear_message(tmp_path: Path) -> None:
    cfg_path = counter_config(tmp_path / "counter")
    cfg = cfgmod.load(cfg_path)
    asyncio.run(offline_work_at(cfg_path, 20))
    zero_table_root(cfg.db, "events")
    for cmd in ("verify", "backup"):  # (info reads no page of the table: it still answers)
        r = edge(cfg_path, cmd, timeout=60)
        one_clear_line(r, str(cfg.db), "damaged" if cmd != "backup" else "does not verify")
    central = Central.init(tmp_path / "central")
    Counter.create(tmp_path, "cashier-01", central)  # a node row: central's own event too
    zero_table_root(central.db, "events")
    for args in (("serve", "--port", "0"), ("backup",)):
        r = central_cli(central.config, *args)
        one_clear_line(r, str(central.db))
    assert "onecard-central restore" in central_cli(central.config, "serve", "--port",
                                                    "0").stderr


async def offline_work_at(cfg_path: Path, patients: int) -> None:
    cfg = cfgmod.load(cfg_path)
    led = await Ledger.open(cfg.db, cfg.node_id, cfg.load_key())
    svc = CounterService(led, "op")
    for i in range(patients):
        await svc.register_patient(name="张三", sex="M", birth_date="1990-01-01",
                                   phone="13800138000", card_no=f"86{i:08d}",
                                   first_deposit=10_000)
    await led.close()


def test_ledger_behind_central_fails_verify_and_refuses_appends(tmp_path: Path) -> None:
    """What a sync attempt learned: central holds seq 7 of this node; the ledger is empty."""
    cfg_path = counter_config(tmp_path / "counter")
    cfg = cfgmod.load(cfg_path)

    async def learn() -> None:
        led = await Ledger.open(cfg.db, "cashier-01", node_key("cashier-01"))
        await led.central_holds(7)
        with pytest.raises(OperationRefused) as refused:
            await CounterService(led, "op").register_patient(
                name="张三", sex="M", birth_date="1990-01-01", phone="13800138000",
                card_no="8600000001", first_deposit=10_000)
        assert refused.value.codes == ["ledger.recovering"]
        assert (await led.head()).seq == 0
        await led.close()
    asyncio.run(learn())
    r = edge(cfg_path, "verify")
    assert r.returncode == 1
    assert "central holds this counter's chain to seq 7" in r.stdout
    assert "recover" in r.stdout


def test_central_backup_restore_and_damage_through_the_cli(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    counter = Counter.create(tmp_path, "cashier-01", central)
    n = asyncio.run(offline_work(counter, patients=3))
    central.start()
    counter.start_sync()
    try:
        wait_for(lambda: held(central, "cashier-01") == n, 60, "central holds the events")
        r = central_cli(central.config, "backup", "--keep", "1")
        assert r.returncode == 0, r.stderr
        assert f"{len(central.event_ids())} events, verified" in r.stdout
        r2 = central_cli(central.config, "backup", "--keep", "1")
        assert r2.returncode == 0 and "removed 1 old" in r2.stdout
        backups = sorted((central.dir / "backups").glob("central-*.sqlite3"))
        assert len(backups) == 1
        r = central_cli(central.config, "restore", str(backups[0]))
        one_clear_line(r, "open in another process")
        more = asyncio.run(offline_work(counter, patients=1))  # after the backup
        wait_for(lambda: held(central, "cashier-01") == n + more, 60, "the later work")
    finally:
        counter.stop()
        central.stop()
    old_id = store_id(central.db)
    r = central_cli(central.config, "restore", str(backups[0]))
    assert r.returncode == 0, r.stderr
    assert (central.dir / "central.sqlite3.before-restore").exists()
    assert held(central, "cashier-01") == n and store_id(central.db) != old_id
    r = central_cli(central.config, "nodes")
    assert r.returncode == 0 and "cashier-01" in r.stdout
    # the counter pushes again what the backup lacked
    central.start()
    counter.start_sync()
    try:
        wait_for(lambda: held(central, "cashier-01") == n + more, 60,
                 "re-pushed after restore")
    finally:
        counter.stop()
        central.stop()
    # damaged store: one line naming the file and the restore command
    for what, f in damage_files(central.db, tmp_path).items():
        shutil.copyfile(f, central.db)
        for args in (("nodes",), ("serve", "--port", "0"), ("backup",)):
            r = central_cli(central.config, *args)
            one_clear_line(r, str(central.db))
            if args[0] != "backup":
                assert "onecard-central restore" in r.stderr, (what, r.stderr)
    # …and the way out it names: the database gone altogether, restore the backup
    for leftover in central.dir.glob("central.sqlite3*"):
        leftover.unlink()
    r = central_cli(central.config, "restore", str(backups[0]))
    assert r.returncode == 0 and "kept" not in r.stdout, r.stdout + r.stderr
    r = central_cli(central.config, "nodes")
    assert r.returncode == 0 and "cashier-01" in r.stdout, r.stderr


def held(central: Central, *nodes: str) -> int:
    """How many events of ``nodes`` central holds (it holds one of its own too)."""
    return sum(1 for node, _, _ in central.event_ids() if node in nodes)


def store_id(db: Path) -> bytes:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return bytes(c.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()[0])
    finally:
        c.close()


def test_counter_whose_disk_died_recovers_its_chain_and_continues(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    a = Counter.create(tmp_path, "cashier-01", central)
    b = Counter.create(tmp_path, "cashier-02", central)
    na = asyncio.run(offline_work(a, patients=3))
    nb = asyncio.run(offline_work(b, patients=2))
    key_backup = tmp_path / "offline-key-backup" / "node.key"  # the hospital's key backup
    key_backup.parent.mkdir()
    shutil.copyfile(a.dir / "node.key", key_backup)
    central.start()
    try:
        for c in (a, b):
            c.start_sync()
        wait_for(lambda: held(central, "cashier-01", "cashier-02") == na + nb, 60,
                 "central holds everything")
        # (central's own events too, whose number may still grow: compare with it now)
        wait_for(lambda: a.event_count() == len(central.event_ids()), 60,
                 "a holds everything")
        total = a.event_count()
        a.stop()
        # the disk died: everything of the counter is gone
        shutil.rmtree(a.dir)
        a.dir.mkdir()
        os.replace(key_backup, a.dir / "node.key")  # (mode 0600 kept by copyfile's source)
        os.chmod(a.dir / "node.key", 0o600)
        r = subprocess.run([EDGE_CLI, "--config", str(a.config), "init", "cashier-01",
                            "--central-url", central.url, "--central-key", central.key_hex],
                           capture_output=True, text=True, timeout=60, env=ENV)
        assert r.returncode == 0 and "keeping the existing key" in r.stdout, r.stderr
        assert "onecard-edge recover" in r.stdout  # what a re-installed counter does next
        # central is down for a moment: recover cannot finish, and the counter takes no
        # new event meanwhile (its seq would fork the chain central holds)
        central.stop()
        r = edge(a.config, "recover", "--timeout", "3")
        one_clear_line(r, "not recovered")
        with pytest.raises(OperationRefused) as refused:
            asyncio.run(offline_work(a, patients=1))
        assert refused.value.codes == ["ledger.recover_pending"]
        assert "recovering from central" in str(refused.value)
        central.start()
        r = edge(a.config, "recover", "--timeout", "60")
        assert r.returncode == 0, r.stderr
        assert f"next event is seq {na + 1}" in r.stdout
        # its own chain and everyone's events (and any announcement central made since)
        assert a.event_count() >= total
        assert edge(a.config, "verify").returncode == 0
        # it continues: the next event has the next seq, never a reused one
        more = asyncio.run(offline_work(a, patients=1))
        with sqlite3.connect(f"file:{a.db}?mode=ro", uri=True) as c:
            seqs = [s for (s,) in c.execute(
                "SELECT seq FROM events WHERE node='cashier-01' ORDER BY seq")]
        assert seqs == list(range(1, na + more + 1))
        a.start_sync()
        wait_for(lambda: held(central, "cashier-01") == na + more, 60, "new work pushed")
        wait_for(lambda: a.event_ids() == central.event_ids() == b.event_ids(), 60,
                 "everyone holds the same events")
    finally:
        for c in (a, b):
            c.stop()
        central.stop()
    with sqlite3.connect(f"file:{central.db}?mode=ro", uri=True) as c:
        assert c.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
        kinds = [k for (k,) in c.execute("SELECT kind FROM conflicts")]
    assert "equivocation" not in kinds and "chain_break" not in kinds


def test_central_cli_has_backup_and_restore_help() -> None:
    for cli, cmd in ((CENTRAL_CLI, "backup"), (CENTRAL_CLI, "restore"), (EDGE_CLI, "backup"),
                     (EDGE_CLI, "restore"), (EDGE_CLI, "recover")):
        r = subprocess.run([cli, cmd, "--help"], capture_output=True, text=True, timeout=60,
                           env=ENV)
        assert r.returncode == 0 and "usage" in r.stdout


async def test_counter_app_says_it_is_recovering_and_refuses_new_business(
        tmp_path: Path) -> None:
    """The status line says "recovering from central…" and a deposit is refused, in the
    counter's language, before anything is signed."""
    from textual.widgets import Static

    from edge_node.config import write_key
    from edge_node.tui.widgets.status import StatusBar
    from tests.tui_harness import (
        fill,
        form_error,
        home,
        log_in,
        make_app,
        make_config,
        open_ledger,
        seed_patient,
        seed_staff,
        settle_down,
        tap,
    )

    cfg = make_config(tmp_path, language="zh")
    write_key(cfg.key_file, node_key(cfg.node_id))
    led = await open_ledger(cfg)
    await seed_staff(led)
    await seed_patient(led, "8600000001")
    head = (await led.head()).seq
    await led.central_holds(head + 4)  # a sync found central holding more of our chain
    await led.close()
    app = make_app(cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        await log_in(pilot)
        await tap(pilot, "8600000001")
        bar = home(pilot).query_one(StatusBar)
        for _ in range(100):  # the bar polls the ledger: bounded wait for its next look
            if "恢复" in str(bar.query_one("#pending", Static).render()):
                break
            await pilot.pause(0.05)
        assert str(bar.query_one("#pending", Static).render()) == "正在从中心恢复…"
        await pilot.press("f3")
        await settle_down(pilot)
        await fill(pilot, "#amount", "50")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert "正在从中心恢复" in form_error(pilot), form_error(pilot)
    led = await open_ledger(cfg)
    assert (await led.head()).seq == head  # nothing signed
    await led.close()


async def test_central_copy_check_walks_every_chain_and_knows_rotated_keys(
        tmp_path: Path) -> None:
    """A node's events verify with the key valid at their seq (rotation keeps the old one
    for what it signed); a legacy re-enrolment's old events verify by hash and link; an
    altered event, or a bad signature since the current enrolment, fails the check."""
    from central.backup import check_store_copy
    from central.store import CentralStore
    from edge_node import backup as files
    from tests.test_central_store import KEYS, chain

    s = await CentralStore.open(tmp_path / "central.sqlite3")
    await s.enrol("c1", KEYS["c1"].public_key, "cashier", now_ms=1_000)
    first = chain("c1", 3)
    await s.ingest("c1", first, now_ms=2_000)
    new_key = KEYS["c2"]
    assert await s.rotate("c1", new_key.public_key, now_ms=4_000) == 4
    head = await s.head("c1")
    await s.ingest("c1", chain("c1", 2, start=4, prev=head.hash, key=new_key), now_ms=5_000)
    await s.close()
    db = tmp_path / "central.sqlite3"
    done = files.backup(db, tmp_path / "b", "central", 3, check_store_copy)
    assert done.events == 5
    c = sqlite3.connect(db)  # the new key claimed for every seq: the old ones fail...
    c.execute("DELETE FROM node_keys WHERE node = 'c1' AND from_seq = 1")
    c.execute("UPDATE node_keys SET from_seq = 1 WHERE node = 'c1'")
    c.execute("UPDATE nodes SET enrolled_ms = 0 WHERE id = 'c1'")
    c.commit()
    c.close()
    with pytest.raises(files.BackupError, match="signature"):
        files.backup(db, tmp_path / "b", "central", 3, check_store_copy)
    c = sqlite3.connect(db)  # ...but for a node re-enrolled before key histories were kept
    c.execute("UPDATE nodes SET enrolled_ms = 4000 WHERE id = 'c1'")
    c.commit()
    c.close()
    assert files.backup(db, tmp_path / "b", "central", 3, check_store_copy).events == 5
    c = sqlite3.connect(db)
    c.execute("UPDATE events SET data = data || x'00' WHERE seq = 2")
    c.commit()
    c.close()
    with pytest.raises(files.BackupError, match="altered"):
        files.backup(db, tmp_path / "b", "central", 3, check_store_copy)
    assert len(files.backups(tmp_path / "b", "central")) == 2  # the failed ones removed


def test_backup_config_keys_defaults_and_checks(tmp_path: Path) -> None:
    from central.backup import settings
    from central.config import CentralConfig, CentralConfigError
    from edge_node.errors import ConfigError

    path = counter_config(tmp_path / "counter")
    cfg = cfgmod.load(path)
    assert cfg.backup_dir == cfg.db.parent / "backups" and cfg.backup.keep == 7
    text = path.read_text(encoding="utf-8").replace('[backup]\ndir = ""', '[backup]\ndir = "bk"')
    path.write_text(text.replace("keep = 7", "keep = 3"), encoding="utf-8")
    cfg = cfgmod.load(path)
    assert (cfg.backup_dir, cfg.backup.keep) == (path.parent / "bk", 3)
    for bad in ("keep = 0", 'keep = "3"', "colour = 1"):
        path.write_text(text.replace("keep = 7", bad), encoding="utf-8")
        with pytest.raises(ConfigError, match=r"\[backup\]"):
            cfgmod.load(path)
    c = tmp_path / "central.toml"
    c.write_text('[central]\ndb = "c.sqlite3"\n', encoding="utf-8")
    s = settings(CentralConfig.load(c))
    assert (s.dir, s.keep) == (tmp_path / "backups", 7)
    c.write_text('[central]\n[backup]\ndir = "/srv/bk"\nkeep = 30\n', encoding="utf-8")
    assert settings(CentralConfig.load(c)) == type(s)(Path("/srv/bk"), 30)
    c.write_text("[backup]\nkeep = -1\n", encoding="utf-8")
    with pytest.raises(CentralConfigError, match="keep"):
        settings(CentralConfig.load(c))


def test_recovery_with_a_new_key_needs_a_rotation_and_then_gets_the_chain_back(
        tmp_path: Path) -> None:
    """The node key was lost with the disk: revoking and re-enrolling the id is refused (a
    revoked node stays revoked); rotating its key at central keeps the old key for the
    chain central holds, so recover brings that chain back under the new key."""
    central = Central.init(tmp_path / "central")
    a = Counter.create(tmp_path, "cashier-01", central)
    n = asyncio.run(offline_work(a, patients=1))
    central.start()
    try:
        a.start_sync()
        wait_for(lambda: held(central, "cashier-01") == n, 60, "central holds a's events")
        a.stop()
        shutil.rmtree(a.dir)  # the disk died, and the key with it
        r = subprocess.run([EDGE_CLI, "--config", str(a.config), "init", "cashier-01",
                            "--central-url", central.url, "--central-key", central.key_hex],
                           capture_output=True, text=True, timeout=60, env=ENV)
        assert r.returncode == 0, r.stderr
        new_key = next(line.split()[-1] for line in r.stdout.splitlines()
                       if line.startswith("public key"))
        r = central_cli(central.config, "enrol", "cashier-01", "--key", new_key, "--role",
                        "cashier")
        assert r.returncode == 1 and "onecard-central rotate cashier-01" in r.stderr
        r = central_cli(central.config, "rotate", "cashier-01", "--key", new_key)
        assert r.returncode == 0 and f"from seq {n + 1}" in r.stdout, r.stdout + r.stderr
        r = edge(a.config, "recover", "--timeout", "600", timeout=120)  # stops by itself
        assert r.returncode == 0, r.stdout + r.stderr
        with sqlite3.connect(f"file:{a.db}?mode=ro", uri=True) as c:
            assert c.execute("SELECT count(*) FROM events WHERE node='cashier-01'"
                             ).fetchone()[0] == n
        r = edge(a.config, "verify")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        a.stop()
        central.stop()
