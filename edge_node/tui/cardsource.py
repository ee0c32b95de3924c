"""From card-reader events to what the counter acts on, with every offline check on the card.

Works with :class:`edge_node.card.reader.CardReader` (chip, keyboard wedge, simulated):
:func:`interpret` turns a reader event into a :class:`Tapped` card (raw files kept) or a
:class:`Notice`; :class:`CardDesk` then does what a counter must do on every tap, as
``bench/card_tap.py`` measures it:

1. :func:`edge_node.card.layout.identify` — the card's signature (issuer known through
   sync/enrolment; a card the ledger knows, with the issuer's key valid at the seq of
   its issuing event; keys refreshed when a card does not verify), chip UID binding, a
   typed number that disagrees;
2. ``service.lookup_card`` and :func:`~edge_node.card.layout.check_record` — unknown,
   mismatched, blocked cards are refused; lost/replaced cards open the panel with their
   flag (staff need the patient to replace the card) while the services refuse money;
3. :func:`~edge_node.card.layout.decide_balance` — the card's wallet stamp against what
   the ledger knows (:func:`edge_node.service.known_money`), giving the
   :class:`~edge_node.service.CardWallet` that money operations are checked against.

Writing: :meth:`CardDesk.issue` (write-then-verify at registration and replacement,
before anything is appended) and :meth:`CardDesk.stamp_after` (the wallet stamp after a
money event: a failure only warns, the stamp is kept and rewritten at the next tap).

:class:`TypedCardSource` is the smallest reader there is (a card number per tap), for
tests and for counters with no reader at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, cast

from edge_node.card import layout
from edge_node.card.layout import (
    BalanceView,
    CardData,
    CardFormatError,
    CardRecord,
    IssueRecord,
    KnownBalance,
    Refusal,
    StaticKeys,
    WalletStamp,
    check_record,
    decide_balance,
    identify,
    issue_card,
    make_stamp,
    parse_card_file,
)
from edge_node.card.reader import CardError, NoCard, write_card, write_stamp
from edge_node.errors import OperationRefused
from edge_node.i18n import STRINGS, Translator
from edge_node.service import CardWallet, CounterService, PatientView, Receipt, known_money
from protocol.card import Card
from protocol.errors import Problem

# ruff: noqa: E501  (a string table: one entry per line, as in edge_node.i18n)
# The counter's words for the card checks (registered into the one string table).
STRINGS.update({
    "card.flag_manual": ("卡号为手工输入：未读卡验证", "Card number typed by hand: the card was not read"),
    "card.flag_stamp_ignored": ("卡上钱包记录无法验证，已忽略（{why}）", "Unverifiable wallet stamp ignored ({why})"),
    "card.flag_stamp_pending": ("卡上钱包记录尚未写入：请把卡放回读卡器", "Wallet stamp not yet written: put the card back on the reader"),
    "card.flag_stamp_lower": ("按卡上记录可用余额为 {amount}（本机尚未同步的消费）", "Card shows {amount} available (spending not yet synced here)"),
    "card.refused": ("拒绝此卡", "Card refused"),
    "card.stamp_written": ("已写入卡上钱包记录", "wallet stamp written to the card"),
    "card.stamp_failed": ("交易已记账，但卡上钱包记录未写入（{why}）：请把卡放回读卡器，将自动补写",
                          "The transaction is recorded, but the wallet stamp was not written ({why}): put the card back on the reader and it is rewritten"),
    "card.write_failed": ("写卡失败（{why}）：请重新放卡后再次发卡；未记账",
                          "Card write failed ({why}): present the card and issue again; nothing was recorded"),
    "card.need_blank": ("请把空白卡放在读卡器上，再确认发卡", "Put the blank card on the reader, then issue again"),
    "card.in_use": ("读卡器上的卡已发给卡号 {card}：请换一张空白卡", "The card on the reader is already issued as card {card}: use a blank card"),
})

#: Chinese for the card layer's refusals and flags (keyed on their stable codes); the
#: English title and message come from :mod:`edge_node.card.layout` itself.  (A code
#: missing here shows the English on a Chinese counter too: add it here.)
REFUSALS_ZH = {
    "unknown_card": "此卡不在本窗口记录中：若在其他窗口离线发卡，请等待同步，或按 Ctrl+F 查找病人",
    "card_mismatch": "卡内信息与记录不符：请勿受理，联系信息科",
    "bad_signature": "伪造或被篡改的卡：签名不符，请扣留此卡并联系信息科",
    "unknown_signer": "发卡窗口未知：请同步后重试，否则扣留此卡并联系信息科",
    "copied_card": "复制卡：卡内数据属于另一张芯片，请扣留此卡并联系信息科",
    "card_wrong_issuer": "此卡不是记录中的发卡窗口签发的：请勿受理，扣留此卡并联系信息科",
    "card_number_mismatch": "卡面号码与卡内签名数据不符：请扣留此卡并联系信息科",
    "blank_card": "空白卡：未发卡或发卡中断，请到挂号窗口重新发卡",
    "damaged_card": "卡内数据损坏：请到挂号窗口补发",
    "card_blocked": "此卡已被冻结：请扣留此卡，核实身份并联系信息科",
    "possible_clone": "疑似复制卡：卡上钱包记录比账本旧，已按账本余额；请核实身份并告知信息科",
    "stamp_diverged": "卡与账本余额不一致（可能两个窗口同时离线扣费）：已按较低余额，并通知信息科",
}


def refusal_text(tr: Translator, r: Refusal) -> str:
    """A card refusal or flag in the counter's language (only in it: no English detail
    on a Chinese counter's screen)."""
    zh = REFUSALS_ZH.get(r.code)
    if tr.language == "zh" and zh:
        return zh
    return f"{r.title}: {r.message}"


