"""The snapshot's parts: its frames and manifest, the sessions' checks, central's mirror
(made on SQLite and on PostgreSQL: the same file), a download cut short and resumed,
and a bootstrapped ledger's verify, rebuild, ingest and search index."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.bootstrap import generate
from central import snapshot as central_snapshot
from central.store import CentralStore
from edge_node.backup import backup, backups
from edge_node.errors import ConfigError
from edge_node.ledger import INDEX_INTERIM, Ledger
from edge_node.snapshot import (
    Base,
    Download,
    SnapshotError,
    base_path,
    check_file,
    forget_bases,
    install,
    keep_base_with,
    kept_base,
    put_restored_base,
    stage_base_for_restore,
    unpack,
)
from protocol.crypto import ZERO_HASH, SigningKey, blake2b_256
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError, SchemaError
from protocol.event import ChainHead
from protocol.messages import (
    SNAPSHOT_CHUNK,
    SnapshotGet,
    SnapshotPart,
    decode_message,
)
from protocol.privacy import PatientKeys
from protocol.session import (
    AttestationError,
    CentralSession,
    EdgeSession,
    LocalProtocolError,
    SessionError,
)
from protocol.snapshot import Manifest, signing_payload
from tests.support.pg import fresh_database

CENTRAL = SigningKey(b"c" * 32)
EDGE = SigningKey(b"e" * 32)
OTHER = SigningKey(b"o" * 32)
STORE = b"\x05" * 16
KEYS = PatientKeys.of(bytes(range(32)), bytes(range(32, 64)))
NODE = "cashier-01"  # bench.bootstrap's node 0 (its key: bytes([1]) * 32)


def manifest(**kw: Any) -> Manifest:
    base: dict[str, Any] = dict(store=STORE, cursor=10, events=10,
                                heads={"cashier-01": ChainHead(10, b"h" * 32)}, clock=(5, 0),
                                registry="r", index="i", raw_size=100, hash=b"x" * 32,
                                size=50, made_ms=1)
    return Manifest(**{**base, **kw})


# -- frames and manifest ----------------------------------------------------------------
def test_snapshot_frames_round_trip_and_refuse_what_is_not_one() -> None:
    get = SnapshotGet(b"i" * 32, 5)
    assert decode_message(get.encode()) == get
    part = SnapshotPart(b"i" * 32, b"m", b"s" * 64, 0, b"data", False)
    assert decode_message(part.encode()) == part
    none = SnapshotPart(b"", b"", b"", 0, b"", True)
    assert decode_message(none.encode()) == none
    for bad, why in (
        (SnapshotGet(b"", 5), "offset needs the snapshot"),
        (SnapshotGet(b"short", 0), "empty or 32 bytes"),
        (SnapshotPart(b"i" * 32, b"m", b"", 0, b"", False), "with its signature"),
        (SnapshotPart(b"i" * 32, b"", b"s" * 64, 0, b"", False), "with its signature"),
        (SnapshotPart(b"i" * 32, b"", b"", 0, b"x" * (SNAPSHOT_CHUNK + 1), False), "at most"),
        (SnapshotPart(b"", b"", b"", 0, b"x", True), "one empty last part"),
        (SnapshotPart(b"", b"", b"", 0, b"", False), "one empty last part"),
    ):
        with pytest.raises(SchemaError, match=why):
            decode_message(bad.encode())


def test_a_manifest_round_trips_and_a_bad_one_is_refused() -> None:
    m = manifest()
    assert Manifest.decode(m.encode()) == m and m.id == blake2b_256(m.encode())
    for bad in (manifest(heads={"BAD ID": ChainHead(1, b"h" * 32)}),
                manifest(heads={"cashier-01": ChainHead(0, b"h" * 32)}),
                manifest(hash=b"short"), manifest(cursor=-1)):
        with pytest.raises(SchemaError):
            Manifest.decode(bad.encode())
    with pytest.raises(ProtocolError):
        Manifest.decode(b"\x00not a map")


# -- the sessions ---------------------------------------------------------------------------
def pair(proto: int = 5) -> tuple[EdgeSession, CentralSession]:
    edge = EdgeSession("cashier-01", EDGE, CENTRAL.public_key, b"\x01" * 32, proto=proto)
    central = CentralSession(CENTRAL, b"\x02" * 32)
    central.receive(edge.send_hello(ChainHead()))
    edge.receive(central.send_challenge(EDGE.public_key))
    central.receive(edge.send_auth())
    edge.receive(central.send_welcome(ChainHead(), 0, [], STORE))
    return edge, central


def first(central: CentralSession, m: bytes, key: SigningKey = CENTRAL, offset: int = 0,
          sid: bytes | None = None) -> bytes:
    return central.send_snapshot_part(blake2b_256(m) if sid is None else sid, offset, b"",
                                      False, m, key.sign(signing_payload(m)))


def test_the_edge_session_checks_central_signed_the_manifest_and_the_stream_is_whole() -> None:
    m = manifest().encode()
    sid = blake2b_256(m)
    edge, central = pair()
    central.receive(edge.send_snapshot_get())
    edge.receive(first(central, m))
    assert edge.snapshot_manifest == m
    edge.receive(central.send_snapshot_part(sid, 0, b"abc", False))
    with pytest.raises(LocalProtocolError):  # one answer at a time
        edge.send_snapshot_get()
    edge.receive(central.send_snapshot_part(sid, 3, b"de", True))
    edge.send_snapshot_get(sid, 5)  # (the answer is over: another may be asked)

    for frames, err, why in (
        ([first(central, m, OTHER)], AttestationError, "not signed by central"),
        ([first(central, m, sid=b"z" * 32)], SessionError, "not the one its id names"),
        ([first(central, m), central.send_snapshot_part(sid, 4, b"x", True)],
         SessionError, "expected 0"),
        ([first(central, m), central.send_snapshot_part(b"y" * 32, 0, b"x", True)],
         SessionError, "another answer"),
    ):
        edge, central = pair()
        central.receive(edge.send_snapshot_get())
        with pytest.raises(err, match=why):
            for f in frames:
                edge.receive(f)
        assert edge.closed
    edge, central = pair()
    with pytest.raises(SessionError, match="not asked for"):
        edge.receive(first(central, m))


def test_a_replaced_snapshot_comes_from_its_start_and_protocol_4_has_none() -> None:
    m = manifest().encode()
    edge, central = pair()
    central.receive(edge.send_snapshot_get(b"q" * 32, 1000))  # the one a cut download had
    edge.receive(first(central, m, offset=0))  # gone: the newest, from 0
    edge.receive(central.send_snapshot_part(blake2b_256(m), 0, b"abc", True))
    old, central4 = pair(proto=4)
    with pytest.raises(LocalProtocolError):
        old.send_snapshot_get()
    edge5, _ = pair()
    frame = edge5.send_snapshot_get()
    with pytest.raises(SessionError, match="protocol 4"):
        central4.receive(frame)


# -- central's mirror, and a ledger installed from it -------------------------------------------
def history(tmp: Path, n: int, after: int = 0) -> list[bytes]:
    """bench.bootstrap's node 0: patients (names sealed with KEYS), cards, deposits, charges."""
    out = tmp / "gen.sqlite3"
    with contextlib.suppress(FileNotFoundError):
        out.unlink()
    generate((0, n, after, (KEYS.data or b"") + (KEYS.lookup or b""), str(out)))
    with contextlib.closing(sqlite3.connect(out)) as c:
        return [bytes(r[0]) for r in c.execute("SELECT data FROM ev ORDER BY seq")]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CentralStore]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            target = str(tmp_path / "central.sqlite3")
        else:
            target = await stack.enter_async_context(fresh_database())
        s = await CentralStore.open(target)
        stack.push_async_callback(s.close)
        await s.enrol(NODE, SigningKey(bytes([1]) * 32).public_key, "cashier")
        yield s


