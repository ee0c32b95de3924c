"""The reconciler kept in central's store: start-up and memory that do not grow with history.

Theory of operation
-------------------
:class:`~central.reconcile.Reconciler` is pure: it folds a batch, then re-runs the
detectors of the scopes the batch touched (a patient, an ID number, a name + birth date
+ phone, a pharmacy's item).  Alone it holds every fact it was ever fed.  A
:class:`StoredReconciler` runs the very same steps (:meth:`Reconciler.begin`,
:meth:`~Reconciler.fold`, :meth:`~Reconciler.plan`, :meth:`~Reconciler.detect`) over a
*working set*: before each step it loads from the store what that step reads and is not
in memory yet, and after the batch it hands back the statements that write what the
batch changed — in the transaction that writes the batch's conflicts and moves the
checkpoint (``meta`` ``recon``: the cursor position folded up to, and the few small
values kept whole).  A restart reads the checkpoint and goes on from there; nothing is
replayed.  When the working set outgrows its budget it is dropped after a commit (the
store holds all of it) and the next batches load what they need again.

What is kept where (migrations 9 and 10):

- ``recon_records``: every projection record as the fold left it (``tbl``, key, packed
  fields) — the same records as a counter's ledger, loaded by the references a fact
  declares (:meth:`Registry.records_of`), which are all its fold reads.
- ``recon_facts``: each timeline (``p:<patient>``, ``s:<pharmacy>\\x1f<code>``) as the
  cursor positions of its events in merge order; a timeline is loaded (its events
  decoded again) only when a detector is about to read it — a patient's whenever the
  patient is touched, a stock's only when the item is below zero.
- ``recon_identity``, ``recon_cards``: who shares an ID number / a name + birth date +
  phone, and whose a card is, so a duplicate check loads its group and nothing else.
- ``recon_emitted``: the conflict ids each scope found last (what a later batch
  withdraws); ``recon_offline``: patients charged offline (checked again when offline
  limits arrive late); ``recon_resolved``: the conflicts a remedy resolved;
  ``recon_merged``: each record merged into another, and its survivor.

:class:`StoredView` reads the same tables for the IT console and ``onecard-central
balance``: a patient, a card, a person's merged timeline, as folded up to the checkpoint,
without folding anything itself.

A set in memory is either *whole* (everything the store holds, plus this batch) or a
part; the loaders complete a part before it is read, taking the store's rows only for
members whose own row is not in memory already (memory is ahead of the store by the
batch being folded, never behind it).  Loads read the store's committed state, and one
process at a time writes it (the server's :class:`~central.conflicts.ConflictWatch`),
so the working set never goes stale; a failed write drops it (:meth:`reset`).

Same events, same conflicts: ``tests/test_recon_store.py`` feeds random histories to
this and to the pure reconciler with the same batches, dropping the working set after
every batch and reopening from the store at random points, and compares each report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack

from central.reconcile import (
    Identity,
    Incoming,
    ReconcileConfig,
    Reconciler,
    Report,
    Resolution,
    Timeline,
    Work,
    stock_scope,
)
from central.store import CentralStore
from edge_node.search import PatientIndex, plan, probe_query, rank_rows
from edge_node.search import terms as search_terms
from protocol.account import Account, LimitsSet
from protocol.card import Card
from protocol.core import Fact, R, Record, Ref
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError
from protocol.event import decode_event
from protocol.patient import Patient
from protocol.privacy import KeyGrant, PatientKeys
from protocol.stock import Stock

log = logging.getLogger("onecard.central.recon_store")

#: facts and records kept in memory between batches before the working set is dropped
#: (~3 KB each: about 100 MB)
BUDGET = 30_000
#: bumped when a detector changes what it finds over the same events: a store folded by
#: another version is refolded from the start (as is one folded under another registry)
VERSION = 2  # 2: recon_merged
#: the reconciler's tables (migrations 9, 10)
TABLES = ("recon_facts", "recon_records", "recon_identity", "recon_cards", "recon_emitted",
          "recon_offline", "recon_resolved", "recon_merged", "recon_search",
          "recon_search_due")
#: meta key: what made ``recon_search`` (:meth:`PatientIndex.fingerprint`)
SEARCH = "recon_search"
#: patients a transaction when ``recon_search`` is made again
SEARCH_CHUNK = 1000
#: patients whose details a batch changed, up to which it writes their search terms
#: itself (more: marked due)
INLINE_TERMS = 20
#: due patients whose terms a transaction writes (~30-100 rows each: the write lock is
#: held for a few ms)
DUE_CHUNK = 50
#: due patients past which the console reads every patient instead of checking each
MAX_DUE = 5000
#: keys per ``IN (…)`` list
CHUNK = 300
#: record types kept in memory whole: few, and read outside any batch (the granter)
RESIDENT: tuple[type[Record], ...] = (KeyGrant,)
_MISSING = object()

Statements = list[tuple[str, Any]]


def pack_key(key: Any) -> bytes:
    return bytes(msgpack.packb(list(key) if isinstance(key, tuple) else key,
                               use_bin_type=True))


def _pack_record(rec: Record) -> bytes:
    return bytes(msgpack.packb([getattr(rec, f.name) for f in dataclasses.fields(rec)],  # type: ignore[arg-type]
                               use_bin_type=True))


class DamagedState(Exception):
    """A row of the reconciler's state does not read back (the database was changed or
    damaged): the caller drops the state and refolds every event (the events are the
    truth), and says so in a conflict."""


def _json(text: Any, what: str) -> Any:
    try:
        return json.loads(bytes(text) if isinstance(text, bytes | memoryview) else text)
    except (ValueError, TypeError) as exc:
        raise DamagedState(f"{what}: {exc}") from exc


def _record(rt: type[Record], data: Any) -> Any:
    try:
        rec = rt(*msgpack.unpackb(bytes(data), raw=False))
    except Exception as exc:  # (unpack errors, a wrong number or type of fields)
        raise DamagedState(f"a {rt.TABLE} record: {type(exc).__name__}: {exc}") from exc
    return rec


def _person(text: str) -> Identity | None:
    if not text:
        return None
    got = _json(text, "an identity")
    if not isinstance(got, list) or len(got) != 3:
        raise DamagedState(f"an identity: {text[:40]!r}")
    return (str(got[0]), str(got[1]), str(got[2]))


def _person_text(person: Identity | None) -> str:
    return json.dumps(list(person), ensure_ascii=False) if person is not None else ""


async def stored_records(store: CentralStore, rt: type[R], keys: Iterable[Any]
                         ) -> dict[Any, R]:
    """The stored records of ``keys`` that there are, by key (a statement a
    :data:`CHUNK` of keys, not one a key)."""
    out: dict[Any, R] = {}
    for chunk in _chunks(list(keys)):
        for (data,) in await store.read(
                f"SELECT data FROM recon_records WHERE tbl = ? AND k IN "
                f"({_marks(len(chunk))})", (rt.TABLE, *map(pack_key, chunk))):
            rec = _record(rt, data)
            out[rec.key()] = rec
    return out


async def _search_mark(store: CentralStore) -> str:
    """What made the console's search index (meta ``recon_search``; "" nothing yet)."""
    rows = await store.read(f"SELECT value FROM meta WHERE key = '{SEARCH}'")
    return str(rows[0][0]) if rows else ""


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class StoredReconciler:
    """A :class:`Reconciler` whose state lives in central's store (see the module)."""

    def __init__(self, store: CentralStore, config: ReconcileConfig | None = None, *,
                 budget: int = BUDGET, keys: PatientKeys | None = None) -> None:
        """``keys``: central's patient keys, with which sealed names are indexed for the
        console's search (none: they are not, only numbers and keyed ID/phone tags)."""
        self.store = store
        self.budget = budget
        self.index = PatientIndex()
        self.index.use_keys(keys)
        self.rec = Reconciler(config or ReconcileConfig(), REGISTRY)
        self.rec.track_seen = False  # the cursor position dedupes
        self.pos = 0  # folded up to this cursor position (the checkpoint)
        self.loads = 0  # events decoded again to load timelines (for the bench and tests)
        self._clear()

    # -- the working set ------------------------------------------------------------------
    def _clear(self) -> None:
        """Forget the working set (the store holds it), keeping the resident records."""
        r = self.rec
        keep = {rt: dict(r.state.table(rt)) for rt in RESIDENT}
        r.state.tables.clear()
        for rt, table in keep.items():
            r.state.tables[rt] = table
        for d in (r.timelines, r.stocks, r._identity, r.by_national_id, r.by_identity,
                  r._card_owner, r._cards_by_patient, r._merged_into, r._emitted):
            d.clear()
        r._charged_offline.clear()
        r.dirty_accounts.clear()
        #: records read from the store (None: it held none) — what the store holds now
        self._held: dict[Ref, Any] = {(rt, k): v for rt, t in keep.items()
                                      for k, v in t.items()}
        self._whole: set[str] = set()  # timeline scopes loaded whole
        self._idents: dict[str, tuple[str, str]] = {}  # pid → (nid, person) as stored
        self._groups: set[str] = set()  # identity groups loaded whole: "n:…", "i:…"
        self._owners: dict[str, str] = {}  # card → owner as stored ("" none)
        self._card_sets: set[str] = set()  # patients whose cards are loaded whole
        self._emitted: dict[str, frozenset[str]] = {}  # scope → ids as stored
        self._offline: set[str] = set()  # patients stored as charged offline
        self._offline_whole = False
        self._refs: set[Ref] = set()
        self._scopes: list[str] = []
        self._pending_pos = self.pos

    def size(self) -> int:
        r = self.rec
        return (sum(map(len, r.timelines.values())) + sum(map(len, r.stocks.values()))
                + sum(map(len, r.state.tables.values())))

    def reset(self) -> None:
        """Drop the working set after a failed write: the store is the truth; the next
        :meth:`add` starts again from :attr:`pos` (the caller rereads it: :meth:`open`)."""
        self._clear()

    async def open(self) -> None:
        """Read the checkpoint and the resident records (start-up: nothing replayed).

        A checkpoint written by another version of the fold or the detectors is dropped
        and everything is refolded from the start: new detectors see the old history."""
        self._clear()
        r = self.rec
        rows = await self.store.read("SELECT value FROM meta WHERE key = 'recon'")
        meta = _json(rows[0][0], "the checkpoint") if rows and rows[0][0] else {}
        if not isinstance(meta, dict):
            raise DamagedState("the checkpoint is not a mapping")
        if meta and meta.get("software") != software():
            log.warning("the reconciler's state was folded by other software (%s, now %s): "
                        "refolding every event from the start", meta.get("software"),
                        software())
            await self.store.write_many(wipe())
            meta = {}
        elif await self.refold_asked():
            log.warning("refolding every event from the start, as asked "
                        "(onecard-central conflicts refold)")
            await self.store.write_many(wipe())
            meta = {}
        try:
            self.pos = int(meta.get("pos", 0))
            r.count = int(meta.get("count", 0))
            r.unknown = int(meta.get("unknown", 0))
            r.limits = [(str(o), int(f), int(c)) for o, f, c in meta.get("limits", [])]
            r._skew_run = {str(k): int(v) for k, v in meta.get("skew", {}).items()}
            r.revoked = {str(k): int(v) for k, v in meta.get("revoked", {}).items()}
            r.resolutions = {}
            for cid, data in await self.store.read("SELECT cid, data FROM recon_resolved"):
                x = _json(data, "a resolution")
                r.resolutions[cid] = Resolution(cid, (str(x[0]), int(x[1])), str(x[2]),
                                                str(x[3]), str(x[4]), int(x[5]))
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
            raise DamagedState(f"the checkpoint: {type(exc).__name__}: {exc}") from exc
        await self.load_resident()

    # -- the console's search index ---------------------------------------------------------
    async def search_step(self, limit: int = SEARCH_CHUNK) -> bool:
        """Write what the console's search index lacks, a step (a transaction) at a time;
        whether more is to do.  The reconciler calls it after each catch-up, so neither
        a restart nor the batches wait for it, and no transaction holds the store's write
        lock long (serve's acks wait for that lock).

        - Made by another version, pypinyin or names key (or nothing yet: a store from
          before it), ``recon_search`` is made again from the records, ``limit``
          patients a step; its progress is in ``meta`` (``<fingerprint>\x1f<the last
          patient's key>`` while making it, the fingerprint alone once made).  The
          console meanwhile reads every patient instead (:meth:`StoredView.search`).
        - Then the patients whose terms are due (``recon_search_due``: a batch that
          changed more than :data:`INLINE_TERMS` patients' details marks them, a row
          each, instead of writing their ~30-100 terms in its own transaction),
          :data:`DUE_CHUNK` a step.  The console checks due patients one by one
          meanwhile.
        """
        want = self.index.fingerprint()
        mark = await _search_mark(self.store)
        if mark == want:
            return await self._write_due()
        if not mark.startswith(want + "\x1f"):
            log.info("indexing patients for the console's search (%s)", want)
            await self.store.write_many([_set_meta(SEARCH, want + "\x1f"),
                                         ("DELETE FROM recon_search", ())])
            mark = want + "\x1f"
        after = bytes.fromhex(mark[len(want) + 1:]) if mark[len(want) + 1:] else b""
        got = await self.store.read(
            "SELECT k, data FROM recon_records WHERE tbl = ? AND k > ? ORDER BY k LIMIT ?",
            (Patient.TABLE, after, limit))
        patients = [_record(Patient, data) for _, data in got]
        more = len(got) == limit
        mark = f"{want}\x1f{bytes(got[-1][0]).hex()}" if more else want
        await self.store.write_many([*self._search_rows(patients), _set_meta(SEARCH, mark)])
        if not more:
            log.info("the console's search index is made (%s)", want)
        return True

    async def _write_due(self) -> bool:
        """Write the terms of up to :data:`DUE_CHUNK` due patients (made before the
        transaction, which only writes them); whether more are due."""
        due = [str(r[0]) for r in await self.store.read(
            "SELECT pid FROM recon_search_due ORDER BY pid LIMIT ?", (DUE_CHUNK + 1,))]
        if not due:
            return False
        ids = due[:DUE_CHUNK]
        records = await stored_records(self.store, Patient, ids)
        await self.store.write_many([
            *self._search_rows([records[p] for p in ids if p in records]),
            ("DELETE FROM recon_search_due WHERE pid = ?", [(p,) for p in ids])])
        return len(due) > DUE_CHUNK

    def _search_rows(self, patients: Sequence[Patient]) -> Statements:
        """Statements that replace the search terms of ``patients``."""
        if not patients:
            return []
        rows: set[tuple[str, str]] = set()
        for p in patients:
            try:
                rows.update((t, p.patient_id) for t in search_terms(p, self.index.keys))
            except Exception:  # (a record no term can be made of: found by its number)
                log.exception("search terms of patient %r", p.patient_id)
                rows.add(("i:" + str(p.patient_id).casefold(), p.patient_id))
        return [("DELETE FROM recon_search WHERE pid = ?", [(p.patient_id,) for p in patients]),
                ("INSERT INTO recon_search (term, pid) VALUES (?, ?) ON CONFLICT DO NOTHING",
                 sorted(rows))]

    async def load_resident(self) -> None:
        """(Re)read the resident records (a process that does not reconcile keeps its key
        grants level with the one that does this way)."""
        r = self.rec
        for rt in RESIDENT:
            r.state.tables[rt] = {}
            for (data,) in await self.store.read(
                    "SELECT data FROM recon_records WHERE tbl = ?", (rt.TABLE,)):
                rec = _record(rt, data)
                r.state.put(rec)
                self._held[(rt, rec.key())] = rec

    async def _load_records(self, refs: Iterable[Ref]) -> None:
        by_table: dict[type[Record], list[Any]] = {}
        for ref in refs:
            if ref not in self._held:
                by_table.setdefault(ref[0], []).append(ref[1])
                self._held[ref] = None
        for rt, keys in by_table.items():
            for k, rec in (await stored_records(self.store, rt, keys)).items():
                self._held[(rt, k)] = rec
                if self.rec.state.get(rt, k) is None:
                    self.rec.state.put(rec)

    def _know_identity(self, pid: str, nid: str, person_text: str) -> None:
        r = self.rec
        person = _person(person_text)
        self._idents[pid] = (nid, person_text)
        r._identity[pid] = (nid, person)
        if nid:
            r.by_national_id.setdefault(nid, set()).add(pid)
        if person is not None:
            r.by_identity.setdefault(person, set()).add(pid)

    async def _load_identities(self, pids: Iterable[str]) -> None:
        todo = sorted(p for p in set(pids) if p not in self._idents)
        for pid in todo:
            self._idents[pid] = ("", "")
        for chunk in _chunks(todo):
            for pid, nid, person in await self.store.read(
                    "SELECT pid, nid, person FROM recon_identity WHERE pid IN "
                    f"({_marks(len(chunk))})", tuple(chunk)):
                self._know_identity(pid, nid, person)

    async def _load_groups(self, nids: Iterable[str], people: Iterable[Identity]) -> None:
        """Complete these identity groups: their members whose rows are not in memory."""
        for col, tag, keys in (
                ("nid", "n", [n for n in set(nids) if n and f"n:{n}" not in self._groups]),
                ("person", "i", [_person_text(p) for p in set(people)
                                 if p is not None and f"i:{_person_text(p)}"
                                 not in self._groups])):
            for key in keys:
                self._groups.add(f"{tag}:{key}")
            for chunk in _chunks(sorted(keys)):
                for pid, nid, person in await self.store.read(
                        f"SELECT pid, nid, person FROM recon_identity WHERE {col} IN "
                        f"({_marks(len(chunk))})", tuple(chunk)):
                    if pid not in self._idents:
                        self._know_identity(pid, nid, person)

    async def _load_owners(self, cards: Iterable[str]) -> None:
        todo = sorted(c for c in set(cards) if c not in self._owners)
        for c in todo:
            self._owners[c] = ""
        for chunk in _chunks(todo):
            for card, pid in await self.store.read(
                    "SELECT card_no, pid FROM recon_cards WHERE card_no IN "
                    f"({_marks(len(chunk))})", tuple(chunk)):
                self._owners[card] = pid
                self.rec._card_owner[card] = pid
                self.rec._cards_by_patient.setdefault(pid, set()).add(card)

    async def _load_card_sets(self, pids: Iterable[str]) -> None:
        todo = sorted(p for p in set(pids) if p not in self._card_sets)
        self._card_sets.update(todo)
        for chunk in _chunks(todo):
            for card, pid in await self.store.read(
                    "SELECT card_no, pid FROM recon_cards WHERE pid IN "
                    f"({_marks(len(chunk))})", tuple(chunk)):
                if card not in self._owners:  # (memory knows better of the others)
                    self._owners[card] = pid
                    self.rec._card_owner[card] = pid
                    self.rec._cards_by_patient.setdefault(pid, set()).add(card)

    async def _load_timelines(self, scopes: Iterable[str]) -> None:
        """Complete these timelines from the store (events decoded again)."""
        r = self.rec
        todo = sorted(set(scopes) - self._whole)
        self._whole.update(todo)
        for chunk in _chunks(todo):
            rows = await self.store.read(
                "SELECT t.scope, t.ord, e.data FROM recon_facts t JOIN events e ON"
                f" e.pos = t.pos WHERE t.scope IN ({_marks(len(chunk))})", tuple(chunk))
            found: dict[str, list[tuple[str, Any]]] = {}
            for scope, order, data in rows:
                found.setdefault(scope, []).append((order, data))
            for scope, got in found.items():
                target = (r.timelines.setdefault(scope[2:], []) if scope.startswith("p:")
                          else r.stocks.setdefault(
                              tuple(scope[2:].split("\x1f", 1)), []))  # type: ignore[arg-type]
                have = {o for o, _ in target}
                loaded = []
                for order, data in got:
                    if order in have:
                        continue
                    try:
                        d = r.registry.decode(decode_event(bytes(data)))
                    except ProtocolError as exc:  # an event's bytes: damage of its own
                        raise DamagedState(f"the event of {scope} at {order}: {exc}") from exc
                    self.loads += 1
                    if isinstance(d, Fact):
                        loaded.append((order, d))
                if loaded:
                    target[:] = sorted([*target, *loaded], key=lambda x: x[0])

    async def _load_emitted(self, scopes: Sequence[str]) -> None:
        todo = [s for s in scopes if s not in self._emitted]
        for s in todo:
            self._emitted[s] = frozenset()
        for chunk in _chunks(todo):
            for scope, ids in await self.store.read(
                    f"SELECT scope, ids FROM recon_emitted WHERE scope IN ({_marks(len(chunk))})",
                    tuple(chunk)):
                got = frozenset(map(str, _json(ids, "a scope's conflict ids")))
                self._emitted[scope] = got
                self.rec._emitted.setdefault(scope, set(got))

    async def _load_offline(self) -> None:
        if self._offline_whole:
            return
        self._offline_whole = True
        for (pid,) in await self.store.read("SELECT pid FROM recon_offline"):
            self._offline.add(pid)
            self.rec._charged_offline.add(pid)

    async def refold_asked(self) -> bool:
        return bool(await self.store.read(f"SELECT 1 FROM meta WHERE key = '{REFOLD}'"))

    # -- a batch --------------------------------------------------------------------------
    async def add(self, batch: Sequence[Incoming], to_pos: int = 0
                  ) -> tuple[Report, Statements]:
        """Reconcile a batch of stored events (positions after :attr:`pos`, in order, up
        to ``to_pos``: default the last one's): the report, and the statements that keep
        the store level with it — to run in the transaction that writes the report, then
        :meth:`committed`."""
        r = self.rec
        work = r.begin(batch)
        facts = [d for _, d in work.items if isinstance(d, Fact)]
        refs: set[Ref] = set()
        for f in facts:
            refs |= f.records
            for pid in f.patients:
                refs |= {(Patient, pid), (Account, pid)}
            refs |= {(Account, pid) for pid, _ in f.money.deltas}
        await self._load_records(refs)
        await self._load_identities(str(k) for rt, k in refs if rt is Patient)
        await self._load_owners(str(k) for rt, k in refs if rt is Card)
        await self._load_card_sets(o for o in (self._owners.get(str(k)) for rt, k in refs
                                               if rt is Card) if o)
        if any(isinstance(f.body, LimitsSet) for f in facts):
            await self._load_offline()
        r.fold(work)
        await self._load_identities(work.dirty)
        known = [r._identity[p] for p in work.dirty if p in r._identity]
        await self._load_groups([nid for nid, _ in known],
                                [person for _, person in known if person is not None])
        r.plan(work)
        await self._load_groups(work.dirty_ids, work.dirty_people)
        members = set(work.dirty)
        for nid in work.dirty_ids:
            members |= r.by_national_id.get(nid, set())
        for person in work.dirty_people:
            members |= r.by_identity.get(person, set())
        await self._load_records({(rt, p) for p in members for rt in (Patient, Account)})
        await self._load_card_sets(members)
        below = [sk for sk in work.dirty_stock
                 if (s := r.state.get(Stock, sk)) is not None and s.on_hand < 0]
        await self._load_timelines([f"p:{p}" for p in work.dirty]
                                   + [stock_scope(sk) for sk in below])
        scopes = r.scopes(work)
        await self._load_emitted(scopes)
        rep = r.detect(work)
        self._work_refs(refs, scopes)
        return rep, self._statements(work, scopes, refs,
                                     to_pos or (batch[-1].pos if batch else self.pos))

    def _statements(self, work: Work, scopes: list[str], refs: set[Ref], pos: int
                    ) -> Statements:
        r = self.rec
        out: Statements = []
        if work.placed:
            out.append(("INSERT INTO recon_facts (scope, ord, pos) VALUES (?, ?, ?)"
                        " ON CONFLICT DO NOTHING",
                        [(scope, order, inc.pos) for scope, order, inc in work.placed]))
        rows = []
        for ref in refs:
            rec = r.state.get(*ref)
            if rec is not None and rec != self._held.get(ref):
                rows.append((ref[0].TABLE, pack_key(ref[1]), _pack_record(rec)))
        if rows:
            out.append(("INSERT INTO recon_records (tbl, k, data) VALUES (?, ?, ?)"
                        " ON CONFLICT (tbl, k) DO UPDATE SET data = excluded.data", rows))
        # the search terms of the patients whose details changed: a few (live traffic) in
        # this transaction; more (a catch-up) marked due, written later (search_step)
        terms_key = PatientIndex.terms_key
        changed = [p for ref in refs if ref[0] is Patient
                   and (p := r.state.get(Patient, ref[1])) is not None
                   and ((old := self._held.get(ref)) is None or terms_key(old) != terms_key(p))]
        if len(changed) <= INLINE_TERMS:
            out += self._search_rows(changed)
        else:
            out.append(("INSERT INTO recon_search_due (pid) VALUES (?) ON CONFLICT DO NOTHING",
                        [(p.patient_id,) for p in changed]))
        idents = []
        for pid in self._touched_pids(refs):  # (only a folded patient's identity changes)
            nid, person = r._identity.get(pid, ("", None))
            text = _person_text(person)
            if self._idents.get(pid) != (nid, text):
                idents.append((pid, nid, text))
        if idents:
            out.append(("INSERT INTO recon_identity (pid, nid, person) VALUES (?, ?, ?)"
                        " ON CONFLICT (pid) DO UPDATE SET nid = excluded.nid,"
                        " person = excluded.person", idents))
        merged = [(pid, p.merged_into) for pid in self._touched_pids(refs)
                  if (p := r.state.get(Patient, pid)) is not None and p.merged_into
                  and (before := self._held.get((Patient, pid))) != p
                  and getattr(before, "merged_into", "") != p.merged_into]
        if merged:
            out.append(("INSERT INTO recon_merged (pid, survivor) VALUES (?, ?)"
                        " ON CONFLICT (pid) DO UPDATE SET survivor = excluded.survivor",
                        merged))
        owners = [(c, owner) for c in self._touched_cards(refs)
                  if (owner := r._card_owner.get(c)) is not None
                  and self._owners.get(c) != owner]
        if owners:
            out.append(("INSERT INTO recon_cards (card_no, pid) VALUES (?, ?)"
                        " ON CONFLICT (card_no) DO UPDATE SET pid = excluded.pid", owners))
        emitted = [(s, json.dumps(sorted(r._emitted.get(s, ()))))
                   for s in scopes if frozenset(r._emitted.get(s, ())) != self._emitted.get(s)]
        if emitted:
            out.append(("INSERT INTO recon_emitted (scope, ids) VALUES (?, ?)"
                        " ON CONFLICT (scope) DO UPDATE SET ids = excluded.ids", emitted))
        offline = sorted(r._charged_offline - self._offline)
        if offline:
            out.append(("INSERT INTO recon_offline (pid) VALUES (?) ON CONFLICT DO NOTHING",
                        [(p,) for p in offline]))
        resolved = [(x.conflict_id, json.dumps([x.event[0], x.event[1], x.kind, x.operator,
                                                x.reason, x.wall_ms], ensure_ascii=False))
                    for x in work.rep.resolutions]
        if resolved:
            out.append(("INSERT INTO recon_resolved (cid, data) VALUES (?, ?)"
                        " ON CONFLICT DO NOTHING", resolved))
        out.append(self._checkpoint(pos))
        self._pending_pos = pos
        return out

    @staticmethod
    def _touched_pids(refs: Iterable[Ref]) -> list[str]:
        return [str(k) for rt, k in refs if rt is Patient]

    @staticmethod
    def _touched_cards(refs: Iterable[Ref]) -> list[str]:
        return [str(k) for rt, k in refs if rt is Card]

    async def skip(self, pos: int) -> Statements:
        """A batch the reconciler failed on (its conflict says so): drop what it half
        folded, reread the checkpoint, and move it past the batch."""
        await self.open()
        self._work_refs(set(), [])
        self._pending_pos = pos
        return [self._checkpoint(pos)]

    def _work_refs(self, refs: set[Ref], scopes: list[str]) -> None:
        self._refs = refs
        self._scopes = scopes

    def _checkpoint(self, pos: int) -> tuple[str, Any]:
        r = self.rec
        meta = json.dumps({"software": software(), "pos": pos, "count": r.count,
                           "unknown": r.unknown, "limits": r.limits, "skew": r._skew_run,
                           "revoked": r.revoked},
                          ensure_ascii=False, sort_keys=True)
        return ("UPDATE meta SET value = ? WHERE key = 'recon'", (meta,))

    def committed(self) -> None:
        """The statements of the last :meth:`add` are written: the store now holds what
        memory holds; drop the working set if it outgrew the budget."""
        r = self.rec
        for ref in self._refs:
            rec = r.state.get(*ref)
            if rec is not None:
                self._held[ref] = rec
        for pid in self._touched_pids(self._refs):
            if pid in r._identity:
                nid, person = r._identity[pid]
                self._idents[pid] = (nid, _person_text(person))
        for c in self._touched_cards(self._refs):
            if c in r._card_owner:
                self._owners[c] = r._card_owner[c]
        for s in self._scopes:
            self._emitted[s] = frozenset(r._emitted.get(s, ()))
        self._offline |= r._charged_offline
        self.pos = self._pending_pos
        if self.size() > self.budget:
            self._clear()

    # -- revocations ----------------------------------------------------------------------
    async def set_revoked(self, revoked: dict[str, int]) -> tuple[Report, Statements]:
        """Nodes revoked and when: the events each signed after that (scanned in the
        store, a node at a time, only when its revocation is new or changed)."""
        r = self.rec
        rep = Report()
        changed = sorted(n for n, at in revoked.items() if r.revoked.get(n) != at)
        r.revoked = dict(revoked)
        for node in changed:
            after = 0
            while True:
                rows = await self.store.read(
                    "SELECT seq, data FROM events WHERE node = ? AND seq > ? ORDER BY seq"
                    " LIMIT 1000", (node, after))
                if not rows:
                    break
                after = int(rows[-1][0])
                for _, data in rows:
                    c = r._revoked_check(decode_event(bytes(data)))
                    if c:
                        rep.conflicts.append(c)
                        break
                else:
                    continue
                break
        return rep, [self._checkpoint(self.pos)]



