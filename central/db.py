"""Central's database layer: one async interface, two backends.

:class:`CentralStore` (and through it conflicts, dormant, audit, staff, catalogue, trail,
privacy, the importer, the CLI and the console) speaks to the database only through a
:class:`Database`:

* :meth:`Database.transaction` — the write transaction.  The store serialises writers
  with its own lock inside a process; the backend serialises them across processes and
  instances (SQLite: ``BEGIN IMMEDIATE``, the one write lock; PostgreSQL: a transaction
  that first takes :data:`WRITE_LOCK`, an advisory lock held until it ends).  Committed
  when the block ends, rolled back if it raises.
* :meth:`Database.snapshot` — a read-only transaction that sees one snapshot (SQLite: a
  read transaction under WAL; PostgreSQL: ``REPEATABLE READ READ ONLY``): the pull reads
  the cursor and the events in one.
* :meth:`Database.read` — one read query; :meth:`Database.execute` — one write statement
  on its own (the caller holds the store's lock).
* :meth:`Tx.query` / :meth:`Tx.execute` / :meth:`Tx.executemany` inside a transaction.

Callers write one SQL text for both: ``?`` placeholders (turned into ``$1…`` for
PostgreSQL outside quoted literals), ``INSERT … ON CONFLICT DO NOTHING / DO UPDATE``
(SQLite ≥ 3.24), ``CASE`` rather than the scalar ``max()``/``min()``, no ``rowid``,
``randomblob`` or ``sqlite_master``, and every subquery in ``FROM`` with an alias.

Types: SQLite's dynamic typing lets a caller write an ``int`` into a ``TEXT`` column
(``meta``'s values); asyncpg checks each argument against the parameter's type, so the
PostgreSQL backend learns each statement's parameter types once (a prepare, cached per
SQL text) and writes such an ``int`` as its decimal text, a ``bool`` into an integer as
0/1.  Every integer column is ``BIGINT`` there (millisecond times overflow ``INTEGER``),
every blob ``BYTEA``; ``meta.value`` is ``TEXT`` (``store_id`` as hex).

Errors: both backends raise subclasses of :class:`sqlite3.Error`, so the callers' one
``except sqlite3.Error`` (and ``sqlite3.IntegrityError`` for a unique violation) holds
for both; PostgreSQL's are :class:`PgError` (never taken for a damaged SQLite file) and
:class:`DatabaseUnavailable` when the server cannot be reached (one line naming the URL).

Migrations: SQLite's list (``central.store.MIGRATIONS``) is applied as it always was;
PostgreSQL has its own list, :data:`PG_MIGRATIONS`, whose first entry creates the schema
of SQLite's version 8 at once and records versions 1–8; each later version is appended
to both lists under the same number.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import re
import secrets
import sqlite3
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

# aiosqlite logs each statement with its arguments at DEBUG: patient data (sealed details,
# what IT typed into the console's search) must reach no log, whatever the log level
logging.getLogger("aiosqlite").setLevel(logging.INFO)

Row = tuple[Any, ...]
Args = Sequence[object]

#: the advisory lock every PostgreSQL write transaction holds until it ends: writers are
#: serialised across processes and central instances as SQLite's one write lock does
WRITE_LOCK = 0x0_C4_2D_CE  # ("onecard central", any constant shared by all instances)
#: held while migrating, so two instances opening a new database do not both create it
MIGRATE_LOCK = WRITE_LOCK + 1
#: held for its life by the one central process that reconciles (:meth:`Database.lease`)
RECONCILER_LOCK = WRITE_LOCK + 2
#: NOTIFY channel: events were stored (the other instances wake their counters' feeds)
EVENTS_CHANNEL = "onecard_events"


class PgError(sqlite3.OperationalError):
    """PostgreSQL refused a statement or the connection failed (its message says which)."""


class PgIntegrityError(PgError, sqlite3.IntegrityError):
    """A constraint PostgreSQL enforces (unique, foreign key, check) was violated."""


class DatabaseUnavailable(PgError):
    """The PostgreSQL server cannot be reached, or refuses this database or user."""

    def __init__(self, url: str, why: object) -> None:
        super().__init__(f"cannot reach the central database {redact(url)}: {why} (is "
                         "PostgreSQL running there, and does the database exist?)")


class NotSqlite(Exception):
    """A command that works on SQLite's file (backup, restore, verify) run on PostgreSQL."""

    def __init__(self, what: str, url: str,
                 instead: str = "back it up with pg_dump -Fc and restore it with pg_restore"
                 ) -> None:
        super().__init__(f"{what} works on central's SQLite file; this central's database "
                         f"is PostgreSQL ({redact(url)}): {instead}")


