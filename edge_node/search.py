"""Finding a patient who has no card with them, and an item on the price list, as typed.

Staff type what the patient can tell them: the patient number, the national ID number,
a phone number (or its last four digits), the name or part of it, or the name in pinyin
(``zhangsan``) or its initials (``zs``).  ID numbers and phones are sealed in the ledger
(:mod:`protocol.privacy`): they are found by keyed tags, which the counter makes of what
staff type with the hospital's lookup key, so nothing is decrypted to search.

Every one of those is a *term* in the ``patient_search`` table of the counter's ledger,
one row per (term, patient), so every query is a handful of index range scans, whatever
the number of patients:

=========  ==========================================================  =============
term       what                                                        matched
=========  ==========================================================  =============
``i:``     the patient number, folded to lower case                    exact, prefix
``N:``     the keyed tag of the national ID number (sealed)            exact
``P:``     the keyed tag of the phone's digits (no leading ``86``)     exact
``T:``     the keyed tag of the phone's last four digits               exact
``n:``     a legacy ledger's clear ID number (lower-case ``x``)        exact
``p:``     a legacy clear phone's digits (also without ``86``)         exact
``t:``     a legacy clear phone's last four digits                     exact
``m:``     the name, normalised (:func:`normalise`)                    exact, prefix
``s:``     each later suffix of the name (so a substring is a prefix)  prefix
``f:``     the name in full pinyin, one row per reading                exact, prefix
``a:``     the pinyin initials of the name, one row per reading        exact, prefix
``X:``     a sealed name's terms (``m: s: f: a:``), keyed (see below)   exact
=========  ==========================================================  =============

A sealed name (:mod:`protocol.privacy`) is indexed only by a counter holding the names
key, and never in clear: each of its ``m:``, ``f:`` and ``a:`` terms as a whole, and
every prefix of every ``m: s: f: a:`` term (so prefixes and substrings are still found),
each as a keyed BLAKE2b tag (:meth:`~protocol.privacy.PatientKeys.name_term`); a query
probes the tags of what staff type, each an exact lookup.  The index is then a function
of the records *and* the counter's names key: its fingerprint names the key, so a
counter that is given keys (or new keys) rewrites it.

A character with several readings (a heteronym: 曾 ceng/zeng, 单 dan/shan, 解 jie/xie)
is indexed under the reading pypinyin gives the whole name first, then, one character at
a time, under its other readings (the surname's three, any other character's two), at
most :data:`MAX_READINGS` readings a name: bounded, and the surnames that are read
differently from the word (曾, 单, 解, 仇, 区, 朴 …) are found both ways.

The table is a pure function of the Patient records: :class:`PatientIndex` is written
in the same transaction as the records it derives from (the ledger calls it whenever it
writes patients back, and rebuilds it when it refolds), and rebuilt from the patients
table when its :meth:`~PatientIndex.fingerprint` (this module's version, pypinyin's)
changes.

One exception, for the sync daemon's ingest of others' events, of which a sealed name's
~80 rows were most of the cost: there the patients are only marked *due*
(``patient_search_due``, :meth:`PatientIndex.mark_due`) and the daemon's background
pass writes their rows later (:meth:`PatientIndex.write_due`,
:mod:`edge_node.sync.indexer`).  A search leaves the due patients' rows out (a changed
record's old terms) and checks each due patient directly instead: its terms made as the
pass will write them, a sealed name opened and matched in clear against what each
keyed probe is the tag of (:func:`_match`), so it finds exactly what the index will.
After the pass the table is the same as if it had been written in the ingest.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from typing import Any

from protocol.core import columns
from protocol.patient import Patient
from protocol.privacy import (
    NAME,
    PatientKeys,
    _index_key,
    is_sealed,
    normal_name,
    phone_digits,
)

INDEX_VERSION = 3  # 2: sealed details found by their keyed tags; 3: sealed names
MAX_READINGS = 6  # pinyin readings indexed for one name
MAX_NAME = 32  # characters of a name indexed for substrings
SURNAME_READINGS = 3  # readings tried for the first character (the surname)
OTHER_READINGS = 2  # …and for any other
PER_KIND = 8  # rows each term kind may return for one wanted result
SEALED_PREFIX = 24  # characters of a sealed name's term indexed as prefixes (and probed)

_ID_RE = re.compile(r"[0-9]{17}[0-9x]")
_DIGITS_RE = re.compile(r"[0-9]+")
_LETTERS_RE = re.compile(r"[a-z]+")


# -- text ----------------------------------------------------------------------------------
normalise = normal_name  # what a name is compared as (NFKC, case-folded, alphanumerics)


def digits_of(text: str) -> str:
    return "".join(c for c in text if "0" <= c <= "9")


def mask_phone(phone: str) -> str:
    """For screens: ``138****5678`` (first three and last four digits kept, a ``+86``
    dropped); a number too short to mask (an extension) as it is."""
    digits = digits_of(phone)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) < 7:
        return phone
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


@lru_cache(maxsize=8192)
def _char_readings(ch: str) -> tuple[str, ...]:
    """Every reading pypinyin knows for one character (none for a non-Chinese one)."""
    from pypinyin import Style, pinyin

    got = pinyin(ch, style=Style.NORMAL, heteronym=True, errors="ignore")
    return tuple(dict.fromkeys(r for r in got[0] if r.isalpha())) if got else ()


@lru_cache(maxsize=8192)
def _run_readings(run: str) -> tuple[str, ...]:
    """The readings pypinyin gives a run of Chinese characters as a phrase, one each
    (kept for the next name with the same run: surnames, given names and their
    characters recur)."""
    from pypinyin import lazy_pinyin

    got = lazy_pinyin(run, errors="ignore")
    if len(got) != len(run):  # never seen; then the characters' first readings
        return tuple(_char_readings(c)[0] for c in run)
    return tuple(got)


def readings(text: str) -> list[str]:
    """``text``'s full pinyin readings, the most likely first, at most :data:`MAX_READINGS`.

    A letter or digit stays itself (李A明 → ``liaming``); anything else is dropped.
    Empty if ``text`` has no Chinese character.
    """
    return ["".join(r) for r in syllables(text)]


def initials(text: str) -> list[str]:
    """The pinyin initials of each of ``text``'s readings (张三 → ``zs``), deduplicated."""
    return list(dict.fromkeys("".join(s[0] for s in r) for r in syllables(text)))


