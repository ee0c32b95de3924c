"""``onecard-central dormant``: idle balances reported, selected, approved and settled.

Theory of operation
-------------------
1. **Report** (:func:`scan`, :func:`find_dormant`, pure over the store's events).  Every
   stored event is folded by the one fold (:data:`protocol.domain.REGISTRY`) and, from
   its kind's ``records`` facet, marks the accounts and cards it touches as active at
   its time (``hlc.wall``); a card's activity counts for the patient the folded card
   points at, whatever the order the events came in.  Only counters' events are the
   patient's activity: central's own (an import, a remedy, a settlement) are not,
   except where a body states the date of the patient's last activity (an opening
   balance moved in from the old system carries the old system's ``last_activity``);
   an account with no activity at all counts from central's first event on it (an
   import without a date).  An account with a positive balance whose newest activity
   is at least N whole calendar months before today (in the hospital's time zone) is
   dormant.  Damaged bytes, bad bodies and unknown kinds fold nothing and are counted,
   never a traceback.  The CSV names each account with its contact details — the one
   export where phone numbers appear in clear (national IDs masked).
2. **Select** (:func:`select`).  Finance edits the CSV down to the accounts to settle
   and gives it back: each line's account is checked again (still dormant, balance
   unchanged to the fen, not in another open batch); any bad line refuses the whole
   file, each named.  A good file becomes a *pending* batch in central's database
   (``dormant_batches``/``dormant_items``, migration 6), with each account's amount and
   last activity as selected.
3. **Approve** (:func:`approve`).  A supervisor other than the selector approves: every
   account is checked again (balance and last activity unchanged since selection; a
   batch with an account that moved is refused, naming it, nothing signed), the batch
   becomes *approved*, then central signs one ``account.dormant_settled``
   (:mod:`protocol.dormant`) per account, a chunk of accounts per store transaction
   (:meth:`~central.store.CentralStore.append_central`): the events and their items'
   ``settled`` marks commit together, so each account is settled once or not at all.
   Each transaction folds what arrived meanwhile and checks its accounts once more; an
   account a counter touched in between is marked *moved* and left alone.  A crash
   leaves the batch *approved*; running ``approve`` again finishes it.

Counters receive the settlements by ordinary sync: the patient's history shows them,
the balance is 0 and the account closed (a new deposit reopens it).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import itertools
import sqlite3
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from central.config import CentralConfig, load_key
from central.store import CentralStore, Query, Statements, enrol_central
from edge_node.i18n import Translator
from protocol import nationalid
from protocol.account import Account
from protocol.card import Card
from protocol.core import Fact, State
from protocol.crypto import SigningKey
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError
from protocol.event import CENTRAL, Event, decode_event
from protocol.money import Fen, parse_yuan, yuan
from protocol.patient import Patient
from protocol.privacy import SEALED_NAME, KeyFileError, PatientKeys, details_of, name_of

KIND = "account.dormant_settled"
BANDS = (6, 12, 24, 36)  # months: the report's age bands start at N and at each of these
COLUMNS = ("patient_id", "name", "national_id", "phone", "contact", "cards", "balance",
           "last_activity", "months_idle", "band")
DEFAULT_TIMEZONE = "Asia/Shanghai"
CHUNK = 200  # accounts per store transaction when settling
MAX_CHUNK = 2000


class DormantError(Exception):
    """A command refused; ``key`` and ``values`` say why in central's language."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


