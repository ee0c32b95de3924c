"""The counter's ledger: signed, hash-chained events in SQLite, and their projections.

Theory of operation
-------------------
One SQLite file per counter (WAL, ``synchronous=FULL``), shared by the TUI process,
which appends this counter's own events, and the sync process, which ingests other
nodes' events.  Every write is one function that runs start to finish inside
aiosqlite's worker thread in one :func:`transaction` (``BEGIN IMMEDIATE``; a savepoint
when nested): the event rows, the chain head, the clock and the projection rows commit
together or not at all, so a crash at any instant leaves either all of an operation or
none of it.  (One awaited hop per transaction, not one per statement: each hop costs
~0.3 ms.)  Staff, sync state and the daemon's bookkeeping use the same path.

Projections are the records the domain registry declares (:mod:`protocol.domain`),
one table each, made from the declarations; they are maintained by the same fold
``rebuild`` uses: the records an event touches are loaded, the registry folds it, and
the changed records are written back, so state lookups never scan history.  The
registry's fingerprint is kept with them: a ledger opened by a version whose records
or kinds differ (an upgrade) drops and refolds its projections from the events, which
folds the events of kinds it kept unfolded until then.

Derived indexes (:class:`RecordIndex`: the patient search of :mod:`edge_node.search`)
are lookup tables made from one record type's rows alone.  They are written in the
same transaction as the records they derive from (whenever those are written back with
different terms), rewritten by ``rebuild``, and rewritten at open when their
fingerprint is not the one stored (a version that makes them differently).  The sync
daemon's ingest of others' events only marks their records' terms due, for its
background pass (``index_later``, :meth:`Ledger.index_due`); searches check due
records directly meanwhile (:mod:`edge_node.search`).

Others' events that central attested (one signature of central's over a pulled frame's
event hashes: protocol 4) are stored and folded before their own signatures are checked,
which the sync daemon does in the background (``sig_pending``,
:mod:`edge_node.sync.sigcheck`); ``verify`` checks every signature whatever.

Every event that verifies is stored, whatever its body: the fold skips a bad body
(central flags it) and a kind this version does not know, so no remote event can stop
this counter's sync.  A remote clock more than ``max_skew_ms`` ahead of this counter's
is stored but never adopted into this counter's clock, and every event keeps the local
time it was written or received (``local_ms``), which the counter's own reports use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import operator
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from edge_node.db import snapshot, transaction
from edge_node.errors import ConfigError, DamagedFile, OperationRefused, StorageError
from edge_node.migrations import migrate
from edge_node.search import PatientIndex
from edge_node.snapshot import Base, base_heads, base_of, base_rows, check_base, opened_base
from protocol.account import LIMITS_KEY, OfflineLimits
from protocol.core import (
    Decoded,
    Fact,
    OfflineRun,
    Record,
    Ref,
    Registry,
    RuleConfig,
    State,
    columns,
)
from protocol.crypto import SigningKey, blake2b_256, fingerprint
from protocol.domain import REGISTRY
from protocol.errors import Problem, ProtocolError, SignatureError
from protocol.event import (
    CENTRAL,
    ChainError,
    ChainHead,
    Event,
    check_link,
    decode_event,
    sign,
    unsigned_event,
)
from protocol.hlc import Hlc
from protocol.keyring import Keyring, KeySpan, key_at, single
from protocol.patient import Patient
from protocol.privacy import SEALED_NAME, KeyGrant, PatientKeys, keys_of, name_of
from protocol.rotation import Rotation

log = logging.getLogger("onecard.ledger")
# (as at central, central/db.py: statements' arguments must reach no log at DEBUG)
logging.getLogger("aiosqlite").setLevel(logging.INFO)

Body = dict[str, Any]
R = TypeVar("R", bound=Record)
MAX_SKEW_MS = 5 * 60_000  # a remote clock further ahead than this is not adopted


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class OpContext:
    """What a body builder may know: the seq the event will get and the loaded state."""

    node: str
    seq: int
    state: State

    def new_id(self, prefix: str) -> str:
        """An id no other counter can produce, even offline: ``P-cashier-01-000042``."""
        return f"{prefix}-{self.node}-{self.seq:06d}"


@dataclass(frozen=True, slots=True)
class Op:
    """One event to append: its kind and its body (or a function building it)."""

    kind: str
    body: Body | Callable[[OpContext], Body]
    need: frozenset[Ref] = frozenset()


@dataclass(frozen=True, slots=True)
class Appended:
    event: Event
    hash: bytes


@dataclass(frozen=True, slots=True)
class AppendResult:
    appended: list[Appended]
    state: State  # the records the operation touched, as they are after it
    local_ms: int = 0  # this counter's own clock when it appended them


@dataclass(frozen=True, slots=True)
class SyncState:
    online: bool
    last_sync_ms: int
    acked_seq: int
    pull_cursor: int
    received: int
    last_error: str
    pending: int
    #: central holds more of this counter's chain than the ledger, or a restored or
    #: re-installed ledger has not heard central yet: no own event until it is back
    recovering: bool = False


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    checked: int
    node: str = ""
    seq: int = 0
    reason: str = ""
    #: the ledger started from central's snapshot: what of it was checked ("": it did not)
    base: str = ""

    def __str__(self) -> str:
        if self.ok:
            return (f"ledger verified: {self.checked} events, every chain and signature "
                    f"intact{'; ' + self.base if self.base else ''}")
        if not self.node:
            return f"ledger BROKEN: {self.reason} ({self.checked} events checked)"
        return (f"ledger BROKEN at {self.node} seq {self.seq}: {self.reason} "
                f"({self.checked} events checked before it)")


@dataclass(frozen=True, slots=True)
class SignatureFinding:
    """An event central attested whose own signature does not verify: central attested a
    forgery (compromised or buggy).  It stays stored and folded (the ledger's state is
    the fold of its events), ``verify`` names it, and the counter trusts no attestation
    from then on."""

    rowid: int
    node: str
    seq: int
    reason: str
    found_ms: int
    reported: bool = False


class EquivocationError(ProtocolError):
    """A different event at an existing (node, seq): the node signed two histories."""

    code = "equivocation"


@dataclass(slots=True)
class _Loaded:
    """The records a transaction loaded, to write back only what changed."""

    state: State = field(default_factory=State)
    seen: dict[Ref, Record | None] = field(default_factory=dict)


class RecordIndex(Protocol):
    """A lookup table derived from one record type's rows alone (the patient search).

    Kept like a projection: written in the transaction that writes the records back,
    emptied and written whole when the projections are refolded, and written whole again
    when its ``fingerprint()`` is not the one stored (its terms are made differently).
    """

    TABLE: str

    @property
    def record(self) -> type[Record]: ...

    def fingerprint(self) -> str: ...

    def terms_key(self, rec: Any) -> Any: ...

    def clear(self, conn: sqlite3.Connection) -> None: ...

    def write(self, conn: sqlite3.Connection, records: Sequence[Any]) -> None: ...

    def mark_due(self, conn: sqlite3.Connection, records: Sequence[Any]) -> None:
        """Instead of :meth:`write`: the terms of ``records`` are due, to be written by
        :meth:`write_due` (and found meanwhile by the index's lookups all the same)."""

    def write_due(self, conn: sqlite3.Connection, limit: int) -> tuple[int, int]:
        """Write the terms of at most ``limit`` due records: (written, still due)."""

    def mark_all_due(self, conn: sqlite3.Connection) -> bool:
        """Mark every record due (its terms made with other keys: unused from now on),
        unless there are too many for searches to check one by one (False: nothing
        marked)."""

    def due_count(self, conn: sqlite3.Connection) -> int:
        """Records whose terms are due."""

    def use_keys(self, keys: PatientKeys | None) -> None:
        """The counter's patient keys, as they are now (an index of sealed values may
        need them; its fingerprint then says which it was made with)."""


_SYNC_FIELDS = ("online", "last_sync_ms", "acked_seq", "pull_cursor", "received", "last_error")


class Ledger:
    """A counter's ledger.  Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, db: aiosqlite.Connection, node_id: str, key: SigningKey | None,
                 rule_config: RuleConfig, clock: Callable[[], int], registry: Registry,
                 max_skew_ms: int, indexes: Sequence[RecordIndex] = ()) -> None:
        self._db = db
        self.node_id = node_id
        self.key = key
        self.rule_config = rule_config
        self.registry = registry
        self.max_skew_ms = max_skew_ms
        self._clock = clock
        self._path = ""
        self._commits_since_checkpoint = 0
        self._checkpoint: asyncio.Future[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._tables = {rt.TABLE: rt for rt in registry.records}
        #: derived indexes of the records this registry declares
        self.indexes: dict[type[Record], list[RecordIndex]] = {}
        for ix in indexes:
            if ix.record in registry.records:
                self.indexes.setdefault(ix.record, []).append(ix)
        #: kinds whose body records the offline run they were charged in (issue 11)
        self._offline_marked = frozenset(k.name for k in registry
                                         if OFFLINE_FIELD in getattr(k.body, "SCHEMA", {}))
        #: the patient keys opened from central's grant, by the grant's merge order
        self._patient_keys: tuple[str, PatientKeys | None] = ("", None)

    # -- opening -----------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | Path, node_id: str, key: SigningKey | None = None, *,
                   rule_config: RuleConfig | None = None,
                   clock: Callable[[], int] = wall_ms, registry: Registry = REGISTRY,
                   max_skew_ms: int = MAX_SKEW_MS,
                   progress: Callable[[int], None] | None = None,
                   indexes: Sequence[RecordIndex] | None = None,
                   patient_keys: PatientKeys | None = None) -> Ledger:
        """Open (creating and migrating if needed) the ledger of ``node_id`` at ``path``.

        Projections folded by another version are refolded here (``progress`` is told
        every 10,000 events), and derived indexes made another way are rewritten.
        ``patient_keys``: keys held without a grant from central — unit tests, benchmarks
        and the stand-alone demo cashier, which have no central; a counter of a hospital
        takes them from central's grant (:meth:`patient_keys`).
        """
        from edge_node.backup import damage, make_private

        path = Path(path)
        why = damage(path)
        if why:
            raise damaged(path, why)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            make_private(path)
            db = await aiosqlite.connect(str(path), isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open ledger {path}: {exc}") from exc
        self = cls(db, node_id, key, rule_config or RuleConfig(), clock, registry, max_skew_ms,
                   (PatientIndex(),) if indexes is None else indexes)
        self._path = str(path)
        if patient_keys is not None:
            self._patient_keys = ("given", patient_keys)
        try:
            await self._run(self._setup, progress)
        except sqlite3.DatabaseError as exc:  # (_run names most damage itself)
            await db.close()
            raise damaged(path, f"is damaged (SQLite: {exc})") from exc
        except BaseException:
            await db.close()
            raise
        return self

    def _setup(self, conn: sqlite3.Connection, progress: Callable[[int], None] | None) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        # Checkpoints run beside the appends, not inside one (see _after_commit).
        conn.execute("PRAGMA wal_autocheckpoint=0")
        migrate(conn)
        row = conn.execute("SELECT value FROM meta WHERE key='node_id'").fetchone()
        if row is None:
            with transaction(conn):
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('node_id', ?)", (self.node_id,))
            row = conn.execute("SELECT value FROM meta WHERE key='node_id'").fetchone()
        if row[0] != self.node_id:
            raise ConfigError(f"this ledger belongs to node {row[0]}, not {self.node_id}")
        if self._projection_schema(conn) != self.registry.fingerprint():
            with transaction(conn):  # re-checked under the write lock: one process refolds
                if self._projection_schema(conn) != self.registry.fingerprint():
                    n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
                    if n:
                        log.warning("projections were folded by another version: refolding "
                                    "%d events", n)
                    self._rebuild_in_tx(conn, progress)
        self._keys_tx(conn)
        for ix in self._all_indexes() if self._keys_known() else ():
            if self._meta(conn, _index_meta(ix)) != ix.fingerprint() and not self._interim(conn):
                with transaction(conn):
                    stored = self._meta(conn, _index_meta(ix))
                    if stored != ix.fingerprint():
                        # (a change of keys alone is the normal course: info, not warning)
                        same = stored.split(" names ")[0] == ix.fingerprint().split(" names ")[0]
                        log.log(logging.INFO if same else logging.WARNING,
                                "rewriting the %s index (%s)", ix.TABLE,
                                "the patient keys changed" if same else "made another way")
                        self._reindex(conn, ix)

    def _keys_known(self) -> bool:
        """Whether this ledger can know the counter's patient keys: opened with its node
        key (the grant opens with it) or given keys.  A ledger opened without (a command
        that only reads) leaves the index as the counter made it."""
        return self.key is not None or self._patient_keys[0] == "given"

    def _keys_tx(self, conn: sqlite3.Connection) -> PatientKeys | None:
        """The patient keys (given at open, or opened from central's grant to this
        counter's key), read in the connection thread, and given to the indexes."""
        if self._patient_keys[0] != "given":
            grant: KeyGrant | None = None
            if self.key is not None and KeyGrant in self._tables.values():
                found = _select(conn, KeyGrant, [(self.node_id, self.key.public_key.hex())])
                grant = found[0] if found else None
            if grant is None or self.key is None:
                self._patient_keys = ("", None)
            elif self._patient_keys[0] != grant.granted_at:
                self._patient_keys = (grant.granted_at, keys_of(grant, self.key.seed))
        keys = self._patient_keys[1]
        for ix in self._all_indexes():
            ix.use_keys(keys)
        return keys

    def _reindex_for_keys(self, conn: sqlite3.Connection, later: bool = False) -> None:
        """Inside a write: rewrite each index made with other keys than the counter's now
        (a grant just folded, here or by the sync process): one transaction, so the
        index never holds terms of two keys.  ``later`` (the sync daemon's ingest): an
        index of few enough records has them all marked due instead, its old terms
        unused from now on, and the daemon's background pass rewrites them."""
        self._keys_tx(conn)
        if self._interim(conn):
            return  # central's index as the snapshot brought it, until the grant comes
        interim = self._meta(conn, INDEX_INTERIM)
        for ix in self._all_indexes() if self._keys_known() else ():
            if self._meta(conn, _index_meta(ix)) != ix.fingerprint():
                if later and ix.mark_all_due(conn):
                    log.info("the %s index is due (the patient keys changed)", ix.TABLE)
                    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 (_index_meta(ix), ix.fingerprint()))
                    continue
                log.info("rewriting the %s index (the patient keys changed)", ix.TABLE)
                self._reindex(conn, ix)
            elif interim:  # the grant came: the records written meanwhile, with its keys
                ids = [r[0] for r in conn.execute("SELECT patient_id FROM index_interim")]
                for chunk in _chunks(ids, 500):
                    ix.write(conn, _select(conn, ix.record, chunk))
        if interim and self._keys_known():
            conn.execute("DELETE FROM meta WHERE key = ?", (INDEX_INTERIM,))
            conn.execute("DROP TABLE IF EXISTS index_interim")

    def _interim(self, conn: sqlite3.Connection) -> bool:
        """Started from central's snapshot and not granted the patient keys yet: the search
        index stays as central made it (with the hospital's keys), not rewritten without
        names — the grant, a moment later, brings the same keys (see INDEX_INTERIM)."""
        return self._patient_keys[1] is None and bool(self._meta(conn, INDEX_INTERIM))

    def _all_indexes(self) -> list[RecordIndex]:
        return [ix for ixs in self.indexes.values() for ix in ixs]

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> str:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else ""

    @staticmethod
    def _reindex(conn: sqlite3.Connection, ix: RecordIndex,
                 records: Sequence[Record] | None = None) -> None:
        """Write ``ix`` afresh from ``records`` (every record of its type; None: read from
        its table a page at a time, so memory stays bounded whatever the ledger holds)."""
        ix.clear(conn)
        if records is not None:
            ix.write(conn, records)
        else:
            for page in _select_pages(conn, ix.record):
                ix.write(conn, page)
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                     (_index_meta(ix), ix.fingerprint()))

    @staticmethod
    def _projection_schema(conn: sqlite3.Connection) -> str:
        row = conn.execute("SELECT value FROM meta WHERE key='projection_schema'").fetchone()
        return str(row[0]) if row else ""

    async def close(self) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint], timeout=10)
        await self._db.close()

    def _after_commit(self) -> None:
        """Checkpoint the WAL into the database in a background thread now and then.

        SQLite's automatic checkpoint runs inside whichever commit crosses 1000 WAL
        pages, copying and fsyncing scattered pages of a large ledger: a multi-ms stall
        for the patient at the counter.  A PASSIVE checkpoint on its own connection
        runs concurrently with appends instead.
        """
        loop = asyncio.get_running_loop()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        # in the quiet after a patient is served, and every CHECKPOINT_EVERY commits of a
        # busy streak (a checkpoint that runs while writes go on cannot catch up fully)
        self._idle_timer = loop.call_later(IDLE_CHECKPOINT_S, self._start_checkpoint)
        self._commits_since_checkpoint += 1
        if self._commits_since_checkpoint >= CHECKPOINT_EVERY:
            self._start_checkpoint()

    def _start_checkpoint(self) -> None:
        if self._checkpoint is not None and not self._checkpoint.done():
            # one is running: check again once it is done (commits may have come since, and
            # the quiet after them must still get its checkpoint)
            self._checkpoint.add_done_callback(lambda _: self._again())
            return
        self._commits_since_checkpoint = 0
        loop = asyncio.get_running_loop()
        self._checkpoint = loop.run_in_executor(None, _checkpoint, self._path)

    def _again(self) -> None:
        if self._commits_since_checkpoint and not self._closed:
            self._start_checkpoint()

    async def _bound_wal(self) -> None:
        """Under continuous writes a passive checkpoint never catches up and the WAL only
        grows; past ``WAL_LIMIT`` bytes, checkpoint and rewind it here (a rare stall)."""
        try:
            size = os.stat(self._path + "-wal").st_size
        except OSError:
            return
        if size > WAL_LIMIT:
            await self._run(lambda c: c.execute("PRAGMA wal_checkpoint(RESTART)").fetchall())

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in the ledger's thread (for store modules with own tables).

        A write must be wrapped in :func:`transaction` (the one write path).
        """
        return await self._run(fn, *args)

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` inside one :func:`transaction` in the ledger's thread."""
        def tx(conn: sqlite3.Connection) -> Any:
            with transaction(conn):
                return fn(conn, *args)
        return await self._run(tx)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in the connection's thread: one hop per transaction."""
        db = self._db
        try:
            return await db._execute(lambda: fn(db._conn, *args))  # type: ignore[no-untyped-call]
        except sqlite3.OperationalError as exc:
            raise _storage_error(exc) from exc
        except sqlite3.DatabaseError as exc:  # corrupt pages inside a file that opened
            raise damaged(Path(self._path), f"is damaged (SQLite: {exc})") from exc

    def record_type(self, table: str | type[R]) -> type[Record]:
        if isinstance(table, str):
            try:
                return self._tables[table]
            except KeyError:
                raise ValueError(f"no record table {table!r}") from None
        return table

    # -- appending own events ----------------------------------------------------------
    async def append(self, ops: list[Op] | Op, operator: str) -> list[Appended]:
        """Validate, check rules, sign, chain and store ``ops`` in ONE transaction.

        Raises :class:`OperationRefused` (nothing written) with every problem found, or
        :class:`StorageError` (nothing written) if the disk refuses.
        """
        return (await self.append_ops(ops, operator)).appended

    async def append_ops(self, ops: list[Op] | Op, operator: str) -> AppendResult:
        """As :meth:`append`, also returning the touched records as they are after it.

        A body builder may raise :class:`OperationRefused` itself (e.g. an unknown card):
        the transaction is rolled back like any refusal.
        """
        if self.key is None:
            raise ConfigError("this ledger was opened without the node key: it cannot sign")
        if isinstance(ops, Op):
            ops = [ops]
        if not operator:
            raise OperationRefused([Problem("operator.missing", "no operator is logged in")])
        result: AppendResult = await self._run(self._append_tx, ops, operator)
        self._after_commit()
        await self._bound_wal()
        return result

    async def check_ops(self, ops: list[Op] | Op, operator: str) -> AppendResult:
        """What :meth:`append_ops` would do, done and rolled back: nothing is signed or
        written.

        The same transaction path, step by step (bodies built from the state, decoded,
        each kind's rule, each event folded for the next op's rule), so it refuses
        exactly what the append would refuse now; the result holds the events unsigned
        (a preview) and the touched records as they would be after them.
        """
        if isinstance(ops, Op):
            ops = [ops]
        if not operator:
            raise OperationRefused([Problem("operator.missing", "no operator is logged in")])
        result: AppendResult = await self._run(self._append_tx, ops, operator, True)
        return result

    def _append_tx(self, conn: sqlite3.Connection, ops: list[Op], operator: str,
                   dry: bool = False) -> AppendResult:
        """Append ``ops`` in one transaction; ``dry``: check them in one that is rolled
        back, signing and writing nothing (:meth:`check_ops`)."""
        key = self.key
        reg = self.registry
        with (snapshot(conn) if dry else transaction(conn)):
            head = self._head(conn, self.node_id)
            self._refuse_while_recovering(conn, head)
            if not dry:
                self._refuse_retired_key(conn, head.seq + 1)
            hlc = self._read_clock(conn)
            loaded = _Loaded()
            out: list[Appended] = []
            now = self._clock()
            cfg = self.rule_config.on(now)  # the rules' today: this counter's clock
            run = self._offline_run(conn)
            run_charged: dict[str, int] = {}  # per account: what the offline run charged
            for op in ops:
                seq = head.seq + 1
                self._load(conn, loaded, op.need)
                body = self._build(conn, loaded, op, seq)
                if op.kind in self._offline_marked and type(body) is dict:
                    body = _mark_offline(body, run)
                local = reg.local(op.kind, body)  # the body decoded once, as every node will
                if isinstance(local, list):
                    raise OperationRefused(local)
                kind, typed = local
                self._load(conn, loaded, kind.records(typed))
                op_cfg = cfg
                if run is not None:
                    for p in kind.patients(typed):
                        if p not in run_charged:
                            run_charged[p] = self._run_charged(conn, p, run.first_seq)
                    op_cfg = dataclasses.replace(cfg, offline=dataclasses.replace(
                        run, charged=tuple((p, run_charged[p]) for p in kind.patients(typed))))
                problems = kind.rule(loaded.state, typed, op_cfg)
                if problems:
                    raise OperationRefused(problems)
                hlc = hlc.now(now)
                ev = unsigned_event(node=self.node_id, seq=seq, prev=head.hash, hlc=hlc,
                                    operator=operator, kind=op.kind, body=body)
                if dry:
                    h = ev.hash()  # (a preview's: the chain of the unsigned events)
                else:
                    assert key is not None
                    ev, data, h = sign(key, ev)
                fact = Fact.of(ev, kind, typed)
                if not dry:
                    rowid = self._insert(conn, ev, data, h, now)
                    self._link(conn, [(p, rowid) for p in fact.patients])
                reg.apply_fact(loaded.state, fact)
                if fact.money.flow == "charge":
                    for p, d in fact.money.deltas:
                        if d < 0 and p in run_charged:
                            run_charged[p] -= d
                head = ChainHead(seq, h)
                out.append(Appended(ev, h))
            if not dry:
                self._write_back(conn, loaded)
                conn.execute("INSERT OR REPLACE INTO heads VALUES (?, ?, ?)",
                             (self.node_id, head.seq, head.hash))
                self._write_clock(conn, hlc)
        return AppendResult(out, loaded.state, now)

    def _offline_run(self, conn: sqlite3.Connection) -> OfflineRun | None:
        """This counter's offline run, if it is offline and central set offline limits:
        its own events after the last one central acknowledged (``acked_seq``), under
        the limits its ledger holds (None: online, or no limits)."""
        online, acked = conn.execute("SELECT online, acked_seq FROM sync_state").fetchone()
        if online or OfflineLimits not in self.registry.records:
            return None
        got = _select(conn, OfflineLimits, [LIMITS_KEY])
        if not got or not (got[0].floor or got[0].cap):
            return None
        return OfflineRun(int(acked) + 1, got[0].floor, got[0].cap)

    def _run_charged(self, conn: sqlite3.Connection, pid: str, first_seq: int) -> int:
        """What this counter's own events from ``first_seq`` on charged ``pid``'s deposit
        (the charges of its offline run: refunds do not lower it)."""
        total = 0
        for (data,) in conn.execute(
                "SELECT e.data FROM patient_events pe JOIN events e ON e.rowid = pe.event_rowid"
                " WHERE pe.patient_id = ? AND e.node = ? AND e.seq >= ?",
                (pid, self.node_id, first_seq)):
            money = self.registry.money(decode_event(data))
            if money.flow == "charge":
                total -= sum(d for p, d in money.deltas if p == pid and d < 0)
        return total

    @staticmethod
    def _refuse_while_recovering(conn: sqlite3.Connection, head: ChainHead) -> None:
        """No own event while central holds more of this counter's chain than the ledger
        (re-installed, restored from a backup): its seq would fork the chain."""
        held = conn.execute("SELECT acked_seq FROM sync_state").fetchone()[0]
        if held > head.seq:
            raise OperationRefused([Problem(
                "ledger.recovering", f"recovering from central…: this counter's own events "
                f"are back to seq {head.seq} of {held}; keep its sync running",
                values={"seq": head.seq, "held": held})])
        if Ledger._meta(conn, RECOVER_PENDING):
            raise OperationRefused([Problem(
                "ledger.recover_pending", "recovering from central…: this ledger was "
                "restored or re-installed and has not reached central yet; start its sync "
                "(onecard-edge sync, or onecard-edge recover)")])

    def _refuse_retired_key(self, conn: sqlite3.Connection, seq: int) -> None:
        """No own event signed with a key that is not this node's at ``seq`` (the app
        still running with the key ``onecard-edge rotate-key`` replaced): central would
        refuse it, and every later event with it."""
        rows = conn.execute("SELECT public_key, from_seq, until_seq FROM key_spans WHERE node=?"
                            " ORDER BY rowid", (self.node_id,)).fetchall()
        if not rows or self.key is None:
            return
        valid = key_at([KeySpan(bytes(k), int(f), int(u)) for k, f, u in rows], seq)
        if valid is not None and valid != self.key.public_key:
            raise OperationRefused([Problem(
                "ledger.key_retired", "this counter's key was rotated: restart the app so it "
                "signs with the new key")])

    async def recovery(self) -> tuple[int, int, bool]:
        """(own head seq, central's head of this node as last heard, awaiting central)."""
        def q(conn: sqlite3.Connection) -> tuple[int, int, bool]:
            held = conn.execute("SELECT acked_seq FROM sync_state").fetchone()[0]
            return (self._head(conn, self.node_id).seq, int(held),
                    bool(self._meta(conn, RECOVER_PENDING)))
        return await self._run(q)  # type: ignore[no-any-return]

    async def mark_recovering(self) -> None:
        """No own event until a sync has heard central's head for this node (a restore,
        a re-install): cleared by the sync daemon's welcome (:meth:`central_holds`)."""
        await self.write(lambda c: c.execute("INSERT OR REPLACE INTO meta VALUES (?, 1)",
                                             (RECOVER_PENDING,)))

    async def central_holds(self, seq: int) -> None:
        """Central holds this node's chain to ``seq`` (its welcome): appends wait until
        the ledger's own chain is back to it."""
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE sync_state SET acked_seq=? WHERE id=1", (seq,))
            conn.execute("DELETE FROM meta WHERE key=?", (RECOVER_PENDING,))
        await self.write(tx)

    def _build(self, conn: sqlite3.Connection, loaded: _Loaded, op: Op, seq: int) -> Body:
        """Run the op's body builder until every record its body touches is loaded.

        Builders are pure functions of the context, so running one again after loading
        (say, the account behind a card) gives the body as if all had been loaded first.
        """
        if not callable(op.body):
            return op.body
        body: Body = {}
        for _ in range(3):
            body = op.body(OpContext(self.node_id, seq, loaded.state))
            if type(body) is not dict:
                return body
            if not self._load(conn, loaded, self.registry.records_of(op.kind, body)):
                return body
        return body

    @staticmethod
    def _insert(conn: sqlite3.Connection, ev: Event, data: bytes, h: bytes,
                local_ms: int) -> int:
        cur = conn.execute(
            "INSERT INTO events (node, seq, hash, hlc_wall, hlc_counter, operator, kind, data,"
            " local_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ev.node, ev.seq, h, ev.hlc.wall, ev.hlc.counter, ev.operator, ev.kind, data,
             local_ms))
        assert cur.lastrowid is not None
        return cur.lastrowid

    @staticmethod
    def _link(conn: sqlite3.Connection, links: list[tuple[str, int]]) -> None:
        """Index events by the patients whose history they are in."""
        if links:
            conn.executemany("INSERT OR IGNORE INTO patient_events VALUES (?, ?)", links)

    @staticmethod
    def _head(conn: sqlite3.Connection, node: str) -> ChainHead:
        row = conn.execute("SELECT seq, hash FROM heads WHERE node=?", (node,)).fetchone()
        return ChainHead(row[0], row[1]) if row else ChainHead()

    @staticmethod
    def _read_clock(conn: sqlite3.Connection) -> Hlc:
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN "
                                 "('hlc_wall', 'hlc_counter')").fetchall())
        return Hlc(rows.get("hlc_wall", 0), rows.get("hlc_counter", 0))

    @staticmethod
    def _write_clock(conn: sqlite3.Connection, hlc: Hlc) -> None:
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         [("hlc_wall", hlc.wall), ("hlc_counter", hlc.counter)])

    # -- ingesting other nodes' events (sync) ------------------------------------------
    async def ingest(self, encoded: list[bytes], *, attested: bool = False,
                     index_later: bool = False, pull_cursor: int | None = None) -> int:
        """Store other nodes' events (verified, chained, idempotent) in one transaction.

        Returns how many were new.  Raises a :class:`ProtocolError` subclass, having
        stored nothing, if any event is malformed, unsigned by its node's known key,
        breaks its node's chain, claims to be this node, or equivocates.  A signed event
        with a bad body, or of a kind this version does not know, is stored and not
        folded.

        ``attested``: the events came in a frame central attested (its signature over
        their hashes, checked by the sync session: protocol 4).  Each other node's event
        is then stored and folded with its own signature not checked yet — only that a
        key of its node is valid at its seq — and marked pending (``sig_pending``) for
        the background check (:mod:`edge_node.sync.sigcheck`).  This node's own events,
        and every event once a check found central attesting a forgery
        (``sig_findings``), are verified here as without an attestation.

        ``index_later``: the derived indexes' terms of the records the events change are
        not written here but marked due (the patient search: ~80 rows a sealed name,
        most of an ingest's cost), for :meth:`index_due` — the sync daemon's background
        pass (:mod:`edge_node.sync.indexer`); searches meanwhile check the due records
        one by one, so they find them all the same.

        ``pull_cursor``: the sync daemon's pull position after these events, recorded in
        the same transaction (with the count received and the time): one commit, one
        fsync, a frame.
        """
        new = int(await self._run(self._ingest_tx, encoded, attested, index_later,
                                  pull_cursor))
        self._after_commit()
        await self._bound_wal()
        return new

    def _ingest_tx(self, conn: sqlite3.Connection, encoded: list[bytes],
                   attested: bool = False, index_later: bool = False,
                   pull_cursor: int | None = None) -> int:
        # This node's own events come back from central when the ledger lost them (a
        # re-install, an old backup): they must verify with this node's own keys and
        # continue its chain, like any node's.
        keys = keyring(conn, self.node_id, self.key.public_key if self.key else None)
        trusted = attested and conn.execute("SELECT 1 FROM sig_findings LIMIT 1").fetchone() \
            is None
        batch: list[tuple[Event, bytes, bytes, Decoded, bool]] = []
        need: set[Ref] = set()
        for data in encoded:
            ev = decode_event(data)
            spans = keys.get(ev.node)
            if spans is None:
                if ev.node == self.node_id:
                    raise ProtocolError(f"refusing an event that claims to be this node "
                                        f"({ev.node} seq {ev.seq}) without its key")
                raise SignatureError(f"{ev.node} is not a node this counter knows a key for")
            key = key_at(spans, ev.seq)
            deferred = trusted and ev.node != self.node_id
            try:
                if key is None:
                    raise SignatureError(f"no key of {ev.node} is valid at seq {ev.seq}")
                if not deferred:
                    ev.verify_signature(key)
            except SignatureError:
                if ev.node == self.node_id:
                    raise SignatureError(
                        f"this counter's own seq {ev.seq} at central was signed by another "
                        "key than this node.key: restore node.key from the hospital's "
                        "offline key backup") from None
                raise SignatureError(f"{ev.node} seq {ev.seq}: signature does not verify") from None
            d = self.registry.decode(ev)
            if isinstance(d, Fact):
                need |= d.records
            batch.append((ev, data, blake2b_256(data), d, deferred))
        with transaction(conn):
            heads: dict[str, ChainHead] = {}
            hlc = self._read_clock(conn)
            loaded = _Loaded()
            self._load(conn, loaded, need)  # every record the batch touches, one query a table
            # rowids assigned here (under the write lock) so the whole batch is two inserts
            rowid = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
            rows: list[tuple[Any, ...]] = []
            links: list[tuple[str, int]] = []
            in_batch: dict[tuple[str, int], bytes] = {}
            pending: list[tuple[int]] = []
            now = self._clock()
            for ev, data, h, d, deferred in batch:
                if ev.node not in heads:
                    heads[ev.node] = self._head(conn, ev.node)
                head = heads[ev.node]
                if ev.seq <= head.seq:
                    held = in_batch.get((ev.node, ev.seq))
                    if held is None:
                        row = conn.execute("SELECT hash FROM events WHERE node=? AND seq=?",
                                           (ev.node, ev.seq)).fetchone()
                        held = row[0] if row is not None else None
                    if held is None and ev.seq <= self._based(conn, ev.node):
                        continue  # folded into the snapshot this ledger started from
                    if held == h:
                        continue  # re-sent: a no-op
                    raise EquivocationError(f"{ev.node} seq {ev.seq}: a different event is "
                                            "already stored at this position")
                check_link(head, ev)
                rowid += 1
                # an own event recovered from central keeps the time it was written (the
                # counter's reports count it on its day, not on the day of recovery)
                rows.append((rowid, ev.node, ev.seq, h, ev.hlc.wall, ev.hlc.counter,
                             ev.operator, ev.kind, data,
                             ev.hlc.wall if ev.node == self.node_id else now))
                if deferred:
                    pending.append((rowid,))
                links += [(p, rowid) for p in (d.patients if isinstance(d, Fact) else
                                               self.registry.patients_of(ev))]
                in_batch[(ev.node, ev.seq)] = h
                if isinstance(d, Fact):
                    self.registry.apply_fact(loaded.state, d)
                heads[ev.node] = ChainHead(ev.seq, h)
                hlc = self._observe(hlc, ev, now)
            conn.executemany(
                "INSERT INTO events (rowid, node, seq, hash, hlc_wall, hlc_counter, operator, "
                "kind, data, local_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if pending:
                conn.executemany("INSERT INTO sig_pending VALUES (?)", pending)
            self._link(conn, links)
            self._write_back(conn, loaded, index_later)
            conn.executemany("INSERT OR REPLACE INTO heads VALUES (?, ?, ?)",
                             [(n, hd.seq, hd.hash) for n, hd in heads.items()])
            self._write_clock(conn, hlc)
            if pull_cursor is not None:
                conn.execute("UPDATE sync_state SET pull_cursor=?, received=received+?, "
                             "last_sync_ms=? WHERE id=1", (pull_cursor, len(rows), wall_ms()))
        return len(rows)

    @staticmethod
    def _based(conn: sqlite3.Connection, node: str) -> int:
        """The seq to which ``node``'s chain came with central's snapshot (0: none)."""
        head = base_heads(conn).get(node)
        return head.seq if head is not None else 0

    def _observe(self, hlc: Hlc, ev: Event, now: int) -> Hlc:
        """The clock after seeing ``ev``: a stamp too far ahead of ours is not believed."""
        if ev.hlc.wall - now > self.max_skew_ms:
            log.warning("clock skew: %s seq %d is %d s ahead of this counter; stored, its "
                        "clock not adopted", ev.node, ev.seq, (ev.hlc.wall - now) // 1000)
            return hlc
        return hlc.observe(ev.hlc, now)

    # -- the background pass of the indexes' due terms ------------------------------------
    async def index_due(self, limit: int = 200) -> tuple[int, int]:
        """Write the index terms of at most ``limit`` records an ingest marked due
        (``index_later``), in one transaction: (written, still due)."""
        def tx(conn: sqlite3.Connection) -> tuple[int, int]:
            with transaction(conn):
                if not self._keys_known():
                    return 0, 0  # (a reader's ledger: the sync daemon writes them)
                self._reindex_for_keys(conn)
                done = left = 0
                for ix in self._all_indexes():
                    n, more = ix.write_due(conn, limit - done)
                    done, left = done + n, left + more
                return done, left
        got: tuple[int, int] = await self._run(tx)
        if got[0]:
            self._after_commit()
        return got

    async def index_due_count(self) -> int:
        """Records whose index terms are due (:meth:`index_due`)."""
        return int(await self._run(lambda c: sum(ix.due_count(c)
                                                 for ix in self._all_indexes())))

    # -- the background check of attested events' own signatures ------------------------
    async def signatures_pending(self, limit: int = 256) -> list[tuple[int, str, int, bytes]]:
        """``(rowid, node, seq, data)`` of the oldest attested events whose own signature
        is not checked yet (:meth:`ingest`), at most ``limit``."""
        return [(int(r), str(n), int(q), bytes(d)) for r, n, q, d in await self._fetch(
            "SELECT p.event_rowid, e.node, e.seq, e.data FROM sig_pending p JOIN events e "
            "ON e.rowid = p.event_rowid ORDER BY p.event_rowid LIMIT ?", (limit,))]

    async def signatures_pending_count(self) -> int:
        return int((await self._fetch("SELECT count(*) FROM sig_pending"))[0][0])

    async def record_signature_checks(self, ok: Sequence[int],
                                      bad: Sequence[tuple[int, str]]) -> list[SignatureFinding]:
        """Record the background check of pending events: ``ok`` rowids verified, ``bad``
        ``(rowid, why)`` did not (a finding each, kept, never repeated); return the new
        findings.  One transaction; rowids no longer pending are left as they are."""
        def tx(conn: sqlite3.Connection) -> list[SignatureFinding]:
            new: list[SignatureFinding] = []
            with transaction(conn):
                conn.executemany("DELETE FROM sig_pending WHERE event_rowid = ?",
                                 [(r,) for r in ok])
                now = self._clock()
                for rowid, why in bad:
                    row = conn.execute(
                        "SELECT e.node, e.seq FROM sig_pending p JOIN events e ON e.rowid = "
                        "p.event_rowid WHERE p.event_rowid = ?", (rowid,)).fetchone()
                    if row is None:
                        continue
                    conn.execute("INSERT OR IGNORE INTO sig_findings (event_rowid, node, seq, "
                                 "reason, found_ms) VALUES (?, ?, ?, ?, ?)",
                                 (rowid, row[0], row[1], why, now))
                    conn.execute("DELETE FROM sig_pending WHERE event_rowid = ?", (rowid,))
                    new.append(SignatureFinding(rowid, str(row[0]), int(row[1]), why, now))
            return new
        return list(await self._run(tx))

    async def signature_findings(self, *, unreported: bool = False) -> list[SignatureFinding]:
        """Attested events whose own signature did not verify (oldest first)."""
        where = " WHERE reported = 0" if unreported else ""
        return [SignatureFinding(int(r), str(n), int(q), str(w), int(ms), bool(rep))
                for r, n, q, w, ms, rep in await self._fetch(
                    "SELECT event_rowid, node, seq, reason, found_ms, reported FROM "
                    f"sig_findings{where} ORDER BY event_rowid")]

    async def mark_findings_reported(self, rowids: Sequence[int]) -> None:
        """Central was told of these findings (an ``error`` frame)."""
        await self.write(lambda c: c.executemany(
            "UPDATE sig_findings SET reported = 1 WHERE event_rowid = ?", [(r,) for r in rowids]))

    async def set_node_keys(self, keys: dict[str, tuple[bytes, str]],
                            spans: dict[str, Sequence[KeySpan]] | None = None) -> None:
        """Record the public keys (and roles) of the nodes whose events this counter accepts,
        and (``spans``, from central's directory) each one's keys over its seqs.

        This node's own entry is taken from ``spans`` only, and only when its history
        holds this counter's key (central knows of the rotation ``rotate-key`` made)."""
        def tx(c: sqlite3.Connection) -> None:
            with transaction(c):
                c.executemany("INSERT OR REPLACE INTO node_keys VALUES (?, ?, ?)",
                              [(n, k, r) for n, (k, r) in keys.items() if n != self.node_id])
                for n, history in (spans or {}).items():
                    if n == self.node_id and (self.key is None or self.key.public_key not in
                                              {sp.key for sp in history}):
                        continue
                    _write_spans(c, n, history)
        await self._run(tx)

    async def rotate_own_key(self, new: bytes, from_seq: int) -> None:
        """Record that this node signs with ``new`` from ``from_seq`` on, and with the key
        it had (this ledger's key) before: ``onecard-edge rotate-key``."""
        old = self.key.public_key if self.key is not None else None

        def tx(c: sqlite3.Connection) -> None:
            with transaction(c):
                history = list(keyring(c, self.node_id, old).get(self.node_id, ()))
                if any(sp.key == new for sp in history):
                    raise ConfigError("this node has had that key before")
                history = [KeySpan(sp.key, sp.from_seq, from_seq) if sp.is_open else sp
                           for sp in history]
                _write_spans(c, self.node_id, [*history, KeySpan(new, from_seq)])
        await self._run(tx)

    async def central_pin(self, configured: bytes) -> tuple[bytes, int]:
        """The key this counter authenticates central with, and central's seq of the
        rotation statement it was taken from (0: ``configured``, the config's
        ``[sync] central_key``, itself).

        A pin taken from central's rotation (:meth:`adopt_central_key`) counts only while
        the config still pins the key it was followed from: a key IT pins by hand in the
        config wins."""
        def q(conn: sqlite3.Connection) -> tuple[bytes, int]:
            raw = self._meta(conn, CENTRAL_PIN)
            try:
                rec = json.loads(raw) if raw else {}
                if bytes.fromhex(rec["config"]) == configured:
                    return bytes.fromhex(rec["key"]), int(rec["seq"])
            except (ValueError, KeyError, TypeError):
                pass
            return configured, 0
        return await self._run(q)  # type: ignore[no-any-return]

    async def adopt_central_key(self, configured: bytes, rotations: Sequence[Rotation]) -> None:
        """Pin central's key the ``rotations`` lead to (each signed by the key before it,
        the first by this counter's pin, as the handshake checked): from now on central
        is authenticated with it (:meth:`central_pin`).  Refused (nothing written) when
        the ledger holds another event of central's at a statement's seq."""
        if not rotations:
            return

        def tx(conn: sqlite3.Connection) -> None:
            for r in rotations:
                row = conn.execute("SELECT hash FROM events WHERE node=? AND seq=?",
                                   (CENTRAL, r.seq)).fetchone()
                if row is not None and bytes(row[0]) != blake2b_256(r.data):
                    raise EquivocationError(
                        f"central's key rotation statement at its seq {r.seq} is not the "
                        "event this counter holds there: the new key is not taken")
            last = rotations[-1]
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (CENTRAL_PIN, json.dumps(
                {"config": configured.hex(), "key": last.new.hex(), "seq": last.seq})))
        await self.write(tx)

    async def node_keys(self) -> dict[str, bytes]:
        """Every known node's current key (this node's: its own)."""
        rows = await self._fetch("SELECT node, public_key FROM node_keys")
        keys = {n: k for n, k in rows}
        if self.key is not None:
            keys[self.node_id] = self.key.public_key
        return keys

    async def keyring(self) -> dict[str, tuple[KeySpan, ...]]:
        """Every known node's keys over its seqs (this node's included)."""
        own = self.key.public_key if self.key is not None else None
        return dict(await self._run(keyring, self.node_id, own))

    # -- reads -------------------------------------------------------------------------
    async def _fetch(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return list(await self._run(lambda c: c.execute(sql, tuple(params)).fetchall()))

    async def head(self) -> ChainHead:
        """This node's own chain head."""
        rows = await self._fetch("SELECT seq, hash FROM heads WHERE node=?", (self.node_id,))
        return ChainHead(*rows[0]) if rows else ChainHead()

    async def snapshot_base(self) -> Base | None:
        """Central's snapshot this ledger started from (None: it folded every event)."""
        base: Base | None = await self._run(base_of)
        return base

    async def node_heads(self) -> dict[str, ChainHead]:
        return {n: ChainHead(s, h) for n, s, h in await self._fetch("SELECT * FROM heads")}

    async def own_events_after(self, seq: int, limit: int = 500,
                               max_bytes: int = 1 << 20) -> list[bytes]:
        """This node's encoded events after ``seq``, ascending, within both limits."""
        rows = await self._fetch("SELECT data FROM events WHERE node=? AND seq>? ORDER BY seq "
                                 "LIMIT ?", (self.node_id, seq, limit))
        out: list[bytes] = []
        size = 0
        for (data,) in rows:
            if out and size + len(data) > max_bytes:
                break
            out.append(data)
            size += len(data)
        return out

    async def event_count(self) -> int:
        return int((await self._fetch("SELECT count(*) FROM events"))[0][0])

    async def last_arrival(self) -> int:
        """The local arrival number of the newest event held (0: none): it moves with
        every event appended or synced in, and costs one index lookup (screens poll it)."""
        return int((await self._fetch("SELECT coalesce(max(rowid), 0) FROM events"))[0][0])

    async def events(self, after_rowid: int = 0, limit: int = 1000) -> list[tuple[int, bytes]]:
        """All stored events in local order (for export), paged by rowid."""
        return [(r, d) for r, d in await self._fetch(
            "SELECT rowid, data FROM events WHERE rowid>? ORDER BY rowid LIMIT ?",
            (after_rowid, limit))]

    async def patient_keys(self) -> PatientKeys | None:
        """The hospital's patient keys central granted this counter's key (None: none yet,
        or none for this counter's role; :mod:`protocol.privacy`)."""
        if self._patient_keys[0] == "given":
            return self._patient_keys[1]
        keys: PatientKeys | None = await self._run(self._keys_tx)
        return keys

    async def shown(self, records: Sequence[R]) -> list[R]:
        """``records`` as they are handed out: a patient's sealed name opened with this
        counter's names key (:data:`SEALED_NAME` when it holds none that opens it).  The
        projections, the fold and the events keep it sealed; every read of patients
        below comes through here, so screens, receipts and reports show names."""
        if not records or not isinstance(records[0], Patient):
            return list(records)
        return _shown(records, await self.patient_keys())

    def _read_shown(self, rt: type[Record], read: Callable[[sqlite3.Connection], list[Any]]
                    ) -> Callable[[sqlite3.Connection], list[Any]]:
        """``read`` and, for patients, the keys to show them with, in one hop to the
        connection's thread (a screen reads a patient on every card tap)."""
        if rt is not Patient:
            return read
        return lambda c: _shown(read(c), self._keys_tx(c))

    async def get(self, table: str | type[R], key: Any) -> Any:
        """One projection record (by record type or table name, and key) or None (a
        patient with their name opened: :meth:`shown`)."""
        rt = self.record_type(table)
        recs = await self._run(self._read_shown(rt, lambda c: _select(c, rt, [key])))
        return recs[0] if recs else None

    async def find(self, table: str | type[R], column: str, value: Any,
                   order: str = "", limit: int = 200) -> list[Any]:
        """Records whose ``column`` equals ``value`` (an indexed column, for lookups)."""
        rt = self.record_type(table)
        names = [c for c, _ in columns(rt)]
        if column not in names or (order and order.split()[0] not in names):
            raise ValueError(f"{rt.TABLE} has no column {column!r} / {order!r}")
        sql = (f"SELECT {', '.join(names)} FROM {rt.TABLE} WHERE {column}=? "
               f"ORDER BY {order or ', '.join(rt.KEY)} LIMIT ?")
        return list(await self._run(self._read_shown(rt, lambda c: [
            rt(*r) for r in c.execute(sql, (value, limit)).fetchall()])))

    async def find_patients(self, column: str, value: str) -> list[Any]:
        if column not in ("national_id", "id_tag", "phone"):
            raise ValueError(column)
        return await self.find("patients", column, value, limit=50)

    async def search_patients(self, query: str, limit: int = 50
                              ) -> list[tuple[Any, Any | None, list[Any]]]:
        """The patients ``query`` finds (:mod:`edge_node.search`), best first, each with
        its account (None before its first money event) and its cards: one hop."""
        index = next((ix for ix in self._all_indexes() if isinstance(ix, PatientIndex)), None)
        if index is None:
            return []
        patients, accounts, cards = (self.record_type(t) for t in ("patients", "accounts",
                                                                   "cards"))
        keys = await self.patient_keys()

        def tx(conn: sqlite3.Connection) -> list[tuple[Any, Any | None, list[Any]]]:
            ids = index.search(conn, query, limit, keys)
            if not ids:
                return []
            found = {p.key(): p for p in _select(conn, patients, ids)}
            money = {a.key(): a for a in _select(conn, accounts, ids)}
            held: dict[str, list[Any]] = {}
            names = ", ".join(c for c, _ in columns(cards))
            for card in conn.execute(f"SELECT {names} FROM {cards.TABLE} WHERE patient_id IN "
                                     f"({', '.join('?' * len(ids))}) ORDER BY issued_ms", ids):
                c: Any = cards(*card)
                held.setdefault(c.patient_id, []).append(c)
            return [(found[i], money.get(i), held.get(i, [])) for i in ids if i in found]
        got = await self._run(tx)
        shown = _shown([p for p, _, _ in got], keys)
        return [(p, a, c) for p, (_, a, c) in zip(shown, got, strict=True)]

    async def cards_of(self, patient_id: str) -> list[Any]:
        return await self.find("cards", "patient_id", patient_id, "issued_ms")

    async def charges_of(self, patient_id: str) -> list[Any]:
        return await self.find("charges", "patient_id", patient_id, "wall_ms DESC")

    async def history(self, patient_id: str, limit: int = 200) -> list[Event]:
        """The patient's events, newest first, with those of every record central merged
        into it (``patient.merged``: the history moves to the survivor with the money)."""
        rows = await self._fetch(
            "WITH RECURSIVE family(id) AS (SELECT ? UNION"
            " SELECT p.patient_id FROM patients p JOIN family f ON p.merged_into = f.id)"
            " SELECT data FROM events WHERE rowid IN (SELECT event_rowid FROM patient_events"
            " WHERE patient_id IN family) ORDER BY rowid DESC LIMIT ?", (patient_id, limit))
        return [decode_event(d) for (d,) in rows]

    async def own_events_between(self, start_ms: int, end_ms: int) -> list[tuple[Event, int]]:
        """This counter's own events written in [start_ms, end_ms) by its own clock, each
        with that time."""
        rows = await self._fetch(
            "SELECT data, local_ms FROM events WHERE node = ? AND local_ms >= ? AND "
            "local_ms < ? ORDER BY seq", (self.node_id, start_ms, end_ms))
        return [(decode_event(d), ms) for d, ms in rows]

    async def event_at(self, node: str, seq: int) -> tuple[Event, int] | None:
        """The event ``(node, seq)`` and when this counter wrote or received it (its own
        clock, ``local_ms``), or None if it is not here."""
        rows = await self._fetch("SELECT data, local_ms FROM events WHERE node = ? AND seq = ?",
                                 (node, seq))
        return (decode_event(rows[0][0]), int(rows[0][1])) if rows else None

    def now_ms(self) -> int:
        """This counter's own clock (what ``local_ms`` and the daily report go by)."""
        return self._clock()

    async def sync_state(self) -> SyncState:
        row = (await self._fetch(f"SELECT {', '.join(_SYNC_FIELDS)} FROM sync_state"))[0]
        own, held, awaiting = await self.recovery()
        st = dict(zip(_SYNC_FIELDS, row, strict=True))
        return SyncState(bool(st.pop("online")), pending=max(0, own - st["acked_seq"]),
                         recovering=awaiting or held > own, **st)

    async def update_sync_state(self, **fields: Any) -> None:
        unknown = set(fields) - set(_SYNC_FIELDS)
        if unknown:
            raise ValueError(f"unknown sync state fields {sorted(unknown)}")
        if not fields:
            return
        sets = ", ".join(f"{k}=?" for k in fields)
        vals = tuple(int(v) if isinstance(v, bool) else v for v in fields.values())
        await self.write(lambda c: c.execute(f"UPDATE sync_state SET {sets} WHERE id=1", vals))

    # -- integrity -----------------------------------------------------------------------
    async def verify(self, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Walk every node's chain: stored bytes, hashes, links, signatures (each with the key
        valid at its seq); name the first bad.  Streams (memory bounded at any size);
        ``progress`` is told every 10,000 events."""
        keys = await self.keyring()
        report: VerifyReport = await self._run(self._verify_tx, keys, progress)
        base = await self._run(base_of)
        if report.ok and base is not None:
            why = await asyncio.to_thread(check_base, self._path, base)
            if why:
                return VerifyReport(False, report.checked, "", 0, why)
            m = base.manifest
            report = dataclasses.replace(report, base=(
                f"they follow central's snapshot at position {m.cursor} ({m.events} events "
                f"before it, kept at central), whose signature (central key "
                f"{fingerprint(base.central_key)}) and file check"))
        own, held, _ = await self.recovery()
        if report.ok and held > own:
            return VerifyReport(False, report.checked, self.node_id, own + 1,
                                f"central holds this counter's chain to seq {held} but this "
                                f"ledger only to {own}: recover from central (onecard-edge "
                                "recover) before this counter appends")
        return report

    @staticmethod
    def _verify_tx(conn: sqlite3.Connection, keys: Keyring,
                   progress: Callable[[int], None] | None = None) -> VerifyReport:
        checked = 0
        # a ledger started from central's snapshot: each chain goes on from its head there
        start = base_heads(conn)
        nodes = [n for (n,) in conn.execute("SELECT DISTINCT node FROM events ORDER BY node")]
        for node in sorted(set(nodes) | set(start)):
            head = start.get(node, ChainHead())
            for seq, h, data in conn.execute(
                    "SELECT seq, CAST(hash AS BLOB), CAST(data AS BLOB) FROM events "
                    "WHERE node=? ORDER BY seq", (node,)):
                def bad(reason: str, node: str = node, seq: int = seq,
                        checked: int = checked) -> VerifyReport:
                    return VerifyReport(False, checked, node, seq, reason)
                if blake2b_256(data) != h:
                    return bad("stored bytes do not match the stored hash (altered)")
                try:
                    ev = decode_event(data)
                    if (ev.node, ev.seq) != (node, seq):
                        return bad(f"event inside says {ev.node} seq {ev.seq}")
                    check_link(head, ev)
                    if node not in keys:
                        return bad("no public key known for this node")
                    key = key_at(keys[node], seq)
                    if key is None:
                        return bad("no key of this node is valid at this seq")
                    ev.verify_signature(key)
                except ChainError as exc:
                    return bad(f"chain broken: {exc}")
                except ProtocolError as exc:
                    return bad(f"{exc.code}: {exc}")
                head = ChainHead(seq, h)
                checked += 1
                if progress and checked % 10_000 == 0:
                    progress(checked)
            stored = conn.execute("SELECT seq, hash FROM heads WHERE node=?", (node,)).fetchone()
            if stored is None or ChainHead(*stored) != head:
                return VerifyReport(False, checked, node, head.seq,
                                    "the recorded chain head does not match the events")
        return VerifyReport(True, checked)

    async def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Drop the projections and refold them from the events alone; return events folded."""
        def tx(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return self._rebuild_in_tx(conn, progress)
        return int(await self._run(tx))

    def _rebuild_in_tx(self, conn: sqlite3.Connection,
                       progress: Callable[[int], None] | None) -> int:
        """Make the declared projection tables afresh and fold every event into them."""
        row = conn.execute("SELECT value FROM meta WHERE key='projection_tables'").fetchone()
        old = set(json.loads(row[0])) if row else set(LEGACY_TABLES)
        for table in sorted(old | {rt.TABLE for rt in self.registry.records}):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        for rt in self.registry.records:
            for stmt in ddl(rt):
                conn.execute(stmt)
        conn.execute("DELETE FROM patient_events")
        reg = self.registry
        # the indexes start empty, made with the keys as they are now; a grant folded on
        # the way rewrites them with its keys (_write_back), in pages
        self._keys_tx(conn)
        for ix in self._all_indexes():
            ix.clear(conn)
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         (_index_meta(ix), ix.fingerprint()))
        base = base_of(conn)
        if base is not None:  # started from central's snapshot: its projections first
            self._load_base(conn, base)
        n = after = 0
        while True:  # in chunks, as ingest folds: memory bounded whatever the history
            rows = conn.execute("SELECT rowid, data FROM events WHERE rowid > ? ORDER BY "
                                "rowid LIMIT ?", (after, REBUILD_CHUNK)).fetchall()
            if not rows:
                break
            self._link(conn, self._fold(conn, [(rowid, reg.decode(decode_event(data)))
                                               for rowid, data in rows]))
            before, n, after = n, n + len(rows), rows[-1][0]
            if progress and n // 10_000 != before // 10_000:
                progress(n)
        self._reindex_for_keys(conn)
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
            ("projection_schema", reg.fingerprint()),
            ("projection_tables", json.dumps(sorted(rt.TABLE for rt in reg.records)))])
        return n

    def _fold(self, conn: sqlite3.Connection, decoded: Sequence[tuple[int, Decoded]]
              ) -> list[tuple[str, int]]:
        """Fold decoded events (in this order) into the projections; their patient links
        (``(patient, rowid)``) for the caller to write."""
        reg = self.registry
        loaded = _Loaded()
        self._load(conn, loaded, {r for _, d in decoded if isinstance(d, Fact)
                                  for r in d.records})
        links: list[tuple[str, int]] = []
        for rowid, d in decoded:
            if isinstance(d, Fact):
                reg.apply_fact(loaded.state, d)
                links += [(p, rowid) for p in d.patients]
            else:
                links += [(p, rowid) for p in reg.patients_of(d.event)]
        self._write_back(conn, loaded)
        return links

    def _load_base(self, conn: sqlite3.Connection, base: Base) -> None:
        """Inside a rebuild: the projections (and indexes made the same way) as central's
        snapshot holds them, copied from the kept base a page at a time."""
        if base.manifest.registry != self.registry.fingerprint():
            raise ConfigError(
                "this ledger started from central's snapshot, which another version of "
                "onecard folded: its projections cannot be refolded by this one. Bootstrap "
                "the counter again from a snapshot of this version (move the ledger aside; "
                "onecard-edge bootstrap)")
        tables = [rt.TABLE for rt in self.registry.records]
        with opened_base(self._path, base) as src:
            meta = dict(src.execute("SELECT key, value FROM meta").fetchall())
            for ix in self._all_indexes():
                if meta.get(_index_meta(ix)) == ix.fingerprint():
                    tables.append(ix.TABLE)
            for table in tables:
                for names, rows in base_rows(src, table):
                    conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                                     f"({', '.join('?' * len(names))})", rows)
        for ix in self._all_indexes():
            if ix.TABLE not in tables:  # made another way: made afresh from the records
                self._reindex(conn, ix)

    # -- central's snapshot mirror -------------------------------------------------------
    async def fold_trusted(self, encoded: Sequence[bytes], now_ms: int,
                           meta: dict[str, Any] | None = None) -> int:
        """Fold others' events central has verified and stored, in its store's order,
        into the projections, chain heads and clock — not into the events table (central's
        snapshot mirror, :mod:`central.snapshot`).  Each event must continue its node's
        chain as the heads hold it.  ``meta`` rows are written in the same transaction (the
        mirror's position).  Returns how many were folded."""
        def tx(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                reg = self.registry
                heads: dict[str, ChainHead] = {}
                clock = self._read_clock(conn)
                wall, counter = clock.wall, clock.counter
                decoded: list[tuple[int, Decoded]] = []
                for data in encoded:
                    ev = decode_event(data)
                    head = heads.get(ev.node) or self._head(conn, ev.node)
                    check_link(head, ev)
                    heads[ev.node] = ChainHead(ev.seq, blake2b_256(data))
                    if ev.hlc.wall - now_ms <= self.max_skew_ms and \
                            (ev.hlc.wall, ev.hlc.counter) > (wall, counter):
                        wall, counter = ev.hlc.wall, ev.hlc.counter
                    decoded.append((0, reg.decode(ev)))
                self._fold(conn, decoded)
                conn.executemany("INSERT OR REPLACE INTO heads VALUES (?, ?, ?)",
                                 [(n, hd.seq, hd.hash) for n, hd in heads.items()])
                self._write_clock(conn, Hlc(wall, counter))
                conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 list((meta or {}).items()))
                return len(decoded)
        n = int(await self._run(tx))
        self._after_commit()
        await self._bound_wal()  # (steps follow each other: keep the WAL bounded)
        return n

    async def dump_projections(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every projection row, sorted (for comparing a live ledger with its rebuild)."""
        out = {}
        for table in [*(rt.TABLE for rt in self.registry.records), "patient_events",
                      *(ix.TABLE for ix in self._all_indexes())]:
            out[table] = sorted(await self._fetch(f"SELECT * FROM {table}"))
        return out

    # -- projection helpers (run inside the connection thread) ----------------------------
    def _load(self, conn: sqlite3.Connection, loaded: _Loaded, need: Iterable[Ref]) -> bool:
        """Load the records ``need`` names that are not loaded yet; whether any were new."""
        missing: dict[type[Record], list[Any]] = {}
        for ref in need:
            if ref not in loaded.seen:
                missing.setdefault(ref[0], []).append(ref[1])
        if not missing:
            return False
        for rt, keys in missing.items():
            for key in keys:
                loaded.seen[(rt, key)] = None
            table = loaded.state.table(rt)
            for rec in _select(conn, rt, keys):
                key = rec.key()
                if key not in table:  # an earlier op in this transaction may have made it
                    table[key] = rec
                    loaded.seen[(rt, key)] = rec
        return True

    def _write_back(self, conn: sqlite3.Connection, loaded: _Loaded,
                    index_later: bool = False) -> None:
        changes = {rt: [r for k, r in table.items() if loaded.seen.get((rt, k)) != r]
                   for rt, table in loaded.state.tables.items()}
        later = index_later and self._keys_known()
        if any(changes.get(rt) for rt in self.indexes):
            self._reindex_for_keys(conn, later)  # (the other process may have taken new keys)
        interim = self._interim(conn) if self.indexes else False
        for rt, changed in changes.items():
            _upsert(conn, rt, changed)
            for ix in self.indexes.get(rt, ()):
                written = [r for r in changed if _index_changed(ix, loaded.seen.get(
                    (rt, r.key())), r)]
                if later and not interim:
                    ix.mark_due(conn, written)
                else:
                    ix.write(conn, written)
                if interim and written:  # (their names get terms once the grant comes)
                    conn.executemany("INSERT OR IGNORE INTO index_interim VALUES (?)",
                                     [(r.key(),) for r in written])
        if self.indexes and changes.get(KeyGrant):
            self._reindex_for_keys(conn, later)  # a grant folded just now: its keys index names
        if not self._keys_known() and any(changes.get(rt) for rt in self.indexes):
            # (written without the keys: sealed names got no terms; the counter's next
            # open with its key rewrites the index)
            conn.executemany("DELETE FROM meta WHERE key=?",
                             [(_index_meta(ix),) for ix in self._all_indexes()])


def check_ledger_copy(node_id: str, public_key: bytes
                      ) -> Callable[[sqlite3.Connection], tuple[int, str]]:
    """The chain verify of ``onecard-edge verify``, for a copy of this node's ledger
    (a backup): (events checked, "" or why it is broken)."""
    def check(conn: sqlite3.Connection) -> tuple[int, str]:
        row = conn.execute("SELECT value FROM meta WHERE key='node_id'").fetchone()
        if row is None or row[0] != node_id:
            return 0, f"it is the ledger of {row[0] if row else 'no node'}, not of {node_id}"
        report = Ledger._verify_tx(conn, keyring(conn, node_id, public_key))
        return report.checked, "" if report.ok else str(report)
    return check


def _write_spans(conn: sqlite3.Connection, node: str, history: Sequence[KeySpan]) -> None:
    conn.execute("DELETE FROM key_spans WHERE node=?", (node,))
    if tuple(history) != single(history[0].key if history else b""):
        conn.executemany("INSERT INTO key_spans VALUES (?, ?, ?, ?)",
                         [(node, sp.key, sp.from_seq, sp.until_seq) for sp in history])


def keyring(conn: sqlite3.Connection, node_id: str, own: bytes | None
            ) -> dict[str, tuple[KeySpan, ...]]:
    """Every node's keys over its seqs in a ledger: its current key from seq 1 on, unless
    ``key_spans`` has its history.  This node (``node_id``): its history when that holds
    ``own`` (this ledger's key), else ``own`` from seq 1 on."""
    out = {str(n): single(bytes(k)) for n, k in
           conn.execute("SELECT node, public_key FROM node_keys") if n != node_id}
    spans: dict[str, list[KeySpan]] = {}
    for n, k, f, u in conn.execute(
            "SELECT node, public_key, from_seq, until_seq FROM key_spans ORDER BY rowid"):
        spans.setdefault(str(n), []).append(KeySpan(bytes(k), int(f), int(u)))
    for n, history in spans.items():
        if n != node_id:
            out[n] = tuple(history)
    if own is not None:
        mine = spans.get(node_id, [])
        out[node_id] = tuple(mine) if own in {sp.key for sp in mine} else single(own)
    return out


#: The body field in which a charging kind records the offline run it was charged in.
OFFLINE_FIELD = "offline_from"


def _mark_offline(body: Body, run: OfflineRun | None) -> Body:
    """``body`` with the offline run it is appended in (and no other: the ledger knows
    which run it is, its caller does not)."""
    out = {k: v for k, v in body.items() if k != OFFLINE_FIELD}
    if run is not None:
        out[OFFLINE_FIELD] = run.first_seq
    return out


#: meta key: restored or re-installed, no own event until central's head is known
RECOVER_PENDING = "recover.pending"
#: meta key: bootstrapped from central's snapshot, whose search index central made with
#: the hospital's patient keys, while this counter's grant of them has not come yet (it
#: comes in the first sync, among the events after the snapshot).  Meanwhile the index is
#: not rewritten without names (at 10M events, minutes); once the grant is folded, the
#: patients written in between (table ``index_interim``, made by the install and dropped
#: then) get their terms with its keys and the mark goes.
INDEX_INTERIM = "index.interim"
#: meta key: central's key taken from its rotation statements (JSON: the config's pin it
#: was followed from, the key, the last statement's seq)
CENTRAL_PIN = "sync.central_pin"


def damaged(path: Path, why: str) -> DamagedFile:
    """The one message for a ledger file SQLite cannot use: which file, and what to do."""
    return DamagedFile(
        f"the ledger {path} {why}. Restore a backup (onecard-edge restore FILE; backups "
        "are in the [backup] dir), or move the file aside and recover this counter's "
        "events from central (onecard-edge recover)")


CHECKPOINT_EVERY = 200  # commits between background WAL checkpoints in a busy streak
IDLE_CHECKPOINT_S = 1.0  # …and this long after the last commit
WAL_LIMIT = 64 * 1024 * 1024  # bytes of WAL that force a checkpoint in line
REBUILD_CHUNK = 500  # events refolded per step of a rebuild (bounds its memory)
#: Projection tables of ledgers made before the registry declared them (migration 1).
LEGACY_TABLES = ("patients", "cards", "accounts", "charges")


def _checkpoint(path: str) -> None:
    try:
        con = sqlite3.connect(path, timeout=5)
        try:
            con.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            con.close()
    except sqlite3.Error as exc:  # a missed checkpoint is retried after the next commits
        log.warning("background WAL checkpoint of %s failed: %s", path, exc)


def ddl(rt: type[Record]) -> list[str]:
    """The SQL that makes a record type's table and indexes, from its declaration."""
    cols = ", ".join(f"{name} {typ} NOT NULL" for name, typ in columns(rt))
    out = [f"CREATE TABLE {rt.TABLE} ({cols}, PRIMARY KEY ({', '.join(rt.KEY)})) WITHOUT ROWID"]
    for ix in rt.INDEXES:
        out.append(f"CREATE INDEX {rt.TABLE}_{'_'.join(ix)} ON {rt.TABLE} ({', '.join(ix)})")
    return out


def _select(conn: sqlite3.Connection, rt: type[R], keys: list[Any]) -> list[R]:
    names = ", ".join(c for c, _ in columns(rt))
    out = []
    single = len(rt.KEY) == 1
    for chunk in _chunks(keys, 300):
        if single:
            where = f"{rt.KEY[0]} IN ({', '.join('?' * len(chunk))})"
            args: list[Any] = list(chunk)
        else:  # a composite key: row values
            one = "(" + ", ".join("?" * len(rt.KEY)) + ")"
            where = f"({', '.join(rt.KEY)}) IN (VALUES {', '.join([one] * len(chunk))})"
            args = [v for k in chunk for v in k]
        for row in conn.execute(f"SELECT {names} FROM {rt.TABLE} WHERE {where}", args):
            out.append(rt(*row))
    return out


def _shown(records: Sequence[Any], keys: PatientKeys | None) -> list[Any]:
    """Patients with their names opened with ``keys`` (see :meth:`Ledger.shown`)."""
    out: list[Any] = []
    for p in records:
        name = name_of(p, keys)
        out.append(p if name == p.name else p.evolve(name=SEALED_NAME if name is None
                                                     else name))
    return out


def _select_all(conn: sqlite3.Connection, rt: type[R]) -> list[R]:
    names = ", ".join(c for c, _ in columns(rt))
    return [rt(*row) for row in conn.execute(f"SELECT {names} FROM {rt.TABLE}")]


def _select_pages(conn: sqlite3.Connection, rt: type[R], size: int = 5_000
                  ) -> Iterator[list[R]]:
    """Every record of ``rt``, a page at a time (the caller writes only other tables)."""
    names = ", ".join(c for c, _ in columns(rt))
    cur = conn.execute(f"SELECT {names} FROM {rt.TABLE}")
    while page := cur.fetchmany(size):
        yield [rt(*row) for row in page]


def _index_meta(ix: RecordIndex) -> str:
    return f"index:{ix.TABLE}"


def _index_changed(ix: RecordIndex, old: Record | None, new: Record) -> bool:
    return old is None or ix.terms_key(old) != ix.terms_key(new)


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _upsert(conn: sqlite3.Connection, rt: type[Record], records: Iterable[Record]) -> None:
    names = [c for c, _ in columns(rt)]
    row = operator.attrgetter(*names)  # (one call a record: a tuple of its fields)
    rows = [row(r) if len(names) > 1 else (row(r),) for r in records]
    if rows:
        conn.executemany(f"INSERT OR REPLACE INTO {rt.TABLE} ({', '.join(names)}) VALUES "
                         f"({', '.join('?' * len(names))})", rows)


def _storage_error(exc: sqlite3.OperationalError) -> StorageError:
    msg = str(exc)
    if "full" in msg:
        return StorageError("the disk is full: nothing was written. Free space, then retry.")
    if "readonly" in msg or "read-only" in msg:
        return StorageError("the ledger file is read-only: nothing was written.")
    if "locked" in msg or "busy" in msg:
        return StorageError("the ledger is busy (another process holds it): nothing was "
                            "written. Retry in a moment.")
    return StorageError(f"ledger error: {msg}. Nothing was written.")
