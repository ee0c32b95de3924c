"""``onecard-central catalogue``: publish the hospital's catalogue from its CSV export.

Theory of operation
-------------------
The catalogue (:mod:`protocol.catalogue`) is signed by central as numbered versions; a
counter prices from the newest complete version it holds.  ``catalogue import PATH``
makes the next version from the hospital's export (format: ``docs/catalogue.md``):

1. **Read** (:func:`read_files`, pure).  PATH is a folder holding ``items.csv`` and
   optionally ``depts.csv``, ``doctors.csv``, ``sessions.csv`` and ``templates.csv``, or
   a single items file.  Each file is UTF-8 (with or without a BOM) or GB18030
   (:func:`central.importer.decode_text`), with a header row in English or Chinese
   (:data:`ALIASES`).  Each line becomes the wire map of its entry
   (:class:`~protocol.catalogue.ItemEntry` …): prices in yuan become fen by exact
   decimal arithmetic, Chinese words for types and periods become the protocol's, and
   empty pinyin initials are computed (:func:`edge_node.search.initials`).  The map is
   then checked by the protocol's own decode, so central never signs what a counter
   would refuse.  Every problem is an :class:`EntryError` naming file, line and column.
2. **Check the whole** (:func:`check`, pure).  Codes once per file; every department,
   doctor, fee and item named is in the catalogue; a drug is dispensed by a pharmacy;
   a template's lines agree on its name and type, list drugs (prescriptions) or no drugs
   (requisitions), and stay within each drug's dose maxima.  Lists a folder does not
   hold are **carried over** from the current version (a price update is just
   ``items.csv``): a version is always the whole catalogue.
3. **Publish** (:func:`publish`).  Only if nothing is bad: in one store transaction
   (:meth:`~central.store.CentralStore.append_central`) the version is found again
   (the newest central published + 1) and the header and pages of
   :func:`protocol.catalogue.publication` are signed.  A crash leaves the whole version
   or none; counters receive it by ordinary sync and move to it once every page is in.

``--dry-run`` stops after step 2 and writes nothing.  ``catalogue show`` prints the
current version.  Messages are the ``catalogue.`` strings of :mod:`edge_node.i18n`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from central.config import CentralConfig
from central.importer import ImportFailed, Report, decode_text
from central.store import CentralStore, Query, Statements
from edge_node.i18n import Translator
from protocol import catalogue as cat
from protocol.core import State
from protocol.domain import REGISTRY
from protocol.errors import Problem, ProtocolError
from protocol.event import CENTRAL, decode_event
from protocol.fields import MAX_AMOUNT, Body, decode
from protocol.money import yuan

Fen = int

#: The sample catalogue shipped with onecard (a county hospital's, for demos and trials).
SAMPLE = Path(__file__).resolve().parent / "data" / "catalogue"

#: The lists of a catalogue, in the order they are read and checked.
LISTS = ("depts", "items", "doctors", "sessions", "templates")
#: Each file's columns (the entry's fields; templates.csv: one row per template line).
COLUMNS: dict[str, tuple[str, ...]] = {
    "items": ("code", "type", "name", "pinyin", "unit", "price", "insurance", "dept", "form",
              "strength", "dose_unit", "max_single", "max_daily", "stock_unit", "allergen"),
    "depts": ("code", "name", "pinyin", "type"),
    "doctors": ("doctor_id", "name", "dept", "title", "fee_code"),
    "sessions": ("doctor_id", "weekday", "period", "capacity"),
    "templates": ("code", "name", "type", "dept", "item", "qty", "dose", "per_day", "days"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "items": ("code", "type", "name", "unit", "price"),
    "depts": ("code", "name", "type"),
    "doctors": ("doctor_id", "name", "dept"),
    "sessions": ("doctor_id", "weekday", "period"),
    "templates": ("code", "name", "type", "item", "qty"),
    "template_line": ("code", "qty"),  # (a templates.csv line's item, as a TemplateLine)
}
ENTRY: dict[str, type[Body]] = {"items": cat.ItemEntry, "depts": cat.DeptEntry,
                                "doctors": cat.DoctorEntry, "sessions": cat.SessionEntry,
                                "templates": cat.TemplateEntry}
INTEGERS = frozenset({"max_single", "max_daily", "weekday", "capacity", "qty", "dose",
                      "per_day", "days"})
#: Chinese header names a hospital's export uses (any file; ``科室`` is the department
#: an entry belongs to or is executed by).
ALIASES = {
    "编码": "code", "代码": "code", "项目编码": "code", "科室编码": "code", "模板编码": "code",
    "名称": "name", "项目名称": "name", "科室名称": "name", "模板名称": "name", "姓名": "name",
    "类别": "type", "类型": "type", "项目类别": "type",
    "拼音码": "pinyin", "拼音": "pinyin", "拼音首字母": "pinyin",
    "单位": "unit", "计价单位": "unit",
    "单价": "price", "价格": "price", "单价(元)": "price", "单价（元）": "price",
    "医保类别": "insurance", "医保": "insurance",
    "科室": "dept", "执行科室": "dept", "所属科室": "dept",
    "剂型": "form", "规格": "strength",
    "剂量单位": "dose_unit", "最大单次剂量": "max_single", "单次极量": "max_single",
    "最大日剂量": "max_daily", "日极量": "max_daily",
    "库存单位": "stock_unit", "过敏类别": "allergen", "过敏分类": "allergen",
    "工号": "doctor_id", "医生工号": "doctor_id", "医生": "doctor_id",
    "职称": "title", "挂号费项目": "fee_code", "挂号项目": "fee_code",
    "星期": "weekday", "时段": "period", "限号": "capacity", "号源数": "capacity",
    "项目": "item", "项目编码(明细)": "item", "明细项目": "item",
    "数量": "qty", "单次剂量": "dose", "每日次数": "per_day", "天数": "days",
}
#: Words a hospital writes for the protocol's values (English ones are taken as they are).
VALUES: dict[str, dict[str, str]] = {
    "items.type": {"挂号": "registration", "挂号费": "registration", "诊查": "consultation",
                   "诊查费": "consultation", "服务": "service", "治疗": "service",
                   "检查": "exam", "检验": "lab", "化验": "lab", "药品": "drug",
                   "西药": "drug", "中成药": "drug"},
    "depts.type": {"临床": "clinic", "临床科室": "clinic", "检验": "lab", "检验科": "lab",
                   "检查": "exam", "医技": "exam", "检查科室": "exam", "药房": "pharmacy",
                   "行政": "admin"},
    "templates.type": {"申请单": "requisition", "检查检验": "requisition",
                       "检查检验申请": "requisition", "处方": "prescription"},
    "sessions.period": {"上午": "am", "下午": "pm", "晚上": "night", "夜间": "night"},
    "sessions.weekday": {**{f"{p}{d}": str(i) for p in ("周", "星期") for i, d in
                            enumerate("一二三四五六日", 1)}, "周天": "7", "星期天": "7",
                         **{d: str(i) for i, d in enumerate(
                             ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), 1)}},
    "items.insurance": {"甲类": "甲", "乙类": "乙", "丙类": "丙", "自费": "", "无": "",
                        "-": ""},
}
_PRICE = re.compile(r"^(\d+)(?:\.(\d+))?$")
_INT = re.compile(r"^\d+$")


class CatalogueFailed(ImportFailed):
    """The import cannot go on (a file unusable as a whole, the store changed …)."""


# ------------------------------------------------------------------------------ values
@dataclass(frozen=True, slots=True)
class EntryError:
    """One problem with one line of one file (``column`` "" when the line as a whole).

    ``carried`` (a version number) instead of a line: an entry carried over from that
    version, named by its ``code``.
    """

    file: str
    line: int
    column: str
    key: str = ""  # a ``catalogue.`` (or ``import.``) string …
    values: tuple[tuple[str, str], ...] = ()
    problem: Problem | None = None  # … or the protocol's problem with the entry
    carried: int = 0
    code: str = ""

    def say(self, tr: Translator) -> str:
        if self.problem is not None:
            message = tr.problem(self.problem)
        else:
            message = tr(self.key, **dict(self.values))
        if self.carried:
            return tr("catalogue.carried_error", file=self.file, code=self.code,
                      version=self.carried, column=self.column, message=message)
        if not self.column:
            return tr("catalogue.row_error", file=self.file, line=self.line, message=message)
        return tr("catalogue.error", file=self.file, line=self.line, column=self.column,
                  message=message)


@dataclass(slots=True)
class Src:
    """Where an entry came from: a file's line (its header names as written), or a
    version it is carried over from."""

    file: str
    line: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    carried: int = 0
    code: str = ""

    def error(self, column: str, key: str = "", problem: Problem | None = None,
              **values: object) -> EntryError:
        return EntryError(self.file, self.line, self.headers.get(column, column), key,
                          tuple((k, str(v)) for k, v in values.items()), problem,
                          self.carried, self.code)


@dataclass(slots=True)
class Entry:
    """One entry's wire map, where it came from (a template: each line's too).

    A bad line is kept too (``ok`` false, its map as far as it could be read): what
    names it is then not said to be missing, only the line itself is refused.
    """

    wire: dict[str, Any]
    src: Src
    lines: list[Src] = field(default_factory=list)
    ok: bool = True


@dataclass(slots=True)
class Parsed:
    """What :func:`read_files` made of the export."""

    entries: dict[str, list[Entry]] = field(default_factory=dict)
    errors: list[EntryError] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # list → the path read
    lines: dict[str, int] = field(default_factory=dict)  # data lines read per list
    ignored: list[str] = field(default_factory=list)  # "file: header" not used

    def wires(self) -> dict[str, list[dict[str, Any]]]:
        return {name: [e.wire for e in self.entries.get(name, [])] for name in LISTS}


#: What identifies an entry in its list (a repeat is refused).
KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "items": lambda w: w.get("code"), "depts": lambda w: w.get("code"),
    "doctors": lambda w: w.get("doctor_id"), "templates": lambda w: w.get("code"),
    "sessions": lambda w: (w.get("doctor_id"), w.get("weekday"), w.get("period"))}
KEY_COLUMN = {"items": "code", "depts": "code", "doctors": "doctor_id", "templates": "code",
              "sessions": "weekday"}


# ------------------------------------------------------------------------------- read
def source_files(path: Path) -> dict[str, Path]:
    """The files of an export: ``{list: path}``; CatalogueFailed when there is no
    items file (a folder without ``items.csv``), FileNotFoundError when no ``path``."""
    if not path.exists():
        raise FileNotFoundError(str(path))
    if not path.is_dir():
        return {"items": path}
    found = {name: path / f"{name}.csv" for name in LISTS if (path / f"{name}.csv").is_file()}
    if "items" not in found:
        raise CatalogueFailed("catalogue.no_items", path=path)
    return found


def read_files(files: dict[str, Path]) -> Parsed:
    """Every file read, decoded and turned into entries (bad lines as errors)."""
    texts = {}
    for name, p in files.items():
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise CatalogueFailed("import.unreadable", path=p,
                                  why=exc.strerror or exc) from None
        texts[name] = (p.name, decode_text(data, p.name, gb18030=True,
                                           failed="catalogue.not_text"))
    return read_texts(texts)


def read_texts(texts: dict[str, tuple[str, str]]) -> Parsed:
    """``{list: (file name, text)}`` as entries; CatalogueFailed for a file unusable as
    a whole (no header, a required column missing)."""
    out = Parsed()
    for name in LISTS:
        if name in texts:
            fname, text = texts[name]
            out.files[name] = fname
            _read_one(name, fname, text, out)
    return out


def _read_one(name: str, fname: str, text: str, out: Parsed) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[Src, dict[str, str]]] = []
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
        if header is None:
            raise CatalogueFailed("import.empty", path=fname)
        columns = _columns(name, fname, header, out)
        headers = {c: header[i].strip() for c, i in columns.items()}
        start = reader.line_num + 1
        count = 0
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            count += 1
            src = Src(fname, line, headers)
            if len(cells) < len(header) or any(c.strip() for c in cells[len(header):]):
                out.errors.append(src.error("", "import.columns", got=len(cells),
                                            want=len(header)))
                continue
            rows.append((src, {c: cells[i].strip() for c, i in columns.items()}))
    except csv.Error as exc:
        raise CatalogueFailed("import.not_csv", path=fname, why=str(exc)) from None
    out.lines[name] = count
    if name == "templates":
        out.entries[name] = _templates(rows, out.errors)
        return
    entries = []
    first: dict[Any, int] = {}
    for src, values in rows:
        wire, errors = _wire(name, src, values)
        said = {e.column for e in errors}
        got = decode(ENTRY[name], wire)
        if isinstance(got, list):  # the protocol's word on the columns not said yet
            for p in got:
                e = _problem_error(src, p, values)
                if e.column not in said:
                    said.add(e.column)
                    errors.append(e)
        errors += _repeat(name, src, wire, first)
        out.errors += errors
        entries.append(Entry(wire, src, ok=not errors))
    out.entries[name] = entries


def _repeat(name: str, src: Src, wire: dict[str, Any], first: dict[Any, int]
            ) -> list[EntryError]:
    """An entry's key (code …) on one line of its file only."""
    key = KEYS[name](wire)
    if key is None or (isinstance(key, tuple) and None in key):
        return []
    if key in first:
        shown = " ".join(str(x) for x in key) if isinstance(key, tuple) else key
        return [src.error(KEY_COLUMN[name], "catalogue.repeat", value=shown,
                          other=first[key])]
    first[key] = src.line
    return []


