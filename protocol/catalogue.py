"""The hospital's catalogue (价目表): services, fees, exams, lab tests and drugs, the
departments, doctors and their sessions, and order templates — signed by central,
versioned, and used offline by every counter.

Theory of operation
-------------------
Central publishes version *V* as one ``catalogue.published`` header (how many pages,
the hospital's order settings) and that many ``catalogue.page`` events, each holding
part of the entries (an event is at most 64 KiB; a few hundred drugs do not fit one).
Every entry is a record keyed by ``(version, code)``, so versions never overwrite each
other and an order can always be read against the version it was priced from.

A version is **complete** once its header and all its pages have folded (pages are
counted once each, whatever order they arrive in); :class:`CatalogueHead` is the
newest complete version, a maximum, so the same events give the same head on every
node in any order.  A counter prices from its head; every order records the version
it priced from (:mod:`protocol.order`) and the counter's rule refuses an order priced
from any other.

Both kinds are central's alone (a counter's is flagged and never folded).  Within one
version an entry sent twice (never by an honest central) keeps the earliest, like
every other claim in the fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol import codec
from protocol.core import (
    CENTRAL_ONLY,
    At,
    Fen,
    Kind,
    Record,
    Ref,
    State,
    Tx,
    earlier,
    no_money,
    no_notice,
    no_report,
    no_rule,
    record,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import MAX_AMOUNT, Body, Field, body, choice, spec, text

ITEM_TYPES = ("registration", "consultation", "service", "exam", "lab", "drug")
INSURANCE = ("甲", "乙", "丙", "")  # the insurance drug/service list class; "" = none
DEPT_TYPES = ("clinic", "lab", "exam", "pharmacy", "admin")
TEMPLATE_TYPES = ("requisition", "prescription")
#: When an order is charged (a hospital setting, signed in the header): when the doctor
#: sends it, or when the lab, exam window or pharmacy executes it.
CHARGE_AT = ("send", "execution")
PERIODS = ("am", "pm", "night")
HEAD = "head"
MAX_VERSION = 99_999_999
LABELS = {"item.registration": ("挂号", "Registration"),
          "item.consultation": ("诊查", "Consultation"), "item.service": ("服务", "Service"),
          "item.exam": ("检查", "Exam"), "item.lab": ("检验", "Lab test"),
          "item.drug": ("药品", "Drug"),
          "dept.clinic": ("临床科室", "Clinic"), "dept.lab": ("检验科", "Laboratory"),
          "dept.exam": ("检查科室", "Exam department"), "dept.pharmacy": ("药房", "Pharmacy"),
          "dept.admin": ("行政", "Administration"),
          "charge_at.send": ("开单即扣费", "charged when sent"),
          "charge_at.execution": ("执行时扣费", "charged when executed")}


def vkey(version: int) -> str:
    """A version as a record key (fixed width: keys sort as the numbers do)."""
    return f"{version:08d}"


# -- records ------------------------------------------------------------------------------
@record("catalogue_versions", ("version",))
@dataclass(frozen=True, slots=True)
class CatalogueVersion(Record):
    version: str
    pages: int = 0  # from the header (0: the header has not arrived)
    received: int = 0  # distinct pages folded
    charge_at: str = "send"
    published_ms: int = 0
    note: str = ""
    header_at: str = ""

    @property
    def complete(self) -> bool:
        return self.pages > 0 and self.received >= self.pages


@record("catalogue_head", ("name",))
@dataclass(frozen=True, slots=True)
class CatalogueHead(Record):
    """The newest complete version this node holds (``version`` "" before any).

    ``complete`` lists every complete version with its ``charge_at``
    (``version=charge_at;…``): each version's membership follows that version's own
    record, so the head (their maximum) is the same in any arrival order — even when a
    second header makes a version incomplete again (never from an honest central).
    """

    name: str
    version: str = ""
    charge_at: str = "send"
    complete: str = ""

    @property
    def number(self) -> int:
        return int(self.version) if self.version else 0

    def versions(self) -> dict[str, str]:
        return dict(p.split("=", 1) for p in self.complete.split(";") if "=" in p)


@record("catalogue_pages", ("version", "page"))
@dataclass(frozen=True, slots=True)
class CataloguePage(Record):
    version: str
    page: str
    at: str = ""


@record("catalogue_items", ("version", "code"), indexes=(("version", "type"),))
@dataclass(frozen=True, slots=True)
class CatalogueItem(Record):
    """One priced item: a fee, service, exam, lab test or drug, in one version."""

    version: str
    code: str
    type: str = ""
    name: str = ""
    pinyin: str = ""  # initials of the name, lower case (拼音首字母): 阿莫西林 → amxl
    unit: str = ""
    price: Fen = 0
    insurance: str = ""  # 甲 / 乙 / 丙 / "" (not on the list)
    dept: str = ""  # the executing department (lab, exam room, pharmacy …)
    # drugs: form, strength, the dose unit and the maxima the doctor's checks use
    form: str = ""
    strength: str = ""
    dose_unit: str = ""
    max_single: int = 0  # in dose units; 0 = no maximum
    max_daily: int = 0
    stock_unit: str = ""
    allergen: str = ""  # the allergy class it belongs to (青霉素类 …), "" none
    at: str = ""


@record("catalogue_depts", ("version", "code"))
@dataclass(frozen=True, slots=True)
class Department(Record):
    version: str
    code: str
    name: str = ""
    pinyin: str = ""
    type: str = ""
    at: str = ""


@record("catalogue_doctors", ("version", "doctor_id"))
@dataclass(frozen=True, slots=True)
class Doctor(Record):
    version: str
    doctor_id: str
    name: str = ""
    dept: str = ""
    title: str = ""
    fee_code: str = ""  # the registration fee item a visit to this doctor charges
    at: str = ""


@record("catalogue_sessions", ("version", "doctor_id", "weekday", "period"))
@dataclass(frozen=True, slots=True)
class DoctorSession(Record):
    """A doctor's clinic session (出诊): a weekday (1 = Monday) and a period."""

    version: str
    doctor_id: str
    weekday: str
    period: str
    capacity: int = 0
    at: str = ""


