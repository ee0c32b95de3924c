"""One contract for central's store, run against both backends: SQLite and PostgreSQL.

Each test gets a ``store`` on a fresh SQLite file and on a fresh PostgreSQL database
(``onecard_t_<random>`` on the machine's server, dropped afterwards).  PostgreSQL not
reachable: the PostgreSQL variants fail, saying so — never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from central import conflicts as book
from central.conflicts import ConflictWatch
from central.db import PG_MIGRATIONS, DatabaseUnavailable, to_pg
from central.store import (
    MIGRATIONS,
    CentralStore,
    Equivocation,
    Query,
    RevokedNode,
    StaleKey,
    Statements,
    UnknownNode,
    enrol_central,
    prepare_batch,
)
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import CENTRAL, ChainError, decode_event
from tests.support.pg import fresh_database
from tests.test_central_store import KEYS, chain

CENTRAL_KEY = SigningKey(b"\x42" * 32)


@pytest.fixture(params=["sqlite", "postgresql"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Where a store lives: a SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "central.sqlite3")
    else:
        async with fresh_database() as url:
            yield url


@pytest.fixture
async def store(target: str) -> AsyncIterator[CentralStore]:
    s = await CentralStore.open(target)
    try:
        for n, k in KEYS.items():
            await s.enrol(n, k.public_key, "cashier")
        yield s
    finally:
        await s.close()


def dialect(target: str) -> str:
    return "postgresql" if target.startswith("postgresql://") else "sqlite"


async def test_the_store_opens_the_backend_its_target_names(target: str,
                                                            store: CentralStore) -> None:
    assert store.dialect == dialect(target)
    assert len(await store.store_id()) == 16


async def test_nodes_enrol_rotate_revoke_and_the_directory(store: CentralStore) -> None:
    with pytest.raises(ValueError, match="already enrolled"):
        await store.enrol("c1", KEYS["c1"].public_key, "cashier")
    r = await store.ingest("c1", chain("c1", 2))
    new = SigningKey(b"\x0b" * 32)
    assert await store.rotate("c1", new.public_key, now_ms=5) == 3
    spans = await store.key_spans("c1")
    assert [(s.key, s.from_seq, s.until_seq) for s in spans] == [
        (KEYS["c1"].public_key, 1, 3), (new.public_key, 3, 0)]
    # the new key signs from seq 3 on
    await store.ingest("c1", chain("c1", 1, start=3, prev=r.head.hash, key=new))
    assert await store.revoke("c2", now_ms=1_000)
    assert await store.revoke("c2", now_ms=2_000)  # again: the first time is kept
    assert not await store.revoke("nobody")
    assert [(s.from_seq, s.until_seq) for s in await store.key_spans("c2")] == [(1, 1)]
    assert await store.read("SELECT revoked_ms FROM nodes WHERE id = ?", ("c2",)) == [(1_000,)]
    directory = {d.node: d for d in await store.directory()}
    assert sorted(directory) == ["c1", "c2", "c3", "c4"]
    assert directory["c2"].revoked and not directory["c1"].revoked
    assert [(s.key, s.from_seq, s.until_seq) for s in directory["c1"].keys] == [
        (s.key, s.from_seq, s.until_seq) for s in spans]
    assert directory["c1"].key == new.public_key
    await store.touch("c3", online=True, pull_cursor=2, reported_seq=7, now_ms=1_790_000_000_123)
    rec = await store.node("c3")
    assert rec is not None and rec.online and rec.pull_cursor == 2 and rec.pending == 7
    assert rec.last_seen_ms == 1_790_000_000_123  # ms times need 64-bit integers
    await store.mark_all_offline()
    assert not any(n.online for n in await store.nodes())
    assert await store.node("nobody") is None
    assert await store.lags() == {"c1": 0, "c2": 3, "c3": 1, "c4": 3}  # c3 pulled to 2


async def test_valid_batches_are_stored_and_a_resend_is_a_noop(store: CentralStore) -> None:
    evs = chain("c1", 5)
    r = await store.ingest("c1", evs)
    assert (r.stored, r.head.seq, r.first_pos, r.last_pos) == (5, 5, 1, 5)
    again = await store.ingest("c1", evs[1:4])
    assert again.stored == 0 and again.head == r.head
    more = chain("c1", 3, start=6, prev=r.head.hash)
    r2 = await store.ingest("c1", evs[3:] + more)
    assert (r2.stored, r2.first_pos, r2.last_pos) == (3, 6, 8)
    assert await store.count() == 8 and await store.cursor() == 8
    ids = await store.event_ids()
    assert [(n, s) for n, s, _ in ids] == [("c1", s) for s in range(1, 9)]
    assert all(isinstance(h, bytes) and len(h) == 32 for _, _, h in ids)


async def test_an_equivocation_is_quarantined_once_and_never_stored(
        store: CentralStore) -> None:
    await store.ingest("c1", chain("c1", 3))
    forged = chain("c1", 3, amount=999_999)
    for _ in range(3):  # the counter retries: one piece of evidence
        with pytest.raises(Equivocation):
            await store.ingest("c1", forged[1:2])
    assert await store.count() == 3
    q = await store.quarantined()
    assert [(n, s) for n, s, _, _ in q] == [("c1", 2)]
    held = {(n, s): h for n, s, h in await store.event_ids()}
    assert q[0][2] == held[("c1", 2)] and q[0][3] != held[("c1", 2)]
    assert await store.read("SELECT kind FROM quarantine") == [("equivocation",)]


async def test_a_chain_break_is_refused_and_kept_as_evidence(store: CentralStore) -> None:
    head = (await store.ingest("c1", chain("c1", 2))).head
    with pytest.raises(ChainError, match="prev is not the hash of seq 2"):
        await store.ingest("c1", chain("c1", 2, start=3, prev=b"\x02" * 32))
    with pytest.raises(ChainError, match="batch jumps to 5"):
        await store.ingest("c2", chain("c2", 2, start=5))
    q = await store.read("SELECT node, seq, kind, held_hash FROM quarantine ORDER BY id")
    assert [(n, s, k) for n, s, k, _ in q] == [("c1", 3, "chain_break"),
                                               ("c2", 5, "chain_break")]
    assert bytes(q[0][3]) == head.hash
    assert await store.count() == 2 and await store.cursor() == 2


async def test_stale_keys_unknown_and_revoked_nodes_are_refused(store: CentralStore) -> None:
    r = await store.ingest("c1", chain("c1", 2))
    new = SigningKey(b"\x0c" * 32)
    await store.rotate("c1", new.public_key)
    # seq 3 signed with the old key, past its span: refused, kept as evidence
    with pytest.raises(StaleKey) as refused:
        await store.ingest("c1", chain("c1", 1, start=3, prev=r.head.hash))
    assert "c1 seq 3" in refused.value.why
    assert await store.read("SELECT node, seq, kind FROM quarantine") == [
        ("c1", 3, "stale_key")]
    with pytest.raises(UnknownNode):
        await store.ingest("nobody", chain("nobody", 1, key=SigningKey(b"\x09" * 32)))
    assert await store.revoke("c2")
    with pytest.raises(StaleKey):
        await store.ingest("c2", chain("c2", 1))
    with pytest.raises(RevokedNode):
        await store.ingest("c2", chain("c2", 1), key=KEYS["c2"].public_key,
                           prepared=prepare_batch("c2", KEYS["c2"].public_key, chain("c2", 1)))
    assert await store.count() == 2


async def test_concurrent_ingests_from_two_instances_give_a_gapless_commit_ordered_cursor(
        target: str, store: CentralStore) -> None:
    """Four nodes push at once through two store instances on one database while a
    reader pulls page after page: positions are 1..N, each batch contiguous, and the
    pages chained from cursor to cursor give every position exactly once, in order —
    none committed later below a cursor a page already passed."""
    other = await CentralStore.open(target)
    try:
        per_node, size = 12, 4

        async def push(node: str, via: CentralStore) -> list[tuple[int, int]]:
            spans, prev, seq = [], ZERO_HASH, 1
            for _ in range(per_node):
                r = await via.ingest(node, chain(node, size, start=seq, prev=prev))
                spans.append((r.first_pos, r.last_pos))
                prev, seq = r.head.hash, seq + size
            return spans

        total = len(KEYS) * per_node * size
        pulled: list[bytes] = []

        async def pull() -> int:
            cur = 0
            for _ in range(10_000):  # bounded: ends once every event was pulled
                page = await other.events_after(cur, limit=7)
                assert page.after == cur and page.cursor >= cur
                pulled.extend(page.events)
                cur = page.cursor
                if cur == total:
                    return cur
                await asyncio.sleep(0)
            raise AssertionError(f"pulled up to {cur} of {total}")

        pushes = [push(n, store if i % 2 else other) for i, n in enumerate(KEYS)]
        *spans_per_node, last = await asyncio.gather(*pushes, pull())
        spans = [s for node_spans in spans_per_node for s in node_spans]
        assert sorted(p for a, b in spans for p in range(a, b + 1)) == list(range(1, total + 1))
        assert all(b - a == size - 1 for a, b in spans)
        assert last == total == await store.cursor() == await other.cursor()
        # every position exactly once, in cursor order
        rows = await store.read("SELECT pos, data FROM events ORDER BY pos")
        assert [int(p) for p, _ in rows] == list(range(1, total + 1))
        assert pulled == [bytes(d) for _, d in rows]
        # and each node's events in its own seq order along the cursor
        seqs: dict[str, list[int]] = {}
        for data in pulled:
            ev = decode_event(data)
            seqs.setdefault(ev.node, []).append(ev.seq)
        assert all(s == list(range(1, per_node * size + 1)) for s in seqs.values())
    finally:
        await other.close()


async def test_pull_pages_respect_limit_bytes_and_the_excluded_node(store: CentralStore) -> None:
    await store.ingest("c1", chain("c1", 4))
    await store.ingest("c2", chain("c2", 3))
    await store.ingest("c1", chain("c1", 2, start=5, prev=(await store.head("c1")).hash))
    page = await store.events_after(0, exclude_node="c1")
    assert len(page.events) == 3 and page.cursor == 9 and not page.more
    page = await store.events_after(0, exclude_node="c3", limit=4)
    assert len(page.events) == 4 and page.cursor == 4 and page.more
    size = len(chain("c1", 1)[0])
    page = await store.events_after(0, exclude_node="c3", max_bytes=2 * size + 1)
    assert len(page.events) == 2 and page.cursor == 2 and page.more
    page = await store.events_after(0, max_bytes=1)  # one event even past the bytes
    assert len(page.events) == 1 and page.cursor == 1 and page.more
    seen, cur = [], 0
    for _ in range(20):
        p = await store.events_after(cur, exclude_node="c3", limit=2)
        seen += p.events
        cur = p.cursor
        if not p.more:
            break
    assert len(seen) == len(set(seen)) == 9 and cur == 9
    assert (await store.events_after(9)).events == []
    assert [p for p, _, _ in await store.events_since(3, 4)] == [4, 5, 6, 7]


async def test_append_central_signs_on_the_head_and_runs_the_plan_in_its_transaction(
        store: CentralStore) -> None:
    await enrol_central(store, CENTRAL_KEY)
    await store.ingest("c1", chain("c1", 2))

    async def plan(query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
        rows = await query("SELECT COUNT(*) FROM events WHERE node = ?", ("c1",))
        assert rows == [(2,)]
        return [], [
            ("INSERT INTO accounts (patient_id, balance, credit_limit) VALUES (?, ?, ?)",
             ("P-1", int(rows[0][0]), 0))]

    assert await store.append_central(CENTRAL_KEY, plan, operator="it.li") == []
    assert await store.read("SELECT patient_id, balance FROM accounts") == [("P-1", 2)]
    events = await book.sign_central(store, CENTRAL_KEY, [(
        "audit.node_changed", {"node": "c9", "action": "enrol", "role": "cashier",
                               "fingerprint": "ab" * 8, "from_seq": 1})], operator="it.li")
    assert [(e.node, e.seq) for e in events] == [(CENTRAL, 1)]
    assert (await store.head(CENTRAL)).seq == 1 and await store.cursor() == 3

    async def failing(query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await store.append_central(CENTRAL_KEY, failing, operator="it.li")
    # a statement after the events that fails: the events roll back with it
    async def bad_after(query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
        return [("audit.node_changed", {"node": "c8", "action": "revoke"})], [
            ("INSERT INTO accounts (patient_id, balance) VALUES (?, ?)", ("P-1", 1))]

    with pytest.raises(sqlite3.IntegrityError):
        await store.append_central(CENTRAL_KEY, bad_after, operator="it.li")
    assert (await store.head(CENTRAL)).seq == 1 and await store.cursor() == 3


async def test_the_conflict_book_raises_lists_acknowledges_and_resolves(
        store: CentralStore) -> None:
    await enrol_central(store, CENTRAL_KEY)
    await store.ingest("c1", chain("c1", 2))
    with pytest.raises(ChainError):
        await store.ingest("c1", chain("c1", 1, start=3, prev=b"\x07" * 32))
    watch = ConflictWatch(store)
    await watch.catch_up()
    await watch.catch_up()  # once, however often it catches up
    rows = await book.list_conflicts(store, kind="chain_break")
    assert [(r.kind, r.status, r.nodes, r.events) for r in rows] == [
        ("chain_break", "open", ("c1",), (("c1", 3),))]
    cid = rows[0].id
    assert await book.list_conflicts(store, status="open", node="c2") == []
    assert await book.acknowledge(store, cid, "it.li")
    assert not await book.acknowledge(store, cid, "it.li")  # only an open one
    got = await book.get_conflict(store, cid)
    assert got is not None and got.status == "acknowledged" and got.acknowledged_by == "it.li"
    events = await book.resolve(store, CENTRAL_KEY, cid, "accept", reason="checked the till",
                                operator="it.li")
    got = await book.get_conflict(store, cid)
    assert got is not None and got.status == "resolved" and got.resolved_by == "it.li"
    assert got.resolved_event == f"{CENTRAL} #{events[-1].seq}"
    with pytest.raises(book.ResolveError, match="already resolved"):
        await book.resolve(store, CENTRAL_KEY, cid, "accept", reason="again", operator="x")
    assert await book.get_conflict(store, "nope") is None
    # the reconciler's balances and the position they are folded to (meta, as text on PG)
    held = await store.read("SELECT m.value FROM meta m WHERE m.key = 'accounts_pos'")
    assert int(held[0][0]) == watch.pos > 0


async def test_write_many_is_all_or_nothing(store: CentralStore) -> None:
    await store.write_many([
        ("INSERT INTO accounts (patient_id, balance, credit_limit) VALUES (?, ?, ?)",
         ("P-1", 10_000_000_000_000, 0))])  # past 32 bits: fen of a whole hospital
    with pytest.raises(sqlite3.IntegrityError):
        await store.write_many([
            ("UPDATE accounts SET balance = ? WHERE patient_id = ?", (5, "P-1")),
            ("INSERT INTO accounts (patient_id, balance, credit_limit) VALUES (?, ?, ?)",
             ("P-2", 7, 0)),
            ("INSERT INTO accounts (patient_id, balance, credit_limit) VALUES (?, ?, ?)",
             ("P-1", 1, 0)),  # a unique violation: the whole list rolls back
        ])
    assert await store.read("SELECT patient_id, balance FROM accounts ORDER BY patient_id"
                            ) == [("P-1", 10_000_000_000_000)]
    with pytest.raises(sqlite3.Error):
        await store.write_many([("UPDATE accounts SET balance = 1", ()),
                                ("UPDATE no_such_table SET x = 1", ())])
    assert await store.read("SELECT balance FROM accounts") == [(10_000_000_000_000,)]
    # ON CONFLICT forms both backends take
    await store.write_many([
        ("INSERT INTO accounts (patient_id, balance, credit_limit) VALUES (?, ?, ?)"
         " ON CONFLICT (patient_id) DO UPDATE SET balance = excluded.balance", ("P-1", 3, 0)),
        ("INSERT INTO accounts (patient_id, balance, credit_limit) VALUES (?, ?, ?)"
         " ON CONFLICT DO NOTHING", ("P-1", 4, 0))])
    assert await store.read("SELECT balance FROM accounts") == [(3,)]


async def test_a_reopened_store_keeps_its_data_and_does_not_migrate_again(target: str) -> None:
    store = await CentralStore.open(target)
    await store.enrol("c1", KEYS["c1"].public_key, "cashier")
    await store.ingest("c1", chain("c1", 3))
    sid = await store.store_id()
    applied = await store.read("SELECT version, applied_ms FROM schema_migrations"
                               " ORDER BY version")
    assert [v for v, _ in applied] == [v for v, _, _ in MIGRATIONS]
    await store.close()
    again = await CentralStore.open(target)
    try:
        assert await again.count() == 3 and await again.cursor() == 3
        assert await again.store_id() == sid
        assert (await again.head("c1")).seq == 3
        assert await again.read("SELECT version, applied_ms FROM schema_migrations"
                                " ORDER BY version") == applied
        r = await again.ingest("c1", chain("c1", 4)[3:])
        assert (r.stored, r.first_pos) == (1, 4)
    finally:
        await again.close()


async def test_cancelled_requests_never_leave_a_transaction_open(store: CentralStore) -> None:
    r = await store.ingest("c1", chain("c1", 20))
    pending = chain("c1", 30, start=21, prev=r.head.hash)
    for i in range(24):
        for coro in (store.events_after(0, exclude_node="c2"),
                     store.ingest("c1", pending[:5]),
                     store.write_many([("UPDATE cursor SET pos = pos WHERE id = ?", (1,))])):
            task = asyncio.create_task(coro)
            for _ in range(i % 6):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
    # A cancelled caller's transaction still runs to its end in the background: one of
    # the pending[:5] pushes may commit at any moment from here.  The full push waits
    # for the write lock behind them and makes each a no-op resend if it comes later.
    await store.ingest("c1", pending)
    assert (await store.head("c1")).seq == 50
    page = await store.events_after(0, exclude_node="c2")
    assert len(page.events) == await store.count() == 50 == await store.cursor()


def test_both_backends_have_every_schema_version() -> None:
    """A migration appended to SQLite's list needs its PostgreSQL DDL too (central.db)."""
    assert max(v for v, _, _ in MIGRATIONS) == max(v for v, _, _ in PG_MIGRATIONS)