def _columns(name: str, fname: str, header: list[str], out: Parsed) -> dict[str, int]:
    columns: dict[str, int] = {}
    for i, raw in enumerate(header):
        text = raw.strip()
        key = text.lower().replace(" ", "_")
        col = key if key in COLUMNS[name] else ALIASES.get(text, "")
        if col not in COLUMNS[name]:
            if text:
                out.ignored.append(f"{fname}: {text}")
            continue
        if col in columns:
            raise CatalogueFailed("catalogue.duplicate_column", path=fname, column=text)
        columns[col] = i
    missing = [c for c in REQUIRED[name] if c not in columns]
    if missing:
        raise CatalogueFailed("catalogue.missing_columns", path=fname,
                              columns=", ".join(missing))
    return columns


def _wire(name: str, src: Src, values: dict[str, str]) -> tuple[dict[str, Any],
                                                                 list[EntryError]]:
    """A line's values as the entry's wire map (empty optional values left out)."""
    wire: dict[str, Any] = {}
    errors: list[EntryError] = []
    for col, text in values.items():
        if col == "item" or (not text and col not in REQUIRED[name]):
            continue
        if not text:
            errors.append(src.error(col, "import.required"))
            continue
        words = VALUES.get(f"{name}.{col}")
        value: Any = words.get(text, words.get(text.lower(), text)) if words else text
        if col == "price":
            value = price_fen(value)
            if isinstance(value, tuple):
                errors.append(src.error(col, value[0], value=text, limit=yuan(MAX_AMOUNT)))
                continue
        elif col in INTEGERS:
            if not _INT.match(value) or len(value) > 9:
                errors.append(src.error(col, "catalogue.integer", value=text))
                continue
            value = int(value)
        if value != "" or col in REQUIRED[name]:
            wire[col] = value
    if name in ("items", "depts") and not wire.get("pinyin") and wire.get("name"):
        wire["pinyin"] = pinyin_initials(wire["name"])
    return wire, errors