def syllables(text: str) -> list[list[str]]:
    """``text``'s readings, each as its syllables (a letter or digit is one by itself).

    The first is pypinyin's reading of the whole name (phrase-aware); each next one
    changes one character to another of its readings, the surname first: at most
    :data:`SURNAME_READINGS` for the first Chinese character, :data:`OTHER_READINGS` for
    any other (``lv`` also as ``lu``), :data:`MAX_READINGS` in all.
    """
    name = normalise(text)[:MAX_NAME]
    slots: list[list[str]] = []
    han = 0  # Chinese characters seen so far
    for chinese, group in groupby(name, lambda c: bool(_char_readings(c))):
        run = "".join(group)
        if not chinese:
            slots += [[c] for c in run]
            continue
        for ch, default in zip(run, _run_readings(run), strict=True):
            options = [default, *_char_readings(ch)]
            options += [o.replace("v", "u") for o in options if "v" in o]  # 吕 lv, lu
            limit = OTHER_READINGS if han else SURNAME_READINGS
            slots.append(list(dict.fromkeys(options))[:limit])
            han += 1
    if not han:
        return []
    base = [s[0] for s in slots]
    out = [base]
    for i, options in enumerate(slots):
        for alt in options[1:]:
            if len(out) >= MAX_READINGS:
                return out
            reading = [*base[:i], alt, *base[i + 1:]]
            if reading not in out:
                out.append(reading)
    return out


