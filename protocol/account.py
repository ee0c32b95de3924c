"""The deposit account (DOMAIN 3.2, 3.10, 5.x): deposits, charges, refunds, settlement,
green-channel credit.  One account per patient; cards point at it.

Money is integer fen.  Each kind's ``money`` facet is the one rule of how it moves a
balance; :func:`apply_money` is the only code that changes ``Account.balance``.  The
account's other sums commute; ``closed`` (settled until the next deposit) and the
credit limit are last-writer-wins in the merge order, so any arrival order of the same
events gives the same account.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.card import CARD_ENTRY, Card, usable_card
from protocol.core import (
    CENTRAL_ONLY,
    COUNTER,
    At,
    Fen,
    Kind,
    Money,
    PatientId,
    Record,
    Ref,
    ReportLine,
    RuleConfig,
    State,
    Tx,
    earlier,
    later,
    no_money,
    no_notice,
    no_report,
    no_rule,
    record,
    refs,
    say,
)
from protocol.errors import Amount, Problem
from protocol.event import CENTRAL, SAFE_INT
from protocol.fields import (
    MAX_AMOUNT,
    Body,
    Field,
    amount,
    body,
    card_no,
    choice,
    ident,
    spec,
    text,
)
from protocol.money import yuan
from protocol.patient import Patient, patient_known

PAYMENT_METHODS = ("cash", "bank_card", "mobile")
REFUND_TO = ("deposit", "cash")
LABELS = {"method.cash": ("现金", "Cash"), "method.bank_card": ("银行卡", "Bank card"),
          "method.mobile": ("移动支付", "Mobile"), "to.deposit": ("退回预交金", "To deposit"),
          "to.cash": ("退现金", "Cash out"), "to.void": ("当日作废", "Voided same day")}
#: The item a card fee (工本费) is charged as, on card issue and replacement.
CARD_FEE_CODE = "CARD-FEE"
CARD_FEE_NAME = "工本费"


@record("accounts", ("patient_id",))
@dataclass(frozen=True, slots=True)
class Account(Record):
    """The patient's deposit account (one per patient; cards point at it)."""

    patient_id: PatientId
    balance: Fen = 0
    credit_limit: Fen = 0  # green channel: may go this far below zero
    credit_at: str = ""  # merge order of the grant that set it (the latest)
    deposited: Fen = 0
    charged: Fen = 0
    refunded_to_deposit: Fen = 0
    refunded_to_cash: Fen = 0
    settled: Fen = 0
    adjusted: Fen = 0  # central's adjustments: debts taken, charges reversed
    transferred: Fen = 0  # net balance moved in by central's merges (out: negative)
    opening: Fen = 0  # balance moved in from the old system (protocol.moving_in)
    money_seq: int = 0  # count of counter money events: the sequence of wallet stamps
    closed: int = 0  # 1 after a settlement until the next deposit (latest of the two wins)
    closed_at: str = ""
    # The newest wallet stamp written to (or accepted from) a card of this account: its
    # sequence and balance.  A card presenting an older stamp replays an old balance.
    stamp_seq: int = 0
    stamp_balance: Fen = 0

    @property
    def available(self) -> Fen:
        """What may still be charged: balance plus green-channel credit."""
        return self.balance + self.credit_limit


@record("charges", ("charge_id",), indexes=(("patient_id",),))
@dataclass(frozen=True, slots=True)
class Charge(Record):
    charge_id: str
    patient_id: PatientId = ""
    card_no: str = ""
    amount: Fen = 0
    refunded: Fen = 0
    department: str = ""
    order_ref: str = ""
    node: str = ""
    seq: int = 0
    wall_ms: int = 0
    reversed: Fen = 0  # reversed by central (a conflict remedy): no longer refundable
    charged_at: str = ""  # merge order of the charge (the earliest, if an id came twice)
    patient_at: str = ""  # before the charge arrives: the earliest refund that named it
    # The charge's lines as ``qty*unit_price,…`` (in the charge's order), and how many of
    # each line item refunds have returned as ``line=qty;…`` (sums: any order agrees).
    items: str = ""
    refunded_items: str = ""

    @property
    def refundable(self) -> Fen:
        return self.amount - self.refunded - self.reversed

    def lines(self) -> list[tuple[int, Fen]]:
        """``(qty, unit_price)`` of each line of the charge (empty before it arrives)."""
        out = []
        for part in self.items.split(",") if self.items else ():
            qty, _, price = part.partition("*")
            out.append((int(qty), int(price)))
        return out

    def refunded_qty(self) -> dict[int, int]:
        """How many of each line (by index) item refunds returned so far."""
        return _counts(self.refunded_items)


