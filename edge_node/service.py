"""The counter's operations: what the TUI and the CLI call (and nothing else touches SQL).

Each method turns what staff entered into one atomic ledger append of one or more
events, with ids that cannot collide across counters.  Bad input and broken rules
raise :class:`~edge_node.errors.OperationRefused` listing every problem, having
written nothing.

:meth:`CounterService.dry` is the same service checking instead of writing: each
method runs exactly as it would (its own checks, then the ledger's
:meth:`~edge_node.ledger.Ledger.check_ops`: the bodies built, decoded and the rules
run in the one append path) and returns a preview :class:`Receipt` of what it would
write, or refuses as it would.  The counter's forms run it before asking to confirm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from edge_node import roles
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger, Op, OpContext
from edge_node.reports import BusinessDay, DailyReport, business_day, close_body, daily_report
from edge_node.search import mask_phone
from edge_node.staff import Approval, supervisor_field
from protocol import nationalid
from protocol.account import CARD_FEE_CODE, CARD_FEE_NAME, Account, Charge
from protocol.card import CARD_ENTRY, Card
from protocol.core import COUNTER, Registry, State
from protocol.errors import Amount, Problem
from protocol.event import Event
from protocol.money import yuan
from protocol.patient import Patient, check_id_number, clear_problems
from protocol.privacy import NAME, NO_DETAILS, SEALED_FIELDS, Details, PatientKeys, details_of
from protocol.remedy import Merged

Fen = int

log = logging.getLogger("onecard.service")


@dataclass(frozen=True, slots=True)
class PatientView:
    """Everything a counter shows when a card is tapped."""

    patient: Patient
    account: Account
    cards: tuple[Card, ...]
    card: Card | None = None  # the card that was presented, if any
    #: the sealed details as this counter and operator may see them (protocol.privacy)
    details: Details = NO_DETAILS

    @property
    def active_card(self) -> Card | None:
        return next((c for c in self.cards if c.status == "active"), None)


@dataclass(frozen=True, slots=True)
class PatientHit:
    """One patient a search found: what the counter lists to pick the right one."""

    patient: Patient
    account: Account
    cards: tuple[Card, ...]
    details: Details = NO_DETAILS

    @property
    def active_card(self) -> Card | None:
        return next((c for c in self.cards if c.status == "active"), None)

    @property
    def card(self) -> Card | None:
        """The card businesses would use: the active one, else the newest."""
        return self.active_card or (self.cards[-1] if self.cards else None)

    @property
    def masked_national_id(self) -> str | None:
        """For lists: masked; None when it is sealed and not for this counter's eyes."""
        return masked(self.details).national_id

    @property
    def masked_phone(self) -> str | None:
        return masked(self.details).phone

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
    reprinted_ms: int = 0  # a reprint (补打): when it was reprinted; 0 for the original
    node: str = ""  # a reprint: the counter and operator of the original
    operator: str = ""
    preview: bool = False  # a dry run's: what would be written (nothing was, unsigned)


#: What a receipt's number is, for each kind a counter prints a receipt for.
RECEIPT_NUMBER = {"account.deposited": "receipt_no", "account.charged": "charge_id",
                  "account.refunded": "refund_id", "account.settled": "invoice_no",
                  "account.credit_granted": ""}
CARD_FEE_DEPARTMENT = "一卡通"


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """One line of a charge, with how many of it item refunds have returned."""

    line: int  # its index in the charge's items
    code: str
    name: str
    qty: int
    unit_price: Fen
    refunded_qty: int = 0

    @property
    def left(self) -> int:
        return self.qty - self.refunded_qty


class LineText(str):
    """A receipt line's words: English as the string itself, and the ``line.<key>``
    string with its values for a receipt in the counter's language."""

    key: str
    values: dict[str, object]

    def __new__(cls, english: str, key: str, **values: object) -> LineText:
        obj = super().__new__(cls, english)
        obj.key, obj.values = key, values
        return obj