def item_terms(name: str) -> tuple[str, ...]:
    """What an item name is found by besides itself: full pinyin readings, then initials."""
    rs = syllables(name)
    return tuple(dict.fromkeys(["".join(r) for r in rs] + ["".join(s[0] for s in r)
                                                            for r in rs]))


# -- the patient index ---------------------------------------------------------------------
def name_terms(name: str, pinyin: bool = True) -> set[str]:
    """The ``m: s: f: a:`` terms of a name in clear (``pinyin`` False: ``m: s:`` only)."""
    name = normalise(name)[:MAX_NAME]
    if not name:
        return set()
    out = {"m:" + name}
    out |= {"s:" + name[i:] for i in range(1, len(name))}
    for r in syllables(name) if pinyin else ():
        out |= {"f:" + "".join(r), "a:" + "".join(s[0] for s in r)}
    return out


def sealed_inputs(name: str, pinyin: bool = True) -> set[str]:
    """What a sealed name's index rows are the keyed tags of: each whole ``m: f: a:``
    term (``m=…``) and each prefix of every ``m: s: f: a:`` term (``m<…``), in clear
    (``pinyin`` False: of the ``m: s:`` terms only)."""
    out: set[str] = set()
    for t in name_terms(name, pinyin):
        kind, value = t[0], t[2:]
        if kind != "s":
            out.add(f"{kind}={value}")
        out.update([f"{kind}<{value[:i]}" for i in range(1, min(len(value), SEALED_PREFIX) + 1)])
    return out


def sealed_name_terms(name: str, keys: PatientKeys) -> set[str]:
    """A sealed name's index rows (its clear ``name`` opened by the ledger): the keyed
    tags of :func:`sealed_inputs`."""
    tag = name_tagger(keys)
    return {"X:" + tag(t) for t in sealed_inputs(name)}


def name_tagger(keys: PatientKeys) -> Callable[[str], str]:
    """:meth:`PatientKeys.name_term` of ``keys``, for many terms: the keyed hash's state
    after the key is made once and copied for each term (the same tags, a third of the
    CPU: a sealed name has about 80)."""
    if keys.names is None:
        return keys.name_term
    return _tagger(keys.names)


@lru_cache(maxsize=4)
def _tagger(names: bytes) -> Callable[[str], str]:
    keyed = hashlib.blake2b(key=_index_key(names), digest_size=10)

    def tag(term: str) -> str:
        h = keyed.copy()
        h.update(term.encode())
        return h.hexdigest()
    return tag


def _plain_terms(p: Patient, pinyin: bool = True) -> set[str]:
    """Every term of ``p`` but a sealed name's."""
    out = {"i:" + p.patient_id.casefold()}
    if p.id_tag:  # sealed: its keyed tag (protocol.privacy)
        out.add("N:" + p.id_tag)
    elif p.national_id and not is_sealed(p.national_id):  # a legacy ledger's, in clear
        out.add("n:" + p.national_id.casefold())
    whole, _, last4 = p.phone_tag.partition(" ")
    if whole and last4:  # (a malformed tag, which a patient.updated may carry: none)
        out |= {"P:" + whole, "T:" + last4}
    phone = "" if is_sealed(p.phone) else digits_of(p.phone)
    if len(phone) >= 4:
        out |= {"p:" + phone, "t:" + phone[-4:]}
        if len(phone) == 13 and phone.startswith("86"):
            out.add("p:" + phone[2:])
    if not is_sealed(p.name):  # a legacy ledger's name, in clear
        out |= name_terms(p.name, pinyin)
    return out


def _sealed_name(p: Patient, keys: PatientKeys | None) -> str:
    """``p``'s sealed name opened with the names key ("": none, or none that opens it)."""
    if not is_sealed(p.name) or keys is None or keys.names is None:
        return ""
    return keys.open(NAME, p.patient_id, p.name) or ""


