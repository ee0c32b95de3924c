"""``onecard-central import``: patients, cards and balances from the old system's CSV.

Theory of operation
-------------------
Three steps, each over the whole file before the next (format: ``docs/import.md``):

1. **Read** (:func:`read_rows`, pure).  UTF-8 with or without a BOM, a header row naming
   the columns (English or Chinese names), one patient per line.  Each line becomes the
   bodies of the events it will be — ``patient.registered``, ``card.issued`` (if it has
   a card) and ``account.opening_balance`` (:mod:`protocol.moving_in`) — checked by the
   registry exactly as central checks any event, plus what only the file can say: a
   balance in yuan with at most two decimals, never negative; the same old patient
   number, card or national ID on two lines.  Every problem is a :class:`LineError`
   naming its line and column, and all of them are reported.
2. **Check against the store** (:func:`check_rows`, pure over a folded state).  The
   store's events, folded by the one fold (:data:`protocol.domain.REGISTRY`), say which
   cards are issued and which national IDs registered.  A line's patient id is made
   from its old patient number (:func:`patient_id_for`), so a line imported before is
   recognised by its patient being registered, and skipped: re-running a file never
   imports a balance twice.
3. **Sign** (:func:`import_rows`).  Only if no line is bad: batches of lines are signed
   as central's events — the name, ID number, phone and address sealed with central's
   patient keys, each with its keyed tag (:mod:`protocol.privacy`: no name or detail is
   written in clear; the reconciler finds likely duplicates by the tags) — each batch
   in one store transaction
   (:meth:`~central.store.CentralStore.append_central`) that first folds whatever other
   nodes stored meanwhile and checks its lines again.  A crash leaves whole lines or
   none; a re-run skips the lines already in and finishes the rest.  Counters receive
   the events by ordinary sync and fold them like any other.

``--dry-run`` stops after step 2 and writes nothing.  Messages come from the ``import.``
strings of :mod:`edge_node.i18n`, in central's language (English unless configured).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from central.config import CentralConfig, CentralConfigError, load_key
from central.privacy import central_keys
from central.reconcile import id_key
from central.store import CentralStore, Query, Statements, enrol_central
from edge_node.i18n import Translator
from protocol import nationalid
from protocol.card import Card
from protocol.core import Fact, State
from protocol.crypto import SigningKey
from protocol.domain import REGISTRY
from protocol.errors import Problem, ProtocolError
from protocol.event import decode_event
from protocol.fields import CARD_RE, ID_RE, MAX_AMOUNT, PHONE_RE
from protocol.money import yuan
from protocol.patient import Patient, Registered, Updated
from protocol.privacy import NAME, SEALED_FIELDS, PatientKeys

Fen = int

#: The columns, in the order of the sample file; these must be in the header.
COLUMNS = ("old_patient_no", "name", "national_id", "sex", "birth_date", "phone", "contact",
           "card_no", "balance", "last_activity")
REQUIRED_COLUMNS = ("old_patient_no", "name", "card_no", "balance")
#: Header names an old system's export may use instead (Chinese, or other spellings).
ALIASES = {
    "旧病历号": "old_patient_no", "病历号": "old_patient_no", "患者编号": "old_patient_no",
    "old_no": "old_patient_no", "patient_no": "old_patient_no",
    "姓名": "name",
    "身份证号": "national_id", "身份证号码": "national_id", "national_id_no": "national_id",
    "性别": "sex",
    "出生日期": "birth_date", "birthday": "birth_date",
    "电话": "phone", "手机": "phone", "手机号": "phone", "联系电话": "phone",
    "联系方式": "contact", "联系人": "contact",
    "卡号": "card_no", "就诊卡号": "card_no", "card": "card_no",
    "余额": "balance", "预交金余额": "balance", "balance_yuan": "balance",
    "最后活动日期": "last_activity", "最后就诊日期": "last_activity",
    "last_activity_date": "last_activity",
}
#: Which column a body field's problem is about.
FIELD_COLUMN = {"patient_id": "old_patient_no", "amount": "balance"}
SEXES = {"m": "M", "male": "M", "男": "M", "f": "F", "female": "F", "女": "F"}
MAX_BATCH_ROWS = 2000
DEFAULT_BATCH_ROWS = 500

_PLAIN_NO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,53}$")
_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$")
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_AMOUNT = re.compile(r"^([+-]?)(\d+)(?:\.(\d+))?$")


class ImportFailed(Exception):
    """The import cannot go on; ``key`` and ``values`` say why (lines imported stay)."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


