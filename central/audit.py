"""The daily audit at central (DOMAIN 5.4): recompute the money from the signed events,
check it balances to the fen, compare each counter's day close, flag anomalies.

Theory of operation
-------------------
:func:`audit` is pure: every stored event (bytes, as central holds them) and a
configuration in, an :class:`AuditReport` out.  It

1. decodes every event (bytes that do not decode, bad bodies and unknown kinds are
   counted and skipped, never raised);
2. folds them with the one fold (the registry's: every counter's and the reconciler's)
   and, apart from it, adds up each account's money from each fact's ``money`` facet
   alone: an account whose folded balance is not the sum of its money is a finding; and
   refolds the events up to the position central's stored balances (the ``accounts``
   table the reconciler writes) were folded to: a stored balance that differs is one;
3. checks conservation: deposits − charges + refunds − settlements + adjustments +
   transfers + opening balances = the sum of every balance, overall and for the day
   (the balances at the day's start plus the day's flows = the balances at its end,
   each folded from the events before that instant);
4. recomputes each counter's and each cashier's day exactly as the counter's report
   does (:func:`edge_node.reports.build` over the span the close names) and compares
   it with their ``report.closed`` (:mod:`protocol.dayclose`); a counter or cashier
   with money work that day and no close is a finding, and so is cash counted that is
   not the cash expected;
5. runs the anomaly rules with the thresholds of ``[audit]`` in central's config.

A day's events are those whose HLC wall time falls in the business day (central has
no counter's own clock; a counter's HLC is its clock unless it adopted a remote one
ahead of it, which central flags as clock skew).  A close is checked against the span
it names itself.  :func:`run` does the I/O: reads the store, writes the HTML and CSV
report, raises each finding once as an ``audit_finding`` conflict, logs it at WARNING.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import html
import io
import json
import logging
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from central.reconcile import accept_remedy, conflict_id
from edge_node.reports import BusinessDay, build, business_day, day_bounds, report_figures
from protocol.account import Account, CreditGranted, Deposited, Refunded
from protocol.card import ReportedLost
from protocol.core import FLOWS, Fact, Invalid, State, Unknown
from protocol.dayclose import DayClosed
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError
from protocol.event import CENTRAL, Event, decode_event
from protocol.money import yuan

logger = logging.getLogger("onecard.audit")

Fen = int
#: What each rule's finding weighs in the conflict book.
SEVERITY = {"projection_mismatch": "high", "unbalanced": "high", "close_mismatch": "high",
            "cash_miscount": "medium", "missing_close": "medium", "large_refund": "medium",
            "large_credit": "medium", "repeated_loss": "medium",
            "deposit_refund_same_operator": "high"}
#: The report's sections of money that goes into a counter's drawer or out of it: a
#: counter or cashier with any of them in a day must close that day (a pharmacy that
#: only charges deposits has no drawer to count).
DRAWER_SECTIONS = ("deposits", "refunds", "settlements")


class AuditConfigError(Exception):
    """``[audit]`` in central's config is wrong; the message says which key and how."""


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """``[audit]`` in central.toml (every key optional)::

        [audit]
        timezone = "Asia/Shanghai"   # the hospital's business day ...
        day_cutoff = "00:00"         # ... from this local time to the next day's
        report_dir = ""              # where audit-YYYY-MM-DD.html/.csv go ("" = <db dir>/audit)
        refund_above = 100000        # fen: a refund above this is a finding (¥1,000.00)
        credit_above = 500000        # fen: a green-channel credit above this (¥5,000.00)
        loss_reports_above = 1       # more loss reports than this for one patient in a day
    """

    timezone: str = "Asia/Shanghai"
    day_cutoff: str = "00:00"
    report_dir: Path | None = None
    refund_above: Fen = 100_000
    credit_above: Fen = 500_000
    loss_reports_above: int = 1

    @classmethod
    def load(cls, path: Path, db: Path) -> AuditConfig:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise AuditConfigError(f"{path}: cannot read the config: {exc}") from None
        sec = raw.get("audit", {})
        if not isinstance(sec, dict):
            raise AuditConfigError(f"{path}: [audit] must be a table")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(sec) - names)
        if unknown:
            raise AuditConfigError(f"{path}: unknown key(s) in [audit]: {', '.join(unknown)}")

        def integer(name: str, default: int) -> int:
            v = sec.get(name, default)
            if type(v) is not int or not 0 <= v <= 2**53 - 1:
                raise AuditConfigError(f"{path}: [audit] {name} must be a whole number ≥ 0"
                                       " (fen for amounts)")
            return v

        tz, cutoff = sec.get("timezone", "Asia/Shanghai"), sec.get("day_cutoff", "00:00")
        try:
            day_bounds(dt.date(2026, 1, 1), tz, cutoff)
        except Exception:
            raise AuditConfigError(f"{path}: [audit] timezone {tz!r} or day_cutoff {cutoff!r}"
                                   " is not valid (e.g. \"Asia/Shanghai\", \"06:00\")") from None
        rd = sec.get("report_dir", "")
        if not isinstance(rd, str):
            raise AuditConfigError(f"{path}: [audit] report_dir must be a path string")
        directory = Path(rd).expanduser() if rd else db.parent / "audit"
        if not directory.is_absolute():
            directory = path.parent / directory
        d = cls()
        return cls(tz, cutoff, directory, integer("refund_above", d.refund_above),
                   integer("credit_above", d.credit_above),
                   integer("loss_reports_above", d.loss_reports_above))

    def default_day(self, now_ms: int) -> dt.date:
        """Yesterday's business day in the hospital's time zone (the timer runs after
        midnight: the day that just ended)."""
        return business_day(now_ms, self.timezone, self.day_cutoff).date - dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the audit found: its rule, what it is about, and in words."""

    rule: str
    key: tuple[str, ...]  # what identifies it within the day (its conflict id is of these)
    title: str
    explanation: str
    amount: Fen = 0
    patients: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    events: tuple[tuple[str, int], ...] = ()
    wall_ms: int = 0

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.rule, "medium")

    def conflict_id(self, day: dt.date) -> str:
        return conflict_id("audit_finding", day.isoformat(), self.rule, *self.key)


@dataclass(slots=True)
class CloseCheck:
    """One day close and the same day recomputed from central's events."""

    node: str
    cashier: str
    event: tuple[str, int]
    expected_cash: Fen  # as the close said
    counted_cash: Fen
    recomputed_cash: Fen
    differs: list[str] = field(default_factory=list)  # "section/line: close vs events"