def terms(p: Patient, keys: PatientKeys | None = None) -> set[str]:
    """Every term ``p`` is found by (see the module's table); a sealed name's only with
    ``keys`` holding the names key."""
    out = _plain_terms(p)
    name = _sealed_name(p, keys)
    if name:
        assert keys is not None
        out |= sealed_name_terms(name, keys)
    return out


@dataclass(frozen=True, slots=True)
class _Probe:
    """One range (or one exact term) of the index to read for a query."""

    kind: str
    key: str
    prefix: bool
    exact_rank: int
    prefix_rank: int = 0
    clear: str = ""  # a sealed name's probe (``X:``): what ``key`` is the keyed tag of


def plan(query: str, keys: PatientKeys | None = None) -> list[_Probe]:
    """The index ranges that answer ``query``, each with the rank of what it finds.

    Ranks: 0 the exact patient number, ID number or phone; 1 the last four digits of a
    phone; 2 the exact name; 3 a name that starts with it; 4 a name that contains it;
    5 the exact pinyin or initials; 6 pinyin or initials that start with it; 7 a
    patient number that starts with it.

    ``keys``: the counter's patient keys; with a lookup key, an ID number or phone is
    also looked up by its keyed tag (the sealed details' terms: ``N:``, ``P:``, ``T:``).
    """
    raw = unicodedata.normalize("NFKC", query).strip()
    key = normalise(raw)
    pid = "".join(raw.split()).casefold()
    if not pid:
        return []
    probes = [_Probe("i:", pid, True, 0, 7)]
    tag = keys.tag if keys is not None and keys.lookup is not None else None
    if _ID_RE.fullmatch(key):
        probes.append(_Probe("n:", key, False, 0))
        if tag:
            probes.append(_Probe("N:", tag("n", key.upper()), False, 0))
        return probes
    if _DIGITS_RE.fullmatch(key):
        if len(key) >= 7:
            probes.append(_Probe("p:", key, False, 0))
            if len(key) == 13 and key.startswith("86"):
                probes.append(_Probe("p:", key[2:], False, 0))
            if tag:
                probes.append(_Probe("P:", tag("p", phone_digits(key)), False, 0))
        if len(key) == 4:
            probes.append(_Probe("t:", key, False, 1))
            if tag:
                probes.append(_Probe("T:", tag("t", key), False, 1))
        return probes  # numbers are no one's name
    if key:
        probes += [_Probe("m:", key, True, 2, 3), _Probe("s:", key, True, 4, 4)]
    letters = bool(_LETTERS_RE.fullmatch(key))
    if letters:
        probes += [_Probe("f:", key, True, 5, 6), _Probe("a:", key, True, 5, 6)]
    if key and keys is not None and keys.names is not None:  # sealed names' keyed terms
        part = key[:SEALED_PREFIX]
        wanted = [("m=" + key, 2), ("m<" + part, 3), ("s<" + part, 4)]
        if letters:
            wanted += [("f=" + key, 5), ("a=" + key, 5), ("f<" + part, 6), ("a<" + part, 6)]
        named = name_tagger(keys)
        probes += [_Probe("X:", named(t), False, rank, clear=t) for t, rank in wanted]
    return probes


def probe_query(probes: Sequence[_Probe], limit: int, table: str, id_col: str,
                also: str = "") -> tuple[str, list[Any]]:
    """One statement reading every probe's range of a ``(term, id_col)`` index table
    (``also``: more of the ``WHERE``), at most ``limit × PER_KIND`` rows each; its rows
    are ``(probe number, term, id)`` for :func:`rank_rows`.  Plain SQL: the counters'
    ledgers and central's store (SQLite and PostgreSQL) read their indexes with it."""
    parts: list[str] = []
    args: list[Any] = []
    for n, pr in enumerate(probes):
        lo = pr.kind + pr.key
        if pr.prefix:
            where, more = "term >= ? AND term < ?", [lo, _after(lo)]
        else:
            where, more = "term = ?", [lo]
        parts.append(f"SELECT * FROM (SELECT {n} AS probe, term, {id_col} FROM {table} "
                     f"WHERE {where}{also} ORDER BY term LIMIT ?) AS p{n}")
        args += [*more, limit * PER_KIND]
    return " UNION ALL ".join(parts), args


