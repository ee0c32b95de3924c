"""Patients' details at rest: sealed with the hospital's data key, found by keyed tags.

Theory of operation
-------------------
A patient's national ID number, phone and address (``contact``) are personal data the
counters need at one desk (registration, the cashier's) and most desks never need.  They
are therefore never written in clear: the counter that registers a patient or changes
those details seals each value with the hospital's **data key** (libsodium secretbox,
XSalsa20-Poly1305, a fresh random nonce each time) before it signs the event, so the
events, every ledger's projections, central's store, their WAL files and backups hold
only ``sb1:<key id>:<nonce+ciphertext>``.  The sealed text binds the field and the
patient number (``field NUL patient NUL value`` is what is sealed), so a sealed phone
cannot be passed off as someone else's, or as an ID number.

The patient's **name** is sealed the same way with a third key, the **names key**
(derived from the pair, so the file and the key id stay as they are), which every staff
desk and the kiosk get: they call patients by name, so the ledger opens names as it
hands records out (:meth:`edge_node.ledger.Ledger.get`) while its projections, the
events and central's store hold them sealed.  A counter finds a sealed name by its own
index of keyed terms (each prefix of the name, of its substrings, pinyin and initials,
keyed with a key derived from the names key: :mod:`edge_node.search`), kept locally and
rebuilt when its keys change; nothing about names is in an event but the sealed text.

Search still works offline, without decrypting anything: next to each sealed value the
event carries keyed BLAKE2b **tags** (``id_tag`` for the ID number; ``phone_tag`` for the
phone's digits and for its last four) made with the hospital's **lookup key**; a counter
holding the lookup key tags what staff type and looks the tag up.  Tags are 128 bits of
keyed hash: without the lookup key they tell nothing, not even that two patients share
a phone's last four digits across hospitals.

Both keys are made once by ``onecard-central init`` (``patient_keys_file``, mode 0600)
and given to counters by central as a signed ``privacy.key_granted`` event: each key
sealed (libsodium sealed box) to the counter's own Ed25519 key converted to X25519, at
enrolment and at every key rotation.  A counter's role decides what it gets
(``[privacy]`` in central's config): by default the cashier's desks both keys, triage,
doctor, lab and pharmacy only the lookup key (they find patients but never see their
details decrypted), kiosks neither.  The grant is in every ledger like any event, but
only its counter's private key (a file beside the ledger, never in it) opens it, so a
copied ledger file alone reveals nothing.

Ledgers written before this module hold some details in clear ("legacy"): those still
fold and show; a counter never writes a new one (the rule :func:`clear_details`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nacl.exceptions
import nacl.public
import nacl.secret
import nacl.signing
import nacl.utils

from protocol.core import (
    CENTRAL_ONLY,
    At,
    Kind,
    Record,
    State,
    Tx,
    later,
    no_money,
    no_notice,
    no_report,
    no_rule,
    record,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import Body, Field, body, ident, spec

PREFIX = "sb1:"
KEY_SIZE = 32
KEY_ID_RE = re.compile(r"^[0-9a-f]{8}$")
#: a sealed value: prefix, key id, base64url(nonce 24 + MAC 16 + ciphertext)
SEALED_RE = re.compile(r"^sb1:[0-9a-f]{8}:[A-Za-z0-9_-]{54,700}$")
SEALED_MAX = 720
TAG_RE = re.compile(r"^[0-9a-f]{32}$")
PHONE_TAG_RE = re.compile(r"^[0-9a-f]{32} [0-9a-f]{32}$")
GRANT_RE = re.compile(r"^[A-Za-z0-9_-]{100,120}$")  # base64url of a sealed 32-byte key
PUBKEY_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
#: the details sealed with the data key, and the tag field that goes with each (if any)
SEALED_FIELDS = ("national_id", "phone", "contact")
#: the patient's name: sealed too, with the names key (every staff desk reads names)
NAME = "name"
TAGS = {"national_id": "id_tag", "phone": "phone_tag", "name": "name_tag"}
#: the node roles given each key unless central's config says otherwise
REVEAL_ROLES = ("cashier",)
LOOKUP_ROLES = ("cashier", "triage", "doctor", "lab", "pharmacy")
NAME_ROLES = (*LOOKUP_ROLES, "kiosk")  # the kiosk greets the patient by a masked name
LABELS = {"sealed": ("（已加密）", "(sealed)")}
#: a name as a counter without the names key shows it (any language)
SEALED_NAME = "***"


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def normal_name(text: str) -> str:
    """What a name is compared and searched as: NFKC, case-folded, letters and digits only
    (no spaces, no ``·`` of a minority name, no full-width forms)."""
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


def phone_digits(phone: str) -> str:
    """A phone as its tag is made: digits only, a leading ``86`` country code dropped."""
    digits = "".join(c for c in phone if "0" <= c <= "9")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


class KeyFileError(Exception):
    """The patient keys file is missing, unreadable, malformed or readable by others."""


@dataclass(frozen=True, slots=True)
class PatientKeys:
    """The hospital's data key and lookup key, as one holder has them (None: not given).

    ``key_id`` names the pair (the first 4 bytes of BLAKE2b of both), written into every
    sealed value, so a later pair can be told from this one."""

    key_id: str
    data: bytes | None
    lookup: bytes | None
    #: seals names (:data:`NAME`) and keys the name search terms; derived from the pair
    names: bytes | None = None

    @classmethod
    def generate(cls) -> PatientKeys:
        return cls.of(nacl.utils.random(KEY_SIZE), nacl.utils.random(KEY_SIZE))

    @classmethod
    def of(cls, data: bytes, lookup: bytes) -> PatientKeys:
        return cls(key_id_of(data, lookup), data, lookup, names_key_of(data, lookup))

    def _key(self, field: str) -> bytes | None:
        return self.names if field == NAME else self.data

    # -- sealing -----------------------------------------------------------------------
    def seal(self, field: str, patient_id: str, value: str) -> str:
        """``value`` sealed for ``field`` of ``patient_id`` ("" stays ""): a name with the
        names key, any other detail with the data key."""
        if not value:
            return ""
        key = self._key(field)
        if key is None:
            raise PermissionError("this counter holds no patient "
                                  + ("names key" if field == NAME else "data key"))
        box = nacl.secret.SecretBox(key)
        return (f"{PREFIX}{self.key_id}:"
                + _b64(bytes(box.encrypt(_plain(field, patient_id, value)))))

    def open(self, field: str, patient_id: str, value: str) -> str | None:
        """The clear value of a sealed one (a legacy clear value as it is); None when this
        holder cannot open it (no key for it, another key, damaged, another field or
        patient)."""
        if not is_sealed(value):
            return value
        key = self._key(field)
        if key is None or not SEALED_RE.match(value) or value[4:12] != self.key_id:
            return None
        try:
            plain = nacl.secret.SecretBox(key).decrypt(_unb64(value[13:]))
        except (nacl.exceptions.CryptoError, ValueError):
            return None
        want = _plain(field, patient_id, "")
        if not plain.startswith(want):
            return None
        try:
            return plain[len(want):].decode("utf-8")
        except UnicodeDecodeError:
            return None

    # -- tags --------------------------------------------------------------------------
    def tag(self, kind: str, value: str) -> str:
        """The keyed BLAKE2b-128 tag of ``value`` as a ``kind`` (n: ID, p: phone, t: last
        four); "" without a lookup key or a value."""
        if self.lookup is None or not value:
            return ""
        return hashlib.blake2b(f"{kind}\x00{value}".encode(), key=self.lookup,
                               digest_size=16).hexdigest()

    def name_tag(self, name: str) -> str:
        """The tag of a name as central compares names (likely duplicates): normalised
        (:func:`normal_name`)."""
        return self.tag("m", normal_name(name))

    def id_tag(self, national_id: str) -> str:
        return self.tag("n", national_id.strip().upper())

    def phone_tag(self, phone: str) -> str:
        digits = phone_digits(phone)
        if len(digits) < 4:
            return ""
        return f"{self.tag('p', digits)} {self.tag('t', digits[-4:])}"

    def name_term(self, term: str) -> str:
        """A name search term (:mod:`edge_node.search`) as the counter's index keeps it for
        a sealed name: keyed BLAKE2b-80 with a key derived from the names key ("" without
        one).  Local to the counter's index, never in an event."""
        if self.names is None:
            return ""
        return hashlib.blake2b(term.encode(), key=_index_key(self.names),
                               digest_size=10).hexdigest()

    def sealed_details(self, patient_id: str, details: dict[str, str]) -> dict[str, str]:
        """``details`` with the name and each of :data:`SEALED_FIELDS` sealed and its tag
        beside it (a value given empty clears the detail and its tag)."""
        out = dict(details)
        if details.get(NAME):
            out[NAME] = self.seal(NAME, patient_id, details[NAME])
            out[TAGS[NAME]] = self.name_tag(details[NAME])
        for field in SEALED_FIELDS:
            if field not in details or details[field] is None:
                continue
            value = details[field]
            out[field] = self.seal(field, patient_id, value)
            if field in TAGS:
                out[TAGS[field]] = (self.id_tag(value) if field == "national_id"
                                    else self.phone_tag(value)) if value else ""
        return out

    # -- the file central keeps --------------------------------------------------------
    def write(self, path: Path) -> None:
        """Both keys as hex on one line, created 0600 (refuses to overwrite)."""
        if self.data is None or self.lookup is None:
            raise ValueError("only the full pair is written")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(self.data.hex() + self.lookup.hex() + "\n")

    @classmethod
    def read(cls, path: Path) -> PatientKeys:
        try:
            st = path.stat()
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise KeyFileError(f"{path}: the patient data keys file is missing (it is made "
                               "by `onecard-central init`; restore it from the backup)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"{path}: cannot read the patient data keys: {exc}") from None
        if st.st_mode & 0o077:
            raise KeyFileError(f"{path}: the patient data keys are readable by others: "
                               f"chmod 600 {path}")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(raw) != 2 * KEY_SIZE:
            raise KeyFileError(f"{path}: not 128 hex digits (the data key, the lookup key)")
        return cls.of(raw[:KEY_SIZE], raw[KEY_SIZE:])


def key_id_of(data: bytes, lookup: bytes) -> str:
    return hashlib.blake2b(data + lookup, digest_size=4).hexdigest()


def names_key_of(data: bytes, lookup: bytes) -> bytes:
    """The names key of a pair: derived, so the keys file stays two keys and one key id
    names all three; a holder of the names key alone learns nothing of the other two."""
    return hashlib.blake2b(b"onecard patient names", key=data + lookup,
                           digest_size=KEY_SIZE).digest()


@lru_cache(maxsize=8)
def _index_key(names: bytes) -> bytes:
    return hashlib.blake2b(b"onecard name index", key=names, digest_size=KEY_SIZE).digest()


def _plain(field: str, patient_id: str, value: str) -> bytes:
    return f"{field}\x00{patient_id}\x00{value}".encode()


# -- giving the keys to a counter -----------------------------------------------------------
def seal_to(public_key: bytes, secret: bytes) -> str:
    """``secret`` sealed to the holder of Ed25519 ``public_key`` (its X25519 twin)."""
    curve = nacl.signing.VerifyKey(public_key).to_curve25519_public_key()
    return _b64(nacl.public.SealedBox(curve).encrypt(secret))


def open_sealed(seed: bytes, sealed: str) -> bytes | None:
    """What :func:`seal_to` sealed, opened with the Ed25519 ``seed``; None if not ours."""
    try:
        curve = nacl.signing.SigningKey(seed).to_curve25519_private_key()
        return nacl.public.SealedBox(curve).decrypt(_unb64(sealed))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return None


def grant_body(node: str, public_key: bytes, keys: PatientKeys, *, reveal: bool,
               lookup: bool, names: bool = False) -> dict[str, str] | None:
    """The ``privacy.key_granted`` body giving ``node`` (holding ``public_key``) the data
    key (``reveal``), the lookup key and/or the names key; None when it gets none."""
    if (not (reveal or lookup or names) or keys.data is None or keys.lookup is None
            or keys.names is None):
        return None
    body = {"node": node, "recipient": public_key.hex(), "key_id": keys.key_id,
            "data": seal_to(public_key, keys.data) if reveal else "",
            "lookup": seal_to(public_key, keys.lookup) if lookup else ""}
    if names:  # (absent, not "": a grant central signed before names were sealed)
        body["names"] = seal_to(public_key, keys.names)
    return body


@record("key_grants", ("node", "recipient"))
@dataclass(frozen=True, slots=True)
class KeyGrant(Record):
    """The patient keys central gave one counter key (the latest grant to it holds)."""

    node: str
    recipient: str  # the counter's Ed25519 public key, hex: the key the grant opens with
    key_id: str = ""
    data: str = ""  # sealed box of the data key ("": this counter does not decrypt)
    lookup: str = ""  # sealed box of the lookup key
    granted_at: str = ""
    names: str = ""  # sealed box of the names key


def keys_of(state_grant: KeyGrant | None, seed: bytes) -> PatientKeys | None:
    """The keys a counter holding Ed25519 ``seed`` opens from its grant (None: no grant,
    or one it cannot open: sealed to another key, or damaged)."""
    if state_grant is None:
        return None
    g = state_grant
    data = open_sealed(seed, g.data) if g.data else None
    lookup = open_sealed(seed, g.lookup) if g.lookup else None
    names = open_sealed(seed, g.names) if g.names else None
    if (g.data and data is None) or (g.lookup and lookup is None) or (g.names and names is None):
        return None
    if data is not None and lookup is not None and (
            key_id_of(data, lookup) != g.key_id
            or (names is not None and names != names_key_of(data, lookup))):
        return None  # a grant whose keys are not the pair it names
    return PatientKeys(g.key_id, data, lookup, names)


def grant_of(state: State, node: str, public_key: bytes) -> KeyGrant | None:
    return state.get(KeyGrant, (node, public_key.hex()))


@body
class Granted(Body):
    node: str = spec(ident())
    recipient: str = spec(Field(str, pattern=PUBKEY_HEX_RE))
    key_id: str = spec(Field(str, pattern=KEY_ID_RE))
    data: str = spec(Field(str, False, lo=0, hi=120), "")
    lookup: str = spec(Field(str, False, lo=0, hi=120), "")
    names: str = spec(Field(str, False, lo=0, hi=120), "")

    def problems(self) -> list[Problem]:
        out = [Problem("privacy.grant", f"{name}: not a sealed key", name)
               for name in ("data", "lookup", "names")
               if getattr(self, name) and not GRANT_RE.match(getattr(self, name))]
        if not (self.data or self.lookup or self.names):
            out.append(Problem("privacy.grant_empty", "a grant gives the data key, the "
                               "lookup key, the names key or some of them", "lookup"))
        return out


def _fold_granted(tx: Tx, at: At, b: Granted) -> None:
    g = tx.get_or_new(KeyGrant, (b.node, b.recipient))
    if later(at.order, g.granted_at):  # the latest grant to this key holds
        tx.put(g.evolve(key_id=b.key_id, data=b.data, lookup=b.lookup, names=b.names,
                        granted_at=at.order))


def _describe_granted(b: Granted, lang: str) -> str:
    what = [say(("数据密钥", "data key"), lang)] if b.data else []
    what += [say(("检索密钥", "lookup key"), lang)] if b.lookup else []
    what += [say(("姓名密钥", "names key"), lang)] if b.names else []
    return f"{b.node}: " + ", ".join(what) + f" ({b.key_id})"


GRANTED = Kind(
    name="privacy.key_granted", body=Granted, signer=CENTRAL_ONLY,
    title=("患者数据密钥授予", "Patient data keys granted"),
    records=lambda b: refs(KeyGrant, (b.node, b.recipient)),
    patients=lambda b: (),
    fold=_fold_granted, money=no_money, rule=no_rule,
    describe=_describe_granted, report=no_report, notice=no_notice,
)


# -- showing them -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Details:
    """A patient's sealed details as one holder may see them: the clear value, "" when
    the patient has none, None when it is sealed and this holder may not open it."""

    national_id: str | None = ""
    phone: str | None = ""
    contact: str | None = ""


NO_DETAILS = Details()


def details_of(p: object, keys: PatientKeys | None) -> Details:
    """The details of patient record ``p`` opened with ``keys`` (None: open nothing)."""
    pid = str(getattr(p, "patient_id", ""))

    def one(field: str) -> str | None:
        value = str(getattr(p, field, "") or "")
        if not is_sealed(value):
            return value
        return keys.open(field, pid, value) if keys is not None else None
    return Details(one("national_id"), one("phone"), one("contact"))


def name_of(p: object, keys: PatientKeys | None) -> str | None:
    """Patient record ``p``'s name opened with ``keys``: a legacy clear name as it is,
    None when it is sealed and ``keys`` hold no names key (or not this name's)."""
    value = str(getattr(p, NAME, "") or "")
    if not is_sealed(value):
        return value
    return keys.open(NAME, str(getattr(p, "patient_id", "")), value) if keys else None


# -- checks on patient bodies ------------------------------------------------------------
def detail_problems(field: str, value: str | None, tag: str | None) -> list[Problem]:
    """A sealed detail's shape and its tag (a legacy clear value: its tag is empty)."""
    if value is None:
        return []
    if is_sealed(value):
        if not SEALED_RE.match(value):
            return [Problem("privacy.sealed_format", f"{field}: not a sealed value", field)]
        if field in TAGS and not (PHONE_TAG_RE if field == "phone" else TAG_RE).match(
                tag or ""):
            return [Problem("privacy.tag_missing", f"{field}: a sealed value needs its "
                            "lookup tag", TAGS[field])]
        return []
    if field in TAGS and tag:
        return [Problem("privacy.tag_without_value", f"{TAGS[field]}: a tag without a "
                        f"sealed {field}", TAGS[field])]
    return []


def clear_details(body: object) -> list[Problem]:
    """The rule for new patient events: no name nor detail of :data:`SEALED_FIELDS` in
    clear."""
    clear = [f for f in (NAME, *SEALED_FIELDS)
             if (v := getattr(body, f, None)) and not is_sealed(v)]
    if not clear:
        return []
    return [Problem("privacy.clear_detail", f"{', '.join(clear)} must be sealed with the "
                    "hospital's patient keys before they are signed", clear[0],
                    {"fields": ", ".join(clear)})]


KINDS = (GRANTED,)
RECORDS = (KeyGrant,)