def _counts(text: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in text.split(";") if text else ():
        line, _, qty = part.partition("=")
        out[int(line)] = out.get(int(line), 0) + int(qty)
    return out


def _add_counts(text: str, add: dict[int, int]) -> str:
    counts = _counts(text)
    for line, qty in add.items():
        counts[line] = counts.get(line, 0) + qty
    return ";".join(f"{k}={v}" for k, v in sorted(counts.items()))


def apply_money(tx: Tx, money: Money, at: At) -> None:
    """The one place a balance changes: add each of the event's deltas."""
    for pid, delta in money.deltas:
        acct = tx.get_or_new(Account, pid)
        tx.put(acct.evolve(balance=acct.balance + delta))


def add(tx: Tx, pid: PatientId, **sums: int) -> None:
    """Add to the account's sums (never the balance: that is :func:`apply_money`'s)."""
    acct = tx.get_or_new(Account, pid)
    tx.put(acct.evolve(**{k: getattr(acct, k) + v for k, v in sums.items()}))


def charge_record(tx: Tx, charge_id: str, pid: PatientId, at: At) -> Charge:
    """The charge ``charge_id`` (named by ``pid`` at ``at`` if it has not arrived yet)."""
    c = tx.get_or_new(Charge, charge_id)
    if not c.charged_at and earlier(at.order, c.patient_at):
        c = c.evolve(patient_id=pid, patient_at=at.order)
    return c


# -- wallet stamps -------------------------------------------------------------------------
#: Optional on every money event: the wallet stamp the counter wrote (or is writing) to
#: the card after it — its per-account sequence and the balance it carries.  Old events
#: have neither; both or none.
def _stamp_seq() -> int:
    return spec(Field(int, False, lo=1, hi=SAFE_INT), 0)  # type: ignore[no-any-return]


def _stamp_balance() -> int | None:
    return spec(Field(int, False, lo=-MAX_AMOUNT, hi=MAX_AMOUNT, money=True), None)  # type: ignore


class Stamped(Body):
    __slots__ = ()
    patient_id: str
    stamp_seq: int
    stamp_balance: int | None

    def problems(self) -> list[Problem]:
        if bool(self.stamp_seq) != (self.stamp_balance is not None):
            return [Problem("stamp.incomplete", "stamp_seq and stamp_balance go together",
                            "stamp_seq")]
        return []


def _counter_money(tx: Tx, b: Stamped, at: At, closed: int | None = None,
                   **sums: int) -> None:
    """A counter's money event on its account, in one copy of the record: its sums, the
    account opened (0) or closed (1) if it is the latest of those in the merge order,
    and its wallet stamp if that is the newest.

    The newest stamp is the highest ``stamp_seq``; two stamps with the same seq (two
    counters offline at once) keep the lower balance, so any order of the same events
    agrees.
    """
    acct = tx.get_or_new(Account, b.patient_id)
    changes = {k: getattr(acct, k) + v for k, v in sums.items()}
    changes["money_seq"] = acct.money_seq + 1
    if closed is not None and later(at.order, acct.closed_at):
        changes["closed"], changes["closed_at"] = closed, at.order
    seq, bal = b.stamp_seq, b.stamp_balance
    if seq and bal is not None and (seq > acct.stamp_seq or (
            seq == acct.stamp_seq and bal < acct.stamp_balance)):
        changes["stamp_seq"], changes["stamp_balance"] = seq, bal
    tx.put(acct.evolve(**changes))


def _account_refs(pid: PatientId, card: str = "") -> set[Ref]:
    out = refs(Patient, pid) | refs(Account, pid)
    return out | refs(Card, card) if card else out


def _card_if_given(state: State, pid: PatientId, card: str) -> list[Problem]:
    return usable_card(state, card, pid) if card else []


def _method(b: Deposited | Settled, lang: str) -> str:
    return say(LABELS["method." + b.method], lang)


def funds(state: State, pid: PatientId, amount: Fen, what: str = "amount") -> list[Problem]:
    """The deposit covers ``amount`` (balance plus green-channel credit), and is open: the
    one check of every kind that takes money from the deposit (a charge, a visit's fees,
    an order); ``what`` names the body field the problem points at."""
    if amount <= 0:
        return []
    acct = state.get_or_new(Account, pid)
    if acct.closed:
        return [Problem("account.closed", "the account was settled; a new deposit reopens it")]
    if acct.available < amount:
        short = amount - acct.available
        credit = f" + credit {yuan(acct.credit_limit)}" if acct.credit_limit else ""
        return [Problem("charge.insufficient",
                        f"balance {yuan(acct.balance)}{credit} does not cover {yuan(amount)}"
                        f": {yuan(short)} short", what,
                        {"variant": "credit" if acct.credit_limit else "",
                         "balance": Amount(acct.balance), "credit": Amount(acct.credit_limit),
                         "amount": Amount(amount), "short": Amount(short)})]
    return []


# -- approvals on a charge (issue 11) --------------------------------------------------------
def approver() -> str:
    """The ``supervisor`` field of a kind that charges the deposit: who approved going
    past the offline limit or a card number typed by hand, with their PIN at the counter
    ("" none)."""
    return spec(text(32, required=False, lo=0), "")  # type: ignore[no-any-return]


def offline_mark() -> int:
    """The ``offline_from`` field of a kind that charges the deposit: the first of this
    counter's own seqs central had not acknowledged when it charged offline under
    limits (0: online, or no limits).  The ledger writes it, as it writes the seq; it
    names the offline run central checks on reconnect (``offline_overrun``)."""
    return spec(Field(int, False, lo=1, hi=SAFE_INT), 0)  # type: ignore[no-any-return]


def charge_checks(state: State, b: Body, amount: Fen, cfg: RuleConfig,
                  what: str = "amount") -> list[Problem]:
    """The one check of every kind that takes money from the deposit (a charge, a
    visit's fees, an order sent, checked in or dispensed): the deposit covers
    ``amount`` (:func:`funds`), and what needs a supervisor has one
    (:func:`needs_approval`).  ``b`` has ``patient_id`` and ``supervisor`` (and
    ``card_entry`` if the kind records one)."""
    pid = str(getattr(b, "patient_id", ""))
    return funds(state, pid, amount, what) + needs_approval(b, amount, cfg)


def needs_approval(b: Body, amount: Fen, cfg: RuleConfig) -> list[Problem]:
    """A charge of ``amount`` fen needs a supervisor (``supervisor`` in the event) when
    the card number was typed by hand, or while the counter is offline
    (``cfg.offline``) when it is above the floor limit or takes what this counter's
    offline run charged the account past the cap.  Exactly at a limit is within it."""
    if amount <= 0 or str(getattr(b, "supervisor", "")):
        return []
    out: list[Problem] = []
    if cfg.manual_entry_approval and getattr(b, "card_entry", "") == "manual":
        out.append(Problem("approval.manual_entry", "a card number typed by hand needs a "
                           "supervisor's approval (their id and PIN)", "supervisor"))
    run = cfg.offline
    if run is None:
        return out
    pid = str(getattr(b, "patient_id", ""))
    before = run.charged_to(pid)
    values = {"floor": Amount(run.floor), "cap": Amount(run.cap), "amount": Amount(amount),
              "charged": Amount(before)}
    if run.floor and amount > run.floor:
        out.append(Problem("approval.offline_limit", f"offline, a charge above "
                           f"{yuan(run.floor)} needs a supervisor's approval; this one is "
                           f"{yuan(amount)}", "supervisor", {"variant": "floor", **values}))
    elif run.cap and before + amount > run.cap:
        out.append(Problem("approval.offline_limit", f"offline, this counter may charge an "
                           f"account {yuan(run.cap)} until it syncs; {yuan(before)} charged "
                           f"already, {yuan(amount)} more needs a supervisor's approval",
                           "supervisor", {"variant": "cap", **values}))
    return out


# -- account.deposited ---------------------------------------------------------------------
@body
class Deposited(Stamped):
    patient_id: str = spec(ident())
    amount: int = spec(amount())
    method: str = spec(choice(PAYMENT_METHODS))
    receipt_no: str = spec(ident())
    card_no: str = spec(card_no(required=False), "")
    card_entry: str = spec(choice(CARD_ENTRY, required=False), "")
    stamp_seq: int = _stamp_seq()
    stamp_balance: int | None = _stamp_balance()
    # Optional since issue 16 (older events have neither): the cash the patient handed
    # over (change = tendered - amount), and a bank-card or mobile payment's reference.
    tendered: int = spec(Field(int, False, lo=1, hi=MAX_AMOUNT), 0)
    reference: str = spec(text(64, required=False), "")

    @property
    def change(self) -> Fen:
        return self.tendered - self.amount if self.tendered else 0

    def problems(self) -> list[Problem]:
        out = Stamped.problems(self)
        if self.tendered and self.method != "cash":
            out.append(Problem("deposit.tendered_not_cash", "only cash is tendered",
                               "tendered"))
        elif self.tendered and self.tendered < self.amount:
            out.append(Problem("deposit.tendered_short",
                               f"tendered {yuan(self.tendered)} is less than the deposit "
                               f"{yuan(self.amount)}", "tendered",
                               {"tendered": Amount(self.tendered), "amount": Amount(self.amount)}))
        return out


def _moved_in(state: State, pid: PatientId) -> bool:
    """Registered by central from the old system (:mod:`protocol.moving_in`): the patient
    paid for registration there, so no first deposit has to cover the fee again."""
    p = state.get(Patient, pid)
    return p is not None and p.registered_node == CENTRAL


def _fold_deposited(tx: Tx, at: At, b: Deposited) -> None:
    _counter_money(tx, b, at, closed=0, deposited=b.amount)


def _rule_deposited(state: State, b: Deposited, cfg: RuleConfig) -> list[Problem]:
    out = patient_known(state, b.patient_id) or _card_if_given(state, b.patient_id, b.card_no)
    acct = state.get_or_new(Account, b.patient_id)
    first = acct.deposited == 0 and not _moved_in(state, b.patient_id)
    if first and b.amount < cfg.registration_fee:
        out.append(Problem("deposit.below_registration_fee",
                           f"the first deposit must cover the registration fee "
                           f"{yuan(cfg.registration_fee)}; got {yuan(b.amount)}", "amount",
                           {"fee": Amount(cfg.registration_fee), "amount": Amount(b.amount)}))
    if b.method != "cash" and not b.reference.strip():
        out.append(Problem("deposit.reference_required",
                           f"a {b.method.replace('_', ' ')} payment needs its reference "
                           "(transaction number)", "reference"))
    return out


def _describe_deposit(b: Deposited, lang: str) -> str:
    ref = f" {b.reference}" if b.reference else ""
    return f"{_method(b, lang)}{ref} {b.receipt_no}"


DEPOSITED = Kind(
    name="account.deposited", body=Deposited, signer=COUNTER, title=("充值", "Deposit"),
    records=lambda b: _account_refs(b.patient_id, b.card_no),
    patients=lambda b: (b.patient_id,),
    fold=_fold_deposited,
    money=lambda b: Money("deposit", ((b.patient_id, b.amount),)),
    rule=_rule_deposited,
    describe=_describe_deposit,
    report=lambda b: ReportLine("deposits", b.method, b.amount),
    notice=no_notice,
)


# -- account.charged -----------------------------------------------------------------------
@body
class Item(Body):
    code: str = spec(text(32))
    name: str = spec(text(64))
    qty: int = spec(Field(int, lo=1, hi=10_000))
    unit_price: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))