def price_fen(text: str) -> Fen | tuple[str]:
    """Fen of a price in yuan as written (``18.50``, ``¥1,234.5``, ``0``), by exact
    decimal arithmetic; ``(error key,)`` when it is no amount, finer than a fen or
    more than an event may carry."""
    t = text.replace("¥", "").replace("￥", "").replace(",", "").replace(" ", "")
    if t.startswith("-") and _PRICE.match(t[1:]):
        return ("catalogue.price_negative",)
    m = _PRICE.match(t)
    if not m:
        return ("catalogue.price_format",)
    whole, frac = m.group(1), m.group(2) or ""
    if len(frac) > 2:
        return ("catalogue.price_decimals",)
    if len(whole) > 12:
        return ("catalogue.price_too_large",)
    fen = int(whole) * 100 + int(frac.ljust(2, "0"))
    return ("catalogue.price_too_large",) if fen > MAX_AMOUNT else fen


def pinyin_initials(name: str) -> str:
    """A name's pinyin initials (阿莫西林胶囊 → ``amxljn``; letters and digits kept),
    at most the 32 characters an entry holds."""
    from edge_node.search import initials, normalise

    got = initials(name)
    return (got[0] if got else normalise(name))[:32]


def _problem_error(src: Src, p: Problem, values: dict[str, str],
                   column: str = "") -> EntryError:
    """The protocol's problem with an entry's field, said plainly for a file's column
    (``values``: the line's cells as written)."""
    col = column or _column(p)
    variant = p.values.get("variant", "")
    if p.code == "field.choice":
        choices = str(p.values.get("choices", "")).removesuffix(", ")
        return src.error(col, "catalogue.choice", value=values.get(col, ""), choices=choices)
    if p.code == "field.range" and variant == "length_above":
        return src.error(col, "catalogue.too_long", max=p.values.get("bound", ""),
                         n=p.values.get("value", ""))
    if p.code == "field.range" and variant in ("above", "below"):
        return src.error(col, f"catalogue.range_{variant}", bound=p.values.get("bound", ""),
                         value=p.values.get("value", ""))
    return src.error(col, problem=_without_field(p))


