"""Central's store: enrolled nodes, every node's events, the pull cursor, quarantine.

Theory of operation
-------------------
``events`` holds each node's signed bytes exactly as signed, unique on ``(node, seq)``,
and a ``pos``: its place in the **pull cursor**.  Positions are gapless and follow
commit order because they are handed out from a single-row counter (``cursor``) that
the ingesting transaction itself increments: the row is locked until that transaction
commits (SQLite: the one write lock; PostgreSQL: the row lock of ``UPDATE … RETURNING``),
so a later commit always gets higher positions, and a rollback gives its positions
back.  A reader that reads the counter and the events in one snapshot therefore sees
every event up to the counter and never skips one that commits later with a lower
position — the bug of plain autoincrement ids with several writers.

Ingest of a batch is all or nothing: the pure checks (:func:`prepare_batch`: shape,
author, signature, links inside the batch) run before the transaction, and the checks
against what is held (node enrolled and not revoked, key unchanged, resend vs
equivocation, link to the stored head) run inside it.  An event already held with the
same hash is a no-op; a *different* event at a held ``(node, seq)`` is an equivocation,
and a signed event that does not continue the chain (a gap, a fork right after the held
head, a batch not linked within itself) is a chain break: either way the offered bytes
go to ``quarantine`` (never into ``events``) as evidence for an integrity conflict, and
the batch is refused.

The same design holds on both backends (:mod:`central.db`): on SQLite, two aiosqlite
connections, one writer (serialised by a lock and ``BEGIN IMMEDIATE``), one reader, so
pulls run beside ingests under WAL, the reader's snapshot being a read transaction; on
PostgreSQL, a connection pool, every write transaction serialised by an advisory lock
(across processes and central instances too), ``UPDATE cursor SET pos = pos + n
RETURNING pos`` row-locking the counter until commit, and the pull reading the counter
and the events in one ``REPEATABLE READ`` snapshot.  ``open`` takes a path or
``sqlite:///path`` (SQLite) or ``postgresql://…``; each backend has its own migrations
(``MIGRATIONS`` below for SQLite, :data:`central.db.PG_MIGRATIONS`), under the same
version numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from central.db import Database, Tx, is_postgres, open_database, sqlite_path
from central.db import DatabaseUnavailable as DatabaseUnavailable  # (re-exported)
from protocol.crypto import ZERO_HASH, SigningKey, blake2b_256, fingerprint, is_valid_signature
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError, SchemaError, SignatureError
from protocol.event import (
    CENTRAL,
    NODE_ID_RE,
    ChainError,
    ChainHead,
    Event,
    decode_event,
    sign_event,
)
from protocol.hlc import Hlc
from protocol.keyring import KeySpan, key_at
from protocol.messages import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, DirectoryEntry
from protocol.rotation import statement_body

P = ParamSpec("P")
#: central's key and the operator, to sign a node change's audit event with it
Signer = tuple[SigningKey, str]
T = TypeVar("T")
#: A read-only query inside a transaction: ``await query(sql, args)`` → rows.
Query = Callable[..., Awaitable[list[tuple[Any, ...]]]]
#: SQL statements with their arguments, run in order.
Statements = list[tuple[str, tuple[object, ...]]]

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "nodes, events, gapless cursor, quarantine",
        """
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    pubkey BLOB NOT NULL,
    role TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    enrolled_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    last_seen_ms INTEGER NOT NULL DEFAULT 0,
    online INTEGER NOT NULL DEFAULT 0,
    head_seq INTEGER NOT NULL DEFAULT 0,
    head_hash BLOB NOT NULL,
    pull_cursor INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE events (
    pos INTEGER PRIMARY KEY,            -- the pull cursor: gapless, commit-ordered
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    data BLOB NOT NULL,                 -- canonical signed bytes, exactly as signed
    received_ms INTEGER NOT NULL,
    UNIQUE (node, seq)
);
CREATE TABLE cursor (id INTEGER PRIMARY KEY CHECK (id = 1), pos INTEGER NOT NULL);
INSERT INTO cursor (id, pos) VALUES (1, 0);
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    held_hash BLOB NOT NULL,
    offered_hash BLOB NOT NULL,
    offered BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE (node, seq, offered_hash)
);
""",
    ),
    (
        2,
        "store identity",
        """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
-- A random id for this store: a counter whose pull cursor came from another store
-- (central restored from a backup, or rebuilt) learns so and pulls from the start.
INSERT INTO meta (key, value) VALUES ('store_id', randomblob(16));
""",
    ),
    (
        3,
        "conflicts raised by the reconciler",
        """