async def ingest(store: CentralStore, events: list[bytes]) -> None:
    for i in range(0, len(events), 200):
        await store.ingest(NODE, events[i:i + 200])


async def snapshot_of(tmp: Path, events: list[bytes], level: int = central_snapshot.LEVEL
                      ) -> tuple[Manifest, Path]:
    """Central's snapshot of ``events`` (node 0's), made in a SQLite store of its own."""
    store = await CentralStore.open(tmp / "central.sqlite3")
    try:
        await store.enrol(NODE, SigningKey(bytes([1]) * 32).public_key, "cashier")
        await ingest(store, events)
        return await central_snapshot.make(store, tmp / "snaps", KEYS, level=level)
    finally:
        await store.close()


async def bootstrapped(tmp: Path, stream: Path, m: Manifest, node: str = "cashier-09",
                       db: Path | None = None) -> Path:
    """A ledger installed from ``stream`` as ``onecard-edge bootstrap`` installs it."""
    db = db or tmp / node / "ledger.sqlite3"
    db.parent.mkdir(exist_ok=True)
    raw = db.with_name("raw")
    part = db.with_name("part")
    shutil.copy(stream, part)
    unpack(part, raw, m)
    check_file(raw, m, REGISTRY.fingerprint())
    sig = CENTRAL.sign(signing_payload(m.encode()))
    install(db, node, raw, Base(m, m.encode(), sig, CENTRAL.public_key), part, _free)
    return db


