"""The domain core: what an event kind and a record are, and the one fold over them.

Theory of operation
-------------------
Every event kind is declared once, as a :class:`Kind`, in the module of its hospital
concept (:mod:`protocol.patient`, :mod:`protocol.card`, :mod:`protocol.account`,
:mod:`protocol.remedy`): its typed body (:mod:`protocol.fields`), who may sign it, the
records it folds into, its fold, its money effect, the counter's rule, how it reads in
Chinese and English, where it goes in the cashier's report and what it tells staff.
Records (patients, cards, accounts, charges …) are frozen dataclasses declared with
:func:`record`: a table, a key (one field or several) and indexes.  A :class:`Registry`
is built from explicit lists of both (:mod:`protocol.domain`); ledger, reconciler,
screens and reports ask it and keep no table of kinds of their own.

The fold is the same everywhere (counter ledger, central reconciler, console):

* **Total.** :meth:`Registry.decode` turns any signed event into a :class:`Fact`
  (valid body of a known kind), :class:`Invalid` (known kind, bad body or wrong
  signer) or :class:`Unknown` (a kind this version does not know).  Only facts fold;
  a fold writes through a :class:`Tx` that commits only when it finishes, so nothing
  can leave half an event in the state.
* **Order-independent.** Sums commute; every other field is a deterministic choice
  among the events that set it — the most final status, the earliest claim, or the
  last writer by the one order ``(hlc, node, seq)`` (:attr:`At.order`) — so the same
  set of events gives the same records in any arrival order.
* **One money rule.** A kind's ``money`` facet says how its event moves which
  accounts' balances; the registry applies it (the kinds' own folds never touch a
  balance), and the reconciler, history screens and audit read the same facet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol.errors import Problem
from protocol.event import CENTRAL, Event
from protocol.fields import Body, decode

Fen = int
PatientId = str
CardNo = str
Text = tuple[str, str]  # (zh, en)
Key = str | tuple[str, ...]  # one key field's value, or several fields' values in order

COUNTER = "counter"  # any enrolled counter may sign the kind
CENTRAL_ONLY = "central"  # only central may sign it (a counter's is flagged and not folded)


def say(text: Text, lang: str) -> str:
    """``text`` in ``lang`` (Chinese unless English is asked for)."""
    return text[1] if lang == "en" else text[0]


# -- records ----------------------------------------------------------------------------
class Record:
    """A projection record: a frozen dataclass with a table, a key and indexes."""

    __slots__ = ()
    TABLE: ClassVar[str]
    KEY: ClassVar[tuple[str, ...]]
    INDEXES: ClassVar[tuple[tuple[str, ...], ...]]

    def key(self) -> Key:
        return _KEY[type(self)](self)

    @classmethod
    def new(cls: type[R], key: Key) -> R:
        """The empty record with key ``key`` (every other field at its default)."""
        if isinstance(key, str):
            return _BLANK[cls].evolve(**{cls.KEY[0]: key})  # type: ignore[return-value]
        return cls(**dict(zip(cls.KEY, key, strict=True)))

    def evolve(self: R, **changes: Any) -> R:
        """A copy with ``changes`` (``dataclasses.replace``, ~2× faster: folds do this
        for every event)."""
        return _EVOLVE[type(self)](self, changes)  # type: ignore[return-value]


R = TypeVar("R", bound=Record)


def record(table: str, key: tuple[str, ...],
           indexes: tuple[tuple[str, ...], ...] = ()) -> Callable[[type[R]], type[R]]:
    """Declare a record type (a frozen dataclass): its table, key fields and indexes.

    Fields are ``str`` or ``int`` with defaults (except the key's); the ledger makes
    its table from these declarations (:func:`columns`).
    """
    def wrap(cls: type[R]) -> type[R]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__}: declare the record as a frozen dataclass")
        cls.TABLE, cls.KEY, cls.INDEXES = table, key, indexes
        names = [f.name for f in dataclasses.fields(cls)]
        for k in (*key, *(c for ix in indexes for c in ix)):
            if k not in names:
                raise TypeError(f"{cls.__name__}: {k} is not a field")
        columns(cls)  # every field has a storable type
        _EVOLVE[cls] = _evolver(cls)
        _KEY[cls] = operator.attrgetter(*key)
        if len(key) == 1:
            _BLANK[cls] = cls(**{key[0]: ""})
        return cls
    return wrap


_EVOLVE: dict[type[Record], Callable[[Record, dict[str, Any]], Record]] = {}
_BLANK: dict[type[Record], Record] = {}  # the empty record of each single-key type
_KEY: dict[type[Record], Callable[[Record], Key]] = {}


def _evolver(cls: type[Record]) -> Callable[[Record, dict[str, Any]], Record]:
    """A function copying a record of ``cls`` with some fields changed, made for its
    fields (as ``dataclasses`` makes ``__init__``): no per-call field lookups."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    lines = ["def evolve(r, c):", "    new = _new(_cls)"]
    lines += [f"    _set(new, {n!r}, c[{n!r}] if {n!r} in c else r.{n})" for n in names]
    lines += ["    if not c.keys() <= _names:",
              "        raise TypeError(f'unknown fields {sorted(c.keys() - _names)}')",
              "    return new"]
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_set": object.__setattr__,
                          "_names": frozenset(names)}
    exec("\n".join(lines), ns)  # code made from the class's own field names
    return cast(Callable[[Record, dict[str, Any]], Record], ns["evolve"])