# ------------------------------------------------------------------------------ scan
@dataclass(slots=True)
class Scan:
    """The store's events folded, with each account's and card's newest activity."""

    state: State = field(default_factory=State)
    account_ms: dict[str, int] = field(default_factory=dict)  # the patient's activity
    card_ms: dict[str, int] = field(default_factory=dict)
    #: the earliest of central's own events on each (what stands for activity when
    #: nothing else does: an import with no date of its own)
    account_known: dict[str, int] = field(default_factory=dict)
    card_known: dict[str, int] = field(default_factory=dict)
    pos: int = 0  # the store's cursor position folded so far
    events: int = 0
    skipped: int = 0  # damaged bytes, bad bodies, kinds this version does not know

    def add(self, rows: Iterable[tuple[int, bytes]], tz: dt.tzinfo) -> None:
        for pos, data in rows:
            self.pos = max(self.pos, pos)
            self.events += 1
            try:
                ev = decode_event(bytes(data))
            except ProtocolError:
                self.skipped += 1
                continue
            self.add_event(ev, tz)

    def add_event(self, ev: Event, tz: dt.tzinfo) -> None:
        """Fold one event and mark what it touches active (a bad one: counted)."""
        d = REGISTRY.apply(self.state, ev)
        if not isinstance(d, Fact):
            self.skipped += 1
            return
        when = activity_ms(d, tz)
        if when is None:  # central's: known from then on, not the patient's doing
            known = d.at.wall
            for rt, key in d.records:
                seen = (self.account_known if rt is Account else self.card_known
                        if rt is Card else None)
                if seen is not None and isinstance(key, str) and known < seen.get(key, known + 1):
                    seen[key] = known
            return
        for rt, key in d.records:
            seen = self.account_ms if rt is Account else self.card_ms if rt is Card else None
            if seen is not None and isinstance(key, str) and when > seen.get(key, 0):
                seen[key] = when

    def last_ms(self, pid: str, cards: Iterable[str]) -> int:
        """The newest activity on ``pid``'s account or any of its cards; with none, the
        earliest of central's events on them (0: nothing at all)."""
        cards = list(cards)
        last = max([self.account_ms.get(pid, 0), *(self.card_ms.get(c, 0) for c in cards)])
        if last:
            return last
        known = [t for t in (self.account_known.get(pid, 0),
                             *(self.card_known.get(c, 0) for c in cards)) if t]
        return min(known, default=0)


def activity_ms(fact: Fact, tz: dt.tzinfo) -> int | None:
    """When ``fact`` says the patient was last active.

    A counter's event: its time.  Central's own events (an import, a remedy, a
    settlement) are not the patient's doing: None — unless the body states the date of
    the patient's last activity before it (an opening balance's ``last_activity`` in
    the old system): the start of that day.
    """
    stated = getattr(fact.body, "last_activity", "")
    if isinstance(stated, str) and stated:
        try:
            day = dt.date.fromisoformat(stated)
            return int(dt.datetime.combine(day, dt.time(), tz).timestamp() * 1000)
        except (ValueError, OverflowError):
            pass
    return None if fact.at.central else fact.at.wall


def timezone(cfg: object) -> dt.tzinfo:
    try:
        return ZoneInfo(str(getattr(cfg, "timezone", DEFAULT_TIMEZONE)))
    except (ValueError, ZoneInfoNotFoundError):
        return ZoneInfo(DEFAULT_TIMEZONE)


async def scan(store: CentralStore, tz: dt.tzinfo, page: int = 5000) -> Scan:
    """Every stored event folded, page by page."""
    out = Scan()
    while True:
        rows = await store.events_since(out.pos, page)
        if not rows:
            return out
        out.add(((p, d) for p, d, _ in rows), tz)


# ---------------------------------------------------------------------------- report
def months_between(since: dt.date, today: dt.date) -> int:
    """Whole calendar months from ``since`` to ``today`` (0 if ``since`` is later)."""
    m = (today.year - since.year) * 12 + today.month - since.month
    if today.day < since.day:
        m -= 1
    return max(0, m)


def local_day(ms: int, tz: dt.tzinfo) -> dt.date:
    try:
        return dt.datetime.fromtimestamp(ms / 1000, tz).date()
    except (OverflowError, OSError, ValueError):
        return dt.date(1970, 1, 1)