@contextlib.contextmanager
def _free(db: Path) -> Any:
    yield True


async def full(tmp: Path, events: list[bytes], name: str = "full") -> Ledger:
    """A counter that received every event (the reference)."""
    led = await Ledger.open(tmp / f"{name}.sqlite3", "cashier-08", EDGE, patient_keys=KEYS)
    await led.set_node_keys({NODE: (SigningKey(bytes([1]) * 32).public_key, "cashier")})
    for i in range(0, len(events), 500):
        await led.ingest(events[i:i + 500])
    return led


async def test_the_mirror_folds_on_and_its_snapshot_is_the_state_of_a_counter_with_every_event(
        store: CentralStore, tmp_path: Path) -> None:
    events = history(tmp_path, 600, after=60)
    await ingest(store, events[:300])
    d = tmp_path / "snaps"
    m1, _ = await central_snapshot.make(store, d, KEYS)
    assert m1.cursor == m1.events == 300 and m1.heads[NODE].seq == 300
    again, _ = await central_snapshot.make(store, d, KEYS)  # nothing new: it stands
    assert again == m1
    await ingest(store, events[300:600])
    m2, s2 = await central_snapshot.make(store, d, KEYS)  # folds on from 300
    assert m2.events == 600 and m2.index and m2.registry == REGISTRY.fingerprint()
    assert [p for p, _, _ in central_snapshot.snapshots(d)] == [600, 300]
    ref = await full(tmp_path, events[:600])
    try:
        db = await bootstrapped(tmp_path, s2, m2)
        led = await Ledger.open(db, "cashier-09", None)
        try:
            got, want = await led.dump_projections(), await ref.dump_projections()
            for table in (rt.TABLE for rt in REGISTRY.records):
                assert got[table] == want[table], table
            assert got["patient_search"] == want["patient_search"]
            assert await led.event_count() == 0
            assert (await led.node_heads())[NODE] == (await ref.node_heads())[NODE]
        finally:
            await led.close()
    finally:
        await ref.close()


async def test_a_bootstrapped_ledger_goes_on_verifies_rebuilds_and_refuses_what_is_wrong(
        tmp_path: Path) -> None:
    events = history(tmp_path, 400, after=40)
    m, stream = await snapshot_of(tmp_path, events[:400])
    db = await bootstrapped(tmp_path, stream, m)
    led = await Ledger.open(db, "cashier-09", EDGE, patient_keys=KEYS)
    try:
        await led.set_node_keys({NODE: (SigningKey(bytes([1]) * 32).public_key, "cashier")})
        # central sends again an event the snapshot holds (a cursor from before): a no-op
        assert await led.ingest(events[390:400]) == 0
        assert await led.ingest(events[400:]) == 40
        ref = await full(tmp_path, events)
        try:
            assert (await led.get("accounts", "P-cashier-01-3")) == \
                (await ref.get("accounts", "P-cashier-01-3"))
        finally:
            await ref.close()
        report = await led.verify()
        assert report.ok and report.checked == 40 and "position 400" in str(report)
        before = await led.dump_projections()
        assert await led.rebuild() == 40
        assert await led.dump_projections() == before
    finally:
        await led.close()
    # the kept snapshot altered on the counter's disk: verify says so
    base = base_path(db)
    data = bytearray(base.read_bytes())
    data[-5] ^= 1
    base.write_bytes(bytes(data))
    led = await Ledger.open(db, "cashier-09", EDGE, patient_keys=KEYS)
    try:
        report = await led.verify()
        assert not report.ok and "altered" in report.reason
        base.unlink()
        report = await led.verify()
        assert not report.ok and "missing" in report.reason
        with pytest.raises(ConfigError, match="missing"):
            await led.rebuild()
    finally:
        await led.close()


