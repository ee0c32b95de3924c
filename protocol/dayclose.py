"""The cashier's day close (日结 确认): the daily report, signed, with the cash counted.

At the end of a business day the cashier prints the daily report
(:mod:`edge_node.reports`), counts the drawer and confirms: the counter signs a
``report.closed`` holding the report's figures as the counter computed them (each
section's lines with their count and amount, the expected cash) and the cash the
cashier counted.  It moves no money and changes no record: it is a statement, kept in
the counter's chain and synced to central, where the daily audit
(:mod:`central.audit`) recomputes the same day from the events and compares — a
figure that differs, cash counted that is not the cash expected, or a day with no
close is a finding.

``start_ms``/``end_ms`` are the business day's bounds as the counter computed them
(its time zone and cut-off), so central recomputes exactly the span the counter
reported.  ``cashier`` is "" for the whole counter's report, else the one operator's.
"""

from __future__ import annotations

import datetime as dt

from protocol.core import (
    COUNTER,
    At,
    Kind,
    Tx,
    no_money,
    no_notice,
    no_report,
    no_rule,
    say,
)
from protocol.errors import Amount, Problem
from protocol.event import SAFE_INT
from protocol.fields import DATE_RE, Body, Field, body, choice, spec, text
from protocol.money import yuan

#: The report's sections a close carries (those of :class:`protocol.core.ReportLine`).
SECTIONS = ("deposits", "refunds", "settlements", "charges", "counts", "opening_balances")


@body
class Figure(Body):
    """One line of the report: its section, its line (payment method, destination, what
    was counted; "" for the charges' one line), how many and how much (fen)."""

    section: str = spec(choice(SECTIONS))
    line: str = spec(text(32, required=False, lo=0), "")
    count: int = spec(Field(int, lo=0, hi=SAFE_INT))
    amount: int = spec(Field(int, lo=0, hi=SAFE_INT, money=True))


@body
class DayClosed(Body):
    day: str = spec(Field(str, pattern=DATE_RE))  # the business day, YYYY-MM-DD
    start_ms: int = spec(Field(int, lo=0, hi=SAFE_INT))  # its bounds, UTC ms: [start, end)
    end_ms: int = spec(Field(int, lo=1, hi=SAFE_INT))
    cashier: str = spec(text(64, required=False, lo=0), "")  # "" = the whole counter
    figures: tuple[Figure, ...] = spec(Field(list, lo=0, hi=64, item=Figure))
    expected_cash: int = spec(Field(int, lo=-SAFE_INT, hi=SAFE_INT, money=True))
    counted_cash: int = spec(Field(int, lo=0, hi=SAFE_INT, money=True))
    note: str = spec(text(200, required=False, lo=0), "")

    @property
    def difference(self) -> int:
        """Counted minus expected: positive is cash over, negative cash short."""
        return self.counted_cash - self.expected_cash

    def figure(self, section: str, line: str = "") -> Figure | None:
        return next((f for f in self.figures if (f.section, f.line) == (section, line)), None)

    def amount(self, section: str, line: str = "") -> int:
        f = self.figure(section, line)
        return f.amount if f is not None else 0

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        try:
            dt.date.fromisoformat(self.day)
        except ValueError:
            out.append(Problem("close.day", f"day {self.day} is not a real date", "day",
                               {"date": self.day}))
        if self.end_ms <= self.start_ms:
            out.append(Problem("close.span", "the day must end after it starts", "end_ms"))
        keys = [(f.section, f.line) for f in self.figures]
        if len(set(keys)) != len(keys):
            out.append(Problem("close.figure_twice", "a report line appears twice", "figures"))
        cash = (self.amount("deposits", "cash") - self.amount("refunds", "cash")
                - self.amount("settlements", "cash"))
        if cash != self.expected_cash:
            out.append(Problem("close.expected_cash",
                               f"the expected cash {yuan(self.expected_cash)} is not the cash "
                               f"figures' {yuan(cash)}", "expected_cash",
                               {"expected": Amount(self.expected_cash), "cash": Amount(cash)}))
        return out


def _nothing(tx: Tx, at: At, b: DayClosed) -> None:
    """A statement: it changes no record (the audit reads it from the events)."""


def _describe(b: DayClosed, lang: str) -> str:
    who = b.cashier or say(("全部操作员", "all operators"), lang)
    return say((f"{b.day} {who} 应有现金 {yuan(b.expected_cash)} 实点 {yuan(b.counted_cash)}"
                f" 差额 {yuan(b.difference)}",
                f"{b.day} {who} cash expected {yuan(b.expected_cash)} counted "
                f"{yuan(b.counted_cash)} difference {yuan(b.difference)}"), lang)


DAY_CLOSED = Kind(
    name="report.closed", body=DayClosed, signer=COUNTER, title=("日结确认", "Day closed"),
    records=lambda b: set(),
    patients=lambda b: (),
    fold=_nothing, money=no_money, rule=no_rule,
    describe=_describe, report=no_report, notice=no_notice,
)

KINDS = (DAY_CLOSED,)