def is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def sqlite_path(target: str | Path) -> str:
    """The file of a SQLite target: a plain path, or ``sqlite:///path`` (relative) and
    ``sqlite:////abs/path`` (absolute) as SQLAlchemy writes them."""
    t = str(target)
    if t.startswith("sqlite://"):
        rest = t[len("sqlite://"):]
        if not rest.startswith("/"):
            raise ValueError(f"{t}: a SQLite URL is sqlite:///relative/path or "
                             "sqlite:////absolute/path")
        return rest[1:] or ":memory:"
    return t


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if u.password is None:
        return url
    host = u.hostname or ""
    netloc = f"{u.username}:***@{host}" + (f":{u.port}" if u.port else "")
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


@functools.lru_cache(maxsize=1024)
def to_pg(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered ``$1…`` (not those inside quotes)."""
    out: list[str] = []
    n = 0
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Tx:
    """Statements inside one transaction (or snapshot)."""

    async def query(self, sql: str, args: Args = ()) -> list[Row]:
        raise NotImplementedError

    async def execute(self, sql: str, args: Args = ()) -> int:
        """Run one statement; return the rows it changed."""
        raise NotImplementedError

    async def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        raise NotImplementedError


class Database:
    """What :class:`~central.store.CentralStore` needs of a database (see the module)."""

    dialect: str
    #: where it is (a path or a URL without its password), for messages
    where: str

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]:
        raise NotImplementedError

    def snapshot(self) -> contextlib.AbstractAsyncContextManager[Tx]:
        raise NotImplementedError

    async def read(self, sql: str, args: Args = ()) -> list[Row]:
        raise NotImplementedError

    async def execute(self, sql: str, args: Args = ()) -> int:
        raise NotImplementedError

    async def announce_events(self, tx: Tx) -> None:
        """Tell every process listening (:meth:`listen`) that ``tx`` stores events, when it
        commits."""

    async def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in this loop) whenever another process's transaction that
        :meth:`announce_events` commits (PostgreSQL: several central instances); SQLite:
        a single instance serves a file, and the others' writes are polled for."""

    async def lease(self) -> bool:
        """Whether this process holds (now taken, or still) the reconciler's lease: one
        process at a time folds the store's events into its state and the conflict book
        (:class:`~central.conflicts.ConflictWatch`); when it dies the lease is free and
        the next instance that asks takes it over from the stored checkpoint."""
        raise NotImplementedError

    async def release_lease(self) -> None:
        """Give the reconciler's lease up (a console that reconciled while no ``serve``
        did: a ``serve`` started now takes it)."""

    async def close(self) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------- SQLite


class _SqliteTx(Tx):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._c = conn

    async def query(self, sql: str, args: Args = ()) -> list[Row]:
        cur = await self._c.execute(sql, tuple(args))
        rows = [tuple(r) for r in await cur.fetchall()]
        await cur.close()
        return rows

    async def execute(self, sql: str, args: Args = ()) -> int:
        cur = await self._c.execute(sql, tuple(args))
        n = cur.rowcount
        await cur.close()
        return n

    async def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        await self._c.executemany(sql, [tuple(r) for r in rows])


class SqliteDatabase(Database):
    """Two aiosqlite connections: one writer, one reader (``query_only``), so pulls run
    beside ingests under WAL.  The reader runs one read (or snapshot) at a time."""

    dialect = "sqlite"

    def __init__(self, path: str, writer: aiosqlite.Connection,
                 reader: aiosqlite.Connection) -> None:
        self.where = path
        self._w = writer
        self._r = reader
        self._rlock = asyncio.Lock()
        self._lease_fd: int | None = None

    @classmethod
    async def open(cls, path: str, migrations: Sequence[tuple[int, str, str]]
                   ) -> SqliteDatabase:
        writer = await aiosqlite.connect(path, isolation_level=None)
        try:
            await writer.execute("PRAGMA journal_mode=WAL")
            await writer.execute("PRAGMA synchronous=FULL")
            await writer.execute("PRAGMA busy_timeout=10000")
            await writer.execute("PRAGMA foreign_keys=ON")
            await _migrate_sqlite(writer, migrations)
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute("PRAGMA busy_timeout=10000")
            await reader.execute("PRAGMA query_only=ON")
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        await self._w.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTx(self._w)
            await self._w.execute("COMMIT")
        except BaseException:
            await self._w.execute("ROLLBACK")
            raise

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Tx]:
        async with self._rlock:
            await self._r.execute("BEGIN")
            try:
                yield _SqliteTx(self._r)
            finally:
                await self._r.execute("COMMIT")

    async def read(self, sql: str, args: Args = ()) -> list[Row]:
        async with self._rlock:
            return await _SqliteTx(self._r).query(sql, args)

    async def execute(self, sql: str, args: Args = ()) -> int:
        return await _SqliteTx(self._w).execute(sql, args)

    async def lease(self) -> bool:
        """An exclusive ``flock`` on ``<database>.reconciler`` for as long as this store is
        open (the kernel frees it when the process dies)."""
        if self._lease_fd is not None or self.where == ":memory:":
            return True
        fd = os.open(self.where + ".reconciler", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lease_fd = fd
        return True

    async def release_lease(self) -> None:
        if self._lease_fd is not None:
            os.close(self._lease_fd)
            self._lease_fd = None

    async def close(self) -> None:
        if self._lease_fd is not None:
            os.close(self._lease_fd)  # (frees the lock)
            self._lease_fd = None
        await self._r.close()
        await self._w.close()


async def _migrate_sqlite(conn: aiosqlite.Connection,
                          migrations: Sequence[tuple[int, str, str]]) -> None:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
    )
    cur = await conn.execute("SELECT version FROM schema_migrations")
    done = {r[0] for r in await cur.fetchall()}
    for version, name, sql in migrations:
        if version in done:
            continue
        # executescript commits first; the script and its record are one transaction.
        await conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + sql
            + f"\nINSERT INTO schema_migrations VALUES ({version}, "
            + "'" + name.replace("'", "''") + f"', {_now_ms()});\nCOMMIT;"
        )