async def test_an_altered_or_foreign_snapshot_is_refused_before_install(tmp_path: Path) -> None:
    m, stream = await snapshot_of(tmp_path, history(tmp_path, 200))
    raw = tmp_path / "raw"
    bad = tmp_path / "bad.zst"
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="hash|zstd"):
        unpack(bad, raw, m)
    assert not raw.exists()
    with pytest.raises(SnapshotError, match="size|bytes"):
        unpack(stream, raw, Manifest(**{**_fields(m), "size": m.size + 1}))
    unpack(stream, raw, m)
    with pytest.raises(SnapshotError, match="another version"):
        check_file(raw, m, "another fold")
    with pytest.raises(SnapshotError, match="heads"):
        check_file(raw, Manifest(**{**_fields(m), "heads": {NODE: ChainHead(1, ZERO_HASH)}}),
                   REGISTRY.fingerprint())


def _fields(m: Manifest) -> dict[str, Any]:
    return {f: getattr(m, f) for f in Manifest.__slots__}  # type: ignore[attr-defined]


async def test_a_new_counter_keeps_centrals_index_until_its_grant_then_indexes_who_came_between(
        tmp_path: Path) -> None:
    events = history(tmp_path, 300)
    m, stream = await snapshot_of(tmp_path, events)
    db = await bootstrapped(tmp_path, stream, m)
    # opened with its node key and no grant yet: the index is not rewritten without names
    led = await Ledger.open(db, "cashier-09", EDGE)
    try:
        with contextlib.closing(sqlite3.connect(db)) as c:
            assert c.execute("SELECT value FROM meta WHERE key=?", (INDEX_INTERIM,)).fetchone()
            rows = c.execute("SELECT count(*) FROM patient_search").fetchone()[0]
        ref = await full(tmp_path, events)
        try:
            assert rows == len((await ref.dump_projections())["patient_search"])
        finally:
            await ref.close()
    finally:
        await led.close()


async def test_a_download_cut_short_goes_on_from_where_it_stopped(tmp_path: Path) -> None:
    m, stream = await snapshot_of(tmp_path, history(tmp_path, 3000), level=-1000)
    assert m.size > 2 * SNAPSHOT_CHUNK  # (stored, not compressed: several parts)
    db = tmp_path / "counter" / "ledger.sqlite3"
    db.parent.mkdir()

    class Link:
        """Central's answer over an in-memory link that drops after ``cut`` frames."""

        def __init__(self, edge: EdgeSession, central: CentralSession, cut: int) -> None:
            self.edge, self.central, self.cut = edge, central, cut
            self.frames: list[bytes] = []

        async def send(self, frame: bytes) -> None:
            msg = self.central.receive(frame)
            assert isinstance(msg, SnapshotGet)
            sink = self

            class Out:
                async def send(self, f: bytes) -> None:
                    sink.frames.append(f)
            await central_snapshot.send_snapshot(Out(), self.central, CENTRAL,
                                                 tmp_path / "snaps", msg)

        async def recv(self) -> bytes:
            if self.cut == 0 or not self.frames:
                raise ConnectionError("the link dropped")
            self.cut -= 1
            return self.frames.pop(0)

    welcome = type("W", (), {"store": m.store})()
    dl = Download(db)
    edge, central = pair()
    with pytest.raises(ConnectionError):
        await dl(Link(edge, central, 3), edge, welcome)  # manifest + 2 parts, then cut
    assert dl.done is None and dl.part.stat().st_size == 2 * SNAPSHOT_CHUNK
    edge, central = pair()
    await dl(Link(edge, central, 10_000), edge, welcome)
    assert dl.done is not None and dl.done.manifest == m
    assert dl.received == m.size  # over both connections: no byte came twice
    assert dl.part.read_bytes() == stream.read_bytes()


