"""The cashier's daily report equals the ledger for a random day of counter work."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from pathlib import Path

import pytest

from edge_node import reports
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.staff import Approval
from protocol.nationalid import check_digit
from tests.conftest import node_key

SUP = Approval("sup.li", "李主管", "supervisor")  # a supervisor's checked approval

TZ, CUTOFF = "Asia/Shanghai", "06:00"
DAY = reports.day_bounds(dt.date(2026, 9, 21), TZ, CUTOFF)
METHODS = ("cash", "bank_card", "mobile")


class Clock:
    def __init__(self) -> None:
        self.t = DAY.start_ms

    def __call__(self) -> int:
        return self.t


def test_business_day_respects_cutoff_and_timezone() -> None:
    assert DAY.start_ms == int(dt.datetime(2026, 9, 20, 22, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert DAY.end_ms - DAY.start_ms == 86_400_000
    assert reports.business_day(DAY.start_ms, TZ, CUTOFF).date == DAY.date
    assert reports.business_day(DAY.start_ms - 1, TZ, CUTOFF).date == dt.date(2026, 9, 20)
    assert reports.business_day(DAY.end_ms - 1, TZ, CUTOFF).date == DAY.date
    assert DAY.shifted(1).start_ms == DAY.end_ms


def _id_number(n: int) -> str:
    first = f"110101198{n % 10}0{1 + n % 9}1{n % 10}{n % 1000:03d}"[:17]
    return first + check_digit(first)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_report_totals_equal_the_ledger(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    clock = Clock()
    led = await Ledger.open(tmp_path / "l.sqlite3", "cashier-01", node_key("cashier-01"),
                            clock=clock)
    ops = {"wang": CounterService(led, "wang"), "li": CounterService(led, "li")}
    # expected[operator][(section, key)] = [count, fen], for work inside the business day
    expected: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0]))
    cards: list[str] = []
    charges: list[str] = []

    def note(op: str, section: str, key: str, amount: int) -> None:
        if DAY.start_ms <= clock.t < DAY.end_ms:
            e = expected[op][(section, key)]
            e[0] += 1
            e[1] += amount

    # most work inside the day; some in the hour before it starts or after it ends (in
    # time order: the ledger's hybrid logical clock never goes backwards)
    times = sorted(
        DAY.start_ms - rng.randint(1, 3_600_000) if w < 0.1 else
        DAY.end_ms + rng.randint(0, 3_600_000) if w < 0.2 else
        rng.randint(DAY.start_ms, DAY.end_ms - 1)
        for w in (rng.random() for _ in range(70)))
    times[1] = DAY.start_ms  # the boundaries themselves: start counts, end does not
    times.sort()
    for n, at in enumerate(times):
        clock.t = at
        op = rng.choice(list(ops))
        svc = ops[op]
        what = rng.choice(["register", "deposit", "deposit", "charge", "charge", "refund",
                           "settle"]) if cards else "register"
        method = rng.choice(METHODS)
        try:
            if what == "register":
                card = f"86{n:08d}"
                amount = rng.randint(500, 50_000)
                await svc.register_patient(name=f"P{n}", card_no=card, first_deposit=amount,
                                           method=method, national_id=_id_number(n),
                                           reference="" if method == "cash" else f"T{n}",
                                           phone="13800000000")
                cards.append(card)
                note(op, "deposits", method, amount)
                note(op, "registrations", "", 0)
            elif what == "deposit":
                amount = rng.randint(1, 30_000)
                await svc.deposit(rng.choice(cards), amount, method,
                                  reference="" if method == "cash" else "T-1")
                note(op, "deposits", method, amount)
            elif what == "charge":
                price = rng.randint(1, 20_000)
                r = await svc.charge(rng.choice(cards), [{"code": "X", "name": "x", "qty": 1,
                                                          "unit_price": price}], "clinic")
                charges.append(r.number)
                note(op, "charges", "", price)
            elif what == "refund" and charges:
                cid = rng.choice(charges)
                charge = await led.get("charges", cid)
                amount = rng.randint(1, max(1, charge.refundable))
                to = rng.choice(["deposit", "cash"])
                await svc.refund(cid, amount, to, "Dr Zhou", "test", approval=SUP)
                note(op, "refunds", to, amount)
            elif what == "settle":
                r = await svc.settle(rng.choice(cards), method, approval=SUP)
                note(op, "settlements", method, r.lines[0][1])
        except OperationRefused:
            continue  # refused work writes nothing and must not be counted

    def tallies(report: reports.DailyReport, section: str) -> dict[str, list[int]]:
        return {k: [t.count, t.amount] for k, t in getattr(report, section).items()
                if t.count}

    for operator in ["wang", "li", ""]:
        report = await reports.daily_report(led, DAY, operator)
        mine = [expected[operator]] if operator else list(expected.values())
        for section in ("deposits", "refunds", "settlements"):
            want: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for exp in mine:
                for (sec, key), (c, a) in exp.items():
                    if sec == section:
                        want[key][0] += c
                        want[key][1] += a
            assert tallies(report, section) == dict(want), (operator, section)
        charged = [sum(e[("charges", "")][i] for e in mine) for i in (0, 1)]
        assert [report.charges.count, report.charges.amount] == charged
        assert report.registrations == sum(e[("registrations", "")][0] for e in mine)
        cash = sum(e[("deposits", "cash")][1] - e[("refunds", "cash")][1]
                   - e[("settlements", "cash")][1] for e in mine)
        assert report.expected_cash == cash
        assert reports.render_text(report, "zh").count("\n") > 20
        if not operator:  # the random day really exercised every flow
            assert report.refunds["cash"].count and report.total(report.settlements).count

    # over all time, the report's sums are the account projections' sums
    events = [ev for ev, _ in await led.own_events_between(0, 2**62)]
    forever = reports.BusinessDay(DAY.date, 0, 2**62, TZ, CUTOFF)
    everything = reports.build(events, forever, "cashier-01")
    accounts = [await led.get("accounts", p.patient_id) for p in
                [await led.get("patients", (await led.get("cards", c)).patient_id)
                 for c in cards]]
    assert everything.total(everything.deposits).amount == sum(a.deposited for a in accounts)
    assert everything.charges.amount == sum(a.charged for a in accounts)
    assert everything.refunds["cash"].amount == sum(a.refunded_to_cash for a in accounts)
    assert everything.refunds["deposit"].amount == sum(a.refunded_to_deposit for a in accounts)
    assert everything.total(everything.settlements).amount == sum(a.settled for a in accounts)
    await led.close()


def test_report_text_shows_the_drawer() -> None:
    r = reports.DailyReport(DAY, "cashier-01", "wang")
    r.deposits["cash"].add(12_345)
    r.refunds["cash"].add(45)
    r.settlements["cash"].add(300)
    r.deposits["mobile"].add(1_000)
    text = reports.render_text(r, "en", generated_ms=DAY.start_ms)
    assert "Business day 2026-09-21 (2026-09-21 06:00 to 2026-09-22 06:00" in text
    assert text.rstrip().splitlines()[-3].strip() == "¥120.00"
    zh = reports.render_text(r, "zh", generated_ms=DAY.start_ms)
    assert "应有现金" in zh and "¥133.45" in zh  # deposits total
    widths = {reports.cells(line) for line in zh.splitlines() if "¥" in line and "  " in line}
    assert widths == {48}  # CJK labels align in columns on the printer