@body
class Charged(Stamped):
    charge_id: str = spec(ident())
    patient_id: str = spec(ident())
    card_no: str = spec(card_no(required=False), "")
    card_entry: str = spec(choice(CARD_ENTRY, required=False), "")
    items: tuple[Item, ...] = spec(Field(list, lo=1, hi=200, item=Item))
    amount: int = spec(amount())
    department: str = spec(text(64))
    order_ref: str = spec(text(64, required=False), "")
    stamp_seq: int = _stamp_seq()
    stamp_balance: int | None = _stamp_balance()
    supervisor: str = approver()
    offline_from: int = offline_mark()

    def problems(self) -> list[Problem]:
        total = sum(i.qty * i.unit_price for i in self.items)
        if total != self.amount:
            return [Problem("charge.total_mismatch",
                            f"items add up to {total} fen but the charge says {self.amount}",
                            "amount", {"total": Amount(total), "amount": Amount(self.amount)})]
        return Stamped.problems(self)


def _fold_charged(tx: Tx, at: At, b: Charged) -> None:
    _counter_money(tx, b, at, charged=b.amount)
    c = tx.get_or_new(Charge, b.charge_id)
    if earlier(at.order, c.charged_at):  # one id charged twice: the first charge holds
        tx.put(c.evolve(patient_id=b.patient_id, card_no=b.card_no, amount=b.amount,
                       department=b.department, order_ref=b.order_ref, node=at.node,
                       seq=at.seq, wall_ms=at.wall, charged_at=at.order, patient_at="",
                       items=",".join(f"{i.qty}*{i.unit_price}" for i in b.items)))