async def test_the_counters_history_screen_says_earlier_entries_are_at_central(
        tmp_path: Path) -> None:
    from textual.widgets import Static

    from edge_node.tui.screens.history import HistoryScreen
    from tests.tui_harness import (
        NODE as TUI_NODE,
    )
    from tests.tui_harness import (
        log_in,
        make_app,
        make_config,
        open_ledger,
        seed_staff,
        settle_down,
        tap,
    )

    m, stream = await snapshot_of(tmp_path, history(tmp_path, 200))
    cfg = make_config(tmp_path / "counter")  # (the harness's cashier-01: a rebuilt counter)
    await bootstrapped(tmp_path, stream, m, TUI_NODE, cfg.db)
    led = await open_ledger(cfg)
    try:
        await seed_staff(led)
        app = make_app(cfg, led)
        async with app.run_test(size=(120, 44)) as pilot:
            await log_in(pilot)
            await tap(pilot, "86010000001")  # bench.bootstrap's node 0, patient 1
            await pilot.press("f10")
            await settle_down(pilot)
            assert isinstance(app.screen, HistoryScreen)
            status = str(app.screen.query_one("#history-status", Static).render())
            assert "earlier ones are at central" in status
    finally:
        await led.close()


async def test_a_stream_longer_than_its_manifest_says_is_refused(tmp_path: Path) -> None:
    m = manifest(size=3).encode()
    sid = blake2b_256(m)
    edge, central = pair()
    frames = [first(central, m), central.send_snapshot_part(sid, 0, b"abcd", True)]

    class Link:
        async def send(self, frame: bytes) -> None:
            central.receive(frame)

        async def recv(self) -> bytes:
            return frames.pop(0)

    dl = Download(tmp_path / "ledger.sqlite3")
    with pytest.raises(SnapshotError, match="more of the snapshot"):
        await dl(Link(), edge, type("W", (), {"store": STORE})())
    assert dl.done is None and dl.part.stat().st_size == 0


async def test_backups_keep_the_snapshot_once_and_forget_it_with_the_last_backup_of_it(
        tmp_path: Path) -> None:
    events = history(tmp_path, 200)
    m1, s1 = await snapshot_of(tmp_path / "one", events[:100])
    m2, s2 = await snapshot_of(tmp_path / "two", events[:200])
    db = await bootstrapped(tmp_path, s1, m1)
    dest = tmp_path / "backups"

    def back_up(keep: int) -> Path:
        done = backup(db, dest, "cashier-09", keep, lambda c: (0, ""))
        keep_base_with(done.path, db, "cashier-09")
        forget_bases(dest, "cashier-09", backups(dest, "cashier-09"))
        return done.path

    b1 = back_up(2)
    assert kept_base(dest, "cashier-09", m1).read_bytes() == base_path(db).read_bytes()
    assert keep_base_with(b1, db, "cashier-09") == (kept_base(dest, "cashier-09", m1), False)
    # the counter bootstrapped again from a newer snapshot: both are kept while a backup
    # of each is, then only the newer one
    db.unlink()
    base_path(db).unlink()
    db = await bootstrapped(tmp_path, s2, m2)
    b2 = back_up(2)
    assert {p.name for p in dest.glob("*.snapshot.zst")} == {
        kept_base(dest, "cashier-09", m).name for m in (m1, m2)}
    back_up(2)
    assert [p.name for p in dest.glob("*.snapshot.zst")] == [kept_base(dest, "cashier-09",
                                                                       m2).name]
    # restored on a new disk: the base comes back from the backup directory, checked
    lost = tmp_path / "lost"
    lost.mkdir()
    for p in db.parent.glob(f"{db.name}*"):
        shutil.move(str(p), lost / p.name)
    staged, warning = stage_base_for_restore(b2, db, "cashier-09")
    assert staged is not None and not warning
    shutil.copy(b2, db)
    put_restored_base(staged, db, None)
    assert base_path(db).read_bytes() == (lost / base_path(db).name).read_bytes()
    assert stage_base_for_restore(b2, db, "cashier-09") == (None, "")  # already in place
    # an altered kept copy is refused; a missing one is a warning (the counter works)
    base_path(db).unlink()
    kept = kept_base(dest, "cashier-09", m2)
    data = bytearray(kept.read_bytes())
    data[100] ^= 1
    kept.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="altered"):
        stage_base_for_restore(b2, db, "cashier-09")
    assert not list(db.parent.glob("*.restoring")) and not base_path(db).exists()
    kept.unlink()
    staged, warning = stage_base_for_restore(b2, db, "cashier-09")
    assert staged is None and "bootstrapped again" in warning
    # a ledger whose own base went missing: the backup is kept, and the command says why
    # its snapshot is not
    with pytest.raises(SnapshotError, match="missing"):
        keep_base_with(b2, db, "cashier-09")