@record("catalogue_templates", ("version", "code"))
@dataclass(frozen=True, slots=True)
class Template(Record):
    """A requisition or prescription template: its lines as
    ``code*qty*dose*per_day*days;…`` (dose fields 0 for exams and lab tests)."""

    version: str
    code: str
    name: str = ""
    type: str = ""
    dept: str = ""
    lines: str = ""
    at: str = ""

    def parsed(self) -> list[tuple[str, int, int, int, int]]:
        """``(code, qty, dose, per_day, days)`` of each line."""
        out = []
        for part in self.lines.split(";") if self.lines else ():
            code, qty, dose, per_day, days = (part.split("*") + ["0"] * 5)[:5]
            out.append((code, int(qty), int(dose), int(per_day), int(days)))
        return out


# -- bodies -------------------------------------------------------------------------------
def _code(required: bool = True) -> Field:
    return Field(str, required, lo=1 if required else 0, hi=32)


def _count(hi: int = 1_000_000, required: bool = True) -> Field:
    return Field(int, required, lo=0, hi=hi)


@body
class ItemEntry(Body):
    code: str = spec(_code())
    type: str = spec(choice(ITEM_TYPES))
    name: str = spec(text(64))
    pinyin: str = spec(text(32, required=False, lo=0), "")
    unit: str = spec(text(16))
    price: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    insurance: str = spec(choice(INSURANCE, required=False), "")
    dept: str = spec(_code(False), "")
    form: str = spec(text(16, required=False, lo=0), "")
    strength: str = spec(text(32, required=False, lo=0), "")
    dose_unit: str = spec(text(8, required=False, lo=0), "")
    max_single: int = spec(_count(required=False), 0)
    max_daily: int = spec(_count(required=False), 0)
    stock_unit: str = spec(text(16, required=False, lo=0), "")
    allergen: str = spec(text(32, required=False, lo=0), "")

    def problems(self) -> list[Problem]:
        if self.max_single and self.max_daily and self.max_daily < self.max_single:
            return [Problem("catalogue.dose_limits", f"{self.code}: the daily maximum is "
                            "below the single maximum", "max_daily")]
        return []


@body
class DeptEntry(Body):
    code: str = spec(_code())
    name: str = spec(text(64))
    pinyin: str = spec(text(32, required=False, lo=0), "")
    type: str = spec(choice(DEPT_TYPES))


@body
class DoctorEntry(Body):
    doctor_id: str = spec(_code())
    name: str = spec(text(64))
    dept: str = spec(_code())
    title: str = spec(text(32, required=False, lo=0), "")
    fee_code: str = spec(_code(False), "")


@body
class SessionEntry(Body):
    doctor_id: str = spec(_code())
    weekday: int = spec(Field(int, lo=1, hi=7))
    period: str = spec(choice(PERIODS))
    capacity: int = spec(_count(999, False), 0)


@body
class TemplateLine(Body):
    code: str = spec(_code())
    qty: int = spec(Field(int, lo=1, hi=10_000))
    dose: int = spec(_count(required=False), 0)
    per_day: int = spec(_count(24, False), 0)
    days: int = spec(_count(366, False), 0)


@body
class TemplateEntry(Body):
    code: str = spec(_code())
    name: str = spec(text(64))
    type: str = spec(choice(TEMPLATE_TYPES))
    dept: str = spec(_code(False), "")
    lines: tuple[TemplateLine, ...] = spec(Field(list, lo=1, hi=30, item=TemplateLine))