def _column(p: Problem) -> str:
    """The column a protocol problem is about (``lines[2].qty`` → ``qty``)."""
    return p.field.rsplit(".", 1)[-1].split("[", 1)[0]


def _without_field(p: Problem) -> Problem:
    """The problem without its leading ``field:`` (the column is said beside it)."""
    prefix = f"{p.field}: "
    if p.field and p.message.startswith(prefix):
        return Problem(p.code, p.message[len(prefix):], p.field, p.values)
    return p


def _templates(rows: list[tuple[Src, dict[str, str]]],
               errors: list[EntryError]) -> list[Entry]:
    """templates.csv's lines grouped by template code (in the order first seen)."""
    groups: dict[str, Entry] = {}
    for src, values in rows:
        line_values: dict[str, str] = {
            c: values[c] for c in ("qty", "dose", "per_day", "days") if c in values}
        if values.get("item"):
            line_values["code"] = values["item"]
        head_values: dict[str, str] = {
            c: values[c] for c in ("code", "name", "type", "dept") if c in values}
        head, errs = _wire("templates", src, head_values)
        line, line_errs = _wire("template_line", src, line_values)
        if not values.get("item"):
            line_errs.insert(0, src.error("item", "import.required"))
        errs += line_errs
        said = {e.column for e in errs}
        got = decode(cat.TemplateLine, line)
        for p in got if isinstance(got, list) else ():
            e = _problem_error(src, p, values, "item" if _column(p) == "code" else "")
            if e.column not in said:
                said.add(e.column)
                errs.append(e)
        said_head = {e.column for e in errs}
        got_head = decode(cat.TemplateEntry, {**head, "lines": [line]})
        for p in got_head if isinstance(got_head, list) else ():
            e = _problem_error(src, p, values)
            if not p.field.startswith("lines") and e.column not in said_head:
                said_head.add(e.column)
                errs.append(e)
        code = str(head.get("code", ""))
        entry = groups.get(code)
        if entry is not None:
            for col in ("name", "type", "dept"):
                if col in head and head.get(col, "") != entry.wire.get(col, ""):
                    errs.append(src.error(col, "catalogue.template_mixed",
                                          other=entry.lines[0].line))
        errors += errs
        if entry is None:
            entry = groups[code] = Entry({**head, "lines": []}, src)
        entry.wire["lines"].append(line)
        entry.lines.append(src)
        entry.ok = entry.ok and not errs
    for entry in groups.values():
        whole = decode(cat.TemplateEntry, entry.wire)
        if entry.ok and isinstance(whole, list):  # what only the whole says (30 lines …)
            entry.ok = False
            for p in whole:
                where = entry.lines[-1] if p.field == "lines" else entry.src
                errors.append(_problem_error(where, p, {},
                                             "item" if p.field == "lines" else ""))
    return list(groups.values())


