"""Upgrades: files written by an earlier version open, migrate and verify with today's code.

``tests/fixtures/upgrade/<version>/`` holds a counter's ledger and central's store as
that version wrote them (``tests/fixtures/make_upgrade_fixture.py``: real service,
ledger and central code; every kind registered then).  Each release adds its directory
and keeps the old ones, so every later version is held to every earlier one's files.
Each test works on a copy in a temp dir: the fixtures never change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from central import conflicts as cf
from central.recon_store import StoredView, wipe
from central.store import MIGRATIONS as CENTRAL_MIGRATIONS
from central.store import CentralStore, prepare_batch
from edge_node import config as edge_config
from edge_node import staff
from edge_node.ledger import Ledger
from edge_node.migrations import MIGRATIONS as EDGE_MIGRATIONS
from edge_node.service import CounterService
from protocol.core import Fact
from protocol.crypto import ZERO_HASH
from protocol.domain import REGISTRY
from protocol.event import ChainHead, decode_event

HERE = Path(__file__).resolve().parent / "fixtures" / "upgrade"
FIXTURES = sorted(p for p in HERE.iterdir() if (p / "manifest.json").exists())
VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
by_version = pytest.mark.parametrize("fixture", FIXTURES, ids=[p.name for p in FIXTURES])


def digests(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def working_copy(fixture: Path, tmp: Path) -> Path:
    work = tmp / fixture.name
    shutil.copytree(fixture, work)
    for key in work.rglob("*.key"):
        key.chmod(0o600)  # git keeps no modes; the key loaders refuse a readable key
    return work


def manifest(fixture: Path) -> dict[str, Any]:
    return json.loads((fixture / "manifest.json").read_text())  # type: ignore[no-any-return]


def migrations(db: Path) -> list[int]:
    con = sqlite3.connect(db)
    try:
        return [v for (v,) in con.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        con.close()


def facts(encoded: list[bytes]) -> Counter[str]:
    """Kinds of the events, each a fact for today's registry (known kind, valid body)."""
    kinds: Counter[str] = Counter()
    for data in encoded:
        ev = decode_event(data)
        decoded = REGISTRY.decode(ev)
        assert isinstance(decoded, Fact), (ev.node, ev.seq, ev.kind, decoded)
        kinds[ev.kind] += 1
    return kinds


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run([str(VENV_BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)


def test_there_is_a_fixture_of_this_version_with_every_kind_it_had() -> None:
    assert FIXTURES, f"no upgrade fixture in {HERE}"
    for fixture in FIXTURES:
        m = manifest(fixture)
        # a later version may add kinds; it may never drop one an earlier version wrote
        assert set(m["registered_kinds"]) <= {k.name for k in REGISTRY}, fixture.name
        for where in ("counter", "central"):
            assert set(m[where]["kinds"]) == set(m["registered_kinds"]), (fixture.name, where)


@by_version
async def test_an_earlier_counter_ledger_opens_migrates_verifies_and_carries_on(
        fixture: Path, tmp_path: Path) -> None:
    before = digests(fixture)
    m = manifest(fixture)["counter"]
    work = working_copy(fixture, tmp_path)
    cfg = edge_config.load(work / "counter" / "edge.toml")
    assert migrations(cfg.db) == m["migrations"]  # as that version left it

    led = await Ledger.open(cfg.db, cfg.node_id, edge_config.load_key(cfg.key_file),
                            rule_config=cfg.rules)
    try:
        report = await led.verify()
        assert report.ok, str(report)
        assert report.checked == sum(m["kinds"].values())
        assert facts([d for _, d in await led.events(0, 1_000_000)]) == m["kinds"]
        # the projections are what the events fold to (refolded at open if the registry
        # changed since; folded by this very code otherwise)
        live = await led.dump_projections()
        assert live["patients"] and live["accounts"] and live["charges"]
        assert await led.rebuild() == report.checked
        assert await led.dump_projections() == live
        # …and the counter goes on: its staff log in, its next event follows its chain
        assert (await staff.login(led, "wang", "1234")).staff_id == "wang"
        head = await led.head()
        svc = CounterService(led, "wang")
        before_balance = (await svc.lookup_card("8600000001")).account.balance
        await svc.deposit("8600000001", 100, "cash")
        assert (await svc.lookup_card("8600000001")).account.balance == before_balance + 100
        assert (await led.head()).seq == head.seq + 1
        assert (await led.verify()).ok
    finally:
        await led.close()
    assert migrations(cfg.db) == [v for v, _, _ in EDGE_MIGRATIONS]

    r = run("onecard-edge", "--config", str(work / "counter" / "edge.toml"), "verify")
    assert r.returncode == 0, r.stderr
    assert digests(fixture) == before


def book(rows: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    return {r[0]: tuple(r[1:]) for r in rows}


BOOK = ("SELECT id, kind, status, amount, nodes, patients, cards, events, resolved_event,"
        " resolved_kind FROM conflicts")


@by_version
async def test_an_earlier_central_store_opens_migrates_verifies_and_refolds(
        fixture: Path, tmp_path: Path) -> None:
    before = digests(fixture)
    m = manifest(fixture)
    work = working_copy(fixture, tmp_path)
    db = work / "central" / "central.sqlite3"
    assert migrations(db) == m["central"]["migrations"]

    store = await CentralStore.open(db)
    try:
        # every node's chain: from seq 1 on the zero hash, each event signed by the key
        # enrolled for its node, linked to the one before, valid for its kind, ending at
        # the head central recorded (the checks of an ingest, over everything held)
        held = 0
        for node in await store.nodes():
            rows = await store.read("SELECT data FROM events WHERE node = ? ORDER BY seq",
                                    (node.id,))
            chain = prepare_batch(node.id, node.pubkey, [bytes(d) for (d,) in rows])
            assert [p.problem for p in chain if p.problem] == [], node.id
            if chain:
                assert (chain[0].seq, chain[0].prev) == (1, ZERO_HASH), node.id
                assert ChainHead(chain[-1].seq, chain[-1].hash) == node.head, node.id
            else:
                assert node.head.seq == 0, node.id
            held += len(chain)
        assert held == await store.count() == sum(m["central"]["kinds"].values())
        rows = await store.read("SELECT data FROM events ORDER BY pos")
        assert facts([bytes(d) for (d,) in rows]) == m["central"]["kinds"]

        # the conflict book: a restart of today's code (central refolds its events at
        # every start) finds what the book says and changes nothing in it
        stored = book(await store.read(BOOK))
        assert len(stored) == len(m["central"]["conflicts"])
        watch = cf.ConflictWatch(store, announce=False)
        assert await watch.catch_up() == held
        assert book(await store.read(BOOK)) == stored
        # each resolution names central's remedy event for that conflict
        for cid, row in stored.items():
            if row[1] == "resolved":
                seq = int(row[7].removeprefix("central #"))
                (data,), = await store.read(
                    "SELECT data FROM events WHERE node = 'central' AND seq = ?", (seq,))
                remedy = decode_event(bytes(data))
                assert (remedy.kind, remedy.body["conflict_id"]) == (row[8], cid)
        # rebuilt from nothing, the book holds the same conflicts, but for the history the
        # events alone no longer show: one withdrawn (its late event arrives with the rest)
        # and one duplicate resolved by merging (a merged record is no duplicate)
        await store.write_many([("DELETE FROM conflicts", ()), *wipe()])
        await cf.ConflictWatch(store, announce=False).catch_up()
        rebuilt = book(await store.read(BOOK))
        assert {cid: row for cid, row in rebuilt.items() if row[1] != "withdrawn"} == {
            cid: row for cid, row in stored.items()
            if row[1] != "withdrawn" and row[8] != "patient.merged"}

        # central's fold of its events equals the counter's projections (both hold all)
        folded = StoredView(store)
        cfg = edge_config.load(work / "counter" / "edge.toml")
        led = await Ledger.open(cfg.db, cfg.node_id, edge_config.load_key(cfg.key_file))
        try:
            assert await led.event_count() == held
            for rt in REGISTRY.records:
                records = await folded.records(rt)
                assert len((await led.dump_projections())[rt.TABLE]) == len(records), rt.TABLE
                for rec in records:
                    assert await led.get(rt, rec.key()) == rec, (rt.TABLE, rec.key())
            # central goes on: the counter's next event is taken on its chain
            await CounterService(led, "wang").deposit("8600000001", 100, "cash")
            own = await led.own_events_after((await store.head(cfg.node_id)).seq)
            assert len(own) == 1
            assert (await store.ingest(cfg.node_id, own)).stored == 1
        finally:
            await led.close()
    finally:
        await store.close()
    assert migrations(db) == [v for v, _, _ in CENTRAL_MIGRATIONS]

    r = run("onecard-central", "--config", str(work / "central" / "central.toml"), "nodes")
    assert r.returncode == 0, r.stderr
    assert "cashier-01" in r.stdout
    assert digests(fixture) == before