CREATE TABLE conflicts (
    id TEXT PRIMARY KEY,                -- stable: a hash of what identifies the incident
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open', -- open | acknowledged | resolved | withdrawn
    title TEXT NOT NULL,
    explanation TEXT NOT NULL,
    amount INTEGER NOT NULL DEFAULT 0,  -- fen at stake
    wall_ms INTEGER NOT NULL,           -- when it happened
    raised_ms INTEGER NOT NULL,         -- when central first saw it
    updated_ms INTEGER NOT NULL,
    nodes TEXT NOT NULL,                -- JSON lists from here on
    patients TEXT NOT NULL,
    cards TEXT NOT NULL,
    events TEXT NOT NULL,
    remedies TEXT NOT NULL,
    acknowledged_by TEXT NOT NULL DEFAULT '',
    resolved_by TEXT NOT NULL DEFAULT '',
    resolved_event TEXT NOT NULL DEFAULT '',  -- "central #seq"
    resolved_kind TEXT NOT NULL DEFAULT '',
    resolved_reason TEXT NOT NULL DEFAULT '',
    resolved_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX conflicts_status ON conflicts (status, kind);
""",
    ),
    (
        4,
        "what counters reported holding; which conflicts they were told of; chain breaks",
        """
-- The counter's own head as it last told central (hello, then every push): what it
-- holds that central does not yet is reported_seq - head_seq ("pending").
ALTER TABLE nodes ADD COLUMN reported_seq INTEGER NOT NULL DEFAULT 0;
UPDATE nodes SET reported_seq = head_seq;
-- What a quarantined event is evidence of: equivocation (another event at a held
-- position) or chain_break (it does not continue the chain central holds), and why.
ALTER TABLE quarantine ADD COLUMN kind TEXT NOT NULL DEFAULT 'equivocation';
ALTER TABLE quarantine ADD COLUMN reason TEXT NOT NULL DEFAULT '';
-- 1 while central's latest announcement of the conflict to the counters is
-- conflict.raised, 0 before it and after a conflict.withdrawn.
ALTER TABLE conflicts ADD COLUMN announced INTEGER NOT NULL DEFAULT 0;
UPDATE conflicts SET announced = 1 WHERE status IN ('open', 'acknowledged')
    AND patients != '[]' AND kind NOT IN ('equivocation', 'chain_break', 'revoked_node',
    'clock_skew', 'malformed_event');
""",
    ),
    (
        5,
        "events: their HLC, so central's own events sort after what it holds",
        """
-- Filled for events stored from here on (0 before: central's own clock is past them).
ALTER TABLE events ADD COLUMN hlc_wall INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN hlc_counter INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_hlc ON events (hlc_wall, hlc_counter);
""",
    ),
    (
        6,
        "dormant-account settlement batches (central/dormant.py)",
        """
CREATE TABLE dormant_batches (
    id TEXT PRIMARY KEY,                -- dorm-<UTC time>-<hash>
    status TEXT NOT NULL DEFAULT 'pending', -- pending | approved | settled | cancelled
    months INTEGER NOT NULL,            -- "no activity for" this many months
    source TEXT NOT NULL,               -- the selection file, as given
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    approved_by TEXT NOT NULL DEFAULT '',
    approved_ms INTEGER NOT NULL DEFAULT 0,
    cancelled_by TEXT NOT NULL DEFAULT '',
    finished_ms INTEGER NOT NULL DEFAULT 0  -- settled or cancelled
);
CREATE TABLE dormant_items (
    batch_id TEXT NOT NULL REFERENCES dormant_batches (id),
    line INTEGER NOT NULL,              -- its line in the selection file
    patient_id TEXT NOT NULL,
    amount INTEGER NOT NULL,            -- fen: the balance when selected
    last_ms INTEGER NOT NULL,           -- its last activity when selected
    idle_since TEXT NOT NULL,           -- that day, in the hospital's time zone
    status TEXT NOT NULL DEFAULT 'pending', -- pending | settled | moved | cancelled
    open INTEGER NOT NULL DEFAULT 1,    -- 1 while its batch may still settle it
    settled_seq INTEGER NOT NULL DEFAULT 0, -- central's event that settled it
    note TEXT NOT NULL DEFAULT '',      -- why it was not settled (moved meanwhile)
    PRIMARY KEY (batch_id, patient_id)
);
-- an account is in one open batch at a time
CREATE UNIQUE INDEX dormant_items_open ON dormant_items (patient_id) WHERE open = 1;
""",
    ),
    (
        7,
        "accounts: the reconciler's balances as it folded them",
        """
-- Written by the reconciler (central.conflicts.ConflictWatch) with each catch-up, in the
-- transaction that writes its conflicts; meta 'accounts_pos' is the cursor position they
-- are folded up to.  The daily audit refolds the events up to there and compares: a
-- balance changed in this table by hand is a finding.
CREATE TABLE accounts (
    patient_id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL,
    credit_limit INTEGER NOT NULL DEFAULT 0
);
INSERT INTO meta (key, value) VALUES ('accounts_pos', 0);
""",
    ),
    (
        8,
        "node keys over seqs: rotation keeps every earlier event verifiable",
        """
-- Each key a node signed or signs with, and its seqs: from_seq <= seq < until_seq
-- (until_seq 0: open, the key in use).  nodes.pubkey stays the node's current key (the
-- one its handshake answers with).  A node revoked before this migration has its key
-- closed after the last seq central holds of it.
CREATE TABLE node_keys (
    node TEXT NOT NULL REFERENCES nodes (id),
    pubkey BLOB NOT NULL,
    from_seq INTEGER NOT NULL,
    until_seq INTEGER NOT NULL DEFAULT 0,
    added_ms INTEGER NOT NULL,          -- rowid order: the order the keys were given
    PRIMARY KEY (node, pubkey)          -- a key serves one node once
);
INSERT INTO node_keys (node, pubkey, from_seq, until_seq, added_ms)
    SELECT id, pubkey, 1, CASE WHEN revoked THEN head_seq + 1 ELSE 0 END, enrolled_ms
    FROM nodes;
""",
    ),    (
        9,
        "the reconciler's state, checkpointed (central/recon_store.py)",
        """
-- Each timeline ('p:<patient>', 's:<pharmacy>\x1f<code>') as the positions of its
-- events in merge order.
CREATE TABLE recon_facts (
    scope TEXT NOT NULL,
    ord TEXT NOT NULL,                  -- merge order (protocol.core.At.order)
    pos INTEGER NOT NULL,               -- events.pos
    PRIMARY KEY (scope, ord)
);
-- Every projection record as the reconciler folded it: table, packed key and fields.
CREATE TABLE recon_records (
    tbl TEXT NOT NULL,
    k BLOB NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tbl, k)
);
-- Duplicate checks: who shares an ID number tag, or a name + birth date + phone.
CREATE TABLE recon_identity (pid TEXT PRIMARY KEY, nid TEXT NOT NULL, person TEXT NOT NULL);
CREATE INDEX recon_identity_nid ON recon_identity (nid);
CREATE INDEX recon_identity_person ON recon_identity (person);
CREATE TABLE recon_cards (card_no TEXT PRIMARY KEY, pid TEXT NOT NULL);
CREATE INDEX recon_cards_pid ON recon_cards (pid);
-- The conflict ids each detection scope found last (JSON list).
CREATE TABLE recon_emitted (scope TEXT PRIMARY KEY, ids TEXT NOT NULL);
CREATE TABLE recon_offline (pid TEXT PRIMARY KEY);
CREATE TABLE recon_resolved (cid TEXT PRIMARY KEY, data TEXT NOT NULL);
-- The checkpoint: JSON {pos, count, unknown, limits, skew, revoked}; '' before the first.
INSERT INTO meta (key, value) VALUES ('recon', '');
""",
    ),    (
        10,
        "the reconciler's merged records (a person's family, for the console)",
        """
-- Each record merged into another (patient.merged): its survivor.  Folded again from the
-- events by the reconciler (its software version changed with this table).
CREATE TABLE recon_merged (pid TEXT PRIMARY KEY, survivor TEXT NOT NULL);
CREATE INDEX recon_merged_survivor ON recon_merged (survivor);
""",
    ),
    (
        11,
        "the console's patient search index (central/recon_store.py)",
        """