# ---------------------------------------------------------------------------- check
def carry_over(parsed: Parsed, state: State) -> int:
    """Fill the lists the export does not hold from the current version in ``state``;
    the version carried from (0: none)."""
    head = cat.head(state)
    missing = [n for n in LISTS if n not in parsed.files]
    if not head.version or not missing:
        return 0
    v, number = head.version, head.number
    made: dict[str, list[Entry]] = {
        "depts": [Entry({"code": d.code, "name": d.name, "pinyin": d.pinyin, "type": d.type},
                        Src("depts", carried=number, code=d.code))
                  for d in state.all(cat.Department) if d.version == v],
        "doctors": [Entry({k: val for k, val in (
            ("doctor_id", d.doctor_id), ("name", d.name), ("dept", d.dept),
            ("title", d.title), ("fee_code", d.fee_code)) if val},
            Src("doctors", carried=number, code=d.doctor_id))
            for d in state.all(cat.Doctor) if d.version == v],
        "sessions": [Entry({"doctor_id": s.doctor_id, "weekday": int(s.weekday),
                            "period": s.period, "capacity": s.capacity},
                           Src("sessions", carried=number,
                               code=f"{s.doctor_id} {s.weekday} {s.period}"))
                     for s in state.all(cat.DoctorSession) if s.version == v],
        "templates": [Entry({k: val for k, val in (
            ("code", t.code), ("name", t.name), ("type", t.type), ("dept", t.dept)) if val}
            | {"lines": [{"code": c, "qty": q, "dose": d, "per_day": p, "days": n}
                         for c, q, d, p, n in t.parsed()]},
            Src("templates", carried=number, code=t.code))
            for t in state.all(cat.Template) if t.version == v],
    }
    for name in missing:
        entries = sorted(made.get(name, []), key=lambda e: e.src.code)
        for e in entries:
            e.lines = [e.src] * len(e.wire.get("lines", []))
        parsed.entries[name] = entries
    return number