def test_placeholders_are_numbered_outside_quotes() -> None:
    assert to_pg("SELECT ? FROM t WHERE a = '?' AND b = ? AND c = \"?x\"") == (
        "SELECT $1 FROM t WHERE a = '?' AND b = $2 AND c = \"?x\"")


async def test_an_unreachable_postgresql_is_one_clear_error() -> None:
    url = "postgresql://onecard:secret@127.0.0.1:1/central"
    with pytest.raises(DatabaseUnavailable) as err:
        await CentralStore.open(url)
    text = str(err.value)
    assert "cannot reach the central database postgresql://onecard:***@127.0.0.1:1/central" \
        in text and "secret" not in text


async def test_dormant_batches_hold_an_account_in_one_open_batch(store: CentralStore) -> None:
    """central/dormant.py's tables: a partial unique index, sums past 32 bits as int."""
    from central import dormant

    def select(bid: str) -> list[tuple[str, tuple[object, ...]]]:
        return [("INSERT INTO dormant_batches (id, months, source, created_by, created_ms)"
                 " VALUES (?, ?, ?, ?, ?)", (bid, 24, "sel.csv", "it.li", 1)),
                *(("INSERT INTO dormant_items (batch_id, line, patient_id, amount, last_ms,"
                   " idle_since) VALUES (?, ?, ?, ?, ?, ?)",
                   (bid, line, pid, 6_000_000_000, 1_700_000_000_000, "2023-11-14"))
                  for line, pid in ((2, "P-1"), (3, "P-2")))]

    await store.write_many(select("dorm-a"))
    with pytest.raises(sqlite3.IntegrityError):  # P-1 is in an open batch already
        await store.write_many(select("dorm-b"))
    [b] = await dormant.batches(store)
    assert (b.id, b.status, b.count, b.total) == ("dorm-a", "pending", 2, 12_000_000_000)
    assert type(b.total) is int and type(b.count) is int
    assert [(i.line, i.patient_id, i.amount) for i in await dormant.items(store, "dorm-a")] == [
        (2, "P-1", 6_000_000_000), (3, "P-2", 6_000_000_000)]
    assert await dormant.open_items(store) == {"P-1": "dorm-a", "P-2": "dorm-a"}
    cancelled = await dormant.cancel(store, "dorm-a", "it.li", 5)
    assert (cancelled.status, cancelled.cancelled_by) == ("cancelled", "it.li")
    assert await dormant.open_items(store) == {}
    await store.write_many(select("dorm-b"))  # free again
    assert [b.id for b in await dormant.batches(store)] == ["dorm-a", "dorm-b"]


