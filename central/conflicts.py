"""Conflicts at central (I/O): run the reconciler over the store, keep the conflict book,
and resolve a conflict by signing its remedy as central's own event.

:class:`ConflictWatch` follows the store's cursor: :meth:`catch_up` feeds every event
it has not seen yet (all nodes', central's included) to the pure
:class:`~central.reconcile.Reconciler` and writes what it reports — new conflicts are
inserted, known open ones refreshed, resolved ones left alone, so detection is
idempotent.  The server acks a push once it is stored and asks for a catch-up, which
follows behind (in a process of its own: :class:`central.server.ReconcilerProcess`),
taking every event stored by then; and on a timer (events central's CLI or console
appended in another process, a failed catch-up tried again).

:func:`resolve` is the one write path for a resolution: the remedy's events are signed
with central's key, ingested as node ``central`` (so they sync to every counter like
any event), and the conflict is marked resolved by the last of them.

Conflicts about patients are also announced to the counters, so the counter can say
"open conflict" when the card is tapped long before IT resolves it: at the end of each
catch-up :class:`ConflictWatch` compares the book with what the counters were told
(the ``announced`` column) and signs a ``conflict.raised`` for each open conflict not
yet announced and a ``conflict.withdrawn`` for each announced one the reconciler has
since withdrawn (:mod:`protocol.remedy`).  The events and the column change in one
transaction, and the comparison is made only once the catch-up is done, so a restart
(which replays every event, transient conflicts included) or a re-sync announces
nothing twice.

Every write to central's chain goes through :meth:`CentralStore.append_central`, which
reads central's head and signs inside the store's write transaction: the server, the
CLI and the console may append at the same instant without forking central's chain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from central.recon_store import BUDGET, DamagedState, StoredReconciler, wipe
from central.reconcile import (
    STATUSES,
    UNANNOUNCED_KINDS,
    Conflict,
    Incoming,
    IntegrityReport,
    ReconcileConfig,
    RemedyOption,
    Report,
    accept_remedy,
    conflict_id,
)
from central.store import CentralStore, Query, Statements, _completes
from protocol.account import Account
from protocol.crypto import SigningKey
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError
from protocol.event import CENTRAL, Event, decode_event
from protocol.privacy import PatientKeys
from protocol.remedy import RAISED, WITHDRAWN

log = logging.getLogger(__name__)

#: time a catch-up gives to making the console's search index again, when it is
INDEX_STEP_S = 0.25
#: …resting this many times as long as each of its steps took, after it
INDEX_REST = 9.0

#: Conflicts about a node, not a patient's money or record, are never announced to
#: counters (:data:`central.reconcile.INTEGRITY_KINDS`).
#: Who signs the announcements of open conflicts (the event's operator).
RAISED_BY = "reconciler"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ConflictRow:
    """A conflict as the store keeps it, with its status and resolution."""

    id: str
    kind: str
    severity: str
    status: str
    title: str
    explanation: str
    amount: int
    wall_ms: int
    raised_ms: int
    nodes: tuple[str, ...]
    patients: tuple[str, ...]
    cards: tuple[str, ...]
    events: tuple[tuple[str, int], ...]
    remedies: tuple[RemedyOption, ...]
    acknowledged_by: str = ""
    resolved_by: str = ""
    resolved_event: str = ""
    resolved_kind: str = ""
    resolved_reason: str = ""
    resolved_ms: int = 0

    def remedy(self, code: str) -> RemedyOption | None:
        return next((r for r in self.remedies if r.code == code), None)


_COLS = ("id, kind, severity, status, title, explanation, amount, wall_ms, raised_ms, nodes,"
         " patients, cards, events, remedies, acknowledged_by, resolved_by, resolved_event,"
         " resolved_kind, resolved_reason, resolved_ms")


def _row(r: tuple[Any, ...]) -> ConflictRow:
    rem = tuple(RemedyOption(x["code"], x["label"], x["effect"],
                             tuple((k, b) for k, b in x["events"])) for x in json.loads(r[13]))
    return ConflictRow(
        r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), int(r[7]), int(r[8]),
        tuple(json.loads(r[9])), tuple(json.loads(r[10])), tuple(json.loads(r[11])),
        tuple((n, s) for n, s in json.loads(r[12])), rem, r[14], r[15], r[16], r[17], r[18],
        int(r[19]))


def _remedies_json(c: Conflict) -> str:
    return json.dumps([{"code": r.code, "label": r.label, "effect": r.effect,
                        "events": [[k, b] for k, b in r.events]} for r in c.remedies],
                      ensure_ascii=False, sort_keys=True)


def _statements(rep: Report, now: int) -> list[tuple[str, tuple[object, ...]]]:
    out: list[tuple[str, tuple[object, ...]]] = []
    for c in {c.id: c for c in rep.conflicts}.values():
        vals = (c.kind, c.severity, c.title, c.explanation, c.amount, c.wall_ms, now,
                json.dumps(c.nodes), json.dumps(c.patients), json.dumps(c.cards),
                json.dumps(c.events), _remedies_json(c))
        out.append((
            "INSERT INTO conflicts (id, kind, severity, title, explanation, amount, wall_ms,"
            " updated_ms, nodes, patients, cards, events, remedies, raised_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET severity = excluded.severity,"
            " title = excluded.title, explanation = excluded.explanation,"
            " amount = excluded.amount, updated_ms = excluded.updated_ms,"
            " nodes = excluded.nodes, patients = excluded.patients, cards = excluded.cards,"
            " events = excluded.events, remedies = excluded.remedies,"
            " status = CASE WHEN conflicts.status = 'withdrawn' THEN 'open'"
            " ELSE conflicts.status END"
            " WHERE conflicts.status != 'resolved'",
            (c.id, *vals, now)))
    for cid in rep.withdrawn:
        out.append(("UPDATE conflicts SET status = 'withdrawn', updated_ms = ?"
                    " WHERE id = ? AND status IN ('open', 'acknowledged')", (now, cid)))
    for res in rep.resolutions:
        out.append(_resolved_statement(res.conflict_id, res.operator,
                                       f"{res.event[0]} #{res.event[1]}", res.kind, res.reason,
                                       res.wall_ms, now))
    return out


def _resolved_statement(cid: str, operator: str, event: str, kind: str, reason: str,
                        wall_ms: int, now: int) -> tuple[str, tuple[object, ...]]:
    """Mark ``cid`` resolved (the remedy itself closes it at the counters)."""
    return ("UPDATE conflicts SET status = 'resolved', resolved_by = ?, resolved_event = ?,"
            " resolved_kind = ?, resolved_reason = ?, resolved_ms = ?, updated_ms = ?,"
            " announced = 0 WHERE id = ? AND status != 'resolved'",
            (operator, event, kind, reason, wall_ms, now, cid))


def _accounts(accounts: list[Account], pos: int) -> list[tuple[str, tuple[object, ...]]]:
    """Keep the store's ``accounts`` table level with the reconciler's fold, folded up to
    cursor position ``pos`` (the daily audit checks it against the events)."""
    out: list[tuple[str, tuple[object, ...]]] = [(
        "INSERT INTO accounts (patient_id, balance, credit_limit) VALUES (?, ?, ?)"
        " ON CONFLICT (patient_id) DO UPDATE SET balance = excluded.balance,"
        " credit_limit = excluded.credit_limit", (a.patient_id, a.balance, a.credit_limit))
        for a in accounts]
    out.append(("UPDATE meta SET value = ? WHERE key = 'accounts_pos'", (pos,)))
    return out


#: Conflicts whose announcement at the counters is behind the book.
_UNANNOUNCED = (
    "SELECT id, kind, status, patients, amount, title FROM conflicts"
    " WHERE ((status IN ('open', 'acknowledged') AND announced = 0)"
    "  OR (status = 'withdrawn' AND announced = 1))"
    " AND patients != '[]' AND kind NOT IN ("
    + ", ".join(f"'{k}'" for k in sorted(UNANNOUNCED_KINDS)) + ") ORDER BY wall_ms, id")


class ConflictWatch:
    """The reconciler kept up to date with one store (one per central process).

    Its state lives in the store (:class:`~central.recon_store.StoredReconciler`): a
    restart reads the checkpoint and goes on from there, and memory holds a bounded
    working set whatever the length of the history.  One process reconciles a store at a
    time, the holder of its lease (:meth:`CentralStore.reconciler_lease`): with several
    central instances on one database each conflict is detected and announced once, and
    when the holder dies the next instance to catch up takes over from the checkpoint
    (its working set is read again: it may have changed meanwhile)."""

    def __init__(self, store: CentralStore, config: ReconcileConfig | None = None,
                 key: SigningKey | None = None, *, announce: bool = True,
                 budget: int = BUDGET, patient_keys: PatientKeys | None = None) -> None:
        """``key``: central's, to announce new conflicts (default: the key
        :func:`~central.store.enrol_central` enrolled on ``store``; none: no announcements).
        ``announce=False``: keep the book only (fixtures that pin central's chain).
        ``budget``: facts and records kept in memory between catch-ups.
        ``patient_keys``: central's, to index sealed names for the console's search.
        """
        self.store = store
        self.key = key
        self.announce = announce
        self.stored = StoredReconciler(store, config, budget=budget, keys=patient_keys)
        #: the pure reconciler over the working set (its resident records: key grants)
        self.reconciler = self.stored.rec
        self.pos = 0
        self.leased = False  # whether this process reconciled at the last catch-up
        self._opened = False
        self._quarantined = 0
        self._revoked: dict[str, int] = {}
        self._lock = asyncio.Lock()  # one catch-up at a time: each new conflict announced once
        #: the console's search index is being made again (:meth:`_index`): come back soon
        self.indexing = False

    @_completes
    async def catch_up(self, page: int = 5000, max_pages: int = 100_000) -> int:
        """Reconcile every stored event not reconciled yet; return how many were fed.

        Runs to its end even if the task awaiting it is cancelled (a counter that drops
        mid-push cancels its handler): cancelled between its write and moving its
        position on, it would leave memory behind the store, and the next catch-up would
        fold the same events twice."""
        async with self._lock:
            self.leased = await self.store.reconciler_lease()
            if not self.leased:
                # another central instance reconciles this store: its book is ours
                if self._opened:
                    self.forget()
                await self.stored.load_resident()
                return 0
            if self._opened and await self.stored.refold_asked():
                self._opened = False  # (the CLI asked, in another process)
            # It ends at the cursor it saw at its start (a page past it at most): under a
            # steady stream of pushes it still ends, raises quarantine evidence and
            # announces, and the next catch-up (asked for by those pushes) goes on.  A
            # refold still goes through the whole history in one catch-up.
            until = await self.store.cursor()
            fed = 0
            for _ in range(max_pages):
                try:
                    if not self._opened:
                        await self.stored.open()
                        self.pos = self.stored.pos
                        self._opened = True
                    rows = await self.store.events_since(self.pos, page)
                    if not rows:
                        break
                    rep, saved = await self._reconcile(rows)
                except DamagedState as exc:
                    await self._refold_damaged(exc)
                    continue
                await self._write(_statements(rep, _now_ms()) + _accounts(
                    self.reconciler.take_dirty_accounts(), rows[-1][0]) + saved)
                self.stored.committed()
                self.pos = rows[-1][0]
                fed += len(rows)
                if self.pos >= until:
                    break
            await self._integrity()
            try:
                await self._announce()
            except Exception:  # the book is written; the next catch-up tries again
                log.exception("announcing conflicts to the counters failed")
            await self._index()
            return fed

    async def _index(self, budget_s: float = INDEX_STEP_S) -> None:
        """Go on making the console's search index if it is being made again (a new
        version, other keys: :meth:`StoredReconciler.search_step`), for about
        ``budget_s``; :attr:`indexing` says whether more is to do (the caller comes back
        soon).  A failure is logged, never raised: the batches do not wait for it."""
        until = time.monotonic() + budget_s
        try:
            while True:
                t = time.monotonic()
                more = await self.stored.search_step()
                if not more or time.monotonic() >= until:
                    break
                # each step writes a transaction of terms: rest ~9x as long after it, so
                # serve's commits (the acks) get the write lock and the disk in between
                await asyncio.sleep(INDEX_REST * (time.monotonic() - t))
            self.indexing = more
        except Exception:
            log.exception("making the console's search index failed (tried again)")
            self.indexing = True

    async def settled(self) -> None:
        """Return once no catch-up is under way (one whose caller was cancelled runs on to
        its end: :meth:`catch_up`)."""
        async with self._lock:
            pass

    def forget(self) -> None:
        """Drop the working set: the next catch-up reopens at the stored checkpoint."""
        self.stored.reset()
        self._opened = False

    async def _write(self, statements: list[tuple[str, Any]]) -> None:
        """Write a catch-up's book and the reconciler's state in one transaction; if that
        fails, memory is ahead of the store: drop it, and the next catch-up reopens at
        the checkpoint and does the batch again."""
        try:
            await self.store.write_many(statements)
        except BaseException:
            self.forget()
            raise

    async def _reconcile(self, rows: list[tuple[int, bytes, int]]
                         ) -> tuple[Report, list[tuple[str, Any]]]:
        """The reconciler's report on stored rows and the statements that save its state;
        never raises for what an event holds, so neither ``serve`` nor its restart can be
        stopped by it (the reconciler already turns each failure into a
        ``reconcile_error`` conflict; this is the last guard: the batch is then skipped,
        its conflict says so)."""
        incoming = []
        rep = Report()
        for pos, data, ms in rows:
            try:
                incoming.append(Incoming(decode_event(data), ms, pos))
            except ProtocolError as exc:  # stored bytes that no longer decode: damage
                log.error("stored event at position %d does not decode: %s", pos, exc)
                rep.conflicts.append(_store_damage(pos, exc))
        try:
            got, saved = await self.stored.add(incoming, rows[-1][0])
        except DamagedState:
            raise
        except Exception as exc:
            log.exception("reconciling positions %d..%d failed", rows[0][0], rows[-1][0])
            rep.conflicts.append(_store_damage(rows[0][0], exc))
            return rep, await self.stored.skip(rows[-1][0])
        got.conflicts[:0] = rep.conflicts
        return got, saved

    async def _refold_damaged(self, exc: DamagedState) -> None:
        """The stored state does not read back: say so, drop it, refold from the start
        (the events are the truth; the book keeps its statuses)."""
        log.error("the reconciler's stored state is damaged (%s): refolding every event", exc)
        cid = conflict_id("reconcile_error", "state", _now_ms())
        conflict = Conflict(
            cid, "reconcile_error", "high", "Reconciler state damaged: refolded",
            f"A row of the reconciler's state in central's database did not read back "
            f"({exc}): someone or something changed the database. The state was dropped and "
            "every event refolded from the start (the events are signed: they are the "
            "truth). Check the database and the server log.",
            (), remedies=(accept_remedy(cid, None, "Marks it reviewed."),))
        await self._write(_statements(Report(conflicts=[conflict]), _now_ms()) + wipe())
        self.forget()

    async def _announce(self) -> None:
        """Tell the counters of every change of an open conflict about patients."""
        key = self.key or self.store.central_key
        # most catch-ups have nothing to say: find that out on the reader, without the
        # write lock; the plan reads again inside the transaction that signs
        if key is None or not self.announce or not await self.store.read(_UNANNOUNCED):
            return

        async def plan(query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
            items: list[tuple[str, dict[str, Any]]] = []
            marks: Statements = []
            for cid, kind, status, patients, amount, title in await query(_UNANNOUNCED):
                raised = status != "withdrawn"
                body = announcement(cid, kind, json.loads(patients), int(amount), title,
                                    raised=raised)
                ev_kind = RAISED if raised else WITHDRAWN
                problems = REGISTRY.validate(ev_kind, body, CENTRAL)
                if problems:  # cannot be told; never retried (the console still shows it)
                    log.warning("conflict %s not announced: %s", cid, problems[0].message)
                else:
                    items.append((ev_kind, body))
                marks.append(("UPDATE conflicts SET announced = ? WHERE id = ?",
                              (int(raised), cid)))
            return items, marks

        await self.store.append_central(key, plan, operator=RAISED_BY)

    async def _integrity(self) -> None:
        rows = await self.store.read(
            "SELECT node, seq, offered_hash, received_ms, kind, reason FROM quarantine"
            " ORDER BY id")
        if len(rows) > self._quarantined:
            rep = self.reconciler.report_integrity(
                IntegrityReport(str(r[4]), str(r[0]), int(r[1]),
                                "; ".join(x for x in (str(r[5]), "offered event hash "
                                                      f"{bytes(r[2]).hex()[:16]}…") if x),
                                int(r[3]), bytes(r[2]).hex())
                for r in rows[self._quarantined:])
            await self.store.write_many(_statements(rep, _now_ms()))
            self._quarantined = len(rows)
        revoked = {str(r[0]): int(r[1])
                   for r in await self.store.read(
                       "SELECT id, revoked_ms FROM nodes WHERE revoked = 1")}
        if revoked != self._revoked:
            rep, saved = await self.stored.set_revoked(revoked)
            await self._write(_statements(rep, _now_ms()) + saved)
            self._revoked = revoked


def _store_damage(pos: int, exc: Exception) -> Conflict:

    cid = conflict_id("reconcile_error", "pos", pos)
    return Conflict(cid, "reconcile_error", "high", f"Reconciler failed at position {pos}",
                    f"Central could not reconcile the events stored from cursor position {pos}"
                    f": {type(exc).__name__}: {exc}. They stay stored and synced; check the "
                    "store (onecard-central verify) and the server log.", (),
                    remedies=(accept_remedy(cid, None, "Marks it reviewed."),))


async def list_conflicts(store: CentralStore, *, kind: str | None = None,
                         status: str | None = None, node: str | None = None,
                         since_ms: int | None = None) -> list[ConflictRow]:
    where: list[str] = []
    args: list[object] = []
    if kind:
        where.append("kind = ?")
        args.append(kind)
    if status:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        where.append("status = ?")
        args.append(status)
    if since_ms is not None:
        where.append("wall_ms >= ?")
        args.append(since_ms)
    sql = f"SELECT {_COLS} FROM conflicts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = [_row(r) for r in await store.read(sql + " ORDER BY wall_ms, id", tuple(args))]
    return [r for r in rows if node is None or node in r.nodes]


async def get_conflict(store: CentralStore, cid: str) -> ConflictRow | None:
    rows = await store.read(f"SELECT {_COLS} FROM conflicts WHERE id = ?", (cid,))
    return _row(rows[0]) if rows else None


async def acknowledge(store: CentralStore, cid: str, operator: str) -> bool:
    row = await get_conflict(store, cid)
    if row is None or row.status != "open":
        return False
    await store.write_many([("UPDATE conflicts SET status = 'acknowledged',"
                             " acknowledged_by = ?, updated_ms = ? WHERE id = ?",
                             (operator, _now_ms(), cid))])
    return True


def raised_body(c: Conflict) -> dict[str, Any]:
    """The ``conflict.raised`` body announcing ``c`` to the counters."""
    return announcement(c.id, c.kind, list(c.patients), c.amount, c.title, raised=True)


def announcement(cid: str, kind: str, patients: list[str], amount: int, title: str, *,
                 raised: bool) -> dict[str, Any]:
    """The body of ``conflict.raised`` (``raised``) or ``conflict.withdrawn`` for a conflict."""
    body: dict[str, Any] = {"conflict_id": cid, "conflict_kind": kind,
                            "patient_id": patients[0] if patients else "",
                            "patients": list(patients)}
    if not raised:
        body["reason"] = "events that arrived later show it is not a conflict"
        return body
    summary = _LONG_DIGITS.sub(lambda m: m.group()[:3] + "…", title).strip()[:300]
    return {**body, "amount": max(0, amount), "summary": summary or kind}


_LONG_DIGITS = re.compile(r"\d{11,}")  # a phone or national ID: never in clear


async def sign_central(store: CentralStore, key: SigningKey,
                       items: list[tuple[str, dict[str, Any]]], *, operator: str,
                       now_ms: int | None = None) -> list[Event]:
    """Sign ``items`` (kind, body; bodies already valid) as central's next events and
    store them as one batch (:meth:`CentralStore.append_central`)."""
    async def plan(_query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
        return items, []
    return await store.append_central(key, plan, operator=operator, now_ms=now_ms)


class ResolveError(Exception):
    """The resolution cannot be made; the message says why (nothing was signed)."""


async def resolve(store: CentralStore, key: SigningKey, cid: str, code: str, *, reason: str,
                  operator: str, now_ms: int | None = None) -> list[Event]:
    """Sign the remedy ``code`` of conflict ``cid`` as central's events and store them."""
    row = await get_conflict(store, cid)
    if row is None:
        raise ResolveError(f"no conflict {cid}")
    if row.status == "resolved":
        raise ResolveError(f"{cid} is already resolved by {row.resolved_event}")
    option = row.remedy(code)
    if option is None:
        raise ResolveError(f"{cid} has no remedy {code!r}; choose one of "
                           f"{', '.join(r.code for r in row.remedies)}")
    if not reason.strip():
        raise ResolveError("a reason is required")
    now = _now_ms() if now_ms is None else now_ms
    items = []
    for kind, body in option.events:
        full = {**body, "reason": reason.strip()[:500]}
        problems = REGISTRY.validate(kind, full, CENTRAL)
        if problems:
            raise ResolveError(f"{kind}: {problems[0].message}")
        items.append((kind, full))

    async def plan(query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
        # Checked again under the write lock: two people resolving the same conflict at
        # once (two consoles, console and CLI) sign one remedy, not two.
        held = await query("SELECT status, resolved_event FROM conflicts WHERE id = ?", (cid,))
        if held and held[0][0] == "resolved":
            raise ResolveError(f"{cid} was resolved meanwhile by {held[0][1]}")
        # central's next seq is known only here: the remedy names its own event
        head = await query("SELECT head_seq FROM nodes WHERE id = ?", (CENTRAL,))
        last = f"{CENTRAL} #{int(head[0][0]) + len(items)}"
        return items, [_resolved_statement(cid, operator, last, items[-1][0], reason.strip(),
                                           now, now)]

    return await store.append_central(key, plan, operator=operator, now_ms=now)