_COLUMNS: dict[type[Record], tuple[tuple[str, str], ...]] = {}


def columns(rt: type[Record]) -> tuple[tuple[str, str], ...]:
    """``(name, SQL type)`` of each field of a record type: TEXT or INTEGER."""
    got = _COLUMNS.get(rt)
    if got is None:
        got = _COLUMNS[rt] = _columns(rt)
    return got


def _columns(rt: type[Record]) -> tuple[tuple[str, str], ...]:
    out = []
    for f in dataclasses.fields(rt):  # type: ignore[arg-type]  # a dataclass by record()
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if t in ("str", "PatientId", "CardNo"):
            out.append((f.name, "TEXT"))
        elif t in ("int", "Fen"):
            out.append((f.name, "INTEGER"))
        else:
            raise TypeError(f"{rt.__name__}.{f.name}: a record field is str or int, not {t}")
    return tuple(out)


Ref = tuple[type[Record], Key]  # which record: its type and key


def refs(rt: type[Record], *keys: Key) -> set[Ref]:
    return {(rt, k) for k in keys}


class State:
    """Records by type and key: the projection of a set of events (or the part loaded)."""

    __slots__ = ("tables",)

    def __init__(self) -> None:
        self.tables: dict[type[Record], dict[Key, Record]] = {}

    def table(self, rt: type[R]) -> dict[Key, R]:
        return cast("dict[Key, R]", self.tables.setdefault(rt, {}))

    def get(self, rt: type[R], key: Key) -> R | None:
        t = self.tables.get(rt)
        return cast("R | None", t.get(key)) if t else None

    def get_or_new(self, rt: type[R], key: Key) -> R:
        return self.get(rt, key) or rt.new(key)

    def put(self, rec: Record) -> None:
        self.table(type(rec))[rec.key()] = rec

    def all(self, rt: type[R]) -> list[R]:
        return list(self.table(rt).values())

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every record as sorted rows per table (for comparing two states)."""
        return {rt.TABLE: sorted(dataclasses.astuple(r) for r in t.values())  # type: ignore
                for rt, t in sorted(self.tables.items(), key=lambda kv: kv[0].TABLE) if t}


class Tx:
    """One event's changes over a state: reads see them, the state only once committed."""

    __slots__ = ("changes", "state")

    def __init__(self, state: State) -> None:
        self.state = state
        self.changes: dict[tuple[type[Record], Key], Record] = {}

    def get(self, rt: type[R], key: Key) -> R | None:
        rec = self.changes.get((rt, key))
        if rec is None:
            table = self.state.tables.get(rt)
            rec = table.get(key) if table else None
        return cast("R | None", rec)

    def get_or_new(self, rt: type[R], key: Key) -> R:
        return self.get(rt, key) or rt.new(key)

    def put(self, rec: Record) -> None:
        self.changes[(type(rec), rec.key())] = rec

    def commit(self) -> None:
        for rec in self.changes.values():
            self.state.put(rec)