def _refuse(code: str, message: str, field: str = "", **values: object) -> OperationRefused:
    return OperationRefused([Problem(code, message, field, values)])


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
    """Counter operations on one ledger, done as the logged-in ``operator``.

    ``roles``: what the operator may do (:mod:`edge_node.roles`), checked by every
    operation that writes; None checks nothing (tests, the walkthrough — the counter's
    screens always set it at login).  ``pepper``: the hospital's staff PIN pepper, for
    checking central's staff (logins and approvals at this counter)."""

    def __init__(self, ledger: Ledger, operator: str = "", *, dry_run: bool = False,
                 roles: frozenset[str] | None = None, pepper: bytes = b"",
                 desk: str = "") -> None:
        self.ledger = ledger
        self.operator = operator
        self.dry_run = dry_run
        self.roles = roles
        self.pepper = pepper
        self.desk = desk  # the counter's role (its config), named in the audit trail

    def dry(self) -> CounterService:
        """This service (same ledger and operator) checking instead of writing: every
        operation runs as it would and returns a preview :class:`Receipt`, or refuses."""
        return CounterService(self.ledger, self.operator, dry_run=True, roles=self.roles,
                              pepper=self.pepper, desk=self.desk)

    async def opened(self, patient_id: str, how: str) -> None:
        """Write ``audit.record_opened``: the operator opened this patient's record (by
        ``how``: card, search or queue).  Called once per opening — a desk's card check
        (:meth:`edge_node.tui.cardsource.CardDesk.check`), :meth:`open_patient` (a
        search), a queue's Enter — never on a refresh.  Nothing is written with no one
        logged in or in a dry run, and it never raises: the trail does not stop anyone
        seeing a patient (a ledger that cannot sign logs a warning)."""
        if not self.operator or self.dry_run:
            return
        body = {"patient_id": patient_id, "how": how}
        if self.desk:
            body["desk"] = self.desk
        try:
            await self.ledger.append(Op("audit.record_opened", body), self.operator)
        except Exception:
            log.warning("audit.record_opened not written (%s)", patient_id, exc_info=True)

    # -- lookups -------------------------------------------------------------------------
    async def lookup_card(self, card_no: str) -> PatientView:
        """The patient behind a card (lost/replaced cards too: the panel shows the status)."""
        card = await self.ledger.get(Card, card_no)
        if card is None:
            raise _refuse("card.unknown", f"card {card_no} is not known at this counter",
                          "card_no", card=card_no)
        view = await self.patient(card.patient_id)
        return replace(view, card=card)

    async def patient(self, patient_id: str) -> PatientView:
        patient = await self.ledger.get(Patient, patient_id)
        if patient is None:
            raise _refuse("patient.unknown", f"no patient {patient_id} is known at this counter",
                          "patient_id", patient=patient_id)
        account = await self.ledger.get(Account, patient_id) or Account(patient_id)
        cards = tuple(await self.ledger.cards_of(patient_id))
        return PatientView(patient, account, cards, details=await self.details(patient))

    async def details(self, patient: Patient) -> Details:
        """``patient``'s sealed details as this counter and operator may see them: opened
        only with the data key central granted this counter, and only for the roles that
        need them (``patient.details``); the others see that they are sealed."""
        return details_of(patient, await self.detail_keys())

    async def detail_keys(self) -> PatientKeys | None:
        """The keys to open sealed details with, for this operator (None: their role does
        not need them, or this counter holds none)."""
        if not roles.allowed(self.roles, "patient.details"):
            return None
        return await self.ledger.patient_keys()

    async def patient_keys(self) -> PatientKeys:
        """The keys to seal new details with, or the refusal that says why there are none."""
        keys = await self.ledger.patient_keys()
        if keys is None or keys.data is None or keys.lookup is None:
            raise _refuse("privacy.no_data_key", "this counter holds no patient data key "
                          "(central gives it to registration counters when they first "
                          "sync): connect to central once, or register at a registration "
                          "counter", "national_id")
        return keys

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
        keys = await self.detail_keys()  # once for the whole list, not per patient
        return [PatientHit(p, a or Account(p.patient_id), tuple(cards), details_of(p, keys))
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
        await self.opened(view.patient.patient_id, "search")
        return replace(view, card=view.active_card)

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
                                    "card_no", {"card": card_no}))
        if national_id.strip():
            parsed = nationalid.parse(national_id)
            if isinstance(parsed, Problem):
                problems.append(parsed)
            else:
                existing = await self.find_by_national_id(parsed.number)
                if existing:
                    problems.append(_duplicate(existing[0]))
        if first_deposit is not None:
            problems += self._first_deposit_problems(first_deposit)
        if problems:
            raise OperationRefused(problems)

    @property
    def card_fee(self) -> Fen:
        """The 工本费 charged on card issue and replacement (config ``card_fee``)."""
        return self.ledger.rule_config.card_fee

    def _first_deposit_problems(self, first_deposit: Fen) -> list[Problem]:
        fee, card_fee = self.ledger.rule_config.registration_fee, self.card_fee
        if first_deposit < fee:
            return [Problem("deposit.below_registration_fee",
                            f"the first deposit must cover the registration fee "
                            f"{yuan(fee)}; got {yuan(first_deposit)}", "first_deposit",
                            {"fee": Amount(fee), "amount": Amount(first_deposit)})]
        if card_fee and first_deposit - card_fee < fee:
            return [Problem("card_fee.first_deposit",
                            f"the first deposit must cover the registration fee {yuan(fee)} "
                            f"and the card fee {yuan(card_fee)}: at least "
                            f"{yuan(fee + card_fee)}; got {yuan(first_deposit)}",
                            "first_deposit", {"least": Amount(fee + card_fee),
                                              "amount": Amount(first_deposit)})]
        return []

    def _card_fee_op(self, patient_id: Callable[[], str], card_no: str,
                     stamp: bool = False) -> Op:
        """The card fee as a charge in the same append as the issue or replacement."""
        fee = self.card_fee

        def body(ctx: OpContext) -> dict[str, Any]:
            pid = patient_id()
            acct = ctx.state.get(Account, pid)
            if acct is not None and acct.available < fee:  # (None: not loaded yet)
                raise _refuse("card_fee.insufficient",
                              f"the card fee {yuan(fee)} cannot be paid: the account holds "
                              f"{yuan(acct.balance)}"
                              + (f" + credit {yuan(acct.credit_limit)}" if acct.credit_limit
                                 else "") + "; take a deposit first", "card_no",
                              fee=Amount(fee), balance=Amount(acct.available))
            return {"charge_id": ctx.new_id("C"), "patient_id": pid, "card_no": card_no,
                    "items": [{"code": CARD_FEE_CODE, "name": CARD_FEE_NAME, "qty": 1,
                               "unit_price": fee}],
                    "amount": fee, "department": CARD_FEE_DEPARTMENT,
                    **_stamp_fields(acct or Account(pid), None, -fee, stamp)}
        return Op("account.charged", body)

    async def find_by_national_id(self, number: str) -> list[Patient]:
        """The patients registered with this ID number: by its keyed tag (sealed), and as
        a legacy ledger may hold it in clear."""
        number = number.strip().upper()
        keys = await self.ledger.patient_keys()
        found = await self.ledger.find_patients("id_tag", keys.id_tag(number)) \
            if keys is not None and keys.lookup is not None else []
        return found + [p for p in await self.ledger.find_patients("national_id", number)
                        if p not in found]

    async def charges(self, patient_id: str) -> list[Charge]:
        return await self.ledger.charges_of(patient_id)

    async def history(self, patient_id: str, limit: int = 200) -> list[Event]:
        return await self.ledger.history(patient_id, limit)

    async def _append(self, ops: list[Op], title: str,
                      lines: tuple[tuple[str, Fen], ...] = (), number_field: str = "") -> Receipt:
        """Append ``ops`` in one transaction; the receipt reads the state it left behind.

        Dry (:meth:`dry`): the same ops only checked, the receipt a preview of them.
        """
        if self.dry_run:
            result = await self.ledger.check_ops(ops, self.operator)
        else:
            result = await self.ledger.append_ops(ops, self.operator)
        events = tuple(a.event for a in result.appended)
        pid = events[-1].body["patient_id"]
        patient = result.state.get(Patient, pid)
        patient = (await self.ledger.shown([patient]))[0] if patient is not None else \
            await self.ledger.get(Patient, pid)
        number = next((str(e.body[number_field]) for e in events if number_field in e.body), "")
        # (an operation that did not touch the account, a replacement say, reads it)
        account = result.state.get(Account, pid) or await self.ledger.get(Account, pid)
        balance = account.balance if account is not None else 0
        return Receipt(title, patient, events, balance, lines, number, result.local_ms,
                       preview=self.dry_run)

    def _by_card(self, kind: str, card_no: str,
                 build: Callable[[Card, OpContext], dict[str, Any]]) -> Op:
        """An op on the account behind ``card_no``, resolved inside the transaction."""
        def body(ctx: OpContext) -> dict[str, Any]:
            card = ctx.state.get(Card, card_no)
            if card is None:
                raise _refuse("card.unknown", f"card {card_no} is not known at this counter",
                              "card_no", card=card_no)
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
        tendered: Fen = 0,
        reference: str = "",
        chip_uid: str = "",
    ) -> Receipt:
        """Register a first-visit patient, issue their card and take the first deposit.

        With a national ID number, sex and birth date are derived from it (and must agree
        if also given).  All three events commit together or not at all.
        ``expect_patient_id``: the id already written to the chip (see
        :meth:`next_patient_id`); refused if the patient would get another one.
        ``stamp``: the card is on a chip reader and gets a wallet stamp after this.
        ``tendered``/``reference``: see :meth:`deposit`.  The card fee (config
        ``card_fee``), if any, is charged in the same append.
        """
        roles.check(self.roles, "patient.register")
        problems = self._first_deposit_problems(first_deposit)
        if problems:
            raise OperationRefused(problems)
        body: dict[str, Any] = {"sex": sex, "birth_date": birth_date}
        clear: dict[str, str] = {"name": name.strip()}
        if national_id.strip():
            parsed = nationalid.parse(national_id)
            if isinstance(parsed, Problem):
                raise OperationRefused([parsed])
            body["sex"] = sex or parsed.sex
            body["birth_date"] = birth_date or parsed.birth_date
            problems = check_id_number(parsed.number, body["birth_date"], body["sex"])
            if problems:
                raise OperationRefused(problems)
            clear["national_id"] = parsed.number
        if phone.strip():
            clear["phone"] = phone.strip()
        if contact.strip():
            clear["contact"] = contact.strip()
        problems = clear_problems(clear)
        if problems:
            raise OperationRefused(problems)
        keys = await self.patient_keys()
        if "national_id" in clear:
            existing = await self.find_by_national_id(clear["national_id"])
            if existing:
                raise OperationRefused([_duplicate(existing[0])])
        holder: dict[str, str] = {}

        def patient_body(ctx: OpContext) -> dict[str, Any]:
            holder["patient_id"] = ctx.new_id("P")
            if expect_patient_id and holder["patient_id"] != expect_patient_id:
                raise _refuse("patient.id_moved",
                              f"the card was written for patient {expect_patient_id} but the "
                              f"next patient number is {holder['patient_id']}: issue again",
                              "card_no", expected=expect_patient_id, got=holder["patient_id"])
            return {"patient_id": holder["patient_id"], **body,
                    **keys.sealed_details(holder["patient_id"], clear)}

        def card_body(ctx: OpContext) -> dict[str, Any]:
            return {"card_no": card_no, "patient_id": holder["patient_id"], "medium": medium,
                    **({"chip_uid": chip_uid} if chip_uid else {})}

        def deposit_body(ctx: OpContext) -> dict[str, Any]:
            pid = holder["patient_id"]
            return {"patient_id": pid, "amount": first_deposit,
                    "method": method, "receipt_no": ctx.new_id("D"), "card_no": card_no,
                    **_payment(tendered, reference),
                    **_stamp_fields(ctx.state.get_or_new(Account, pid), None, first_deposit,
                                    stamp)}

        ops = [Op("patient.registered", patient_body), Op("card.issued", card_body),
               Op("account.deposited", deposit_body)]
        lines: tuple[tuple[str, Fen], ...] = (("Deposit", first_deposit),)
        if self.card_fee:
            ops.append(self._card_fee_op(lambda: holder["patient_id"], card_no, stamp))
            lines += (("Card fee", self.card_fee),)
        return await self._append(ops, "Registration and card", lines, "receipt_no")

    async def update_patient(self, patient_id: str, **changes: str) -> Receipt:
        """Change details (only those given; "" clears one): the sealed ones are sealed
        here, each with its lookup tag."""
        roles.check(self.roles, "patient.register")
        given = {k: v.strip() for k, v in changes.items() if v is not None}
        clear = {k: given.pop(k) for k in (NAME, *SEALED_FIELDS) if k in given}
        if clear.get("national_id"):
            clear["national_id"] = clear["national_id"].upper()
            problems = check_id_number(clear["national_id"], given.get("birth_date"),
                                       given.get("sex"))
            if problems:
                raise OperationRefused(problems)
        problems = clear_problems(clear)
        if problems:
            raise OperationRefused(problems)
        body: dict[str, Any] = {"patient_id": patient_id, **given}
        if clear:
            body.update((await self.patient_keys()).sealed_details(patient_id, clear))
        return await self._append([Op("patient.updated", body)], "Patient details")

    async def issue_card(self, patient_id: str, card_no: str, medium: str = "chip", *,
                         chip_uid: str = "") -> Receipt:
        """Another card for a registered patient (the card fee, if any, in the same append)."""
        roles.check(self.roles, "patient.register")
        body = {"card_no": card_no, "patient_id": patient_id, "medium": medium,
                **({"chip_uid": chip_uid} if chip_uid else {})}
        ops = [Op("card.issued", body)]
        if self.card_fee:
            ops.append(self._card_fee_op(lambda: patient_id, card_no))
            return await self._append(ops, "Card issued", (("Card fee", self.card_fee),),
                                      "charge_id")
        return await self._append(ops, "Card issued")

    async def report_lost(self, card_no: str, verified_by: str, reason: str = "") -> Receipt:
        roles.check(self.roles, "patient.register")
        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            b: dict[str, Any] = {"card_no": card_no, "patient_id": card.patient_id,
                                 "verified_by": verified_by}
            if reason.strip():
                b["reason"] = reason.strip()
            return b
        return await self._append([self._by_card("card.reported_lost", card_no, body)],
                                  "Card reported lost")

    async def replace_card(self, old_card_no: str, new_card_no: str,
                           medium: str = "chip", *, stamp: bool = False,
                           chip_uid: str = "") -> Receipt:
        """A new card for the same patient and account: balance and records follow.

        The card fee (config ``card_fee``), if any, is charged in the same append, on
        the new card (``stamp``: it is on a chip reader and gets the wallet stamp).
        """
        roles.check(self.roles, "patient.register")
        holder: dict[str, str] = {}

        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            holder["patient_id"] = card.patient_id
            return {"old_card_no": old_card_no, "new_card_no": new_card_no,
                    "patient_id": card.patient_id, "medium": medium,
                    **({"chip_uid": chip_uid} if chip_uid else {})}
        ops = [self._by_card("card.replaced", old_card_no, body)]
        if not self.card_fee:
            return await self._append(ops, "Replacement card")
        old = await self.ledger.get(Card, old_card_no)
        need = frozenset({(Account, old.patient_id)}) if old is not None else frozenset()
        fee = self._card_fee_op(lambda: holder["patient_id"], new_card_no, stamp)
        ops.append(Op(fee.kind, fee.body, need))
        return await self._append(ops, "Replacement card", (("Card fee", self.card_fee),),
                                  "charge_id")

    # -- money -----------------------------------------------------------------------------
    async def deposit(self, card_no: str, amount: Fen, method: str,
                      card_entry: str = "chip", *, wallet: CardWallet | None = None,
                      stamp: bool = False, tendered: Fen = 0, reference: str = "") -> Receipt:
        """Top up the deposit account (``wallet``/``stamp``: see :meth:`charge`).

        ``tendered``: the cash handed over (0: not counted; else at least ``amount``,
        the change is the difference); ``reference``: the transaction number of a bank
        card or mobile payment (required for those).  Both are kept in the event, so a
        reprint shows them.
        """
        roles.check(self.roles, "money.deposit")
        _check_entry(card_entry)

        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            acct = ctx.state.get_or_new(Account, card.patient_id)
            return {"patient_id": card.patient_id, "amount": amount, "method": method,
                    "receipt_no": ctx.new_id("D"), "card_no": card_no, "card_entry": card_entry,
                    **_payment(tendered, reference),
                    **_stamp_fields(acct, wallet, amount, stamp)}
        return await self._append([self._by_card("account.deposited", card_no, body)],
                                  "Deposit", (("Deposit", amount),), "receipt_no")

    async def charge(self, card_no: str, items: Iterable[Mapping[str, Any]], department: str,
                     order_ref: str = "", card_entry: str = "chip", *,
                     wallet: CardWallet | None = None, stamp: bool = False,
                     approval: Approval | None = None) -> Receipt:
        """Charge items (code, name, qty, unit_price in fen) to the card's deposit account.

        ``approval``: the supervisor whose PIN this counter checked, which a card number
        typed by hand, and offline a charge past the offline limits, need (the rule
        refuses without: ``approval.manual_entry``, ``approval.offline_limit``).

        Offline, the card may know of spending this counter has not synced: ``wallet`` is
        what its verified wallet stamp said, and the charge is refused above the lower of
        the ledger's balance and a newer stamp's (plus green-channel credit).
        ``stamp``: the card is on a chip reader; the event records the stamp to write.
        """
        roles.check(self.roles, "money.charge")
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
                                 **_supervisor(approval),
                                 **_stamp_fields(acct, wallet, -total, stamp)}
            if order_ref:
                b["order_ref"] = order_ref
            return b
        receipt = await self._append([self._by_card("account.charged", card_no, body)],
                                     "Charge", number_field="charge_id")
        items_ = receipt.events[0].body["items"]
        return replace(receipt, lines=tuple((f"{i['name']} ×{i['qty']}", i["qty"] *
                                             i["unit_price"]) for i in items_))

    async def refund(self, charge_id: str, amount: Fen | None, to: str, approved_by: str,
                     reason: str, *, items: Mapping[int, int] | None = None,
                     wallet: CardWallet | None = None, stamp: bool = False,
                     approval: Approval | None = None) -> Receipt:
        """Refund part of a charge: ``amount``, or ``items`` (line index → quantity) of
        it, whose amount is computed from the charge (``amount`` None; if given it must
        agree).  The rules refuse more of a line than was charged less what item refunds
        already returned.  ``approved_by``: who approved it clinically (the doctor, DOMAIN
        3.10); ``approval``: the supervisor whose PIN this counter checked, which a cash
        refund and one above ``refund_approval_above`` need (the rule refuses without)."""
        roles.check(self.roles, "money.refund")
        charge = await self.ledger.get(Charge, charge_id)
        if charge is None or not charge.patient_id:
            raise _refuse("refund.unknown_charge", f"charge {charge_id} is not known at this "
                          "counter", "charge_id", charge=charge_id)
        picked = {int(k): int(v) for k, v in (items or {}).items() if v}
        if items is not None and not picked:
            raise _refuse("refund.no_items", "pick at least one item to refund", "items")
        lines = charge.lines()
        unknown = [i for i in picked if not 0 <= i < len(lines)]
        if unknown:
            raise _refuse("refund.item_unknown", f"charge {charge_id} has no line "
                          f"{unknown[0] + 1}", "items")
        if picked and amount is None:
            amount = sum(q * lines[i][1] for i, q in picked.items() if 0 <= i < len(lines))
        if amount is None:
            raise _refuse("refund.no_amount", "say how much to refund", "amount")
        fen = amount

        def body(ctx: OpContext) -> dict[str, Any]:
            acct = ctx.state.get_or_new(Account, charge.patient_id)
            delta = fen if to == "deposit" else 0
            b: dict[str, Any] = {
                "refund_id": ctx.new_id("R"), "charge_id": charge_id,
                "patient_id": charge.patient_id, "amount": fen, "to": to,
                "approved_by": approved_by.strip(), "reason": reason.strip(),
                **_supervisor(approval), **_stamp_fields(acct, wallet, delta, stamp)}
            if picked:
                b["items"] = [{"line": i, "qty": q} for i, q in sorted(picked.items())]
            return b
        line = LineText(f"Refund of {charge_id} to {to}", f"refund.{to}", charge=charge_id)
        return await self._append([Op("account.refunded", body)], "Refund", ((line, fen),),
                                  "refund_id")

    async def charge_lines(self, charge_id: str) -> tuple[Charge, tuple[ChargeLine, ...]]:
        """A charge and its lines (codes and names from the charge event), with how many
        of each item refunds have returned."""
        charge = await self.ledger.get(Charge, charge_id)
        if charge is None or not charge.charged_at:
            raise _refuse("refund.unknown_charge", f"charge {charge_id} is not known at this "
                          "counter", "charge_id")
        found = await self.ledger.event_at(charge.node, charge.seq)
        fact = self.ledger.registry.fact(found[0]) if found is not None else None
        items = getattr(fact.body, "items", ()) if fact is not None else ()
        done = charge.refunded_qty()
        return charge, tuple(ChargeLine(n, i.code, i.name, i.qty, i.unit_price, done.get(n, 0))
                             for n, i in enumerate(items))

    async def close_day(self, day: BusinessDay, counted_cash: Fen, *, all_operators: bool = False,
                        note: str = "") -> tuple[Event | None, DailyReport]:
        """Close the business day (日结 确认): sign a ``report.closed`` with the daily
        report's figures as they are now (this operator's, or the whole counter's) and
        the cash the cashier counted.  It syncs to central like any event, where the
        daily audit compares it with the day recomputed from the events.  Dry: checked
        only (the event is None).  No money moves."""
        roles.check(self.roles, "money.close_day")
        report = await daily_report(self.ledger, day, "" if all_operators else self.operator)
        ops = [Op("report.closed", close_body(report, counted_cash, note))]
        if self.dry_run:
            await self.ledger.check_ops(ops, self.operator)
            return None, report
        result = await self.ledger.append_ops(ops, self.operator)
        return result.appended[0].event, report

    def today(self, timezone: str = "Asia/Shanghai", cutoff: str = "00:00") -> tuple[int, int]:
        """This counter's business day now (its own clock): [start, end) in UTC ms."""
        day = business_day(self.ledger.now_ms(), timezone, cutoff)
        return day.start_ms, day.end_ms

    async def voidable_charges(self, patient_id: str, timezone: str = "Asia/Shanghai",
                               cutoff: str = "00:00") -> list[Charge]:
        """The patient's charges made at this counter on its business day, nothing refunded."""
        start, end = self.today(timezone, cutoff)
        return [c for c in await self.charges(patient_id) if c.charged_at
                and c.node == self.ledger.node_id and start <= c.wall_ms < end
                and not c.refunded and not c.reversed]

    async def void_charge(self, charge_id: str, approved_by: str, reason: str, *,
                          timezone: str = "Asia/Shanghai", cutoff: str = "00:00",
                          wallet: CardWallet | None = None, stamp: bool = False,
                          approval: Approval | None = None) -> Receipt:
        """Void (作废) a charge of today: all of it back to the deposit, approved and with a
        reason, as a refund marked ``void``.  Refused for a charge of another business
        day (``timezone``/``cutoff``: the counter's, see :mod:`edge_node.reports`), and
        (by the refund rule) for one already refunded or voided."""
        roles.check(self.roles, "money.void")
        charge = await self.ledger.get(Charge, charge_id)
        if charge is None or not charge.charged_at:
            raise _refuse("refund.unknown_charge", f"charge {charge_id} is not known at this "
                          "counter", "charge_id")
        if charge.node != self.ledger.node_id:
            raise _refuse("void.other_counter", f"charge {charge_id} was made at counter "
                          f"{charge.node}: only the counter that charged voids (refund it "
                          "instead)", "charge_id", charge=charge_id, node=charge.node)
        start, end = self.today(timezone, cutoff)
        if not start <= charge.wall_ms < end:
            raise _refuse("void.not_today", f"charge {charge_id} is not of today: only a "
                          "charge of the same business day can be voided (refund it "
                          "instead)", "charge_id")

        def body(ctx: OpContext) -> dict[str, Any]:
            acct = ctx.state.get_or_new(Account, charge.patient_id)
            return {"refund_id": ctx.new_id("R"), "charge_id": charge_id,
                    "patient_id": charge.patient_id, "amount": charge.amount,
                    "to": "deposit", "void": 1, "approved_by": approved_by.strip(),
                    "reason": reason.strip(), **_supervisor(approval),
                    **_stamp_fields(acct, wallet, charge.amount, stamp)}
        return await self._append([Op("account.refunded", body)], "Void",
                                  (("Void", charge.amount),), "refund_id")

    async def receipt_for(self, event: Event, patient_id: str, reprinted_ms: int = 0
                          ) -> Receipt:
        """The receipt of a stored counter event, rebuilt from the events (a reprint,
        补打): its number, lines, original time, counter and operator, and the balance
        after it.  An event appended with others (a registration with its card and
        first deposit and card fee; a card issue or replacement with its card fee)
        reprints the receipt of all of them, as it was printed.

        ``patient_id``: whose history it was picked from (the balance is theirs).
        """
        registry = self.ledger.registry
        fact = registry.fact(event)
        if fact is None or fact.kind.signer != COUNTER:
            raise _refuse("reprint.no_receipt", "this entry has no receipt to reprint")
        view = await self.patient(patient_id)
        found = await self.ledger.event_at(event.node, event.seq)
        at_ms = found[1] if found is not None else event.hlc.wall
        group = await self._appended_with(event, at_ms)
        lines = tuple(line for e in group for line in _receipt_lines(registry, e))
        number = next((str(e.body[f]) for e in group
                       if (f := RECEIPT_NUMBER.get(e.kind)) and f in e.body), "")
        history = await self.ledger.history(patient_id, 1_000_000)
        return Receipt(registry.title(group[0].kind, "en"), view.patient, tuple(group),
                       _balance_after(registry, group[-1], patient_id, history), lines,
                       number, at_ms, reprinted_ms or self.ledger.now_ms(), event.node,
                       event.operator)

    async def _appended_with(self, event: Event, local_ms: int) -> list[Event]:
        """``event`` and the events of the same append its receipt covered: a
        registration's (registered, card issued, first deposit, card fee) or a card issue
        or replacement with its card fee — the same counter's neighbouring events of the
        same patient, written at the same instant by its clock."""
        pid = event.body.get("patient_id")
        group = [event]
        for step in (-1, 1):
            seq = event.seq + step
            while abs(seq - event.seq) <= 3 and seq > 0:
                got = await self.ledger.event_at(event.node, seq)
                if got is None or got[1] != local_ms or got[0].body.get("patient_id") != pid:
                    break
                if step < 0:
                    group.insert(0, got[0])
                else:
                    group.append(got[0])
                seq += step
        first = next((i for i, e in enumerate(group) if e.kind in _APPEND_HEADS), None)
        if first is None:
            return [event]
        group = group[first:]
        # what that operation appended after it: a registration's card and first
        # deposit, and the card fee
        follows = (("card.issued", "account.deposited")
                   if group[0].kind == "patient.registered" else ())
        end = 1
        while end < len(group) and (group[end].kind in follows or _is_card_fee(group[end])):
            end += 1
        group = group[:end]
        return group if event in group else [event]

    async def settle(self, card_no: str, method: str = "cash", *,
                     wallet: CardWallet | None = None, stamp: bool = False,
                     approval: Approval | None = None) -> Receipt:
        """Return the whole remaining balance and close the account until a new deposit.

        Refused while a wallet stamp shows spending this counter has not synced yet:
        paying out the ledger's balance then would hand out money already spent.
        """
        roles.check(self.roles, "money.settle")
        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            acct = ctx.state.get_or_new(Account, card.patient_id)
            balance = acct.balance
            known, _ = known_money(acct, wallet)
            if known < balance:
                raise _refuse("settle.card_newer",
                              f"the card shows {yuan(known)} after spending this counter has "
                              f"not synced yet (the records say {yuan(balance)}): sync with "
                              "central, then settle", "amount", card_balance=Amount(known),
                              balance=Amount(balance))
            return {"patient_id": card.patient_id, "amount": max(balance, 0), "method": method,
                    "invoice_no": ctx.new_id("INV"), **_supervisor(approval),
                    **_stamp_fields(acct, wallet, -max(balance, 0), stamp)}
        op = self._by_card("account.settled", card_no, body)
        receipt = await self._append([op], "Settlement", number_field="invoice_no")
        return replace(receipt, lines=(("Balance returned", receipt.events[0].body["amount"]),))

    async def grant_credit(self, card_no: str, limit: Fen, reason: str,
                           approval: Approval) -> Receipt:
        """Emergency green channel: let the patient be charged up to ``limit`` below zero
        (at most the configured cap); ``limit`` 0 ends it.  Always approved by a
        supervisor whose PIN the counter checked (:func:`edge_node.staff.approve`): the
        event names them."""
        roles.check(self.roles, "money.credit")
        if not isinstance(approval, Approval):
            raise _refuse("approval.required", "a supervisor must approve the green channel "
                          "with their id and PIN", "approver")

        def body(card: Card, ctx: OpContext) -> dict[str, Any]:
            return {"patient_id": card.patient_id, "limit": limit, "reason": reason,
                    "authorised_by": approval.staff_id}
        return await self._append([self._by_card("account.credit_granted", card_no, body)],
                                  "Green channel credit", (("Credit limit", limit),))