def check(parsed: Parsed) -> list[EntryError]:
    """What only the whole catalogue can say: repeated codes, and every department,
    doctor, fee and item named being in it (the errors, in file and line order)."""
    errors: list[EntryError] = []
    depts = {e.wire.get("code"): e.wire.get("type", "") for e in parsed.entries.get("depts", [])}
    items = {e.wire.get("code"): e.wire for e in parsed.entries.get("items", [])}
    doctors = {e.wire.get("doctor_id") for e in parsed.entries.get("doctors", [])}
    for e in parsed.entries.get("items", []):
        d = e.wire.get("dept", "")
        if d and d not in depts:
            errors.append(e.src.error("dept", "catalogue.unknown_dept", value=d))
        elif d and e.wire.get("type") == "drug" and depts[d] not in ("pharmacy", ""):
            errors.append(e.src.error("dept", "catalogue.drug_dept", value=d))
    for e in parsed.entries.get("doctors", []):
        w = e.wire
        if w.get("dept") and w["dept"] not in depts:
            errors.append(e.src.error("dept", "catalogue.unknown_dept", value=w["dept"]))
        fee = w.get("fee_code", "")
        if fee and fee not in items:
            errors.append(e.src.error("fee_code", "catalogue.unknown_item", value=fee))
        elif fee and items[fee].get("type") not in ("registration", None):
            errors.append(e.src.error("fee_code", "catalogue.fee_type", value=fee))
    for e in parsed.entries.get("sessions", []):
        who = e.wire.get("doctor_id")
        if who and who not in doctors:
            errors.append(e.src.error("doctor_id", "catalogue.unknown_doctor", value=who))
    for e in parsed.entries.get("templates", []):
        errors += _template_errors(e, items, depts)
    return errors


def _list_of(err: EntryError, parsed: Parsed) -> str:
    for name, fname in parsed.files.items():
        if fname == err.file:
            return name
    return err.file if err.file in LISTS else "items"


def _template_errors(e: Entry, items: dict[Any, dict[str, Any]],
                     depts: dict[Any, str]) -> list[EntryError]:
    out = []
    w = e.wire
    if w.get("dept") and w["dept"] not in depts:
        out.append(e.src.error("dept", "catalogue.unknown_dept", value=w["dept"]))
    for line, src in zip(w["lines"], e.lines, strict=True):
        code = line.get("code")
        item = items.get(code)
        if code and item is None:
            out.append(src.error("item", "catalogue.unknown_item", value=code))
        if item is None or item.get("type") is None:
            continue
        drug = item["type"] == "drug"
        if w.get("type") == "prescription" and not drug:
            out.append(src.error("item", "catalogue.template_drug", value=code))
        elif w.get("type") == "requisition" and drug:
            out.append(src.error("item", "catalogue.template_not_drug", value=code))
        dose, per_day = line.get("dose", 0), line.get("per_day", 0)
        single, daily = item.get("max_single", 0), item.get("max_daily", 0)
        if dose and single and dose > single:
            out.append(src.error("dose", "catalogue.template_single", value=code, dose=dose,
                                 max=single, unit=item.get("dose_unit", "")))
        elif dose and per_day and daily and dose * per_day > daily:
            out.append(src.error("per_day", "catalogue.template_daily", value=code,
                                 dose=dose * per_day, max=daily,
                                 unit=item.get("dose_unit", "")))
    return out