async def test_the_daily_audit_reads_the_reconcilers_balances_and_raises_a_finding(
        store: CentralStore, tmp_path: Path) -> None:
    """central/audit.py on the store: the accounts table and the position it was folded
    to read together, a balance changed by hand found and raised once."""
    import datetime as dt

    from central import audit
    from central.console.i18n import Translator

    await store.ingest("c1", chain("c1", 3))
    watch = ConflictWatch(store)
    await watch.catch_up()
    held = await store.read("SELECT patient_id, balance FROM accounts")
    assert held == [("P-c1-1", 300)]
    cfg = audit.AuditConfig(timezone="UTC", report_dir=tmp_path / "audit")
    day = dt.date(1970, 1, 1)  # (these events' clocks)
    rep, _, _ = await audit.run(store, day, cfg, Translator("en"))
    assert [f.rule for f in rep.findings] == ["missing_close"]  # (no day close in chain())
    await store.write_many([("UPDATE accounts SET balance = balance + 100000", ())])
    for _ in range(2):
        rep, _, _ = await audit.run(store, day, cfg, Translator("en"))
        assert sorted(f.rule for f in rep.findings) == ["missing_close", "projection_mismatch"]
    rows = await book.list_conflicts(store, kind="audit_finding")
    assert len(rows) == 2  # raised once each
    assert any("P-c1-1" in r.title and "¥1,003.00" in r.title for r in rows), rows