def software() -> str:
    """What the stored state depends on: the registry's fold and the detectors."""
    from central.reconcile import PATIENT_DETECTORS
    names = ",".join(d.__name__ for d in PATIENT_DETECTORS)
    detectors = hashlib.blake2b(names.encode(), digest_size=6).hexdigest()
    return f"{VERSION}:{REGISTRY.fingerprint()}:{detectors}"


def _set_meta(key: str, value: str) -> tuple[str, Any]:
    return ("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
            " SET value = excluded.value", (key, value))


def wipe() -> Statements:
    """Statements that forget the reconciler's state: the next open refolds everything."""
    return [*((f"DELETE FROM {t}", ()) for t in TABLES),
            ("UPDATE meta SET value = '' WHERE key = 'recon'", ()),
            _set_meta(SEARCH, ""),  # (made again beside the refold: StoredReconciler.search_step)
            (f"DELETE FROM meta WHERE key = '{REFOLD}'", ())]


#: meta key: a refold was asked for (by another process: the CLI)
REFOLD = "recon_refold"


def ask_refold() -> Statements:
    """Ask the reconciler to refold everything at its next catch-up (whatever process)."""
    return [(f"INSERT INTO meta (key, value) VALUES ('{REFOLD}', '1') ON CONFLICT DO NOTHING",
             ())]


