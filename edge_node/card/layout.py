"""What is on a OneCard chip, and the pure decisions taken on it: no I/O here.

Theory of operation
-------------------
The card carries one ISO 7816-4 application, selected by :data:`AID`, with two
transparent elementary files:

``EF_CARD`` (0x0101)
    The card's identity: card number, patient number, issue time (UTC ms), the issuing
    counter's node id, the chip's UID, and that counter's Ed25519 signature over all of
    them.  Any counter that knows the issuer's public key (through sync/enrolment) can
    refuse a forged or altered card offline.  Binding the UID means a byte-for-byte
    copy onto another chip is refused too.

``EF_STAMP`` (0x0102)
    The *wallet stamp*, rewritten after every money event: card, patient, account,
    balance (fen), the account's money sequence, the event's hash, the writing counter
    and its signature.  A counter that has not yet synced that event learns of the
    spending from the card (see :func:`decide_balance`).

Each file holds ``b"OC" + version + 2-byte big-endian length + canonical msgpack``
followed by zero padding.  A file of zeros is blank.  Writers put the header last
(:func:`write_plan`), so a card pulled mid-write reads as blank or damaged, and is
refused: it can never look like a valid, half-issued card.

Everything is a value: parsers raise :class:`CardFormatError`; checks return
:class:`Refusal` values (or ``None``) for the counter to show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from protocol import codec
from protocol.crypto import HASH_SIZE, SIGNATURE_SIZE, SigningKey, verify
from protocol.errors import ProtocolError, SignatureError
from protocol.keyring import KeySpan, key_at, single

Fen = int
NodeId = str
CardNo = str
PatientNo = str

#: Proprietary AID (RID F0… is "not registered", fine for a closed hospital scheme):
#: "ONECARD" and application version 1.
AID = bytes.fromhex("F04F4E454341524401")
EF_CARD = 0x0101
EF_STAMP = 0x0102
#: Sizes the card vendor personalises the EFs with.
EF_SIZES = {EF_CARD: 512, EF_STAMP: 256}

MAGIC = b"OC"
FORMAT_VERSION = 1
HEADER_SIZE = 5  # MAGIC + version + 2-byte length
MAX_CHUNK = 200  # bytes per UPDATE BINARY (short APDU, with headroom)
READ_CHUNK = 256  # Le = 00


# ---------------------------------------------------------------------------- APDUs


def select_aid(aid: bytes = AID) -> bytes:
    """SELECT by DF name, first occurrence, no response data (P2=0C)."""
    return bytes([0x00, 0xA4, 0x04, 0x0C, len(aid)]) + aid


def select_ef(fid: int) -> bytes:
    """SELECT EF under the current DF by file identifier, no response data."""
    return bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big")


def read_binary(offset: int, le: int = 0) -> bytes:
    """READ BINARY at ``offset`` (15-bit), ``le`` bytes (0 means 256)."""
    if not 0 <= offset < 0x8000 or not 0 <= le <= 0xFF:
        raise ValueError("offset or length out of range for a short READ BINARY")
    return bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, le])


def update_binary(offset: int, data: bytes) -> bytes:
    """UPDATE BINARY at ``offset`` (no Le: case 3)."""
    if not 0 <= offset < 0x8000 or not 0 < len(data) <= 0xFF:
        raise ValueError("offset or length out of range for a short UPDATE BINARY")
    return bytes([0x00, 0xD6, offset >> 8, offset & 0xFF, len(data)]) + data


GET_UID = bytes([0xFF, 0xCA, 0x00, 0x00, 0x00])

_SW_TEXT = {
    0x6282: "end of file reached before the requested length",
    0x6700: "wrong length",
    0x6982: "security status not satisfied",
    0x6986: "no file selected",
    0x6A82: "file or application not found",
    0x6A86: "incorrect parameters",
    0x6B00: "offset outside the file",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
}


def sw_text(sw: int) -> str:
    return _SW_TEXT.get(sw, "card error")


def write_plan(fid_size: int, payload: bytes) -> list[tuple[int, bytes]]:
    """The UPDATE BINARY writes (offset, data) that store ``payload``, header last.

    First the header is zeroed (the file now reads as blank), then the body is written,
    then the real header: a card pulled at any point is blank or fails to parse.
    """
    framed = frame(payload)
    if len(framed) > fid_size:
        raise ValueError(f"{len(framed)} bytes do not fit in a {fid_size}-byte file")
    body = framed[HEADER_SIZE:]
    steps: list[tuple[int, bytes]] = [(0, bytes(HEADER_SIZE))]
    for i in range(0, len(body), MAX_CHUNK):
        steps.append((HEADER_SIZE + i, body[i : i + MAX_CHUNK]))
    steps.append((0, framed[:HEADER_SIZE]))
    return steps


# ------------------------------------------------------------------------- framing


class CardFormatError(ValueError):
    """File content that is not a well-formed OneCard record (``code`` says how)."""

    def __init__(self, code: Literal["blank", "damaged"], message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(payload: bytes) -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError("payload too large")
    return MAGIC + bytes([FORMAT_VERSION]) + len(payload).to_bytes(2, "big") + payload


def needed_length(head: bytes) -> int:
    """How many bytes of the file must be read to have the whole record (from its header)."""
    if len(head) < HEADER_SIZE or head[:2] != MAGIC:
        return len(head)
    return HEADER_SIZE + int.from_bytes(head[3:5], "big")


def unframe(raw: bytes) -> bytes:
    """The payload of a file's content; CardFormatError when blank or damaged."""
    if len(raw) < HEADER_SIZE or not any(raw[:HEADER_SIZE]):
        raise CardFormatError("blank", "the card holds no data (blank or not issued)")
    if raw[:2] != MAGIC:
        raise CardFormatError("damaged", "the card's data is damaged (unknown format)")
    if raw[2] != FORMAT_VERSION:
        raise CardFormatError("damaged", f"the card's data has unknown version {raw[2]}")
    size = int.from_bytes(raw[3:5], "big")
    if HEADER_SIZE + size > len(raw):
        raise CardFormatError("damaged", "the card's data is cut short")
    return raw[HEADER_SIZE : HEADER_SIZE + size]