# ---------------------------------------------------------------------------- PostgreSQL

#: PostgreSQL's migrations: (version, name, DDL).  The first creates SQLite's schema as of
#: its version 8 at once (every integer BIGINT, every blob BYTEA) and records versions
#: 1–8 with SQLite's names; append later versions here and to SQLite's list alike.
PG_MIGRATIONS: list[tuple[int, str, str]] = [
    (
        8,
        "the schema of SQLite's versions 1-8 at once",
        """
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    pubkey BYTEA NOT NULL,
    role TEXT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0,
    enrolled_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    last_seen_ms BIGINT NOT NULL DEFAULT 0,
    online BIGINT NOT NULL DEFAULT 0,
    head_seq BIGINT NOT NULL DEFAULT 0,
    head_hash BYTEA NOT NULL,
    pull_cursor BIGINT NOT NULL DEFAULT 0,
    reported_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE events (
    pos BIGINT PRIMARY KEY,             -- the pull cursor: gapless, commit-ordered
    node TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    data BYTEA NOT NULL,                -- canonical signed bytes, exactly as signed
    received_ms BIGINT NOT NULL,
    hlc_wall BIGINT NOT NULL DEFAULT 0,
    hlc_counter BIGINT NOT NULL DEFAULT 0,
    UNIQUE (node, seq)
);
CREATE INDEX events_hlc ON events (hlc_wall, hlc_counter);
CREATE TABLE cursor (id BIGINT PRIMARY KEY CHECK (id = 1), pos BIGINT NOT NULL);
INSERT INTO cursor (id, pos) VALUES (1, 0);
CREATE TABLE quarantine (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    node TEXT NOT NULL,
    seq BIGINT NOT NULL,
    held_hash BYTEA NOT NULL,
    offered_hash BYTEA NOT NULL,
    offered BYTEA NOT NULL,
    received_ms BIGINT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'equivocation',
    reason TEXT NOT NULL DEFAULT '',
    UNIQUE (node, seq, offered_hash)
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- 16 random bytes as hex (gen_random_uuid: 122 random bits, built in since 13)
INSERT INTO meta (key, value) VALUES ('store_id', replace(gen_random_uuid()::text, '-', ''));
INSERT INTO meta (key, value) VALUES ('accounts_pos', '0');
CREATE TABLE conflicts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    title TEXT NOT NULL,
    explanation TEXT NOT NULL,
    amount BIGINT NOT NULL DEFAULT 0,
    wall_ms BIGINT NOT NULL,
    raised_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    nodes TEXT NOT NULL,
    patients TEXT NOT NULL,
    cards TEXT NOT NULL,
    events TEXT NOT NULL,
    remedies TEXT NOT NULL,
    acknowledged_by TEXT NOT NULL DEFAULT '',
    resolved_by TEXT NOT NULL DEFAULT '',
    resolved_event TEXT NOT NULL DEFAULT '',
    resolved_kind TEXT NOT NULL DEFAULT '',
    resolved_reason TEXT NOT NULL DEFAULT '',
    resolved_ms BIGINT NOT NULL DEFAULT 0,
    announced BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX conflicts_status ON conflicts (status, kind);
CREATE TABLE dormant_batches (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'pending',
    months BIGINT NOT NULL,
    source TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    approved_by TEXT NOT NULL DEFAULT '',
    approved_ms BIGINT NOT NULL DEFAULT 0,
    cancelled_by TEXT NOT NULL DEFAULT '',
    finished_ms BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE dormant_items (
    batch_id TEXT NOT NULL REFERENCES dormant_batches (id),
    line BIGINT NOT NULL,
    patient_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    idle_since TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    open BIGINT NOT NULL DEFAULT 1,
    settled_seq BIGINT NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, patient_id)
);
CREATE UNIQUE INDEX dormant_items_open ON dormant_items (patient_id) WHERE open = 1;
CREATE TABLE accounts (
    patient_id TEXT PRIMARY KEY,
    balance BIGINT NOT NULL,
    credit_limit BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE node_keys (
    node TEXT NOT NULL REFERENCES nodes (id),
    pubkey BYTEA NOT NULL,
    from_seq BIGINT NOT NULL,
    until_seq BIGINT NOT NULL DEFAULT 0,
    added_ms BIGINT NOT NULL,
    PRIMARY KEY (node, pubkey)
);
""",
    ),
    (
        9,
        "the reconciler's state, checkpointed (central/recon_store.py)",
        """
CREATE TABLE recon_facts (
    scope TEXT NOT NULL,
    ord TEXT NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (scope, ord)
);
CREATE TABLE recon_records (
    tbl TEXT NOT NULL,
    k BYTEA NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (tbl, k)
);
CREATE TABLE recon_identity (pid TEXT PRIMARY KEY, nid TEXT NOT NULL, person TEXT NOT NULL);
CREATE INDEX recon_identity_nid ON recon_identity (nid);
CREATE INDEX recon_identity_person ON recon_identity (person);
CREATE TABLE recon_cards (card_no TEXT PRIMARY KEY, pid TEXT NOT NULL);
CREATE INDEX recon_cards_pid ON recon_cards (pid);
CREATE TABLE recon_emitted (scope TEXT PRIMARY KEY, ids TEXT NOT NULL);
CREATE TABLE recon_offline (pid TEXT PRIMARY KEY);
CREATE TABLE recon_resolved (cid TEXT PRIMARY KEY, data TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('recon', '');
""",
    ),
    (
        10,
        "the reconciler's merged records (a person's family, for the console)",
        """
CREATE TABLE recon_merged (pid TEXT PRIMARY KEY, survivor TEXT NOT NULL);
CREATE INDEX recon_merged_survivor ON recon_merged (survivor);
""",
    ),
    (
        11,
        "the console's patient search index (central/recon_store.py)",
        """
CREATE TABLE recon_search (
    term TEXT COLLATE "C" NOT NULL,  -- (byte order: a prefix is a range of the index)
    pid TEXT NOT NULL,
    PRIMARY KEY (term, pid)
);
CREATE INDEX recon_search_pid ON recon_search (pid);
CREATE TABLE recon_search_due (pid TEXT PRIMARY KEY);
INSERT INTO meta (key, value) VALUES ('recon_search', '');
""",
    ),
    # (12, "…", """…"""),  — the next version: append it here and to SQLite's list
]