@dataclass(slots=True)
class AuditReport:
    day: BusinessDay
    events: int = 0
    bad: int = 0  # stored bytes that no longer decode
    invalid: int = 0  # a known kind with a bad body (or signer)
    unknown: int = 0  # kinds this version does not know
    flows: dict[str, Fen] = field(default_factory=lambda: dict.fromkeys(FLOWS, 0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLOWS, 0))
    cash_refunds: Fen = 0  # refunds paid out in cash: no balance moved
    total_flows: dict[str, Fen] = field(default_factory=lambda: dict.fromkeys(FLOWS, 0))
    balances: Fen = 0  # every account's balance, folded
    opening: Fen = 0  # the balances at the day's start, folded
    closing: Fen = 0  # ... and at its end
    accounts: int = 0
    closes: list[CloseCheck] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def net(self) -> Fen:
        return sum(self.flows.values())

    @property
    def balanced(self) -> bool:
        """The book balances overall and for the day, to the fen."""
        return (sum(self.total_flows.values()) == self.balances
                and self.opening + self.net == self.closing)


@dataclass(frozen=True, slots=True)
class Stored:
    """Central's stored projection (the ``accounts`` table) and the cursor position the
    reconciler had folded when it wrote it."""

    balances: dict[str, Fen]
    pos: int