class Changed(Exception):
    """Between the check and a batch's transaction, other nodes made a line bad."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__(f"{len(errors)} line(s) became bad")
        self.errors = errors


def patient_id_for(old_no: str) -> str:
    """The onecard patient id of an old patient number: the same every run.

    ``P-central-…`` is central's own range (no counter is called ``central``), so it
    never meets a counter's ``P-<node>-<seq>``.  A number that is not a plain id
    (spaces, CJK, too long) is hashed; the hashed form has a dot, the plain one never.
    """
    if _PLAIN_NO.match(old_no):
        return f"P-central-{old_no}"
    return "P-central-x." + hashlib.blake2b(old_no.encode(), digest_size=10).hexdigest()


def new_batch_id(data: bytes, now: dt.datetime) -> str:
    """``imp-<UTC time>-<file hash>``: which run brought an opening balance."""
    digest = hashlib.blake2b(data, digest_size=4).hexdigest()
    return f"imp-{now.strftime('%Y%m%dT%H%M%S')}-{digest}"


# ------------------------------------------------------------------------------ values
@dataclass(frozen=True, slots=True)
class LineError:
    """One problem with one line of the file (``column`` "" when the line as a whole)."""

    line: int
    column: str
    key: str = ""  # an ``import.`` string …
    values: tuple[tuple[str, str], ...] = ()
    problem: Problem | None = None  # … or the registry's problem with the line's body

    def say(self, tr: Translator) -> str:
        if self.problem is not None:
            message = tr.problem(self.problem)
        else:
            message = tr(self.key, **dict(self.values))
        if not self.column:
            return tr("import.row_error", line=self.line, message=message)
        return tr("import.error", line=self.line, column=self.column, message=message)


@dataclass(frozen=True, slots=True)
class Row:
    """One good line: the patient it registers, the card it issues, the balance it opens."""

    line: int
    old_no: str
    patient_id: str
    national_id: str
    card_no: str
    amount: Fen
    registered: dict[str, Any]
    last_activity: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # column → header as written in the file

    def items(self, batch_id: str, keys: PatientKeys | None = None
              ) -> list[tuple[str, dict[str, Any]]]:
        """The (kind, body) of each event this line becomes, in the order signed: with
        ``keys``, the name, ID number, phone and address sealed, each with its tag
        (:mod:`protocol.privacy`; the file's checks run on them in clear, without)."""
        registered = self.registered
        if keys is not None:
            clear = {f: registered[f] for f in (NAME, *SEALED_FIELDS) if f in registered}
            registered = {**{k: v for k, v in registered.items() if k not in clear},
                          **keys.sealed_details(self.patient_id, clear)}
        out: list[tuple[str, dict[str, Any]]] = [("patient.registered", registered)]
        if self.card_no:
            out.append(("card.issued", {"card_no": self.card_no,
                                        "patient_id": self.patient_id}))
        opening: dict[str, Any] = {"patient_id": self.patient_id, "amount": self.amount,
                                   "old_patient_no": self.old_no, "batch_id": batch_id}
        if self.last_activity:
            opening["last_activity"] = self.last_activity
        out.append(("account.opening_balance", opening))
        return out

    def header(self, column: str) -> str:
        return dict(self.headers).get(column, column)


@dataclass(slots=True)
class Parsed:
    """What :func:`read_rows` made of a file."""

    rows: list[Row] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    lines: int = 0  # data lines read (header and blank lines not counted)
    ignored: list[str] = field(default_factory=list)  # header names not used


@dataclass(slots=True)
class Checked:
    """Good lines against the store: to import, already imported, bad."""

    todo: list[Row] = field(default_factory=list)
    skipped: list[Row] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    @property
    def total(self) -> Fen:
        return sum(r.amount for r in self.todo)

    @property
    def cards(self) -> int:
        return sum(1 for r in self.todo if r.card_no)


@dataclass(slots=True)
class Imported:
    patients: int = 0
    cards: int = 0
    amount: Fen = 0
    events: int = 0
    skipped: int = 0  # found imported when its batch came (another run got there first)
    pos: int = 0  # the store's cursor position folded into the state so far


# ------------------------------------------------------------------------------- read
def decode_text(data: bytes, path: str, *, gb18030: bool = False,
                failed: str = "import.not_utf8") -> str:
    """The file's text (UTF-8, BOM or not; with ``gb18030`` a file that is not UTF-8 is
    read as GB18030, which GBK and GB2312 files are too); ImportFailed (``failed``)
    names the first line that is neither."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = exc
    if gb18030:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as exc:
            bad = max(bad, exc, key=lambda e: e.start)  # where neither reads on
    line = data[:bad.start].count(b"\n") + 1
    raise ImportFailed(failed, path=path, line=line) from None


def read_rows(text: str, today: dt.date, path: str = "") -> Parsed:
    """Every line of the file as a :class:`Row`, or its :class:`LineError` values.

    ImportFailed when the file as a whole is unusable (no header, columns missing).
    """
    out = Parsed()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
        if header is None:
            raise ImportFailed("import.empty", path=path)
        columns = _columns(header, out)
        seen: dict[str, dict[str, int]] = {"old_patient_no": {}, "card_no": {},
                                           "national_id": {}}
        headers = tuple((c, header[i].strip()) for c, i in columns.items())
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            out.lines += 1
            if len(cells) < len(header) or any(c.strip() for c in cells[len(header):]):
                out.errors.append(LineError(line, "", "import.columns",
                                            (("got", str(len(cells))),
                                             ("want", str(len(header))))))
                continue
            values = {col: cells[i].strip() for col, i in columns.items()}
            row, errors = _row(line, values, today, headers)
            errors += _repeats(line, values, seen, dict(headers))
            if errors:
                out.errors += errors
            elif row is not None:
                out.rows.append(row)
    except csv.Error as exc:
        raise ImportFailed("import.not_csv", path=path, why=str(exc)) from None
    return out


def _columns(header: list[str], out: Parsed) -> dict[str, int]:
    """Which cell holds which column; ImportFailed if one is missing or named twice."""
    columns: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = raw.strip()
        key = name.lower().replace(" ", "_")
        col = key if key in COLUMNS else ALIASES.get(name, ALIASES.get(key, ""))
        if not col:
            if name:
                out.ignored.append(name)
            continue
        if col in columns:
            raise ImportFailed("import.duplicate_column", column=name)
        columns[col] = i
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ImportFailed("import.missing_columns", columns=", ".join(missing))
    return columns


def _row(line: int, v: dict[str, str], today: dt.date,
         headers: tuple[tuple[str, str], ...]) -> tuple[Row | None, list[LineError]]:
    """One line's row, or every problem with it (each naming its column)."""
    named = dict(headers)
    errors: list[LineError] = []

    def err(column: str, key: str, **values: object) -> None:
        errors.append(LineError(line, named.get(column, column), key,
                                tuple((k, str(x)) for k, x in values.items())))

    old_no = v.get("old_patient_no", "")
    name = v.get("name", "")
    for col, value in (("old_patient_no", old_no), ("name", name)):
        if not value:
            err(col, "import.required")
    nid = v.get("national_id", "").upper()
    parsed_id = nationalid.parse(nid) if nid else None
    if isinstance(parsed_id, Problem):
        errors.append(LineError(line, named.get("national_id", "national_id"),
                                problem=parsed_id))
        parsed_id = None
    sex_text = v.get("sex", "")
    sex = SEXES.get(sex_text.lower(), "") if sex_text else ""
    if sex_text and not sex:
        err("sex", "import.sex", value=sex_text)
    elif not sex_text:
        if parsed_id is not None:
            sex = parsed_id.sex
        elif not nid:
            err("sex", "import.sex_or_id")
    birth = _date(v.get("birth_date", ""), today, "birth_date", err)
    if not v.get("birth_date", ""):
        if parsed_id is not None:
            birth = parsed_id.birth_date
        elif not nid:
            err("birth_date", "import.birth_or_id")
    phone, card_no = v.get("phone", ""), v.get("card_no", "")
    if phone and not PHONE_RE.match(phone):
        err("phone", "import.phone", value=phone)
    if card_no and not CARD_RE.match(card_no):
        err("card_no", "import.card_no", value=card_no)
    last = _date(v.get("last_activity", ""), today, "last_activity", err)
    amount = _balance(v.get("balance", ""), err)
    pid = patient_id_for(old_no)
    registered: dict[str, Any] = {"patient_id": pid, "name": name, "sex": sex,
                                  "birth_date": birth}
    for col in ("national_id", "phone", "contact"):
        value = nid if col == "national_id" else v.get(col, "")
        if value:
            registered[col] = value
    row = Row(line, old_no, pid, nid, card_no, amount or 0, registered, last, headers)
    # the registry's own checks of the bodies, for the columns found fine so far (and
    # not sex and birth date a bad national ID was to give)
    said = {e.column for e in errors}
    if nid and parsed_id is None:
        said |= {named.get(c, c) for c in ("sex", "birth_date") if not v.get(c, "")}
    for kind, body in row.items("imp-check"):
        for p in REGISTRY.validate(kind, body):
            column = named.get(FIELD_COLUMN.get(p.field, p.field), p.field)
            if column not in said:
                said.add(column)
                errors.append(LineError(line, column, problem=_without_field(p)))
    return (None, errors) if errors else (row, [])


def _without_field(p: Problem) -> Problem:
    """The problem without its leading ``field:`` (the column is said beside it)."""
    prefix = f"{p.field}: "
    if p.field and p.message.startswith(prefix):
        return Problem(p.code, p.message[len(prefix):], p.field)
    return p


def _date(text: str, today: dt.date, column: str, err: Any) -> str:
    """``YYYY-MM-DD`` of a date written 2024-03-07, 2024/3/7, 2024.03.07 or 20240307
    (a time after it is dropped); "" (and an error) if it is no date or after today."""
    if not text:
        return ""
    m = _DATE.match(text) or _DATE_COMPACT.match(text)
    try:
        day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
    except ValueError:
        day = None
    if day is None:
        err(column, "import.date", value=text)
        return ""
    if day > today:
        err(column, "import.future", value=text)
        return ""
    return day.isoformat()


def _balance(text: str, err: Any) -> Fen | None:
    """Fen of a balance in yuan (``123.45``, ``¥1,234.5``); None (and an error) if it is
    not a number, negative, finer than a fen or more than one event may carry."""
    if not text:
        err("balance", "import.required")
        return None
    t = text.replace("¥", "").replace("￥", "").replace(",", "").replace(" ", "")
    m = _AMOUNT.match(t)
    if not m:
        err("balance", "import.balance_format", value=text)
        return None
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    if len(frac) > 2:
        err("balance", "import.balance_decimals", value=text)
        return None
    if len(whole) > 12:
        err("balance", "import.balance_too_large", value=text, limit=yuan(MAX_AMOUNT))
        return None
    fen = int(whole) * 100 + int(frac.ljust(2, "0"))
    if sign == "-" and fen:
        err("balance", "import.balance_negative", value=text)
        return None
    if fen > MAX_AMOUNT:
        err("balance", "import.balance_too_large", value=text, limit=yuan(MAX_AMOUNT))
        return None
    return fen


def _repeats(line: int, v: dict[str, str], seen: dict[str, dict[str, int]],
             named: dict[str, str]) -> list[LineError]:
    """The old patient number, card and national ID each on one line of the file only."""
    out = []
    for col, first in seen.items():
        value = v.get(col, "")
        if col == "national_id":
            value = value.upper()
        if not value:
            continue
        if value in first:
            shown = nationalid.mask(value) if col == "national_id" else value
            out.append(LineError(line, named[col], "import.repeat",
                                 (("value", shown), ("other", str(first[value])))))
        else:
            first[value] = line
    return out


# ---------------------------------------------------------------------------- check
def national_ids(state: State) -> dict[str, str]:
    """Registered national ID → patient id (the first record holding it), by the number's
    keyed tag (``t:…``) or, in a legacy store, the clear number (``c:…``)."""
    out: dict[str, str] = {}
    for p in sorted(state.all(Patient), key=lambda p: p.registered_at):
        if key := id_key(p):
            out.setdefault(key, p.patient_id)
    return out


def _id_keys(nid: str, keys: PatientKeys) -> tuple[str, str]:
    return "t:" + keys.id_tag(nid), "c:" + nid


def check_rows(rows: Iterable[Row], state: State, keys: PatientKeys,
               ids: dict[str, str] | None = None) -> Checked:
    """Good lines against what the store holds: already imported, or clashing with it."""
    out = Checked()
    ids = national_ids(state) if ids is None else ids
    for r in rows:
        p = state.get(Patient, r.patient_id)
        if p is not None and p.registered_at:
            out.skipped.append(r)
            continue
        bad = False
        card = state.get(Card, r.card_no) if r.card_no else None
        if card is not None and card.issued_at:
            out.errors.append(LineError(r.line, r.header("card_no"), "import.card_taken",
                                        (("value", r.card_no), ("pid", card.patient_id))))
            bad = True
        taken = next((ids[k] for k in _id_keys(r.national_id, keys) if k in ids), "") \
            if r.national_id else ""
        if taken:
            out.errors.append(LineError(r.line, r.header("national_id"), "import.id_taken",
                                        (("value", nationalid.mask(r.national_id)),
                                         ("pid", taken))))
            bad = True
        if not bad:
            out.todo.append(r)
    return out


def fold_data(state: State, rows: Iterable[tuple[int, bytes]],
              ids: dict[str, str] | None = None) -> int:
    """Fold stored events into ``state`` (and the national IDs they register into
    ``ids``); the last position folded (0 if none)."""
    last = 0
    for pos, data in rows:
        last = pos
        try:
            ev = decode_event(bytes(data))
        except ProtocolError:  # damaged bytes: the reconciler flags them, nothing to fold
            continue
        fact = REGISTRY.apply(state, ev)
        if (ids is not None and isinstance(fact, Fact)
                and isinstance(fact.body, Registered | Updated) and (key := id_key(fact.body))):
            ids.setdefault(key, fact.body.patient_id)
    return last


async def fold_store(store: CentralStore, page: int = 5000) -> tuple[State, int]:
    """Every stored event folded by the one fold, and the cursor position reached."""
    state, pos = State(), 0
    while True:
        rows = await store.events_since(pos, page)
        if not rows:
            return state, pos
        pos = fold_data(state, ((p, d) for p, d, _ in rows))


# ----------------------------------------------------------------------------- sign
def _chunks(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


async def import_rows(store: CentralStore, key: SigningKey, rows: list[Row], state: State,
                      pos: int, *, batch_id: str, operator: str, keys: PatientKeys,
                      batch_rows: int = DEFAULT_BATCH_ROWS) -> Imported:
    """Sign ``rows`` as central's events, ``batch_rows`` lines per store transaction.

    Each transaction first folds what was stored since ``pos`` and checks its lines
    again: lines found imported meanwhile are skipped; a line made bad meanwhile raises
    :class:`Changed` (the batches before it stay: a re-run goes on from there).
    """
    if not ID_RE.match(batch_id):
        raise ValueError(f"{batch_id!r} is not a valid batch id")
    done = Imported()
    ids = national_ids(state)  # kept up to date with what each batch folds
    for chunk in _chunks(rows, batch_rows):
        checked = Checked()

        async def plan(query: Query, chunk: list[Row] = chunk
                       ) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
            nonlocal pos, checked
            new = await query("SELECT pos, data FROM events WHERE pos > ? ORDER BY pos",
                              (pos,))
            pos = max(pos, fold_data(state, ((int(p), d) for p, d in new), ids))
            checked = check_rows(chunk, state, keys, ids)
            if checked.errors:
                raise Changed(checked.errors)
            return [it for r in checked.todo for it in r.items(batch_id, keys)], []

        events = await store.append_central(key, plan, operator=operator)
        done.patients += len(checked.todo)
        done.cards += checked.cards
        done.amount += checked.total
        done.skipped += len(checked.skipped)
        done.events += len(events)
    done.pos = pos
    return done


# ------------------------------------------------------------------------------ report
class Said(Protocol):
    """A bad line (or entry) of a file, said in the operator's language."""

    def say(self, tr: Translator) -> str: ...


class Report:
    """What a central file command (``import``, ``catalogue import``) prints, and the exit
    status each way it ends returns: one copy for both commands.

    Results go to ``out``; why it stopped and each bad line go to ``err``.  Exit status:
    0 done, dry run or nothing to do (:meth:`finish`); 1 bad lines or a bad file,
    nothing written (:meth:`refuse`, :meth:`fail`); 2 usage (:meth:`fail`).
    """

    def __init__(self, tr: Translator, out: TextIO, err: TextIO) -> None:
        self.tr, self.out, self.err = tr, out, err

    def fail(self, key: str, code: int, **values: object) -> int:
        """Why the command stops (``key`` in the string table): exit status ``code``."""
        print(f"onecard-central: {self.tr(key, **values)}", file=self.err)
        return code

    def ignored(self, columns: Sequence[str]) -> None:
        """The file's columns the command does not read, if any."""
        if columns:
            print(self.tr("import.ignored_columns", columns=", ".join(columns)),
                  file=self.out)

    def refuse(self, errors: Sequence[Said], count_key: str = "", lines: int = 0) -> int:
        """Every bad line's problems, then (with ``count_key``) how many problems on how
        many ``lines``: nothing was written, exit status 1."""
        for e in errors:
            print(e.say(self.tr), file=self.err)
        if count_key:
            print(self.tr(count_key, errors=len(errors), lines=lines), file=self.err)
        return 1

    def finish(self, lines: Iterable[str], closing: str, **values: object) -> int:
        """The summary ``lines``, then the closing message (done, dry run, nothing to
        do): exit status 0."""
        for line in lines:
            print(line, file=self.out)
        print(self.tr(closing, **values), file=self.out)
        return 0

    async def central_key(self, cfg: CentralConfig, store: CentralStore) -> SigningKey | None:
        """Central's signing key, enrolled in the store; None (said why: exit status 2)
        if the store belongs to another key."""
        key = load_key(cfg.key_file)
        try:
            await enrol_central(store, key)
        except ValueError as exc:
            self.fail("import.key_mismatch", 2, why=exc)
            return None
        return key


# ------------------------------------------------------------------------------ command
async def run(cfg: CentralConfig, path: Path, *, dry_run: bool = False,
              operator: str = "", batch_rows: int = DEFAULT_BATCH_ROWS,
              now: dt.datetime | None = None, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    """``onecard-central import``: 0 done (or nothing to do), 1 bad lines or a bad file
    (nothing imported), 2 usage (no such file, bad option, key not central's)."""
    tr = Translator(getattr(cfg, "language", "en"))
    report = Report(tr, out or sys.stdout, err or sys.stderr)
    fail = report.fail
    now = now or dt.datetime.now(dt.UTC)
    if not 0 < len(operator) <= 64:
        return fail("import.bad_operator", 2)
    if not 0 < batch_rows <= MAX_BATCH_ROWS:
        return fail("import.bad_batch", 2, max=MAX_BATCH_ROWS)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return fail("import.no_file", 2, path=path)
    except OSError as exc:
        return fail("import.unreadable", 2, path=path, why=exc.strerror or exc)
    try:
        parsed = read_rows(decode_text(data, str(path)), now.date(), str(path))
    except ImportFailed as exc:
        return fail(exc.key, 1, **exc.values)
    report.ignored(parsed.ignored)
    try:
        keys = central_keys(cfg)
    except CentralConfigError as exc:
        return fail("import.no_keys", 2, why=exc)
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        state, pos = await fold_store(store)
        checked = check_rows(parsed.rows, state, keys)
        errors = sorted(parsed.errors + checked.errors, key=lambda e: e.line)
        if errors:
            return report.refuse(errors, "import.errors", len({e.line for e in errors}))
        batch_id = new_batch_id(data, now)
        summary: list[tuple[str, dict[str, object]]] = [
                   ("import.summary.file", {"path": path}),
                   ("import.summary.rows", {"n": parsed.lines}),
                   ("import.summary.skipped", {"n": len(checked.skipped)})]
        if dry_run or not checked.todo:
            figures = _figures(len(checked.todo), checked.cards, checked.total)
            return report.finish((tr(line, **values) for line, values in [*summary, *figures]),
                                 "import.dry_run" if dry_run else "import.nothing")
        key = await report.central_key(cfg, store)
        if key is None:
            return 2
        try:
            done = await import_rows(store, key, checked.todo, state, pos, batch_id=batch_id,
                                     operator=operator, keys=keys, batch_rows=batch_rows)
        except Changed as exc:
            report.refuse(exc.errors)
            return fail("import.changed", 1)
        except (sqlite3.Error, OSError) as exc:  # the batch rolled back; those before stay
            return fail("import.stopped", 1, why=exc)
        summary[2] = ("import.summary.skipped", {"n": len(checked.skipped) + done.skipped})
        summary += [*_figures(done.patients, done.cards, done.amount),
                    ("import.summary.batch", {"batch": batch_id}),
                    ("import.summary.events", {"n": done.events})]
        return report.finish((tr(line, **values) for line, values in summary), "import.done")
    finally:
        await store.close()


def _figures(patients: int, cards: int, total: Fen) -> list[tuple[str, dict[str, object]]]:
    return [("import.summary.patients", {"n": patients}), ("import.summary.cards", {"n": cards}),
            ("import.summary.total", {"amount": yuan(total)})]