def rank_rows(probes: Sequence[_Probe], rows: Iterable[Sequence[Any]]
              ) -> dict[str, tuple[int, int, str]]:
    """Each id :func:`probe_query`'s ``rows`` found, with its best rank (see :func:`plan`:
    the rank, then the probe, then the term; ties then go by the id)."""
    best: dict[str, tuple[int, int, str]] = {}
    for n, term, found in rows:
        pr, found = probes[n], str(found)
        exact = term == pr.kind + pr.key
        rank = (pr.exact_rank if exact else pr.prefix_rank, int(n), str(term))
        if found not in best or rank < best[found]:
            best[found] = rank
    return best


@lru_cache(maxsize=1)
def _pypinyin_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pypinyin")
    except PackageNotFoundError:  # (run from a source tree without its metadata)
        from pypinyin import __version__

        return str(__version__)


def _after(prefix: str) -> str:
    """The least string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class PatientIndex:
    """The ``patient_search`` table, kept by the ledger with the Patient records.

    The ledger calls :meth:`write` with the patients it writes back (whose
    :meth:`terms_key` changed), :meth:`clear` and :meth:`write` when it refolds, and
    the whole again when :meth:`fingerprint` differs from the one it stored.
    """

    TABLE = "patient_search"
    record = Patient

    def __init__(self) -> None:
        #: the counter's patient keys (the ledger sets them): sealed names are indexed
        #: with the names key, so the index is one ledger's (:meth:`use_keys`)
        self.keys: PatientKeys | None = None
        self._due_seen: dict[Any, tuple[frozenset[str], frozenset[str]]] = {}

    def use_keys(self, keys: PatientKeys | None) -> None:
        self.keys = keys

    def fingerprint(self) -> str:
        """This module's version, pypinyin's (its dictionaries make the readings) and the
        names key's id (sealed names are indexed with it); read without importing
        pypinyin, which a ledger that indexes nothing never needs."""
        names = self.keys.key_id if self.keys is not None and self.keys.names else "-"
        return f"{INDEX_VERSION} pypinyin {_pypinyin_version()} names {names}"

    @staticmethod
    def terms_key(p: Patient) -> tuple[str, ...]:
        """The fields the terms are made of: a record whose key is unchanged keeps them."""
        return (p.patient_id, p.name, p.national_id, p.phone, p.id_tag, p.phone_tag)

    def clear(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"DELETE FROM {self.TABLE}")
        conn.execute(f"DELETE FROM {self.DUE}")

    def write(self, conn: sqlite3.Connection, patients: Sequence[Any]) -> None:
        """Replace the terms of ``patients`` (in the caller's transaction); they are no
        longer due.  The rows go in in the index's order (a batch of many patients
        touches each page of the index once, not once a row)."""
        for i in range(0, len(patients), 500):
            chunk = patients[i:i + 500]
            ids = [p.patient_id for p in chunk]
            marks = ", ".join("?" * len(ids))
            conn.execute(f"DELETE FROM {self.TABLE} WHERE patient_id IN ({marks})", ids)
            conn.execute(f"DELETE FROM {self.DUE} WHERE patient_id IN ({marks})", ids)
            conn.executemany(f"INSERT OR IGNORE INTO {self.TABLE} (term, patient_id) "
                             "VALUES (?, ?)", sorted({(t, p.patient_id) for p in chunk
                                                      for t in terms(p, self.keys)}))

    # -- terms written later ------------------------------------------------------------
    #: patients whose terms are due: their records were written (by the sync daemon's
    #: ingest) and their terms not yet; :meth:`search` checks them directly until
    #: :meth:`write_due` (the daemon's background pass, :mod:`edge_node.sync.indexer`)
    #: has written them
    DUE = "patient_search_due"

    def mark_due(self, conn: sqlite3.Connection, patients: Sequence[Any]) -> None:
        """Record that the terms of ``patients`` are due (in the caller's transaction):
        instead of :meth:`write`, for the ingest of others' events, which then costs a
        row a patient, not the ~80 of its terms."""
        if patients:
            conn.executemany(f"INSERT OR IGNORE INTO {self.DUE} VALUES (?)",
                             [(p.patient_id,) for p in patients])

    def mark_all_due(self, conn: sqlite3.Connection) -> bool:
        """Mark every patient due (when the keys changed in the sync daemon's ingest: a
        grant), unless more than :data:`MAX_DUE` would be (False: nothing marked).  Their
        rows made with the old keys stay until :meth:`write_due` replaces them, unused:
        a search leaves out every due patient's rows."""
        if conn.execute(f"SELECT count(*) > ? FROM {Patient.TABLE}", (MAX_DUE,)).fetchone()[0]:
            return False
        conn.execute(f"INSERT OR IGNORE INTO {self.DUE} SELECT patient_id FROM {Patient.TABLE}")
        return True

    def write_due(self, conn: sqlite3.Connection, limit: int) -> tuple[int, int]:
        """Write the terms of at most ``limit`` due patients (in the caller's
        transaction): how many were written, and how many are still due."""
        ids = [str(r[0]) for r in conn.execute(
            f"SELECT patient_id FROM {self.DUE} LIMIT ?", (limit,))]
        if ids:
            self.write(conn, _patients(conn, f"patient_id IN ({', '.join('?' * len(ids))})",
                                       ids))
            # (a mark whose record is gone: none is deleted, but a mark never stops the pass)
            conn.execute(f"DELETE FROM {self.DUE} WHERE patient_id IN "
                         f"({', '.join('?' * len(ids))})", ids)
        return len(ids), self.due_count(conn)

    def due_count(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute(f"SELECT count(*) FROM {self.DUE}").fetchone()[0])

    def search(self, conn: sqlite3.Connection, query: str, limit: int,
               keys: PatientKeys | None = None) -> list[str]:
        """The ids of the patients ``query`` finds, best first (see :func:`plan`).

        Each probe reads at most ``limit × PER_KIND`` rows of one index range, in one
        statement; ties keep the index's order (the term, then the patient number).
        The patients whose terms are due are left out of the index's rows (they may be
        a changed record's old terms) and checked one by one instead: their terms made
        here, as :meth:`write_due` will write them, and matched as the index would.
        """
        probes = plan(query, keys)
        if not probes or limit <= 0:
            return []
        due = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {self.DUE})").fetchone()[0]
        not_due = (f" AND NOT EXISTS (SELECT 1 FROM {self.DUE} d WHERE d.patient_id = "
                   f"{self.TABLE}.patient_id)") if due else ""
        sql, args = probe_query(probes, limit, self.TABLE, "patient_id", not_due)
        best = rank_rows(probes, conn.execute(sql, args))
        fields = ", ".join(_TERMS_FIELDS)
        for row in conn.execute(f"SELECT {fields} FROM {Patient.TABLE} WHERE patient_id IN "
                                f"(SELECT patient_id FROM {self.DUE})") if due else ():
            got = self._rank_row(tuple(row), probes, keys)
            if got is not None:
                best[row[0]] = got
        return sorted(best, key=lambda pid: (best[pid], pid))[:limit]

    def rank_of(self, p: Patient, probes: Sequence[_Probe], keys: PatientKeys | None
                ) -> tuple[int, int, str] | None:
        """The rank ``p``'s rows would give it for ``probes`` (None: not found), without
        its rows (a due patient at central's console, as :meth:`search` checks one)."""
        return self._rank_row(tuple(str(getattr(p, f)) for f in _TERMS_FIELDS), probes, keys)

    def _rank_row(self, row: tuple[str, ...], probes: Sequence[_Probe],
                  keys: PatientKeys | None) -> tuple[int, int, str] | None:
        pinyin = any(pr.kind in ("f:", "a:") for pr in probes)
        return _match(self._due_terms(row, keys, pinyin), probes)

    def _due_terms(self, row: tuple[str, ...], keys: PatientKeys | None, pinyin: bool
                   ) -> tuple[frozenset[str], frozenset[str]]:
        """A due patient's terms for :func:`_match`: its plain terms, and its sealed
        name's ``m: s: f: a:`` terms in clear (its keyed rows are tags of their prefixes:
        :func:`sealed_inputs`).  Kept per record and keys while it is due, so a search
        opens each due name once, not once a query."""
        at = (row, keys.key_id if keys is not None else "", pinyin)
        got = self._due_seen.get(at)
        if got is None:
            if len(self._due_seen) >= MAX_DUE_SEEN:
                self._due_seen.clear()
            p = Patient(**dict(zip(_TERMS_FIELDS, row, strict=True)))  # type: ignore[arg-type]
            name = _sealed_name(p, keys)
            got = self._due_seen[at] = (frozenset(_plain_terms(p, pinyin)),
                                        frozenset(name_terms(name, pinyin) if name else ()))
        return got


