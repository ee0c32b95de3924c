"""Drug stock per pharmacy and item (DOMAIN 3.9): what a pharmacy has on hand.

Stock moves only by events: receipts from the store room, transfers between pharmacies,
adjustments with a reason (expired, damaged, a count), central's corrections (a
conflict's remedy) and dispensing (:mod:`protocol.execution`).  Every figure is a sum,
so any arrival order gives the same stock; ``on_hand`` is received + adjusted + moved −
dispensed (the stock conservation property).  A counter refuses to take stock below
zero as it knows it; two offline pharmacies can still do it together, and central
raises that as a conflict.  The doctor's
station reads it as "in stock, as this counter knows it" before a prescription is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.core import (
    CENTRAL_ONLY,
    COUNTER,
    At,
    Kind,
    Record,
    ReportLine,
    RuleConfig,
    State,
    Tx,
    no_money,
    no_notice,
    record,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import Body, Field, body, choice, spec, text

ADJUST_REASONS = ("expired", "damaged", "count", "transfer_in", "transfer_out")
MAX_QTY = 1_000_000
LABELS = {"reason.expired": ("过期", "expired"), "reason.damaged": ("破损", "damaged"),
          "reason.count": ("盘点", "count"), "reason.transfer_in": ("调入", "transfer in"),
          "reason.transfer_out": ("调出", "transfer out")}


@record("stock", ("pharmacy", "code"), indexes=(("pharmacy",),))
@dataclass(frozen=True, slots=True)
class Stock(Record):
    pharmacy: str
    code: str
    received: int = 0
    adjusted: int = 0  # net of every adjustment (negative: taken out)
    dispensed: int = 0
    moved: int = 0  # net of transfers (in − out)

    @property
    def on_hand(self) -> int:
        return self.received + self.adjusted + self.moved - self.dispensed


def add_stock(tx: Tx, pharmacy: str, code: str, **sums: int) -> None:
    s = tx.get_or_new(Stock, (pharmacy, code))
    tx.put(s.evolve(**{k: getattr(s, k) + v for k, v in sums.items()}))


def on_hand(state: State, pharmacy: str, code: str) -> int | None:
    """What ``pharmacy`` has of ``code`` as this node knows it (None: never stocked)."""
    s = state.get(Stock, (pharmacy, code))
    return None if s is None else s.on_hand


# -- stock.received -----------------------------------------------------------------------
@body
class Received(Body):
    pharmacy: str = spec(text(32))
    code: str = spec(text(32))
    qty: int = spec(Field(int, lo=1, hi=MAX_QTY))
    batch: str = spec(text(32, required=False, lo=0), "")
    source: str = spec(text(64, required=False, lo=0), "")


RECEIVED = Kind(
    name="stock.received", body=Received, signer=COUNTER, title=("入库", "Stock received"),
    records=lambda b: refs(Stock, (b.pharmacy, b.code)), patients=lambda b: (),
    fold=lambda tx, at, b: add_stock(tx, b.pharmacy, b.code, received=b.qty),
    money=no_money, rule=lambda state, b, cfg: [],
    describe=lambda b, lang: f"{b.pharmacy} {b.code} +{b.qty}" + (
        f" {b.batch}" if b.batch else ""),
    report=lambda b: ReportLine("counts", "stock_receipts"), notice=no_notice,
)


# -- stock.adjusted -----------------------------------------------------------------------
@body
class Adjusted(Body):
    pharmacy: str = spec(text(32))
    code: str = spec(text(32))
    delta: int = spec(Field(int, lo=-MAX_QTY, hi=MAX_QTY))
    reason: str = spec(choice(ADJUST_REASONS))
    note: str = spec(text(200, required=False, lo=0), "")

    def problems(self) -> list[Problem]:
        if self.delta == 0:
            return [Problem("stock.zero", "an adjustment changes the stock", "delta")]
        return []


def _rule_adjusted(state: State, b: Adjusted, cfg: RuleConfig) -> list[Problem]:
    have = on_hand(state, b.pharmacy, b.code) or 0
    if b.delta < 0 and have + b.delta < 0:
        return [Problem("stock.below_zero", f"{b.code}: {have} on hand, cannot take "
                        f"{-b.delta}", "delta", {"code": b.code, "have": have,
                                                 "qty": -b.delta})]
    return []


def _fold_adjusted(tx: Tx, at: At, b: Adjusted) -> None:
    add_stock(tx, b.pharmacy, b.code, adjusted=b.delta)


ADJUSTED = Kind(
    name="stock.adjusted", body=Adjusted, signer=COUNTER, title=("库存调整", "Stock adjusted"),
    records=lambda b: refs(Stock, (b.pharmacy, b.code)), patients=lambda b: (),
    fold=_fold_adjusted, money=no_money, rule=_rule_adjusted,
    describe=lambda b, lang: f"{b.pharmacy} {b.code} {b.delta:+d} "
                             f"{say(LABELS['reason.' + b.reason], lang)}",
    report=lambda b: ReportLine("counts", "stock_adjustments"), notice=no_notice,
)

# -- stock.transferred (from one pharmacy to another, in one event) ------------------------
@body
class Transferred(Body):
    from_pharmacy: str = spec(text(32))
    to_pharmacy: str = spec(text(32))
    code: str = spec(text(32))
    qty: int = spec(Field(int, lo=1, hi=MAX_QTY))
    note: str = spec(text(200, required=False, lo=0), "")

    def problems(self) -> list[Problem]:
        if self.from_pharmacy == self.to_pharmacy:
            return [Problem("stock.same_place", "a transfer goes to another pharmacy",
                            "to_pharmacy")]
        return []


def _rule_transferred(state: State, b: Transferred, cfg: RuleConfig) -> list[Problem]:
    have = on_hand(state, b.from_pharmacy, b.code) or 0
    if b.qty > have:
        return [Problem("stock.below_zero", f"{b.code}: {have} on hand, cannot take "
                        f"{b.qty}", "qty", {"code": b.code, "have": have, "qty": b.qty})]
    return []


def _fold_transferred(tx: Tx, at: At, b: Transferred) -> None:
    add_stock(tx, b.from_pharmacy, b.code, moved=-b.qty)
    add_stock(tx, b.to_pharmacy, b.code, moved=b.qty)


TRANSFERRED = Kind(
    name="stock.transferred", body=Transferred, signer=COUNTER, title=("调拨", "Stock transfer"),
    records=lambda b: refs(Stock, (b.from_pharmacy, b.code), (b.to_pharmacy, b.code)),
    patients=lambda b: (), fold=_fold_transferred, money=no_money, rule=_rule_transferred,
    describe=lambda b, lang: f"{b.from_pharmacy} → {b.to_pharmacy} {b.code} {b.qty}",
    report=lambda b: ReportLine("counts", "stock_transfers"), notice=no_notice,
)


# -- stock.corrected (central: a conflict's remedy, e.g. stock taken below zero) -----------
@body
class Corrected(Body):
    conflict_id: str = spec(Field(str, lo=8, hi=64))
    pharmacy: str = spec(text(32))
    code: str = spec(text(32))
    delta: int = spec(Field(int, lo=-MAX_QTY, hi=MAX_QTY))
    reason: str = spec(text(500))


CORRECTED = Kind(
    name="stock.corrected", body=Corrected, signer=CENTRAL_ONLY,
    title=("库存更正", "Stock corrected"),
    records=lambda b: refs(Stock, (b.pharmacy, b.code)), patients=lambda b: (),
    fold=lambda tx, at, b: add_stock(tx, b.pharmacy, b.code, adjusted=b.delta),
    money=no_money, rule=lambda state, b, cfg: [],
    describe=lambda b, lang: f"{b.pharmacy} {b.code} {b.delta:+d} {b.reason}",
    report=lambda b: None, notice=no_notice,
)

KINDS = (RECEIVED, ADJUSTED, TRANSFERRED, CORRECTED)
RECORDS = (Stock,)