#: the names of the versions PG_MIGRATIONS[0] records (SQLite's own names)
_PG_BASE_NAMES = {
    1: "nodes, events, gapless cursor, quarantine",
    2: "store identity",
    3: "conflicts raised by the reconciler",
    4: "what counters reported holding; which conflicts they were told of; chain breaks",
    5: "events: their HLC, so central's own events sort after what it holds",
    6: "dormant-account settlement batches (central/dormant.py)",
    7: "accounts: the reconciler's balances as it folded them",
    8: "node keys over seqs: rotation keeps every earlier event verifiable",
}

_TEXT = frozenset({"text", "varchar", "bpchar", "name"})
_INTS = frozenset({"int2", "int4", "int8"})


def _coerce(types: tuple[str, ...], args: Args) -> tuple[object, ...]:
    """``args`` as asyncpg takes them for parameters of ``types`` (see the module)."""
    out = list(args)
    for i, (t, a) in enumerate(zip(types, out, strict=False)):
        if t in _TEXT and isinstance(a, int):
            out[i] = str(int(a))
        elif t in _INTS and isinstance(a, bool):
            out[i] = int(a)
        elif t == "bytea" and isinstance(a, (bytearray, memoryview)):
            out[i] = bytes(a)
    return tuple(out)


def _pg_error(exc: BaseException) -> PgError:
    import asyncpg

    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        err: PgError = PgIntegrityError(f"PostgreSQL: {exc}")
    else:
        err = PgError(f"PostgreSQL: {exc}")
    err.sqlstate = getattr(exc, "sqlstate", None)  # type: ignore[attr-defined]
    return err