# ------------------------------------------------------------------- refusals, keys


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a card (or its stamp) is not accepted, for the counter's status line.

    ``code`` is stable (tests and translations key on it); ``title`` is a few words,
    ``message`` says what happened and what staff should do.
    """

    code: str
    title: str
    message: str

    def __str__(self) -> str:
        return f"{self.title}: {self.message} [{self.code}]"


class KeyDirectory(Protocol):
    """The public keys of the counters this counter knows (the ledger's node table and
    each node's keys over its seqs, :mod:`protocol.keyring`)."""

    def public_key_of(self, node_id: NodeId) -> bytes | None:
        """``node_id``'s current key (None: unknown here)."""
        ...

    def key_at(self, node_id: NodeId, seq: int) -> bytes | None:
        """The key that signs ``node_id``'s event ``seq`` (None: none does)."""
        ...

    def keys_of(self, node_id: NodeId) -> tuple[bytes, ...]:
        """Every key ``node_id`` has had, its current one first (empty: unknown here)."""
        ...


class StaticKeys:
    """A :class:`KeyDirectory` over a mapping (tests, the demo, a ledger snapshot): each
    node's current key, and (``spans``) the keys of those that rotated over their seqs;
    a node without spans has had its current key from seq 1 on."""

    def __init__(self, keys: Mapping[NodeId, bytes],
                 spans: Mapping[NodeId, Sequence[KeySpan]] | None = None) -> None:
        self._keys = dict(keys)
        self._spans = {n: tuple(h) for n, h in (spans or {}).items()}

    def _history(self, node_id: NodeId) -> tuple[KeySpan, ...]:
        if node_id in self._spans:
            return self._spans[node_id]
        key = self._keys.get(node_id)
        return single(key) if key is not None else ()

    def public_key_of(self, node_id: NodeId) -> bytes | None:
        return self._keys.get(node_id)

    def key_at(self, node_id: NodeId, seq: int) -> bytes | None:
        return key_at(self._history(node_id), seq)

    def keys_of(self, node_id: NodeId) -> tuple[bytes, ...]:
        current = self._keys.get(node_id)
        older = [sp.key for sp in reversed(self._history(node_id)) if sp.key != current]
        return ((current,) if current is not None else ()) + tuple(older)


def _check_signature(
    keys: KeyDirectory, node: NodeId, message: bytes, sig: bytes, what: str,
    candidates: tuple[bytes, ...] | None = None,
) -> Refusal | None:
    """Whether ``sig`` is ``node``'s over ``message``, by one of ``candidates`` (default:
    every key the node has had)."""
    if candidates is None:
        candidates = keys.keys_of(node)
    if not candidates:
        return Refusal(
            "unknown_signer",
            "Unknown issuer",
            f"The {what} was signed by counter '{node}', which this counter does not know. "
            "If that counter was enrolled recently, sync and try again; otherwise keep the "
            "card and call IT.",
        )
    for public_key in candidates:
        try:
            verify(public_key, message, sig)
            return None
        except SignatureError:
            continue
    return Refusal(
        "bad_signature",
        "Forged or altered card",
        f"The {what}'s signature does not match its content. Do not accept the card; "
        "keep it and call IT.",
    )


# --------------------------------------------------------------------------- card data

_CARD_TAG = "onecard.card"


@dataclass(frozen=True, slots=True)
class CardData:
    """The signed identity on a card (EF_CARD), or in a QR/printed card's text."""

    card_no: CardNo
    patient_no: PatientNo
    issued_ms: int
    issuer: NodeId
    uid: bytes  # the chip's UID; b"" for printed/QR cards
    sig: bytes

    def _fields(self) -> dict[str, object]:
        return {
            "t": _CARD_TAG,
            "card": self.card_no,
            "patient": self.patient_no,
            "issued": self.issued_ms,
            "node": self.issuer,
            "uid": self.uid,
        }

    def signed_bytes(self) -> bytes:
        return codec.encode(self._fields())

    def to_bytes(self) -> bytes:
        return codec.encode({**self._fields(), "sig": self.sig})

    @classmethod
    def from_bytes(cls, payload: bytes) -> CardData:
        try:
            v = codec.decode(payload, max_size=4096)
        except ProtocolError as exc:
            raise CardFormatError("damaged", f"the card's data is damaged ({exc})") from None
        if (
            not isinstance(v, dict)
            or v.get("t") != _CARD_TAG
            or set(v) != {"t", "card", "patient", "issued", "node", "uid", "sig"}
            or not isinstance(v["card"], str)
            or not isinstance(v["patient"], str)
            or type(v["issued"]) is not int
            or not isinstance(v["node"], str)
            or not isinstance(v["uid"], bytes)
            or not isinstance(v["sig"], bytes)
            or len(v["sig"]) != SIGNATURE_SIZE
        ):
            raise CardFormatError("damaged", "the card's data is not a OneCard record")
        return cls(v["card"], v["patient"], v["issued"], v["node"], v["uid"], v["sig"])


def issue_card(
    key: SigningKey,
    issuer: NodeId,
    *,
    card_no: CardNo,
    patient_no: PatientNo,
    issued_ms: int,
    uid: bytes,
) -> CardData:
    """Sign a new card's identity with the issuing counter's key."""
    unsigned = CardData(card_no, patient_no, issued_ms, issuer, uid, b"")
    return CardData(card_no, patient_no, issued_ms, issuer, uid, key.sign(unsigned.signed_bytes()))


def parse_card_file(raw: bytes) -> CardData:
    """EF_CARD content → CardData (CardFormatError when blank or damaged)."""
    return CardData.from_bytes(unframe(raw))


@dataclass(frozen=True, slots=True)
class IssueRecord:
    """What the ledger says of a card's issue: the counter whose ``card.issued`` (or
    ``card.replaced``) holds, and that event's seq in its chain."""

    card_no: CardNo
    node: NodeId
    seq: int


def card_keys(card: CardData, keys: KeyDirectory,
              issued: IssueRecord | None) -> tuple[bytes, ...]:
    """The keys that may have signed ``card``'s data.

    A card the ledger knows, issued by the counter that signed it: only that counter's
    key valid at the seq of the issuing event (the keyring's span lookup, as for its
    events) — a card issued before a rotation keeps working everywhere, and data signed
    with a retired key for a card recorded after the rotation is refused.  Any other
    card (unknown here, or the ledger names another issuer, which is refused as such
    after this): every key the signer has had — such a card is never accepted on its
    signature alone, and a genuine card issued just before a rotation and not yet synced
    says "not known yet", not "forged".
    """
    if issued is not None and issued.seq > 0 and issued.card_no == card.card_no \
            and issued.node == card.issuer:
        key = keys.key_at(card.issuer, issued.seq)
        return (key,) if key is not None else ()
    return keys.keys_of(card.issuer)


def verify_card(card: CardData, keys: KeyDirectory, *, uid: bytes | None,
                issued: IssueRecord | None = None) -> Refusal | None:
    """Check a card's signature (with the key :func:`card_keys` picks from the ledger's
    ``issued`` record), and for chips that the data belongs to this chip."""
    refusal = _check_signature(keys, card.issuer, card.signed_bytes(), card.sig, "card",
                               card_keys(card, keys, issued))
    if refusal is not None:
        return refusal
    if uid is not None and card.uid != uid:
        return Refusal(
            "copied_card",
            "Copied card",
            "The card's data was issued to a different chip: this card is a copy. "
            "Do not accept it; keep it and call IT.",
        )
    return None


def refusal_for_format(exc: CardFormatError, what: str = "card") -> Refusal:
    if exc.code == "blank":
        return Refusal(
            "blank_card",
            "Blank card",
            f"The {what} holds no patient data: it was never issued, or issuing was "
            "interrupted. Issue it again at a registration counter.",
        )
    return Refusal(
        "damaged_card",
        "Unreadable card data",
        f"The {what}'s data is damaged ({exc}). Re-issue the card at a registration counter.",
    )


@dataclass(frozen=True, slots=True)
class CardRecord:
    """What the ledger knows of a card number (the seam to ``service.lookup_card``)."""

    card_no: CardNo
    patient_no: PatientNo
    status: Literal["active", "lost", "replaced"]


def check_record(
    card_no: CardNo, patient_no: PatientNo | None, record: CardRecord | None
) -> Refusal | None:
    """Refuse a card the ledger does not know, knows differently, or has blocked.

    ``patient_no`` is None for unsigned magnetic-stripe numbers (nothing to compare).
    """
    if record is None:
        return Refusal(
            "unknown_card",
            "Card not on record",
            f"Card {card_no} is not in this counter's records. If it was issued at another "
            "counter while offline, wait for sync, or find the patient with Ctrl+F (name, "
            "phone or ID number).",
        )
    if record.card_no != card_no or (patient_no is not None and record.patient_no != patient_no):
        return Refusal(
            "card_mismatch",
            "Card does not match its record",
            f"Card {card_no} says patient {patient_no}, but the records say patient "
            f"{record.patient_no}. Do not accept it; call IT.",
        )
    if record.status == "lost":
        return Refusal(
            "card_lost",
            "Card reported lost",
            f"Card {card_no} was reported lost. Keep the card; ask the patient for ID "
            "and use their replacement card.",
        )
    if record.status == "replaced":
        return Refusal(
            "card_replaced",
            "Card replaced",
            f"Card {card_no} has been replaced by a newer card. Keep this one and use "
            "the new card.",
        )
    return None


# ----------------------------------------------------------------------- wallet stamp

_STAMP_TAG = "onecard.stamp"


@dataclass(frozen=True, slots=True)
class WalletStamp:
    """A counter's signed note on the card of an account's balance after a money event."""

    card_no: CardNo
    patient_no: PatientNo
    account: str
    balance: Fen
    seq: int  # the account's money sequence after the event
    event_hash: bytes
    node: NodeId
    at_ms: int
    sig: bytes

    def _fields(self) -> dict[str, object]:
        return {
            "t": _STAMP_TAG,
            "card": self.card_no,
            "patient": self.patient_no,
            "account": self.account,
            "balance": self.balance,
            "seq": self.seq,
            "event": self.event_hash,
            "node": self.node,
            "at": self.at_ms,
        }

    def signed_bytes(self) -> bytes:
        return codec.encode(self._fields())

    def to_bytes(self) -> bytes:
        return codec.encode({**self._fields(), "sig": self.sig})

    @classmethod
    def from_bytes(cls, payload: bytes) -> WalletStamp:
        try:
            v = codec.decode(payload, max_size=4096)
        except ProtocolError as exc:
            raise CardFormatError("damaged", f"the wallet stamp is damaged ({exc})") from None
        keys = {"t", "card", "patient", "account", "balance", "seq", "event", "node", "at", "sig"}
        if (
            not isinstance(v, dict)
            or v.get("t") != _STAMP_TAG
            or set(v) != keys
            or not all(isinstance(v[k], str) for k in ("card", "patient", "account", "node"))
            or not all(type(v[k]) is int for k in ("balance", "seq", "at"))
            or not isinstance(v["event"], bytes)
            or len(v["event"]) != HASH_SIZE
            or not isinstance(v["sig"], bytes)
            or len(v["sig"]) != SIGNATURE_SIZE
        ):
            raise CardFormatError("damaged", "the wallet stamp is not a OneCard record")
        return cls(
            v["card"], v["patient"], v["account"], v["balance"], v["seq"], v["event"],
            v["node"], v["at"], v["sig"],
        )  # fmt: skip


def make_stamp(
    key: SigningKey,
    node: NodeId,
    *,
    card_no: CardNo,
    patient_no: PatientNo,
    account: str,
    balance: Fen,
    seq: int,
    event_hash: bytes,
    at_ms: int,
) -> WalletStamp:
    if type(balance) is not int or type(seq) is not int or seq < 1:
        raise ValueError("balance must be integer fen and seq a positive integer")
    if len(event_hash) != HASH_SIZE:
        raise ValueError("event_hash is a 32-byte BLAKE2b-256 hash")
    unsigned = WalletStamp(card_no, patient_no, account, balance, seq, event_hash, node, at_ms, b"")
    return WalletStamp(
        card_no, patient_no, account, balance, seq, event_hash, node, at_ms,
        key.sign(unsigned.signed_bytes()),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class KnownBalance:
    """What this counter's ledger knows of an account (from ``service.lookup_card``)."""

    account: str
    balance: Fen
    money_seq: int


@dataclass(frozen=True, slots=True)
class BalanceView:
    """The balance this counter may spend from, after weighing the card's stamp.

    ``balance`` is never higher than the ledger's; ``money_seq`` is the newest sequence
    known from either (the next stamp is written with ``money_seq + 1``).  ``flags`` are
    things IT must see (``possible_clone``, ``stamp_diverged``); ``ignored`` says why a
    stamp was not used (``Refusal`` values for the status line).
    """

    balance: Fen
    money_seq: int
    source: Literal["ledger", "stamp"]
    stamp: WalletStamp | None
    flags: tuple[Refusal, ...] = ()
    ignored: tuple[Refusal, ...] = ()

    @property
    def possible_clone(self) -> bool:
        return any(f.code == "possible_clone" for f in self.flags)

    @property
    def next_seq(self) -> int:
        return self.money_seq + 1


def decide_balance(
    known: KnownBalance,
    stamp_file: bytes,
    keys: KeyDirectory,
    *,
    card_no: CardNo,
    patient_no: PatientNo,
) -> BalanceView:
    """Weigh the card's wallet stamp against what the ledger knows.

    - no stamp, or one that cannot be verified (damaged, forged, unknown signer, for
      another card or account): use the ledger, report why the stamp was ignored (a
      stamp verifies with any key its writer has had: one written before the writer
      rotated its key stays readable, and a stamp can only lower what the card may spend
      or flag it);
    - a valid stamp *newer* than the ledger (higher seq): the card has seen money events
      this counter has not synced yet; use the lower of the two balances;
    - the same seq: the same history if the balance matches; if not, two counters wrote
      different histories offline: take the lower balance, flag it;
    - *older* than the ledger (lower seq): the card missed a later stamp, or it is a copy
      replaying an old balance: use the ledger, flag a possible cloned card.
    """
    ledger = BalanceView(known.balance, known.money_seq, "ledger", None)
    if not stamp_file or not any(stamp_file[:HEADER_SIZE]):
        return ledger
    try:
        stamp = WalletStamp.from_bytes(unframe(stamp_file))
    except CardFormatError as exc:
        return _ignore(ledger, refusal_for_format(exc, "wallet stamp"))
    refusal = _check_signature(keys, stamp.node, stamp.signed_bytes(), stamp.sig, "wallet stamp")
    if refusal is not None:
        return _ignore(ledger, refusal)
    if (
        stamp.card_no != card_no
        or stamp.patient_no != patient_no
        or (stamp.account != known.account)
    ):
        return _ignore(
            ledger,
            Refusal(
                "stamp_not_this_card",
                "Wallet stamp from another card",
                f"The wallet stamp is for card {stamp.card_no}, account {stamp.account}: "
                "ignored; the counter's own records are used.",
            ),
        )
    if stamp.seq > known.money_seq:
        lower = min(known.balance, stamp.balance)
        return BalanceView(lower, stamp.seq, "stamp" if lower < known.balance else "ledger", stamp)
    if stamp.seq == known.money_seq:
        if stamp.balance == known.balance:
            return BalanceView(known.balance, known.money_seq, "ledger", stamp)
        lower = min(known.balance, stamp.balance)
        flag = Refusal(
            "stamp_diverged",
            "Card and records disagree",
            f"The card says {stamp.balance} fen after money event #{stamp.seq}, the records "
            f"say {known.balance} fen: two counters may have charged offline at once. "
            "The lower balance is used and IT is told.",
        )
        return BalanceView(
            lower, known.money_seq, "stamp" if lower < known.balance else "ledger", stamp, (flag,)
        )
    flag = Refusal(
        "possible_clone",
        "Possible cloned card",
        f"The card carries an old wallet stamp (#{stamp.seq}; the records are at "
        f"#{known.money_seq}). It may be a copy of the card. The records' balance is used; "
        "check the patient's ID and tell IT.",
    )
    return BalanceView(known.balance, known.money_seq, "ledger", stamp, (flag,))


def remember_stamp(known: KnownBalance, stamp: WalletStamp) -> KnownBalance:
    """What the ledger must know after this counter wrote (or accepted) ``stamp``.

    Without it, a replayed older stamp would look "as new as" the ledger and could
    raise the balance a copied card gets; with it, the replay is flagged as a clone.
    """
    return KnownBalance(
        known.account, min(known.balance, stamp.balance), max(known.money_seq, stamp.seq)
    )


def _ignore(view: BalanceView, why: Refusal) -> BalanceView:
    return BalanceView(view.balance, view.money_seq, view.source, None, view.flags, (why,))


# ------------------------------------------------------------------- identification


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a presented card says it is, after the offline checks.

    ``signed`` is True when a signature was verified (chip or QR); plain stripe or
    barcode numbers and manual entry are ``signed=False`` (and ``manual`` for the
    latter, which the event written for this visit must record).  ``refusal`` is set
    when the card must not be accepted; the ledger check (:func:`check_record`) comes
    after this.
    """

    card_no: CardNo
    patient_no: PatientNo | None
    signed: bool
    manual: bool
    card: CardData | None = None
    refusal: Refusal | None = None


def identify(
    *,
    medium: str,
    uid: bytes,
    card_file: bytes,
    typed: str,
    keys: KeyDirectory,
    issued: IssueRecord | None = None,
) -> Identity:
    """Check what a reader read (see :class:`edge_node.card.reader.CardPresented`);
    ``issued``: the ledger's record of the card's issue, if it has one (its key)."""
    if medium in ("wedge", "manual") and not card_file:
        return Identity(typed, None, signed=False, manual=medium == "manual")
    try:
        card = parse_card_file(card_file)
    except CardFormatError as exc:
        return Identity(typed, None, False, False, refusal=refusal_for_format(exc))
    refusal = verify_card(card, keys, uid=uid if medium in ("chip", "simulated") else None,
                          issued=issued)
    if refusal is None and typed and typed != card.card_no:
        refusal = Refusal(
            "card_number_mismatch",
            "Card number does not match",
            f"The card shows number {typed} but its signed data is for card {card.card_no}. "
            "Do not accept it; keep it and call IT.",
        )
    return Identity(card.card_no, card.patient_no, refusal is None, False, card, refusal)
