"""The SQLite ledger: atomic appends, ingest of other nodes' events, verify and rebuild."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_node.errors import ConfigError, OperationRefused, StorageError
from edge_node.ledger import EquivocationError, Ledger, Op
from edge_node.service import CounterService
from protocol.errors import ProtocolError, SignatureError
from protocol.event import ChainError, sign_event
from protocol.hlc import Hlc
from tests.conftest import FakeClock, LedgerFactory, item, node_key, registered


def test_migrations_are_numbered_one_by_one() -> None:
    from edge_node.migrations import MIGRATIONS

    assert [m[0] for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_pragmas_and_migrations(ledger: Ledger, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "cashier-01.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == sorted(versions) and versions[0] == 1


async def test_a_ledger_belongs_to_one_node(ledger: Ledger, tmp_path: Path) -> None:
    await ledger.close()
    with pytest.raises(ConfigError, match="belongs to node cashier-01"):
        await Ledger.open(tmp_path / "cashier-01.sqlite3", "cashier-02")


async def test_multi_event_operation_is_atomic(ledger: Ledger, service: CounterService) -> None:
    """Registration is three events; if the third is refused, none is written."""
    with pytest.raises(OperationRefused):
        await registered(service, deposit=1)  # below the registration fee
    assert await ledger.event_count() == 0
    assert (await ledger.head()).seq == 0


async def test_storage_errors_write_nothing(ledger: Ledger, service: CounterService,
                                            tmp_path: Path) -> None:
    await registered(service)
    before = await ledger.event_count()
    # Another process holds the write lock: the append gives up cleanly, nothing half-written.
    other = sqlite3.connect(tmp_path / "cashier-01.sqlite3", timeout=0)
    other.execute("BEGIN IMMEDIATE")
    await ledger.run(lambda c: c.execute("PRAGMA busy_timeout=50"))
    with pytest.raises(StorageError, match="busy"):
        await service.deposit("8600000001", 100, "cash")
    other.execute("ROLLBACK")
    other.close()
    assert await ledger.event_count() == before
    assert (await ledger.verify()).ok


async def test_disk_full_is_a_clear_error_and_writes_nothing(
        ledger: Ledger, service: CounterService) -> None:
    await registered(service, deposit=100_000)
    before = await ledger.dump_projections()
    # Cap the database file at its current size: the next append cannot grow it.
    await ledger.run(lambda c: c.execute(
        "PRAGMA max_page_count = " + str(c.execute("PRAGMA page_count").fetchone()[0])))
    with pytest.raises(StorageError, match="disk is full"):
        await service.charge("8600000001", [item(100, name="x" * 60)] * 150, "x")
    assert await ledger.dump_projections() == before
    assert (await ledger.verify()).ok


async def test_hlc_persists_and_never_goes_back(make_ledger: LedgerFactory,
                                                tmp_path: Path) -> None:
    led = await make_ledger(clock=lambda: 5000)
    svc = CounterService(led, "op")
    await registered(svc)
    await led.close()
    led2 = await Ledger.open(tmp_path / "cashier-01.sqlite3", "cashier-01",
                             node_key("cashier-01"), clock=lambda: 10)  # clock stepped back
    r = await CounterService(led2, "op").deposit("8600000001", 100, "cash")
    assert r.events[0].hlc == Hlc(5000, 3)
    await led2.close()


# -- ingest ----------------------------------------------------------------------------
async def two_counters(make_ledger: LedgerFactory) -> tuple[Ledger, Ledger]:
    a, b = await make_ledger("cashier-01"), await make_ledger("pharmacy-01")
    await a.set_node_keys({"pharmacy-01": (node_key("pharmacy-01").public_key, "pharmacy")})
    await b.set_node_keys({"cashier-01": (node_key("cashier-01").public_key, "cashier")})
    return a, b


async def own_events(led: Ledger) -> list[bytes]:
    return await led.own_events_after(0, limit=10_000)


async def test_ingest_applies_other_counters_work_idempotently(
        make_ledger: LedgerFactory) -> None:
    a, b = await two_counters(make_ledger)
    await registered(CounterService(a, "op"))
    events = await own_events(a)
    assert await b.ingest(events) == 3
    assert await b.ingest(events) == 0  # re-sent: no-op
    assert await b.ingest(events[:2]) == 0
    view = await CounterService(b, "op").lookup_card("8600000001")
    assert view.account.balance == 10_000
    await CounterService(b, "op").charge("8600000001", [item(4000)], "药房")
    await a.ingest(await own_events(b))
    assert (await a.dump_projections()) == (await b.dump_projections())
    assert (await a.verify()).ok and (await b.verify()).ok
    assert (await b.node_heads())["cashier-01"].seq == 3


async def test_ingest_refuses_bad_batches_whole(make_ledger: LedgerFactory,
                                                tmp_path: Path) -> None:
    a, b = await two_counters(make_ledger)
    svc = CounterService(a, "op")
    await registered(svc)
    await svc.deposit("8600000001", 100, "cash")
    events = await own_events(a)
    # a gap (seq 1 then 3): nothing of the batch is stored
    with pytest.raises(ChainError):
        await b.ingest([events[0], events[2]])
    assert await b.event_count() == 0
    # a forged signature
    forged = bytearray(events[0])
    forged[-1] ^= 1
    with pytest.raises(ProtocolError):
        await b.ingest([bytes(forged)])
    # events from a node with no known key
    c = await make_ledger("lab-01")
    await registered(CounterService(c, "op"), "86000077")
    with pytest.raises(SignatureError, match="not a node this counter knows"):
        await b.ingest(await own_events(c))
    # own events coming back (from central, after a re-install) verify with this node's
    # own key: those held are no-ops; one signed by another key is refused
    await registered(CounterService(b, "op"), "86000078")
    assert await b.ingest(await own_events(b)) == 0
    imposter = await Ledger.open(tmp_path / "imposter.sqlite3", b.node_id, node_key("other"),
                                 clock=FakeClock())
    await registered(CounterService(imposter, "op"), "86000079")
    with pytest.raises(SignatureError, match="offline key backup"):
        await b.ingest(await own_events(imposter))
    await imposter.close()
    # an equivocation: a different event at an existing (node, seq)
    await b.ingest(events)
    other, _, _ = sign_event(node_key("cashier-01"), node="cashier-01", seq=1, prev=bytes(32),
                             hlc=Hlc(1, 0), operator="op", kind="account.deposited",
                             body={"patient_id": "P-x", "amount": 1, "method": "cash",
                                   "receipt_no": "D-x"})
    with pytest.raises(EquivocationError):
        await b.ingest([other.encode()])
    assert await b.event_count() == len(events) + 3


# -- verify ---------------------------------------------------------------------------
async def build_small(make_ledger: LedgerFactory) -> Ledger:
    led = await make_ledger()
    svc = CounterService(led, "op")
    await registered(svc)
    await svc.charge("8600000001", [item(1000)], "x")
    return led


async def flip_and_verify(path: Path, data: st.DataObject) -> None:
    led = await Ledger.open(path, "cashier-01", node_key("cashier-01"), clock=FakeClock())
    svc = CounterService(led, "op")
    await registered(svc)
    await svc.charge("8600000001", [item(1000)], "x")
    rows = await led.run(lambda c: c.execute("SELECT rowid, data, hash FROM events").fetchall())
    rowid, blob, h = data.draw(st.sampled_from(rows))
    column = data.draw(st.sampled_from(["data", "hash"]))
    value = bytearray(blob if column == "data" else h)
    value[data.draw(st.integers(0, len(value) - 1))] ^= 1 << data.draw(st.integers(0, 7))

    def tamper(c: sqlite3.Connection) -> None:
        c.execute(f"UPDATE events SET {column}=? WHERE rowid=?", (bytes(value), rowid))
    await led.run(tamper)
    report = await led.verify()
    await led.close()
    assert not report.ok
    assert report.node == "cashier-01" and report.seq == rowid


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_flipping_any_stored_byte_is_detected(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(flip_and_verify(Path(d) / "l.sqlite3", data))


async def test_verify_names_deleted_and_reordered_events(make_ledger: LedgerFactory) -> None:
    led = await build_small(make_ledger)
    await led.run(lambda c: c.execute("DELETE FROM events WHERE seq=2"))
    report = await led.verify()
    assert not report.ok and report.seq == 3 and "expected seq 2" in report.reason
    assert "BROKEN at cashier-01 seq 3" in str(report)


async def test_verify_notices_truncated_history(make_ledger: LedgerFactory) -> None:
    led = await build_small(make_ledger)
    await led.run(lambda c: c.execute("DELETE FROM events WHERE seq=4"))
    report = await led.verify()
    assert not report.ok and "head" in report.reason


async def test_rebuild_repairs_damaged_projections(make_ledger: LedgerFactory) -> None:
    led = await build_small(make_ledger)
    good = await led.dump_projections()
    await led.run(lambda c: c.execute("UPDATE accounts SET balance = balance + 100000"))
    assert await led.dump_projections() != good
    assert await led.rebuild() == 4
    assert await led.dump_projections() == good


async def test_append_needs_the_key(ledger: Ledger, tmp_path: Path) -> None:
    ro = await Ledger.open(tmp_path / "cashier-01.sqlite3", "cashier-01")
    with pytest.raises(ConfigError, match="without the node key"):
        await ro.append(Op("card.issued", {"card_no": "8600000001", "patient_id": "P-1"}), "op")
    await ro.close()


async def test_wal_is_checkpointed_in_the_background(ledger: Ledger, service: CounterService,
                                                     tmp_path: Path) -> None:
    """Automatic checkpoints are off inside commits; background ones let the WAL rewind."""
    import edge_node.ledger as ledger_module

    assert (await ledger.run(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()))[0] == 0
    await registered(service)
    wal = tmp_path / "cashier-01.sqlite3-wal"
    for _ in range(250):  # > CHECKPOINT_EVERY commits: one background checkpoint starts
        await service.deposit("8600000001", 100, "cash")
    assert ledger._checkpoint is not None
    first = ledger._checkpoint
    await asyncio.sleep(ledger_module.IDLE_CHECKPOINT_S + 0.3)  # quiet: another one runs
    assert ledger._checkpoint is not first
    await ledger._checkpoint
    size = wal.stat().st_size
    for _ in range(150):  # the WAL restarts from its beginning instead of growing
        await service.deposit("8600000001", 100, "cash")
    assert wal.stat().st_size - size < 512 * 1024, (size, wal.stat().st_size)


async def test_wal_stays_bounded_under_continuous_writes(
        ledger: Ledger, service: CounterService, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_node.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "WAL_LIMIT", 1024 * 1024)
    monkeypatch.setattr(ledger_module, "CHECKPOINT_EVERY", 10**9)  # no background help
    await registered(service)
    wal = tmp_path / "cashier-01.sqlite3-wal"
    for _ in range(400):
        await service.deposit("8600000001", 100, "cash")
    assert wal.stat().st_size < 2 * 1024 * 1024
    assert (await ledger.verify()).ok
