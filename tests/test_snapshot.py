"""A new or rebuilt counter from central's signed snapshot (issue 15), through real processes:
``onecard-central serve`` and ``snapshot``, ``onecard-edge bootstrap``, ``sync``, ``verify``
and ``rebuild``; and what is refused (an altered stream, a ledger that holds events)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from edge_node import config as cfgmod
from edge_node.ledger import Ledger
from edge_node.snapshot import SNAPSHOT_META, base_path
from protocol.domain import REGISTRY
from tests.support.sync_cluster import (
    EDGE_CLI,
    Central,
    Counter,
    offline_work,
    run_cli,
    wait_for,
)

pytestmark = pytest.mark.xdist_group("processes")

TABLES = [*sorted(rt.TABLE for rt in REGISTRY.records), "patient_search"]


def edge(counter: Counter, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE_CLI, "--config", str(counter.config), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={"ONECARD_SYNC_BACKOFF_MAX_S": "1", "PATH": "/usr/bin:/bin"})


def projections(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
        return {t: sorted(c.execute(f"SELECT * FROM {t}").fetchall()) for t in TABLES}


def converged(central: Central, counters: list[Counter], n: int) -> bool:
    """Central holds the counters' ``n`` events, and every counter holds all central holds
    (central's own included: its trail, grants, conflicts it announced)."""
    held = central.event_ids()
    if sum(1 for x in held if x[0] != "central") != n:
        return False
    return all(c.event_ids() == held for c in counters)


def snapshot(central: Central) -> str:
    r = run_cli("--config", str(central.config), "snapshot", timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    central = Central.init(tmp_path / "central")
    central.start()
    made: list[Counter] = []
    yield central, made, tmp_path
    for c in made:
        c.stop()
    central.stop()


def test_a_new_counter_bootstraps_from_the_snapshot_and_then_holds_what_a_full_sync_holds(
        cluster) -> None:  # type: ignore[no-untyped-def]
    central, made, base = cluster
    a = Counter.create(base, "cashier-01", central)
    b = Counter.create(base, "cashier-02", central)
    made += [a, b]
    n = asyncio.run(offline_work(a, 4)) + asyncio.run(offline_work(b, 3))
    a.start_sync()
    b.start_sync()
    wait_for(lambda: converged(central, [a, b], n), 60, "a and b converged")
    out = snapshot(central)
    assert "snapshot at position" in out
    # work after the snapshot: the new counter pulls it as events
    a.stop()
    n += asyncio.run(offline_work(a, 2, prefix="9"))
    a.start_sync()
    wait_for(lambda: converged(central, [a, b], n), 60, "the work after the snapshot synced")

    c = Counter.create(base, "cashier-03", central)
    made.append(c)
    r = edge(c, "bootstrap")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "central's snapshot at position" in r.stdout and "bootstrapped in" in r.stdout
    # the events before the snapshot are not here, the ones after it are
    after = c.event_count()
    assert 0 < after < n
    assert base_path(c.db).exists()
    with closing(sqlite3.connect(c.db)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key=?", (SNAPSHOT_META,)).fetchone()
    # same state as a counter that folded every event (b), search index included
    wait_for(lambda: converged(central, [b], n), 60, "b has everything")
    assert projections(c.db) == projections(b.db)
    assert c.balances() == b.balances() == a.balances()

    async def look() -> None:
        cfg = cfgmod.load(c.config)
        led = await Ledger.open(cfg.db, cfg.node_id, c.key)
        try:
            found = await led.search_patients("张三", limit=50)
            assert len(found) == 9  # every patient, those from before the snapshot too
            assert (await led.verify()).ok
            before = await led.dump_projections()
            await led.rebuild()  # from the kept snapshot, then the events after it
            again = await led.dump_projections()
            assert again == before
        finally:
            await led.close()
    asyncio.run(look())
    r = edge(c, "info")
    assert r.returncode == 0 and "started at  central's snapshot at position" in r.stdout, r.stdout
    r = edge(c, "verify")
    assert r.returncode == 0 and "follow central's snapshot at position" in r.stdout, \
        r.stdout + r.stderr

    # new events are accepted: the bootstrapped counter works and syncs
    n += asyncio.run(offline_work(c, 1, prefix="7"))
    c.start_sync()
    wait_for(lambda: converged(central, [a, b], n), 60, "c's new work reached a and b")
    wait_for(lambda: projections(c.db) == projections(b.db), 30, "c and b agree")


def test_a_rebuilt_counter_gets_its_own_chain_back_from_the_snapshot_and_goes_on(
        cluster) -> None:  # type: ignore[no-untyped-def]
    central, made, base = cluster
    a = Counter.create(base, "cashier-11", central)
    made.append(a)
    n = asyncio.run(offline_work(a, 3))
    a.start_sync()
    wait_for(lambda: converged(central, [a], n), 60, "a synced")
    snapshot(central)
    a.stop()
    n += asyncio.run(offline_work(a, 1, prefix="8"))  # after the snapshot
    a.start_sync()
    wait_for(lambda: converged(central, [a], n), 60, "a synced again")
    a.stop()
    own = [r for r in a.event_ids() if r[0] == a.node]
    # the counter's disk dies: a fresh ledger, the same key
    lost = a.db.with_name("lost")
    lost.mkdir()
    for p in a.dir.glob(f"{a.node}.sqlite3*"):
        shutil.move(str(p), lost / p.name)
    r = edge(a, "bootstrap")
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"own chain at seq {len(own)}" in r.stdout
    # its events after the snapshot came back; the rest stays at central
    back = {x for x in a.event_ids() if x[0] == a.node}
    assert back and back < set(own)
    n += asyncio.run(offline_work(a, 1, prefix="6"))  # continues its chain
    a.start_sync()
    wait_for(lambda: converged(central, [], n) and a.sync_state()["acked_seq"] == len(own) + 4,
             60, "central took a's next events")
    assert central.rows("SELECT count(*) FROM quarantine")[0][0] == 0

    # its backups keep the snapshot it started from (once), so a restore on a new disk
    # can rebuild and verify
    a.stop()
    first, second = edge(a, "backup"), edge(a, "backup")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "started from:" in first.stdout and "(copied)" in first.stdout, first.stdout
    assert "(kept with an earlier backup)" in second.stdout, second.stdout
    kept = list((a.dir / "backups").glob("*.snapshot.zst"))
    assert len(kept) == 1 and kept[0].read_bytes() == base_path(a.db).read_bytes()
    backup_file = Path(second.stdout.split()[1])
    dead = a.db.with_name("dead")
    dead.mkdir()
    for p in a.dir.glob(f"{a.node}.sqlite3*"):
        shutil.move(str(p), dead / p.name)
    r = edge(a, "restore", str(backup_file))
    assert r.returncode == 0, r.stderr + r.stdout
    assert "the snapshot it started from is in place again" in r.stdout, r.stdout
    assert base_path(a.db).read_bytes() == kept[0].read_bytes()
    r = edge(a, "verify")
    assert r.returncode == 0 and "follow central's snapshot" in r.stdout, r.stdout + r.stderr


def test_an_altered_snapshot_is_refused_and_nothing_installed(cluster) -> None:  # type: ignore[no-untyped-def]
    central, made, base = cluster
    a = Counter.create(base, "cashier-21", central)
    made.append(a)
    n = asyncio.run(offline_work(a, 2))
    a.start_sync()
    wait_for(lambda: converged(central, [a], n), 60, "a synced")
    c = Counter.create(base, "cashier-22", central)
    r = edge(c, "bootstrap", "--timeout", "20")
    assert r.returncode == 1 and "no snapshot to give yet" in r.stderr, r.stderr
    snapshot(central)
    (stream,) = (central.dir / "snapshots").glob("snap-*.zst")
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit flipped on central's disk
    stream.write_bytes(bytes(data))
    r = edge(c, "bootstrap", "--timeout", "20")
    assert r.returncode == 1, r.stdout
    assert "not bootstrapped" in r.stderr and ("hash" in r.stderr or "zstd" in r.stderr), \
        r.stderr
    assert not base_path(c.db).exists()
    assert not Path(f"{c.db}.snapshot.new").exists()
    with closing(sqlite3.connect(c.db)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key=?",
                            (SNAPSHOT_META,)).fetchone() is None
    # a counter that holds events is not replaced
    r = edge(a, "bootstrap", "--timeout", "20")
    assert r.returncode == 1 and "already holds events" in r.stderr
