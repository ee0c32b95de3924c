"""The audit log (issue 11): who did what, when, where — read from signed events only.

``onecard-central audit log`` and the console's audit tab ask :func:`query`.  It reads
the events central holds (every counter's and its own, each signed and hash-chained, so
the log cannot be edited: a changed event no longer verifies and is never stored) and
keeps the sensitive ones:

* the trail kinds (:mod:`protocol.trail`): logins and wrong PINs, records opened,
  exports, counters enrolled/revoked/given a new key, settings changed;
* the business kinds that are sensitive in themselves: refunds, loss reports,
  replacements, green channel, dormant settlements, central's remedies, staff changes;
* any event a supervisor approved (a ``supervisor`` in its body).

One :class:`Entry` per event: when (its HLC wall time in the hospital's timezone),
where (the node that signed it), who (the operator, and the person who approved),
what (the kind's title) and the detail line (:meth:`protocol.core.Registry.describe`).
A body that does not decode is still listed (its detail says it is unreadable).

The store has no column for an event's kind, so a query decodes central's events, at
most :data:`SCAN` of them, newest first (a hospital's trail over years wants an index:
left for when it is needed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol import remedy, staff, trail
from protocol.core import Fact
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError
from protocol.event import Event, decode_event

SCAN = 500_000  # central's events read at most per query, newest first
PAGE = 5_000
#: the business kinds that are sensitive in themselves (besides approvals)
BUSINESS = frozenset({"account.refunded", "card.reported_lost", "card.replaced",
                      "account.credit_granted", "account.dormant_settled",
                      *remedy.REMEDY_KINDS, *(k.name for k in staff.KINDS)})
TRAIL = frozenset(k.name for k in trail.KINDS)
KINDS = TRAIL | BUSINESS
#: body fields naming a second person who approved or authorised
APPROVERS = ("supervisor", "approved_by", "authorised_by", "selected_by")
PATIENT_FIELDS = ("patient_id", "survivor_id", "merged_id")


class FilterError(ValueError):
    """A filter that cannot be used; the message says why and what can."""


@dataclass(frozen=True, slots=True)
class Filters:
    who: str = ""
    what: tuple[str, ...] = ()  # kinds, or their families (``audit``, ``staff``)
    patient: str = ""
    node: str = ""
    since: str = ""  # YYYY-MM-DD, in the hospital's timezone (inclusive)
    until: str = ""  # YYYY-MM-DD (inclusive)
    limit: int = 200


@dataclass(frozen=True, slots=True)
class Entry:
    when: str  # YYYY-MM-DD HH:MM:SS, the hospital's time
    where: str  # the node that signed it
    who: str  # the operator (and "+ approver")
    what: str  # the kind's title in the language asked
    detail: str
    kind: str
    seq: int
    wall: int  # the HLC wall time, ms

    def row(self) -> list[str]:
        return [self.when, self.where, self.who, self.what, self.detail, self.kind,
                str(self.seq)]


HEADER = ["when", "where", "who", "what", "detail", "kind", "seq"]


def zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return dt.UTC


def kinds_of(what: Iterable[str]) -> frozenset[str]:
    """The kinds ``what`` names (a kind, or a family: ``audit``, ``staff``, ``card``…);
    :class:`FilterError` for a word that names none of the logged kinds."""
    out: set[str] = set()
    for word in what:
        w = word.strip().rstrip(".*")
        got = {k for k in KINDS if k == w or k.startswith(w + ".")}
        if w in ("approved", "supervisor"):
            got = {"*approved"}
        if not got:
            raise FilterError(f"--what {word!r} is not a kind the audit log lists; one of: "
                              f"{', '.join(sorted(KINDS))} (or a family such as audit, staff;"
                              " or approved)")
        out |= got
    return frozenset(out)


def _day_ms(day: str, tz: dt.tzinfo, flag: str) -> int:
    try:
        d = dt.date.fromisoformat(day)
    except ValueError:
        raise FilterError(f"{flag} must be YYYY-MM-DD, not {day!r}") from None
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() * 1000)


def _approvers(body: Any) -> list[str]:
    if type(body) is not dict:
        return []
    return [v for f in APPROVERS if type(v := body.get(f)) is str and v]


def _patients(ev: Event, fact: Fact | None) -> set[str]:
    found = set(fact.patients) if fact is not None else set()
    if type(ev.body) is dict:
        found |= {v for f in PATIENT_FIELDS if type(v := ev.body.get(f)) is str}
    return found


def logged(ev: Event) -> bool:
    """Whether the audit log lists ``ev``."""
    return ev.kind in KINDS or _approved(ev.body)


def _approved(body: Any) -> bool:
    """A supervisor approved it (at a counter: ``supervisor`` in the body)."""
    return type(body) is dict and type(body.get("supervisor")) is str


def entry(ev: Event, lang: str, tz: dt.tzinfo) -> Entry:
    try:
        when = dt.datetime.fromtimestamp(ev.hlc.wall / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        when = "?"
    who = " + ".join(dict.fromkeys([ev.operator, *_approvers(ev.body)]))
    return Entry(when, ev.node, who, REGISTRY.title(ev.kind, lang), REGISTRY.describe(ev, lang),
                 ev.kind, ev.seq, ev.hlc.wall)


def matches(ev: Event, f: Filters, kinds: frozenset[str], lo: int, hi: int) -> bool:
    if kinds and ev.kind not in kinds and not ("*approved" in kinds and _approved(ev.body)):
        return False
    if f.node and ev.node != f.node:
        return False
    if f.who and f.who not in (ev.operator, *_approvers(ev.body)):
        return False
    if (lo and ev.hlc.wall < lo) or (hi and ev.hlc.wall >= hi):
        return False
    return not f.patient or f.patient in _patients(ev, REGISTRY.fact(ev))


def bounds(f: Filters, tz: dt.tzinfo) -> tuple[int, int]:
    lo = _day_ms(f.since, tz, "--since") if f.since else 0
    hi = _day_ms(f.until, tz, "--until") + 86_400_000 if f.until else 0
    return lo, hi


async def query(store: Any, f: Filters, *, lang: str = "zh",
                timezone: str = "Asia/Shanghai") -> list[Entry]:
    """The log's entries matching ``f``, most recent first (at most ``f.limit``)."""
    if not 0 < f.limit <= 100_000:
        raise FilterError("--limit must be 1–100000")
    kinds = kinds_of(f.what) if f.what else frozenset()
    tz = zone(timezone)
    lo, hi = bounds(f, tz)
    found: list[Entry] = []
    before, scanned = None, 0
    while scanned < SCAN:
        rows = await store.read(
            "SELECT pos, data FROM events" + (" WHERE pos < ?" if before else "")
            + " ORDER BY pos DESC LIMIT ?", ((before,) if before else ()) + (PAGE,))
        if not rows:
            break
        scanned += len(rows)
        before = int(rows[-1][0])
        for _pos, data in rows:
            try:
                ev = decode_event(bytes(data))
            except (ProtocolError, ValueError):
                continue
            if logged(ev) and matches(ev, f, kinds, lo, hi):
                found.append(entry(ev, lang, tz))
    found.sort(key=lambda e: (e.wall, e.where, e.seq), reverse=True)
    return found[:f.limit]