def bands(months: int) -> list[tuple[int, int | None]]:
    """``[(from, to), …, (from, None)]``: the first starts at ``months``."""
    edges = [months, *(b for b in BANDS if b > months)]
    out: list[tuple[int, int | None]] = list(itertools.pairwise(edges))
    return [*out, (edges[-1], None)]


def band_label(band: tuple[int, int | None]) -> str:
    lo, hi = band
    return f"{lo}-{hi}" if hi is not None else f"{lo}+"


@dataclass(frozen=True, slots=True)
class DormantAccount:
    patient_id: str
    name: str
    national_id: str
    phone: str
    contact: str
    cards: tuple[str, ...]
    balance: Fen
    last_ms: int
    idle_since: str  # YYYY-MM-DD, hospital time
    months: int
    band: str


def find_dormant(sc: Scan, today: dt.date, months: int, tz: dt.tzinfo,
                 keys: PatientKeys | None = None) -> list[DormantAccount]:
    """Every account with a positive balance and no activity for ``months`` months,
    longest idle first; the ID number, phone and address opened with ``keys`` (sealed
    ones shown as :data:`SEALED` without), the name too (shown as
    :data:`~protocol.privacy.SEALED_NAME` without)."""
    cards = cards_by_patient(sc)
    bs = bands(months)
    out = []
    for a in sc.state.all(Account):
        if a.balance <= 0:
            continue
        own = sorted(cards.get(a.patient_id, ()))
        last = sc.last_ms(a.patient_id, own)
        day = local_day(last, tz)
        m = months_between(day, today)
        if m < months:
            continue
        band = next(b for b in reversed(bs) if m >= b[0])
        p = sc.state.get(Patient, a.patient_id) or Patient.new(a.patient_id)
        d = details_of(p, keys)
        name = name_of(p, keys)
        out.append(DormantAccount(a.patient_id, SEALED_NAME if name is None else name,
                                  _or_sealed(d.national_id),
                                  _or_sealed(d.phone), _or_sealed(d.contact),
                                  tuple(own), a.balance, last, day.isoformat(), m,
                                  band_label(band)))
    return sorted(out, key=lambda d: (d.last_ms, d.patient_id))


SEALED = "(sealed)"  # a detail central's patient keys file could not open


def _or_sealed(value: str | None) -> str:
    return SEALED if value is None else value


def totals(accounts: Iterable[DormantAccount], months: int) -> list[tuple[str, int, Fen]]:
    """``(band, count, fen)`` of each band, every band listed (zero ones too)."""
    out = {band_label(b): [0, 0] for b in bands(months)}
    for d in accounts:
        out[d.band][0] += 1
        out[d.band][1] += d.balance
    return [(b, n, fen) for b, (n, fen) in out.items()]