def _decode(rows: Iterable[tuple[int, bytes]], rep: AuditReport) -> list[tuple[int, Fact]]:
    """Each fact with its cursor position; what is not a fact is counted and skipped."""
    facts: list[tuple[int, Fact]] = []
    for pos, data in rows:
        rep.events += 1
        try:
            ev = decode_event(data)
        except (ProtocolError, ValueError, TypeError):
            rep.bad += 1
            continue
        d = REGISTRY.decode(ev)
        if isinstance(d, Invalid):
            rep.invalid += 1
        elif isinstance(d, Unknown):
            rep.unknown += 1
        else:
            facts.append((pos, d))
    return facts


def _ref(ev: Event) -> tuple[str, int]:
    return (ev.node, ev.seq)


def _fold(facts: Iterable[Fact]) -> dict[str, Fen]:
    """Each account's balance after ``facts``, by the one fold (the registry's, as every
    counter and the reconciler fold); a fact the fold fails on is logged and left out."""
    state = State()
    for f in facts:
        try:
            REGISTRY.apply_fact(state, f)
        except Exception:  # a fold bug must not stop the audit: the sums then differ
            logger.exception("folding %s #%d (%s) failed", f.at.node, f.at.seq, f.kind.name)
    return {a.patient_id: a.balance for a in state.all(Account)}