@body
class Published(Body):
    """A catalogue version's header: how many pages follow and the order settings."""

    version: int = spec(Field(int, lo=1, hi=MAX_VERSION))
    pages: int = spec(Field(int, lo=1, hi=10_000))
    charge_at: str = spec(choice(CHARGE_AT))
    note: str = spec(text(200, required=False, lo=0), "")


@body
class Page(Body):
    """Part of a version's entries (any mix of kinds of entry)."""

    version: int = spec(Field(int, lo=1, hi=MAX_VERSION))
    page: int = spec(Field(int, lo=1, hi=10_000))
    items: tuple[ItemEntry, ...] = spec(Field(list, False, lo=0, hi=400, item=ItemEntry), ())
    depts: tuple[DeptEntry, ...] = spec(Field(list, False, lo=0, hi=400, item=DeptEntry), ())
    doctors: tuple[DoctorEntry, ...] = spec(
        Field(list, False, lo=0, hi=400, item=DoctorEntry), ())
    sessions: tuple[SessionEntry, ...] = spec(
        Field(list, False, lo=0, hi=1000, item=SessionEntry), ())
    templates: tuple[TemplateEntry, ...] = spec(
        Field(list, False, lo=0, hi=200, item=TemplateEntry), ())

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for name, entries in (("items", [e.code for e in self.items]),
                              ("depts", [e.code for e in self.depts]),
                              ("doctors", [e.doctor_id for e in self.doctors]),
                              ("templates", [e.code for e in self.templates]),
                              ("sessions", [(e.doctor_id, e.weekday, e.period)
                                            for e in self.sessions])):
            if len(set(entries)) != len(entries):
                out.append(Problem("catalogue.entry_twice",
                                   f"{name}: an entry appears twice in one page", name))
        return out

    def size(self) -> int:
        return (len(self.items) + len(self.depts) + len(self.doctors) + len(self.sessions)
                + len(self.templates))


# -- folds --------------------------------------------------------------------------------
def _complete(tx: Tx, v: CatalogueVersion) -> None:
    """Record whether ``v`` is complete now; the head is the newest complete version."""
    head = tx.get_or_new(CatalogueHead, HEAD)
    versions = head.versions()
    if v.complete:
        versions[v.version] = v.charge_at
    else:
        versions.pop(v.version, None)
    top = max(versions) if versions else ""
    # (put even when unchanged: the record exists once any catalogue event folded, in
    # every order)
    tx.put(head.evolve(version=top, charge_at=versions.get(top, "send"),
                       complete=";".join(f"{k}={c}" for k, c in sorted(versions.items()))))


def _fold_published(tx: Tx, at: At, b: Published) -> None:
    v = tx.get_or_new(CatalogueVersion, vkey(b.version))
    if earlier(at.order, v.header_at):  # a header sent twice: the first one holds
        v = v.evolve(pages=b.pages, charge_at=b.charge_at, note=b.note,
                     published_ms=at.wall, header_at=at.order)
        tx.put(v)
    _complete(tx, v)


def _put_earliest(tx: Tx, rec: Record, at: At) -> None:
    old = tx.get(type(rec), rec.key())
    if old is None or earlier(at.order, old.at):  # type: ignore[attr-defined]
        tx.put(rec.evolve(at=at.order))


def _fold_page(tx: Tx, at: At, b: Page) -> None:
    ver = vkey(b.version)
    page = tx.get(CataloguePage, (ver, str(b.page)))
    v = tx.get_or_new(CatalogueVersion, ver)
    if page is None:
        v = v.evolve(received=v.received + 1)
        tx.put(v)
    if page is None or earlier(at.order, page.at):
        tx.put(CataloguePage(ver, str(b.page), at.order))
    for i in b.items:
        _put_earliest(tx, CatalogueItem(
            ver, i.code, i.type, i.name, i.pinyin, i.unit, i.price, i.insurance, i.dept,
            i.form, i.strength, i.dose_unit, i.max_single, i.max_daily, i.stock_unit,
            i.allergen), at)
    for d in b.depts:
        _put_earliest(tx, Department(ver, d.code, d.name, d.pinyin, d.type), at)
    for doc in b.doctors:
        _put_earliest(tx, Doctor(ver, doc.doctor_id, doc.name, doc.dept, doc.title,
                                 doc.fee_code), at)
    for s in b.sessions:
        _put_earliest(tx, DoctorSession(ver, s.doctor_id, str(s.weekday), s.period,
                                        s.capacity), at)
    for t in b.templates:
        lines = ";".join(f"{x.code}*{x.qty}*{x.dose}*{x.per_day}*{x.days}" for x in t.lines)
        _put_earliest(tx, Template(ver, t.code, t.name, t.type, t.dept, lines), at)
    _complete(tx, v)