-- Each term a patient is found by (edge_node/search.py: its patient number, the keyed tags
-- of its sealed ID number and phone, its sealed name's keyed terms), written by the
-- reconciler with the records; 'recon_search' in meta names what made it (its version,
-- pypinyin's, the names key): another is rebuilt from recon_records.
CREATE TABLE recon_search (
    term TEXT NOT NULL,
    pid TEXT NOT NULL,
    PRIMARY KEY (term, pid)
) WITHOUT ROWID;
CREATE INDEX recon_search_pid ON recon_search (pid);
CREATE TABLE recon_search_due (pid TEXT PRIMARY KEY);
INSERT INTO meta (key, value) VALUES ('recon_search', '');
""",
    ),
]


class DamagedStore(sqlite3.DatabaseError):
    """Central's database file is damaged, truncated or empty: the message names it and
    says what to do."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(
            f"the central database {path} {why}. Restore a backup: onecard-central restore "
            "FILE (backups are in the [backup] dir); counters keep their events and push "
            "again whatever the backup lacks")


class IngestError(ProtocolError):
    """A batch central refuses; ``code`` goes into the ``error`` frame."""

    code = "ingest"


class UnknownNode(IngestError):
    code = "unknown_node"


class RevokedNode(IngestError):
    code = "revoked"


#: what a counter central does not accept is told, whatever the reason (unknown, revoked,
#: another key, a key past its span): nobody can list which node ids exist that way
NOT_AUTHORISED = ("central does not accept this counter's credentials: ask IT to check its "
                  "enrolment (onecard-central nodes)")


class StaleKey(IngestError):
    """An event signed with one of its node's keys outside that key's span (an old key
    after a rotation, or any key past the node's revocation): refused, kept as evidence.

    The counter is told only :data:`NOT_AUTHORISED`; ``why`` is for central's log."""

    code = "not_authorised"

    def __init__(self, why: str) -> None:
        super().__init__(NOT_AUTHORISED)
        self.why = why


class WrongNode(IngestError):
    """An event in a node's push claims to be another node's."""

    code = "wrong_node"


class InvalidEvent(IngestError):
    """A signed event of a known kind whose body (or signer) is wrong for that kind."""

    code = "invalid_event"


class Equivocation(IngestError):
    """A different event at a ``(node, seq)`` central already holds."""

    code = "equivocation"


@dataclass(frozen=True, slots=True)
class NodeRecord:
    id: str
    pubkey: bytes
    role: str
    revoked: bool
    enrolled_ms: int
    last_seen_ms: int
    online: bool
    head: ChainHead
    pull_cursor: int
    reported_seq: int = 0

    @property
    def pending(self) -> int:
        """Own events the node said it holds that central has not received (as of last seen)."""
        return max(0, self.reported_seq - self.head.seq)



def _completes(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Run a transaction to its end even if the task awaiting it is cancelled.

    A counter that drops mid-push or mid-pull cancels its handler at any ``await``: one
    landing between ``BEGIN`` and ``COMMIT``/``ROLLBACK`` would leave the shared
    connection inside a transaction, and every later ``BEGIN`` would fail ("cannot start
    a transaction within a transaction"), stopping sync for every counter.  Shielded,
    the transaction finishes (or rolls back) in its own task; the caller still sees the
    cancellation.
    """
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(fn(*args, **kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_consume)
            raise
    return wrapper


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: the caller is gone and the outcome is logged here


@dataclass(frozen=True, slots=True)
class Prepared:
    """One event of a batch after the pure checks: what the transaction needs."""

    seq: int
    prev: bytes
    hash: bytes
    data: bytes
    problem: str = ""  # why its body is invalid for its kind ("" when it is valid)
    hlc: Hlc = Hlc()
    stale: str = ""  # signed by a key of its node outside that key's span: why


@dataclass(frozen=True, slots=True)
class IngestResult:
    stored: int
    head: ChainHead
    first_pos: int = 0
    last_pos: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    """Events of a pull, with cursor positions in ``(after, cursor]``."""

    after: int
    cursor: int
    events: list[bytes]
    more: bool


Keys = bytes | Sequence[KeySpan]


def spans_of(key: Keys) -> tuple[KeySpan, ...]:
    """A node's key history: ``key`` alone stands for one key from seq 1 on."""
    return (KeySpan(key),) if isinstance(key, bytes) else tuple(key)


def prepare_events(
    node: str, key: Keys, encoded: Iterable[bytes], first: int = 0
) -> list[Prepared]:
    """Decode, check author and signature of each event (pure, CPU; no link checks).

    ``key``: the node's keys over its seqs (:mod:`protocol.keyring`); each event must
    verify with the one key whose span holds its seq.  One that verifies with another of
    the node's keys instead is marked ``stale`` (the store refuses and quarantines it).

    Safe to run for parts of one batch in several threads: PyNaCl releases the GIL
    while it verifies.  ``first`` is the index of the first event, for messages.
    """
    spans = spans_of(key)
    out: list[Prepared] = []
    for i, data in enumerate(encoded, first):
        try:
            ev = decode_event(data)
        except ProtocolError as exc:
            raise type(exc)(f"event {i}: {exc}") from None
        if ev.node != node:
            raise WrongNode(f"event {i} claims node {ev.node!r}, but this is {node!r}'s session")
        valid = key_at(spans, ev.seq)
        try:
            if valid is None:
                raise SignatureError("no key of this node is valid at this seq")
            ev.verify_signature(valid)
        except SignatureError:
            other = next((s for s in spans if s.key != valid
                          and is_valid_signature(s.key, ev.signing_bytes(), ev.sig)), None)
            if other is None:
                raise SignatureError(f"{node} seq {ev.seq}: signature does not verify") from None
            span = (f"seq {other.from_seq} to " + (f"{other.until_seq - 1}" if other.until_seq
                                                    else "now"))
            stale = (f"{node} seq {ev.seq} is signed with its key {fingerprint(other.key)}, "
                     f"valid only for {span}" + ("" if valid else
                                                 " (no key of it is valid at this seq)"))
            out.append(Prepared(ev.seq, ev.prev, blake2b_256(data), data, "", ev.hlc, stale))
            continue
        # A kind this version does not know (a newer counter) passes: stored and relayed,
        # folded once central and the counters are upgraded.
        problems = REGISTRY.validate(ev.kind, ev.body, node) if ev.kind in REGISTRY else []
        problem = f"{ev.kind}: " + "; ".join(p.message for p in problems[:3]) if problems else ""
        # canonical: these bytes are ev.encode() byte for byte, so this is ev.hash()
        out.append(Prepared(ev.seq, ev.prev, blake2b_256(data), data, problem, ev.hlc))
    return out


class ChainBreak(ChainError):
    """An event of a batch that does not continue its node's chain (``at``: its index)."""

    def __init__(self, message: str, at: int) -> None:
        super().__init__(message)
        self.at = at


def check_links(node: str, prepared: list[Prepared]) -> None:
    """Raise ChainBreak unless the batch's events follow each other in one chain."""
    for i, (last, p) in enumerate(itertools.pairwise(prepared), 1):
        if p.seq != last.seq + 1:
            raise ChainBreak(f"{node}: seq {p.seq} follows seq {last.seq} in one batch", i)
        if p.prev != last.hash:
            raise ChainBreak(f"{node} seq {p.seq}: prev is not the hash of seq {last.seq}", i)


def prepare_batch(node: str, key: Keys, encoded: Iterable[bytes]) -> list[Prepared]:
    """Decode, check author and signature, and check links inside the batch (pure, CPU).

    Raises a ProtocolError naming the first bad event; callers store nothing then.
    """
    out = prepare_events(node, key, encoded)
    check_links(node, out)
    return out


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class CentralStore:
    """The central database. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, db: Database, max_skew_ms: int = 300_000) -> None:
        #: the backend (:mod:`central.db`): SQLite or PostgreSQL
        self.db = db
        #: the write transaction open now (only under ``_lock``)
        self._tx: Tx | None = None
        #: central's own events never sort before what it holds, within this bound
        self.max_skew_ms = max_skew_ms
        self._lock = asyncio.Lock()
        #: central's signing key, once :func:`enrol_central` checked it against the store
        self.central_key: SigningKey | None = None

    @classmethod
    async def open(cls, path: str | Path, *, max_skew_ms: int = 300_000) -> CentralStore:
        """Open (creating and migrating) the store at ``path``: a SQLite file (a path, or
        ``sqlite:///path``) or a PostgreSQL database (``postgresql://…``).  A damaged,
        truncated or empty SQLite file raises :class:`DamagedStore` naming it and what to
        do; a PostgreSQL server that cannot be reached, :class:`DatabaseUnavailable`."""
        if is_postgres(path):
            return cls(await open_database(path, MIGRATIONS), max_skew_ms)
        from edge_node.backup import damage, make_private

        path = sqlite_path(path)
        if path != ":memory:":
            why = damage(Path(path))
            if why:
                raise DamagedStore(path, why)
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            make_private(Path(path))
        try:
            return cls(await open_database(path, MIGRATIONS), max_skew_ms)
        except DamagedStore:
            raise
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, unable to open, …
                raise
            raise DamagedStore(path, f"is damaged (SQLite: {exc})") from exc

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.db.dialect

    async def close(self) -> None:
        await self.db.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One write transaction (caller holds ``_lock``): committed when the block ends,
        rolled back if it raises.  ``_query_w``/``_exec`` run inside it meanwhile."""
        async with self.db.transaction() as tx:
            self._tx = tx
            try:
                yield
            finally:
                self._tx = None

    # ------------------------------------------------------------------ nodes

    @_completes
    async def enrol(self, node: str, pubkey: bytes, role: str, now_ms: int | None = None,
                    *, signer: Signer | None = None) -> None:
        """Enrol a new ``node`` with its public key, valid from its first seq.

        ``signer`` (central's key, the operator): sign ``audit.node_changed`` in the same
        transaction, so the change and its trail are stored together or not at all.

        Raises ValueError if ``node`` is enrolled already: a new key for it is a
        :meth:`rotate` (its key history is kept), and a revoked node stays revoked.
        """
        if not NODE_ID_RE.match(node):
            raise ValueError(f"{node!r} is not a valid node id (a-z, 0-9, . _ -)")
        if len(pubkey) != 32:
            raise ValueError("a public key is 32 bytes (64 hex digits)")
        now = _now_ms() if now_ms is None else now_ms
        async with self._lock, self._transaction():
            rows = await self._query_w("SELECT revoked FROM nodes WHERE id = ?", (node,))
            row = rows[0] if rows else None
            if row is not None and row[0]:
                raise ValueError(
                    f"{node} was revoked, and a revoked node stays revoked (its events and "
                    "keys are kept): enrol the replacement counter under a new node id")
            if row is not None:
                raise ValueError(
                    f"{node} is already enrolled; to give it a new key: onecard-central "
                    f"rotate {node} --key HEX (its events so far stay verifiable)")
            await self._exec(
                "INSERT INTO nodes (id, pubkey, role, enrolled_ms, head_hash)"
                " VALUES (?, ?, ?, ?, ?)",
                (node, pubkey, role, now, ZERO_HASH),
            )
            await self._exec(
                "INSERT INTO node_keys (node, pubkey, from_seq, until_seq, added_ms)"
                " VALUES (?, ?, 1, 0, ?)", (node, pubkey, now))
            await self._trail(signer, now, node=node, action="enrol", role=role,
                              fingerprint=fingerprint(pubkey), from_seq=1)

    @_completes
    async def rotate(self, node: str, pubkey: bytes, from_seq: int | None = None,
                     now_ms: int | None = None, *, signer: Signer | None = None) -> int:
        """Give ``node`` a new key, valid from ``from_seq`` on; its current key stays
        valid for the seqs before.  Return ``from_seq``.

        The default is the seq after the last one central holds or the node said it
        holds (those it has not pushed yet were signed with its current key).  Raises
        ValueError for an unknown, revoked or central node, a key it had before, or a
        ``from_seq`` at or below what central holds (signed with the current key).
        """
        if len(pubkey) != 32:
            raise ValueError("a public key is 32 bytes (64 hex digits)")
        if node == CENTRAL:
            raise ValueError("central's own key is rotated with onecard-central rotate-central")
        now = _now_ms() if now_ms is None else now_ms
        async with self._lock, self._transaction():
            row = await self._query_w(
                "SELECT revoked, head_seq, reported_seq FROM nodes WHERE id = ?", (node,))
            if not row:
                raise ValueError(f"{node} is not an enrolled counter")
            revoked, head, reported = bool(row[0][0]), int(row[0][1]), int(row[0][2])
            if revoked:
                raise ValueError(f"{node} was revoked, and a revoked node stays revoked: enrol "
                                 "the replacement counter under a new node id")
            spans = _spans(await self._query_w(_SPANS_SELECT, (node,)))
            if any(sp.key == pubkey for sp in spans):
                raise ValueError(f"{node} has had this key before: give it a new one "
                                 "(onecard-edge rotate-key on the counter)")
            start = max(head, reported) + 1 if from_seq is None else from_seq
            if start <= head:
                raise ValueError(f"central holds {node}'s events up to seq {head}, signed with "
                                 f"its current key: the new key can start at seq {head + 1} "
                                 "at the earliest")
            current = spans[-1] if spans else None
            if current is not None and (not current.is_open or start < current.from_seq):
                raise ValueError(f"{node}'s current key starts at seq {current.from_seq}: "
                                 "the new one cannot start before it")
            await self._exec("UPDATE node_keys SET until_seq = ? WHERE node = ?"
                                  " AND until_seq = 0", (start, node))
            await self._exec(
                "INSERT INTO node_keys (node, pubkey, from_seq, until_seq, added_ms)"
                " VALUES (?, ?, ?, 0, ?)", (node, pubkey, start, now))
            await self._exec("UPDATE nodes SET pubkey = ? WHERE id = ?", (pubkey, node))
            await self._trail(signer, now, node=node, action="rotate",
                              fingerprint=fingerprint(pubkey), from_seq=start)
        return start

    @_completes
    async def rotate_central(self, pubkey: bytes, signer: Signer,
                             now_ms: int | None = None) -> tuple[int, int]:
        """Give central the new key ``pubkey``: ``signer``'s key (central's current one)
        signs its last event, the rotation statement (``audit.node_changed`` naming the
        new key and the seq after it, :mod:`protocol.rotation`), and the new key signs
        from the next seq on.  One transaction: the statement, the closed and the new
        key span, the node's current key.  Return (the statement's seq, the new key's
        first seq).  Raises ValueError for a key central had before."""
        if len(pubkey) != 32:
            raise ValueError("a public key is 32 bytes (64 hex digits)")
        key, operator = signer
        now = _now_ms() if now_ms is None else now_ms
        async with self._lock, self._transaction():
            spans = _spans(await self._query_w(_SPANS_SELECT, (CENTRAL,)))
            if not spans or not spans[-1].is_open or spans[-1].key != key.public_key:
                raise ValueError("central's key file does not hold the key central signs "
                                 "with now")
            if any(sp.key == pubkey for sp in spans):
                raise ValueError("central has had this key before: give it a new one")
            head = await self._writable_head(CENTRAL, spans)
            start = head.seq + 2  # the statement is head + 1, the old key's last event
            await self._sign_central_tx(key, [("audit.node_changed", statement_body(
                pubkey, start, fingerprint(pubkey)))], operator[:64], now)
            await self._exec("UPDATE node_keys SET until_seq = ? WHERE node = ?"
                                  " AND until_seq = 0", (start, CENTRAL))
            await self._exec(
                "INSERT INTO node_keys (node, pubkey, from_seq, until_seq, added_ms)"
                " VALUES (?, ?, ?, 0, ?)", (CENTRAL, pubkey, start, now))
            await self._exec("UPDATE nodes SET pubkey = ? WHERE id = ?",
                                  (pubkey, CENTRAL))
        return start - 1, start

    async def rotation_statements(self) -> tuple[bytes, ...]:
        """Central's key rotation statements in seq order (what each challenge offers):
        the event before each of its keys' first seq."""
        rows = await self.db.read(
            "SELECT e.data FROM node_keys k JOIN events e ON e.node = k.node"
            " AND e.seq = k.from_seq - 1 WHERE k.node = ? AND k.from_seq > 1"
            " ORDER BY k.from_seq", (CENTRAL,))
        return tuple(bytes(r[0]) for r in rows)

    @_completes
    async def revoke(self, node: str, now_ms: int | None = None, *,
                     signer: Signer | None = None) -> bool:
        """Revoke ``node``: it can no longer connect or push, and its key is closed after
        the last seq central holds (nothing it signs later verifies anywhere).  False if
        it is not enrolled.  Revoking again keeps the first revocation's time."""
        now = _now_ms() if now_ms is None else now_ms
        async with self._lock, self._transaction():
            changed = await self._exec(
                "UPDATE nodes SET revoked = 1, revoked_ms = coalesce(revoked_ms, ?)"
                " WHERE id = ? AND id != ?",
                (now, node, CENTRAL),
            )
            if changed <= 0:
                return False
            # the open key ends after the head (an empty span if it never signed)
            head = await self._query_w("SELECT head_seq FROM nodes WHERE id = ?", (node,))
            await self._exec(
                "UPDATE node_keys SET until_seq = CASE WHEN from_seq > ? THEN from_seq"
                " ELSE ? END WHERE node = ? AND until_seq = 0",
                (int(head[0][0]) + 1, int(head[0][0]) + 1, node))
            await self._trail(signer, now, node=node, action="revoke")
            return True

    async def _trail(self, signer: Signer | None, now: int, **body: Any) -> None:
        """Sign ``audit.node_changed`` with ``body`` inside the caller's transaction (none
        without a signer: central enrolling itself, tests)."""
        if signer is None:
            return
        key, operator = signer
        await self._sign_central_tx(key, [("audit.node_changed", body)], operator, now)

    async def key_spans(self, node: str) -> tuple[KeySpan, ...]:
        """``node``'s keys over its seqs, in order (empty: not enrolled)."""
        return _spans(await self.db.read(_SPANS_SELECT, (node,)))

    async def node(self, node: str) -> NodeRecord | None:
        rows = await self.db.read(_NODE_SELECT + " WHERE id = ?", (node,))
        return _node_record(rows[0]) if rows else None

    async def nodes(self) -> list[NodeRecord]:
        return [_node_record(r) for r in await self.db.read(_NODE_SELECT + " ORDER BY id")]

    async def directory(self) -> list[DirectoryEntry]:
        """Every enrolled node's key, its keys over its seqs, and role (revoked ones
        flagged): for counters to verify."""
        async with self.db.snapshot() as snap:
            nodes = await snap.query("SELECT id, pubkey, role, revoked FROM nodes ORDER BY id")
            keys: dict[str, list[KeySpan]] = {}
            for n, k, f, u in await snap.query(
                    "SELECT node, pubkey, from_seq, until_seq FROM node_keys"
                    " ORDER BY node, " + _SPANS_ORDER):
                keys.setdefault(str(n), []).append(KeySpan(bytes(k), int(f), int(u)))
        return [DirectoryEntry(r[0], r[1], r[2], bool(r[3]), tuple(keys.get(r[0], ())))
                for r in nodes]

    async def touch(
        self,
        node: str,
        *,
        online: bool | None = None,
        pull_cursor: int | None = None,
        reported_seq: int | None = None,
        now_ms: int | None = None,
    ) -> None:
        """Record that ``node`` was seen (and whether it is connected, where it pulled to,
        how far its own chain reaches as it said in its hello)."""
        now = _now_ms() if now_ms is None else now_ms
        sets = ["last_seen_ms = ?"]
        args: list[object] = [now]
        if online is not None:
            sets.append("online = ?")
            args.append(int(online))
        if pull_cursor is not None:
            sets.append("pull_cursor = ?")
            args.append(pull_cursor)
        if reported_seq is not None:
            sets.append("reported_seq = ?")
            args.append(reported_seq)
        args.append(node)
        async with self._lock:
            await self._exec(f"UPDATE nodes SET {', '.join(sets)} WHERE id = ?", args)

    async def mark_all_offline(self) -> None:
        async with self._lock:
            await self._exec("UPDATE nodes SET online = 0")

    # ------------------------------------------------------------------ events

    async def head(self, node: str) -> ChainHead:
        rows = await self.db.read("SELECT head_seq, head_hash FROM nodes WHERE id = ?", (node,))
        return ChainHead(int(rows[0][0]), bytes(rows[0][1])) if rows else ChainHead()

    async def store_id(self) -> bytes:
        """This store's random identity (pull cursors are only meaningful within one)."""
        rows = await self.db.read("SELECT value FROM meta WHERE key = 'store_id'")
        assert rows
        value = rows[0][0]  # PostgreSQL keeps meta's values as text: hex there
        return bytes.fromhex(value) if isinstance(value, str) else bytes(value)

    async def cursor(self) -> int:
        rows = await self.db.read("SELECT pos FROM cursor WHERE id = 1")
        assert rows
        return int(rows[0][0])

    @_completes
    async def ingest(
        self,
        node: str,
        encoded: list[bytes],
        *,
        key: Keys | None = None,
        prepared: list[Prepared] | None = None,
        now_ms: int | None = None,
    ) -> IngestResult:
        """Store a batch of ``node``'s events atomically; return what was new.

        ``prepared`` (from :func:`prepare_batch`, e.g. run in a thread) saves redoing
        the pure checks; it must have been prepared with the keys the node is enrolled
        with (:meth:`key_spans`), which is checked again here.  Raises a ProtocolError,
        storing nothing — but for the events before one with a bad body or signed with
        a key outside its span, which are stored (that one is kept as evidence).
        """
        now = _now_ms() if now_ms is None else now_ms
        if not encoded:
            return IngestResult(0, await self.head(node))
        if prepared is None:
            spans = await self.key_spans(node)
            if not spans:
                raise UnknownNode(f"{node} is not enrolled")
            key = spans
            prepared = await asyncio.to_thread(prepare_events, node, key, encoded)
        if key is None:
            raise ValueError("prepared batches need the key they were checked with")
        try:
            check_links(node, prepared)
        except ChainBreak as exc:  # signed by the node, yet not one chain: keep the evidence
            async with self._lock:
                await self._quarantine(node, prepared[exc.at], prepared[exc.at - 1].hash,
                                       "chain_break", str(exc), now)
            raise
        bad = next((i for i, p in enumerate(prepared) if p.problem or p.stale), None)
        if bad is None:
            return await self._store_batch(node, key, prepared, now)
        # A signed event whose body is wrong for its kind, or signed with a key outside its
        # span: what comes before it is stored; it is kept as evidence (never stored,
        # never relayed) and the push refused.
        if bad:
            await self._store_batch(node, key, prepared[:bad], now)
        p = prepared[bad]
        if p.stale:
            async with self._lock:
                await self._quarantine(node, p, p.prev, "stale_key", p.stale, now)
            raise StaleKey(p.stale)
        async with self._lock:
            await self._quarantine(node, p, p.prev, "malformed_event", p.problem, now)
        raise InvalidEvent(f"{node} seq {p.seq}: {p.problem}. Refused: nothing from this event "
                           "on was stored; central IT has it as evidence (fix or upgrade this "
                           "counter's software)")

    async def _store_batch(self, node: str, key: Keys, prepared: list[Prepared],
                           now: int) -> IngestResult:
        """The transaction of :meth:`ingest`: checks against what is held, then insert."""
        # (offered event, what central holds there, kind, reason): kept after a rollback
        evidence: tuple[Prepared, bytes, str, str] | None = None
        async with self._lock:
            try:
                async with self._transaction():
                    head = await self._writable_head(node, key)
                    clash = await self._clash(node, head, prepared)
                    if clash is not None:
                        evidence = (*clash, "equivocation", "")
                        raise Equivocation(f"{node} seq {clash[0].seq}: a different event is"
                                           " already held (quarantined for central IT)")
                    new = [p for p in prepared if p.seq > head.seq]
                    try:
                        first_pos, last_pos, head = await self._insert(node, head, new, now)
                    except ChainError as exc:  # a gap, or a fork right after central's head
                        evidence = (new[0], head.hash, "chain_break", str(exc))
                        raise
            except BaseException:
                if evidence is not None:
                    await self._quarantine(node, *evidence, now)
                raise
        return IngestResult(len(new), head, first_pos, last_pos)

    async def _writable_head(self, node: str, key: Keys) -> ChainHead:
        """The head central holds for ``node``, once it may still push with ``key``
        (the keys the batch was checked with are still the node's)."""
        rows = await self._query_w(
            "SELECT pubkey, revoked, head_seq, head_hash FROM nodes WHERE id = ?", (node,))
        row = rows[0] if rows else None
        if row is None:
            raise UnknownNode(f"{node} is not enrolled")
        if row[1]:
            raise RevokedNode(f"{node} has been revoked")
        held = _spans(await self._query_w(_SPANS_SELECT, (node,)))
        if spans_of(key) != held:
            raise SignatureError(f"{node}: not the keys enrolled for it (rotated meanwhile?)")
        return ChainHead(int(row[2]), bytes(row[3]))

    async def _clash(self, node: str, head: ChainHead,
                     prepared: list[Prepared]) -> tuple[Prepared, bytes] | None:
        """The first re-sent event that differs from the one held at its seq (with the
        held hash); re-sent events that match are no-ops."""
        first, last = prepared[0].seq, prepared[-1].seq
        if first > head.seq:
            return None
        held = {int(r[0]): bytes(r[1]) for r in await self._query_w(
            "SELECT seq, hash FROM events WHERE node = ? AND seq BETWEEN ? AND ?",
            (node, first, min(last, head.seq)))}
        for p in prepared:
            if p.seq > head.seq:
                break
            h = held.get(p.seq)
            if h is None:  # below head but not held: the store is damaged
                raise ChainError(f"{node} seq {p.seq}: below head but not held")
            if h != p.hash:
                return p, h
        return None

    async def _insert(
        self, node: str, head: ChainHead, new: list[Prepared], now: int
    ) -> tuple[int, int, ChainHead]:
        """Append ``new`` (checked, consecutive) after ``head`` inside the caller's write
        transaction; return the cursor positions taken and the node's new head."""
        first_pos = last_pos = 0
        if new:
            p0 = new[0]
            if p0.seq != head.seq + 1:
                raise ChainError(
                    f"{node}: central holds up to seq {head.seq}, batch jumps to {p0.seq}"
                )
            if p0.prev != head.hash:
                raise ChainError(
                    f"{node} seq {p0.seq}: prev is not the hash of seq {head.seq}"
                    " central holds"
                )
            # The single-row counter, locked until COMMIT: gapless, commit order.
            r = await self._query_w(
                "UPDATE cursor SET pos = pos + ? WHERE id = 1 RETURNING pos", (len(new),)
            )
            assert r
            assert self._tx is not None
            await self.db.announce_events(self._tx)  # other instances: delivered at commit
            last_pos = int(r[0][0])
            first_pos = last_pos - len(new) + 1
            await self._execmany(
                "INSERT INTO events (pos, node, seq, hash, data, received_ms, hlc_wall,"
                " hlc_counter) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(first_pos + i, node, p.seq, p.hash, p.data, now, p.hlc.wall, p.hlc.counter)
                 for i, p in enumerate(new)],
            )
            head = ChainHead(new[-1].seq, new[-1].hash)
        await self._exec(
            "UPDATE nodes SET head_seq = ?, head_hash = ?, last_seen_ms = ?,"
            " reported_seq = CASE WHEN reported_seq > ? THEN reported_seq ELSE ? END"
            " WHERE id = ?",
            (head.seq, head.hash, now, head.seq, head.seq, node),
        )
        return first_pos, last_pos, head

    @_completes
    async def append_central(
        self,
        key: SigningKey,
        plan: Callable[[Query], Awaitable[tuple[list[tuple[str, dict[str, Any]]], Statements]]],
        *,
        operator: str,
        now_ms: int | None = None,
    ) -> list[Event]:
        """Sign central's next events and store them in one write transaction.

        ``plan`` runs first inside the transaction (its ``query`` reads what the
        transaction sees) and returns the ``(kind, body)`` items to sign (bodies already
        valid) and statements to run after storing them; raising aborts with nothing
        written.  Central's head is read, and its clock advanced past its newest event,
        under the same write lock that stores them, so the server, the CLI and the
        console (other processes, other connections) can all append to central's chain
        at once: each waits for the lock, signs on the head it then holds, and none is
        ever taken for an equivocation.

        The clock also passes every event central holds (but one stamped more than
        ``max_skew_ms`` ahead of now: a bad clock is not believed), so a remedy sorts
        after everything it was decided on, in every node's merge order.
        """
        now = _now_ms() if now_ms is None else now_ms
        async with self._lock, self._transaction():
            items, after = await plan(self._query_w)
            events = await self._sign_central_tx(key, items, operator, now)
            for sql, args in after:
                await self._exec(sql, args)
        return events

    async def _sign_central_tx(self, key: SigningKey, items: list[tuple[str, dict[str, Any]]],
                               operator: str, now: int) -> list[Event]:
        """Sign and store ``items`` as central's next events, inside the write
        transaction the caller holds (with the lock): :meth:`append_central`, and the
        node commands that sign their audit event with the change they make."""
        events: list[Event] = []
        if items:
            # central's keys over its seqs: ``key`` must be the one in use (after a
            # rotate-central, the old key signs nothing more)
            spans = _spans(await self._query_w(_SPANS_SELECT, (CENTRAL,)))
            keys: Keys = (spans if spans and spans[-1].is_open
                          and spans[-1].key == key.public_key else key.public_key)
            head = await self._writable_head(CENTRAL, keys)
            last = await self._query_w("SELECT data FROM events WHERE node = ? AND seq = ?",
                                       (CENTRAL, head.seq))
            clock = decode_event(bytes(last[0][0])).hlc if last else Hlc()
            held = await self._query_w(
                "SELECT hlc_wall, hlc_counter FROM events WHERE hlc_wall <= ?"
                " ORDER BY hlc_wall DESC, hlc_counter DESC LIMIT 1",
                (now + self.max_skew_ms,))
            if held:
                clock = clock.observe(Hlc(int(held[0][0]), int(held[0][1])), now)
            seq, prev, new = head.seq, head.hash, []
            for kind, body in items:
                seq, clock = seq + 1, clock.now(now)
                ev, data, h = sign_event(key, node=CENTRAL, seq=seq, prev=prev,
                                         hlc=clock, operator=operator, kind=kind,
                                         body=body)
                events.append(ev)
                new.append(Prepared(seq, prev, h, data, hlc=clock))
                prev = h
            await self._insert(CENTRAL, head, new, now)
        return events

    async def _query_w(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query inside the open write transaction (for plans)."""
        assert self._tx is not None, "only inside a write transaction"
        return await self._tx.query(sql, args)

    async def _exec(self, sql: str, args: Sequence[object] = ()) -> int:
        """Run a statement inside the open write transaction, or on its own when there is
        none (the caller holds ``_lock``); return the rows it changed."""
        if self._tx is not None:
            return await self._tx.execute(sql, args)
        return await self.db.execute(sql, args)

    async def _execmany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        assert self._tx is not None, "only inside a write transaction"
        await self._tx.executemany(sql, rows)

    async def _quarantine(self, node: str, p: Prepared, held_hash: bytes, kind: str,
                          reason: str, now: int) -> None:
        """Keep a refused signed event as evidence, outside ``events`` (caller holds lock).

        ``held_hash``: what central holds where the event claimed a place (the held
        event's hash; for a chain break, the hash the event should have linked to).
        """
        await self._exec(
            "INSERT INTO quarantine (node, seq, held_hash, offered_hash, offered,"
            " received_ms, kind, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (node, p.seq, held_hash, p.hash, p.data, now, kind, reason[:300]),
        )

    async def quarantined(self) -> list[tuple[str, int, bytes, bytes]]:
        """``(node, seq, held hash, offered hash)`` of every quarantined event
        (equivocations and chain breaks)."""
        rows = await self.db.read(
            "SELECT node, seq, held_hash, offered_hash FROM quarantine ORDER BY id"
        )
        return [(str(r[0]), int(r[1]), bytes(r[2]), bytes(r[3])) for r in rows]

    async def events_after(
        self,
        after: int,
        *,
        exclude_node: str | None = None,
        limit: int = MAX_BATCH_EVENTS,
        max_bytes: int = MAX_BATCH_BYTES,
    ) -> Page:
        """Up to ``limit`` events / ``max_bytes`` after cursor ``after``, not ``exclude_node``'s.

        The page's ``cursor`` is where the next pull starts.  When the page is not full
        it is the committed counter read in the same snapshot, so the requester's own
        events after the last one returned are skipped over, not re-read forever.
        """
        if after < 0:
            raise SchemaError("cursor must be ≥ 0")
        excl = exclude_node if exclude_node is not None else ""
        return await self._events_after(after, excl, limit, max_bytes)

    @_completes
    async def _events_after(self, after: int, excl: str, limit: int, max_bytes: int) -> Page:
        # inside the shield: the snapshot is held until this transaction ends
        return await self._events_after_tx(after, excl, limit, max_bytes)

    async def _events_after_tx(self, after: int, excl: str, limit: int, max_bytes: int) -> Page:
        # One snapshot (SQLite: a read transaction; PostgreSQL: REPEATABLE READ): the
        # counter and every event up to it, none committing later below it.
        async with self.db.snapshot() as snap:
            top = int((await snap.query("SELECT pos FROM cursor WHERE id = 1"))[0][0])
            if after >= top:
                return Page(after, after, [], False)
            # Limit first, then a running byte total over at most `limit` rows.
            rows = await snap.query(
                "SELECT pos, data, n FROM ("
                " SELECT pos, data, SUM(LENGTH(data)) OVER (ORDER BY pos) AS running,"
                "  COUNT(*) OVER () AS n FROM ("
                "  SELECT pos, data FROM events WHERE pos > ? AND pos <= ? AND node != ?"
                "  ORDER BY pos LIMIT ?) AS page) AS sized"
                " WHERE running <= ? OR running = LENGTH(data) ORDER BY pos",
                (after, top, excl, limit, max_bytes),
            )
        events = [bytes(r[1]) for r in rows]
        if rows and (rows[0][2] >= limit or len(rows) < rows[0][2]):
            # Cut by count or by bytes: resume right after the last event sent.
            last = int(rows[-1][0])
            return Page(after, last, events, last < top)
        return Page(after, top, events, False)

    async def events_since(self, after: int, limit: int = 5000) -> list[tuple[int, bytes, int]]:
        """``(pos, data, received_ms)`` of every node's events after ``after`` (reconciler)."""
        rows = await self.db.read(
            "SELECT pos, data, received_ms FROM events WHERE pos > ? ORDER BY pos LIMIT ?",
            (after, limit),
        )
        return [(int(r[0]), bytes(r[1]), int(r[2])) for r in rows]

    @_completes
    async def write_many(self, statements: list[tuple[str, Any]]) -> None:
        """Run ``statements`` in one write transaction (conflict bookkeeping); a statement
        whose arguments are a list of tuples runs once per tuple."""
        if not statements:
            return
        async with self._lock, self._transaction():
            for sql, args in statements:
                if isinstance(args, list):
                    await self._execmany(sql, args)
                else:
                    await self._exec(sql, args)

    async def reconciler_lease(self) -> bool:
        """Whether this process is (still) the one that reconciles this store
        (:meth:`central.db.Database.lease`)."""
        return await self.db.lease()

    async def read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query (SQLite: on the reader connection)."""
        return await self.db.read(sql, args)

    async def lags(self) -> dict[str, int]:
        """Per node: how many other nodes' events it has not been sent yet."""
        rows = await self.db.read(
            "SELECT n.id, (SELECT COUNT(*) FROM events e WHERE e.pos > n.pull_cursor"
            " AND e.node != n.id) FROM nodes n"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def event_ids(self) -> list[tuple[str, int, bytes]]:
        """``(node, seq, hash)`` of every held event (audits and tests)."""
        rows = await self.db.read("SELECT node, seq, hash FROM events ORDER BY node, seq")
        return [(str(r[0]), int(r[1]), bytes(r[2])) for r in rows]

    async def count(self) -> int:
        rows = await self.db.read("SELECT COUNT(*) FROM events")
        return int(rows[0][0]) if rows else 0


#: a node's keys in the order they were given: by first seq (never decreasing from one
#: key to the next), and among keys with the same first seq, the closed (empty) spans
#: before the open or later-closed one; what still ties signs no seq at all
_SPANS_ORDER = ("from_seq, until_seq = 0, until_seq, added_ms, pubkey")
_SPANS_SELECT = ("SELECT pubkey, from_seq, until_seq FROM node_keys WHERE node = ?"
                 " ORDER BY " + _SPANS_ORDER)


def _spans(rows: Iterable[Any]) -> tuple[KeySpan, ...]:
    return tuple(KeySpan(bytes(r[0]), int(r[1]), int(r[2])) for r in rows)


def keyring_of(conn: sqlite3.Connection) -> dict[str, tuple[KeySpan, ...]]:
    """Every node's keys over its seqs in a store (``verify`` and backup checks); a copy
    made before migration 8 has each node's one key from seq 1 on."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'node_keys'").fetchone():
        return {str(n): (KeySpan(bytes(k)),) for n, k in
                conn.execute("SELECT id, pubkey FROM nodes")}
    out: dict[str, list[KeySpan]] = {}
    for n, k, f, u in conn.execute(
            "SELECT node, pubkey, from_seq, until_seq FROM node_keys ORDER BY node, "
            + _SPANS_ORDER):
        out.setdefault(str(n), []).append(KeySpan(bytes(k), int(f), int(u)))
    return {n: tuple(v) for n, v in out.items()}


_NODE_SELECT = (
    "SELECT id, pubkey, role, revoked, enrolled_ms, last_seen_ms, online, head_seq, head_hash,"
    " pull_cursor, reported_seq FROM nodes"
)


def _node_record(r: sqlite3.Row | tuple[Any, ...]) -> NodeRecord:
    return NodeRecord(
        id=str(r[0]),
        pubkey=bytes(r[1]),
        role=str(r[2]),
        revoked=bool(r[3]),
        enrolled_ms=int(r[4]),
        last_seen_ms=int(r[5]),
        online=bool(r[6]),
        head=ChainHead(int(r[7]), bytes(r[8])),
        pull_cursor=int(r[9]),
        reported_seq=int(r[10]),
    )


async def enrol_central(store: CentralStore, key: SigningKey) -> None:
    """Enrol central itself, so its own events verify everywhere like any node's."""
    rec = await store.node(CENTRAL)
    if rec is None:
        await store.enrol(CENTRAL, key.public_key, "central")
    elif rec.pubkey != key.public_key:
        raise ValueError(
            "the central key does not match the one enrolled as node 'central' (after an "
            "interrupted rotate-central the new key is the .new file beside the key file)")
    store.central_key = key
