"""What the IT console shows and does, on central's store (screens call this, never SQL).

The conflict book and resolutions come from :mod:`central.conflicts`; patients, cards
and account timelines from the reconciler's state in the store
(:class:`~central.recon_store.StoredView`), as folded up to its checkpoint: the console
folds nothing at its start, whatever the length of the history.  While a ``serve``
reconciles, the console reads what it wrote; when none does (central stopped, the
console alone), each refresh brings that state up to date itself — the book only, no
announcements to the counters (a ``serve`` makes them when it starts) — and gives the
reconciler's lease back at once.

Patients' names are sealed (:mod:`protocol.privacy`) in the events, the records and the
conflict book (which names patients by number only).  The console opens them with
central's patient keys wherever it shows a patient — search hits, next to the patient
numbers of a conflict's texts, the events of a conflict — and finds patients by the
opened name; it never writes one back.  Without the keys it shows
:data:`~protocol.privacy.SEALED_NAME`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from central import conflicts as cf
from central import staff, trail
from central.console.i18n import Translator
from central.recon_store import StoredView
from central.store import CentralStore
from protocol.account import Account, Charged
from protocol.crypto import SigningKey, fingerprint
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError
from protocol.event import CENTRAL, Event, EventId, decode_event
from protocol.money import yuan
from protocol.patient import Patient
from protocol.privacy import NAME, SEALED_NAME, PatientKeys, is_sealed, normal_name
from protocol.staff import StaffMember

Fen = int
DAY_MS = 86_400_000
#: how long the console waits for the reconciler to fold what it just signed
SETTLE_S = 3.0
ACTIVE = "active"  # the queue's default status filter: open or acknowledged
STATUS_CYCLE = (ACTIVE, "open", "acknowledged", "resolved", "withdrawn", "")
DATE_CYCLE = (0, 1, 7, 30)  # days back; 0: any date


@dataclass(frozen=True, slots=True)
class Filters:
    kind: str = ""
    status: str = ACTIVE
    node: str = ""
    days: int = 0  # only conflicts that happened in the last ``days`` days (0: any)

    def describe(self, tr: Translator | None = None) -> str:
        tr = tr or Translator("en")
        anything = tr("filter.any")
        status = (tr("filter.active") if self.status == ACTIVE else
                  tr.word("status", self.status) if self.status else anything)
        parts = [tr("filter.kind", v=tr.word("conflict", self.kind) if self.kind else anything),
                 tr("filter.status", v=status),
                 tr("filter.node", v=self.node or anything),
                 tr("filter.date", v=tr("filter.days", n=self.days) if self.days else anything)]
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class EventCard:
    """One event involved in a conflict, for the side-by-side view."""

    ref: str  # "cashier-01 #7"
    kind: str  # "" when central holds no event there (refused, nothing kept)
    wall_ms: int
    operator: str
    lines: tuple[str, ...]
    quarantined: str = ""  # why central refused it ("equivocation", …); "": merged


@dataclass(frozen=True, slots=True)
class TimelineRow:
    wall_ms: int
    ref: str
    kind: str
    delta: Fen
    balance: Fen
    involved: bool


@dataclass(frozen=True, slots=True)
class Detail:
    conflict: cf.ConflictRow
    events: tuple[EventCard, ...]
    timelines: tuple[tuple[str, tuple[TimelineRow, ...]], ...]  # (patient, rows)
    #: each patient of the conflict → its name as the console shows it ("": none known)
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeHealth:
    id: str
    role: str
    state: str  # online | offline | revoked
    last_seen_ms: int
    head_seq: int
    lag: int  # events central holds that this node has not been sent yet
    pending: int  # the node's own events central has not received (as of last seen)
    open_conflicts: int
    fingerprint: str
    cap: Fen = 0  # the offline cap in force (0: none)
    exposure: Fen = 0  # see :meth:`ConsoleData.exposure` (0 online)
    overruns: int = 0  # its open or acknowledged offline_overrun conflicts


@dataclass(frozen=True, slots=True)
class SearchHit:
    patient_id: str
    name: str
    node: str
    cards: tuple[str, ...]
    balance: Fen
    merged_into: str
    conflicts: tuple[str, ...]  # ids of conflicts naming this patient or one of its cards


def event_lines(ev: Event, tr: Translator | None = None,
                keys: PatientKeys | None = None) -> tuple[str, ...]:
    """The body of an event, one ``field: value`` line each (money as yuan; a patient's
    sealed name opened with ``keys``, :data:`SEALED_NAME` if it cannot be); whatever the
    body holds (a refused one is shown as it came, each value cut short)."""
    tr = tr or Translator("en")
    out = []
    for k, v in ev.body.items():
        if k in ("items", "stamp_seq", "stamp_balance"):
            continue
        if k in ("amount", "debit", "moved", "limit") and type(v) is int:
            v = yuan(v)
        if k == NAME and isinstance(v, str) and is_sealed(v) and ev.kind.startswith(
                "patient."):
            pid = ev.body.get("patient_id")
            opened = keys.open(NAME, pid, v) if keys is not None and isinstance(
                pid, str) else None
            v = SEALED_NAME if opened is None else opened
        text = f"{tr.field(k)}: {tr.value(k, v)}"
        out.append(text if len(text) <= 200 else text[:199] + "…")
    fact = REGISTRY.fact(ev)
    if fact is not None and isinstance(fact.body, Charged):
        out.append(f"{tr.field('items')}: " + ", ".join(f"{i.name}×{i.qty}"
                                                         for i in fact.body.items))
    return tuple(out)


def ref(eid: EventId) -> str:
    return f"{eid[0]} #{eid[1]}"


class ConsoleData:
    """The console's one door to central's store."""

    def __init__(self, store: CentralStore, key: SigningKey | None = None, *,
                 clock: Callable[[], int] | None = None, language: str = "zh",
                 timezone: str = "Asia/Shanghai",
                 patient_keys: PatientKeys | None = None) -> None:
        self.store = store
        self.key = key
        #: the hospital's patient keys (protocol.privacy): to find a patient by ID number
        self.patient_keys = patient_keys
        self.tr = Translator(language)
        self.timezone = timezone  # the hospital's ([audit] timezone): the log's times
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.view = StoredView(store)
        #: reconciles only while no ``serve`` does (see the module)
        self.watch = cf.ConflictWatch(store, announce=False, patient_keys=patient_keys)
        #: (patient, sealed name) → the name opened (None: it cannot be), in memory only
        self._opened: dict[tuple[str, str], str | None] = {}
        #: patient → the name shown, for the patients the last screen's data named
        self._names: dict[str, str] = {}
        #: the last search read every patient: the search index was being made again
        self.searched_everyone = False

    async def refresh(self) -> int:
        """Bring the reconciler's state up to date if no ``serve`` does (then give its
        lease back); return how many events this console reconciled."""
        self._names = {}
        self.watch.forget()  # (a serve may have moved it on since: read it afresh)
        try:
            return await self.watch.catch_up()
        finally:
            await self.store.db.release_lease()

    async def settle(self, timeout_s: float = SETTLE_S) -> bool:
        """After this console stored events: refresh, then wait (bounded) until the
        reconciler — this console's or a ``serve``'s — has folded them, so the screen
        that follows shows them; whether it has."""
        target = await self.store.cursor()
        deadline = time.monotonic() + timeout_s
        while True:
            await self.refresh()
            if await self.view.folded_to() >= target:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    # -- names -----------------------------------------------------------------------
    def _open_name(self, p: Patient) -> str | None:
        """Record ``p``'s name in clear (a legacy clear name as it is; "" none); None when
        central's keys cannot open it (none loaded, another key, damaged)."""
        if not p.name or not is_sealed(p.name):
            return p.name
        ref = (p.patient_id, p.name)
        if ref not in self._opened:
            keys = self.patient_keys
            self._opened[ref] = keys.open(NAME, p.patient_id, p.name) if keys else None
        return self._opened[ref]

    def name(self, pid: str) -> str:
        """Patient ``pid``'s name as the console shows it: opened with central's keys,
        :data:`~protocol.privacy.SEALED_NAME` if they cannot open it, "" if central
        knows no name for it (or the screen's data did not name ``pid``:
        :meth:`load_names`)."""
        return self._names.get(pid, "")

    async def load_names(self, pids: Iterable[str]) -> None:
        """Read and open the names of ``pids`` (what :meth:`name` then shows)."""
        for pid in set(pids) - set(self._names):
            p = await self.view.patient(pid)
            if p is None:
                self._names[pid] = ""
                continue
            opened = self._open_name(p)
            self._names[pid] = SEALED_NAME if opened is None else opened

    def named(self, text: str, pids: Iterable[str]) -> str:
        """``text`` (a conflict's title, explanation, remedy) with each of ``pids`` it
        names followed by the patient's name (the book holds patient numbers only)."""
        for pid in sorted(set(pids), key=len, reverse=True):
            name = self.name(pid)
            if not name or pid not in text:
                continue
            shown = self.tr("patient.named", pid=pid, name=name).replace("\\", "\\\\")
            text = re.sub(r"(?<![\w.-])" + re.escape(pid) + r"(?![\w-]|\.\w)", shown, text)
        return text

    # -- the queue -----------------------------------------------------------------------
    async def conflicts(self, f: Filters = Filters()) -> list[cf.ConflictRow]:
        status = None if f.status in (ACTIVE, "") else f.status
        since = self.clock() - f.days * DAY_MS if f.days else None
        rows = await cf.list_conflicts(self.store, kind=f.kind or None, status=status,
                                       node=f.node or None, since_ms=since)
        await self.refresh()
        if f.status == ACTIVE:
            rows = [r for r in rows if r.status in ("open", "acknowledged")]
        await self.load_names(p for r in rows for p in r.patients)  # to show their names
        return rows

    async def kinds_and_nodes(self) -> tuple[list[str], list[str]]:
        """Kinds and nodes that occur in the book (what the filters cycle through)."""
        rows = await cf.list_conflicts(self.store)
        return (sorted({r.kind for r in rows}), sorted({n for r in rows for n in r.nodes}))

    # -- one conflict --------------------------------------------------------------------
    async def detail(self, cid: str) -> Detail | None:
        row = await cf.get_conflict(self.store, cid)
        if row is None:
            return None
        await self.refresh()
        involved = set(row.events)
        cards = []
        for eid in row.events:
            ev = await self._event(eid)
            if ev is None:  # refused: the evidence central quarantined, if it kept some
                cards += await self._quarantined(eid) or [EventCard(ref(eid), "", 0, "", ())]
            else:
                cards.append(EventCard(ref(eid), ev.kind, ev.hlc.wall, ev.operator,
                                       event_lines(ev, self.tr, self.patient_keys)))
        timelines = []
        for pid in row.patients:
            steps = (await self.view.person_timeline(pid)).steps()
            timelines.append((pid, tuple(
                TimelineRow(s.event.hlc.wall, ref(s.event.id), s.event.kind, s.delta, s.balance,
                            s.event.id in involved) for s in steps)))
        await self.load_names(row.patients)
        names = {pid: name for pid in row.patients if (name := self.name(pid))}
        return Detail(row, tuple(cards), tuple(timelines), names)

    async def _event(self, eid: EventId) -> Event | None:
        rows = await self.store.read("SELECT data FROM events WHERE node = ? AND seq = ?",
                                     (eid[0], eid[1]))
        try:
            return decode_event(bytes(rows[0][0])) if rows else None
        except ProtocolError:  # damaged bytes (`verify` names them): shown as refused
            return None

    async def _quarantined(self, eid: EventId) -> list[EventCard]:
        """The events a node offered at ``eid`` that central refused and kept as evidence."""
        out = []
        for kind, reason, data in await self.store.read(
                "SELECT kind, reason, offered FROM quarantine WHERE node = ? AND seq = ?"
                " ORDER BY id", eid):
            ev = decode_event(bytes(data))  # stored only after its signature verified
            why = reason or (self.tr("detail.why_equivocation") if kind == "equivocation"
                             else "")
            out.append(EventCard(ref(eid), ev.kind, ev.hlc.wall, ev.operator,
                                 (f"{self.tr('detail.why')}: {why}",
                                  f"prev: {ev.prev.hex()[:16]}…",
                                  *event_lines(ev, self.tr, self.patient_keys)),
                                 quarantined=kind))
        return out

    async def acknowledge(self, cid: str, operator: str) -> bool:
        return await cf.acknowledge(self.store, cid, operator)

    async def resolve(self, cid: str, code: str, *, reason: str, operator: str) -> list[Event]:
        """Sign the remedy as central (see :func:`central.conflicts.resolve`).

        Raises :class:`~central.conflicts.ResolveError` (nothing signed) on an empty
        reason, an unknown remedy or a conflict already resolved.
        """
        if self.key is None:
            raise cf.ResolveError(self.tr("resolve.no_key"))
        events = await cf.resolve(self.store, self.key, cid, code, reason=reason,
                                  operator=operator, now_ms=self.clock())
        await self.settle()
        return events

    # -- staff ---------------------------------------------------------------------------
    async def staff(self) -> list[StaffMember]:
        """Every member of staff central signed, by id: ``onecard-central staff list``'s
        records (:func:`central.staff.members`)."""
        return await staff.members(self.store)

    async def set_staff_disabled(self, staff_id: str, disabled: bool, *, reason: str,
                                 operator: str) -> int:
        """Sign ``staff.disabled``/``staff.enabled`` as ``staff disable|enable`` does
        (:func:`central.staff.set_disabled`); central's seq.  Raises
        :class:`~central.staff.StaffFailed` (nothing signed) without central's key."""
        if self.key is None:
            raise staff.StaffFailed(self.tr("resolve.no_key"))
        seq = await staff.set_disabled(self.store, self.key, staff_id, disabled, reason=reason,
                                       operator=operator)
        await self.settle()
        return seq

    # -- nodes ---------------------------------------------------------------------------
    async def audit_log(self, f: trail.Filters) -> list[trail.Entry]:
        """The audit log's entries (:func:`central.trail.query`), in the console's
        language, most recent first."""
        return await trail.query(self.store, f, lang=self.tr.language, timezone=self.timezone)

    async def nodes(self) -> list[NodeHealth]:
        """The counters (central itself is no counter: it is never "offline" here), each
        with the offline cap in force, its exposure bound while offline
        (:meth:`exposure`) and its open offline overruns."""
        nodes = [n for n in await self.store.nodes() if n.id != CENTRAL]
        lags = await self.store.lags()
        active = [r for r in await cf.list_conflicts(self.store)
                  if r.status in ("open", "acknowledged")]
        await self.refresh()
        _floor, cap = await self.view.limits()
        exposure = await self.exposure(cap)
        out = []
        for n in nodes:
            state = "revoked" if n.revoked else ("online" if n.online else "offline")
            mine = [r for r in active if n.id in r.nodes]
            out.append(NodeHealth(
                n.id, n.role, state, n.last_seen_ms, n.head.seq,
                lags.get(n.id, 0), n.pending, len(mine), fingerprint(n.pubkey), cap,
                exposure if state == "offline" else 0,
                sum(1 for r in mine if r.kind == "offline_overrun")))
        return out

    async def exposure(self, cap: Fen) -> Fen:
        """The most one offline counter can charge, without a supervisor, that central has
        not seen: per account, no more than the cap (its offline limit since the last
        sync) and no more than the account holds (balance plus green-channel credit, as
        central knows it: a counter charges down to what it knows, which is at most
        that); summed over every account.  No cap: the sum of what accounts hold.

        An upper bound, not a measure: central cannot see what an offline counter did.
        (A supervisor's approval lifts the limit; those overruns are flagged on reconnect.)
        """
        total = 0
        for balance, credit in await self.store.read(
                "SELECT balance, credit_limit FROM accounts"):
            room = max(0, int(balance) + int(credit))  # (Account.available)
            total += min(cap, room) if cap else room
        return total

    # -- search --------------------------------------------------------------------------
    async def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Patients by card number, patient number, national ID number, phone or (part of)
        the name, its pinyin or initials — as a counter finds them
        (:func:`edge_node.search.plan`), in the search index central's reconciler keeps
        with central's keys (:meth:`StoredView.search`): the best matches first."""
        q = text.strip()
        if not q:
            return []
        await self.refresh()
        v = self.view
        pids: list[str] = []
        card = await v.card(q)
        if card is not None and card.patient_id:
            pids.append(card.patient_id)
        found = await v.search(q, self.patient_keys, limit)
        self.searched_everyone = found is None
        if found is None:  # (the index is being made: every patient read, as it did)
            found = await self._search_all(q)
        pids += [p for p in found if p not in pids]
        pids = pids[:limit]
        rows = await cf.list_conflicts(self.store)
        # (each kind of detail read for all the hits at once: a few statements, not ~5 a hit)
        families = await v.families(pids)
        accounts = await v.records_of(Account, sorted(set().union(*families.values())))
        patients = await v.records_of(Patient, pids)
        cards_of = await v.cards_of_each(pids)
        for pid in pids:
            opened = self._open_name(patients[pid]) if pid in patients else ""
            self._names[pid] = SEALED_NAME if opened is None else opened
        hits = []
        for pid in pids:
            info = patients.get(pid) or Patient(pid)
            balance = sum(accounts[p].balance for p in families[pid] if p in accounts)
            cards = tuple(sorted(cards_of[pid]))
            hits.append(SearchHit(
                pid, self.name(pid), info.registered_node, cards, balance, info.merged_into,
                tuple(r.id for r in rows if pid in r.patients or set(cards) & set(r.cards))))
        return hits

    async def _search_all(self, q: str) -> list[str]:
        """While the reconciler makes its search index again (a new version, other keys),
        what the console did before it: the patient number, the ID number, or the name
        in clear, read from every patient record (each name opened once, then kept)."""
        v = self.view
        pids = [q] if await v.patient(q) is not None else []
        nid = q.upper()  # the check digit may be typed as x
        tag = self.patient_keys.id_tag(nid) if self.patient_keys is not None else ""
        low, norm = q.lower(), normal_name(q)
        everyone = await v.records(Patient)
        pids += sorted(p.patient_id for p in everyone
                       if ((tag and p.id_tag == tag) or (p.national_id and p.national_id == nid))
                       and p.patient_id not in pids)
        pids += sorted(p.patient_id for p in everyone
                       if p.patient_id not in pids and (name := self._open_name(p))
                       and (low in name.lower() or (norm and norm in normal_name(name))))
        return pids