# -- where and when an event happened -------------------------------------------------
@dataclass(frozen=True, slots=True)
class At:
    """What a fold may know of an event's envelope."""

    node: str
    seq: int
    wall: int
    counter: int = 0
    operator: str = ""
    #: The merge order ``(hlc, node, seq)`` as a string that sorts the same way:
    #: fixed-width numbers, and a space after the node id (below every character a node
    #: id may hold), so a shorter id sorts first as in the tuple.
    order: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", f"{self.wall:016d}{self.counter:010d}{self.node} "
                                          f"{self.seq:016d}")

    @classmethod
    def of(cls, ev: Event) -> At:
        return cls(ev.node, ev.seq, ev.hlc.wall, ev.hlc.counter, ev.operator)

    @property
    def central(self) -> bool:
        return self.node == CENTRAL


def wall_of(order: str) -> int:
    """The wall clock (ms) of the event at merge order ``order`` (:attr:`At.order`; 0 for
    "" or anything else)."""
    head = order[:16]
    return int(head) if len(head) == 16 and head.isdigit() else 0


def later(at: str, than: str) -> bool:
    """Whether an event at order ``at`` is the last writer over one at ``than``."""
    return at > than


def earlier(at: str, than: str) -> bool:
    """Whether a claim at ``at`` comes first (nothing claimed yet: ``than`` is "")."""
    return not than or at < than


# -- what an event means beyond its records ---------------------------------------------
FLOWS = ("deposit", "charge", "refund", "settle", "adjust", "transfer", "opening")


@dataclass(frozen=True, slots=True)
class Money:
    """How an event moves money: its flow and each account's balance change in fen.

    ``flow`` is one of :data:`FLOWS` ("" for kinds that move none).  A refund in cash has
    the flow and no delta: money left the hospital, no balance changed.  ``opening`` is a
    balance moved in from the hospital's old system (:mod:`protocol.moving_in`): money
    the hospital already held, not taken in at a counter.
    """

    flow: str = ""
    deltas: tuple[tuple[PatientId, Fen], ...] = ()

    def delta(self, pid: PatientId) -> Fen:
        return sum(d for p, d in self.deltas if p == pid)


NO_MONEY = Money()


@dataclass(frozen=True, slots=True)
class ReportLine:
    """Where an event goes in the cashier's daily report: a section, a line, an amount."""

    section: str  # deposits | refunds | settlements | charges | counts | opening_balances
    line: str  # payment method, refund destination, or what was counted
    amount: Fen = 0


@dataclass(frozen=True, slots=True)
class Notice:
    """One instruction for staff about a patient: a text key with values, and urgency.

    ``key`` names an entry of the counter's string table; ``conflict_id`` ties it to
    the conflict it comes from (its kind says why).
    """

    code: str
    key: str
    values: tuple[tuple[str, str], ...] = ()
    conflict_id: str = ""
    urgent: bool = False
    amount: Fen = 0  # the fen behind an amount in ``values`` (for adding notices up)


@dataclass(frozen=True, slots=True)
class NoticeContext:
    """What a kind's notice may read: whose panel it is and that patient's cards."""

    patient_id: PatientId
    card_status: tuple[tuple[str, str], ...] = ()  # (card_no, status)
    active_card: str = "-"