# ----------------------------------------------------------------------------- store
def fold_central(state: State, rows: Iterable[tuple[int, bytes]]) -> int:
    """Fold central's catalogue events among ``rows`` into ``state``; the last
    position seen (0 if none)."""
    last = 0
    for pos, data in rows:
        last = max(last, pos)
        try:
            ev = decode_event(bytes(data))
        except ProtocolError:
            continue
        if ev.kind in (cat.PUBLISHED.name, cat.PAGE.name):
            REGISTRY.apply(state, ev)
    return last


_CENTRAL_ROWS = "SELECT pos, data FROM events WHERE node = ? AND pos > ? ORDER BY pos"


async def catalogue_state(store: CentralStore) -> tuple[State, int]:
    """Central's catalogue as it has published it, and the position read up to."""
    state = State()
    rows = await store.read(_CENTRAL_ROWS, (CENTRAL, 0))
    return state, fold_central(state, ((int(p), bytes(d)) for p, d in rows))


def newest_published(state: State) -> int:
    """The newest version central has published (complete or not; 0 before any)."""
    return max((int(v.version) for v in state.all(cat.CatalogueVersion) if v.pages), default=0)


@dataclass(slots=True)
class Plan:
    """What an import will publish."""

    version: int
    charge_at: str
    note: str
    entries: dict[str, list[dict[str, Any]]]
    events: list[tuple[str, dict[str, Any]]]
    carried_from: int = 0
    carried: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return len(self.events) - 1


def plan(parsed: Parsed, state: State, *, charge_at: str | None,
         note: str) -> tuple[Plan, list[EntryError]]:
    """The version the export makes over ``state``, and what is wrong with it."""
    carried = [n for n in LISTS if n not in parsed.files]
    carried_from = carry_over(parsed, state)
    errors = sorted(parsed.errors + check(parsed),
                    key=lambda x: (x.carried, LISTS.index(_list_of(x, parsed)), x.line))
    version = newest_published(state) + 1
    setting = charge_at or cat.head(state).charge_at or "send"
    entries = parsed.wires()
    p = Plan(version, setting, note, entries, cat.publication(version, setting, entries, note),
             carried_from, carried if carried_from else [])
    return p, errors


def _bad_events(events: list[tuple[str, dict[str, Any]]]) -> str:
    """The first problem central's own check finds with the events ("" none)."""
    for kind, body in events:
        problems = REGISTRY.validate(kind, body, CENTRAL)
        if problems:
            return f"{kind}: {problems[0].message}"
    return ""


