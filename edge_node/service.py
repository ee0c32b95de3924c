"""The counter's operations: what the TUI and the CLI call (and nothing else touches SQL).

Each method turns what staff entered into one atomic ledger append of one or more
events, with ids that cannot collide across counters.  Bad input and broken rules
raise :class:`~edge_node.errors.OperationRefused` listing every problem, having
written nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger, Op, OpContext
from edge_node.search import mask_phone
from protocol import nationalid
from protocol.account import Account, Charge
from protocol.card import CARD_ENTRY, Card
from protocol.core import State
from protocol.errors import Problem
from protocol.event import Event
from protocol.money import yuan
from protocol.patient import Patient

Fen = int


@dataclass(frozen=True, slots=True)
class PatientView:
    """Everything a counter shows when a card is tapped."""

    patient: Patient
    account: Account
    cards: tuple[Card, ...]
    card: Card | None = None  # the card that was presented, if any

    @property
    def active_card(self) -> Card | None:
        return next((c for c in self.cards if c.status == "active"), None)


@dataclass(frozen=True, slots=True)
class PatientHit:
    """One patient a search found: what the counter lists to pick the right one."""

    patient: Patient
    account: Account
    cards: tuple[Card, ...]

    @property
    def active_card(self) -> Card | None:
        return next((c for c in self.cards if c.status == "active"), None)

    @property
    def card(self) -> Card | None:
        """The card businesses would use: the active one, else the newest."""
        return self.active_card or (self.cards[-1] if self.cards else None)

    @property
    def masked_national_id(self) -> str:
        return nationalid.mask(self.patient.national_id)

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.patient.phone)

    @property
    def merged_into(self) -> str:
        return self.patient.merged_into


@dataclass(frozen=True, slots=True)
class Receipt:
    """What was done, for the receipt printer and the screen."""

    title: str
    patient: Patient
    events: tuple[Event, ...]
    balance: Fen
    lines: tuple[tuple[str, Fen], ...] = ()
    number: str = ""
    at_ms: int = 0  # when, by this counter's own clock (its receipt prints this)


def _refuse(code: str, message: str, field: str = "") -> OperationRefused:
    return OperationRefused([Problem(code, message, field)])


@dataclass(frozen=True, slots=True)
class CardWallet:
    """What the presented card's wallet stamp said, once verified at the tap.

    ``seq`` 0: the card had no stamp this counter could verify (then only the ledger
    counts).  Built by the counter from :func:`edge_node.card.layout.decide_balance`.
    """

    seq: int = 0
    balance: Fen = 0


def known_money(account: Account, wallet: CardWallet | None = None) -> tuple[Fen, int]:
    """The balance this counter may count on, and the newest money sequence it knows of.

    The ledger's own sums, lowered by the newest wallet stamp it has written or accepted
    when that stamp is *ahead* of its money events (it then carries spending at an
    offline counter not synced yet), then by the card's stamp if that is newer still.
    Never higher than the ledger's balance: a stamp can only lower it.  Once the ledger
    has as many money events as the stamp counted, its own sums (which also carry
    central's adjustments, which no stamp sees) are the better knowledge.
    """
    balance, seq = account.balance, account.money_seq
    if account.stamp_seq > seq:
        balance, seq = min(balance, account.stamp_balance), account.stamp_seq
    if wallet is not None and (wallet.seq > seq or (wallet.seq == seq
                                                     and wallet.balance < balance)):
        # (the same seq with a lower balance: two counters charged offline at once)
        balance, seq = min(balance, wallet.balance), wallet.seq
    return balance, seq


def _stamp_fields(account: Account, wallet: CardWallet | None, delta: Fen,
                  stamp: bool) -> dict[str, Any]:
    """The wallet stamp a money event will write to the card (none without a chip)."""
    if not stamp:
        return {}
    balance, seq = known_money(account, wallet)
    return {"stamp_seq": seq + 1, "stamp_balance": balance + delta}


class CounterService:
    """Counter operations on one ledger, done as the logged-in ``operator``."""

    def __init__(self, ledger: Ledger, operator: str = "") -> None:
        self.ledger = ledger
        self.operator = operator

    # -- lookups -------------------------------------------------------------------------
    async def lookup_card(self, card_no: str) -> PatientView:
        """The patient behind a card (lost/replaced cards too: the panel shows the status)."""
        card = await self.ledger.get(Card, card_no)
        if card is None:
            raise _refuse("card.unknown", f"card {card_no} is not known at this counter",
                          "card_no")
        view = await self.patient(card.patient_id)
        return PatientView(view.patient, view.account, view.cards, card)

    async def patient(self, patient_id: str) -> PatientView:
        patient = await self.ledger.get(Patient, patient_id)
        if patient is None:
            raise _refuse("patient.unknown", f"no patient {patient_id} is known at this counter",
                          "patient_id")
        account = await self.ledger.get(Account, patient_id) or Account(patient_id)
        cards = tuple(await self.ledger.cards_of(patient_id))
        return PatientView(patient, account, cards)

    async def search_patients(self, query: str, limit: int = 50) -> list[PatientHit]:
        """The patients ``query`` finds, best first (at most ``limit``, 200 at most).

        By patient number, full national ID number, phone (whole, or its last four
        digits), name or part of it, pinyin (``zhangsan``) or pinyin initials (``zs``):
        exact numbers first, then the phone's last digits, the exact name, names that
        start with it, names that contain it, then pinyin (see :mod:`edge_node.search`).
        Merged records are found too (:attr:`PatientHit.merged_into` says where to go).
        """
        if not query.strip():
            return []
        found = await self.ledger.search_patients(query, max(1, min(limit, 200)))
        return [PatientHit(p, a or Account(p.patient_id), tuple(cards))
                for p, a, cards in found]

    async def survivor(self, patient_id: str) -> str:
        """The record ``patient_id`` was merged into, and so on (itself if never merged)."""
        seen = [patient_id]
        while len(seen) <= 16:
            patient = await self.ledger.get(Patient, seen[-1])
            if patient is None or not patient.merged_into or patient.merged_into in seen:
                break
            seen.append(patient.merged_into)
        return seen[-1]

    async def open_patient(self, patient_id: str) -> PatientView:
        """The patient as the counter opens them without a card (found by a search): the
        record it was merged into if it was, with its active card as the card presented
        (None when it has none)."""
        view = await self.patient(await self.survivor(patient_id))
        return PatientView(view.patient, view.account, view.cards, view.active_card)

    async def next_patient_id(self) -> str:
        """The patient id the next registration at this counter will get.

        Ids are ``P-<node>-<seq>`` with the seq of the ``patient.registered`` event, and
        only this counter's TUI appends its own events, so the prediction holds unless
        another own append comes first; :meth:`register_patient` with
        ``expect_patient_id`` refuses (writing nothing) if it did.  The card is written
        with this id *before* the registration is appended (write-then-verify).
        """
        head = await self.ledger.head()
        return OpContext(self.ledger.node_id, head.seq + 1, State()).new_id("P")

    async def check_new_card(self, card_no: str, national_id: str = "",
                             first_deposit: Fen | None = None) -> None:
        """Refuse, before a chip is written, what the append would refuse anyway.

        Write-then-verify writes the card before the ledger: the likely refusals (card
        number taken, ID number registered, first deposit below the fee) are checked
        first, so staff fix the form instead of holding a written card nobody owns.
        """
        problems: list[Problem] = []
        if await self.ledger.get(Card, card_no) is not None:
            problems.append(Problem("card.exists", f"card {card_no} has already been issued",
                                    "card_no"))
        if national_id.strip():
            parsed = nationalid.parse(national_id)
            if isinstance(parsed, Problem):
                problems.append(parsed)
            else:
                existing = await self.find_by_national_id(parsed.number)
                if existing:
                    problems.append(Problem(
                        "patient.duplicate_national_id",
                        f"this ID number is already registered as patient "
                        f"{existing[0].patient_id} ({existing[0].name}): use that record",
                        "national_id"))
        fee = self.ledger.rule_config.registration_fee
        if first_deposit is not None and first_deposit < fee:
            problems.append(Problem("deposit.below_registration_fee",
                                    f"the first deposit must cover the registration fee "
                                    f"{yuan(fee)}; got {yuan(first_deposit)}", "first_deposit"))
        if problems:
            raise OperationRefused(problems)

    async def find_by_national_id(self, number: str) -> list[Patient]:
        return await self.ledger.find_patients("national_id", number.strip().upper())

    async def charges(self, patient_id: str) -> list[Charge]:
        return await self.ledger.charges_of(patient_id)

    async def history(self, patient_id: str, limit: int = 200) -> list[Event]:
        return await self.ledger.history(patient_id, limit)

    async def _append(self, ops: list[Op], title: str,
                      lines: tuple[tuple[str, Fen], ...] = (), number_field: str = "") -> Receipt:
        """Append ``ops`` in one transaction; the receipt reads the state it left behind."""
        result = await self.ledger.append_ops(ops, self.operator)
        events = tuple(a.event for a in result.appended)
        pid = events[-1].body["patient_id"]
        patient = result.state.get(Patient, pid) or await self.ledger.get(Patient, pid)
        number = next((str(e.body[number_field]) for e in events if number_field in e.body), "")
        balance = result.state.get_or_new(Account, pid).balance
        return Receipt(title, patient, events, balance, lines, number, result.local_ms)

    def _by_card(self, kind: str, card_no: str,
                 build: Callable[[Card, OpContext], dict[str, Any]]) -> Op:
        """An op on the account behind ``card_no``, resolved inside the transaction."""
        def body(ctx: OpContext) -> dict[str, Any]:
            card = ctx.state.get(Card, card_no)
            if card is None:
                raise _refuse("card.unknown", f"card {card_no} is not known at this counter",
                              "card_no")
            return build(card, ctx)
        return Op(kind, body, frozenset({(Card, card_no)}))

    # -- registration and cards ----------------------------------------------------------
    async def register_patient(
        self,
        *,
        name: str,
        card_no: str,
        first_deposit: Fen,
        method: str = "cash",
        national_id: str = "",
        sex: str = "",
        birth_date: str = "",
        phone: str = "",
        contact: str = "",
        medium: str = "chip",
        expect_patient_id: str = "",
        stamp: bool = False,
    ) -> Receipt:
        """Register a first-visit patient, issue their card and take the first deposit.

        With a national ID number, sex and birth date are derived from it (and must agree
        if also given).  All three events commit together or not at all.
        ``expect_patient_id``: the id already written to the chip (see
        :meth:`next_patient_id`); refused if the patient would get another one.
        ``stamp``: the card is on a chip reader and gets a wallet stamp after this.
        """
        body: dict[str, Any] = {"name": name.strip(), "sex": sex, "birth_date": birth_date}
        if national_id.strip():
            parsed = nationalid.parse(national_id)
            if isinstance(parsed, Problem):
                raise OperationRefused([parsed])
            body["national_id"] = parsed.number
            body["sex"] = sex or parsed.sex
            body["birth_date"] = birth_date or parsed.birth_date
            existing = await self.find_by_national_id(parsed.number)
            if existing:
                raise _refuse("patient.duplicate_national_id",
                              f"this ID number is already registered as patient "
                              f"{existing[0].patient_id} ({existing[0].name}): use that record",
                              "national_id")
        if phone.strip():
            body["phone"] = phone.strip()
        if contact.strip():
            body["contact"] = contact.strip()
        holder: dict[str, str] = {}

        def patient_body(ctx: OpContext) -> dict[str, Any]:
            holder["patient_id"] = ctx.new_id("P")
            if expect_patient_id and holder["patient_id"] != expect_patient_id:
                raise _refuse("patient.id_moved",
                              f"the card was written for patient {expect_patient_id} but the "
                              f"next patient number is {holder['patient_id']}: issue again",
                              "card_no")
            return {"patient_id": holder["patient_id"], **body}

        def card_body(ctx: OpContext) -> dict[str, Any]:
            return {"card_no": card_no, "patient_id": holder["patient_id"], "medium": medium}

        def deposit_body(ctx: OpContext) -> dict[str, Any]:
            pid = holder["patient_id"]
            return {"patient_id": pid, "amount": first_deposit,
                    "method": method, "receipt_no": ctx.new_id("D"), "card_no": card_no,
                    **_stamp_fields(ctx.state.get_or_new(Account, pid), None, first_deposit,
                                    stamp)}

        ops = [Op("patient.registered", patient_body), Op("card.issued", card_body),
               Op("account.deposited", deposit_body)]
        return await self._append(ops, "Registration and card", (("Deposit", first_deposit),),
                                  "receipt_no")

    async def update_patient(self, patient_id: str, **changes: str) -> Receipt:
        body: dict[str, Any] = {"patient_id": patient_id}
        body.update({k: v.strip() for k, v in changes.items() if v is not None})
        return await self._append([Op("patient.updated", body)], "Patient details")

    async def issue_card(self, patient_id: str, card_no: str, medium: str = "chip") -> Receipt:
        body = {"card_no": card_no, "patient_id": patient_id, "medium": medium}
        return await self._append([Op("card.issued", body)], "Card issued")

    async def report_lost(self, card_no: str, verified_by: str, reason: str = "") -> Receipt:
        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            b: dict[str, Any] = {"card_no": card_no, "patient_id": card.patient_id,
                                 "verified_by": verified_by}
            if reason.strip():
                b["reason"] = reason.strip()
            return b
        return await self._append([self._by_card("card.reported_lost", card_no, body)],
                                  "Card reported lost")

    async def replace_card(self, old_card_no: str, new_card_no: str,
                           medium: str = "chip") -> Receipt:
        """A new card for the same patient and account: balance and records follow."""
        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            return {"old_card_no": old_card_no, "new_card_no": new_card_no,
                    "patient_id": card.patient_id, "medium": medium}
        return await self._append([self._by_card("card.replaced", old_card_no, body)],
                                  "Replacement card")

    # -- money -----------------------------------------------------------------------------
    async def deposit(self, card_no: str, amount: Fen, method: str,
                      card_entry: str = "chip", *, wallet: CardWallet | None = None,
                      stamp: bool = False) -> Receipt:
        """Top up the deposit account (``wallet``/``stamp``: see :meth:`charge`)."""
        _check_entry(card_entry)

        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            acct = ctx.state.get_or_new(Account, card.patient_id)
            return {"patient_id": card.patient_id, "amount": amount, "method": method,
                    "receipt_no": ctx.new_id("D"), "card_no": card_no, "card_entry": card_entry,
                    **_stamp_fields(acct, wallet, amount, stamp)}
        return await self._append([self._by_card("account.deposited", card_no, body)],
                                  "Deposit", (("Deposit", amount),), "receipt_no")

    async def charge(self, card_no: str, items: Iterable[Mapping[str, Any]], department: str,
                     order_ref: str = "", card_entry: str = "chip", *,
                     wallet: CardWallet | None = None, stamp: bool = False) -> Receipt:
        """Charge items (code, name, qty, unit_price in fen) to the card's deposit account.

        Offline, the card may know of spending this counter has not synced: ``wallet`` is
        what its verified wallet stamp said, and the charge is refused above the lower of
        the ledger's balance and a newer stamp's (plus green-channel credit).
        ``stamp``: the card is on a chip reader; the event records the stamp to write.
        """
        _check_entry(card_entry)
        lines = [{"code": i["code"], "name": i["name"], "qty": i["qty"],
                  "unit_price": i["unit_price"]} for i in items]
        total = sum(int(i["qty"]) * int(i["unit_price"]) for i in lines
                    if type(i["qty"]) is int and type(i["unit_price"]) is int)

        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            acct = ctx.state.get_or_new(Account, card.patient_id)
            _check_card_balance(acct, wallet, total)
            b: dict[str, Any] = {"charge_id": ctx.new_id("C"), "patient_id": card.patient_id,
                                 "card_no": card_no, "card_entry": card_entry, "items": lines,
                                 "amount": total, "department": department,
                                 **_stamp_fields(acct, wallet, -total, stamp)}
            if order_ref:
                b["order_ref"] = order_ref
            return b
        receipt = await self._append([self._by_card("account.charged", card_no, body)],
                                     "Charge", number_field="charge_id")
        items_ = receipt.events[0].body["items"]
        return replace(receipt, lines=tuple((f"{i['name']} ×{i['qty']}", i["qty"] *
                                             i["unit_price"]) for i in items_))

    async def refund(self, charge_id: str, amount: Fen, to: str, approved_by: str,
                     reason: str, *, wallet: CardWallet | None = None,
                     stamp: bool = False) -> Receipt:
        charge = await self.ledger.get(Charge, charge_id)
        if charge is None or not charge.patient_id:
            raise _refuse("refund.unknown_charge", f"charge {charge_id} is not known at this "
                          "counter", "charge_id")

        def body(ctx: OpContext) -> dict[str, Any]:
            acct = ctx.state.get_or_new(Account, charge.patient_id)
            delta = amount if to == "deposit" else 0
            return {"refund_id": ctx.new_id("R"), "charge_id": charge_id,
                    "patient_id": charge.patient_id, "amount": amount, "to": to,
                    "approved_by": approved_by, "reason": reason,
                    **_stamp_fields(acct, wallet, delta, stamp)}
        return await self._append([Op("account.refunded", body)], "Refund",
                                  ((f"Refund of {charge_id} to {to}", amount),), "refund_id")

    async def settle(self, card_no: str, method: str = "cash", *,
                     wallet: CardWallet | None = None, stamp: bool = False) -> Receipt:
        """Return the whole remaining balance and close the account until a new deposit.

        Refused while a wallet stamp shows spending this counter has not synced yet:
        paying out the ledger's balance then would hand out money already spent.
        """
        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            acct = ctx.state.get_or_new(Account, card.patient_id)
            balance = acct.balance
            known, _ = known_money(acct, wallet)
            if known < balance:
                raise _refuse("settle.card_newer",
                              f"the card shows {yuan(known)} after spending this counter has "
                              f"not synced yet (the records say {yuan(balance)}): sync with "
                              "central, then settle", "amount")
            return {"patient_id": card.patient_id, "amount": max(balance, 0), "method": method,
                    "invoice_no": ctx.new_id("INV"),
                    **_stamp_fields(acct, wallet, -max(balance, 0), stamp)}
        op = self._by_card("account.settled", card_no, body)
        receipt = await self._append([op], "Settlement", number_field="invoice_no")
        return replace(receipt, lines=(("Balance returned", receipt.events[0].body["amount"]),))

    async def grant_credit(self, card_no: str, limit: Fen, reason: str,
                           authorised_by: str) -> Receipt:
        """Emergency green channel: let the patient be charged up to ``limit`` below zero."""
        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            return {"patient_id": card.patient_id, "limit": limit, "reason": reason,
                    "authorised_by": authorised_by}
        return await self._append([self._by_card("account.credit_granted", card_no, body)],
                                  "Green channel credit", (("Credit limit", limit),))


def _check_card_balance(account: Account, wallet: CardWallet | None, amount: Fen) -> None:
    """Refuse a charge the ledger would allow but the newest wallet stamp would not.

    (When the ledger is the lower, the charge kind's rule refuses with its own words.)
    """
    known, _ = known_money(account, wallet)
    if known < account.balance and amount > known + account.credit_limit:
        credit = f" + credit {yuan(account.credit_limit)}" if account.credit_limit else ""
        raise _refuse("charge.insufficient_card",
                      f"the card shows balance {yuan(known)}{credit} after spending this "
                      f"counter has not synced yet (the records say {yuan(account.balance)}): "
                      f"{yuan(amount)} is {yuan(amount - known - account.credit_limit)} short",
                      "amount")


def _check_entry(card_entry: str) -> None:
    if card_entry not in CARD_ENTRY:
        raise _refuse("card.entry", f"card entry must be one of {', '.join(CARD_ENTRY)}")