@dataclass(frozen=True, slots=True)
class OfflineRun:
    """What a counter charged while offline, for its offline limits (issue 11).

    The counter's *offline run* is its own events after the last one central
    acknowledged (the sync's ``acked_seq``): ``first_seq`` is the first of them.  The
    ledger makes this for each append while the counter is offline and holds limits
    (central's ``limits.set``), with what the run already charged each account the
    append touches; rules read it from :attr:`RuleConfig.offline` (None: online, or no
    limits), so a rule is a function of its inputs.
    """

    first_seq: int
    floor: Fen = 0  # the most one charge may take offline (0: no floor limit)
    cap: Fen = 0  # the most the run may charge one account (0: no cap)
    charged: tuple[tuple[PatientId, Fen], ...] = ()  # per account, before this event

    def charged_to(self, pid: PatientId) -> Fen:
        return sum(f for p, f in self.charged if p == pid)


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """What the counter's rules are configured with, and the counter's day.

    Rules are the counter's refusals before it signs (never part of the fold), so one
    may read the day: ``today`` (``YYYY-MM-DD`` in ``timezone``) is set by the ledger from
    its clock for each append (:meth:`on`); "" means unknown (no rule reads a day then),
    as when the clock reads before :data:`CLOCK_SET` (a counter that lost its time must
    not refuse every patient born since).
    """

    registration_fee: Fen = 500  # ¥5.00: the first deposit must cover it (DOMAIN 3.2)
    card_fee: Fen = 0  # 工本费 charged on card issue and replacement (0: none)
    green_channel_cap: Fen = 500_000  # the most green-channel credit a counter grants
    #: refunds above this (and every cash refund, and settlement in cash) need a
    #: supervisor's approval at the counter (``supervisor`` in the event)
    refund_approval_above: Fen = 20_000
    timezone: str = "Asia/Shanghai"
    today: str = ""
    #: this counter's offline run, set by the ledger for each append like ``today``
    #: (None: online, or central set no offline limits)
    offline: OfflineRun | None = None
    #: a charge on a card number typed by hand needs a supervisor's approval (issue 11);
    #: the counter's config turns it on where a chip reader reads cards
    #: (``manual_entry_approval``): without one, every card number is typed
    manual_entry_approval: bool = False

    def on(self, now_ms: int) -> RuleConfig:
        """This configuration on the day ``now_ms`` falls in (in ``timezone``)."""
        try:
            tz: dt.tzinfo = ZoneInfo(self.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            tz = dt.UTC
        try:
            day = dt.datetime.fromtimestamp(now_ms / 1000, tz).date().isoformat()
        except (OverflowError, OSError, ValueError):
            day = ""
        day = day if day >= CLOCK_SET else ""
        return self if day == self.today else dataclasses.replace(self, today=day)


CLOCK_SET = "2020-01-01"  # a counter's clock before this day is not set (RuleConfig.today)


B = TypeVar("B", bound=Body)


def no_rule(state: State, body: Any, cfg: RuleConfig) -> list[Problem]:
    return []


def no_money(body: Any) -> Money:
    return NO_MONEY


def no_report(body: Any) -> ReportLine | None:
    return None


def no_notice(body: Any, ctx: NoticeContext) -> Notice | None:
    return None


def no_records(body: Any) -> set[Ref]:
    return set()


@dataclass(frozen=True, slots=True)
class Kind(Generic[B]):
    """One event kind, every facet of it in one place."""

    name: str
    body: type[B]
    signer: str  # COUNTER | CENTRAL_ONLY
    title: Text
    #: the records the fold writes and the rule reads (loaded before either runs)
    records: Callable[[B], set[Ref]]
    #: whose history the event is in
    patients: Callable[[B], tuple[PatientId, ...]]
    fold: Callable[[Tx, At, B], None]
    money: Callable[[B], Money]
    #: what the counter refuses before signing (data problems as values)
    rule: Callable[[State, B, RuleConfig], list[Problem]]
    describe: Callable[[B, str], str]  # the event's detail line, in a language
    report: Callable[[B], ReportLine | None]
    notice: Callable[[B, NoticeContext], Notice | None]


# -- decoded events ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fact:
    """A signed event of a known kind with a valid body: what folds."""

    event: Event
    kind: Kind[Any]
    body: Any
    at: At
    money: Money = NO_MONEY  # the kind's money facet of the body (made by :meth:`of`)
    records: frozenset[Ref] = frozenset()  # the records it touches (made by :meth:`of`)

    @classmethod
    def of(cls, ev: Event, kind: Kind[Any], body: Any) -> Fact:
        return cls(ev, kind, body, At.of(ev), kind.money(body), frozenset(kind.records(body)))

    @property
    def patients(self) -> tuple[PatientId, ...]:
        return self.kind.patients(self.body)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A known kind whose body (or signer) is wrong: kept, flagged, never folded."""

    event: Event
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class Unknown:
    """A kind this version does not know (a newer counter): kept, folded after upgrade."""

    event: Event


Decoded = Fact | Invalid | Unknown


class Registry:
    """Every kind and record this version knows, and the one fold over them."""

    def __init__(self, kinds: Iterable[Kind[Any]], records: Iterable[type[Record]],
                 apply_money: Callable[[Tx, Money, At], None],
                 labels: Iterable[tuple[str, Text]] = ()) -> None:
        self.kinds: dict[str, Kind[Any]] = {}
        for k in kinds:
            if k.name in self.kinds:
                raise ValueError(f"event kind {k.name} is declared twice")
            self.kinds[k.name] = k
        self.records = tuple(records)
        if len({r.TABLE for r in self.records}) != len(self.records):
            raise ValueError("two record types share a table")
        self._apply_money = apply_money
        self.labels = dict(labels)  # vocabulary words (payment methods …) in zh and en

    def __contains__(self, kind: str) -> bool:
        return kind in self.kinds

    # -- checking ---------------------------------------------------------------------
    def validate(self, kind: str, body: Any, node: str = "") -> list[Problem]:
        """Every problem with ``body`` as an event of ``kind`` signed by ``node``."""
        k = self.kinds.get(kind)
        if k is None:
            return [Problem("kind.unknown", f"unknown event kind {kind!r}", "kind",
                            {"kind": kind})]
        decoded = decode(k.body, body)
        problems = decoded if isinstance(decoded, list) else []
        if node and k.signer == CENTRAL_ONLY and node != CENTRAL:
            problems = [*problems, Problem("kind.central_only",
                                           f"{kind} may only be signed by central", "kind",
                                           {"kind": kind})]
        return problems

    def decode(self, ev: Event) -> Decoded:
        """What ``ev`` is to this version (never raises, whatever the body)."""
        k = self.kinds.get(ev.kind)
        if k is None:
            return Unknown(ev)
        if k.signer == CENTRAL_ONLY and ev.node != CENTRAL:
            return Invalid(ev, (Problem("kind.central_only",
                                        f"{ev.kind} may only be signed by central", "kind",
                                        {"kind": ev.kind}),))
        decoded = decode(k.body, ev.body)
        if isinstance(decoded, list):
            return Invalid(ev, tuple(decoded))
        return Fact.of(ev, k, decoded)

    def fact(self, ev: Event) -> Fact | None:
        d = self.decode(ev)
        return d if isinstance(d, Fact) else None

    def local(self, kind: str, body: Any) -> tuple[Kind[Any], Any] | list[Problem]:
        """The kind and typed body a counter may write, or every problem with them."""
        k = self.kinds.get(kind)
        if k is None:
            return [Problem("kind.unknown", f"unknown event kind {kind!r}", "kind",
                            {"kind": kind})]
        if k.signer != COUNTER:
            return [Problem("kind.not_local", f"{kind} events cannot be written at a counter",
                            "kind", {"kind": kind})]
        decoded = decode(k.body, body)
        return decoded if isinstance(decoded, list) else (k, decoded)

    def check(self, state: State, kind: str, body: Any, cfg: RuleConfig) -> list[Problem]:
        """Every problem with appending ``kind``/``body`` at a counter in ``state``."""
        local = self.local(kind, body)
        if isinstance(local, list):
            return local
        k, typed = local
        return k.rule(state, typed, cfg)

    def records_of(self, kind: str, body: Any) -> set[Ref]:
        """The records a valid ``body`` of ``kind`` touches (none for anything else)."""
        k = self.kinds.get(kind)
        if k is None:
            return set()
        decoded = decode(k.body, body)
        return set() if isinstance(decoded, list) else k.records(decoded)

    # -- folding ----------------------------------------------------------------------
    def apply_fact(self, state: State, fact: Fact) -> None:
        """Fold one fact into ``state``: its kind's fold, then its money, all or nothing."""
        tx = Tx(state)
        fact.kind.fold(tx, fact.at, fact.body)
        if fact.money.deltas:
            self._apply_money(tx, fact.money, fact.at)
        tx.commit()

    def apply(self, state: State, ev: Event) -> Decoded:
        """Fold ``ev`` into ``state`` if it is a fact; return what it was."""
        d = self.decode(ev)
        if isinstance(d, Fact):
            self.apply_fact(state, d)
        return d

    def fold(self, events: Iterable[Event], state: State | None = None) -> State:
        """The state after ``events`` (in any order: the result does not depend on it)."""
        st = state if state is not None else State()
        for ev in events:
            self.apply(st, ev)
        return st

    # -- reading ----------------------------------------------------------------------
    def patients_of(self, ev: Event) -> tuple[PatientId, ...]:
        """Whose history ``ev`` is in (its own patient_id, if readable, for a bad body)."""
        d = self.decode(ev)
        if isinstance(d, Fact):
            return d.patients
        pid = ev.body.get("patient_id") if type(ev.body) is dict else None
        return (pid,) if type(pid) is str and 0 < len(pid) <= 64 else ()

    def money(self, ev: Event) -> Money:
        d = self.decode(ev)
        return d.money if isinstance(d, Fact) else NO_MONEY

    def title(self, kind: str, lang: str) -> str:
        k = self.kinds.get(kind)
        return say(k.title, lang) if k else kind

    def describe(self, ev: Event, lang: str) -> str:
        """The event's detail line; a bad or unknown one says so instead of failing."""
        d = self.decode(ev)
        if isinstance(d, Fact):
            return d.kind.describe(d.body, lang)
        if isinstance(d, Invalid):
            return say(("无法读取的事件（已标记）", "unreadable event (flagged)"), lang)
        return say(("本版本不认识的事件", "event of a newer version"), lang)

    def report(self, ev: Event) -> ReportLine | None:
        d = self.decode(ev)
        return d.kind.report(d.body) if isinstance(d, Fact) else None

    def label(self, word: str, lang: str) -> str:
        text = self.labels.get(word)
        return say(text, lang) if text else word

    # -- declarations -----------------------------------------------------------------
    def fingerprint(self) -> str:
        """A hash of what the projections depend on: record layouts and known kinds.

        A ledger whose projections were folded under another fingerprint refolds them
        (an upgrade that adds a kind folds the events it kept unfolded until then).
        """
        decl = {"records": {r.TABLE: [list(r.KEY), [list(c) for c in columns(r)],
                                      [list(i) for i in r.INDEXES]] for r in self.records},
                "kinds": sorted(self.kinds)}
        blob = json.dumps(decl, sort_keys=True).encode()
        return hashlib.blake2b(blob, digest_size=12).hexdigest()

    def __iter__(self) -> Iterator[Kind[Any]]:
        return iter(self.kinds.values())
