"""The cashier's daily report (日结): what moved through this counter in one business day.

A business day runs from the cut-off time (config ``day_cutoff``, e.g. ``"06:00"``) in
the hospital's time zone to the same time next day, so a night shift's work stays in
one report.  Only this counter's own events count (a counter's drawer holds only what
its staff took in), optionally only one operator's.  Totals are integer fen.

:func:`build` is pure (events in, report out) so tests can compare it with the
ledger's own projections; :func:`daily_report` fetches the events; :func:`render_text`
makes the printable page.
"""

from __future__ import annotations

import datetime as dt
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from edge_node.i18n import Translator
from edge_node.ledger import Ledger
from protocol.account import PAYMENT_METHODS, REFUND_TO
from protocol.core import Registry
from protocol.domain import REGISTRY
from protocol.event import Event
from protocol.money import yuan

Fen = int


@dataclass(frozen=True, slots=True)
class BusinessDay:
    date: dt.date
    start_ms: int  # inclusive, UTC ms
    end_ms: int  # exclusive
    timezone: str
    cutoff: str

    def local(self, ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(self.timezone))

    def shifted(self, days: int) -> BusinessDay:
        return day_bounds(self.date + dt.timedelta(days=days), self.timezone, self.cutoff)


def _cutoff(text: str) -> dt.time:
    try:
        h, m = text.split(":")
        return dt.time(int(h), int(m))
    except ValueError:
        raise ValueError(f"day_cutoff must be HH:MM, got {text!r}") from None


def day_bounds(date: dt.date, timezone: str = "Asia/Shanghai",
               cutoff: str = "00:00") -> BusinessDay:
    """The business day called ``date``: from its cut-off to the next day's, local time."""
    tz = ZoneInfo(timezone)
    c = _cutoff(cutoff)
    start = dt.datetime.combine(date, c, tz)
    end = dt.datetime.combine(date + dt.timedelta(days=1), c, tz)
    return BusinessDay(date, int(start.timestamp() * 1000), int(end.timestamp() * 1000),
                       timezone, cutoff)


def span(start_ms: int, end_ms: int, timezone: str = "Asia/Shanghai",
         cutoff: str = "00:00") -> BusinessDay:
    """Any stretch of time as a report's period (an operator's shift, login to log out):
    [start_ms, end_ms) by the counter's own clock, dated the local day it began."""
    date = dt.datetime.fromtimestamp(start_ms / 1000, ZoneInfo(timezone)).date()
    return BusinessDay(date, start_ms, end_ms, timezone, cutoff)


def business_day(at_ms: int, timezone: str = "Asia/Shanghai",
                 cutoff: str = "00:00") -> BusinessDay:
    """The business day an instant belongs to."""
    local = dt.datetime.fromtimestamp(at_ms / 1000, ZoneInfo(timezone))
    c = _cutoff(cutoff)
    date = local.date() if local.time() >= c else local.date() - dt.timedelta(days=1)
    return day_bounds(date, timezone, cutoff)


@dataclass(slots=True)
class Tally:
    count: int = 0
    amount: Fen = 0

    def add(self, amount: Fen) -> None:
        self.count += 1
        self.amount += amount


def _tallies(keys: Iterable[str]) -> dict[str, Tally]:
    return {k: Tally() for k in keys}


@dataclass(slots=True)
class DailyReport:
    day: BusinessDay
    node: str
    operator: str = ""  # "" = every operator of this counter
    deposits: dict[str, Tally] = field(default_factory=lambda: _tallies(PAYMENT_METHODS))
    refunds: dict[str, Tally] = field(default_factory=lambda: _tallies((*REFUND_TO, "void")))
    settlements: dict[str, Tally] = field(default_factory=lambda: _tallies(PAYMENT_METHODS))
    charges: Tally = field(default_factory=Tally)
    counts: dict[str, int] = field(default_factory=dict)  # registrations, cards_issued …
    #: balances moved in from the old system (central's import): apart from deposits,
    #: never in the drawer
    opening: Tally = field(default_factory=Tally)

    def section(self, name: str) -> dict[str, Tally]:
        sections = {"deposits": self.deposits, "refunds": self.refunds,
                    "settlements": self.settlements}
        return sections[name]

    def count(self, what: str) -> int:
        return self.counts.get(what, 0)

    @property
    def registrations(self) -> int:
        return self.count("registrations")

    @property
    def cards_issued(self) -> int:
        return self.count("cards_issued")

    @property
    def cards_lost(self) -> int:
        return self.count("cards_lost")

    @property
    def cards_replaced(self) -> int:
        return self.count("cards_replaced")

    @property
    def credits_granted(self) -> int:
        return self.count("credits_granted")

    @property
    def expected_cash(self) -> Fen:
        """What the drawer should hold beyond its float: cash in minus cash out."""
        return (self.deposits["cash"].amount - self.refunds["cash"].amount
                - self.settlements["cash"].amount)

    def total(self, section: dict[str, Tally]) -> Tally:
        return Tally(sum(t.count for t in section.values()),
                     sum(t.amount for t in section.values()))