def _match(terms: tuple[frozenset[str], frozenset[str]], probes: Sequence[_Probe]
           ) -> tuple[int, int, str] | None:
    """The rank a patient's index rows would give it for ``probes`` (None: no probe finds
    it), from its terms as :meth:`PatientIndex._due_terms` makes them: the plain ones
    matched as the index matches them, the sealed name's (``X:``) by what each probe is
    the tag of (``m=…``: that whole term; ``m<…``: a prefix, at most
    :data:`SEALED_PREFIX` long, of a term of that kind)."""
    plain, named = terms
    best: tuple[int, int, str] | None = None
    for n, pr in enumerate(probes):
        lo = pr.kind + pr.key
        rank: tuple[int, int, str] | None = None
        if pr.kind == "X:":
            if pr.clear and _sealed_match(pr.clear, named):
                rank = (pr.exact_rank, n, lo)
        elif not pr.prefix:
            if lo in plain:
                rank = (pr.exact_rank, n, lo)
        else:
            found = [t for t in plain if t.startswith(lo)]
            if found:
                t = min(found)
                rank = (pr.exact_rank if t == lo else pr.prefix_rank, n, t)
        if rank is not None and (best is None or rank < best):
            best = rank
    return best


def _sealed_match(clear: str, named: frozenset[str]) -> bool:
    """Whether :func:`sealed_inputs` of the name whose terms are ``named`` holds
    ``clear`` (without making them all)."""
    kind, op, value = clear[0], clear[1], clear[2:]
    if op == "=":
        return kind != "s" and f"{kind}:{value}" in named
    if not 1 <= len(value) <= SEALED_PREFIX:
        return False
    head = kind + ":" + value
    return any(t.startswith(head) for t in named)


#: the fields a patient's terms are made of (:meth:`PatientIndex.terms_key`)
_TERMS_FIELDS = ("patient_id", "name", "national_id", "phone", "id_tag", "phone_tag")
MAX_DUE_SEEN = 20_000  # due patients' terms kept for the next search (then started afresh)
#: patients due past which the sync daemon's background pass writes terms between frames
#: too, and a change of keys rewrites the index in place (a search checks each due
#: patient one by one: ~10 µs each, more the first time it is asked)
MAX_DUE = 5000


def _patients(conn: sqlite3.Connection, where: str, args: Iterable[Any]) -> list[Patient]:
    names = ", ".join(c for c, _ in columns(Patient))
    return [Patient(*r) for r in conn.execute(
        f"SELECT {names} FROM {Patient.TABLE} WHERE {where}", tuple(args))]