def plain_yuan(fen: Fen) -> str:
    """``123.45``: yuan a spreadsheet reads as a number (no ¥, no thousands comma)."""
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def render_csv(accounts: Iterable[DormantAccount]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for d in accounts:
        w.writerow([d.patient_id, d.name, nationalid.mask(d.national_id)
                    if d.national_id and d.national_id != SEALED else d.national_id,
                    d.phone, d.contact, " ".join(d.cards), plain_yuan(d.balance),
                    d.idle_since, d.months, d.band])
    return buf.getvalue()


# ---------------------------------------------------------------------------- select
@dataclass(frozen=True, slots=True)
class Selected:
    line: int
    patient_id: str
    amount: Fen
    last_ms: int
    idle_since: str


def read_selection(text: str) -> tuple[list[tuple[int, str, str]], list[tuple[int, str,
                                                                            dict[str, object]]]]:
    """``(line, patient_id, balance text)`` of each line, and ``(line, key, values)`` of
    each that cannot be read.  DormantError if the file has no usable header."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, str, str]] = []
    errors: list[tuple[int, str, dict[str, object]]] = []
    try:
        header = next(reader, None)
        if header is None:
            raise DormantError("dormant.select_empty")
        names = [h.strip().lower() for h in header]
        missing = [c for c in ("patient_id", "balance") if c not in names]
        if missing:
            raise DormantError("dormant.select_columns", columns=", ".join(missing))
        ip, ib = names.index("patient_id"), names.index("balance")
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) <= max(ip, ib):
                errors.append((line, "dormant.line_columns", {}))
                continue
            rows.append((line, cells[ip].strip(), cells[ib].strip()))
    except csv.Error as exc:
        raise DormantError("dormant.select_not_csv", why=str(exc)) from None
    return rows, errors


def check_selection(rows: list[tuple[int, str, str]], positive: dict[str, DormantAccount],
                    months: int, open_items: dict[str, str]) -> tuple[list[Selected],
                                                         list[tuple[int, str,
                                                                    dict[str, object]]]]:
    """Each line's account still dormant (a balance, idle ``months`` or more: ``positive``
    holds every account with a balance), its balance as the file says, not in another
    open batch, named once; the selection, or every line's problem."""
    out: list[Selected] = []
    errors: list[tuple[int, str, dict[str, object]]] = []
    seen: dict[str, int] = {}
    for line, pid, text in rows:
        fen = parse_yuan(text)
        if not isinstance(fen, int):
            errors.append((line, "dormant.line_balance", {"value": text}))
            continue
        if pid in seen:
            errors.append((line, "dormant.line_repeat", {"pid": pid, "other": seen[pid]}))
            continue
        seen[pid] = line
        d = positive.get(pid)
        if d is None:
            errors.append((line, "dormant.line_no_balance", {"pid": pid}))
        elif d.months < months:
            errors.append((line, "dormant.line_active", {"pid": pid, "day": d.idle_since,
                                                         "m": d.months, "n": months}))
        elif d.balance != fen:
            errors.append((line, "dormant.line_balance_changed",
                           {"pid": pid, "file": yuan(fen), "now": yuan(d.balance)}))
        elif pid in open_items:
            errors.append((line, "dormant.line_in_batch", {"pid": pid,
                                                          "batch": open_items[pid]}))
        else:
            out.append(Selected(line, pid, fen, d.last_ms, d.idle_since))
    return out, errors


def new_batch_id(data: bytes, now: dt.datetime) -> str:
    digest = hashlib.blake2b(data + now.isoformat().encode(), digest_size=3).hexdigest()
    return f"dorm-{now.strftime('%Y%m%dT%H%M%S')}-{digest}"


async def open_items(store: CentralStore) -> dict[str, str]:
    rows = await store.read("SELECT patient_id, batch_id FROM dormant_items WHERE open = 1")
    return {str(r[0]): str(r[1]) for r in rows}


async def select(store: CentralStore, text: str, *, operator: str, months: int,
                 today: dt.date, tz: dt.tzinfo, source: str, batch_id: str,
                 now_ms: int) -> tuple[str, list[Selected]]:
    """Make a pending batch of the file's accounts; DormantError with the bad lines."""
    rows, errors = read_selection(text)
    sc = await scan(store, tz)
    positive = {d.patient_id: d for d in find_dormant(sc, today, 0, tz)}
    chosen, more = check_selection(rows, positive, months, await open_items(store))
    errors = sorted(errors + more, key=lambda e: e[0])
    if errors:
        raise DormantError("dormant.select_refused", lines=errors)
    if not chosen:
        raise DormantError("dormant.select_nothing")
    try:
        await store.write_many([
            ("INSERT INTO dormant_batches (id, months, source, created_by, created_ms)"
             " VALUES (?, ?, ?, ?, ?)", (batch_id, months, source[:300], operator, now_ms)),
            *(("INSERT INTO dormant_items (batch_id, line, patient_id, amount, last_ms,"
               " idle_since) VALUES (?, ?, ?, ?, ?, ?)",
               (batch_id, s.line, s.patient_id, s.amount, s.last_ms, s.idle_since))
              for s in chosen)])
    except sqlite3.IntegrityError:  # another batch took one of them meanwhile
        raise DormantError("dormant.select_raced") from None
    return batch_id, chosen