async def publish(store: CentralStore, key: Any, p: Plan, pos: int, state: State, *,
                  operator: str) -> int:
    """Sign ``p`` in one store transaction: the events signed.  CatalogueFailed when
    another version was published since ``p`` was made (run it again)."""

    async def make(query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
        new = await query(_CENTRAL_ROWS, (CENTRAL, pos))
        fold_central(state, ((int(a), bytes(b)) for a, b in new))
        if newest_published(state) + 1 != p.version:
            raise CatalogueFailed("catalogue.changed", version=newest_published(state))
        return p.events, []

    events = await store.append_central(key, make, operator=operator)
    return len(events)


# ------------------------------------------------------------------------------ command
async def run(cfg: CentralConfig, action: str, *, path: Path | None = None,
              dry_run: bool = False, charge_at: str | None = None, note: str = "",
              operator: str = "", out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    """``onecard-central catalogue import|show``: 0 done, 1 bad lines or a bad file
    (nothing published), 2 usage (no such file, bad option, key not central's)."""
    out = out or sys.stdout
    tr = Translator(getattr(cfg, "language", "en"))
    report = Report(tr, out, err or sys.stderr)
    fail = report.fail
    if action == "show":
        store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
        try:
            state, _pos = await catalogue_state(store)
        finally:
            await store.close()
        show(state, tr, out)
        return 0
    assert path is not None
    if action != "import":
        return 2
    if not dry_run and not 0 < len(operator) <= 64:
        return fail("import.bad_operator", 2)
    if len(note) > 200:
        return fail("catalogue.bad_note", 2)
    if charge_at is not None and charge_at not in cat.CHARGE_AT:
        return fail("catalogue.bad_charge_at", 2, choices=", ".join(cat.CHARGE_AT))
    try:
        files = source_files(path)
        parsed = read_files(files)
    except FileNotFoundError:
        return fail("import.no_file", 2, path=path)
    except ImportFailed as exc:
        return fail(exc.key, 1, **exc.values)
    report.ignored(parsed.ignored)
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        state, pos = await catalogue_state(store)
        p, errors = plan(parsed, state, charge_at=charge_at, note=note)
        if errors:
            return report.refuse(errors, "catalogue.errors",
                                 len({(e.file, e.line, e.code) for e in errors}))
        why = _bad_events(p.events)
        if why:  # a bug here, never the file's: say so rather than sign it
            return fail("catalogue.invalid", 1, why=why)
        lines = summary(p, {n: str(files[n]) for n in files}, tr)
        if dry_run:
            return report.finish(lines, "catalogue.dry_run")
        key = await report.central_key(cfg, store)
        if key is None:
            return 2
        try:
            n = await publish(store, key, p, pos, state, operator=operator)
        except CatalogueFailed as exc:
            return fail(exc.key, 1, **exc.values)
        return report.finish([*lines, tr("catalogue.summary.events", n=n)], "catalogue.done",
                             version=p.version)
    finally:
        await store.close()


def summary(p: Plan, files: dict[str, str], tr: Translator) -> list[str]:
    """The lines that say what a version holds (before or after it is published)."""
    e = p.entries
    out = [tr("catalogue.summary.version", version=p.version)]
    out += [tr("catalogue.summary.file", path=path) for path in files.values()]
    out.append(tr("catalogue.summary.items", n=len(e["items"]),
                  types=_types([i["type"] for i in e["items"]], tr)))
    out += [tr(f"catalogue.summary.{name}", n=len(e[name]))
            for name in ("depts", "doctors", "sessions", "templates")]
    if p.carried:
        out.append(tr("catalogue.summary.carried", version=p.carried_from,
                      lists=", ".join(tr(f"catalogue.list.{n}") for n in p.carried)))
    out.append(tr("catalogue.summary.charge_at", setting=tr(f"catalogue.charge_at.{p.charge_at}")))
    if p.note:
        out.append(tr("catalogue.summary.note", note=p.note))
    out.append(tr("catalogue.summary.pages", n=p.pages))
    return out


def _types(types: Iterable[str], tr: Translator) -> str:
    counts = Counter(types)
    return ", ".join(f"{tr(f'catalogue.type.{t}')} {counts[t]}" for t in cat.ITEM_TYPES
                     if counts[t])


def show(state: State, tr: Translator, out: TextIO,
         when: Callable[[int], str] | None = None) -> None:
    """The current version: number, when published, the charging setting, counts."""
    head = cat.head(state)
    if not head.version:
        print(tr("catalogue.show.none"), file=out)
        return
    v = head.version
    info = state.get(cat.CatalogueVersion, v)
    published = info.published_ms if info is not None else 0
    fmt = when or (lambda ms: dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M"))
    items = [i.type for i in state.all(cat.CatalogueItem) if i.version == v]
    lines = [tr("catalogue.summary.version", version=head.number),
             tr("catalogue.show.published", when=fmt(published) if published else "-"),
             tr("catalogue.summary.charge_at",
                setting=tr(f"catalogue.charge_at.{head.charge_at}")),
             tr("catalogue.summary.items", n=len(items), types=_types(items, tr))]
    for name, rt in (("depts", cat.Department), ("doctors", cat.Doctor),
                     ("sessions", cat.DoctorSession), ("templates", cat.Template)):
        n = sum(1 for r in state.all(rt) if getattr(r, "version", "") == v)
        lines.append(tr(f"catalogue.summary.{name}", n=n))
    if info is not None and info.note:
        lines.append(tr("catalogue.summary.note", note=info.note))
    newest = newest_published(state)
    if newest > head.number:
        lines.append(tr("catalogue.show.incomplete", version=newest))
    for line in lines:
        print(line, file=out)