def audit(rows: list[tuple[int, bytes]], day: BusinessDay, cfg: AuditConfig,
          stored: Stored | None = None) -> AuditReport:
    """The audit of ``day`` over every stored event ``(pos, bytes)``, and of central's
    stored projection (pure; never raises for an event)."""
    rep = AuditReport(day)
    positioned = _decode(rows, rep)
    positioned.sort(key=lambda pf: pf[1].at.order)
    facts = [f for _, f in positioned]
    # -- 2. every account: the fold against its money facets --------------------------
    folded = _fold(facts)
    summed: dict[str, Fen] = {}
    for f in facts:
        for pid, delta in f.money.deltas:
            summed[pid] = summed.get(pid, 0) + delta
        if f.money.flow:
            rep.total_flows[f.money.flow] += sum(d for _, d in f.money.deltas)
    rep.accounts = len(folded)
    rep.balances = sum(folded.values())
    for pid in sorted(set(summed) | set(folded)):
        got, want = folded.get(pid, 0), summed.get(pid, 0)
        if got != want:
            rep.findings.append(Finding(
                "projection_mismatch", (pid,), f"Account {pid}: balance {yuan(got)}, its "
                f"events say {yuan(want)}",
                f"Central's projection of {pid}'s account holds {yuan(got)}, but the money "
                f"of its signed events adds up to {yuan(want)} ({yuan(got - want)} apart).",
                abs(got - want), (pid,)))
    if stored is not None:  # the table against the events it was folded from
        refolded = _fold(f for pos, f in positioned if pos <= stored.pos)
        for pid in sorted(set(refolded) | set(stored.balances)):
            held, want = stored.balances.get(pid), refolded.get(pid, 0)
            if held is None and want == 0:
                continue
            if held != want:
                shown = yuan(held) if held is not None else "missing"
                rep.findings.append(Finding(
                    "projection_mismatch", ("stored", pid), f"Stored balance of {pid}: "
                    f"{shown}, its events say {yuan(want)}",
                    f"Central's accounts table holds {shown} for {pid}, but the signed "
                    f"events it was folded from (to cursor position {stored.pos}) give "
                    f"{yuan(want)}. Someone or something changed the database: check it "
                    "(the events are the truth; `onecard-central conflicts refold` refolds the "
                    "table from them).",
                    abs((held or 0) - want), (pid,)))
    # -- 3. conservation, overall and for the day --------------------------------------
    in_day = [f for f in facts if day.start_ms <= f.at.wall < day.end_ms]
    for f in in_day:
        if f.money.flow:
            rep.flows[f.money.flow] += sum(d for _, d in f.money.deltas)
            rep.counts[f.money.flow] += 1
        if isinstance(f.body, Refunded) and f.body.to == "cash":
            rep.cash_refunds += f.body.amount
    rep.opening = sum(_fold(f for f in facts if f.at.wall < day.start_ms).values())
    rep.closing = sum(_fold(f for f in facts if f.at.wall < day.end_ms).values())
    if sum(rep.total_flows.values()) != rep.balances:
        flows = sum(rep.total_flows.values())
        rep.findings.append(Finding(
            "unbalanced", ("overall",), f"The book does not balance: flows {yuan(flows)}, "
            f"balances {yuan(rep.balances)}",
            f"Every flow ever ({', '.join(f'{k} {yuan(v)}' for k, v in rep.total_flows.items())}"
            f") adds up to {yuan(flows)}, but the accounts hold {yuan(rep.balances)}.",
            abs(flows - rep.balances)))
    if rep.opening + rep.net != rep.closing:
        rep.findings.append(Finding(
            "unbalanced", ("day",), f"The day does not balance: {yuan(rep.opening)} + "
            f"{yuan(rep.net)} ≠ {yuan(rep.closing)}",
            f"The balances at the day's start ({yuan(rep.opening)}) plus its flows "
            f"({yuan(rep.net)}) should be the balances at its end ({yuan(rep.closing)}).",
            abs(rep.opening + rep.net - rep.closing)))
    # -- 4. each counter's and cashier's day against its close --------------------------
    events = [f.event for f in facts]
    closes = [f for f in facts if isinstance(f.body, DayClosed)
              and f.body.day == day.date.isoformat()]
    covered: set[tuple[str, str]] = set()  # (node, cashier); "" = the whole counter
    for f in closes:
        b: DayClosed = f.body
        span = BusinessDay(day.date, b.start_ms, b.end_ms, cfg.timezone, cfg.day_cutoff)
        again = build(events, span, f.at.node, b.cashier)
        mine = report_figures(again)
        said = {(x.section, x.line): (x.count, x.amount) for x in b.figures}
        check = CloseCheck(f.at.node, b.cashier, _ref(f.event), b.expected_cash,
                           b.counted_cash, again.expected_cash)
        for key in sorted(set(mine) | set(said)):
            if mine.get(key, (0, 0)) != said.get(key, (0, 0)):
                c, a = said.get(key, (0, 0))
                c2, a2 = mine.get(key, (0, 0))
                check.differs.append(f"{key[0]}/{key[1] or '-'}: close {c} × {yuan(a)}, "
                                     f"events {c2} × {yuan(a2)}")
        rep.closes.append(check)
        covered.add((f.at.node, b.cashier))
        who = f"{f.at.node}" + (f" ({b.cashier})" if b.cashier else "")
        if check.differs or again.expected_cash != b.expected_cash:
            rep.findings.append(Finding(
                "close_mismatch", (f.at.node, str(f.at.seq)),
                f"Day close of {who} differs from the events",
                f"{who} closed {day.date} ({f.at.node} #{f.at.seq}) with figures the events "
                f"do not give: {'; '.join(check.differs) or 'expected cash'} (expected cash: "
                f"close {yuan(b.expected_cash)}, events {yuan(again.expected_cash)}).",
                abs(again.expected_cash - b.expected_cash), (), (f.at.node,), (_ref(f.event),),
                f.at.wall))
        if b.counted_cash != b.expected_cash:
            rep.findings.append(Finding(
                "cash_miscount", (f.at.node, str(f.at.seq)),
                f"Cash {'short' if b.difference < 0 else 'over'} {yuan(abs(b.difference))} "
                f"— {who}",
                f"{who} counted {yuan(b.counted_cash)} in the drawer on {day.date}, but the "
                f"day's cash was {yuan(b.expected_cash)}: {yuan(b.difference)}.",
                abs(b.difference), (), (f.at.node,), (_ref(f.event),), f.at.wall))
    # who worked money at a counter that day (by the report's own sections)
    worked: dict[tuple[str, str], Event] = {}
    for f in in_day:
        line = f.kind.report(f.body)
        if f.at.node != CENTRAL and line is not None and line.section in DRAWER_SECTIONS:
            worked.setdefault((f.at.node, f.event.operator), f.event)
    for (node, op), first in sorted(worked.items()):
        if (node, "") in covered or (node, op) in covered:
            continue
        rep.findings.append(Finding(
            "missing_close", (node, op), f"No day close — {node} ({op or '-'})",
            f"{op or 'An operator'} took money at {node} on {day.date} (first: {node} "
            f"#{first.seq}), but neither the counter nor this cashier closed the day.",
            0, (), (node,), (_ref(first),), first.hlc.wall))
    # -- 5. anomaly rules ------------------------------------------------------------------
    losses: dict[str, list[Fact]] = {}
    deposited: dict[tuple[str, str], Fact] = {}
    refunded: dict[tuple[str, str], Fact] = {}
    for f in in_day:
        b2 = f.body
        if isinstance(b2, Refunded) and b2.amount > cfg.refund_above:
            rep.findings.append(Finding(
                "large_refund", (b2.refund_id,), f"Refund {yuan(b2.amount)} — {b2.patient_id}",
                f"Refund {b2.refund_id} of {yuan(b2.amount)} ({b2.to}) on charge {b2.charge_id}"
                f" at {f.at.node} by {f.event.operator or '-'}, approved by {b2.approved_by}: "
                f"above the limit {yuan(cfg.refund_above)}. Reason: {b2.reason}",
                b2.amount, (b2.patient_id,), (f.at.node,), (_ref(f.event),), f.at.wall))
        elif isinstance(b2, CreditGranted) and b2.limit > cfg.credit_above:
            rep.findings.append(Finding(
                "large_credit", (f.at.node, str(f.at.seq)),
                f"Green channel {yuan(b2.limit)} — {b2.patient_id}",
                f"A green-channel credit of {yuan(b2.limit)} for {b2.patient_id} at "
                f"{f.at.node}, authorised by {b2.authorised_by}: above the limit "
                f"{yuan(cfg.credit_above)}. Reason: {b2.reason}",
                b2.limit, (b2.patient_id,), (f.at.node,), (_ref(f.event),), f.at.wall))
        elif isinstance(b2, ReportedLost):
            losses.setdefault(b2.patient_id, []).append(f)
        if isinstance(b2, Deposited) and f.event.operator:
            deposited.setdefault((f.event.operator, b2.patient_id), f)
        elif isinstance(b2, Refunded) and f.event.operator:
            refunded.setdefault((f.event.operator, b2.patient_id), f)
    for pid, lost in sorted(losses.items()):
        if len(lost) > cfg.loss_reports_above:
            rep.findings.append(Finding(
                "repeated_loss", (pid,), f"{len(lost)} loss reports — {pid}",
                f"{pid}'s cards were reported lost {len(lost)} times on {day.date} ("
                + ", ".join(f"{x.at.node} #{x.at.seq}" for x in lost)
                + f"): more than {cfg.loss_reports_above}. Check for malicious loss reports.",
                0, (pid,), tuple(sorted({x.at.node for x in lost})),
                tuple(_ref(x.event) for x in lost), lost[0].at.wall))
    for key in sorted(set(deposited) & set(refunded)):
        op, pid = key
        d, r = deposited[key], refunded[key]
        rep.findings.append(Finding(
            "deposit_refund_same_operator", key,
            f"Deposit and refund by {op} — {pid}",
            f"{op} took a deposit of {yuan(d.body.amount)} ({d.at.node} #{d.at.seq}) and "
            f"gave a refund of {yuan(r.body.amount)} ({r.at.node} #{r.at.seq}) on {pid}'s "
            f"account the same day.", r.body.amount, (pid,),
            tuple(sorted({d.at.node, r.at.node})), (_ref(d.event), _ref(r.event)), r.at.wall))
    return rep