_supervisor = supervisor_field


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
                      "amount", variant="credit" if account.credit_limit else "",
                      card_balance=Amount(known), credit=Amount(account.credit_limit),
                      balance=Amount(account.balance), amount=Amount(amount),
                      short=Amount(amount - known - account.credit_limit))


_APPEND_HEADS = ("patient.registered", "card.issued", "card.replaced")


def _is_card_fee(ev: Event) -> bool:
    items = ev.body.get("items") if ev.kind == "account.charged" else None
    return isinstance(items, list) and len(items) == 1 and isinstance(items[0], dict) \
        and items[0].get("code") == CARD_FEE_CODE


def _receipt_lines(registry: Registry, ev: Event) -> tuple[tuple[str, Fen], ...]:
    """An event's lines on its receipt, as the operation that wrote it printed them."""
    fact = registry.fact(ev)
    b = fact.body if fact is not None else None
    if ev.kind == "account.deposited" and b is not None:
        return (("Deposit", b.amount),)
    if ev.kind == "account.charged" and b is not None:
        if _is_card_fee(ev):
            return (("Card fee", b.amount),)
        return tuple((f"{i.name} ×{i.qty}", i.qty * i.unit_price) for i in b.items)
    if ev.kind == "account.refunded" and b is not None:
        if b.void:
            return (("Void", b.amount),)
        return ((LineText(f"Refund of {b.charge_id} to {b.to}", f"refund.{b.to}",
                          charge=b.charge_id), b.amount),)
    if ev.kind == "account.settled" and b is not None:
        return (("Balance returned", b.amount),)
    if ev.kind == "account.credit_granted" and b is not None:
        return (("Credit limit", b.limit),)
    return ()