def build(events: Iterable[Event], day: BusinessDay, node: str, operator: str = "", *,
          registry: Registry = REGISTRY,
          local_ms: Callable[[Event], int] | None = None) -> DailyReport:
    """The report of ``events`` (any order, any node: filtered here) for ``day``.

    Each event goes where its kind's ``report`` facet says; ``local_ms``: when the
    counter wrote it by its own clock (default: its stamp's wall time).
    """
    r = DailyReport(day, node, operator)
    when = local_ms or (lambda ev: ev.hlc.wall)
    for ev in events:
        if ev.node != node or (operator and ev.operator != operator):
            continue
        if not day.start_ms <= when(ev) < day.end_ms:
            continue
        line = registry.report(ev)
        if line is None:
            continue
        if line.section == "counts":
            r.counts[line.line] = r.counts.get(line.line, 0) + 1
        elif line.section == "charges":
            r.charges.add(line.amount)
        elif line.section == "opening_balances":
            r.opening.add(line.amount)
        elif line.section in ("deposits", "refunds", "settlements"):
            r.section(line.section).setdefault(line.line, Tally()).add(line.amount)
    return r


async def daily_report(ledger: Ledger, day: BusinessDay, operator: str = "") -> DailyReport:
    """This counter's report for ``day`` from its ledger, by the counter's own clock
    (a remote clock it saw never moves its work into another day)."""
    written = await ledger.own_events_between(day.start_ms, day.end_ms)
    at = {ev.id: ms for ev, ms in written}
    return build([ev for ev, _ in written], day, ledger.node_id, operator,
                 registry=ledger.registry, local_ms=lambda ev: at[ev.id])


# -- the day close (日结 确认) ---------------------------------------------------------
Figures = dict[tuple[str, str], tuple[int, Fen]]


def report_figures(report: DailyReport) -> Figures:
    """The report's figures: ``(section, line) -> (count, fen)`` for every line with
    something in it (what a day close carries; central's audit recomputes the same)."""
    out: Figures = {}
    for name in ("deposits", "refunds", "settlements"):
        for line, t in report.section(name).items():
            if t.count:
                out[(name, line)] = (t.count, t.amount)
    if report.charges.count:
        out[("charges", "")] = (report.charges.count, report.charges.amount)
    for what, n in sorted(report.counts.items()):
        out[("counts", what)] = (n, 0)
    if report.opening.count:
        out[("opening_balances", "moved_in")] = (report.opening.count, report.opening.amount)
    return out


def close_body(report: DailyReport, counted_cash: Fen, note: str = "") -> dict[str, Any]:
    """The body of the ``report.closed`` confirming ``report`` with the cash counted
    (:mod:`protocol.dayclose`)."""
    body: dict[str, Any] = {
        "day": report.day.date.isoformat(), "start_ms": report.day.start_ms,
        "end_ms": report.day.end_ms, "cashier": report.operator,
        "figures": [{"section": s, "line": line, "count": n, "amount": fen}
                    for (s, line), (n, fen) in report_figures(report).items()],
        "expected_cash": report.expected_cash, "counted_cash": counted_cash}
    if note.strip():
        body["note"] = note.strip()[:200]
    return body


# -- text -------------------------------------------------------------------------------
def cells(text: str) -> int:
    """Terminal/printer columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - cells(text))


def rjust(text: str, width: int) -> str:
    return " " * max(0, width - cells(text)) + text


def render_text(report: DailyReport, language: str = "zh", width: int = 48,
                generated_ms: int | None = None, shift: bool = False) -> str:
    """The printable page: one section per money flow, counts and yuan, then the drawer.

    ``shift``: the report is one operator's shift (:func:`span`), headed as a shift slip.
    """
    tr = Translator(language)
    day = report.day
    fmt = "%Y-%m-%d %H:%M"
    gen = time.time_ns() // 1_000_000 if generated_ms is None else generated_ms
    rule = "-" * width
    start, end = day.local(day.start_ms), day.local(day.end_ms)
    if shift:
        until = "%H:%M" if end.date() == start.date() else fmt
        head = [tr("report.shift_title"),
                tr("report.shift", start=start.strftime(fmt),
                   end=end.strftime(until), tz=day.timezone)]
    else:
        head = [tr("report.title"),
                tr("report.day", day=day.date.isoformat(), start=start.strftime(fmt),
                   end=end.strftime(fmt), tz=day.timezone)]
    lines = [*head,
             f"{tr('report.counter', node=report.node)}   "
             f"{tr('report.operator', op=report.operator or tr('report.all_operators'))}",
             tr("report.generated", when=day.local(gen).strftime("%Y-%m-%d %H:%M:%S")),
             "=" * width]

    def row(label: str, t: Tally) -> str:
        return ljust(label, width - 22) + rjust(str(t.count), 6) + rjust(yuan(t.amount), 16)

    def section(title: str, tallies: dict[str, Tally], prefix: str) -> None:
        lines.append(ljust(title, width - 22) + rjust(tr("report.count"), 6)
                     + rjust(tr("report.amount"), 16))
        for key, t in tallies.items():
            lines.append(row("  " + tr(f"{prefix}.{key}"), t))
        lines.append(row("  " + tr("report.total"), report.total(tallies)))
        lines.append(rule)

    section(tr("report.deposits"), report.deposits, "method")
    section(tr("report.refunds"), report.refunds, "to")
    section(tr("report.settlements"), report.settlements, "method")
    lines.append(row(tr("report.charges"), report.charges))
    if report.opening.count:  # only central's own report holds these
        lines.append(row(tr("report.opening"), report.opening))
    lines.append(tr("report.registrations", n=report.registrations, cards=report.cards_issued,
                    lost=report.cards_lost, replaced=report.cards_replaced,
                    credit=report.credits_granted))
    lines.append("=" * width)
    lines.append(tr("report.expected_cash"))
    lines.append(rjust(yuan(report.expected_cash), width))
    lines.append("")
    lines.append(tr("report.signature"))
    return "\n".join(lines) + "\n"