def _rule_charged(state: State, b: Charged, cfg: RuleConfig) -> list[Problem]:
    out = patient_known(state, b.patient_id) or _card_if_given(state, b.patient_id, b.card_no)
    if out:
        return out
    if state.get(Charge, b.charge_id) is not None:
        return [Problem("charge.exists", f"charge {b.charge_id} already exists", "charge_id",
                        {"charge": b.charge_id})]
    return charge_checks(state, b, b.amount, cfg)  # (a charge's amount is at least 1 fen)


def _describe_charge(b: Charged, lang: str) -> str:
    names = ", ".join(f"{i.name}×{i.qty}" for i in b.items[:3])
    return f"{b.charge_id} {names}{'…' if len(b.items) > 3 else ''}"


CHARGED = Kind(
    name="account.charged", body=Charged, signer=COUNTER, title=("收费", "Charge"),
    records=lambda b: _account_refs(b.patient_id, b.card_no) | refs(Charge, b.charge_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_charged,
    money=lambda b: Money("charge", ((b.patient_id, -b.amount),)),
    rule=_rule_charged, describe=_describe_charge,
    report=lambda b: ReportLine("charges", "", b.amount),
    notice=no_notice,
)


# -- account.refunded ----------------------------------------------------------------------
@body
class RefundItem(Body):
    """A quantity of one line of the charge (its index in the charge's items)."""

    line: int = spec(Field(int, lo=0, hi=199))
    qty: int = spec(Field(int, lo=1, hi=10_000))


@body
class Refunded(Stamped):
    """A refund of (part of) a charge.

    Optional since issue 16: ``items`` names which of the charge's lines (and how many
    of each) the amount is for; ``void`` (1) marks the same-day void of a whole charge, a
    refund of all of it to the deposit.  A void is a refund in every sum (balance,
    charge, central's over-refund check): only the report and history tell it apart.
    """

    refund_id: str = spec(ident())
    charge_id: str = spec(ident())
    patient_id: str = spec(ident())
    amount: int = spec(amount())
    to: str = spec(choice(REFUND_TO))
    approved_by: str = spec(text(64))
    reason: str = spec(text(200))
    stamp_seq: int = _stamp_seq()
    stamp_balance: int | None = _stamp_balance()
    items: tuple[RefundItem, ...] = spec(Field(list, False, lo=1, hi=200, item=RefundItem),
                                         ())
    void: int = spec(Field(int, False, lo=1, hi=1), 0)
    #: the supervisor who approved it with their PIN at the counter (issue 11): needed
    #: for a cash refund and one above the hospital's threshold
    supervisor: str = spec(text(32, required=False, lo=0), "")

    def problems(self) -> list[Problem]:
        out = Stamped.problems(self)
        if self.void and self.to != "deposit":
            out.append(Problem("void.to_deposit", "a void returns the charge to the deposit",
                               "to"))
        if self.void and self.items:
            out.append(Problem("void.items", "a void returns the whole charge, not items",
                               "items"))
        return out

    def item_qty(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for i in self.items:
            out[i.line] = out.get(i.line, 0) + i.qty
        return out


def _fold_refunded(tx: Tx, at: At, b: Refunded) -> None:
    if b.to == "deposit":
        _counter_money(tx, b, at, refunded_to_deposit=b.amount)
    else:
        _counter_money(tx, b, at, refunded_to_cash=b.amount)
    c = charge_record(tx, b.charge_id, b.patient_id, at)
    if b.items:
        c = c.evolve(refunded_items=_add_counts(c.refunded_items, b.item_qty()))
    tx.put(c.evolve(refunded=c.refunded + b.amount))


def needs_supervisor(b: Refunded | Settled, cfg: RuleConfig) -> list[Problem]:
    """Cash out of the drawer, or a refund above the threshold: a supervisor approves."""
    if b.supervisor:
        return []
    if isinstance(b, Settled):
        variant = "cash_settle" if b.method == "cash" and b.amount else ""
    elif b.to == "cash":
        variant = "cash_refund"
    else:
        variant = "above" if b.amount > cfg.refund_approval_above else ""
    if not variant:
        return []
    return [Problem("approval.required", f"{variant.replace('_', ' ')} needs a supervisor's "
                    f"approval (their id and PIN; above {yuan(cfg.refund_approval_above)} for "
                    "refunds to the deposit)", "supervisor",
                    {"variant": variant, "threshold": Amount(cfg.refund_approval_above)})]


def _rule_refunded(state: State, b: Refunded, cfg: RuleConfig) -> list[Problem]:
    out = patient_known(state, b.patient_id) + needs_supervisor(b, cfg)
    charge = state.get(Charge, b.charge_id)
    if charge is None or not charge.charged_at:
        return [*out, Problem("refund.unknown_charge", f"charge {b.charge_id} is not known "
                              "at this counter", "charge_id", {"charge": b.charge_id})]
    if charge.patient_id != b.patient_id:
        return [*out, Problem("refund.wrong_patient", "that charge belongs to another patient",
                              "charge_id")]
    if b.void and (charge.refunded or charge.reversed):
        return [*out, Problem("void.already_refunded",
                              f"charge {b.charge_id} was already refunded or voided "
                              f"({yuan(charge.refunded + charge.reversed)}): it cannot be "
                              "voided", "charge_id")]
    if b.void and b.amount != charge.amount:
        return [*out, Problem("void.whole_charge", f"a void returns the whole charge "
                              f"{yuan(charge.amount)}, not {yuan(b.amount)}", "amount")]
    if b.items:
        out += _item_problems(charge, b)
    if b.amount > charge.refundable:
        out.append(Problem("refund.exceeds_charge",
                           f"only {yuan(charge.refundable)} of charge {b.charge_id} "
                           f"({yuan(charge.amount)}) is left to refund; asked {yuan(b.amount)}",
                           "amount", {"left": Amount(charge.refundable), "charge": b.charge_id,
                                      "charged": Amount(charge.amount),
                                      "amount": Amount(b.amount)}))
    return out


def _item_problems(charge: Charge, b: Refunded) -> list[Problem]:
    """Each line named exists, no more of it than was charged less what item refunds
    returned, and the amount is what the items cost."""
    lines, done = charge.lines(), charge.refunded_qty()
    out, total = [], 0
    for line, qty in sorted(b.item_qty().items()):
        if line >= len(lines):
            out.append(Problem("refund.item_unknown", f"charge {b.charge_id} has no line "
                               f"{line + 1}", "items"))
            continue
        charged, price = lines[line]
        left = charged - done.get(line, 0)
        if qty > left:
            out.append(Problem("refund.item_exceeds", f"line {line + 1} of charge "
                               f"{b.charge_id}: {charged} charged, {left} left to refund; "
                               f"asked {qty}", "items"))
        total += qty * price
    if not out and total != b.amount:
        out.append(Problem("refund.items_amount", f"the items refunded cost {yuan(total)}, "
                           f"but the refund says {yuan(b.amount)}", "amount"))
    return out


def _describe_refund(b: Refunded, lang: str) -> str:
    if b.void:
        return f"{say(LABELS['to.void'], lang)} {yuan(b.amount)} {b.charge_id}"
    items = " " + ",".join(f"#{i.line + 1}×{i.qty}" for i in b.items[:4]) if b.items else ""
    more = "…" if len(b.items) > 4 else ""
    return f"{say(LABELS['to.' + b.to], lang)} {yuan(b.amount)} {b.charge_id}{items}{more}"


REFUNDED = Kind(
    name="account.refunded", body=Refunded, signer=COUNTER, title=("退费", "Refund"),
    records=lambda b: _account_refs(b.patient_id) | refs(Charge, b.charge_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_refunded,
    money=lambda b: Money("refund", ((b.patient_id, b.amount),) if b.to == "deposit" else ()),
    rule=_rule_refunded,
    describe=_describe_refund,
    report=lambda b: ReportLine("refunds", "void" if b.void else b.to, b.amount),
    notice=no_notice,
)


# -- account.settled -----------------------------------------------------------------------
@body
class Settled(Stamped):
    patient_id: str = spec(ident())
    amount: int = spec(amount(lo=0))
    method: str = spec(choice(PAYMENT_METHODS))
    invoice_no: str = spec(ident())
    stamp_seq: int = _stamp_seq()
    stamp_balance: int | None = _stamp_balance()
    supervisor: str = spec(text(32, required=False, lo=0), "")  # approved cash out


def _fold_settled(tx: Tx, at: At, b: Settled) -> None:
    _counter_money(tx, b, at, closed=1, settled=b.amount)


def _rule_settled(state: State, b: Settled, cfg: RuleConfig) -> list[Problem]:
    out = patient_known(state, b.patient_id)
    if out:
        return out
    acct = state.get_or_new(Account, b.patient_id)
    if acct.balance < 0:
        return [Problem("settle.owing", f"the patient owes {yuan(-acct.balance)}: collect it "
                        "before settling", "amount", {"debt": Amount(-acct.balance)})]
    if acct.closed and acct.balance == 0:
        return [Problem("settle.already", "the account is already settled")]
    if b.amount != acct.balance:
        return [Problem("settle.partial", f"settlement returns the whole balance "
                        f"{yuan(acct.balance)}, not {yuan(b.amount)}", "amount",
                        {"balance": Amount(acct.balance), "amount": Amount(b.amount)})]
    return needs_supervisor(b, cfg)


SETTLED = Kind(
    name="account.settled", body=Settled, signer=COUNTER, title=("结算", "Settlement"),
    records=lambda b: _account_refs(b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_settled,
    money=lambda b: Money("settle", ((b.patient_id, -b.amount),)),
    rule=_rule_settled,
    describe=lambda b, lang: f"{_method(b, lang)} {b.invoice_no}",
    report=lambda b: ReportLine("settlements", b.method, b.amount),
    notice=no_notice,
)


# -- account.credit_granted ----------------------------------------------------------------
@body
class CreditGranted(Body):
    patient_id: str = spec(ident())
    limit: int = spec(amount(lo=0))
    reason: str = spec(text(200))
    authorised_by: str = spec(text(64))


def _fold_credit(tx: Tx, at: At, b: CreditGranted) -> None:
    acct = tx.get_or_new(Account, b.patient_id)
    if later(at.order, acct.credit_at):  # the latest grant holds (0 ends the channel)
        tx.put(acct.evolve(credit_limit=b.limit, credit_at=at.order))


def _rule_credit(state: State, b: CreditGranted, cfg: RuleConfig) -> list[Problem]:
    """Within the hospital's cap; a limit of 0 ends a green channel that is open."""
    out = patient_known(state, b.patient_id)
    if out:
        return out
    if b.limit > cfg.green_channel_cap:
        return [Problem("credit.above_cap", f"green-channel credit is at most "
                        f"{yuan(cfg.green_channel_cap)}; asked {yuan(b.limit)}", "limit",
                        {"cap": Amount(cfg.green_channel_cap), "amount": Amount(b.limit)})]
    if b.limit == 0 and state.get_or_new(Account, b.patient_id).credit_limit == 0:
        return [Problem("credit.none_open", "this patient has no green channel to end",
                        "limit")]
    return []


CREDIT_GRANTED = Kind(
    name="account.credit_granted", body=CreditGranted, signer=COUNTER,
    title=("绿色通道", "Green channel credit"),
    records=lambda b: _account_refs(b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_credit, money=no_money,
    rule=_rule_credit,
    describe=lambda b, lang: f"{yuan(b.limit)} {b.reason}",
    report=lambda b: ReportLine("counts", "credits_granted"),
    notice=no_notice,
)

# -- limits.set: the offline limits, from central (issue 11) --------------------------------
LIMITS_KEY = "hospital"  # one set of limits for every counter


@record("offline_limits", ("scope",))
@dataclass(frozen=True, slots=True)
class OfflineLimits(Record):
    """Central's offline limits, as the latest ``limits.set`` has them (0: none)."""

    scope: str
    floor: Fen = 0  # the most one charge may take while the counter is offline
    cap: Fen = 0  # the most one counter may charge one account between two syncs
    set_at: str = ""  # merge order of the latest limits.set


@body
class LimitsSet(Body):
    floor: int = spec(amount(lo=0))
    cap: int = spec(amount(lo=0))


def _fold_limits(tx: Tx, at: At, b: LimitsSet) -> None:
    lim = tx.get_or_new(OfflineLimits, LIMITS_KEY)
    if later(at.order, lim.set_at):  # the latest setting holds
        tx.put(lim.evolve(floor=b.floor, cap=b.cap, set_at=at.order))


def _describe_limits(b: LimitsSet, lang: str) -> str:
    none = say(("无", "none"), lang)
    floor = yuan(b.floor) if b.floor else none
    cap = yuan(b.cap) if b.cap else none
    return say((f"单笔 {floor}，每账户累计 {cap}", f"per charge {floor}, per account {cap}"),
               lang)


LIMITS_SET = Kind(
    name="limits.set", body=LimitsSet, signer=CENTRAL_ONLY,
    title=("脱机限额", "Offline limits"),
    records=lambda b: refs(OfflineLimits, LIMITS_KEY),
    patients=lambda b: (),
    fold=_fold_limits, money=no_money, rule=no_rule,
    describe=_describe_limits, report=no_report, notice=no_notice,
)

KINDS = (DEPOSITED, CHARGED, REFUNDED, SETTLED, CREDIT_GRANTED, LIMITS_SET)
RECORDS = (Account, Charge, OfflineLimits)