def _payment(tendered: Fen, reference: str) -> dict[str, Any]:
    """The optional payment fields of a deposit body."""
    out: dict[str, Any] = {}
    if tendered:
        out["tendered"] = tendered
    if reference.strip():
        out["reference"] = reference.strip()
    return out


def _order(ev: Event) -> tuple[int, int, str, int]:
    return (ev.hlc.wall, ev.hlc.counter, ev.node, ev.seq)


def _balance_after(registry: Registry, event: Event, patient_id: str,
                   history: Iterable[Event]) -> Fen:
    """The patient's balance after ``event`` in the merge order, from the money facet of
    each event of their history (and of records merged into theirs)."""
    events = list(history)
    family, grew = {patient_id}, True
    while grew:
        grew = False
        for e in events:
            f = registry.fact(e) if e.kind == "patient.merged" else None
            if f is not None and isinstance(f.body, Merged) and f.body.survivor_id in family \
                    and f.body.merged_id not in family:
                family.add(f.body.merged_id)
                grew = True
    upto = _order(event)
    return sum(registry.money(e).delta(p) for e in events if _order(e) <= upto
               for p in family)


def _check_entry(card_entry: str) -> None:
    if card_entry not in CARD_ENTRY:
        raise _refuse("card.entry", f"card entry must be one of {', '.join(CARD_ENTRY)}",
                      "card_entry", choices=", ".join(CARD_ENTRY))


def masked(d: Details) -> Details:
    """``d`` as lists and panels show it: the ID number and phone masked."""
    return Details(nationalid.mask(d.national_id) if d.national_id else d.national_id,
                   mask_phone(d.phone) if d.phone else d.phone, d.contact)


def _duplicate(existing: Patient) -> Problem:
    return Problem("patient.duplicate_national_id",
                   f"this ID number is already registered as patient {existing.patient_id} "
                   f"({existing.name}): use that record", "national_id",
                   {"patient": existing.patient_id, "name": existing.name})