@contextlib.contextmanager
def _mapped() -> Any:
    """asyncpg's errors as :class:`PgError` (cancellation and ours pass through)."""
    import asyncpg

    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise _pg_error(exc) from exc
    except OSError as exc:  # the server went away (a lost connection is an InterfaceError)
        raise PgError(f"PostgreSQL connection: {exc}") from exc


#: ``INSERT INTO t (a, b) VALUES ($1, $2)`` and nothing else: its rows go in as arrays
_PLAIN_INSERT = re.compile(r"^(INSERT INTO \w+ \([\w, ]+\)) VALUES \((\$\d+(?:, \$\d+)*)\)$")
UNNEST_ROWS = 8  # rows from which an insert goes as one statement


class _PgTx(Tx):
    def __init__(self, db: PgDatabase, conn: Any) -> None:
        self._db = db
        self._c = conn

    async def _args(self, sql: str, args: Args) -> tuple[object, ...]:
        types = self._db._types.get(sql)
        if types is None:
            stmt = await self._c.prepare(sql)
            types = tuple(t.name for t in stmt.get_parameters())
            self._db._types[sql] = types
        return _coerce(types, args)

    async def query(self, sql: str, args: Args = ()) -> list[Row]:
        q = to_pg(sql)
        with _mapped():
            rows = await self._c.fetch(q, *await self._args(q, args))
        return [tuple(r) for r in rows]

    async def execute(self, sql: str, args: Args = ()) -> int:
        q = to_pg(sql)
        with _mapped():
            status = await self._c.execute(q, *await self._args(q, args))
        last = str(status).rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else -1

    async def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        """``sql`` once per row.  A plain ``INSERT … VALUES`` of many rows is one
        statement over the rows' columns as arrays (``unnest``): the server parses, plans
        and runs one statement, not one per row (500 events: ~7 µs less of the server's
        CPU a row, and its client's ~2 µs).  The same rows, in order, and the same errors
        (a row that breaks a constraint fails the statement, and the transaction)."""
        if not rows:
            return
        q = to_pg(sql)
        with _mapped():
            first = await self._args(q, rows[0])
            types = self._db._types[q]
            coerced = [first, *(_coerce(types, r) for r in rows[1:])]
            m = _PLAIN_INSERT.match(q) if len(rows) >= UNNEST_ROWS else None
            if (m is not None and m[2] == ", ".join(f"${i}" for i in range(1, len(types) + 1))
                    and all(t.isidentifier() and not t.startswith("_") for t in types)):
                # (placeholders $1…$n in order; no array-typed column: its name is _…)
                arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, 1))
                await self._c.execute(f"{m[1]} SELECT * FROM unnest({arrays})",
                                      *(list(col) for col in zip(*coerced, strict=True)))
            else:
                await self._c.executemany(q, coerced)