class StoredView:
    """Read-only questions to the reconciler's stored state (the IT console, ``balance``):
    answers as of its checkpoint; nothing here folds or writes."""

    def __init__(self, store: CentralStore) -> None:
        self.store = store
        self.world = Reconciler()  # (its registry folds a timeline's steps; it holds nothing)
        self._index = PatientIndex()  # (due patients' terms, kept while they are due)

    async def record(self, rt: type[R], key: Any) -> R | None:
        rows = await self.store.read("SELECT data FROM recon_records WHERE tbl = ? AND k = ?",
                                     (rt.TABLE, pack_key(key)))
        return _record(rt, rows[0][0]) if rows else None

    async def records_of(self, rt: type[R], keys: Sequence[Any]) -> dict[Any, R]:
        return await stored_records(self.store, rt, keys)

    async def cards_of_each(self, pids: Sequence[str]) -> dict[str, set[str]]:
        """:meth:`cards_of` for each of ``pids``."""
        out: dict[str, set[str]] = {p: set() for p in pids}
        for chunk in _chunks(list(pids)):
            for c, p in await self.store.read(
                    f"SELECT card_no, pid FROM recon_cards WHERE pid IN ({_marks(len(chunk))})",
                    tuple(chunk)):
                out[str(p)].add(str(c))
        return out

    async def families(self, pids: Sequence[str]) -> dict[str, frozenset[str]]:
        """:meth:`family` for each of ``pids``, a statement a generation of merges."""
        merged: dict[str, set[str]] = {}  # survivor → the records merged into it
        todo, seen = list(dict.fromkeys(pids)), set(pids)
        for _ in range(64):  # (a merge chain is short; bounded whatever)
            if not todo:
                break
            found: list[str] = []
            for chunk in _chunks(todo):
                for m, survivor in await self.store.read(
                        f"SELECT pid, survivor FROM recon_merged WHERE survivor IN "
                        f"({_marks(len(chunk))})", tuple(chunk)):
                    merged.setdefault(str(survivor), set()).add(str(m))
                    if m not in seen:
                        seen.add(str(m))
                        found.append(str(m))
            todo = found

        def family(pid: str) -> frozenset[str]:
            out, stack = {pid}, [pid]
            while stack and len(out) < 1000:
                for m in merged.get(stack.pop(), ()):
                    if m not in out:
                        out.add(m)
                        stack.append(m)
            return frozenset(out)
        return {p: family(p) for p in pids}

    async def records(self, rt: type[R]) -> list[R]:
        return [_record(rt, data) for (data,) in await self.store.read(
            "SELECT data FROM recon_records WHERE tbl = ?", (rt.TABLE,))]

    async def patient(self, pid: str) -> Patient | None:
        return await self.record(Patient, pid)

    async def search(self, query: str, keys: PatientKeys | None, limit: int
                     ) -> list[str] | None:
        """The patients ``query`` finds in the search index the reconciler keeps, best
        first (:func:`edge_node.search.plan`: numbers, keyed ID number and phone tags,
        names, their pinyin and initials); None if it was not made with ``keys`` (it is
        being made again, or by a process holding other keys)."""
        self._index.use_keys(keys)
        if await _search_mark(self.store) != self._index.fingerprint():
            return None
        probes = plan(query, keys)
        if not probes or limit <= 0:
            return []
        due = [str(r[0]) for r in await self.store.read(
            "SELECT pid FROM recon_search_due LIMIT ?", (MAX_DUE + 1,))]
        if len(due) > MAX_DUE:  # (a long catch-up's: their terms come within seconds)
            return None
        # a due patient's rows may be an older record's: left out, and the patient
        # checked directly, as the index will find it (edge_node.search: as a counter)
        also = " AND pid NOT IN (SELECT pid FROM recon_search_due)" if due else ""
        sql, args = probe_query(probes, limit, "recon_search", "pid", also)
        best = rank_rows(probes, await self.store.read(sql, args))
        for p in (await self.records_of(Patient, due)).values():
            try:
                got = self._index.rank_of(p, probes, keys)
            except Exception:  # (found once search_step writes it: by its number at least)
                log.exception("search terms of patient %r", p.patient_id)
                continue
            if got is not None:
                best[p.patient_id] = got
        return sorted(best, key=lambda pid: (best[pid], pid))[:limit]

    async def card(self, card_no: str) -> Card | None:
        return await self.record(Card, card_no)

    async def account(self, pid: str) -> Account:
        return await self.record(Account, pid) or Account.new(pid)

    async def cards_of(self, pid: str) -> set[str]:
        return {str(c) for (c,) in await self.store.read(
            "SELECT card_no FROM recon_cards WHERE pid = ?", (pid,))}

    async def family(self, pid: str) -> frozenset[str]:
        """``pid`` and every record merged into it (directly or through another)."""
        out, todo = {pid}, [pid]
        while todo and len(out) < 1000:  # (a merge chain is short; bounded whatever)
            for (m,) in await self.store.read(
                    "SELECT pid FROM recon_merged WHERE survivor = ?", (todo.pop(),)):
                if m not in out:
                    out.add(str(m))
                    todo.append(str(m))
        return frozenset(out)

    async def person_timeline(self, pid: str) -> Timeline:
        """A patient's events with those of the records merged into it, in merge order
        (as :meth:`Reconciler.person_timeline`)."""
        family = await self.family(pid)
        facts: dict[str, Fact] = {}
        for member in sorted(family):
            for order, data in await self.store.read(
                    "SELECT t.ord, e.data FROM recon_facts t JOIN events e ON e.pos = t.pos"
                    " WHERE t.scope = ?", (f"p:{member}",)):
                if order in facts:
                    continue
                try:
                    d = REGISTRY.decode(decode_event(bytes(data)))
                except ProtocolError:
                    continue  # (damaged bytes: `verify` names them)
                if isinstance(d, Fact):
                    facts[order] = d
        return Timeline(pid, [facts[o] for o in sorted(facts)], self.world, family)

    async def folded_to(self) -> int:
        """The cursor position the reconciler's state is folded up to (its checkpoint)."""
        rows = await self.store.read("SELECT value FROM meta WHERE key = 'recon'")
        try:
            meta = _json(rows[0][0], "the checkpoint") if rows and rows[0][0] else {}
            return int(meta.get("pos", 0)) if isinstance(meta, dict) else 0
        except (DamagedState, TypeError, ValueError):
            return 0

    async def limits(self) -> tuple[int, int]:
        """The offline (floor, cap) central published last, as folded ((0, 0): none)."""
        rows = await self.store.read("SELECT value FROM meta WHERE key = 'recon'")
        try:
            meta = _json(rows[0][0], "the checkpoint") if rows and rows[0][0] else {}
            limits = meta.get("limits", []) if isinstance(meta, dict) else []
            return (int(limits[-1][1]), int(limits[-1][2])) if limits else (0, 0)
        except (DamagedState, TypeError, ValueError, IndexError):
            return (0, 0)