# --------------------------------------------------------------------------- batches
@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    status: str
    months: int
    source: str
    created_by: str
    created_ms: int
    approved_by: str
    approved_ms: int
    cancelled_by: str
    finished_ms: int
    count: int = 0
    total: Fen = 0


@dataclass(frozen=True, slots=True)
class Item:
    line: int
    patient_id: str
    amount: Fen
    last_ms: int
    idle_since: str
    status: str
    settled_seq: int
    note: str


_BATCH = ("SELECT b.id, b.status, b.months, b.source, b.created_by, b.created_ms,"
          " b.approved_by, b.approved_ms, b.cancelled_by, b.finished_ms,"
          " (SELECT COUNT(*) FROM dormant_items i WHERE i.batch_id = b.id),"
          " (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM dormant_items i"
          "  WHERE i.batch_id = b.id)"
          " FROM dormant_batches b")


async def batches(store: CentralStore) -> list[Batch]:
    return [Batch(*r) for r in await store.read(_BATCH + " ORDER BY b.created_ms, b.id")]


async def batch(store: CentralStore, batch_id: str) -> Batch:
    rows = await store.read(_BATCH + " WHERE b.id = ?", (batch_id,))
    if not rows:
        raise DormantError("dormant.no_batch", batch=batch_id)
    return Batch(*rows[0])


async def items(store: CentralStore, batch_id: str) -> list[Item]:
    rows = await store.read("SELECT line, patient_id, amount, last_ms, idle_since, status,"
                            " settled_seq, note FROM dormant_items WHERE batch_id = ?"
                            " ORDER BY line", (batch_id,))
    return [Item(*r) for r in rows]