class CardSource(Protocol):
    """What the counter needs from a reader: start, stop, and a stream of events."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def events(self) -> AsyncIterator[Any]: ...


@dataclass(frozen=True, slots=True)
class Tapped:
    """A card presented: ``entry`` is ``chip``, ``wedge`` or ``manual`` (event field).

    ``uid``/``card_file``/``stamp_file`` are what the reader read (not yet verified);
    ``medium`` is the reader's medium (``chip``, ``simulated``, ``wedge``, ``manual``;
    "" means the same as ``entry``).
    """

    card_no: str
    entry: str
    uid: bytes = b""
    card_file: bytes = b""
    stamp_file: bytes = b""
    medium: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """A reader status line or an unreadable card, for the status bar / panel."""

    text: str
    problem: bool = False
    blank: bool = False


def interpret(event: Any) -> Tapped | Notice | None:
    """What a reader event means for the counter (``None``: nothing to show)."""
    if hasattr(event, "state") and hasattr(event, "message"):  # ReaderStatus
        return Notice(str(event.message), problem=event.state in ("no_service",
                                                                    "reader_missing"))
    if not (hasattr(event, "card_file") or hasattr(event, "typed")):  # CardRemoved
        return None
    fault = getattr(event, "fault", None)
    if fault is not None:
        return Notice(f"{fault.title}: {fault.message}", problem=True)
    typed = str(getattr(event, "typed", "") or "").strip()
    raw = bytes(getattr(event, "card_file", b"") or b"")
    medium = str(getattr(event, "medium", "wedge") or "wedge")
    if raw:
        try:
            card = parse_card_file(raw)
        except CardFormatError as exc:
            return Notice(str(exc), problem=True, blank=exc.code == "blank")
        entry = "chip" if medium in ("chip", "simulated") else "wedge"
        return Tapped(typed or card.card_no, entry, bytes(getattr(event, "uid", b"") or b""),
                      raw, bytes(getattr(event, "stamp_file", b"") or b""), medium)
    if typed:
        return Tapped(typed, "manual" if medium == "manual" else "wedge")
    return Notice("the card holds no data (blank or not issued)", problem=True, blank=True)


@dataclass(frozen=True, slots=True)
class OnReader:
    """The chip card on this counter's reader now (``card_no`` "" when blank/unreadable)."""

    uid: bytes
    card_no: str


@dataclass(frozen=True, slots=True)
class TapCheck:
    """The outcome of the checks on a tap: refused, or the patient with flags and wallet."""

    card_no: str
    entry: str
    view: PatientView | None = None
    refusal: Refusal | None = None
    wallet: CardWallet | None = None
    notes: tuple[str, ...] = ()
    balance: BalanceView | None = None