# -- output -------------------------------------------------------------------------------
def render_csv(rep: AuditReport) -> str:
    """The day's figures as CSV: section, item, count, fen, yuan."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "item", "count", "fen", "yuan"])
    d = rep.day.date.isoformat()
    w.writerow(["day", d, "", "", ""])
    for flow in FLOWS:
        w.writerow(["flow", flow, rep.counts[flow], rep.flows[flow], yuan(rep.flows[flow])])
    w.writerow(["flow", "refund_cash", "", rep.cash_refunds, yuan(rep.cash_refunds)])
    for name, fen in (("opening", rep.opening), ("net", rep.net), ("closing", rep.closing),
                      ("all_balances", rep.balances)):
        w.writerow(["balance", name, "", fen, yuan(fen)])
    w.writerow(["balance", "balanced", "", int(rep.balanced), ""])
    for c in rep.closes:
        who = f"{c.node}/{c.cashier or '*'}"
        w.writerow(["close", f"{who} expected", "", c.expected_cash, yuan(c.expected_cash)])
        w.writerow(["close", f"{who} counted", "", c.counted_cash, yuan(c.counted_cash)])
        w.writerow(["close", f"{who} recomputed", "", c.recomputed_cash,
                    yuan(c.recomputed_cash)])
    for kind, n in (("bad", rep.bad), ("invalid", rep.invalid), ("unknown", rep.unknown)):
        w.writerow(["skipped", kind, n, "", ""])
    for f in rep.findings:
        w.writerow(["finding", f"{f.rule}: {f.title}", "", f.amount, yuan(f.amount)])
    return out.getvalue()


def _svg(rep: AuditReport) -> str:
    """A small bar chart of the day's flows (in yuan: bars right for money in, left out)."""
    rows = [(k, v) for k, v in rep.flows.items()] + [("refund_cash", -rep.cash_refunds)]
    top = max([abs(v) for _, v in rows] + [1])
    h, mid, half = 22 * len(rows) + 10, 260, 200
    bars = []
    for i, (name, fen) in enumerate(rows):
        y = 5 + 22 * i
        width = round(half * abs(fen) / top)
        x = mid if fen >= 0 else mid - width
        color = "#2e7d32" if fen >= 0 else "#c62828"
        bars.append(f'<text x="5" y="{y + 14}" font-size="12">{html.escape(name)}</text>'
                    f'<rect x="{x}" y="{y}" width="{width}" height="16" fill="{color}"/>'
                    f'<text x="{mid + half + 10}" y="{y + 14}" font-size="12">'
                    f"{html.escape(yuan(fen))}</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="{h}" '
            f'role="img" aria-label="flows">'
            f'<line x1="{mid}" y1="0" x2="{mid}" y2="{h}" stroke="#999"/>'
            + "".join(bars) + "</svg>")