def _page_refs(b: Page) -> set[Ref]:
    ver = vkey(b.version)
    out = refs(CatalogueVersion, ver) | refs(CatalogueHead, HEAD) | refs(
        CataloguePage, (ver, str(b.page)))
    out |= {(CatalogueItem, (ver, i.code)) for i in b.items}
    out |= {(Department, (ver, d.code)) for d in b.depts}
    out |= {(Doctor, (ver, d.doctor_id)) for d in b.doctors}
    out |= {(DoctorSession, (ver, s.doctor_id, str(s.weekday), s.period)) for s in b.sessions}
    out |= {(Template, (ver, t.code)) for t in b.templates}
    return out


PUBLISHED = Kind(
    name="catalogue.published", body=Published, signer=CENTRAL_ONLY,
    title=("价目表发布", "Catalogue published"),
    records=lambda b: refs(CatalogueVersion, vkey(b.version)) | refs(CatalogueHead, HEAD),
    patients=lambda b: (),
    fold=_fold_published, money=no_money, rule=no_rule,
    describe=lambda b, lang: say((f"第 {b.version} 版，{b.pages} 页，"
                                  f"{say(LABELS['charge_at.' + b.charge_at], 'zh')}",
                                  f"version {b.version}, {b.pages} pages, "
                                  f"{say(LABELS['charge_at.' + b.charge_at], 'en')}"), lang),
    report=no_report, notice=no_notice,
)

PAGE = Kind(
    name="catalogue.page", body=Page, signer=CENTRAL_ONLY,
    title=("价目表分页", "Catalogue page"),
    records=_page_refs, patients=lambda b: (),
    fold=_fold_page, money=no_money, rule=no_rule,
    describe=lambda b, lang: say((f"第 {b.version} 版 第 {b.page} 页 {b.size()} 条",
                                  f"version {b.version} page {b.page}: {b.size()} entries"),
                                 lang),
    report=no_report, notice=no_notice,
)


# -- reading ------------------------------------------------------------------------------
def head(state: State) -> CatalogueHead:
    return state.get(CatalogueHead, HEAD) or CatalogueHead(HEAD)


def item_refs(version: int, codes: list[str] | tuple[str, ...]) -> set[Ref]:
    return {(CatalogueItem, (vkey(version), c)) for c in codes} | refs(CatalogueHead, HEAD)


def priced(state: State, version: int, code: str) -> CatalogueItem | None:
    return state.get(CatalogueItem, (vkey(version), code))


def check_version(state: State, version: int) -> list[Problem]:
    """An order must be priced from the newest complete version this counter holds."""
    h = head(state)
    if not h.version:
        return [Problem("catalogue.none", "this counter holds no catalogue yet: it arrives "
                        "with the next sync", "catalogue_version")]
    if version != h.number:
        return [Problem("catalogue.stale", f"priced from catalogue version {version}, but "
                        f"this counter uses version {h.number}: price it again",
                        "catalogue_version", {"version": version, "current": h.number})]
    return []


KINDS = (PUBLISHED, PAGE)
RECORDS = (CatalogueVersion, CatalogueHead, CataloguePage, CatalogueItem, Department,
           Doctor, DoctorSession, Template)


# -- publishing ---------------------------------------------------------------------------
PAGE_BYTES = 40_000  # a page's body stays well under an event's 64 KiB
_PAGE_LISTS = (("items", 400), ("depts", 400), ("doctors", 400), ("sessions", 1000),
               ("templates", 200))


def publication(version: int, charge_at: str, entries: dict[str, list[dict[str, Any]]],
                note: str = "") -> list[tuple[str, dict[str, Any]]]:
    """The events (kind, wire body) that publish ``entries`` as catalogue ``version``:
    the header, then pages filled in order up to :data:`PAGE_BYTES` each.

    ``entries`` maps ``items``/``depts``/``doctors``/``sessions``/``templates`` to wire
    maps of :class:`ItemEntry` … (checked when the events are decoded, not here).
    """
    pages: list[dict[str, Any]] = []
    page: dict[str, Any] = {}
    size = 0
    for name, limit in _PAGE_LISTS:
        for entry in entries.get(name, []):
            n = len(codec.encode(entry))
            if page and (size + n > PAGE_BYTES or len(page.get(name, [])) >= limit):
                pages.append(page)
                page, size = {}, 0
            page.setdefault(name, []).append(entry)
            size += n
    if page or not pages:
        pages.append(page)
    head = {"version": version, "pages": len(pages), "charge_at": charge_at}
    if note:
        head["note"] = note
    return [("catalogue.published", head), *(
        ("catalogue.page", {"version": version, "page": i, **p})
        for i, p in enumerate(pages, 1))]