def bound_to_record(data: CardData, card: Card) -> Refusal | None:
    """A validly signed card is accepted only as the ledger recorded its issue: by the
    counter that signed it, on the chip it was written to.

    A counter's key can sign card data for any number (a stolen or revoked key, a
    pharmacy minting a cashier's patient's card): the signature alone proves only who
    signed.  The ledger's ``card.issued`` (the earliest, every node agrees) says who
    issued the card and on which chip; data signed by anyone else, or the right data
    copied onto another chip, is refused.  (Cards issued before chips were recorded
    have no chip in the record: only the issuer is compared.)
    """
    if card.issued_node and data.issuer != card.issued_node:
        return Refusal(
            "card_wrong_issuer", "Card not issued as recorded",
            f"Card {card.card_no} was issued by counter {card.issued_node}, but this card's "
            f"data was signed by {data.issuer}. Do not accept it; keep it and call IT.")
    if card.chip_uid and data.uid and data.uid.hex() != card.chip_uid:
        return Refusal(
            "copied_card", "Copied card",
            f"Card {card.card_no} was issued on another chip: this card is a copy. Do not "
            "accept it; keep it and call IT.")
    return None


class CardDesk:
    """The counter's card glue: checks on every tap, issuing, wallet stamps.

    ``chip``: the reader can write chip cards (PC/SC or simulated); a keyboard wedge,
    or no reader at all, never writes (issue and stamps are skipped).
    """

    def __init__(self, service: CounterService, tr: Translator, reader: Any = None, *,
                 chip: bool = False, clock: Callable[[], int] | None = None) -> None:
        self.service = service
        self.tr = tr
        self.reader = reader
        self.chip = chip and reader is not None
        self._clock = clock
        self._keys: StaticKeys | None = None
        self.on_reader: OnReader | None = None
        self.current: TapCheck | None = None
        self.pending: dict[str, WalletStamp] = {}  # stamps not yet on their card

    @property
    def ledger(self) -> Any:
        return self.service.ledger

    def now_ms(self) -> int:
        if self._clock is not None:
            return self._clock()
        from edge_node.ledger import wall_ms

        return wall_ms()

    # -- what is on the reader -----------------------------------------------------------
    def saw(self, event: Any) -> None:
        """Follow the chip on the reader (every reader event passes here first)."""
        if hasattr(event, "card_file") and getattr(event, "fault", None) is None:
            if getattr(event, "medium", "") in ("chip", "simulated"):
                card_no = ""
                try:
                    card_no = parse_card_file(bytes(event.card_file)).card_no
                except CardFormatError:
                    pass
                self.on_reader = OnReader(bytes(event.uid), card_no)
        elif hasattr(event, "at_ns") and not hasattr(event, "state"):  # CardRemoved
            self.on_reader = None

    # -- keys ----------------------------------------------------------------------------
    async def keys(self, refresh: bool = False) -> StaticKeys:
        """The public keys of the counters this one knows, each over its seqs (re-read
        when a card does not verify: sync may have added a counter or a rotation)."""
        if self._keys is None or refresh:
            self._keys = StaticKeys(await self.ledger.node_keys(), await self.ledger.keyring())
        return self._keys

    async def issued(self, card_file: bytes) -> IssueRecord | None:
        """What the ledger says of the issue of the card in ``card_file`` (its issuer and
        the issuing event's seq, whose key must have signed the card), if it knows it."""
        if not card_file:
            return None
        try:
            card_no = parse_card_file(card_file).card_no
        except CardFormatError:
            return None
        rec = await self.ledger.get(Card, card_no)
        if rec is None or not rec.issued_at:
            return None
        return IssueRecord(rec.card_no, rec.issued_node, rec.issued_seq)

    # -- every tap -----------------------------------------------------------------------
    async def check(self, card_no: str, entry: str, tapped: Tapped | None = None) -> TapCheck:
        """Identify the card offline, match it with the ledger, weigh its wallet stamp.

        Raises only for storage errors (the screen shows them); refusals are values.
        """
        tr = self.tr
        notes: list[str] = []
        medium = (tapped.medium if tapped is not None and tapped.medium else entry)
        card_file = tapped.card_file if tapped is not None else b""
        typed = "" if medium in ("chip", "simulated") else card_no
        uid = tapped.uid if tapped is not None else b""
        issued = await self.issued(card_file)
        ident = identify(medium=medium, uid=uid, card_file=card_file, typed=typed,
                         keys=await self.keys(), issued=issued)
        if ident.refusal is not None and ident.refusal.code in ("unknown_signer",
                                                                "bad_signature"):
            ident = identify(medium=medium, uid=uid, card_file=card_file, typed=typed,
                             keys=await self.keys(refresh=True), issued=issued)
        if ident.refusal is not None:
            return self._refused(card_no, entry, ident.refusal)
        if ident.manual or entry == "manual":
            entry = "manual"  # recorded on the events (card_entry) whatever the counter
            if self.reader is not None:  # with a reader, typing means the card was not read
                notes.append(tr("card.flag_manual"))
        try:
            view = await self.service.lookup_card(ident.card_no)
        except OperationRefused as exc:
            if not any(p.code == "card.unknown" for p in exc.problems):
                raise
            refusal = check_record(ident.card_no, ident.patient_no, None)
            assert refusal is not None
            return self._refused(ident.card_no, entry, refusal)
        card = view.card
        assert card is not None
        if card.status not in ("active", "lost", "replaced"):
            return self._refused(ident.card_no, entry, Refusal(
                "card_blocked", "Card blocked",
                f"Card {card.card_no} is blocked ({card.status}). Keep the card; ask the "
                "patient for ID and call IT."))
        if ident.card is not None:
            refusal = bound_to_record(ident.card, card)
            if refusal is not None:
                return self._refused(ident.card_no, entry, refusal)
        status = cast(Literal["active", "lost", "replaced"], card.status)
        refusal = check_record(ident.card_no, ident.patient_no,
                               CardRecord(card.card_no, card.patient_id, status))
        if refusal is not None and refusal.code not in ("card_lost", "card_replaced"):
            return self._refused(ident.card_no, entry, refusal)
        stamp_file = tapped.stamp_file if tapped is not None and entry == "chip" else b""
        balance, wallet = await self._weigh(view, ident.card_no, stamp_file, notes)
        result = TapCheck(ident.card_no, entry, view, None, wallet, tuple(notes), balance)
        self.current = result
        # every desk's card check comes here once per tap: the one place a card opens
        # a record (audit.record_opened; never raises)
        await self.service.opened(view.patient.patient_id, "card")
        return result

    def _refused(self, card_no: str, entry: str, refusal: Refusal) -> TapCheck:
        self.current = None
        return TapCheck(card_no, entry, refusal=refusal)

    async def _weigh(self, view: PatientView, card_no: str, stamp_file: bytes,
                     notes: list[str]) -> tuple[BalanceView | None, CardWallet | None]:
        """The card's wallet stamp against the ledger; a pending stamp is written first."""
        acct, pid = view.account, view.patient.patient_id
        bal, seq = known_money(acct)
        keys = await self.keys()
        known = KnownBalance(pid, bal, seq)
        pending = self.pending.get(card_no)
        if pending is not None and self._on_reader(card_no):
            current = decide_balance(known, stamp_file, keys, card_no=card_no, patient_no=pid)
            if current.stamp is None or current.stamp.seq < pending.seq:
                try:
                    assert self.on_reader is not None
                    await write_stamp(self.reader, self.on_reader.uid, pending)
                    stamp_file = layout.frame(pending.to_bytes())
                    del self.pending[card_no]
                except CardError:
                    notes.append(self.tr("card.flag_stamp_pending"))
                    return current, None
            else:
                del self.pending[card_no]
        elif pending is not None:
            notes.append(self.tr("card.flag_stamp_pending"))
        if not stamp_file:
            return None, None
        view_b = decide_balance(known, stamp_file, keys, card_no=card_no, patient_no=pid)
        if view_b.possible_clone and view_b.stamp is not None \
                and view_b.stamp.seq >= acct.stamp_seq:
            # Older than the ledger's money events but not than any stamp it wrote or
            # accepted: the card simply missed events done without a chip (a wedge counter,
            # a cash refund elsewhere) — not a replay.  Only a stamp older than one this
            # ledger knows was written is a copy's.
            view_b = replace(view_b, flags=tuple(f for f in view_b.flags
                                                 if f.code != "possible_clone"))
        for flag in view_b.flags:
            notes.append(refusal_text(self.tr, flag))
        for why in view_b.ignored:
            notes.append(self.tr("card.flag_stamp_ignored", why=why.title))
        if view_b.balance < acct.balance:
            from protocol.money import yuan

            notes.append(self.tr("card.flag_stamp_lower",
                                 amount=yuan(view_b.balance + acct.credit_limit)))
        stamp = view_b.stamp
        wallet = CardWallet(stamp.seq, stamp.balance) if stamp is not None else None
        return view_b, wallet

    def _on_reader(self, card_no: str) -> bool:
        return self.chip and self.on_reader is not None and self.on_reader.card_no == card_no

    # -- for the money forms ---------------------------------------------------------------
    def money_context(self, card_no: str) -> tuple[CardWallet | None, bool]:
        """(what the card's stamp said, whether a stamp will be written) for ``card_no``."""
        cur = self.current
        wallet = cur.wallet if cur is not None and cur.card_no == card_no else None
        stamp = self._on_reader(card_no) and cur is not None and cur.card_no == card_no \
            and cur.entry == "chip"
        return wallet, stamp

    # -- issuing (write-then-verify) -------------------------------------------------------
    def refuse_issue(self, text: str) -> OperationRefused:
        return OperationRefused([Problem("card.write", text, "card_no")])

    async def issue(self, card_no: str, patient_id: str) -> str:
        """Write the signed card data to the blank chip on the reader and read it back;
        return the chip's UID (hex), which the issuing event records.

        Raises :class:`OperationRefused` (shown in the form) when there is no card, the
        card is already someone's, or the write fails: then nothing may be appended.
        """
        tr = self.tr
        on = self.on_reader
        if on is None:
            raise self.refuse_issue(tr("card.need_blank"))
        if on.card_no and await self.ledger.get("cards", on.card_no) is not None:
            raise self.refuse_issue(tr("card.in_use", card=on.card_no))
        key = self.ledger.key
        data = issue_card(key, self.ledger.node_id, card_no=card_no, patient_no=patient_id,
                          issued_ms=self.now_ms(), uid=on.uid)
        try:
            await write_card(self.reader, on.uid, data)
        except CardError as exc:
            raise self.refuse_issue(tr("card.write_failed", why=f"{exc.title}: {exc.message}")
                                    ) from None
        if self.on_reader is not None and self.on_reader.uid == on.uid:
            self.on_reader = OnReader(on.uid, card_no)
        return on.uid.hex()

    # -- wallet stamps ---------------------------------------------------------------------
    async def stamp_after(self, receipt: Receipt, card_no: str) -> str | None:
        """Write the wallet stamp a money event recorded; a warning text if it failed.

        The money event is committed whatever happens here.  A stamp not written is kept
        and written when the card is next presented at this counter.
        """
        # the last: a registration or replacement may charge the card fee after a deposit
        ev = next((e for e in reversed(receipt.events) if "stamp_seq" in e.body), None)
        if ev is None or not card_no:
            return None
        pid = str(ev.body["patient_id"])
        stamp = make_stamp(self.ledger.key, self.ledger.node_id, card_no=card_no,
                           patient_no=pid, account=pid, balance=int(ev.body["stamp_balance"]),
                           seq=int(ev.body["stamp_seq"]), event_hash=ev.hash(),
                           at_ms=ev.hlc.wall)
        on = self.on_reader
        if not self._on_reader(card_no) or on is None:
            self.pending[card_no] = stamp
            return self.tr("card.stamp_failed", why=NoCard.title)
        try:
            await write_stamp(self.reader, on.uid, stamp)
        except CardError as exc:
            self.pending[card_no] = stamp
            return self.tr("card.stamp_failed", why=f"{exc.title}: {exc.message}")
        self.pending.pop(card_no, None)
        if self.current is not None and self.current.card_no == card_no:
            self.current = replace(self.current, wallet=CardWallet(stamp.seq, stamp.balance))
        return None


@dataclass(frozen=True, slots=True)
class TypedCard:
    """The event :class:`TypedCardSource` delivers (shaped like a wedge ``CardPresented``)."""

    typed: str
    medium: str = "wedge"
    card_file: bytes = b""
    fault: None = None


class TypedCardSource:
    """A reader that "reads" whatever number :meth:`tap` is given."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[TypedCard] = asyncio.Queue()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def tap(self, card_no: str) -> None:
        self._queue.put_nowait(TypedCard(card_no))

    async def events(self) -> AsyncIterator[Any]:  # type: ignore[override]
        while True:
            yield await self._queue.get()