def render_html(rep: AuditReport, tr: Any) -> str:
    """The day's report page: flows (with the chart), balances, closes, findings."""
    e = html.escape
    d = rep.day.date.isoformat()

    def table(head: list[str], rows: list[list[str]]) -> str:
        th = "".join(f"<th>{e(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{th}</tr>{body}</table>"

    flows = [[tr(f"flow.{k}"), str(rep.counts[k]), yuan(v)] for k, v in rep.flows.items()]
    flows.append([tr("audit.cash_out"), "", yuan(rep.cash_refunds)])
    balances = [[tr("audit.opening"), yuan(rep.opening)], [tr("audit.net"), yuan(rep.net)],
                [tr("audit.closing"), yuan(rep.closing)]]
    closes = [[c.node, c.cashier or "*", f"{c.event[0]} #{c.event[1]}", yuan(c.expected_cash),
               yuan(c.recomputed_cash), yuan(c.counted_cash), "; ".join(c.differs)]
              for c in rep.closes]
    findings = [[f.severity, tr(f"audit.rule.{f.rule}"), f.title, yuan(f.amount),
                 f.explanation] for f in rep.findings]
    state = tr("audit.balanced") if rep.balanced else tr("audit.not_balanced")
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>{e(tr('audit.title', day=d))}</title><style>body{{font-family:sans-serif}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "</style></head><body>"
        f"<h1>{e(tr('audit.title', day=d))}</h1>"
        f"<p>{e(state)} — {e(tr('audit.findings', n=len(rep.findings)))}</p>"
        f"{_svg(rep)}"
        + table(["", "#", "¥"], flows) + "<br>" + table(["", "¥"], balances) + "<br>"
        + table(["node", "cashier", "event", "expected", "recomputed", "counted", ""], closes)
        + "<br>" + table(["severity", "rule", "title", "¥", ""], findings)
        + f"<p>{e(tr('audit.skipped', bad=rep.bad, invalid=rep.invalid, unknown=rep.unknown))}"
        "</p></body></html>\n")


def write_files(rep: AuditReport, directory: Path, tr: Any) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    d = rep.day.date.isoformat()
    h, c = directory / f"audit-{d}.html", directory / f"audit-{d}.csv"
    for path, text in ((h, render_html(rep, tr)), (c, render_csv(rep))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return h, c


def conflict_statements(rep: AuditReport, now_ms: int) -> list[tuple[str, tuple[object, ...]]]:
    """Each finding as an ``audit_finding`` conflict, inserted once (a second run of the
    same day finds the same ids and leaves the book as it is)."""
    out: list[tuple[str, tuple[object, ...]]] = []
    for f in rep.findings:
        cid = f.conflict_id(rep.day.date)
        remedies = [accept_remedy(cid, None, "Marks the finding reviewed.")]
        rem = json.dumps([{"code": r.code, "label": r.label, "effect": r.effect,
                           "events": [[k, b] for k, b in r.events]} for r in remedies],
                         ensure_ascii=False, sort_keys=True)
        out.append((
            "INSERT INTO conflicts (id, kind, severity, title, explanation, amount, wall_ms,"
            " raised_ms, updated_ms, nodes, patients, cards, events, remedies)"
            " VALUES (?, 'audit_finding', ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (cid, f.severity, f"Audit {rep.day.date}: {f.title}", f.explanation, f.amount,
             f.wall_ms or rep.day.start_ms, now_ms, now_ms, json.dumps(list(f.nodes)),
             json.dumps(list(f.patients)), json.dumps([list(x) for x in f.events]), rem)))
    return out


async def stored_events(store: Any, page: int = 5000, max_pages: int = 1_000_000
                        ) -> list[tuple[int, bytes]]:
    """Every event central holds with its cursor position, in cursor order (bounded)."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    for _ in range(max_pages):
        rows = await store.events_since(pos, page)
        if not rows:
            break
        out += [(pos, data) for pos, data, _ in rows]
        pos = rows[-1][0]
    return out


async def run(store: Any, day: dt.date, cfg: AuditConfig, tr: Any,
              now_ms: int | None = None) -> tuple[AuditReport, Path, Path]:
    """Audit ``day`` on ``store``: files written, findings raised once and logged."""
    bounds = day_bounds(day, cfg.timezone, cfg.day_cutoff)
    # one statement: the table and the position it was folded to, in one snapshot
    held = await store.read("SELECT m.value, a.patient_id, a.balance FROM meta m LEFT JOIN"
                            " accounts a ON 1 = 1 WHERE m.key = 'accounts_pos'")
    stored = Stored({str(r[1]): int(r[2]) for r in held if r[1] is not None},
                    int(held[0][0])) if held else None
    rows = await stored_events(store)
    rep = audit(rows, bounds, cfg, stored)
    assert cfg.report_dir is not None
    html_path, csv_path = write_files(rep, cfg.report_dir, tr)
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    await store.write_many(conflict_statements(rep, now))
    for f in rep.findings:
        logger.warning("audit %s %s [%s] %s: %s", day, f.conflict_id(day), f.rule, f.title,
                       f.explanation)
    if rep.bad or rep.invalid or rep.unknown:
        logger.warning("audit %s: skipped %d undecodable, %d malformed, %d unknown events",
                       day, rep.bad, rep.invalid, rep.unknown)
    return rep, html_path, csv_path