def same_person(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


async def cancel(store: CentralStore, batch_id: str, operator: str, now_ms: int) -> Batch:
    """Cancel a pending batch: its accounts may be selected again."""
    b = await batch(store, batch_id)
    if b.status != "pending":
        raise DormantError(f"dormant.cancel_{b.status}", batch=batch_id)
    await store.write_many([
        ("UPDATE dormant_batches SET status = 'cancelled', cancelled_by = ?, finished_ms = ?"
         " WHERE id = ? AND status = 'pending'", (operator, now_ms, batch_id)),
        # only if this cancel won (an approval may have come first): one transaction
        ("UPDATE dormant_items SET status = 'cancelled', open = 0 WHERE batch_id = ? AND"
         " (SELECT status FROM dormant_batches WHERE id = ?) = 'cancelled'"
         " AND status = 'pending'", (batch_id, batch_id))])
    return await batch(store, batch_id)


def cards_by_patient(sc: Scan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in sc.state.all(Card):
        if c.patient_id:
            out.setdefault(c.patient_id, []).append(c.card_no)
    return out


def moved(sc: Scan, it: Item, cards: dict[str, list[str]],
          tz: dt.tzinfo) -> dict[str, object] | None:
    """What changed on the account since it was selected (None: nothing)."""
    acct = sc.state.get(Account, it.patient_id) or Account.new(it.patient_id)
    if acct.balance != it.amount:
        return {"pid": it.patient_id, "what": "balance", "was": yuan(it.amount),
                "now": yuan(acct.balance)}
    last = sc.last_ms(it.patient_id, cards.get(it.patient_id, ()))
    if last != it.last_ms:
        return {"pid": it.patient_id, "what": "activity", "was": it.idle_since,
                "now": local_day(last, tz).isoformat()}
    return None


@dataclass(slots=True)
class Settled:
    settled: int = 0
    amount: Fen = 0
    moved: list[dict[str, object]] = field(default_factory=list)
    events: list[int] = field(default_factory=list)  # central's seqs signed


async def approve(store: CentralStore, key: SigningKey, batch_id: str, *, operator: str,
                  tz: dt.tzinfo, now_ms: int | None = None, chunk: int = CHUNK) -> Settled:
    """Approve ``batch_id`` (pending) and settle each of its accounts; or finish settling
    an approved one (a re-run after a crash).  DormantError if refused."""
    b = await batch(store, batch_id)
    if b.status in ("settled", "cancelled"):
        raise DormantError(f"dormant.approve_{b.status}", batch=batch_id)
    if same_person(operator, b.created_by):
        raise DormantError("dormant.approve_own", batch=batch_id, who=b.created_by)
    sc = await scan(store, tz)
    now = now_ms
    if b.status == "pending":
        cards = cards_by_patient(sc)
        problems = [m for it in await items(store, batch_id)
                    if it.status == "pending" and (m := moved(sc, it, cards, tz)) is not None]
        if problems:
            raise DormantError("dormant.approve_moved", batch=batch_id, moved=problems)
        await store.write_many([
            ("UPDATE dormant_batches SET status = 'approved', approved_by = ?, approved_ms = ?"
             " WHERE id = ? AND status = 'pending'",
             (operator, now if now is not None else _now_ms(), batch_id))])
        b = await batch(store, batch_id)
        if b.status != "approved":  # cancelled (or settled by another) meanwhile
            raise DormantError(f"dormant.approve_{b.status}", batch=batch_id)
    approver = b.approved_by or operator
    done = Settled()
    while True:
        todo = [it for it in await items(store, batch_id) if it.status == "pending"][:chunk]
        if not todo:
            break

        async def plan(query: Query, todo: list[Item] = todo
                       ) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
            new = await query("SELECT pos, data FROM events WHERE pos > ? ORDER BY pos",
                              (sc.pos,))
            sc.add(((int(p), bytes(d)) for p, d in new), tz)
            head = await query("SELECT head_seq FROM nodes WHERE id = ?", (CENTRAL,))
            seq = int(head[0][0]) if head else 0
            pending = {str(r[0]) for r in await query(
                "SELECT patient_id FROM dormant_items WHERE batch_id = ? AND status ="
                " 'pending'", (batch_id,))}
            out: list[tuple[str, dict[str, Any]]] = []
            after: Statements = []
            cards = cards_by_patient(sc)
            for it in todo:
                if it.patient_id not in pending:  # done by another run meanwhile
                    continue
                m = moved(sc, it, cards, tz)
                body = {"patient_id": it.patient_id, "amount": it.amount,
                        "dormant_batch": batch_id, "idle_since": it.idle_since,
                        "selected_by": b.created_by, "approved_by": approver}
                problems = REGISTRY.validate(KIND, body, CENTRAL)
                if m is None and problems:
                    m = {"pid": it.patient_id, "what": "invalid",
                         "was": "", "now": "; ".join(p.message for p in problems)}
                if m is not None:
                    done.moved.append(m)
                    after.append(("UPDATE dormant_items SET status = 'moved', open = 0,"
                                  " note = ? WHERE batch_id = ? AND patient_id = ?",
                                  (f"{m['what']}: {m['was']} -> {m['now']}", batch_id,
                                   it.patient_id)))
                    continue
                seq += 1
                out.append((KIND, body))
                after.append(("UPDATE dormant_items SET status = 'settled', open = 0,"
                              " settled_seq = ? WHERE batch_id = ? AND patient_id = ?",
                              (seq, batch_id, it.patient_id)))
                done.settled += 1
                done.amount += it.amount
                done.events.append(seq)
            return out, after

        before = (done.settled, done.amount, len(done.moved), len(done.events))
        try:
            await store.append_central(key, plan, operator=approver, now_ms=now)
        except BaseException:  # the chunk rolled back: what it counted did not happen
            done.settled, done.amount = before[0], before[1]
            del done.moved[before[2]:]
            del done.events[before[3]:]
            raise
    await store.write_many([
        ("UPDATE dormant_batches SET status = 'settled', finished_ms = ? WHERE id = ?"
         " AND status = 'approved'", (now if now is not None else _now_ms(), batch_id))])
    return done


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------- command
async def run(cfg: CentralConfig, action: str, *, months: int | None = None,
              csv_path: Path | None = None, select_path: Path | None = None,
              batch_id: str = "", operator: str = "", chunk: int = CHUNK,
              now: dt.datetime | None = None,
              out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``onecard-central dormant ACTION``: 0 done, 1 refused, 2 usage."""
    out, err = out or sys.stdout, err or sys.stderr
    tr = Translator(getattr(cfg, "language", "en"))
    tz = timezone(cfg)
    now = now or dt.datetime.now(dt.UTC)
    now_ms = int(now.timestamp() * 1000)
    today = now.astimezone(tz).date()
    n = months if months is not None else getattr(cfg, "dormant_months", 24)

    def fail(key: str, code: int, **values: object) -> int:
        print(f"onecard-central: {tr(key, **values)}", file=err)
        return code

    operator = operator.strip()
    if not 1 <= n <= 600:
        return fail("dormant.bad_months", 2)
    if not 1 <= chunk <= MAX_CHUNK:
        return fail("dormant.bad_chunk", 2, max=MAX_CHUNK)
    if action in ("settle", "approve", "cancel") and not 0 < len(operator) <= 64:
        return fail("dormant.bad_operator", 2)
    text = ""
    if action == "settle":
        assert select_path is not None
        try:
            text = select_path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            return fail("dormant.no_file", 2, path=select_path)
        except (OSError, UnicodeDecodeError) as exc:
            return fail("dormant.unreadable", 2, path=select_path, why=exc)
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        if action == "report":
            try:  # the list names whom to write to: central's IT may read their details
                keys: PatientKeys | None = PatientKeys.read(cfg.patient_keys_file)
            except KeyFileError as exc:
                print(f"onecard-central: {exc}: the details are shown sealed", file=err)
                keys = None
            return await _report(store, tr, tz, today, n, csv_path, out, err, keys)
        if action == "settle":
            bid = new_batch_id(text.encode(), now)
            bid, chosen = await select(store, text, operator=operator, months=n, today=today,
                                       tz=tz, source=str(select_path), batch_id=bid,
                                       now_ms=now_ms)
            print(tr("dormant.batch_made", batch=bid, n=len(chosen),
                     amount=yuan(sum(s.amount for s in chosen)), who=operator), file=out)
            print(tr("dormant.batch_next", batch=bid), file=out)
            return 0
        if action == "list":
            rows = await batches(store)
            print(tr("dormant.list_head"), file=out)
            for b in rows:
                print(f"{b.id:<32} {tr('dormant.status.' + b.status):<10} {b.count:>6} "
                      f"{yuan(b.total):>16}  {b.created_by} / {b.approved_by or '-'}", file=out)
            print(tr("dormant.list_count", n=len(rows)), file=out)
            return 0
        if action == "show":
            b = await batch(store, batch_id)
            _show(b, await items(store, batch_id), tr, tz, out)
            return 0
        if action == "cancel":
            b = await cancel(store, batch_id, operator, now_ms)
            print(tr("dormant.cancelled", batch=b.id, who=operator), file=out)
            return 0
        if action == "approve":
            key = load_key(cfg.key_file)
            try:
                await enrol_central(store, key)
            except ValueError as exc:
                return fail("dormant.key_mismatch", 2, why=exc)
            try:
                done = await approve(store, key, batch_id, operator=operator, tz=tz,
                                     chunk=chunk)
            except (sqlite3.Error, OSError) as exc:
                return fail("dormant.stopped", 1, batch=batch_id, why=exc)
            print(tr("dormant.approved", batch=batch_id, n=done.settled,
                     amount=yuan(done.amount), who=operator), file=out)
            for m in done.moved:
                print(tr("dormant.moved_" + str(m["what"]), **m), file=out)
            final = await batch(store, batch_id)
            print(tr("dormant.batch_total", n=final.count, amount=yuan(final.total),
                     status=tr("dormant.status." + final.status)), file=out)
            return 0
        return 2
    except DormantError as exc:
        return _refused(exc, tr, err)
    finally:
        await store.close()


def _refused(exc: DormantError, tr: Translator, err: TextIO) -> int:
    values = dict(exc.values)
    lines = values.pop("lines", None)
    moved_ = values.pop("moved", None)
    if isinstance(lines, list):
        for line, key, v in lines:
            print(tr("dormant.line", line=line, message=tr(key, **v)), file=err)
        print(f"onecard-central: {tr('dormant.select_refused', n=len(lines))}", file=err)
        return 1
    if isinstance(moved_, list):
        for m in moved_:
            print(tr("dormant.moved_" + str(m["what"]), **m), file=err)
        print(f"onecard-central: {tr(exc.key, n=len(moved_), **values)}", file=err)
        return 1
    print(f"onecard-central: {tr(exc.key, **values)}", file=err)
    return 1


async def _report(store: CentralStore, tr: Translator, tz: dt.tzinfo, today: dt.date,
                  months: int, csv_path: Path | None, out: TextIO, err: TextIO,
                  keys: PatientKeys | None = None) -> int:
    sc = await scan(store, tz)
    found = find_dormant(sc, today, months, tz, keys)
    if csv_path is not None:
        try:
            csv_path.write_text(render_csv(found), encoding="utf-8")
        except OSError as exc:
            print(f"onecard-central: {tr('dormant.csv_unwritable', path=csv_path, why=exc)}",
                  file=err)
            return 2
    print(tr("dormant.report_title", months=months, today=today.isoformat()), file=out)
    if csv_path is None:
        from edge_node.search import mask_phone

        if found:
            print(tr("dormant.accounts_head"), file=out)
        for d in found:
            phone = mask_phone(d.phone) if d.phone and d.phone != SEALED else d.phone or "-"
            print(f"{d.patient_id:<24} {d.name:<10} {phone:<12}"
                  f" {yuan(d.balance):>14}  {d.idle_since}  {d.months:>3}", file=out)
    print(tr("dormant.band_head"), file=out)
    for band, n, fen in totals(found, months):
        print(tr("dormant.band", band=band, n=n, amount=yuan(fen)), file=out)
    print(tr("dormant.total", n=len(found), amount=yuan(sum(d.balance for d in found))),
          file=out)
    if sc.skipped:
        print(tr("dormant.skipped", n=sc.skipped), file=out)
    if csv_path is not None:
        print(tr("dormant.csv_written", path=csv_path, n=len(found)), file=out)
        print(tr("dormant.csv_phones"), file=out)
    return 0


def _show(b: Batch, its: list[Item], tr: Translator, tz: dt.tzinfo, out: TextIO) -> None:
    def when(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M") if ms else "-"

    print(tr("dormant.show_head", batch=b.id, status=tr("dormant.status." + b.status),
             months=b.months), file=out)
    print(tr("dormant.show_people", created=b.created_by, at=when(b.created_ms),
             approved=b.approved_by or "-", approved_at=when(b.approved_ms)), file=out)
    for it in its:
        seq = f"central #{it.settled_seq}" if it.settled_seq else ""
        print(f"{it.line:>5} {it.patient_id:<24} {yuan(it.amount):>14}  {it.idle_since}  "
              f"{tr('dormant.item.' + it.status)} {seq} {it.note}".rstrip(), file=out)
    print(tr("dormant.batch_total", n=b.count, amount=yuan(b.total),
             status=tr("dormant.status." + b.status)), file=out)