async def _pool_reset(conn: Any) -> None:
    """Nothing more than asyncpg's own step on a release (a transaction left open by a
    cancelled caller rolled back, without a round trip when there is none): not its
    default reset, a round trip a release (``pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL``) for what the pool's connections never hold: their advisory
    locks are a transaction's (released at its end), the lease's and LISTEN's are
    connections of their own, and nothing sets a session setting or keeps a cursor."""


class PgDatabase(Database):
    """A pool of asyncpg connections to one PostgreSQL database."""

    dialect = "postgresql"

    def __init__(self, url: str, pool: Any) -> None:
        self.url = url
        self.where = redact(url)
        self._pool = pool
        #: each statement's parameter types (by its $-numbered text)
        self._types: dict[str, tuple[str, ...]] = {}
        self._lease_conn: Any = None  # a connection of its own: the session lock's
        self._leased = False
        self._listen_conn: Any = None
        #: what this process's NOTIFYs carry: its own come back to its LISTEN, and are
        #: not another instance's news (its feeds were woken at its commit)
        self._token = secrets.token_hex(8)

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 8) -> PgDatabase:
        import asyncpg

        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size,
                                             timeout=10, command_timeout=None,
                                             reset=_pool_reset)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                ValueError) as exc:
            raise DatabaseUnavailable(url, exc) from exc
        db = cls(url, pool)
        try:
            with _mapped():
                async with pool.acquire() as conn:
                    await _migrate_pg(conn)
        except BaseException:
            await pool.close()
            raise
        return db

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        with _mapped():
            conn = await self._pool.acquire()
        try:
            tr = conn.transaction()
            with _mapped():
                await tr.start()
            try:
                with _mapped():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
                yield _PgTx(self, conn)
            except BaseException:
                with contextlib.suppress(Exception):
                    await tr.rollback()
                raise
            with _mapped():
                await tr.commit()
        finally:
            await self._pool.release(conn)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Tx]:
        with _mapped():
            conn = await self._pool.acquire()
        try:
            tr = conn.transaction(isolation="repeatable_read", readonly=True)
            with _mapped():
                await tr.start()
            try:
                yield _PgTx(self, conn)
            finally:
                with contextlib.suppress(Exception):
                    await tr.rollback()  # read only: nothing to commit
        finally:
            await self._pool.release(conn)

    async def read(self, sql: str, args: Args = ()) -> list[Row]:
        with _mapped():
            async with self._pool.acquire() as conn:
                return await _PgTx(self, conn).query(sql, args)

    async def execute(self, sql: str, args: Args = ()) -> int:
        with _mapped():
            async with self._pool.acquire() as conn:
                return await _PgTx(self, conn).execute(sql, args)

    async def lease(self) -> bool:
        """A session advisory lock on a connection of its own, held while the connection
        lives: a holder that dies (or loses its connection) frees it.  Checked with a
        round trip each time, so a holder that lost its connection stops reconciling."""
        import asyncpg

        try:
            if self._lease_conn is None or self._lease_conn.is_closed():
                self._leased = False
                self._lease_conn = await asyncpg.connect(self.url, timeout=10)
            if self._leased:
                await self._lease_conn.fetchval("SELECT 1")
            else:
                self._leased = bool(await self._lease_conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", RECONCILER_LOCK))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self._leased = False
            if self._lease_conn is not None:
                with contextlib.suppress(Exception):
                    self._lease_conn.terminate()
            self._lease_conn = None
        return self._leased

    async def announce_events(self, tx: Tx) -> None:
        await tx.execute(f"SELECT pg_notify('{EVENTS_CHANNEL}', '{self._token}')")

    async def listen(self, callback: Callable[[], None]) -> None:
        """LISTEN on a connection of its own.  If that connection is lost, the callers'
        polling (``watch_store``, every second) is what is left until the next start."""
        import asyncpg

        def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            if payload != self._token:  # (its own: its feeds were woken at its commit)
                callback()

        try:
            conn = await asyncpg.connect(self.url, timeout=10)
            await conn.add_listener(EVENTS_CHANNEL, heard)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(self.url, exc) from exc
        self._listen_conn = conn

    async def release_lease(self) -> None:
        if self._leased and self._lease_conn is not None:
            with contextlib.suppress(Exception):
                await self._lease_conn.fetchval("SELECT pg_advisory_unlock($1)",
                                                RECONCILER_LOCK)
        self._leased = False

    async def close(self) -> None:
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await self._listen_conn.close()
            self._listen_conn = None
        if self._lease_conn is not None:
            with contextlib.suppress(Exception):
                await self._lease_conn.close()
            self._lease_conn = None
        await self._pool.close()


async def _migrate_pg(conn: Any) -> None:
    """Apply :data:`PG_MIGRATIONS` not yet recorded, each with its record in one
    transaction, under :data:`MIGRATE_LOCK` (instances opening at once wait)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)")
        done = {int(r[0]) for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in PG_MIGRATIONS:
            if version in done:
                continue
            await conn.execute(sql)
            records = ([(v, n) for v, n in sorted(_PG_BASE_NAMES.items()) if v not in done]
                       if version == 8 else [(version, name)])
            await conn.executemany(
                "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
                [(v, n, _now_ms()) for v, n in records])


async def open_database(target: str | Path, migrations: Sequence[tuple[int, str, str]]
                        ) -> Database:
    """The backend ``target`` names: a ``postgresql://`` URL, else a SQLite file (a path or
    ``sqlite:///path``), migrated with ``migrations`` (SQLite's list)."""
    if is_postgres(target):
        return await PgDatabase.open(str(target))
    return await SqliteDatabase.open(sqlite_path(target), migrations)