async def test_postgresqls_schema_has_sqlites_tables_and_columns(tmp_path: Path) -> None:
    """PostgreSQL's DDL (central.db.PG_MIGRATIONS) and SQLite's migrations make the same
    tables with the same columns: a migration added to one list and not the other fails."""
    lite = await CentralStore.open(tmp_path / "c.sqlite3")
    try:
        tables = [str(r[0]) for r in await lite.read(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%'")]
        want = {t: {str(r[1]) for r in await lite.read(f"PRAGMA table_info({t})")}
                for t in tables}
    finally:
        await lite.close()
    async with fresh_database() as url:
        pg = await CentralStore.open(url)
        try:
            got: dict[str, set[str]] = {}
            for t, c in await pg.read("SELECT table_name, column_name FROM"
                                      " information_schema.columns WHERE table_schema ="
                                      " 'public'"):
                got.setdefault(str(t), set()).add(str(c))
        finally:
            await pg.close()
    assert got == want


async def test_one_process_reconciles_a_store_and_another_takes_over_when_it_stops(
        target: str) -> None:
    """The reconciler's lease: of two stores open on one database (two central
    instances) one reconciles; the other leaves the book and the state to it (and reads
    the key grants it folded); once the first is gone the other takes over from its
    checkpoint, replaying nothing the first did."""
    from central.recon_store import StoredReconciler

    first = await CentralStore.open(target)
    second = await CentralStore.open(target)
    try:
        await enrol_central(first, CENTRAL_KEY)
        for n, k in KEYS.items():
            await first.enrol(n, k.public_key, "cashier")
        node = next(iter(KEYS))
        events = chain(node, 6)
        await first.ingest(node, events[:4])
        one = book.ConflictWatch(first, announce=False)
        other = book.ConflictWatch(second, announce=False)
        fed = await one.catch_up()
        assert fed > 0 and one.leased
        assert await other.catch_up() == 0 and not other.leased
        await first.ingest(node, events[4:])
        assert await other.catch_up() == 0  # still the first's to do
        assert await one.catch_up() == 2
        checkpoint = one.pos
        await first.close()  # the first instance is gone: its lease with it
        assert await other.catch_up() == 0 and other.leased  # taken over, nothing replayed
        assert other.pos == checkpoint
        s = StoredReconciler(second)
        await s.open()
        assert s.pos == checkpoint
    finally:
        with contextlib.suppress(Exception):
            await first.close()
        await second.close()


async def test_the_consoles_search_index_finds_what_a_counter_finds(target: str,
                                                                     tmp_path: Path) -> None:
    """The reconciler keeps a search index for the console (``recon_search``): the
    counters' terms — patient number, keyed ID number and phone tags, a sealed name's
    keyed terms, its pinyin and initials — made with central's patient keys.  Made by a
    process without the names key, it is made again with them, a step at a time, and
    until then a search with other keys is told it is not theirs (None: the console
    reads every patient instead); a corrected name is found by its new name only; what
    the batches wrote is what making it again from the records writes."""
    from central.recon_store import SEARCH, StoredView
    from protocol.privacy import PatientKeys
    from tests.conftest import TEST_PATIENT_KEYS as keys
    from tests.support.central_seed import ID_MALE, NOW_MS, Chains, seed_central

    await seed_central(tmp_path, database=target if dialect(target) == "postgresql" else "")
    store = await CentralStore.open(target)
    try:
        view = StoredView(store)
        # seeded by a reconciler without keys: its index holds no names
        assert await view.search("王五", keys, 50) is None
        watch = ConflictWatch(store, announce=False, patient_keys=keys)
        for _ in range(20):  # (a catch-up gives it ~0.25 s; the reconciler comes back)
            await watch.catch_up()
            if not watch.indexing:
                break
        assert not watch.indexing

        async def find(q: str) -> list[str] | None:
            return await view.search(q, keys, 50)

        both = ["P-cashier-01-000009", "P-cashier-02-000003"]
        for q in ("王五", "王 五", "王", "五", "wangwu", "WangWu", "ww", "wang", ID_MALE):
            assert await find(q) == both, q
        assert await find("李四") == await find("lisi") == ["P-cashier-01-000005"]
        assert await find("13800000003") == ["P-cashier-01-000009"]  # the phone, sealed
        assert await find("0004") == ["P-cashier-02-000003"]  # its last four digits
        assert await find("p-cashier-03") == ["P-cashier-03-000001"]  # a number's start
        assert await find("P-cashier-01-000005") == ["P-cashier-01-000005"]
        assert await find("nobody") == [] and await find("  ") == []
        assert await view.search("王五", PatientKeys.generate(), 50) is None  # not its keys

        # a name corrected at a counter: found by the new name, no longer by the old
        head = await store.head("cashier-02")
        ch = Chains()
        ch.heads["cashier-02"] = (head.seq, head.hash)
        pid = "P-cashier-02-000003"
        ch.add("cashier-02", NOW_MS, "patient.updated",
               {"patient_id": pid, **keys.sealed_details(pid, {"name": "赵武"})})
        await store.ingest("cashier-02", ch.encoded["cashier-02"], now_ms=NOW_MS)
        await watch.catch_up()
        assert not watch.indexing  # (its terms were due: written after the batch)
        assert await find("赵武") == [pid]
        assert await find("王五") == ["P-cashier-01-000009"]
        assert await find("zhao") == sorted([pid, "P-cashier-03-000001"])  # 赵六 too

        # made again from the records, two patients a step: the same rows
        def index() -> Any:
            return store.read("SELECT term, pid FROM recon_search ORDER BY term, pid")
        written = await index()
        assert len(written) > 50  # (5 patients, names of two characters)
        await store.write_many([("UPDATE meta SET value = '' WHERE key = ?", (SEARCH,))])
        steps = 0
        while await find("赵武") is None:  # not made yet: the console reads everyone
            assert await watch.stored.search_step(limit=2)
            steps += 1
        assert steps == 3  # (5 patients)
        assert not await watch.stored.search_step()
        assert await index() == written and await find("赵武") == [pid]

        # a batch only marks the patients whose details changed: their terms are due,
        # written by the next step; until then the console checks each due one directly
        # (its rows left out: they may be an older record's)
        await store.write_many([
            ("INSERT INTO recon_search_due (pid) VALUES (?)", [(pid,), ("P-gone",)]),
            ("DELETE FROM recon_search WHERE pid = ? AND term LIKE 'X:%'", (pid,))])
        assert await find("赵武") == [pid] and await find("zhaowu") == [pid]
        assert await find("王五") == ["P-cashier-01-000009"]
        assert await find("zhao") == sorted([pid, "P-cashier-03-000001"])
        assert not await watch.stored.search_step()  # (all written: none left due)
        assert await store.read("SELECT pid FROM recon_search_due") == []
        assert await index() == written

        # a catch-up that registers many: marked due in its batch, written after it
        head = await store.head("cashier-03")
        ch = Chains()
        ch.heads["cashier-03"] = (head.seq, head.hash)
        many = [f"P-cashier-03-{n:06d}" for n in range(100, 130)]
        for n, p in enumerate(many):
            ch.add("cashier-03", NOW_MS + n, "patient.registered",
                   {"patient_id": p, "sex": "F", "birth_date": "1990-01-01",
                    **keys.sealed_details(p, {"name": f"钱{'一二三四五六七八九十'[n % 10]}",
                                              "phone": f"1390000{n:04d}"})})
        await store.ingest("cashier-03", ch.encoded["cashier-03"], now_ms=NOW_MS)

        async def later() -> None:
            watch.indexing = False
        watch._index = later  # type: ignore[method-assign]  # (this catch-up writes none)
        await watch.catch_up()
        due = sorted(r[0] for r in await store.read("SELECT pid FROM recon_search_due"))
        assert due == many
        assert await find("钱三") == [many[2], many[12], many[22]]  # checked one by one
        assert len(await find("qian") or []) == 30
        while await watch.stored.search_step():
            pass
        assert await store.read("SELECT pid FROM recon_search_due") == []
        assert await find("钱三") == [many[2], many[12], many[22]]  # now by its rows
        assert len(await store.read(
            "SELECT DISTINCT pid FROM recon_search WHERE pid LIKE 'P-cashier-03-0001%'")) == 30
    finally:
        await store.close()


async def test_the_consoles_details_of_many_patients_read_at_once(store: CentralStore) -> None:
    """A search's hits read their records, cards and families (records merged into them,
    through chains of merges) in a few statements: the same as one at a time."""
    from central.recon_store import StoredView, _pack_record, pack_key
    from protocol.account import Account
    from protocol.patient import Patient

    merges = [("a", "b"), ("c", "b"), ("b", "d"), ("x", "y"), ("e", "a")]
    await store.write_many([
        ("INSERT INTO recon_merged (pid, survivor) VALUES (?, ?)", merges),
        ("INSERT INTO recon_cards (card_no, pid) VALUES (?, ?)",
         [("86001", "d"), ("86002", "d"), ("86003", "a"), ("86004", "y")]),
        ("INSERT INTO recon_records (tbl, k, data) VALUES (?, ?, ?)",
         [(Account.TABLE, pack_key(p), _pack_record(Account(p, balance=100 * n)))
          for n, p in enumerate("abcde", 1)]
         + [(Patient.TABLE, pack_key(p), _pack_record(Patient(p, registered_node="c1")))
            for p in "abd"]),
    ])
    view = StoredView(store)
    pids = ["d", "b", "y", "q", "a"]
    families = await view.families(pids)
    assert families == {p: await view.family(p) for p in pids}
    assert families["d"] == frozenset("abcde") and families["q"] == frozenset("q")
    assert await view.cards_of_each(pids) == {p: await view.cards_of(p) for p in pids}
    accounts = await view.records_of(Account, list("abcdeq"))
    assert sorted(accounts) == list("abcde") and accounts["c"].balance == 300
    assert sorted(await view.records_of(Patient, pids)) == ["a", "b", "d"]
